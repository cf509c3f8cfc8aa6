-- The worker processes alive or not yet known dead (issue 11): each holds a session advisory
-- lock on its name (`jobs::liveness`); a name whose lock can be taken is a dead process's.
CREATE TABLE worker_processes (
    name       TEXT COLLATE "C" PRIMARY KEY,
    started_at TEXT COLLATE "C" NOT NULL
);
