//! The token endpoint (RFC 6749 §3.2): `client_credentials` and token exchange (RFC 8693),
//! optionally DPoP-bound (RFC 9449).

use jose::jwt::{self, Claims, Validation};
use serde_json::{Map, Value};
use store::{AuditEvent, AuthMethod, Client, IssuedToken};

use crate::dpop::{self, ProofError};
use crate::form::Params;
use crate::mint::{mint, EncryptTo, Grant};
use crate::protocol::{invalid_request, ErrorKind, ErrorResponse, Request};
use crate::refresh::{FamilyOf, NewRefresh};
use crate::service::{paths, Audience, Service};

/// RFC 6749 §4.1.3 grant type.
pub const AUTHORIZATION_CODE: &str = "authorization_code";
/// RFC 6749 §6 grant type.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// How the audit log and the gateway's access log name a token (or an admin credential)
/// without holding it: the first 8 hex digits of its SHA-256.
pub fn token_hash_prefix(token: &str) -> String {
    hash_prefix(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// base64url of the SHA-256 of `text`: DPoP's `ath` (RFC 9449 §4.2) and PKCE's S256
/// challenge (RFC 7636 §4.2).
pub(crate) fn sha256_b64(text: &str) -> String {
    jose::b64::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ))
}

/// Lowercase hex of the SHA-256 of `secret`: how authorization codes and refresh tokens are
/// stored (256 random bits each, so a plain hash is as strong as a keyed one).
pub(crate) fn sha256_hex(secret: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`token_hash_prefix`] of a token whose SHA-256 is taken already.
pub fn hash_prefix(sha256: &[u8]) -> String {
    sha256.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Clock skew allowed on an exchanged token.
const EXCHANGE_LEEWAY: u64 = 30;

/// A successful token response: the JSON body and, when nonces are on, a fresh `DPoP-Nonce`.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The body (RFC 6749 §5.1); serve with `Cache-Control: no-store`.
    pub body: Value,
    /// A `DPoP-Nonce` header value.
    pub dpop_nonce: Option<String>,
}

/// The audience a request resolved to: declared, or (with no audiences declared) one the
/// client is registered for, under the default policy.
#[derive(Debug)]
pub(crate) enum Target<'a> {
    Declared(&'a Audience),
    Registered(String),
}

impl Target<'_> {
    pub(crate) fn id(&self) -> &str {
        match self {
            Target::Declared(a) => &a.id,
            Target::Registered(id) => id,
        }
    }
}

/// What a grant decided a token says, before it is minted.
pub(crate) struct Issuance<'s> {
    subject: String,
    target: Target<'s>,
    scope: Vec<String>,
    /// RFC 9449 `cnf.jkt`.
    jkt: Option<String>,
    /// The token never outlives this (an exchanged subject token's `exp`).
    not_after: Option<i64>,
    /// `auth_time` and the provider's claims, for a signed-in user.
    user_claims: Map<String, Value>,
    /// The redeemed authorization code's hash: its token's jti is noted on it once recorded.
    code_hash: Option<String>,
    /// The refresh token answered beside the access token, stored once that is recorded.
    refresh: Option<(String, NewRefresh)>,
}

impl Service {
    /// Handles a token request. Every outcome is an audit event (`token.issued` or
    /// `token.denied` with the reason); a token is answered only once it is recorded and
    /// audited.
    pub async fn token(&self, req: &Request<'_>, now: i64) -> Result<TokenResponse, ErrorResponse> {
        let mut event = crate::service::event("token.issued", req.request_id, now);
        match self.issue(req, now, &mut event).await {
            Ok((response, issued, after)) => {
                let jti = issued.jti.clone();
                // Recorded and audited in one group commit before the token leaves.
                let previous = after
                    .refresh
                    .as_ref()
                    .and_then(|(_, next)| next.previous().map(str::to_owned));
                if let Err(f) = self.recorder.record(issued, event).await {
                    // Nothing was issued: the refresh token this request spent works again.
                    self.unspend_refresh(previous.as_deref()).await;
                    return Err(ErrorResponse::ours(f.unavailable, f.code));
                }
                if let Some(code_hash) = after.code_hash {
                    self.code_redeemed(&code_hash, &jti, now).await?;
                }
                if let Some((_, next)) = after.refresh {
                    if let Err(e) = self.store_refresh(next, &jti, now).await {
                        self.unspend_refresh(previous.as_deref()).await;
                        return Err(e);
                    }
                }
                Ok(response)
            }
            Err(mut error) => {
                event.event = "token.denied".into();
                event.outcome = "failure".into();
                event.reason = Some(error.reason());
                // Queued, not awaited: a flood of bad requests must not become a flood of
                // synchronous writes. A denial whose row cannot be written is still a denial.
                self.denials.record(event);
                if error.kind == ErrorKind::UseDpopNonce && error.dpop_nonce.is_none() {
                    error.dpop_nonce = self.dpop_nonce(now);
                }
                Err(error)
            }
        }
    }

    async fn issue(
        &self,
        req: &Request<'_>,
        now: i64,
        event: &mut AuditEvent,
    ) -> Result<(TokenResponse, IssuedToken, Issuance<'_>), ErrorResponse> {
        let (client, params) = self
            .caller(req, paths::TOKEN, &["resource", "audience"], now, event)
            .await?;
        let grant_type = params.require("grant_type")?;
        let signs_users_in_only = client.auth_method == AuthMethod::Public || !client.first_party;
        if signs_users_in_only && grant_type != AUTHORIZATION_CODE && grant_type != REFRESH_TOKEN {
            let who = if client.first_party {
                "a public client"
            } else {
                "a client that registered itself"
            };
            return Err(ErrorResponse::new(
                ErrorKind::UnauthorizedClient,
                format!("{who} may use the authorization_code and refresh_token grants only"),
            ));
        }
        let issuance = match grant_type {
            AUTHORIZATION_CODE => self.code_issuance(req, &params, &client, now).await?,
            REFRESH_TOKEN => self.refresh_issuance(req, &params, &client, now).await?,
            "client_credentials" | TOKEN_EXCHANGE => {
                self.client_issuance(req, &params, &client, now, event)
                    .await?
            }
            other => {
                return Err(ErrorResponse::new(
                    ErrorKind::UnsupportedGrantType,
                    format!("grant_type {other} is not supported"),
                ))
            }
        };
        event.subject = Some(issuance.subject.clone());
        event.audience = Some(issuance.target.id().to_owned());
        let exchanged = grant_type == TOKEN_EXCHANGE;
        if exchanged {
            event.event = "token.exchanged".into();
        } else if grant_type == REFRESH_TOKEN {
            event.event = "token.refreshed".into();
        }
        let requested_type = exchanged.then(|| params.get("requested_token_type"));
        match self.mint_issuance(&issuance, &client, requested_type, now, event) {
            Ok((response, issued)) => Ok((response, issued, issuance)),
            Err(e) => {
                let previous = issuance.refresh.as_ref().and_then(|(_, n)| n.previous());
                self.unspend_refresh(previous).await;
                Err(e)
            }
        }
    }

    /// `client_credentials` (the client is the subject) and token exchange (the subject
    /// token's subject): the audience and scope come from the request.
    async fn client_issuance(
        &self,
        req: &Request<'_>,
        params: &Params,
        client: &Client,
        now: i64,
        event: &mut AuditEvent,
    ) -> Result<Issuance<'_>, ErrorResponse> {
        // `not_after`: an exchanged token never outlives its subject token.
        let (subject, cap, not_after) = if params.get("grant_type") == Some(TOKEN_EXCHANGE) {
            let (subject, cap, exp) = self.exchange(params, client, now).await?;
            (subject, cap, Some(exp))
        } else {
            (client.client_id.clone(), None, None)
        };
        event.subject = Some(subject.clone());
        let target = self.target(client, params)?;
        event.audience = Some(target.id().to_owned());
        let scope = resolve_scope(params.get("scope"), client, &target, cap.as_deref())?;
        let jkt = self.dpop_binding(req, now).await?;
        Ok(Issuance {
            subject,
            target,
            scope,
            jkt,
            not_after,
            user_claims: Map::new(),
            code_hash: None,
            refresh: None,
        })
    }

    /// `authorization_code` (RFC 6749 §4.1.3): the code says who, for what and which scopes.
    async fn code_issuance(
        &self,
        req: &Request<'_>,
        params: &Params,
        client: &Client,
        now: i64,
    ) -> Result<Issuance<'_>, ErrorResponse> {
        let jkt = self.dpop_binding(req, now).await?;
        let redeemed = self
            .redeem_code(params, client, jkt.as_deref(), now)
            .await?;
        let refresh = self.first_refresh(
            FamilyOf {
                code_hash: &redeemed.code_hash,
                client_id: &client.client_id,
                subject: &redeemed.subject,
                audience: &redeemed.audience,
                scope: &redeemed.scope,
                claims: &redeemed.user_claims,
                jkt: jkt.as_deref(),
            },
            now,
        )?;
        Ok(Issuance {
            subject: redeemed.subject,
            target: redeemed.target,
            scope: redeemed.scope,
            jkt,
            not_after: None,
            user_claims: redeemed.user_claims,
            code_hash: Some(redeemed.code_hash),
            refresh: Some(refresh),
        })
    }

    /// `refresh_token` (RFC 6749 §6): the family says who and for what; the token rotates.
    async fn refresh_issuance(
        &self,
        req: &Request<'_>,
        params: &Params,
        client: &Client,
        now: i64,
    ) -> Result<Issuance<'_>, ErrorResponse> {
        let jkt = self.dpop_binding(req, now).await?;
        let (fresh, refreshed) = self.refresh(params, client, jkt.as_deref(), now).await?;
        Ok(Issuance {
            subject: refreshed.family.subject,
            target: refreshed.target,
            scope: refreshed.scope,
            jkt,
            // The family's absolute lifetime bounds its access tokens too.
            not_after: Some(refreshed.family.expires_at),
            user_claims: refreshed.user_claims,
            code_hash: None,
            refresh: Some((fresh, refreshed.next)),
        })
    }

    /// Mints and answers the token an issuance describes. `exchanged`: for token exchange,
    /// the `requested_token_type`.
    fn mint_issuance(
        &self,
        issuance: &Issuance<'_>,
        client: &Client,
        exchanged: Option<Option<&str>>,
        now: i64,
        event: &mut AuditEvent,
    ) -> Result<(TokenResponse, IssuedToken), ErrorResponse> {
        let Issuance {
            subject,
            target,
            scope,
            jkt,
            not_after,
            user_claims,
            code_hash: _,
            refresh,
        } = issuance;
        let (lifetime, encrypt) = match target {
            Target::Declared(a) => (
                a.token_lifetime.unwrap_or(self.settings.token_lifetime),
                a.encrypt.as_ref().map(|e| match e {
                    EncryptTo::Own => EncryptTo::Own,
                    EncryptTo::Key(k) => EncryptTo::Key(k.clone()),
                }),
            ),
            Target::Registered(_) => (self.settings.token_lifetime, None),
        };
        let lifetime = match *not_after {
            None => lifetime,
            Some(exp) => match u64::try_from(exp.saturating_sub(now)) {
                Ok(left) if left > 0 => lifetime.min(left),
                _ => {
                    return Err(ErrorResponse::new(
                        ErrorKind::InvalidGrant,
                        "the subject token has expired",
                    ))
                }
            },
        };
        let mut grant = Grant::new(
            self.settings.issuer.clone(),
            client.client_id.clone(),
            subject.clone(),
            target.id(),
        )
        .scope(scope.iter().cloned())
        .lifetime(lifetime);
        grant.encrypt = encrypt;
        grant.jkt = jkt.clone();
        grant.user_claims = user_claims.clone();
        let minted = mint(&self.ring(), &grant, now)?;
        let issued = minted.record_of(&grant);
        event.jti = Some(minted.jti.clone());
        // What the gateway's access log names a token by (never the token itself).
        let mut detail = Map::new();
        detail.insert(
            "token_sha256".into(),
            token_hash_prefix(&minted.token).into(),
        );
        event.detail = Some(detail);

        let body = response_body(
            minted.token,
            grant.jkt.is_some(),
            lifetime,
            scope,
            refresh.as_ref().map(|(token, _)| token.as_str()),
            exchanged,
        );
        Ok((
            TokenResponse {
                body,
                dpop_nonce: self.dpop_nonce(now),
            },
            issued,
        ))
    }

    /// The audience: one `resource` (RFC 8707) or `audience` (RFC 8693) value, or, when none
    /// is named, the only audience the client may ask for.
    pub(crate) fn target<'s>(
        &'s self,
        client: &Client,
        params: &Params,
    ) -> Result<Target<'s>, ErrorResponse> {
        let mut named: Vec<&str> = params.all("resource");
        named.extend(params.all("audience"));
        named.sort_unstable();
        named.dedup();
        let invalid = |why: String| ErrorResponse::new(ErrorKind::InvalidTarget, why);
        let id = match named.as_slice() {
            // The only one there is: the client's only audience, or, for a client not
            // limited to some, the only declared one.
            [] => match (
                client.audiences.as_slice(),
                self.settings.audiences.as_slice(),
            ) {
                ([only], _) => only.as_str(),
                ([], [only]) => only.id.as_str(),
                _ => return Err(invalid("name the resource the token is for".into())),
            },
            [one] => *one,
            _ => {
                return Err(invalid(
                    "a token is for one resource; ask once per resource".into(),
                ))
            }
        };
        self.target_named(client, id)
    }

    /// The audience `id`, if the client may get tokens for it.
    pub(crate) fn target_named<'s>(
        &'s self,
        client: &Client,
        id: &str,
    ) -> Result<Target<'s>, ErrorResponse> {
        let invalid = |why: String| ErrorResponse::new(ErrorKind::InvalidTarget, why);
        if !client.audiences.is_empty() && !client.audiences.iter().any(|a| a == id) {
            return Err(invalid(format!("the client may not get tokens for {id}")));
        }
        if self.settings.audiences.is_empty() {
            if client.audiences.is_empty() {
                return Err(invalid(format!("the client may not get tokens for {id}")));
            }
            return Ok(Target::Registered(id.to_owned()));
        }
        self.settings
            .audiences
            .iter()
            .find(|a| a.id == id)
            .map(Target::Declared)
            .ok_or_else(|| invalid(format!("unknown resource {id}")))
    }

    /// The DPoP key to bind the token to, if the request carries a proof.
    async fn dpop_binding(
        &self,
        req: &Request<'_>,
        now: i64,
    ) -> Result<Option<String>, ErrorResponse> {
        let proof = match req.dpop.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            _ => {
                return Err(ErrorResponse::new(
                    ErrorKind::InvalidDpopProof,
                    "more than one DPoP header",
                ))
            }
        };
        let url = self.url(paths::TOKEN);
        let expect = dpop::Expect {
            method: "POST",
            url: &url,
            now,
            window: self.settings.dpop.window,
            access_token: None,
            nonces: self.nonces.as_ref(),
        };
        let proof = dpop::check(proof, &expect).map_err(|e| match e {
            ProofError::Invalid(why) => ErrorResponse::new(ErrorKind::InvalidDpopProof, why),
            ProofError::NonceRequired => {
                let mut e = ErrorResponse::new(
                    ErrorKind::UseDpopNonce,
                    "the DPoP proof must carry the server's nonce",
                );
                e.dpop_nonce = self.dpop_nonce(now);
                e
            }
        })?;
        let window = i64::try_from(self.settings.dpop.window).unwrap_or(i64::MAX);
        let fresh = self
            .store
            .use_jti(
                "dpop",
                &format!("{}:{}", proof.jkt, proof.jti),
                // A window longer than acceptance: every node purges with its own clock.
                proof
                    .iat
                    .saturating_add(window.saturating_mul(2))
                    .saturating_add(1),
            )
            .await?;
        if !fresh {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidDpopProof,
                "the DPoP proof was used before",
            ));
        }
        Ok(Some(proof.jkt))
    }

    /// RFC 8693: checks the subject token and returns its subject and, for our own tokens,
    /// the scopes it carries (the new token cannot widen them). The subject token must be an
    /// active token of ours or a valid token of a trusted issuer, with our issuer as
    /// audience (or the one configured for that issuer). A subject token that fails is
    /// `invalid_grant`; see docs/oauth.md for why not `invalid_request`.
    ///
    /// A token of ours may be exchanged only by the client it was issued to or by a client
    /// registered for its audience (the resource server that received it), so a leaked token
    /// cannot be laundered by any client. Tokens bound to a key (`cnf`) are refused: the new
    /// token would drop the binding. Returns the subject, the scope cap and the subject
    /// token's `exp`.
    async fn exchange(
        &self,
        params: &Params,
        client: &Client,
        now: i64,
    ) -> Result<(String, Option<Vec<String>>, i64), ErrorResponse> {
        let token = params.require("subject_token")?;
        match params.require("subject_token_type")? {
            ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE => {}
            _ => {
                return Err(invalid_request(
                    "subject_token_type must be access_token or jwt",
                ))
            }
        }
        if let Some(t) = params.get("requested_token_type") {
            if t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE {
                return Err(invalid_request(
                    "requested_token_type must be access_token or jwt",
                ));
            }
        }
        if params.get("actor_token").is_some() || params.get("actor_token_type").is_some() {
            return Err(invalid_request(
                "actor tokens (delegation) are not supported",
            ));
        }
        let bad = |why: &str| ErrorResponse::new(ErrorKind::InvalidGrant, why.to_owned());
        if let Some(claims) = self.read_own(token, now) {
            if self.active(&claims).await?.is_none() {
                return Err(bad("the subject token is revoked"));
            }
            if claims.contains("cnf").map_err(|e| unreadable(&e))? {
                return Err(bad("a DPoP-bound token cannot be exchanged"));
            }
            let holder = claims.client_id() == Some(client.client_id.as_str())
                || claims.aud().iter().any(|a| client.audiences.contains(a));
            if !holder {
                return Err(bad(
                    "the subject token was neither issued to this client nor for its audience",
                ));
            }
            let subject = claims
                .sub()
                .ok_or_else(|| bad("the subject token has no sub"))?;
            let scope = claims
                .scope()
                .map(|s| s.split(' ').map(String::from).collect())
                .unwrap_or_default();
            return Ok((subject.to_owned(), Some(scope), claims.exp().unwrap_or(now)));
        }
        let (_, unverified) = jwt::decode_unverified(token)
            .map_err(|_| bad("the subject token is not a JWT we can verify"))?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let trusted = self
            .settings
            .trusted_issuers
            .iter()
            .find(|t| t.issuer == iss)
            .ok_or_else(|| bad("the subject token is not from a trusted issuer"))?;
        let audience = trusted
            .audience
            .clone()
            .unwrap_or_else(|| self.settings.issuer.clone());
        let validation = Validation::new()
            .algorithms(trusted.algorithms.iter().copied())
            .issuer(trusted.issuer.clone())
            .audience(audience)
            .leeway(EXCHANGE_LEEWAY)
            .at_time(now);
        let verified: Claims = jwt::verify(token, &trusted.keys, &validation)
            .map_err(|e| bad(&format!("the subject token is invalid: {}", e.reason())))?
            .claims;
        if verified.contains("cnf").map_err(|e| unreadable(&e))? {
            return Err(bad("a key-bound (cnf) token cannot be exchanged"));
        }
        let subject = verified
            .sub()
            .ok_or_else(|| bad("the subject token has no sub"))?;
        Ok((subject.to_owned(), None, verified.exp().unwrap_or(now)))
    }
}

/// RFC 6749 §5.1 (and RFC 8693 §2.2.1 for an exchange, whose `requested_token_type` is
/// `exchanged`): the token response's body.
fn response_body(
    access_token: String,
    dpop: bool,
    lifetime: u64,
    scope: &[String],
    refresh_token: Option<&str>,
    exchanged: Option<Option<&str>>,
) -> Value {
    let mut body = Map::new();
    body.insert("access_token".into(), access_token.into());
    let token_type = if dpop { "DPoP" } else { "Bearer" };
    body.insert("token_type".into(), token_type.into());
    body.insert("expires_in".into(), lifetime.into());
    if !scope.is_empty() {
        body.insert("scope".into(), scope.join(" ").into());
    }
    if let Some(token) = refresh_token {
        body.insert("refresh_token".into(), token.into());
    }
    if let Some(requested) = exchanged {
        let issued = match requested {
            Some(JWT_TOKEN_TYPE) => JWT_TOKEN_TYPE,
            _ => ACCESS_TOKEN_TYPE,
        };
        body.insert("issued_token_type".into(), issued.into());
    }
    Value::Object(body)
}

/// A subject token whose claims cannot be read is refused like an invalid one.
fn unreadable(e: &jose::Error) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::InvalidGrant,
        format!("the subject token is invalid: {}", e.reason()),
    )
}

/// Whether `scope` may be granted now: registered for the client and accepted by the
/// audience.
pub(crate) fn grantable(scope: &str, client: &Client, target: &Target<'_>) -> bool {
    client.scopes.iter().any(|c| c == scope)
        && match target {
            Target::Declared(a) => a.scopes.iter().any(|x| x == scope),
            Target::Registered(_) => true,
        }
}

/// The scopes of the token: those asked for (all must be allowed) or, when none are, every
/// allowed one. Allowed = registered for the client ∩ accepted by the audience (∩ carried by
/// an exchanged token of ours).
pub(crate) fn resolve_scope(
    requested: Option<&str>,
    client: &Client,
    target: &Target<'_>,
    cap: Option<&[String]>,
) -> Result<Vec<String>, ErrorResponse> {
    let allowed =
        |s: &str| grantable(s, client, target) && cap.is_none_or(|c| c.iter().any(|x| x == s));
    let mut scope: Vec<String> = Vec::new();
    match requested {
        Some(text) => {
            for s in text.split(' ').filter(|s| !s.is_empty()) {
                if !allowed(s) {
                    return Err(ErrorResponse::new(
                        ErrorKind::InvalidScope,
                        format!("the scope {s} is not allowed"),
                    ));
                }
                if !scope.iter().any(|x| x == s) {
                    scope.push(s.to_owned());
                }
            }
        }
        None => scope.extend(client.scopes.iter().filter(|s| allowed(s)).cloned()),
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_named_by_its_sha256_prefix() {
        // SHA-256("abc") = ba7816bf 8f01cfea … (FIPS 180-2, appendix B.1).
        assert_eq!(token_hash_prefix("abc"), "ba7816bf");
        assert_eq!(hash_prefix(&[0xde, 0xad, 0xbe, 0xef, 0x01]), "deadbeef");
        assert_eq!(hash_prefix(&[0x0a]), "0a");
    }
}
