-- The tokens of a client that may still need revoking (the maintenance step revokes those
-- of disabled clients every few seconds): without it, that step reads every token record
-- the client ever had.
CREATE INDEX tokens_unrevoked_by_client ON tokens (client_id, expires_at) WHERE revoked_at IS NULL;
