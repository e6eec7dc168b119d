//! OAuth clients.

use crate::{with_pool, Result, Store, StoreError};

/// How a client authenticates at the token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with one of the client's keys (RFC 7523).
    PrivateKeyJwt,
    /// None, a public client (RFC 7591 `none`): an app on the user's device, which cannot
    /// keep a secret and proves each authorization code is its own with PKCE.
    Public,
}

impl AuthMethod {
    /// Whether the method presents the client secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::Public => "none",
        }
    }

    /// Parses a registered name.
    pub fn parse(text: &str) -> Option<AuthMethod> {
        match text {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            "none" => Some(AuthMethod::Public),
            _ => None,
        }
    }
}

/// A registered client, as stored and as given to [`Store::create_client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client id (non-empty).
    pub client_id: String,
    /// A human-readable name.
    pub name: String,
    /// [`crate::hash_secret`] of the client secret; `None` for clients without one
    /// (`private_key_jwt`, public clients).
    pub secret_hash: Option<Vec<u8>>,
    /// How the client authenticates.
    pub auth_method: AuthMethod,
    /// Whether `auth_method` was named at registration. A client with a secret that did not
    /// name its method accepts the secret both ways ([`Client::accepts`]).
    pub auth_method_pinned: bool,
    /// Scopes the client may ask for (RFC 6749 §3.3 scope tokens; stored space-separated).
    pub scopes: Vec<String>,
    /// Audiences (resource indicators) the client may ask for (stored as a JSON array).
    pub audiences: Vec<String>,
    /// The client's public JWK Set as JSON, for `private_key_jwt`.
    pub jwks: Option<String>,
    /// A disabled client cannot get tokens.
    pub disabled: bool,
    /// When the client was registered.
    pub created_at: i64,
    /// The redirect URIs it may use, matched exactly (stored as a JSON array).
    pub redirect_uris: Vec<String>,
    /// Registered by an operator (the CLI, the admin API); `false` for a client that
    /// registered itself (RFC 7591): a third party, for which consent is never skipped as
    /// for an operator's client, and which signs users in only.
    pub first_party: bool,
}

impl Client {
    /// Whether the client may authenticate with `method`: its own, or, for a client with a
    /// secret whose method was not pinned, the other way of presenting the secret.
    pub fn accepts(&self, method: AuthMethod) -> bool {
        method == self.auth_method
            || (!self.auth_method_pinned && method.uses_secret() && self.auth_method.uses_secret())
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

type ClientRow = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    String,
    String,
    Option<String>,
    bool,
    i64,
    bool,
    String,
    bool,
);

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, auth_method, scopes, audiences, \
     jwks, disabled, created_at, auth_method_pinned, redirect_uris, first_party";

fn client_from_row(row: ClientRow) -> Result<Client> {
    let (
        client_id,
        name,
        secret_hash,
        auth_method,
        scopes,
        audiences,
        jwks,
        disabled,
        created_at,
        auth_method_pinned,
        redirect_uris,
        first_party,
    ) = row;
    Ok(Client {
        client_id,
        name,
        secret_hash,
        auth_method: AuthMethod::parse(&auth_method)
            .ok_or(StoreError::Corrupt("unknown client auth method", None))?,
        auth_method_pinned,
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        audiences: serde_json::from_str(&audiences)
            .map_err(|e| StoreError::Corrupt("client audiences", Some(Box::new(e))))?,
        jwks,
        disabled,
        created_at,
        redirect_uris: serde_json::from_str(&redirect_uris)
            .map_err(|e| StoreError::Corrupt("client redirect URIs", Some(Box::new(e))))?,
        first_party,
    })
}

impl Store {
    /// Registers a client. [`StoreError::Invalid`] for an empty id, a scope that is not an
    /// RFC 6749 scope token, or `jwks` that is not JSON; [`StoreError::Conflict`] if the id
    /// exists.
    pub async fn create_client(&self, client: &Client) -> Result<()> {
        if client.client_id.is_empty() {
            return Err(StoreError::Invalid("empty client_id"));
        }
        if !client.scopes.iter().all(|s| is_scope_token(s)) {
            return Err(StoreError::Invalid("scope is not an RFC 6749 scope token"));
        }
        if let Some(jwks) = &client.jwks {
            if serde_json::from_str::<serde_json::Value>(jwks).is_err() {
                return Err(StoreError::Invalid("client jwks is not JSON"));
            }
        }
        let scopes = client.scopes.join(" ");
        let audiences = serde_json::to_string(&client.audiences)
            .map_err(|_| StoreError::Invalid("client audiences"))?;
        let redirect_uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|_| StoreError::Invalid("client redirect URIs"))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO clients (client_id, name, secret_hash, auth_method, scopes, audiences, \
             jwks, disabled, created_at, auth_method_pinned, redirect_uris, first_party) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.secret_hash.as_deref())
        .bind(client.auth_method.as_str())
        .bind(&scopes)
        .bind(&audiences)
        .bind(client.jwks.as_deref())
        .bind(client.disabled)
        .bind(client.created_at)
        .bind(client.auth_method_pinned)
        .bind(&redirect_uris)
        .bind(client.first_party)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| StoreError::from(e).conflict_is("a client with this client_id exists"))?;
        Ok(())
    }

    /// One client, if it exists.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1");
        let row: Option<ClientRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(client_id)
            .fetch_optional(pool)
            .await?);
        row.map(client_from_row).transpose()
    }

    /// All clients, by id.
    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id");
        let rows: Vec<ClientRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        rows.into_iter().map(client_from_row).collect()
    }

    /// Disables or re-enables a client. [`StoreError::NotFound`] if there is no such client.
    pub async fn set_client_disabled(&self, client_id: &str, disabled: bool) -> Result<()> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE clients SET disabled = $2 WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(disabled)
        .execute(pool)
        .await?
        .rows_affected());
        found(updated, "client")
    }

    /// Replaces (or, with `None`, removes) a client's secret hash. [`StoreError::NotFound`] if
    /// there is no such client.
    pub async fn set_client_secret_hash(
        &self,
        client_id: &str,
        secret_hash: Option<&[u8]>,
    ) -> Result<()> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE clients SET secret_hash = $2 WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(secret_hash)
        .execute(pool)
        .await?
        .rows_affected());
        found(updated, "client")
    }

    /// Deletes a client. Its issued token records stay; the token service revokes them
    /// with [`Store::revoke_by_client`] after this.
    /// [`StoreError::NotFound`] if there is no such client.
    pub async fn delete_client(&self, client_id: &str) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query(
            "DELETE FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .execute(pool)
        .await?
        .rows_affected());
        found(deleted, "client")
    }
}

fn found(rows: u64, what: &'static str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_accepted_both_ways_unless_the_method_is_pinned() {
        use AuthMethod::{ClientSecretBasic, ClientSecretPost, PrivateKeyJwt, Public};
        let client = |auth_method, auth_method_pinned| Client {
            client_id: "c".into(),
            name: "c".into(),
            secret_hash: None,
            auth_method,
            auth_method_pinned,
            scopes: vec![],
            audiences: vec![],
            jwks: None,
            disabled: false,
            created_at: 0,
            redirect_uris: vec![],
            first_party: true,
        };
        for registered in [ClientSecretBasic, ClientSecretPost] {
            let open = client(registered, false);
            assert!(open.accepts(ClientSecretBasic) && open.accepts(ClientSecretPost));
            assert!(!open.accepts(PrivateKeyJwt));
            let pinned = client(registered, true);
            assert!(pinned.accepts(registered));
            for other in [ClientSecretBasic, ClientSecretPost, PrivateKeyJwt] {
                assert_eq!(pinned.accepts(other), other == registered);
            }
        }
        for pinned in [false, true] {
            for no_secret in [PrivateKeyJwt, Public] {
                let c = client(no_secret, pinned);
                assert!(c.accepts(no_secret));
                assert!(!c.accepts(ClientSecretBasic) && !c.accepts(ClientSecretPost));
            }
        }
    }

    #[test]
    fn scope_tokens() {
        for ok in ["read", "a:b", "https://api.example/x", "!#[]~"] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!is_scope_token(bad), "{bad}");
        }
    }
}
