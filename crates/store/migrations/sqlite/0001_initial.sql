-- tokengate store, initial schema (SQLite). Timestamps are unix seconds (INTEGER).
-- Never edit a migration once released: sqlx records its checksum and refuses a changed one.
-- Keep in step with ../postgres/0001_initial.sql (same tables, columns and constraints).

-- Named values that belong to the store itself, e.g. the master key check value.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) STRICT;

-- Signing and encryption keys. private_ciphertext is the private JWK (JSON bytes) sealed with
-- AES-256-GCM under the master key: version byte || 96-bit nonce || ciphertext || tag.
CREATE TABLE keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    use                TEXT NOT NULL CHECK (use IN ('sig', 'enc')),
    alg                TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'removed')),
    public_jwk         TEXT NOT NULL,
    private_ciphertext BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    activate_at        INTEGER NOT NULL,
    state_changed_at   INTEGER NOT NULL,
    retired_at         INTEGER,
    remove_after       INTEGER
) STRICT;

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BLOB,
    auth_method TEXT NOT NULL
                CHECK (auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
    scopes      TEXT NOT NULL,
    audiences   TEXT NOT NULL,
    jwks        TEXT,
    disabled    INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;

-- Issued access tokens. No foreign key to clients: revocations must outlive a deleted client.
CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    audience   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expires_at ON tokens (expires_at);
CREATE INDEX tokens_revoked_at ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Single-use identifiers (private_key_jwt assertion jti, DPoP proof jti), per namespace.
CREATE TABLE used_jtis (
    namespace  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);

-- AUTOINCREMENT: ids are never reused, so readers can page with "id > last seen".
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    event      TEXT NOT NULL,
    client_id  TEXT,
    subject    TEXT,
    jti        TEXT,
    audience   TEXT,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    request_id TEXT
) STRICT;
