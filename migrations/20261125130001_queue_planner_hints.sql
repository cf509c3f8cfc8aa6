-- Planner statistics (issue 5), for apalis's Jobs table and ours. Without any, SQLite plans apalis's
-- lock query (`id IN (…) AND (status = 'Queued' OR status = 'Pending' OR …)`) on the status
-- index and reads every pending job for each batch it locks: with the 100,000 create jobs of
-- a 1,000-user first sync, creates fell to ~120/s. These rows say what is true of a queue
-- in use (a handful of statuses over many jobs), so the ids are looked up instead. Likewise
-- our `failed_deletes` (host AND state = 'created') read every created meeting through
-- `meetings_state` for each user whose window was listed: a no-change resync of 100,000
-- entries took 70 s. A host has few meetings, a state many. They
-- are read when a connection loads the schema (`Store::connect` opens its pool after the
-- migrations); a later ANALYZE replaces them with measured ones.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl IN ('Jobs', 'meetings', 'entries');
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('Jobs', NULL, '100000'),
    ('Jobs', 'idx_jobs_status_run_at', '100000 25000 2'),
    ('Jobs', 'idx_jobs_job_type_status_run_at', '100000 20000 5000 2'),
    ('Jobs', 'idx_jobs_claimable', '50000 25000 5000'),
    ('meetings', NULL, '100000'),
    ('meetings', 'meetings_state', '100000 20000'),
    ('meetings', 'meetings_host', '100000 100 2'),
    ('entries', NULL, '100000'),
    ('entries', 'entries_host_start', '100000 100 2');
