-- Pacing per account (SPEC §9, issue 11): one row per limiter (`zoom.create:<account>`,
-- `zoom.requests:<account>`, `groupware:<base URL>`) holding its GCRA theoretical arrival
-- time in microseconds since the Unix epoch. Every process sharing the database advances it
-- in one short write transaction, so the configured rates bound the sum over all of them.
CREATE TABLE rate_limiters (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    tat_us BIGINT NOT NULL
);
