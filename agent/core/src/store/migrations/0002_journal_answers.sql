-- The agent's own life: starts, stops, unclean stops found on restart,
-- rejected reloads, enforcement state changes (R15, R29).
CREATE TABLE journal (
    seq     INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,  -- microseconds since the Unix epoch
    kind    TEXT NOT NULL,     -- started | stopped | unclean-stop | reload-rejected | ...
    detail  TEXT NOT NULL
);
CREATE INDEX journal_ts ON journal (ts);

-- What users answered to prompts: acknowledgements, justifications (coach)
-- and exception requests (block). The text is the user's own words.
CREATE TABLE answers (
    seq           INTEGER PRIMARY KEY,
    ts            INTEGER NOT NULL,
    uid           INTEGER,
    user          TEXT,
    service_id    TEXT NOT NULL,
    action        TEXT NOT NULL,   -- the decision the prompt was about
    event_id      TEXT NOT NULL,   -- the event that opened the prompt
    kind          TEXT NOT NULL,   -- acknowledged | justified | exception-requested
    text          TEXT,
    bypass_until  INTEGER          -- coach: end of the earned bypass
);
CREATE INDEX answers_uid_ts ON answers (uid, ts);
CREATE INDEX events_uid_ts ON events (uid, ts);
