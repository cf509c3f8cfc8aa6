-- The worker processes alive or not yet known dead (issue 11): used on PostgreSQL, where each
-- holds a session advisory lock on its name (`jobs::liveness`); SQLite keeps lock files
-- beside the database instead, and leaves this table empty.
CREATE TABLE worker_processes (
    name       TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);
