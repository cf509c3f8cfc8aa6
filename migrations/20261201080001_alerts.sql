-- Alerts (SPEC §10): the conditions that were alerted, and one delivery row per (alert,
-- channel), each sent by a `jmz.deliver_alert` job.

-- One row per condition that started. A condition that clears (`integration.disabled`,
-- `user.unreadable`, `user.zoom_unknown`) has at most one open row per subject, so an open
-- condition is alerted once across restarts and processes; its `cleared_at` is set when it
-- clears. A one-off alert (`meetings.failed` per sync run, `host.daily_limit` per host and
-- UTC day) is recorded cleared at once, and its subject is unique for its type.
CREATE TABLE alert_conditions (
    id          INTEGER PRIMARY KEY,
    type        TEXT NOT NULL,              -- integration.disabled, user.unreadable, …
    subject     TEXT NOT NULL,              -- '' (integration), the user id, the sync id, 'host day'
    details     TEXT NOT NULL,              -- the condition as JSON (what the alert says)
    opened_at   TEXT NOT NULL,              -- RFC 3339, Z
    cleared_at  TEXT                        -- NULL while open
);
CREATE UNIQUE INDEX alert_conditions_open ON alert_conditions (type, subject)
    WHERE cleared_at IS NULL;
CREATE UNIQUE INDEX alert_conditions_once ON alert_conditions (type, subject)
    WHERE type IN ('meetings.failed', 'host.daily_limit');

-- One row per alert and channel: its delivery's state, for the job that sends it and for
-- 状態 (a delivery that keeps failing is visible).
CREATE TABLE alert_deliveries (
    id            INTEGER PRIMARY KEY,
    condition_id  INTEGER NOT NULL REFERENCES alert_conditions (id),
    event         TEXT NOT NULL,            -- opened, cleared
    channel       TEXT NOT NULL,            -- email, webhook
    state         TEXT NOT NULL,            -- pending, sent, failed, skipped (channel not set)
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,                     -- the last failure (never a secret)
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (condition_id, event, channel)
);
CREATE INDEX alert_deliveries_state ON alert_deliveries (state, updated_at);
