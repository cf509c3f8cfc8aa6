-- Planner statistics for apalis's Jobs table (issue 5). Without any, SQLite plans apalis's
-- lock query (`id IN (…) AND (status = 'Queued' OR status = 'Pending' OR …)`) on the status
-- index and reads every pending job for each batch it locks: with the 100,000 create jobs of
-- a 1,000-user first sync, creates fell to ~120/s. These rows say what is true of a queue
-- in use (a handful of statuses over many jobs), so the ids are looked up instead. They
-- are read when a connection loads the schema (`Store::connect` opens its pool after the
-- migrations); a later ANALYZE replaces them with measured ones.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('Jobs', NULL, '100000'),
    ('Jobs', 'idx_jobs_status_run_at', '100000 25000 2'),
    ('Jobs', 'idx_jobs_job_type_status_run_at', '100000 20000 5000 2'),
    ('Jobs', 'idx_jobs_claimable', '50000 25000 5000');
