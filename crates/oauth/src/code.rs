//! Authorization codes (RFC 6749 §4.1.2, §4.1.3; RFC 9700 §2.1.1, §4.5): issued when the
//! user consents, redeemed once at the token endpoint by the client they were issued to,
//! with the redirect URI and the PKCE verifier of the authorization request. A second use
//! revokes what the first issued.
//!
//! Stored as their SHA-256 only ([`store::AuthorizationCode`]); a code is 256 random bits, so
//! a plain hash is as good as a keyed one.

use serde_json::{Map, Value};
use store::{AuthorizationCode, Client};

use crate::authorize::with_query;
use crate::form::Params;
use crate::mint::random_b64;
use crate::protocol::{invalid_request, ErrorKind, ErrorResponse};
use crate::service::Service;
use crate::sign_in::SignIn;
use crate::token::{sha256_hex, Target};

/// How long a code may wait for its redemption (seconds; RFC 6749 §4.1.2 recommends at
/// most 10 minutes, the issue 60 s).
pub const CODE_LIFETIME: i64 = 60;

/// What a redeemed code grants: the token endpoint mints from it.
#[derive(Debug)]
pub(crate) struct Redeemed<'s> {
    pub code_hash: String,
    pub subject: String,
    pub audience: String,
    /// The audience as the token service serves it now.
    pub target: Target<'s>,
    pub scope: Vec<String>,
    pub user_claims: Map<String, Value>,
}

fn invalid_grant(why: &str) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidGrant, why.to_owned())
}

impl Service {
    /// The user consented: stores a code for the session's request and returns where to
    /// send the browser (the redirect URI with `code`, `state` and `iss`, RFC 9207).
    pub async fn approve_authorization(
        &self,
        session: SignIn,
        request_id: &str,
        now: i64,
    ) -> Result<String, ErrorResponse> {
        let user = session
            .user
            .ok_or_else(|| invalid_request("the user has not signed in"))?;
        let request = session.request;
        // The client may have been disabled, or lost this redirect URI, since sign-in began.
        let current = self.client(&request.client_id).await?;
        let still = current.is_some_and(|c| {
            !c.disabled
                && c.redirect_uris
                    .iter()
                    .any(|r| crate::redirect_uri::matches(r, &request.redirect_uri))
        });
        if !still {
            return Err(ErrorResponse::new(
                ErrorKind::AccessDenied,
                "the client may no longer sign users in here",
            ));
        }
        let code = random_b64(32)?;
        let mut claims = user.claims;
        claims.insert("auth_time".into(), user.auth_time.into());
        let stored = AuthorizationCode {
            code_hash: sha256_hex(&code),
            client_id: request.client_id,
            redirect_uri: request.redirect_uri,
            code_challenge: request.code_challenge,
            dpop_jkt: request.dpop_jkt,
            subject: user.sub,
            auth_time: user.auth_time,
            audience: request.audience,
            scope: request.scope.join(" "),
            claims: Value::Object(claims).to_string(),
            issued_at: now,
            expires_at: now.saturating_add(CODE_LIFETIME),
        };
        self.store.insert_code(&stored).await?;
        let mut event = crate::service::event("authorization.granted", request_id, now);
        event.client_id = Some(stored.client_id.clone());
        event.subject = Some(stored.subject.clone());
        event.audience = Some(stored.audience.clone());
        event.reason = Some(format!("scope: {}", stored.scope));
        self.audit(&event).await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.settings.issuer));
        with_query(&stored.redirect_uri, &pairs)
            .ok_or_else(|| invalid_request("the redirect URI is not a URL"))
    }

    /// RFC 6749 §4.1.3: redeems `code` for `client`. The code must be one of ours, unused,
    /// unexpired, issued to this client, redeemed with the same `redirect_uri` and a
    /// `code_verifier` matching its challenge (RFC 7636 §4.6), and, when the authorization
    /// request named a DPoP key, with a proof by that key (`jkt`, checked by the caller).
    /// A code presented again revokes the token its first redemption issued.
    pub(crate) async fn redeem_code(
        &self,
        params: &Params,
        client: &Client,
        jkt: Option<&str>,
        now: i64,
    ) -> Result<Redeemed<'_>, ErrorResponse> {
        let code = params.require("code")?;
        let code_hash = sha256_hex(code);
        let stored = self
            .store
            .code(&code_hash)
            .await?
            .ok_or_else(|| invalid_grant("the code is unknown or expired"))?;
        let c = stored.code;
        // Before the replay check: someone else's client presenting a leaked used code must
        // not be able to revoke the user's grant.
        if c.client_id != client.client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        let verifier = params
            .get("code_verifier")
            .ok_or_else(|| invalid_request("code_verifier is missing (PKCE is required)"))?;
        crate::pkce::verify(verifier, &c.code_challenge).map_err(invalid_grant)?;
        // After the verifier: a public client's id is public, so only the holder of the
        // verifier may make a used code revoke the user's grant.
        if stored.used_at.is_some() {
            return Err(self.code_replayed(&code_hash, now).await);
        }
        still_bound(&c, params, jkt, now)?;
        // What can refuse the grant is checked before the code is spent: a code is used up
        // only by a redemption that then issues.
        let target = self.target_named(client, &c.audience)?;
        // Scopes the client or the audience lost since the user consented are not issued.
        let scope: Vec<String> = c
            .scope
            .split(' ')
            .filter(|s| !s.is_empty() && crate::token::grantable(s, client, &target))
            .map(String::from)
            .collect();
        if !self.store.redeem_code(&code_hash, now).await? {
            // Another redemption won the race.
            return Err(self.code_replayed(&code_hash, now).await);
        }
        let user_claims = match serde_json::from_str(&c.claims) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Ok(Redeemed {
            code_hash,
            subject: c.subject,
            audience: c.audience,
            target,
            scope,
            user_claims,
        })
    }

    /// A used code came back: revoke what its redemption issued (RFC 6749 §4.1.2, RFC 9700
    /// §4.5), audit it, and refuse.
    ///
    /// The replay is marked first: a first redemption still under way then finds the mark
    /// when it records its access token ([`Store::code_issued`](store::Store::code_issued))
    /// or starts its refresh family ([`Service::store_refresh`]), and revokes what it made.
    async fn code_replayed(&self, code_hash: &str, now: i64) -> ErrorResponse {
        let issued = match self.store.code_replayed(code_hash, now).await {
            Ok(issued) => issued,
            Err(e) => return e.into(),
        };
        if let Some(Some(jti)) = issued {
            if let Err(e) = self
                .revoke_issued(&jti, "authorization code replayed", now)
                .await
            {
                return e;
            }
        }
        // The refresh tokens the code started go too (their family is named by the code).
        if let Err(e) = self
            .revoke_family(code_hash, "authorization code replayed", now)
            .await
        {
            return e;
        }
        invalid_grant("the code was used before; the tokens it issued are revoked")
    }

    /// After the token of a redeemed code is recorded: notes its `jti` on the code, unless
    /// the code was replayed meanwhile, in which case the token is revoked and refused.
    pub(crate) async fn code_redeemed(
        &self,
        code_hash: &str,
        jti: &str,
        now: i64,
    ) -> Result<(), ErrorResponse> {
        if self.store.code_issued(code_hash, jti).await? {
            return Ok(());
        }
        self.revoke_issued(jti, "authorization code replayed", now)
            .await?;
        Err(invalid_grant(
            "the code was used twice at once; the token is revoked",
        ))
    }

    /// Revokes one of our tokens for `why`, on every node, with an audit event.
    pub(crate) async fn revoke_issued(
        &self,
        jti: &str,
        why: &str,
        now: i64,
    ) -> Result<(), ErrorResponse> {
        let Some(token) = self.store.token(jti).await? else {
            return Ok(());
        };
        let newly = self.store.revoke_token(jti, now).await?;
        self.revocations.revoke_jti(jti, token.expires_at);
        self.announce(crate::changes::Change::Revoked {
            jti: jti.to_owned(),
            expires_at: token.expires_at,
        });
        if newly {
            let mut event = crate::service::event("token.revoked", "", now);
            event.request_id = None;
            event.client_id = Some(token.client_id);
            event.subject = Some(token.subject);
            event.audience = Some(token.audience);
            event.jti = Some(jti.to_owned());
            event.reason = Some(why.to_owned());
            self.audit(&event).await?;
        }
        Ok(())
    }
}

/// What the redemption must present again, as the authorization request had it: unexpired,
/// the same redirect URI, a proof by the DPoP key it named, and no other resource (RFC 8707
/// §2.2).
fn still_bound(
    c: &AuthorizationCode,
    params: &Params,
    jkt: Option<&str>,
    now: i64,
) -> Result<(), ErrorResponse> {
    if c.expires_at <= now {
        return Err(invalid_grant("the code is unknown or expired"));
    }
    if params.get("redirect_uri") != Some(c.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri must be the one of the authorization request",
        ));
    }
    if let Some(bound) = &c.dpop_jkt {
        if jkt != Some(bound.as_str()) {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidDpopProof,
                "the code is bound to a DPoP key (dpop_jkt): prove possession of it",
            ));
        }
    }
    // RFC 8707 §2.2: a resource named here must be the one the user consented to.
    let named = params
        .all("resource")
        .into_iter()
        .chain(params.all("audience"));
    if let Some(other) = named.into_iter().find(|r| *r != c.audience) {
        return Err(ErrorResponse::new(
            ErrorKind::InvalidTarget,
            format!("the code is for {}, not {other}", c.audience),
        ));
    }
    Ok(())
}
