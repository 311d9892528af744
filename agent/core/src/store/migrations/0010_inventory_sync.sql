-- What of the inventory the fleet collector holds: each stored scan bumps
-- `revision`; `acked` is the last revision the collector acknowledged.
CREATE TABLE inventory_sync (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0
);
INSERT INTO inventory_sync (id) VALUES (1);
