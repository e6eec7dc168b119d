//! Client authentication at the token, introspection and revocation endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post` and `private_key_jwt` (RFC 7523 §2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jose::jwt::{self, Validation};
use jose::JwkSet;
use store::{AuditEvent, AuthMethod, Client};

use crate::dpop::ALGORITHMS;
use crate::form::{self, Params};
use crate::protocol::{invalid_request, ErrorKind, ErrorResponse, Request};
use crate::service::{paths, Service};

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long past its `exp` an assertion's jti is remembered, and the clock skew allowed.
const LEEWAY: u64 = 30;

/// The credentials a request carries, before they are checked.
enum Presented<'a> {
    Secret {
        method: AuthMethod,
        client_id: String,
        secret: String,
    },
    Assertion(&'a str),
    /// Only a `client_id`: a public client (RFC 6749 §2.1), which proves nothing here and is
    /// held to PKCE by the grants it may use.
    Public(&'a str),
}

/// A failed authentication: the client id when one was named (for the audit trail) and the
/// response.
pub(crate) struct Denied {
    pub client_id: Option<String>,
    pub error: ErrorResponse,
}

fn denied(client_id: Option<&str>, error: ErrorResponse) -> Denied {
    Denied {
        client_id: client_id.map(String::from),
        error,
    }
}

/// `invalid_client` with one description for every cause, so a client cannot tell an unknown
/// id from a disabled client or a wrong secret; the cause goes to the audit trail only. (The
/// holder of an enabled client's secret, presenting it a way the client does not accept, is
/// told which way it does.)
fn invalid_client(reason: &str) -> ErrorResponse {
    let mut e = ErrorResponse::new(ErrorKind::InvalidClient, "client authentication failed");
    e.detail = Some(reason.to_owned());
    e
}

impl Service {
    /// Authenticates the client of a request to `endpoint` (a path of [`paths`]). Exactly one
    /// method must be used, and one the client accepts ([`Client::accepts`]). Unknown
    /// clients, wrong secrets and disabled clients get the same `invalid_client`; the audit
    /// trail keeps the difference.
    pub(crate) async fn authenticate(
        &self,
        req: &Request<'_>,
        params: &Params,
        endpoint: &str,
        now: i64,
    ) -> Result<Client, Denied> {
        let presented = presented(req, params).map_err(|e| denied(params.get("client_id"), e))?;
        match presented {
            Presented::Secret {
                method,
                client_id,
                secret,
            } => {
                let client = self
                    .clients
                    .get(&self.store, &client_id)
                    .await
                    .map_err(|e| denied(Some(&client_id), e.into()))?;
                let hash = client.as_ref().and_then(|c| c.secret_hash.clone());
                // Hash even for an unknown client, so timing does not tell which ids exist.
                let ok = store::verify_secret(
                    self.pepper.as_slice(),
                    secret.as_bytes(),
                    hash.as_deref().unwrap_or(&[0; 32]),
                );
                let fail = |why: &str| denied(Some(&client_id), invalid_client(why));
                let client = match client {
                    Some(c) if ok => c,
                    _ => return Err(fail("client authentication failed")),
                };
                if client.disabled {
                    return Err(fail("the client is disabled"));
                }
                if !client.accepts(method) {
                    // The secret was right: its holder may learn how to present it.
                    let registered = client.auth_method.as_str();
                    let mut error = ErrorResponse::new(
                        ErrorKind::InvalidClient,
                        format!("the client is registered for {registered}"),
                    );
                    error.detail = Some(format!(
                        "the client is registered for {registered}, not {}",
                        method.as_str()
                    ));
                    return Err(denied(Some(&client_id), error));
                }
                Ok(client)
            }
            Presented::Assertion(assertion) => {
                self.check_assertion(assertion, params, endpoint, now).await
            }
            Presented::Public(client_id) => self.public_client(client_id).await,
        }
    }

    /// Parses the form (only `repeatable` parameters may appear more than once) and
    /// authenticates the client, noting in `event` who it claimed to be and who it is.
    pub(crate) async fn caller(
        &self,
        req: &Request<'_>,
        endpoint: &str,
        repeatable: &[&str],
        now: i64,
        event: &mut AuditEvent,
    ) -> Result<(Client, Params), ErrorResponse> {
        let params = Params::from_request(req.content_type, req.body, repeatable)?;
        // Bounded: the id is what the client claimed, not yet checked.
        event.client_id = params
            .get("client_id")
            .map(|c| c.chars().take(128).collect());
        let client = self
            .authenticate(req, &params, endpoint, now)
            .await
            .map_err(|d| {
                event.client_id = d.client_id;
                d.error
            })?;
        event.client_id = Some(client.client_id.clone());
        Ok((client, params))
    }

    /// A public client names itself; only a client registered as public may do so, so a
    /// confidential client's id alone authenticates nobody.
    async fn public_client(&self, client_id: &str) -> Result<Client, Denied> {
        let fail = |why: &str| denied(Some(client_id), invalid_client(why));
        let client = match self.client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(fail("client authentication failed")),
            Err(e) => return Err(denied(Some(client_id), e)),
        };
        if !client.accepts(AuthMethod::Public) {
            return Err(fail(
                "client authentication is required (the client is not public)",
            ));
        }
        if client.disabled {
            return Err(fail("the client is disabled"));
        }
        Ok(client)
    }

    async fn check_assertion(
        &self,
        assertion: &str,
        params: &Params,
        endpoint: &str,
        now: i64,
    ) -> Result<Client, Denied> {
        let named = params.get("client_id");
        let fail = |id: Option<&str>, why: &str| denied(id, invalid_client(why));
        let (_, claims) = jwt::decode_unverified(assertion)
            .map_err(|_| fail(named, "the client assertion is not a JWT"))?;
        let Some(client_id) = claims.get("iss").and_then(|v| v.as_str()) else {
            return Err(fail(named, "the client assertion has no iss"));
        };
        let id = Some(client_id);
        if named.is_some_and(|n| n != client_id) {
            return Err(fail(id, "client_id differs from the assertion's issuer"));
        }
        let client = match self.client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(fail(id, "client authentication failed")),
            Err(e) => return Err(denied(id, e)),
        };
        if !client.accepts(AuthMethod::PrivateKeyJwt) {
            return Err(fail(
                id,
                "the client is registered for another authentication method",
            ));
        }
        if client.disabled {
            return Err(fail(id, "the client is disabled"));
        }
        let keys = client
            .jwks
            .as_deref()
            .and_then(|j| JwkSet::from_json(j.as_bytes()).ok())
            .ok_or_else(|| fail(id, "the client has no usable JWKS"))?;
        // RFC 7523 §3: aud is the token endpoint; the issuer identifier (RFC 7523bis) and the
        // endpoint actually called are accepted too.
        let audiences = [
            self.settings.issuer.clone(),
            self.url(paths::TOKEN),
            self.url(endpoint),
        ];
        let validation = Validation::new()
            .algorithms(ALGORITHMS)
            .issuer(client_id)
            .subject(client_id)
            .audiences(audiences)
            .require("jti")
            .leeway(LEEWAY)
            .at_time(now);
        let verified = jwt::verify(assertion, &keys, &validation).map_err(|e| {
            fail(
                id,
                &format!("the client assertion is invalid: {}", e.reason()),
            )
        })?;
        let jti = verified.claims.jti().unwrap_or_default();
        let exp = verified.claims.exp().unwrap_or(now);
        let fresh = self
            .store
            .use_jti(
                &format!("client_assertion:{client_id}"),
                jti,
                exp.saturating_add(LEEWAY as i64),
            )
            .await
            .map_err(|e| denied(id, e.into()))?;
        if !fresh {
            return Err(fail(id, "the client assertion was used before"));
        }
        Ok(client)
    }
}

/// The client id and secret of HTTP Basic credentials (the text after `Basic `): base64 of
/// `id:secret`, each form-encoded first (RFC 6749 §2.3.1).
pub fn basic_credentials(creds: &str) -> Result<(String, String), ErrorResponse> {
    let decoded = STANDARD
        .decode(creds)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
    Ok((
        form::decode(id.as_bytes())?,
        form::decode(secret.as_bytes())?,
    ))
}

/// The `client_id` a request names, before anything is checked: the Basic credentials'
/// else the form's `client_id` when the form carries a secret or an assertion. For rate limits, which count requests and failed
/// authentications per client before (and whether or not) the client is authenticated.
pub fn claimed_client_id(req: &Request<'_>) -> Option<String> {
    let basic = req
        .authorization
        .first()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, creds)| basic_credentials(creds.trim()).ok());
    if let Some((client_id, _)) = basic {
        return Some(client_id);
    }
    let params = Params::from_request(
        req.content_type,
        req.body,
        &["resource", "audience", "scope"],
    )
    .ok()?;
    // A `client_id` alone (a public client) proves nothing: counted per client, it would let
    // anyone spend that client's budget, or lock it out with failures, by naming it.
    let credential =
        params.get("client_secret").is_some() || params.get("client_assertion").is_some();
    params
        .get("client_id")
        .filter(|_| credential)
        .map(str::to_owned)
}

/// Finds the one authentication method the request uses.
fn presented<'a>(req: &Request<'a>, params: &'a Params) -> Result<Presented<'a>, ErrorResponse> {
    if req.authorization.len() > 1 {
        return Err(invalid_request("more than one Authorization header"));
    }
    let basic = req
        .authorization
        .first()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, creds)| creds.trim());
    let post = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    let used = [basic.is_some(), post.is_some(), assertion.is_some()]
        .into_iter()
        .filter(|u| *u)
        .count();
    if used > 1 {
        return Err(invalid_request(
            "more than one client authentication method is used",
        ));
    }
    if let Some(creds) = basic {
        let (client_id, secret) = basic_credentials(creds)?;
        if params.get("client_id").is_some_and(|n| n != client_id) {
            return Err(invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        return Ok(Presented::Secret {
            method: AuthMethod::ClientSecretBasic,
            client_id,
            secret,
        });
    }
    if let Some(secret) = post {
        let client_id = params
            .get("client_id")
            .ok_or_else(|| invalid_request("client_secret without client_id"))?;
        return Ok(Presented::Secret {
            method: AuthMethod::ClientSecretPost,
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(JWT_BEARER) {
            return Err(invalid_request(
                "client_assertion_type must be the JWT bearer type",
            ));
        }
        return Ok(Presented::Assertion(assertion));
    }
    match params.get("client_id") {
        Some(client_id) => Ok(Presented::Public(client_id)),
        None => Err(invalid_client("client authentication is required")),
    }
}
