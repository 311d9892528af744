-- Single-workstation SIEM exports (`[export]` in agent.toml): one row per
-- destination (`file`, `journald`) saying how far it wrote the store's
-- events, in `seq` order, and what it last saw. No row, no export.
CREATE TABLE local_exports (
    name          TEXT PRIMARY KEY,
    acked_seq     INTEGER NOT NULL,  -- every event with seq <= this was written
    written       INTEGER NOT NULL DEFAULT 0,
    last_success  INTEGER,           -- microseconds since the Unix epoch
    last_error    TEXT,
    last_error_at INTEGER
);
