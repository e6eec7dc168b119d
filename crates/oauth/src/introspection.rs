//! Introspection (RFC 7662, with RFC 9701 JWT responses) and revocation (RFC 7009).

use jose::jwt::{self, Claims};
use serde_json::{Map, Value};
use store::AuditEvent;

use crate::protocol::{ErrorKind, ErrorResponse, Request};
use crate::service::{paths, Service};

/// RFC 9701 media type (and JWT `typ`, without the `application/` prefix).
pub const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// An introspection answer: JSON, or a signed JWT when the client asked for one.
#[derive(Debug, Clone)]
pub enum Introspection {
    /// `application/json`.
    Json(Value),
    /// `application/token-introspection+jwt`.
    Jwt(String),
}

/// Claims of our tokens that introspection reports (RFC 7662 §2.2).
const REPORTED: [&str; 9] = [
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "cnf",
];

/// What introspection reports of an active token: the [`REPORTED`] claims it has, and its
/// `token_type`.
fn reported(claims: &Claims) -> jose::Result<Map<String, Value>> {
    let mut answer = Map::new();
    for name in REPORTED {
        if let Some(v) = claims.get(name)? {
            answer.insert(name.into(), v.clone());
        }
    }
    let token_type = if claims.contains("cnf")? {
        "DPoP"
    } else {
        "Bearer"
    };
    answer.insert("token_type".into(), token_type.into());
    Ok(answer)
}

impl Service {
    /// Introspects a token for an authenticated client. A token is reported active only to
    /// the client it was issued to and to clients registered for its audience (the resource
    /// servers); to anyone else, and for tokens that are not ours, expired or revoked, the
    /// answer is `{"active": false}`.
    pub async fn introspect(
        &self,
        req: &Request<'_>,
        now: i64,
    ) -> Result<Introspection, ErrorResponse> {
        let mut event = crate::service::event("token.introspected", req.request_id, now);
        let (client, params) = match self
            .caller(req, paths::INTROSPECT, &[], now, &mut event)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.deny(event, e).await),
        };
        if client.auth_method == store::AuthMethod::Public {
            // RFC 7662 §4: introspection is for callers that authenticate; a public client
            // only names itself.
            let mut e =
                ErrorResponse::new(ErrorKind::InvalidClient, "client authentication failed");
            e.detail = Some("a public client cannot introspect".into());
            return Err(self.deny(event, e).await);
        }
        let token = match params.require("token") {
            Ok(t) => t,
            Err(e) => return Err(self.deny(event, e).await),
        };
        let mut answer = Map::new();
        let mut active = false;
        if let Some(claims) = self.read_own(token, now) {
            event.jti = claims.jti().map(String::from);
            event.subject = claims.sub().map(String::from);
            event.audience = claims.aud().first().cloned();
            // A resource server (a client an operator registered for the audience) may read
            // the audience's tokens; a client that registered itself, or is known by its
            // metadata document, only its own: anyone can make one.
            let entitled = claims.client_id() == Some(client.client_id.as_str())
                || (client.first_party
                    && claims.aud().iter().any(|a| client.audiences.contains(a)));
            if entitled && self.active(&claims).await?.is_some() {
                // Claims that cannot be read make the token inactive, as a token that fails
                // verification is: never active with claims missing from the answer.
                if let Ok(reported) = reported(&claims) {
                    answer = reported;
                    active = true;
                }
            }
        }
        answer.insert("active".into(), active.into());
        event.reason = Some(if active { "active" } else { "inactive" }.into());
        self.audit(&event).await?;

        let wants_jwt = req.accept.is_some_and(|a| {
            a.split(',')
                .filter_map(|m| m.split(';').next())
                .any(|m| m.trim().eq_ignore_ascii_case(INTROSPECTION_JWT))
        });
        if !wants_jwt {
            return Ok(Introspection::Json(Value::Object(answer)));
        }
        // RFC 9701 §5: the answer inside a JWT signed by the service, addressed to the client.
        let mut claims = Map::new();
        claims.insert("iss".into(), self.settings.issuer.clone().into());
        claims.insert("aud".into(), client.client_id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("token_introspection".into(), Value::Object(answer));
        let ring = self.ring();
        let signed = jwt::sign(
            &claims,
            ring.active_signing(),
            ring.signing_alg(),
            Some("token-introspection+jwt"),
        )
        .map_err(|e| ErrorResponse::from(crate::Error::Jose(e)))?;
        Ok(Introspection::Jwt(signed))
    }

    /// Revokes a token for the client it was issued to (RFC 7009 §2.1). Tokens that are not
    /// ours, are malformed or expired need no revoking and get the same 200.
    pub async fn revoke(&self, req: &Request<'_>, now: i64) -> Result<(), ErrorResponse> {
        let mut event = crate::service::event("token.revoked", req.request_id, now);
        let (client, params) = match self.caller(req, paths::REVOKE, &[], now, &mut event).await {
            Ok(c) => c,
            Err(e) => return Err(self.deny(event, e).await),
        };
        let token = match params.require("token") {
            Ok(t) => t,
            Err(e) => return Err(self.deny(event, e).await),
        };
        let Some(claims) = self.read_own(token, now) else {
            // Not an access token of ours: a refresh token, or nothing (RFC 7009 §2.2
            // answers both with 200).
            match self.revoke_refresh_token(token, &client, now).await {
                Ok(true) => {
                    event.reason = Some("refresh token: its grant revoked".into());
                    self.audit(&event).await?;
                }
                Ok(false) => {}
                Err(e) => return Err(self.deny(event, e).await),
            }
            return Ok(());
        };
        event.jti = claims.jti().map(String::from);
        event.subject = claims.sub().map(String::from);
        event.audience = claims.aud().first().cloned();
        if claims.client_id() != Some(client.client_id.as_str()) {
            let error = ErrorResponse::new(
                ErrorKind::UnauthorizedClient,
                "the token was issued to another client",
            );
            return Err(self.deny(event, error).await);
        }
        let jti = claims.jti().unwrap_or_default();
        let newly = self.store.revoke_token(jti, now).await?;
        let expires_at = claims.exp().unwrap_or(now);
        self.revocations.revoke_jti(jti, expires_at);
        self.announce(crate::changes::Change::Revoked {
            jti: jti.to_owned(),
            expires_at,
        });
        event.reason = Some(if newly { "revoked" } else { "already revoked" }.into());
        self.audit(&event).await?;
        Ok(())
    }

    /// Records a failed request in the audit trail and returns its error.
    async fn deny(&self, mut event: AuditEvent, error: ErrorResponse) -> ErrorResponse {
        event.outcome = "failure".into();
        event.reason = Some(error.reason());
        self.denials.record(event);
        error
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use jose::jwt::Claims;
    use serde_json::{json, Value};

    use super::reported;

    fn claims(value: Value) -> Claims {
        let Value::Object(map) = value else {
            panic!("not an object: {value}");
        };
        Claims::from_map(map).unwrap()
    }

    #[test]
    fn reports_the_registered_claims_and_the_token_type() {
        let bound = claims(json!({
            "sub": "s", "scope": "a b", "aud": ["x", "y"], "exp": 5,
            "cnf": {"jkt": "t"}, "tenant": "not reported",
        }));
        assert_eq!(
            Value::Object(reported(&bound).unwrap()),
            json!({
                "sub": "s", "scope": "a b", "aud": ["x", "y"], "exp": 5,
                "cnf": {"jkt": "t"}, "token_type": "DPoP",
            })
        );
        let bearer = claims(json!({"client_id": "c", "iss": "i"}));
        assert_eq!(
            Value::Object(reported(&bearer).unwrap()),
            json!({"client_id": "c", "iss": "i", "token_type": "Bearer"})
        );
    }
}
