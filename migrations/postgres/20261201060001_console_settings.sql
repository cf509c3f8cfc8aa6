-- Settings entered in the admin console (SPEC §8 "Where settings live"): every key the file
-- and the environment leave out. A secret's value is sealed under `server.secret_key`
-- (src/secrets.rs); the key itself is never stored here.
CREATE TABLE console_settings (
    key TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- The console's user mapping (the seed's step 4), used when the file has no [[users]].
CREATE TABLE console_users (
    groupware_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    zoom_email TEXT COLLATE "C" NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- One counter every saved change bumps in its transaction: each process compares it with
-- the version its settings were built from and reloads when it moved.
CREATE TABLE settings_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO settings_version (id, version) VALUES (1, 0);

-- The last Zoom e-mail check of each user (`GET /users/email`): found or not.
CREATE TABLE zoom_email_checks (
    groupware_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    zoom_email TEXT COLLATE "C" NOT NULL,
    found BOOLEAN NOT NULL,
    checked_at TEXT COLLATE "C" NOT NULL
);
