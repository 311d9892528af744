-- Services the fleet has been seen using, recorded as batches are stored:
-- a row not yet alerted is a service new to the fleet.
CREATE TABLE services_seen (
    service_id  text PRIMARY KEY,
    first_hour  timestamptz NOT NULL,
    alerted     boolean NOT NULL DEFAULT false
);
CREATE INDEX services_seen_new ON services_seen (service_id) WHERE NOT alerted;
-- Each alert raised once per kind and subject (the subject carries its time
-- bucket where an alert may come back later).
CREATE TABLE alerts_raised (
    kind       text NOT NULL,
    subject    text NOT NULL,
    raised_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject)
);
