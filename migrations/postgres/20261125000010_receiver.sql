-- The receiver's tables (SPEC §5): webhook deliveries seen, the last check of each
-- service (R-ENABLED), and the counters behind /metrics that outlive a process.

-- One row per Standard Webhooks delivery id: a redelivery answers with the first job.
CREATE TABLE webhook_deliveries (
    webhook_id   TEXT COLLATE "C" PRIMARY KEY,
    job_id       TEXT COLLATE "C" NOT NULL,
    event_type   TEXT COLLATE "C" NOT NULL,
    received_at  TEXT COLLATE "C" NOT NULL  -- RFC 3339, Z
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- The last check of each part R-ENABLED names (`zoom`, `groupware`, `timezone`), by doctor
-- or by the worker's own calls.
CREATE TABLE service_checks (
    service     TEXT COLLATE "C" PRIMARY KEY,
    ok          BOOLEAN NOT NULL,
    detail      TEXT COLLATE "C" NOT NULL,
    checked_at  TEXT COLLATE "C" NOT NULL
);

-- Prometheus counters: each process's cumulative totals (`name` with its rendered label
-- set), overwritten by its flushes; a scrape sums the processes. DOUBLE PRECISION is
-- SQLite's REAL (8 bytes, Rust f64); PostgreSQL's REAL would be 4 bytes.
CREATE TABLE metric_counters (
    process TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    labels  TEXT COLLATE "C" NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (process, name, labels)
);
