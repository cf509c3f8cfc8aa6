-- Zoom allows each host 100 meeting creates + updates per UTC day (shared api/zoom.md).
-- One row per (host, UTC day): the calls reserved so far. A create or update reserves its
-- slot in the same write transaction that claims its meeting row, so concurrent workers
-- (threads or processes) can never reserve more than `zoom.daily_host_limit` together.
CREATE TABLE host_daily_usage (
    host_email TEXT COLLATE "C" NOT NULL,
    utc_day    TEXT COLLATE "C" NOT NULL,  -- "2026-11-25"
    used       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (host_email, utc_day)
);

-- A create attempt that may have reached Zoom leaves this set while its row waits in a
-- claimable state (e.g. `deferred` to 00:00 UTC): the next attempt looks for the meeting
-- among the host's upcoming meetings before it creates one (R-ONCE). A flag: BOOLEAN here,
-- INTEGER 0/1 on SQLite.
ALTER TABLE meetings ADD COLUMN look_first BOOLEAN NOT NULL DEFAULT FALSE;

-- Which process (`Engine::instance`) holds a row's claim: at a graceful shutdown the
-- process shortens the claims it cut off, so the next start looks for their meetings
-- after a short grace instead of waiting out the whole claim.
ALTER TABLE meetings ADD COLUMN claimed_by TEXT COLLATE "C";
