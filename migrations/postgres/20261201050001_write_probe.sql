-- One row that `/readyz` and a waiting worker rewrite in a write transaction, to prove the
-- database is writable (issue 13).
CREATE TABLE write_probe (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    touched_at TEXT COLLATE "C" NOT NULL
);
INSERT INTO write_probe (id, touched_at) VALUES (1, '1970-01-01T00:00:00Z');
