-- Distinct values of the fields the console filters and searches on, kept
-- up to date as events are written: the filter lists and the free-text
-- search read this small table instead of scanning every event.
CREATE TABLE event_terms (
    field  TEXT NOT NULL,  -- service | category | user | program | rule | name
    value  TEXT NOT NULL,  -- as stored in events
    label  TEXT NOT NULL,  -- what the console shows (a service's name)
    search TEXT NOT NULL,  -- lower-cased text the free-text search matches
    service TEXT,          -- for a name: its service, so a search matching both looks once
    PRIMARY KEY (field, value)
) WITHOUT ROWID;
-- Every filter of the security view is an index range, newest first.
CREATE INDEX events_name_ts ON events (name, ts);
CREATE INDEX events_program_ts ON events (program, ts);
CREATE INDEX events_rule_ts ON events (rule_id, ts);
CREATE INDEX events_category_ts ON events (category, ts);
-- Services and decisions together (the commonest pair of filters, and what
-- a free-text search for a service becomes): counted from the index alone.
CREATE INDEX events_service_action_ts ON events (service_id, action, ts);
