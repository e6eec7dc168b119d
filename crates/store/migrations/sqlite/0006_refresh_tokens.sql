-- Refresh tokens (RFC 6749 §6, RFC 9700 §4.14, issue #18). A family is what one authorization
-- code started (its id is the code's hash): the user, client, audience, scopes and claims,
-- the DPoP key its tokens are bound to, and the absolute expiry no rotation extends. Each
-- refresh token of the family is stored as its SHA-256 (hex) and used once: using it rotates
-- it (`used_at`) for a new one; a rotated-out token used again revokes the whole family
-- (`revoked_at`) and the access tokens issued with its tokens (`access_jti`).
CREATE TABLE refresh_families (
    family_id   TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    audience    TEXT NOT NULL,
    scope       TEXT NOT NULL,
    claims      TEXT NOT NULL,
    dpop_jkt    TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);
CREATE INDEX refresh_families_client_id ON refresh_families (client_id);
CREATE INDEX refresh_families_subject ON refresh_families (subject);

CREATE TABLE refresh_tokens (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    family_id       TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    issued_at       INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    used_at         INTEGER,
    access_jti      TEXT
) STRICT;
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
