-- `first_party`: registered by an operator (the CLI, the admin API), as every client before
-- this version was; a client that registered itself (RFC 7591 dynamic registration) is a third
-- party: `consent = "skip_for_first_party"` never skips consent for it, and it signs users in
-- only (issue #18).
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT TRUE;
