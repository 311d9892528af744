-- Clipboard events: a keyed hash of the copied content, so the security
-- team can tell the same content pasted again within a console session.
-- Never the content itself.
ALTER TABLE events ADD COLUMN content_hash TEXT;
