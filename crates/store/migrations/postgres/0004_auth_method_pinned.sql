-- A client with a secret accepts it both ways, in HTTP Basic (client_secret_basic) or in the
-- form (client_secret_post), unless its method was named when it was registered
-- (`auth_method_pinned`): client libraries differ in their default (openid-client posts the
-- secret). Clients registered before this version are pinned only when their method is
-- client_secret_post, which was never the default and so was asked for.
ALTER TABLE clients ADD COLUMN auth_method_pinned BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE clients SET auth_method_pinned = TRUE WHERE auth_method <> 'client_secret_basic';
