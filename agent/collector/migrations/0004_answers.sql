-- Users' answers to prompts, as agents send them: acknowledgements,
-- justifications (coach, with the bypass they earned) and exception
-- requests (block), in the user's own words, for the periodic review.
CREATE TABLE answers (
    agent_id      uuid NOT NULL,
    ts            timestamptz NOT NULL,
    event_id      uuid,              -- the event that opened the prompt (null if the agent's id was not a UUID)
    uid           bigint,
    username      text,
    service_id    text NOT NULL,
    action        text NOT NULL,     -- the decision the prompt was about
    kind          text NOT NULL,     -- acknowledged | justified | exception-requested
    text          text,
    bypass_until  timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- A batch sent again stores nothing twice.
    UNIQUE NULLS NOT DISTINCT (agent_id, event_id, kind, ts)
);
CREATE INDEX answers_ts ON answers (ts);
