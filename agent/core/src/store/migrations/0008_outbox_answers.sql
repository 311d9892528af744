-- The outbox also carries the users' answers to prompts (justifications,
-- exception requests, acknowledgements) for the security team's review:
-- how far the collector acknowledged them.
ALTER TABLE outbox ADD COLUMN answers_acked_seq INTEGER NOT NULL DEFAULT 0;
