-- Exports to the SOC's tools read events in the order their transactions
-- committed: `tx` is the inserting transaction, and an exporter only reads
-- rows of transactions older than every one still running, so a batch
-- committing late is never skipped.
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_tx ON events (tx, agent_id, event_id);

-- One durable cursor per destination: where it stands, what it last said.
CREATE TABLE export_cursors (
    destination    text PRIMARY KEY,
    tx             xid8 NOT NULL DEFAULT '0'::xid8,
    agent_id       uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    event_id       uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    exported       bigint NOT NULL DEFAULT 0,
    last_success   timestamptz,
    last_error     text,
    last_error_at  timestamptz
);
