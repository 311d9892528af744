-- Each workstation's AI software as its agent last sent it (the agent's
-- inventory, issue 15): replaced whole at each upload, for the periodic
-- review of the rights GenAI tools hold (ANSSI R35). `uid` is -1 for what
-- the system holds.
CREATE TABLE inventory (
    agent_id    uuid NOT NULL,
    uid         bigint NOT NULL,
    kind        text NOT NULL,
    host        text NOT NULL,
    key         text NOT NULL,
    username    text,
    name        text NOT NULL,
    version     text,
    path        text NOT NULL,
    service_id  text,
    local       boolean NOT NULL,
    rights      text[] NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, uid, kind, host, key)
);
