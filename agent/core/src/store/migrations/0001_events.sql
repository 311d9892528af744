-- Events: one decision about one observation. Names only, never payloads.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,  -- local insertion order: a cursor for sync
    id             TEXT NOT NULL UNIQUE, -- UUIDv7, stable across agents and retries
    ts             INTEGER NOT NULL,     -- microseconds since the Unix epoch
    source         TEXT NOT NULL,        -- dns | tls | quic
    name           TEXT NOT NULL,
    service_id     TEXT NOT NULL,
    service_name   TEXT NOT NULL,
    category       TEXT NOT NULL,
    vendor         TEXT NOT NULL,
    action         TEXT NOT NULL,
    rule_id        TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    protocol       TEXT NOT NULL,
    src            TEXT NOT NULL,
    dst            TEXT NOT NULL,
    ech            INTEGER NOT NULL,
    pid            INTEGER,
    program        TEXT,
    program_path   TEXT,
    uid            INTEGER,
    user           TEXT
);
-- The console filters by time, and by service, user or action over time.
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_service_ts ON events (service_id, ts);
CREATE INDEX events_user_ts ON events (user, ts);
CREATE INDEX events_action_ts ON events (action, ts);
