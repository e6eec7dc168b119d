//! Operations on clients, keys and revocations, for the admin API and the CLI. Each change
//! is an audit event.

use jose::JwkSet;
use serde::Serialize;
use store::{AuditEvent, AuthMethod, Client, KeyRecord, KeyUse, StoreError};
use zeroize::Zeroizing;

use crate::changes::Change;
use crate::error::Error;
use crate::keyring::KeyRing;
use crate::service::{key_event, Service};

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Human-readable name (non-empty).
    pub name: String,
    /// Scopes it may ask for.
    pub scopes: Vec<String>,
    /// Audiences it may ask for (empty: any declared audience).
    pub audiences: Vec<String>,
    /// How it authenticates. `None`: with a secret, presented either way
    /// (`client_secret_basic` or `client_secret_post`), as client libraries differ in which
    /// they use by default; a named method is the only one accepted.
    pub auth_method: Option<AuthMethod>,
    /// Its public JWK Set (JSON), required for and only for `private_key_jwt`.
    pub jwks: Option<String>,
    /// The redirect URIs it may use to sign users in ([`crate::redirect_uri`]); at least
    /// one for a public client (`auth_method` `none`).
    pub redirect_uris: Vec<String>,
    /// Registered by an operator; `false` for RFC 7591 dynamic registration.
    pub first_party: bool,
}

/// A client id and, for secret methods, its secret: shown once, stored only as a keyed hash.
#[derive(Debug, Serialize)]
pub struct Credentials {
    /// The client id.
    pub client_id: String,
    /// The secret (256 random bits, base64url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Zeroizing<String>>,
}

/// Which tokens to revoke.
#[derive(Debug, Clone)]
pub enum RevokeBy {
    /// One token.
    Jti(String),
    /// Every token of a client.
    Client(String),
    /// Every token of a subject.
    Subject(String),
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The request is not acceptable (400).
    #[error("{0}")]
    Invalid(String),
    /// No such client or key (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The operation does not apply (409).
    #[error("{0}")]
    Conflict(&'static str),
    /// Our failure (500, or 503 when the database is unavailable).
    #[error(transparent)]
    Internal(#[from] Error),
}

impl AdminError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::Invalid(_) => 400,
            AdminError::NotFound(_) => 404,
            AdminError::Conflict(_) => 409,
            AdminError::Internal(Error::Store(e)) if e.is_unavailable() => 503,
            AdminError::Internal(_) => 500,
        }
    }

    /// Error code for the response body.
    pub fn code(&self) -> &'static str {
        match self.status() {
            400 => "invalid_request",
            404 => "not_found",
            409 => "conflict",
            503 => "temporarily_unavailable",
            _ => "server_error",
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AdminError::NotFound(what),
            StoreError::Invalid(why) => AdminError::Invalid(why.into()),
            other => AdminError::Internal(Error::Store(other)),
        }
    }
}

fn random_b64(len: usize) -> Result<String, AdminError> {
    Ok(crate::mint::random_b64(len)?)
}

/// A new client id: 16 random bytes in base64url, never starting with `-`, which a command
/// line takes for an option (`tokengate client rotate-secret -dm7k…` was refused as an unknown
/// flag). One draw in 64 starts with it and is drawn again.
fn new_client_id() -> Result<String, AdminError> {
    loop {
        let id = random_b64(16)?;
        if !id.starts_with('-') {
            return Ok(id);
        }
    }
}

fn event(name: &str, client_id: Option<&str>, now: i64, request_id: Option<&str>) -> AuditEvent {
    AuditEvent {
        time: now,
        event: name.into(),
        client_id: client_id.map(String::from),
        outcome: "success".into(),
        request_id: request_id.map(String::from),
        ..AuditEvent::default()
    }
}

/// The client's JWK Set: required for `private_key_jwt`, where it must hold public
/// asymmetric keys only, and refused for every other method.
fn checked_jwks(
    auth_method: AuthMethod,
    jwks: Option<String>,
) -> Result<Option<String>, AdminError> {
    Ok(match (auth_method, jwks) {
        (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
            let set = JwkSet::from_json(jwks.as_bytes())
                .map_err(|e| AdminError::Invalid(format!("jwks: {}", e.reason())))?;
            if set.keys().is_empty()
                || set
                    .keys()
                    .iter()
                    .any(|k| k.is_private() || k.is_symmetric())
            {
                return Err(AdminError::Invalid(
                    "jwks must hold public asymmetric keys only".into(),
                ));
            }
            Some(jwks)
        }
        (AuthMethod::PrivateKeyJwt, None) => {
            return Err(AdminError::Invalid("private_key_jwt needs a jwks".into()))
        }
        (_, Some(_)) => {
            return Err(AdminError::Invalid(
                "a jwks is only for private_key_jwt clients".into(),
            ))
        }
        (_, None) => None,
    })
}

impl Service {
    /// Registers a client and returns its credentials.
    pub async fn create_client(
        &self,
        new: NewClient,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<Credentials, AdminError> {
        if new.name.trim().is_empty() {
            return Err(AdminError::Invalid("the name is empty".into()));
        }
        let auth_method = new.auth_method.unwrap_or(AuthMethod::ClientSecretBasic);
        crate::redirect_uri::check_all(&new.redirect_uris).map_err(AdminError::Invalid)?;
        if auth_method == AuthMethod::Public && new.redirect_uris.is_empty() {
            return Err(AdminError::Invalid(
                "a public client needs a redirect URI: it can only sign users in".into(),
            ));
        }
        let jwks = checked_jwks(auth_method, new.jwks)?;
        let client_id = new_client_id()?;
        let secret = if auth_method.uses_secret() {
            Some(Zeroizing::new(random_b64(32)?))
        } else {
            None
        };
        let client = Client {
            client_id: client_id.clone(),
            name: new.name,
            secret_hash: secret
                .as_ref()
                .map(|s| store::hash_secret(self.pepper.as_slice(), s.as_bytes())),
            auth_method,
            auth_method_pinned: new.auth_method.is_some(),
            scopes: new.scopes,
            audiences: new.audiences,
            jwks,
            disabled: false,
            created_at: now,
            redirect_uris: new.redirect_uris,
            first_party: new.first_party,
        };
        self.store.create_client(&client).await?;
        self.client_changed(&client_id);
        // How the client authenticates and where its users' codes may be sent belong in
        // the tamper-evident record of its registration.
        let mut created = event("client.created", Some(&client_id), now, request_id);
        let mut detail = serde_json::Map::new();
        detail.insert("auth_method".into(), auth_method.as_str().into());
        detail.insert(
            "auth_method_pinned".into(),
            client.auth_method_pinned.into(),
        );
        detail.insert("redirect_uris".into(), client.redirect_uris.clone().into());
        detail.insert("first_party".into(), client.first_party.into());
        created.detail = Some(detail);
        self.audit(&created).await?;
        Ok(Credentials {
            client_id,
            client_secret: secret,
        })
    }

    /// Replaces a client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<Credentials, AdminError> {
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or(AdminError::NotFound("client"))?;
        if !client.auth_method.uses_secret() {
            return Err(AdminError::Conflict(
                if client.auth_method == AuthMethod::Public {
                    "the client is public and has no secret"
                } else {
                    "the client authenticates with private_key_jwt and has no secret"
                },
            ));
        }
        let secret = Zeroizing::new(random_b64(32)?);
        let hash = store::hash_secret(self.pepper.as_slice(), secret.as_bytes());
        self.store
            .set_client_secret_hash(client_id, Some(&hash))
            .await?;
        self.client_changed(client_id);
        self.audit(&event(
            "client.secret_rotated",
            Some(client_id),
            now,
            request_id,
        ))
        .await?;
        Ok(Credentials {
            client_id: client_id.to_owned(),
            client_secret: Some(secret),
        })
    }

    /// Disables or re-enables a client; returns it as stored after the change. Disabling
    /// also revokes every token the client holds (a disabled client's tokens would otherwise
    /// stay good at every gateway and in introspection until they expire); re-enabling
    /// brings none of them back.
    pub async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<Client, AdminError> {
        // Disabled first, so that no token is issued to it after the revocation below.
        self.store.set_client_disabled(client_id, disabled).await?;
        self.client_changed(client_id);
        let name = if disabled {
            "client.disabled"
        } else {
            "client.enabled"
        };
        self.audit(&event(name, Some(client_id), now, request_id))
            .await?;
        if disabled {
            self.revoke_tokens(RevokeBy::Client(client_id.to_owned()), now, request_id)
                .await?;
        }
        self.store
            .client(client_id)
            .await?
            .ok_or(AdminError::NotFound("client"))
    }

    /// Deletes a client and revokes every token it holds. The token records stay (they are
    /// how every node learns of the revocation, and what the audit trail refers to). The
    /// client is disabled first and deleted only after every node's client cache has let it
    /// go ([`crate::clients::FRESH_FOR`] and a second), its tokens revoked before and after:
    /// a token issued meanwhile by a request that authenticated just before is revoked too.
    pub async fn delete_client(
        &self,
        client_id: &str,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<(), AdminError> {
        self.store.set_client_disabled(client_id, true).await?;
        self.client_changed(client_id);
        self.revoke_tokens(RevokeBy::Client(client_id.to_owned()), now, request_id)
            .await?;
        tokio::time::sleep(crate::clients::FRESH_FOR + std::time::Duration::from_secs(1)).await;
        let late = store::unix_now();
        self.store.delete_client(client_id).await?;
        self.client_changed(client_id);
        self.audit(&event("client.deleted", Some(client_id), late, request_id))
            .await?;
        self.revoke_tokens(RevokeBy::Client(client_id.to_owned()), late, request_id)
            .await?;
        Ok(())
    }

    /// Starts a rotation: a pending key of `key_use`, published now, active after the JWKS
    /// max-age. Returns its record.
    pub async fn rotate_key(
        &self,
        key_use: KeyUse,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<KeyRecord, AdminError> {
        let mut ring = KeyRing::load(&self.store, self.master(), &self.settings.policy).await?;
        let kid = ring
            .rotate(
                &self.store,
                self.master(),
                key_use,
                now,
                self.settings.jwks_max_age,
            )
            .await?;
        drop(ring);
        self.reload_ring().await?;
        self.announce(Change::Keys);
        self.audit(&key_event("key.rotated", &kid, now, request_id))
            .await?;
        self.store
            .key(&kid)
            .await?
            .ok_or(AdminError::NotFound("key"))
    }

    /// Forgets a changed client here and tells the other nodes to.
    fn client_changed(&self, client_id: &str) {
        self.clients.forget(client_id);
        self.announce(Change::Client {
            client_id: client_id.to_owned(),
        });
    }

    /// Revokes tokens; returns how many were newly revoked.
    pub async fn revoke_tokens(
        &self,
        by: RevokeBy,
        now: i64,
        request_id: Option<&str>,
    ) -> Result<u64, AdminError> {
        let mut audit = event("token.revoked", None, now, request_id);
        let count = match &by {
            RevokeBy::Jti(jti) => {
                audit.jti = Some(jti.clone());
                let newly = self.store.revoke_token(jti, now).await?;
                if let Some(token) = self.store.token(jti).await? {
                    self.revocations.revoke_jti(jti, token.expires_at);
                    self.announce(Change::Revoked {
                        jti: jti.clone(),
                        expires_at: token.expires_at,
                    });
                }
                u64::from(newly)
            }
            RevokeBy::Client(id) => {
                audit.client_id = Some(id.clone());
                self.revocations.revoke_client(id, now);
                let count = self.store.revoke_by_client(id, now).await?;
                self.store
                    .revoke_refresh_families_of(Some(id), None, now)
                    .await?;
                self.store.void_codes_of(Some(id), None, now).await?;
                self.announce(Change::ClientRevoked {
                    client_id: id.clone(),
                    at: now,
                });
                count
            }
            RevokeBy::Subject(sub) => {
                audit.subject = Some(sub.clone());
                self.revocations.revoke_subject(sub, now);
                let count = self.store.revoke_by_subject(sub, now).await?;
                self.store
                    .revoke_refresh_families_of(None, Some(sub), now)
                    .await?;
                self.store.void_codes_of(None, Some(sub), now).await?;
                self.announce(Change::SubjectRevoked {
                    subject: sub.clone(),
                    at: now,
                });
                count
            }
        };
        audit.reason = Some(format!("admin: {count} revoked"));
        self.audit(&audit).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_ids_never_start_with_a_dash() {
        // 2,000 draws: without the redraw, about 31 would start with `-`.
        for _ in 0..2000 {
            let id = super::new_client_id().unwrap();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22, "{id}");
        }
    }
}
