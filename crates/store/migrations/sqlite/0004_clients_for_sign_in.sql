-- Clients as user sign-in needs them (issue #18).
-- `auth_method_pinned`: a client with a secret accepts it both ways, in HTTP Basic
-- (client_secret_basic) or in the form (client_secret_post), unless its method was named when
-- it was registered: client libraries differ in their default (openid-client posts the
-- secret). Clients registered before this version are pinned unless their method is
-- client_secret_basic, the old default, which may not have been asked for. The column's
-- default is pinned: a node of the previous version (several nodes upgrading one by one)
-- writes a client as it would have treated it.
-- `redirect_uris`: the exact redirect URIs the client may use (a JSON array).
-- `auth_method` 'none': a public client (RFC 7591), which has no secret and uses PKCE.
-- SQLite cannot change a CHECK constraint, so the table is rebuilt with the same columns.
CREATE TABLE clients_for_sign_in (
    client_id          TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL,
    secret_hash        BLOB,
    auth_method        TEXT NOT NULL CHECK (auth_method IN
                           ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')),
    scopes             TEXT NOT NULL,
    audiences          TEXT NOT NULL,
    jwks               TEXT,
    disabled           INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at         INTEGER NOT NULL,
    auth_method_pinned INTEGER NOT NULL DEFAULT 1 CHECK (auth_method_pinned IN (0, 1)),
    redirect_uris      TEXT NOT NULL DEFAULT '[]'
) STRICT;
INSERT INTO clients_for_sign_in (client_id, name, secret_hash, auth_method, scopes, audiences,
    jwks, disabled, created_at, auth_method_pinned)
SELECT client_id, name, secret_hash, auth_method, scopes, audiences, jwks, disabled, created_at,
    auth_method <> 'client_secret_basic' FROM clients;
DROP TABLE clients;
ALTER TABLE clients_for_sign_in RENAME TO clients;
