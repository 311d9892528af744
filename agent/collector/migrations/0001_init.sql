-- Enrolment tokens: only a digest of the secret is kept.
CREATE TABLE enrol_tokens (
    id            uuid PRIMARY KEY,
    secret_sha256 bytea NOT NULL,
    grp           text NOT NULL,
    expires_at    timestamptz NOT NULL,
    uses_left     integer NOT NULL CHECK (uses_left >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- One row per enrolled agent; its id is its certificate's subject.
CREATE TABLE agents (
    id              uuid PRIMARY KEY,
    grp             text NOT NULL,
    hostname        text NOT NULL,
    token_id        uuid REFERENCES enrol_tokens (id),
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    cert_serial     text NOT NULL,
    cert_not_after  timestamptz NOT NULL,
    -- The certificate a renewal replaced, still accepted for a few minutes
    -- (requests in flight); after that, only the current one is.
    prev_cert_serial   text,
    prev_serial_until  timestamptz,
    revoked_at      timestamptz,
    -- Written in batches by the collector, never once per request.
    last_seen       timestamptz,
    version         text,
    mode            text,
    policy          text,
    bundle_version  bigint,
    health          text,
    outbox          jsonb,
    counters        jsonb
);
CREATE INDEX agents_revoked_at ON agents (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX agents_grp ON agents (grp);

-- Events, partitioned by day (UTC): retention drops whole partitions.
-- The key holds (agent, event id): a retried batch stores nothing twice.
CREATE TABLE events (
    agent_id        uuid NOT NULL,
    event_id        uuid NOT NULL,
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL,
    name            text NOT NULL,
    service_id      text NOT NULL,
    service_name    text NOT NULL,
    category        text NOT NULL,
    vendor          text NOT NULL,
    action          text NOT NULL,
    rule_id         text NOT NULL,
    policy_version  text NOT NULL,
    protocol        text NOT NULL,
    src             text NOT NULL,
    dst             text NOT NULL,
    ech             boolean NOT NULL,
    pid             bigint,
    program         text,
    program_path    text,
    uid             bigint,
    username        text,
    repeats         integer NOT NULL,
    content_hash    text,
    PRIMARY KEY (agent_id, event_id, ts)
) PARTITION BY RANGE (ts);
-- The console's filters: time, and service, decision, user, program,
-- category or workstation over time.
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_service_ts ON events (service_id, ts);
CREATE INDEX events_action_ts ON events (action, ts);
CREATE INDEX events_user_ts ON events (username, ts);
CREATE INDEX events_program_ts ON events (program, ts);
CREATE INDEX events_category_ts ON events (category, ts);
CREATE INDEX events_agent_ts ON events (agent_id, ts);

-- Events whose time stamp falls outside the partitions kept (an agent's
-- clock far off): kept for review instead of lost.
CREATE TABLE events_quarantine (LIKE events INCLUDING DEFAULTS, PRIMARY KEY (agent_id, event_id));
-- The time the agent claimed, as sent (its `ts` is when it was received if
-- PostgreSQL cannot hold that time).
ALTER TABLE events_quarantine ADD COLUMN claimed_ts_us bigint;

-- Counts per hour, service, category and decision, kept as events arrive
-- (newly stored ones only): charts over months read this, not the events.
CREATE TABLE event_rollup_hourly (
    hour        timestamptz NOT NULL,
    service_id  text NOT NULL,
    category    text NOT NULL,
    action      text NOT NULL,
    events      bigint NOT NULL,
    occurrences bigint NOT NULL,  -- events times their repeats
    PRIMARY KEY (hour, service_id, category, action)
);

-- Signed policy bundles as the security team published them.
CREATE TABLE policy_bundles (
    version      bigint PRIMARY KEY,
    bundle       bytea NOT NULL,
    etag         text NOT NULL,
    expires_at   timestamptz NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
