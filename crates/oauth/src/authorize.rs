//! The authorization endpoint's request (RFC 6749 §4.1.1 with RFC 7636 PKCE, RFC 8707
//! resources, RFC 9207 `iss`, RFC 9449 §10 `dpop_jkt`, RFC 9700 §2.1), checked in two stages
//! because where an error may be sent depends on which check failed: until the client and
//! its redirect URI are verified, an error is shown to the user and never redirected (or the
//! endpoint would send browsers anywhere an attacker names); once they are, the error goes
//! back to the client's redirect URI with `state` and `iss`, as the client expects.
//!
//! Only the checks live here; signing the user in and consent are [`crate::sign_in`], the
//! code [`crate::code`].

use store::Client;
use url::Url;

use crate::form::Params;
use crate::protocol::{invalid_request, ErrorKind, ErrorResponse};
use crate::redirect_uri;
use crate::service::Service;

/// The longest `state` carried through sign-in and consent: it rides in the sign-in cookie,
/// which browsers cap at 4 KB with the redirect URI (up to 2000 bytes) beside it. Clients send
/// a random value of a few dozen characters.
pub const MAX_STATE: usize = 512;

/// The longest `error_description` sent back to a client.
const MAX_DESCRIPTION: usize = 200;

/// Parameters that are repeated legitimately: RFC 8707 `resource`.
const REPEATABLE: &[&str] = &["resource"];

/// An authorization request that passed every check: what sign-in, consent and the code are
/// bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// The redirect URI as presented, which matched one the client registered.
    pub redirect_uri: String,
    /// Returned to the client unchanged.
    pub state: Option<String>,
    /// The PKCE S256 challenge: base64url SHA-256 of the verifier, 43 characters.
    pub code_challenge: String,
    /// The audience the token will be for (from `resource`, or the only one).
    pub audience: String,
    /// The scopes granted if the user consents.
    pub scope: Vec<String>,
    /// RFC 9449 §10: the DPoP key thumbprint the code is bound to.
    pub dpop_jkt: Option<String>,
    /// Whether an operator registered the client (consent may be skipped for it).
    #[serde(default)]
    pub first_party: bool,
    /// Whether the client's identity is assured (RFC 8252 §8.6): it authenticates, or its
    /// redirect URI is https. A public client on a loopback or private-use redirect URI may
    /// be any app on the device, so its users are always asked; so are the users of a client
    /// known by its metadata document, whose document (redirect URIs, keys) may change hands
    /// at any time, so that a consent given to it is never remembered.
    #[serde(default)]
    pub assured: bool,
}

/// A refused authorization request, and where its error goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI could not be verified: show the error to the user, as
    /// a 400 page (HTML-escaped: the description may quote the request), never with the
    /// token endpoint's 401 and `WWW-Authenticate`, which would open a browser's password
    /// dialog.
    ShowUser(ErrorResponse),
    /// Send the error back to the client's verified redirect URI.
    Redirect {
        /// The verified redirect URI.
        redirect_uri: String,
        /// The request's `state`, if it had one (and it was not the problem).
        state: Option<String>,
        /// The error.
        error: ErrorResponse,
    },
}

impl AuthorizeError {
    /// The error itself.
    pub fn error(&self) -> &ErrorResponse {
        match self {
            AuthorizeError::ShowUser(e) | AuthorizeError::Redirect { error: e, .. } => e,
        }
    }

    /// Where to redirect the browser (RFC 6749 §4.1.2.1 with RFC 9207 `iss`), or `None` when
    /// the error is for the user.
    pub fn location(&self, issuer: &str) -> Option<String> {
        let AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        } = self
        else {
            return None;
        };
        let description = redirectable_description(&error.description);
        let mut pairs = vec![
            ("error", error.kind.as_str()),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", issuer));
        with_query(redirect_uri, &pairs)
    }
}

/// `description` as RFC 6749 §4.1.2.1 allows it in a redirect (printable ASCII without `"`
/// and `\\`), at most [`MAX_DESCRIPTION`] characters: whatever the request said cannot put
/// other text on the client's error page or swell the `Location` header.
fn redirectable_description(description: &str) -> String {
    description
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(MAX_DESCRIPTION)
        .collect()
}

/// `uri` with `pairs` added to its query (after any it has: RFC 6749 §3.1.2 keeps a
/// registered query). `None` if `uri` is not a URL, which a verified redirect URI always is.
pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    url.query_pairs_mut().extend_pairs(pairs);
    Some(url.into())
}

impl Service {
    /// Checks an authorization request's query string. `Ok` when every rule holds; the
    /// caller then signs the user in and asks for consent.
    pub async fn authorization_request(
        &self,
        query: &[u8],
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = Params::parse_query(query, REPEATABLE).map_err(AuthorizeError::ShowUser)?;
        let (client, redirect_uri) = self.verified_client(&params).await?;
        let state = params.get("state").map(str::to_owned);
        if state.as_ref().is_some_and(|s| !is_state(s)) {
            return Err(AuthorizeError::Redirect {
                redirect_uri,
                state: None,
                error: invalid_request(format!(
                    "state must be at most {MAX_STATE} printable ASCII characters (RFC 6749 appendix A.5)"
                )),
            });
        }
        match self.checked_request(&params, &client) {
            Ok(checked) => Ok(AuthorizationRequest {
                first_party: client.first_party,
                assured: (client.auth_method != store::AuthMethod::Public
                    || redirect_uri.starts_with("https://"))
                    && !self.is_document_client(&client.client_id),
                client_id: client.client_id,
                redirect_uri,
                state,
                code_challenge: checked.code_challenge,
                audience: checked.audience,
                scope: checked.scope,
                dpop_jkt: checked.dpop_jkt,
            }),
            Err(error) => Err(AuthorizeError::Redirect {
                redirect_uri,
                state,
                error,
            }),
        }
    }

    /// Stage one: the client exists, is enabled, signs users in (has redirect URIs), and the
    /// request's `redirect_uri` is one of them. Every failure here is shown to the user.
    async fn verified_client(&self, params: &Params) -> Result<(Client, String), AuthorizeError> {
        let show = |kind: ErrorKind, why: &str| {
            AuthorizeError::ShowUser(ErrorResponse::new(kind, why.to_owned()))
        };
        let client_id = params
            .get("client_id")
            .ok_or_else(|| show(ErrorKind::InvalidRequest, "client_id is missing"))?;
        let client = self
            .client(client_id)
            .await
            .map_err(AuthorizeError::ShowUser)?
            .filter(|c| !c.disabled)
            .ok_or_else(|| show(ErrorKind::InvalidRequest, "unknown client"))?;
        if client.redirect_uris.is_empty() {
            return Err(show(
                ErrorKind::UnauthorizedClient,
                "the client has no redirect URI: it cannot sign users in",
            ));
        }
        let presented = params.get("redirect_uri").ok_or_else(|| {
            show(
                ErrorKind::InvalidRequest,
                "redirect_uri is missing: name one the client registered",
            )
        })?;
        if !client
            .redirect_uris
            .iter()
            .any(|r| redirect_uri::matches(r, presented))
        {
            return Err(show(
                ErrorKind::InvalidRequest,
                "redirect_uri is not one the client registered",
            ));
        }
        let presented = presented.to_owned();
        Ok((client, presented))
    }

    /// Stage two: what the client asks for. Every failure here goes back to the client.
    fn checked_request(&self, params: &Params, client: &Client) -> Result<Checked, ErrorResponse> {
        for (name, kind) in [
            ("request", ErrorKind::RequestNotSupported),
            ("request_uri", ErrorKind::RequestUriNotSupported),
        ] {
            if params.get(name).is_some() {
                return Err(ErrorResponse::new(
                    kind,
                    "request objects are not supported: send the parameters in the query",
                ));
            }
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(ErrorResponse::new(
                    ErrorKind::UnsupportedResponseType,
                    "only response_type code is supported",
                ))
            }
            None => return Err(invalid_request("response_type is missing")),
        }
        // No sign-in session is kept here, so a request that forbids any interaction cannot
        // be answered with a code (OpenID Connect Core §3.1.2.6).
        if params
            .get("prompt")
            .is_some_and(|p| p.split(' ').any(|v| v == "none"))
        {
            return Err(ErrorResponse::new(
                ErrorKind::LoginRequired,
                "prompt=none: the user must sign in",
            ));
        }
        if params.get("response_mode").is_some_and(|m| m != "query") {
            return Err(invalid_request("only response_mode query is supported"));
        }
        let code_challenge = pkce_challenge(params)?;
        let dpop_jkt = match params.get("dpop_jkt") {
            Some(jkt) if crate::pkce::is_sha256_b64(jkt) => Some(jkt.to_owned()),
            Some(_) => {
                return Err(invalid_request(
                    "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
                ))
            }
            None => None,
        };
        let target = self.target(client, params)?;
        let scope = crate::token::resolve_scope(params.get("scope"), client, &target, None)?;
        Ok(Checked {
            code_challenge,
            audience: target.id().to_owned(),
            scope,
            dpop_jkt,
        })
    }
}

/// What stage two found.
struct Checked {
    code_challenge: String,
    audience: String,
    scope: Vec<String>,
    dpop_jkt: Option<String>,
}

/// RFC 7636 §4.3 with S256 only ([`crate::pkce`]); an absent method means `plain`.
fn pkce_challenge(params: &Params) -> Result<String, ErrorResponse> {
    let challenge = params
        .get("code_challenge")
        .ok_or_else(|| invalid_request("code_challenge is missing: PKCE with S256 is required"))?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some(_) => {
            return Err(invalid_request(
                "code_challenge_method must be S256 (plain is not supported)",
            ))
        }
        None => {
            return Err(invalid_request(
                "code_challenge_method is missing (it would mean plain): use S256",
            ))
        }
    }
    if !crate::pkce::is_sha256_b64(challenge) {
        return Err(invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_owned())
}

/// RFC 6749 appendix A.5: `state` is printable ASCII (VSCHAR); at most [`MAX_STATE`].
fn is_state(state: &str) -> bool {
    state.len() <= MAX_STATE && state.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
