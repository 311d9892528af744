-- The security team's decision on each exception request (the answers of
-- kind exception-requested): granted or refused, by whom, when, and why.
-- The decision is recorded and exported (an event of that workstation);
-- the access itself is given by the signed policy (a rule for that user or
-- group), which the note can name.
CREATE TABLE exception_decisions (
    id          bigserial PRIMARY KEY,
    request     text NOT NULL,       -- the request's handle (db::REQUEST_ID)
    agent_id    uuid NOT NULL,
    service_id  text NOT NULL,
    username    text,
    decision    text NOT NULL CHECK (decision IN ('grant', 'refuse')),
    decided_by  text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX exception_decisions_request ON exception_decisions (request, decided_at DESC);
