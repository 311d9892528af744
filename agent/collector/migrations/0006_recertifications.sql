-- The security team's decisions on the rights AI software holds on the
-- workstations (ANSSI R35's periodic review): each right kept or to be
-- removed, who decided and when. A find is named as the inventory names it
-- (agent, uid, kind, host, key); its workstation and software names are
-- copied, so that a decision outlives the find it was about. Each decision
-- is also an event, which the export destinations carry.
CREATE TABLE recertifications (
    id          bigserial PRIMARY KEY,
    agent_id    uuid NOT NULL,
    uid         bigint NOT NULL,
    kind        text NOT NULL,
    host        text NOT NULL,
    key         text NOT NULL,
    hostname    text NOT NULL,
    name        text NOT NULL,
    service_id  text,
    right_held  text NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('keep', 'remove')),
    decided_by  text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX recertifications_find ON recertifications (agent_id, uid, kind, host, key, right_held, decided_at DESC);
CREATE INDEX recertifications_decided_at ON recertifications (decided_at);
