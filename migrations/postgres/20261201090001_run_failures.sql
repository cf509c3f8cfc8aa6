-- meetings.failed (SPEC §10): the creates of a sync run that ended `failed` (retries ran out)
-- or that Zoom refused, written in the transaction that records the failure and kept until
-- the run's one alert is recorded (then deleted in that transaction).
CREATE TABLE run_failures (
    sync_id     TEXT COLLATE "C" NOT NULL,
    meeting_id  BIGINT NOT NULL,
    PRIMARY KEY (sync_id, meeting_id)
);
