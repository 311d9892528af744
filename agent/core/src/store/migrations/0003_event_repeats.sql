-- Identical decisions close together (a browser asks A, AAAA and HTTPS at
-- once; a client retries) are stored once with the number of times they
-- happened, so a flood of queries cannot flood the store.
ALTER TABLE events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
