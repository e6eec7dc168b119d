//! Why the gateway answers a request itself instead of with the upstream's response: one
//! typed error, whose variants carry what the response needs. It becomes a response in one
//! place, [`crate::Gateway::refuse`]; nothing in the gateway compares error text.

use http::{Method, StatusCode};

use crate::auth::Denial;

/// Where a failure came from: whose doing it is, for logs and for whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request itself (its path, method, body).
    Client,
    /// The credential it carries.
    Token,
    /// The upstream it was sent to.
    Upstream,
    /// The gateway.
    Internal,
}

/// Why the gateway answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The path is not in the one spelling routes match on (400 `invalid_request`).
    #[error("{0}")]
    NonCanonicalPath(&'static str),
    /// The request's `Host` or `:authority` is missing, repeated, contradictory or malformed
    /// (400 `invalid_request`).
    #[error("{0}")]
    BadHost(&'static str),
    /// The path cannot be sent on (400 `invalid_request`).
    #[error("the path cannot be forwarded")]
    UnforwardablePath,
    /// No route serves the request (404).
    #[error("no route for this request")]
    NoRoute,
    /// The route does not serve the method (405, with the methods it serves).
    #[error("this route does not serve the method")]
    MethodNotAllowed(Vec<Method>),
    /// The credential was refused (400, 401, 403, or 503 when keys cannot be fetched).
    #[error("{}", .0.code())]
    Denied(Denial),
    /// The request body is larger than the route allows (413).
    #[error("the request body is too large")]
    BodyTooLarge,
    /// The client stopped sending its request body (408).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The upstream sent no response head in time (504).
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// The upstream could not be reached or failed mid-request (502); the detail is for the
    /// operator, never the client.
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
    /// A rate limit refused the request (429, with `Retry-After`).
    #[error("rate limit {limit:?} reached")]
    RateLimited {
        /// The limit's name.
        limit: String,
        /// Seconds until a request would be allowed.
        retry_after: u64,
    },
    /// A rate limit could not be checked (Redis did not answer) and refuses requests then
    /// (503, `on_unavailable = "deny"`).
    #[error("rate limit {0:?} cannot be checked")]
    LimitUnavailable(String),
    /// The route has as many requests in flight as it allows (503 at once, with
    /// `Retry-After`).
    #[error("the route is at its limit of requests in flight")]
    Overloaded,
    /// The gateway could not do its part (500), e.g. minting an internal token.
    #[error("{0}")]
    Internal(String),
}

impl ProxyError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Denied(d) => match d {
                Denial::MissingToken | Denial::InvalidToken { .. } | Denial::InvalidDpop(_) => {
                    StatusCode::UNAUTHORIZED
                }
                Denial::InvalidRequest(_) => StatusCode::BAD_REQUEST,
                Denial::InsufficientScope { .. } | Denial::AccessDenied(_) => StatusCode::FORBIDDEN,
                Denial::KeysUnavailable(_) | Denial::StateUnavailable(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::LimitUnavailable(_) | ProxyError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` of the JSON body (RFC 6750 §3.1 codes for credentials).
    pub fn error_code(&self) -> &'static str {
        match self {
            ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath => "invalid_request",
            ProxyError::NoRoute => "not_found",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::Denied(d) => match d {
                Denial::MissingToken => "missing_token",
                Denial::InvalidRequest(_) => "invalid_request",
                Denial::InvalidToken { .. } | Denial::InvalidDpop(_) => "invalid_token",
                Denial::InsufficientScope { .. } => "insufficient_scope",
                Denial::KeysUnavailable(_) | Denial::StateUnavailable(_) => {
                    "temporarily_unavailable"
                }
                Denial::AccessDenied(_) => "access_denied",
            },
            ProxyError::BodyTooLarge => "payload_too_large",
            ProxyError::BodyTimeout => "request_timeout",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::LimitUnavailable(_) => "temporarily_unavailable",
            ProxyError::Overloaded => "overloaded",
            ProxyError::UpstreamTimeout => "gateway_timeout",
            ProxyError::UpstreamFailed(_) => "bad_gateway",
            ProxyError::Internal(_) => "server_error",
        }
    }

    /// What the client is told (`error_description`): never an operator's detail. Every
    /// variant is listed, so a new one must say what the client sees.
    pub fn description(&self) -> String {
        match self {
            // These say nothing but what the client sent or met: their message is the
            // description.
            ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath
            | ProxyError::NoRoute
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout
            | ProxyError::RateLimited { .. }
            | ProxyError::Overloaded
            | ProxyError::UpstreamTimeout => self.to_string(),
            ProxyError::LimitUnavailable(_) => {
                "the request cannot be admitted right now".to_owned()
            }
            ProxyError::Denied(d) => match d {
                Denial::MissingToken => "an access token is required".to_owned(),
                Denial::InvalidRequest(why) | Denial::InvalidDpop(why) => why.clone(),
                Denial::InvalidToken { description, .. } => description.clone(),
                Denial::InsufficientScope { .. } => "the token lacks a required scope".to_owned(),
                Denial::KeysUnavailable(_) | Denial::StateUnavailable(_) => {
                    "the token cannot be checked right now".to_owned()
                }
                Denial::AccessDenied(_) => "the token does not allow this request".to_owned(),
            },
            ProxyError::UpstreamFailed(_) => "the upstream is unavailable".to_owned(),
            ProxyError::Internal(_) => "the request could not be completed".to_owned(),
        }
    }

    /// The stable code for the access log and audit, when the refusal has one.
    pub fn log_code(&self) -> Option<&'static str> {
        match self {
            ProxyError::Denied(d) => Some(d.code()),
            ProxyError::UpstreamFailed(_) => Some("ERR_GATEWAY_UPSTREAM"),
            ProxyError::UpstreamTimeout => Some("ERR_GATEWAY_UPSTREAM_TIMEOUT"),
            ProxyError::Internal(_) => Some("ERR_GATEWAY_INTERNAL"),
            ProxyError::RateLimited { .. } => Some("ERR_GATEWAY_RATE_LIMITED"),
            ProxyError::LimitUnavailable(_) => Some("ERR_GATEWAY_RATE_LIMIT_UNAVAILABLE"),
            ProxyError::Overloaded => Some("ERR_GATEWAY_OVERLOADED"),
            ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath
            | ProxyError::NoRoute
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout => None,
        }
    }

    /// Detail for the operator's log, never sent to the client.
    pub fn detail(&self) -> Option<String> {
        match self {
            ProxyError::Denied(Denial::KeysUnavailable(why) | Denial::AccessDenied(why)) => {
                Some(why.clone())
            }
            ProxyError::UpstreamFailed(why) => Some(format!("upstream failed: {why}")),
            ProxyError::Internal(why) => Some(why.clone()),
            ProxyError::LimitUnavailable(limit) => {
                Some(format!("rate limit {limit:?}: redis did not answer"))
            }
            ProxyError::RateLimited { .. } | ProxyError::Overloaded => None,
            ProxyError::Denied(_)
            | ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath
            | ProxyError::NoRoute
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout
            | ProxyError::UpstreamTimeout => None,
        }
    }

    /// Whose doing the failure is.
    pub fn origin(&self) -> Origin {
        match self {
            ProxyError::NonCanonicalPath(_)
            | ProxyError::BadHost(_)
            | ProxyError::UnforwardablePath
            | ProxyError::NoRoute
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout
            | ProxyError::RateLimited { .. } => Origin::Client,
            ProxyError::LimitUnavailable(_) | ProxyError::Overloaded => Origin::Internal,
            // The issuer's key server, which the gateway fetches from as from an upstream.
            ProxyError::Denied(Denial::KeysUnavailable(_)) => Origin::Upstream,
            // The store or Redis, this deployment's own.
            ProxyError::Denied(Denial::StateUnavailable(_)) => Origin::Internal,
            ProxyError::Denied(_) => Origin::Token,
            ProxyError::UpstreamTimeout | ProxyError::UpstreamFailed(_) => Origin::Upstream,
            ProxyError::Internal(_) => Origin::Internal,
        }
    }
}

impl From<crate::upstream::UpstreamError> for ProxyError {
    fn from(e: crate::upstream::UpstreamError) -> ProxyError {
        use crate::upstream::UpstreamError;
        match e {
            UpstreamError::Timeout => ProxyError::UpstreamTimeout,
            UpstreamError::Failed(why) => ProxyError::UpstreamFailed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with its status, `error` and origin.
    fn cases() -> Vec<(ProxyError, u16, &'static str, Origin)> {
        vec![
            (
                ProxyError::NonCanonicalPath("the path has dot segments"),
                400,
                "invalid_request",
                Origin::Client,
            ),
            (
                ProxyError::UnforwardablePath,
                400,
                "invalid_request",
                Origin::Client,
            ),
            (ProxyError::NoRoute, 404, "not_found", Origin::Client),
            (
                ProxyError::MethodNotAllowed(vec![Method::GET]),
                405,
                "method_not_allowed",
                Origin::Client,
            ),
            (
                ProxyError::Denied(Denial::MissingToken),
                401,
                "missing_token",
                Origin::Token,
            ),
            (
                ProxyError::Denied(Denial::InvalidRequest("x".into())),
                400,
                "invalid_request",
                Origin::Token,
            ),
            (
                ProxyError::Denied(Denial::InvalidDpop("x".into())),
                401,
                "invalid_token",
                Origin::Token,
            ),
            (
                ProxyError::Denied(Denial::InsufficientScope { scope: "a".into() }),
                403,
                "insufficient_scope",
                Origin::Token,
            ),
            (
                ProxyError::Denied(Denial::AccessDenied("rule 2".into())),
                403,
                "access_denied",
                Origin::Token,
            ),
            (
                ProxyError::Denied(Denial::KeysUnavailable("down".into())),
                503,
                "temporarily_unavailable",
                Origin::Upstream,
            ),
            (
                ProxyError::BodyTooLarge,
                413,
                "payload_too_large",
                Origin::Client,
            ),
            (
                ProxyError::BodyTimeout,
                408,
                "request_timeout",
                Origin::Client,
            ),
            (
                ProxyError::UpstreamTimeout,
                504,
                "gateway_timeout",
                Origin::Upstream,
            ),
            (
                ProxyError::UpstreamFailed("refused".into()),
                502,
                "bad_gateway",
                Origin::Upstream,
            ),
            (
                ProxyError::RateLimited {
                    limit: "per-client".into(),
                    retry_after: 2,
                },
                429,
                "rate_limited",
                Origin::Client,
            ),
            (
                ProxyError::LimitUnavailable("per-client".into()),
                503,
                "temporarily_unavailable",
                Origin::Internal,
            ),
            (ProxyError::Overloaded, 503, "overloaded", Origin::Internal),
            (
                ProxyError::Internal("mint".into()),
                500,
                "server_error",
                Origin::Internal,
            ),
        ]
    }

    #[test]
    fn every_variant_has_its_status_code_and_origin() {
        for (err, status, code, origin) in cases() {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.error_code(), code, "{err:?}");
            assert_eq!(err.origin(), origin, "{err:?}");
            // What the client is shown never carries the operator's detail.
            if let Some(detail) = err.detail() {
                assert!(!err.description().contains(&detail), "{err:?}");
            }
        }
    }

    #[test]
    fn operator_details_never_reach_the_client() {
        for err in [
            ProxyError::UpstreamFailed("http://10.0.0.5:8080: connection refused".into()),
            ProxyError::Internal("minting the internal token failed (ERR_X)".into()),
            ProxyError::Denied(Denial::KeysUnavailable("https://idp/jwks: 500".into())),
        ] {
            let detail = err.detail().unwrap();
            assert!(!err.description().contains(&detail), "{err:?}");
            assert!(!err.description().contains("10.0.0.5"), "{err:?}");
        }
        assert_eq!(
            ProxyError::UpstreamFailed("x".into()).log_code(),
            Some("ERR_GATEWAY_UPSTREAM")
        );
        assert_eq!(ProxyError::NoRoute.log_code(), None);
    }
}
