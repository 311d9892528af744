-- The fleet outbox: the store's events are what the agent uploads, in
-- `seq` order; this one row says how far the collector acknowledged them
-- and what the uploader last saw. Made at enrolment; no row, no fleet.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    acked_seq     INTEGER NOT NULL,  -- every event with seq <= this is stored centrally
    sent          INTEGER NOT NULL DEFAULT 0,
    dropped       INTEGER NOT NULL DEFAULT 0, -- deleted by retention before they were sent
    set_aside     INTEGER NOT NULL DEFAULT 0, -- refused by the collector one by one (400), skipped
    last_success  INTEGER,           -- microseconds since the Unix epoch
    last_error    TEXT,
    last_error_at INTEGER
);
