-- The admin console's audit log (SPEC §8): every sign-in (succeeded or not, with the client
-- address), every saved change, every manual sync, every sign-out. Never pruned by retention.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,                 -- UTC, YYYY-MM-DDTHH:MM:SSZ
    kind    TEXT NOT NULL,                 -- login_ok, login_failed, login_refused, logout, sync, settings, users
    address TEXT,                          -- the client's address (the connection's peer)
    detail  TEXT NOT NULL DEFAULT ''
);
-- The sign-in rate limit counts one address's failed sign-ins of the last minute.
CREATE INDEX audit_log_kind_address_at ON audit_log (kind, address, at);

-- The J-MOTTO user list as the console's ユーザー page last fetched it (refreshed when older
-- than a few minutes), so a company of 1,000 users pages and searches without a J-MOTTO call.
CREATE TABLE directory_users (
    groupware_id TEXT PRIMARY KEY,
    login_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    organization TEXT NOT NULL,
    email        TEXT NOT NULL,
    position     INTEGER NOT NULL,         -- the order J-MOTTO listed them in
    fetched_at   TEXT NOT NULL
);
