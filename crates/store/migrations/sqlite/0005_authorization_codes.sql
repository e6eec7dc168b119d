-- Authorization codes (RFC 6749 §4.1, issue #18). A code is stored as its SHA-256 (hex), never
-- itself: whoever reads the database cannot redeem one. Each code is bound to what its
-- redemption must present again: the client, the redirect URI exactly as the authorization
-- request named it (port included), the PKCE S256 challenge and, when asked for, the DPoP key
-- (RFC 9449 §10); and it carries what the access token will say about the user (subject,
-- auth_time, the claims copied from the provider as a JSON object).
-- `used_at`: set once, by the redemption that wins. `replayed_at`: set when the code is
-- presented again (RFC 6749 §4.1.2: a replay revokes what the first use issued, `access_jti`).
-- Rows outlive their expiry by a day, so a late replay is still recognised, then are purged.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    dpop_jkt       TEXT,
    subject        TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    audience       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    claims         TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    replayed_at    INTEGER,
    access_jti     TEXT
) STRICT;
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
