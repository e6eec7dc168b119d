//! The rewrite phase: what the upstream receives. The path with the route's prefixes, no
//! hop-by-hop fields, the gateway's own `X-Forwarded-*` ([`crate::forwarded`]), the route's header changes, and in
//! place of the client's credential a verified identity (forwarded claims, or an internal
//! token), so an upstream never has to trust what a client wrote.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::Method;

use crate::auth::{rejected, ForwardToken, RouteAuth, Verified};
use crate::forwarded::forwarded_headers;
use crate::own::OwnIssuer;
use crate::route::Route;
use crate::{Context, Facts, ProxyError};

/// The request as the upstream will see it, built by [`upstream_request`].
pub(crate) struct UpstreamRequest {
    /// The path and query on the upstream.
    pub path_and_query: PathAndQuery,
    /// Whether the client asked for a WebSocket upgrade (the only one tunnelled).
    pub upgrade: bool,
}

/// Rewrites `parts` for the route's upstream: refuses a body the route does not take, then
/// path, hop-by-hop fields, forwarded headers, header changes, identity, request id, trace
/// context.
pub(crate) fn upstream_request(
    own: &dyn OwnIssuer,
    route: &Route,
    verified: Option<&Verified>,
    parts: &mut http::request::Parts,
    facts: &Facts,
    ctx: &Context,
    from_trusted_proxy: bool,
) -> Result<UpstreamRequest, ProxyError> {
    if content_length(&parts.headers).is_some_and(|n| n > route.max_body) {
        return Err(ProxyError::BodyTooLarge);
    }
    // Only WebSocket is tunnelled: an `h2c` upgrade would open a connection whose later
    // requests never pass through the route's checks.
    let upgrade = parts.method == Method::GET && is_websocket(&parts.headers);
    let mut new_path = route.upstream_path(&facts.path);
    if let Some(q) = parts.uri.query() {
        new_path.push('?');
        new_path.push_str(q);
    }
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(new_path))
        .map_err(|_| ProxyError::UnforwardablePath)?;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.remove(header::HOST);
    forwarded_headers(
        &mut parts.headers,
        facts.authority.as_deref(),
        ctx,
        from_trusted_proxy,
    );
    route.request_headers.apply(&mut parts.headers);
    if let (Some(auth), Some(v)) = (&route.auth, verified) {
        forward_identity(own, auth, v, &mut parts.headers)?;
    }
    if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
        parts.headers.insert(crate::REQUEST_ID, id);
    }
    // Last, so no header rule can replace it: the upstream's spans join this request's trace.
    crate::trace::set_upstream_fields(&mut parts.headers, &ctx.trace);
    Ok(UpstreamRequest {
        path_and_query,
        upgrade,
    })
}

/// A message's `Content-Length`, when it has one that reads as a number.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Hop-by-hop fields that `http` has no constant for. Names made once: a name given as text
/// is parsed again on every use.
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names; keeps
/// `Connection: upgrade` and `Upgrade` for a protocol switch.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && *n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Replaces the client's credential by what the route forwards.
fn forward_identity(
    own: &dyn OwnIssuer,
    auth: &RouteAuth,
    v: &Verified,
    headers: &mut HeaderMap,
) -> Result<(), ProxyError> {
    // Also `X_User_Id` and other spellings that CGI-style upstreams read as the same
    // header.
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let normal = k.as_str().replace('_', "-");
            auth.forward_claims
                .iter()
                .any(|(_, name)| name.as_str() == normal)
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    if auth.forward_token != ForwardToken::Original {
        headers.remove(header::AUTHORIZATION);
        headers.remove(crate::DPOP);
    }
    for (claim, name) in &auth.forward_claims {
        // Claims that cannot be read refuse the request: forwarding it without them would
        // tell the upstream they are absent.
        let text = v.claim_text(claim).map_err(ProxyError::Denied)?;
        if let Some(value) = text.and_then(|t| HeaderValue::from_str(&t).ok()) {
            headers.insert(name.clone(), value);
        }
    }
    if auth.forward_token == ForwardToken::Internal {
        let now = store::unix_now();
        let token = {
            let mut slot = v.internal.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                // Reused while it has most of its life left, for the same audience only.
                Some((aud, t, exp))
                    if *aud == auth.audience && *exp - now > oauth::INTERNAL_TOKEN_LIFETIME / 2 =>
                {
                    t.clone()
                }
                _ => {
                    let claims = v
                        .claims
                        .as_map()
                        .map_err(|e| ProxyError::Denied(rejected(&e)))?;
                    let (t, exp) = own
                        .internal_token(claims, &auth.audience, now, v.expires_at)
                        .map_err(|e| {
                            ProxyError::Internal(format!(
                                "minting the internal token failed ({})",
                                e.code()
                            ))
                        })?;
                    *slot = Some((auth.audience.clone(), t.clone(), exp));
                    t
                }
            }
        };
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ProxyError::Internal("the internal token is not a header value".to_owned())
        })?;
        headers.insert(header::AUTHORIZATION, value);
    }
    Ok(())
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
