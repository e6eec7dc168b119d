//! Minting RFC 9068 JWT access tokens, and recording them.

use jose::jwe::KeyManagement;
use jose::{jwt, Jwk};
use serde_json::{Map, Value};
use store::{IssuedToken, Store};

use crate::error::{Error, Result};
use crate::keyring::KeyRing;

/// The `typ` header of a JWT access token (RFC 9068 §2.1).
pub const AT_JWT: &str = "at+jwt";

/// Whom an access token is encrypted to (a nested JWT: the signed token inside a JWE).
#[derive(Debug)]
pub enum EncryptTo {
    /// The ring's active encryption key, with the policy's algorithms: a token only the
    /// service itself (and its gateways sharing the key) can read.
    Own,
    /// The audience's public key. Key management is the key's `alg` when that names a JWE
    /// algorithm, else the policy's; content encryption is the policy's.
    Key(std::sync::Arc<Jwk>),
}

/// What a token is minted for: the outcome of a grant after client authentication and
/// policy.
#[derive(Debug)]
pub struct Grant {
    /// `iss`: the token service's issuer identifier.
    pub issuer: String,
    /// `client_id`.
    pub client_id: String,
    /// `sub`: the resource owner, or the client itself for client_credentials.
    pub subject: String,
    /// `aud`: the resource server (RFC 8707 `resource`).
    pub audience: String,
    /// `scope` tokens (RFC 6749 §3.3); the claim is omitted when empty.
    pub scope: Vec<String>,
    /// Seconds from `iat` to `exp`: at least 1, at most the policy's `max_token_lifetime`.
    pub lifetime: u64,
    /// Encrypt the token, and to whom; `None` for a plain signed token.
    pub encrypt: Option<EncryptTo>,
    /// RFC 9449 `cnf.jkt`: the thumbprint of the DPoP key the token is bound to.
    pub jkt: Option<String>,
    /// Claims about a signed-in user (`auth_time`, claims copied from the provider); the
    /// registered claims above take precedence over any of the same name.
    pub user_claims: Map<String, Value>,
}

impl Grant {
    /// A grant with no scope, a lifetime of 300 s, and no encryption.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Grant {
        Grant {
            issuer: issuer.into(),
            client_id: client_id.into(),
            subject: subject.into(),
            audience: audience.into(),
            scope: Vec::new(),
            lifetime: 300,
            encrypt: None,
            jkt: None,
            user_claims: Map::new(),
        }
    }

    /// Sets the scope tokens.
    pub fn scope<S: Into<String>>(mut self, scope: impl IntoIterator<Item = S>) -> Grant {
        self.scope = scope.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the lifetime in seconds.
    pub fn lifetime(mut self, seconds: u64) -> Grant {
        self.lifetime = seconds;
        self
    }

    /// Encrypts the token.
    pub fn encrypt(mut self, to: EncryptTo) -> Grant {
        self.encrypt = Some(to);
        self
    }

    /// Binds the token to a DPoP key (RFC 9449 §6: `cnf.jkt`).
    pub fn bind(mut self, jkt: impl Into<String>) -> Grant {
        self.jkt = Some(jkt.into());
        self
    }
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The compact JWS, or JWE when encrypted.
    pub token: String,
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// The kid of the signing key.
    pub kid: String,
    /// The claims set that was signed.
    pub claims: Map<String, Value>,
}

/// Mints an RFC 9068 access token at `now` (unix seconds): header `typ: "at+jwt"` and the
/// signing key's `kid`; claims `iss`, `sub`, `aud`, `exp`, `iat`, `jti` (128 random bits,
/// base64url), `client_id` and `scope` (space-separated, omitted when empty). Signed with the
/// ring's active signing key; when [`Grant::encrypt`] is set, then encrypted with
/// `cty: "JWT"` (RFC 7519 §5.2).
pub fn mint(ring: &KeyRing, grant: &Grant, now: i64) -> Result<Minted> {
    check(ring, grant)?;
    let jti = random_jti()?;
    let lifetime = i64::try_from(grant.lifetime).map_err(|_| Error::InvalidGrant("lifetime"))?;
    let expires_at = now
        .checked_add(lifetime)
        .ok_or(Error::InvalidGrant("lifetime"))?;
    let mut claims = grant.user_claims.clone();
    for name in ["nbf", "cnf", "scope"] {
        claims.remove(name);
    }
    claims.insert("iss".into(), grant.issuer.clone().into());
    claims.insert("sub".into(), grant.subject.clone().into());
    claims.insert("aud".into(), grant.audience.clone().into());
    claims.insert("exp".into(), expires_at.into());
    claims.insert("iat".into(), now.into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("client_id".into(), grant.client_id.clone().into());
    if !grant.scope.is_empty() {
        claims.insert("scope".into(), grant.scope.join(" ").into());
    }
    if let Some(jkt) = &grant.jkt {
        claims.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
    }

    let key = ring.active_signing();
    let kid = key
        .kid()
        .ok_or(Error::BadKey("the signing key has no kid"))?
        .to_owned();
    let alg = ring.signing_alg();
    let policy = ring.policy();
    let token = match &grant.encrypt {
        None => jwt::sign(&claims, key, alg, Some(AT_JWT))?,
        Some(to) => {
            let (to_key, km) = match to {
                EncryptTo::Own => (ring.encryption_key(), policy.encryption_alg),
                EncryptTo::Key(k) => {
                    let km = k
                        .alg()
                        .and_then(|a| a.parse::<KeyManagement>().ok())
                        .unwrap_or(policy.encryption_alg);
                    (k.as_ref(), km)
                }
            };
            jwt::sign_encrypted(
                &claims,
                key,
                alg,
                Some(AT_JWT),
                to_key,
                km,
                policy.encryption_enc,
            )?
        }
    };
    Ok(Minted {
        token,
        jti,
        issued_at: now,
        expires_at,
        kid,
        claims,
    })
}

impl Minted {
    /// What the store keeps of this token (for introspection and revocation).
    pub fn record_of(&self, grant: &Grant) -> IssuedToken {
        IssuedToken {
            jti: self.jti.clone(),
            client_id: grant.client_id.clone(),
            subject: grant.subject.clone(),
            audience: grant.audience.clone(),
            scope: grant.scope.join(" "),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            revoked_at: None,
        }
    }
}

/// Records a minted token (`jti`, client, subject, audience, scope, `iat`, `exp`) so it can
/// be introspected and revoked. [`store::StoreError::Conflict`] if the jti was recorded
/// before.
pub async fn record(store: &Store, minted: &Minted, grant: &Grant) -> Result<()> {
    store.record_token(&minted.record_of(grant)).await?;
    Ok(())
}

fn check(ring: &KeyRing, grant: &Grant) -> Result<()> {
    if grant.issuer.is_empty() {
        return Err(Error::InvalidGrant("empty issuer"));
    }
    if grant.audience.is_empty() {
        return Err(Error::InvalidGrant("empty audience"));
    }
    if grant.subject.is_empty() {
        return Err(Error::InvalidGrant("empty subject"));
    }
    if grant.client_id.is_empty() {
        return Err(Error::InvalidGrant("empty client_id"));
    }
    if grant.lifetime == 0 || grant.lifetime > ring.policy().max_token_lifetime {
        return Err(Error::InvalidGrant(
            "lifetime must be between 1 second and the policy's max_token_lifetime",
        ));
    }
    if !grant.scope.iter().all(|s| store::is_scope_token(s)) {
        return Err(Error::InvalidGrant(
            "a scope token is empty or has a bad character",
        ));
    }
    Ok(())
}

/// 128 random bits, base64url without padding.
pub(crate) fn random_jti() -> Result<String> {
    random_b64(16)
}

/// `len` random bytes, base64url without padding: jtis, client ids and secrets, admin tokens.
pub fn random_b64(len: usize) -> Result<String> {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(jose::b64::encode(bytes))
}
