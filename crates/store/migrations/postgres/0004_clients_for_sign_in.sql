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
ALTER TABLE clients DROP CONSTRAINT clients_auth_method_check;
ALTER TABLE clients ADD CONSTRAINT clients_auth_method_check CHECK (auth_method IN
    ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'));
ALTER TABLE clients ADD COLUMN auth_method_pinned BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE clients SET auth_method_pinned = FALSE WHERE auth_method = 'client_secret_basic';
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
