//! The respond phase: the upstream's response on its way back (hop-by-hop fields dropped, the
//! route's header changes, an accepted WebSocket upgrade tunnelled), and the one place a
//! [`ProxyError`] becomes the gateway's own response.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use store::AuditEvent;

use crate::auth::{Denial, RouteAuth};
use crate::client::BoxError;
use crate::rewrite::strip_hop_by_hop;
use crate::route::Route;
use crate::tunnel::{tunnel, TunnelEnd, TunnelLimits};
use crate::{AccessInfo, Context, Gateway, ProxyError, ResponseBody, REALM};

/// The upstream's response for the client: hop-by-hop fields dropped (kept for a protocol
/// switch), the route's header changes, and a WebSocket upgrade tunnelled both ways.
pub(crate) fn upstream_response(
    route: &Route,
    mut response: Response<Incoming>,
    on_upgrade: Option<(hyper::upgrade::OnUpgrade, TunnelLimits)>,
) -> Response<ResponseBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        if let Some((client_side, limits)) = on_upgrade {
            let upstream_side = hyper::upgrade::on(&mut response);
            let route = route.name.clone();
            tokio::spawn(async move {
                let end = tunnel(client_side, upstream_side, limits).await;
                if end != TunnelEnd::Closed {
                    tracing::info!(route, ?end, "tunnel closed by the gateway");
                }
            });
        }
    }
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, switching);
    route.response_headers.apply(&mut head.headers);
    Response::from_parts(head, body.map_err(BoxError::from).boxed_unsync())
}

impl Gateway {
    /// Denials are tallied per route, reason and client and written once per interval
    /// with their count (`store::AuditQueue::tally`): a flood of bad requests is a few
    /// events, not one per request.
    fn audit_denial(&self, denial: &Denial, route: &Route, auth: &RouteAuth, client: Option<&str>) {
        if *denial == Denial::MissingToken {
            // Not a token event: every browser probe would fill the trail.
            return;
        }
        let mut detail = serde_json::Map::new();
        detail.insert("route".into(), route.name.clone().into());
        self.audit.tally(AuditEvent {
            time: store::unix_now(),
            event: "gateway.denied".into(),
            client_id: client.map(str::to_owned),
            audience: Some(auth.audience.clone()),
            outcome: "failure".into(),
            reason: Some(denial.code().to_owned()),
            detail: Some(detail),
            ..AuditEvent::default()
        });
    }

    /// The one place a failure becomes a response: its status and JSON body with the request
    /// id, the RFC 6750 challenge for a refused credential (RFC 9449 §7.1 for DPoP, RFC 9728
    /// §5.1 `resource_metadata` on MCP routes), `Allow` for 405; and its access-log fields and
    /// audit event.
    pub(crate) fn refuse(
        &self,
        failure: &Failure<'_>,
        ctx: &Context,
        info: &mut AccessInfo,
    ) -> Response<ResponseBody> {
        let err = &failure.error;
        info.denial = err.log_code();
        info.detail = err.detail();
        let mut response = error(err.status(), failure.error_code(), &err.description(), ctx);
        match err {
            ProxyError::MethodNotAllowed(allowed) => {
                let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, v);
                }
            }
            ProxyError::Denied(denial) => {
                if let Some(route) = failure.route {
                    if let Some(auth) = &route.auth {
                        self.audit_denial(denial, route, auth, info.client_id.as_deref());
                    }
                }
                if let Some(challenge) = challenge(denial, failure) {
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            ProxyError::RateLimited { limit, retry_after } => {
                let body = json!({
                    "error": failure.error_code(),
                    "error_description": err.description(),
                    "limit": limit,
                    "request_id": ctx.request_id,
                });
                response = json_response(err.status(), &body);
                retry_after_field(response.headers_mut(), *retry_after);
            }
            ProxyError::LimitUnavailable(_) | ProxyError::Overloaded => {
                retry_after_field(response.headers_mut(), 1);
            }
            _ => {}
        }
        response
    }
}

/// `Retry-After` in whole seconds (at least 1: a client told 0 comes back at once).
pub(crate) fn retry_after_field(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// A failure and what its response needs besides the error: the route it happened on (for
/// the MCP challenge and the audit event), and whether the client used the DPoP scheme.
pub(crate) struct Failure<'g> {
    pub(crate) error: ProxyError,
    pub(crate) route: Option<&'g Route>,
    pub(crate) dpop_scheme: bool,
}

impl Failure<'_> {
    pub(crate) fn new(error: ProxyError) -> Self {
        Failure {
            error,
            route: None,
            dpop_scheme: false,
        }
    }

    /// The `error` code: the error's own, except that a DPoP proof at fault, presented with
    /// the DPoP scheme, is `invalid_dpop_proof` (RFC 9449 §7.1).
    fn error_code(&self) -> &'static str {
        match &self.error {
            ProxyError::Denied(Denial::InvalidDpop(_)) if self.dpop_scheme => "invalid_dpop_proof",
            other => other.error_code(),
        }
    }
}

/// Whether the request presents its token with the `DPoP` scheme.
pub(crate) fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 5 && v.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("dpop ")))
}

/// The `WWW-Authenticate` challenge for a refused credential; none when the keys could not be
/// fetched (a 503 is no challenge).
fn challenge(denial: &Denial, failure: &Failure<'_>) -> Option<String> {
    let err = &failure.error;
    let dpop_failure = matches!(denial, Denial::InvalidDpop(_));
    let mut challenge = if failure.dpop_scheme || dpop_failure {
        let algs: Vec<&str> = oauth::dpop::ALGORITHMS.iter().map(|a| a.name()).collect();
        format!("DPoP realm=\"{REALM}\", algs=\"{}\"", algs.join(" "))
    } else {
        format!("Bearer realm=\"{REALM}\"")
    };
    let code = match denial {
        // A 503 is no challenge, and a refusal by a rule is a plain 403: no new token helps.
        Denial::KeysUnavailable(_) | Denial::AccessDenied(_) => return None,
        Denial::MissingToken => None,
        _ => Some(failure.error_code()),
    };
    if let Some(code) = code {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quotable(&err.description())
        ));
    }
    if let Denial::InsufficientScope { scope } = denial {
        challenge.push_str(&format!(", scope=\"{}\"", quotable(scope)));
    }
    if let Some(m) = failure.route.and_then(|r| r.mcp.as_ref()) {
        challenge.push_str(&format!(
            ", resource_metadata=\"{}\"",
            quotable(&m.metadata_url)
        ));
    }
    Some(challenge)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 15] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

/// Text safe inside a quoted challenge parameter (RFC 6750 §3: no `"` or `\`, printable).
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn full(text: String) -> ResponseBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A small JSON error with the request id.
fn error(
    status: StatusCode,
    code: &str,
    description: &str,
    ctx: &Context,
) -> Response<ResponseBody> {
    json_response(
        status,
        &json!({ "error": code, "error_description": description, "request_id": ctx.request_id }),
    )
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
