-- The AI software found on the workstation now (issue 15, R35): one row per
-- find, replaced as a whole at each scan; what changed is in `events`
-- (source `inventory`). `uid` is -1 for the system's.
CREATE TABLE inventory (
    uid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    key TEXT NOT NULL,
    user TEXT,
    name TEXT NOT NULL,
    version TEXT,
    path TEXT NOT NULL,
    service_id TEXT,
    local INTEGER NOT NULL,
    rights TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (uid, kind, host, key)
) WITHOUT ROWID;
