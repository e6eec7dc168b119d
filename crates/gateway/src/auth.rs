//! Authentication of a request: the token from `Authorization`, the verified-token cache,
//! decryption and signature checks against the route's issuers, then the route's own rules
//! (audience, time, claims, revocation, DPoP; scopes are the authorize phase's). Every refusal is a [`Denial`] with a stable
//! code for logs and audit, and an RFC 6750 description for the client.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName};
use jose::jwe::DecryptOptions;
use jose::jwt::{self, Claims, Validation};
use jose::{ErrorCode, JwkSet};
use oauth::dpop;
use oauth::{KeyRing, Revocations};
use serde_json::Value;

use crate::cache::{self, TokenCache};
use crate::keys::{Issuer, KeySource};
use crate::metrics::RouteMetrics;
use crate::replay::FirstUse;

/// Longest token read from a header; a larger one is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What the upstream receives in place of the client's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardToken {
    /// No token: the upstream trusts the forwarded claim headers.
    None,
    /// The client's own `Authorization` header.
    Original,
    /// A 60-second token signed by tokengate carrying the verified claims (phantom token).
    Internal,
}

/// A route's token rules.
#[derive(Debug)]
pub struct RouteAuth {
    /// Issuers whose tokens the route accepts.
    pub issuers: Vec<Arc<Issuer>>,
    /// The `aud` the token must contain.
    pub audience: String,
    /// Scopes the token must carry (all of them).
    pub required_scopes: Vec<String>,
    /// Claims the token must carry.
    pub required_claims: Vec<String>,
    /// Claim → upstream header.
    pub forward_claims: Vec<(String, HeaderName)>,
    /// What replaces the client's token upstream.
    pub forward_token: ForwardToken,
    /// Use the verified-token cache.
    pub token_cache: bool,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway: u64,
    /// Authorization rules (`[[routes.auth.rules]]`), in order; none: the scopes alone.
    pub rules: Vec<crate::authorize::AuthRule>,
    /// Where this route's token checks are counted: set by [`crate::Gateway::new`] from the
    /// shared metrics (whatever a builder puts here is replaced); `None` counts nothing.
    pub metrics: Option<RouteMetrics>,
}

/// A verified token: what the cache holds and the rest of the pipeline reads.
#[derive(Debug)]
pub struct Verified {
    /// The name of the issuer that verified it.
    pub issuer: String,
    /// Issued by the built-in token service, whose revocations this node knows.
    pub own: bool,
    /// The claims.
    pub claims: Claims,
    /// `exp`.
    pub expires_at: i64,
    /// `nbf`.
    pub not_before: Option<i64>,
    /// `iat` (0 when absent).
    pub issued_at: i64,
    /// Its scopes (`scope` string or `scp` array).
    pub scopes: Vec<String>,
    /// `cnf.jkt`, for DPoP-bound tokens.
    pub jkt: Option<String>,
    /// The internal token made for it last: its audience, the token, its expiry. Reused
    /// while fresh and only for the same audience (one token may serve several routes).
    pub internal: Mutex<Option<(String, String, i64)>>,
}

impl Verified {
    /// Claims that cannot be read refuse the token, as verification would.
    fn new(issuer: &Issuer, claims: Claims) -> Result<Verified, Denial> {
        // `scope` comes from the verification pass, and an absent `cnf` is known there too:
        // the full claims map is built only for tokens that need it (`scp`, `cnf`).
        let scopes = match claims.scope() {
            Some(s) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => match claims.get("scp").map_err(|e| rejected(&e))? {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            },
        };
        let jkt = match claims.get("cnf").map_err(|e| rejected(&e))? {
            None => None,
            Some(cnf) => Some(dpop_thumbprint(cnf)?),
        };
        Ok(Verified {
            issuer: issuer.name.clone(),
            own: matches!(issuer.keys, KeySource::Own(_)),
            expires_at: claims.exp().unwrap_or(i64::MIN),
            not_before: claims.nbf(),
            issued_at: claims.iat().unwrap_or(0),
            scopes,
            jkt,
            claims,
            internal: Mutex::new(None),
        })
    }

    /// Whether the token is revoked, as far as this node knows: only the built-in
    /// issuer's tokens can be (other issuers' revocations are theirs).
    pub fn is_revoked(&self, revocations: &oauth::Revocations) -> bool {
        self.own
            && revocations.is_revoked(
                self.claims.jti().unwrap_or_default(),
                self.claims.client_id(),
                self.claims.sub(),
                self.issued_at,
            )
    }

    /// A claim as text: strings as they are, arrays of strings joined by spaces, other
    /// values as JSON; `None` when absent or null.
    ///
    /// # Errors
    /// A [`Denial`] of the token when its claims cannot be read ([`Claims::get`]).
    pub fn claim_text(&self, name: &str) -> Result<Option<String>, Denial> {
        let Some(value) = self.claims.get(name).map_err(|e| rejected(&e))? else {
            return Ok(None);
        };
        Ok(match value {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }
}

/// The key a `cnf` confirmation binds the token to. Only DPoP's `jkt` (RFC 9449 §6) can be
/// enforced here; a token bound to anything else or to more (an mTLS certificate's
/// `x5t#S256`, RFC 8705, beside `jkt` or alone, or a malformed `cnf`, `null` included) is
/// refused: accepting it as a bearer token would drop the binding
/// its issuer asked for.
fn dpop_thumbprint(cnf: &Value) -> Result<String, Denial> {
    let only_jkt = match cnf {
        // A `jkt` beside another confirmation would drop that one.
        Value::Object(members) if members.len() == 1 => members.get("jkt"),
        _ => None,
    };
    match only_jkt {
        Some(Value::String(jkt)) if !jkt.is_empty() => Ok(jkt.clone()),
        _ => Err(Denial::invalid(
            "ERR_GATEWAY_UNSUPPORTED_BINDING",
            "the token is bound (cnf) to a key other than a DPoP key (cnf.jkt), which this gateway cannot check",
        )),
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No token was presented (401 without an error code, RFC 6750 §3.1).
    MissingToken,
    /// The credentials are malformed (400 `invalid_request`).
    InvalidRequest(String),
    /// The token is invalid (401 `invalid_token`).
    InvalidToken {
        /// Stable code, e.g. `ERR_JWT_EXPIRED`.
        code: &'static str,
        /// For the client.
        description: String,
    },
    /// A DPoP-bound token without a good proof, or a DPoP proof for a token that is not bound
    /// (401, `invalid_dpop_proof` when presented with the DPoP scheme; RFC 9449 §7.1).
    InvalidDpop(String),
    /// A required scope is missing (403 `insufficient_scope`).
    InsufficientScope {
        /// The scopes the route requires.
        scope: String,
    },
    /// The issuer's keys cannot be fetched (503).
    KeysUnavailable(String),
    /// State shared by the nodes that this check needs cannot be read (503): the revocation
    /// list is older than `[server] max_revocation_staleness`, or Redis does not answer the
    /// DPoP replay check and `[redis] dpop_on_unavailable = "deny"`.
    StateUnavailable(SharedState),
    /// No authorization rule lets the token do this request (403 `access_denied`); which
    /// rule refused, for the operator's log only.
    AccessDenied(String),
}

impl Denial {
    fn invalid(code: &'static str, description: impl Into<String>) -> Denial {
        Denial::InvalidToken {
            code,
            description: description.into(),
        }
    }

    /// The stable code for logs and audit.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::MissingToken => "ERR_GATEWAY_NO_TOKEN",
            Denial::InvalidRequest(_) => "ERR_GATEWAY_BAD_CREDENTIALS",
            Denial::InvalidToken { code, .. } => code,
            Denial::InvalidDpop(_) => "ERR_GATEWAY_DPOP",
            Denial::InsufficientScope { .. } => "ERR_GATEWAY_INSUFFICIENT_SCOPE",
            Denial::KeysUnavailable(_) => "ERR_GATEWAY_KEYS_UNAVAILABLE",
            Denial::StateUnavailable(SharedState::Revocations) => "ERR_GATEWAY_REVOCATIONS_STALE",
            Denial::StateUnavailable(SharedState::DpopReplay) => {
                "ERR_GATEWAY_DPOP_REPLAY_UNAVAILABLE"
            }
            Denial::AccessDenied(_) => "ERR_GATEWAY_ACCESS_DENIED",
        }
    }
}

/// Shared state a check could not read ([`Denial::StateUnavailable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    /// The built-in issuer's revocation list: the store was not read for too long.
    Revocations,
    /// The DPoP proofs seen, in Redis.
    DpopReplay,
}

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// The token from the `Authorization` header.
pub fn extract(headers: &HeaderMap) -> Result<(Scheme, &str), Denial> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denial::MissingToken);
    };
    if values.next().is_some() {
        return Err(Denial::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Denial::InvalidRequest("the Authorization header is not text".into()))?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        // Another scheme (Basic, …) carries no token for us.
        return Err(Denial::MissingToken);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Denial::InvalidRequest(
            "the Authorization header has no token".into(),
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Denial::invalid(
            "ERR_GATEWAY_TOKEN_TOO_LONG",
            "the token is too long",
        ));
    }
    Ok((scheme, token))
}

/// Keys for one verification, held for its duration.
enum KeyHandle {
    Ring(Arc<KeyRing>),
    Set(Arc<JwkSet>),
}

impl KeyHandle {
    fn verify_keys(&self) -> &JwkSet {
        match self {
            KeyHandle::Ring(r) => r.jwks(),
            KeyHandle::Set(s) => s,
        }
    }
}

async fn issuer_keys(issuer: &Issuer, refetch: bool) -> Result<KeyHandle, Denial> {
    match &issuer.keys {
        KeySource::Own(service) => Ok(KeyHandle::Ring(service.ring())),
        KeySource::Static(set) => Ok(KeyHandle::Set(Arc::clone(set))),
        KeySource::Remote(remote) => {
            let keys = if refetch {
                remote.refetch_for_unknown_kid().await
            } else {
                remote.keys().await
            };
            keys.map(KeyHandle::Set).map_err(|e| {
                Denial::KeysUnavailable(format!(
                    "the keys of issuer {} are unavailable: {e}",
                    issuer.name
                ))
            })
        }
    }
}

fn decrypt_keys(issuer: &Issuer) -> Option<KeyHandle> {
    match (&issuer.keys, &issuer.decrypt) {
        (KeySource::Own(service), _) => Some(KeyHandle::Ring(service.ring())),
        (_, Some(set)) => Some(KeyHandle::Set(Arc::clone(set))),
        _ => None,
    }
}

impl KeyHandle {
    fn decryption(&self) -> &JwkSet {
        match self {
            KeyHandle::Ring(r) => r.decryption_keys(),
            KeyHandle::Set(s) => s,
        }
    }
}

fn validation(issuer: &Issuer, leeway: u64, now: i64) -> Validation {
    let mut v = Validation::new()
        .issuer(issuer.issuer.clone())
        .waive_audience()
        .leeway(leeway)
        .at_time(now);
    v = if issuer.algorithms.is_empty() {
        v.algorithms_from_key()
    } else {
        v.algorithms(issuer.algorithms.iter().copied())
    };
    if let Some(typ) = &issuer.typ {
        v = v.typ(typ.clone());
    }
    v
}

/// A token refused by `jose`: its stable code, and its reason for the client.
pub(crate) fn rejected(e: &jose::Error) -> Denial {
    Denial::invalid(e.code().as_str(), e.reason().to_owned())
}

/// Verifies a token against the route's issuers: signature (after decryption for a
/// 5-segment JWE), `iss`, `exp`/`nbf`, `typ`. The route's own rules come after.
pub async fn verify(auth: &RouteAuth, token: &str, now: i64) -> Result<Verified, Denial> {
    match token.bytes().filter(|b| *b == b'.').count() {
        2 => verify_signed(auth, token, now).await,
        4 => verify_encrypted(auth, token, now).await,
        _ => Err(Denial::invalid(
            "ERR_JWT_INVALID",
            "the token is not a JWS or JWE",
        )),
    }
}

async fn verify_signed(auth: &RouteAuth, token: &str, now: i64) -> Result<Verified, Denial> {
    // A token whose claims are malformed (a non-string `iss` among them) is refused here with
    // the reason verification would give.
    let iss = jwt::unverified_issuer(token).map_err(|e| rejected(&e))?;
    let issuer = auth
        .issuers
        .iter()
        .find(|i| Some(i.issuer.as_str()) == iss.as_deref())
        .ok_or_else(|| {
            Denial::invalid(
                "ERR_GATEWAY_UNTRUSTED_ISSUER",
                "the token's issuer is not trusted here",
            )
        })?;
    let v = validation(issuer, auth.leeway, now);
    let keys = issuer_keys(issuer, false).await?;
    let claims = match jwt::verify(token, keys.verify_keys(), &v) {
        Ok(jwt) => jwt.claims,
        Err(e)
            if e.code() == ErrorCode::NoMatchingKey
                && matches!(issuer.keys, KeySource::Remote(_)) =>
        {
            // A kid we have not seen: the issuer may have rotated. One refetch (single
            // flight, then cooldown), one retry.
            let keys = issuer_keys(issuer, true).await?;
            jwt::verify(token, keys.verify_keys(), &v)
                .map_err(|e| rejected(&e))?
                .claims
        }
        Err(e) => return Err(rejected(&e)),
    };
    Verified::new(issuer, claims)
}

async fn verify_encrypted(auth: &RouteAuth, token: &str, now: i64) -> Result<Verified, Denial> {
    let mut last = Denial::invalid(
        "ERR_GATEWAY_CANNOT_DECRYPT",
        "the token is encrypted to a key this route does not hold",
    );
    for issuer in &auth.issuers {
        let Some(decrypt) = decrypt_keys(issuer) else {
            continue;
        };
        let v = validation(issuer, auth.leeway, now);
        let keys = issuer_keys(issuer, false).await?;
        match jwt::decrypt_and_verify(
            token,
            decrypt.decryption(),
            &DecryptOptions::from_key(),
            keys.verify_keys(),
            &v,
        ) {
            Ok(jwt) => return Verified::new(issuer, jwt.claims),
            Err(e) => last = rejected(&e),
        }
    }
    Err(last)
}

/// Everything authentication needs besides the route.
#[derive(Debug)]
pub struct Authenticator {
    /// The verified-token cache.
    pub cache: Arc<TokenCache>,
    /// Revocations of the built-in issuer's tokens.
    pub revocations: Arc<Revocations>,
    /// DPoP proof `jti`s seen (shared by the gateways of successive reloads).
    pub replay: Arc<crate::replay::ReplayCache>,
    /// DPoP `iat` window, seconds.
    pub dpop_window: u64,
}

/// The request facts DPoP checks need.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// Whether the request came over TLS (the scheme of the URL the client addressed).
    pub tls: bool,
    /// The authority the client addressed.
    pub authority: Option<&'a str>,
    /// The path.
    pub path: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// Now, unix seconds.
    pub now: i64,
}

impl Authenticator {
    /// Authenticates a request for a route with token rules, and counts the outcome (valid, or
    /// the refusal's stable code) on the route's metrics.
    pub async fn authenticate(
        &self,
        auth: &RouteAuth,
        facts: RequestFacts<'_>,
    ) -> Result<(Arc<Verified>, cache::TokenHash), Denial> {
        let outcome = self.verify_request(auth, facts).await;
        if let Some(metrics) = &auth.metrics {
            metrics.verified(outcome.as_ref().map(|_| ()).map_err(Denial::code));
        }
        outcome
    }

    async fn verify_request(
        &self,
        auth: &RouteAuth,
        facts: RequestFacts<'_>,
    ) -> Result<(Arc<Verified>, cache::TokenHash), Denial> {
        let (scheme, token) = extract(facts.headers)?;
        let now = facts.now;
        let key = cache::hash(token);
        let cached = if auth.token_cache {
            self.cache.get(&key, now)
        } else {
            None
        };
        let verified = match cached {
            Some(v) => v,
            None => {
                let v = Arc::new(verify(auth, token, now).await?);
                if auth.token_cache {
                    self.cache.insert(key, Arc::clone(&v), now);
                }
                v
            }
        };
        let proof = self.check(auth, &verified, &key, scheme, token, facts)?;
        if let Some(proof) = proof {
            self.use_proof_once(&proof, facts.now).await?;
        }
        Ok((verified, key))
    }

    /// The proof's single use, across nodes when the replay cache is shared.
    async fn use_proof_once(&self, proof: &dpop::Proof, now: i64) -> Result<(), Denial> {
        let window = i64::try_from(self.dpop_window).unwrap_or(i64::MAX);
        let key = format!("{}:{}", proof.jkt, proof.jti);
        let expires_at = proof.iat.saturating_add(window).saturating_add(1);
        match self.replay.first_use(&key, expires_at, window, now).await {
            FirstUse::Fresh => Ok(()),
            FirstUse::Replayed => Err(Denial::InvalidDpop("the DPoP proof was used before".into())),
            FirstUse::Unavailable => Err(Denial::StateUnavailable(SharedState::DpopReplay)),
        }
    }

    fn check(
        &self,
        auth: &RouteAuth,
        v: &Verified,
        key: &cache::TokenHash,
        scheme: Scheme,
        token: &str,
        facts: RequestFacts<'_>,
    ) -> Result<Option<dpop::Proof>, Denial> {
        let now = facts.now;
        // The cache is shared by the routes: a token verified for one may come from an
        // issuer another does not trust.
        if !auth.issuers.iter().any(|i| i.name == v.issuer) {
            return Err(Denial::invalid(
                "ERR_GATEWAY_UNTRUSTED_ISSUER",
                "the token's issuer is not trusted here",
            ));
        }
        let leeway = i64::try_from(auth.leeway).unwrap_or(i64::MAX);
        if v.expires_at.saturating_add(leeway) <= now {
            return Err(Denial::invalid("ERR_JWT_EXPIRED", "the token has expired"));
        }
        if v.not_before
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(Denial::invalid(
                "ERR_JWT_NOT_YET_VALID",
                "the token is not valid yet",
            ));
        }
        if !v.claims.aud().contains(&auth.audience) {
            return Err(Denial::invalid(
                "ERR_GATEWAY_WRONG_AUDIENCE",
                "the token is not for this resource",
            ));
        }
        for name in &auth.required_claims {
            if !v.claims.contains(name).map_err(|e| rejected(&e))? {
                return Err(Denial::invalid(
                    "ERR_GATEWAY_MISSING_CLAIM",
                    format!("the token lacks the {name} claim"),
                ));
            }
        }
        if v.is_revoked(&self.revocations) {
            self.cache.remove(key);
            return Err(Denial::invalid(
                "ERR_GATEWAY_REVOKED",
                "the token has been revoked",
            ));
        }
        if v.own && self.revocations.is_stale() {
            return Err(Denial::StateUnavailable(SharedState::Revocations));
        }
        self.check_dpop(v, scheme, token, facts)
    }

    /// RFC 9449 §7: a bound token needs the `DPoP` scheme and a proof by its key for this
    /// request; an unbound token must not be presented as DPoP.
    fn check_dpop(
        &self,
        v: &Verified,
        scheme: Scheme,
        token: &str,
        facts: RequestFacts<'_>,
    ) -> Result<Option<dpop::Proof>, Denial> {
        let fail = Denial::InvalidDpop;
        match (&v.jkt, scheme) {
            (None, Scheme::Bearer) => Ok(None),
            (None, Scheme::Dpop) => Err(fail("the token is not DPoP-bound".into())),
            (Some(_), Scheme::Bearer) => Err(fail(
                "a DPoP-bound token must be presented with the DPoP scheme and a proof".into(),
            )),
            (Some(jkt), Scheme::Dpop) => {
                let mut proofs = facts.headers.get_all(crate::DPOP).iter();
                let proof = match (proofs.next(), proofs.next()) {
                    (Some(p), None) => p
                        .to_str()
                        .map_err(|_| fail("the DPoP header is not text".into()))?,
                    (None, _) => return Err(fail("the DPoP proof is missing".into())),
                    (Some(_), Some(_)) => return Err(fail("more than one DPoP header".into())),
                };
                // Only DPoP needs the URL the client addressed; built here, not per request.
                let url = format!(
                    "{}://{}{}",
                    if facts.tls { "https" } else { "http" },
                    facts.authority.unwrap_or("localhost"),
                    facts.path
                );
                let expect = dpop::Expect {
                    method: facts.method,
                    url: &url,
                    now: facts.now,
                    window: self.dpop_window,
                    access_token: Some(token),
                    nonces: None,
                };
                let proof = dpop::check(proof, &expect).map_err(|e| match e {
                    dpop::ProofError::Invalid(why) => fail(format!("invalid DPoP proof: {why}")),
                    dpop::ProofError::NonceRequired => fail("invalid DPoP proof: nonce".into()),
                })?;
                if proof.jkt != *jkt {
                    return Err(fail(
                        "the DPoP proof is signed by another key than the token is bound to".into(),
                    ));
                }
                // Its single use is checked last, by the caller (it may ask Redis).
                Ok(Some(proof))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dpop_binding_is_accepted_and_any_other_refuses_the_token() {
        let jkt = serde_json::json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
        assert_eq!(
            dpop_thumbprint(&jkt).unwrap(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        for other in [
            serde_json::json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
            serde_json::json!({ "jkt": 5 }),
            serde_json::json!({ "jkt": "" }),
            serde_json::json!("jkt"),
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!({ "jkt": "0ZcO", "x5t#S256": "bwcK" }),
        ] {
            let refused = dpop_thumbprint(&other).unwrap_err();
            assert_eq!(refused.code(), "ERR_GATEWAY_UNSUPPORTED_BINDING", "{other}");
        }
    }
}
