-- A client with a secret accepts it both ways, in HTTP Basic (client_secret_basic) or in the
-- form (client_secret_post), unless its method was named when it was registered
-- (`auth_method_pinned`): client libraries differ in their default (openid-client posts the
-- secret). Clients registered before this version are pinned only when their method is
-- client_secret_post, which was never the default and so was asked for.
ALTER TABLE clients ADD COLUMN auth_method_pinned INTEGER NOT NULL DEFAULT 0
    CHECK (auth_method_pinned IN (0, 1));
UPDATE clients SET auth_method_pinned = 1 WHERE auth_method <> 'client_secret_basic';
