-- App tables of jmotto-zoom. apalis-sqlite's own migrations (Jobs, Workers) run first and
-- keep their `_sqlx_migrations` table; these are tracked in `_app_migrations`.

-- One row per J-MOTTO entry (schedule id, occurrence) the sync has seen with the Zoom
-- location: its latest observation, its host, and which meeting row is current.
CREATE TABLE entries (
    schedule_id        TEXT NOT NULL,
    occurrence         TEXT NOT NULL,
    owner              TEXT NOT NULL,
    members            TEXT NOT NULL,          -- JSON array of groupware ids, display order
    start_utc          TEXT NOT NULL,          -- RFC 3339, Z
    end_utc            TEXT NOT NULL,
    host_user_id       TEXT,                   -- NULL: no enabled member (R-HOST)
    current_meeting_id INTEGER,                -- meetings.id of the entry's live meeting
    gone_at            TEXT,                   -- set when a complete listing lost it (R-DELETE)
    gone_reason        TEXT,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (schedule_id, occurrence)
);
CREATE INDEX entries_host_start ON entries (host_user_id, start_utc);

-- One row per (schedule id, occurrence, start, end): the R-ONCE key. A row is claimed
-- (state `creating`) before the Zoom call that creates its meeting.
CREATE TABLE meetings (
    id                  INTEGER PRIMARY KEY,
    schedule_id         TEXT NOT NULL,
    occurrence          TEXT NOT NULL,
    start_utc           TEXT NOT NULL,
    end_utc             TEXT NOT NULL,
    host_user_id        TEXT,
    host_email          TEXT,
    topic               TEXT NOT NULL,
    agenda              TEXT NOT NULL,
    duration_minutes    INTEGER NOT NULL,
    timezone            TEXT NOT NULL,
    invitees            TEXT NOT NULL DEFAULT '[]',   -- JSON array of e-mails
    state               TEXT NOT NULL CHECK (state IN
        ('pending', 'creating', 'created', 'deferred', 'failed', 'skipped', 'superseded',
         'deleted')),
    reason              TEXT,
    zoom_meeting_id     INTEGER,
    join_url            TEXT,
    replaces_meeting_id INTEGER,                      -- `replace` policy: delete this one after
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT,
    claimed_at          TEXT,                         -- when a create attempt took the row; NULL when none is in flight
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (schedule_id, occurrence, start_utc, end_utc)
);
CREATE INDEX meetings_state ON meetings (state);
CREATE INDEX meetings_host ON meetings (host_user_id, start_utc);

-- Per enabled user: when a sync last read the schedule, and the last error (R-ACCESS).
CREATE TABLE user_sync_state (
    groupware_id TEXT PRIMARY KEY,
    last_sync_at TEXT,
    last_error   TEXT,
    updated_at   TEXT NOT NULL
);

-- One row per SyncWindow job: which users, which window.
CREATE TABLE sync_runs (
    id          TEXT PRIMARY KEY,             -- the SyncWindow job id (ULID)
    trigger     TEXT NOT NULL,                -- manual, webhook, poll
    users       TEXT,                         -- JSON array, NULL = every enabled user
    request_id  TEXT,
    window_from TEXT,
    window_to   TEXT,
    created_at  TEXT NOT NULL
);

-- One row per FetchSlice of a sync run; deletions are decided only when every slice of a
-- user's window completed successfully.
CREATE TABLE slice_runs (
    sync_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    month    TEXT NOT NULL,                   -- "2026-12"
    state    TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error    TEXT,
    PRIMARY KEY (sync_id, user_id, month)
);

-- Which entries one user's listing held in one sync run. An entry is gone only when every
-- slice of its host's window listed successfully in that run and none held it (R-DELETE);
-- per (run, user), so concurrent runs cannot hide each other's sightings.
CREATE TABLE slice_sightings (
    sync_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    occurrence  TEXT NOT NULL,
    PRIMARY KEY (sync_id, user_id, schedule_id, occurrence)
);

-- apalis-sqlite's ack walks this index and never clears lock_by: measured at ~100 acks/s
-- with it, thousands without (DESIGN.md).
DROP INDEX IF EXISTS LIdx;
