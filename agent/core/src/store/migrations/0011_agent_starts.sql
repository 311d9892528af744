-- How many times an agent started on this store: prompt ids are made from
-- it, so that they never repeat across restarts, whatever the clock does.
CREATE TABLE agent_starts (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL DEFAULT 0
);
INSERT INTO agent_starts (id) VALUES (1);
