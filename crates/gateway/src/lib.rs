//! tokengate's gateway: the request pipeline in front of upstream services.
//!
//! One request goes through these phases, in this order (each a module; the one-line reason
//! is why it sits where it does):
//!
//! 1. [`route`]: match host, path and method, so every later step knows the route's rules.
//! 2. [`auth`]: the token, from the verified-token [`cache`] or verified (decrypted first when
//!    it is a JWE) against the route's [`keys`]; then audience, time, revocation, DPoP and
//!    scope, cheapest first; a refusal stops here, before any upstream work.
//! 3. rewrite: path prefix, headers, hop-by-hop headers, the client's credential replaced by
//!    forwarded claims or an internal token, so upstreams get a verified identity only.
//! 4. [`upstream`]: round robin over healthy targets, timeouts, safe retries; bodies streamed
//!    both ways (server-sent events arrive as produced; WebSocket upgrades are tunnelled).
//! 5. the response, with the route's header changes; [`AccessInfo`] for the access log,
//!    [`metrics`], and an audit event for each denial (through a [`store::AuditQueue`]).
//!
//! Errors are one type, [`ProxyError`], and become HTTP in one place: RFC 6750 challenges,
//! 403 `insufficient_scope`, 404/405, 413, 502/504, as small JSON bodies with the request id.

pub mod auth;
pub mod cache;
pub mod client;
mod error;
pub mod keys;
pub mod metrics;
pub mod route;
pub mod upstream;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use oauth::Service;
use serde_json::{json, Value};
use store::AuditEvent;

use crate::auth::{Authenticator, Denial, ForwardToken, RequestFacts, RouteAuth, Verified};
use crate::cache::TokenCache;
use crate::client::{BoxError, OutBody};
use crate::metrics::Metrics;
use crate::route::{Matched, Route, RouteTable};
use crate::upstream::{is_idempotent, UpstreamError};

pub use crate::error::{Origin, ProxyError};

/// The response body type.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Facts about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Context {
    /// The request id (already chosen by the server).
    pub request_id: String,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// Whether the connection is TLS (for `X-Forwarded-Proto` and DPoP `htu`).
    pub tls: bool,
}

/// What the access log records about a gateway request (a response extension). Never a
/// token: only the first 8 hex digits of its SHA-256.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AccessInfo {
    /// The route's name.
    pub route: Option<String>,
    /// The token's `client_id`.
    pub client_id: Option<String>,
    /// The token's `sub`.
    pub sub: Option<String>,
    /// Prefix of the token's SHA-256.
    pub token_hash: Option<String>,
    /// The upstream target used.
    pub upstream: Option<String>,
    /// Why the request was refused, if it was.
    pub denial: Option<&'static str>,
    /// Detail for the operator (an upstream or key-fetch failure); never sent to clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The realm of every challenge.
const REALM: &str = "tokengate";

/// The gateway: routes and everything they share. Built from configuration; replaced as a
/// whole on reload (in-flight requests finish with the instance they started on).
pub struct Gateway {
    routes: RouteTable,
    auth: Authenticator,
    service: Arc<Service>,
    audit: store::AuditQueue,
    metrics: Arc<Metrics>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    mcp: Vec<(String, Value)>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes.routes().len())
            .finish_non_exhaustive()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What a gateway is built from, besides its routes.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The built-in token service (issuer "self", internal tokens, revocations).
    pub service: Arc<Service>,
    /// The verified-token cache (a new one per configuration: issuers may have changed).
    pub cache: Arc<TokenCache>,
    /// Where denials are audited.
    pub audit: store::AuditQueue,
    /// Counters (kept across reloads).
    pub metrics: Arc<Metrics>,
    /// DPoP `iat` window, seconds.
    pub dpop_window: u64,
    /// DPoP proofs seen (kept across reloads, so a reload does not reopen replays).
    pub replay: Arc<auth::ReplayCache>,
}

impl Gateway {
    /// Builds the gateway and starts the routes' health checks. Refuses overlapping routes.
    pub fn new(routes: Vec<Route>, shared: Shared) -> Result<Gateway, String> {
        let table = RouteTable::new(routes)?;
        let tasks = table
            .routes()
            .iter()
            .filter_map(|r| r.upstreams.spawn_health_checks())
            .collect();
        let issuer = shared.service.settings().issuer.clone();
        let mcp = table
            .routes()
            .iter()
            .filter_map(|r| {
                let m = r.mcp.as_ref()?;
                let auth = r.auth.as_ref()?;
                let servers: Vec<String> = auth
                    .issuers
                    .iter()
                    .map(|i| {
                        if i.name == "self" {
                            issuer.clone()
                        } else {
                            i.issuer.clone()
                        }
                    })
                    .collect();
                let doc = json!({
                    "resource": m.resource,
                    "authorization_servers": servers,
                    "scopes_supported": auth.required_scopes,
                    "bearer_methods_supported": ["header"],
                });
                Some((m.metadata_path.clone(), doc))
            })
            .collect();
        let mut gateway = Gateway::empty(shared);
        gateway.routes = table;
        gateway.tasks = tasks;
        gateway.mcp = mcp;
        Ok(gateway)
    }

    /// A gateway without routes (the token service alone).
    pub fn empty(shared: Shared) -> Gateway {
        Gateway {
            routes: RouteTable::default(),
            auth: Authenticator {
                cache: shared.cache,
                revocations: Arc::clone(shared.service.revocations()),
                replay: shared.replay,
                dpop_window: shared.dpop_window,
            },
            service: shared.service,
            audit: shared.audit,
            metrics: shared.metrics,
            tasks: Vec::new(),
            mcp: Vec::new(),
        }
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        self.routes.routes()
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        let (hits, misses) = self.auth.cache.counters();
        let entries = u64::try_from(self.auth.cache.len()).unwrap_or(u64::MAX);
        self.metrics.render(&[
            ("tokengate_token_cache_hits_total", "counter", hits),
            ("tokengate_token_cache_misses_total", "counter", misses),
            ("tokengate_token_cache_entries", "gauge", entries),
            (
                "tokengate_audit_events_dropped_total",
                "counter",
                self.audit.dropped(),
            ),
        ])
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.auth.cache
    }

    /// Handles one request that no token-service endpoint took.
    pub async fn handle<B>(&self, req: Request<B>, ctx: &Context) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut info = AccessInfo::default();
        let mut response = match self.pipeline(req, ctx, &mut info).await {
            Ok(response) => response,
            Err(failure) => self.refuse(&failure, ctx, &mut info),
        };
        self.metrics.request(
            info.route.as_deref().unwrap_or("-"),
            response.status().as_u16(),
        );
        response.extensions_mut().insert(info);
        response
    }

    async fn pipeline<'g, B>(
        &'g self,
        req: Request<B>,
        ctx: &Context,
        info: &mut AccessInfo,
    ) -> Result<Response<ResponseBody>, Failure<'g>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let authority = authority(&parts);
        let host = authority
            .as_deref()
            .map(|a| strip_port(a).to_ascii_lowercase());
        let path = parts.uri.path().to_owned();

        if let Some(why) = non_canonical_path(&path) {
            return Err(Failure::new(ProxyError::NonCanonicalPath(why)));
        }
        if parts.method == Method::GET {
            if let Some((_, doc)) = self.mcp.iter().find(|(p, _)| *p == path) {
                return Ok(json_response(StatusCode::OK, doc));
            }
        }
        let route = match self.routes.find(host.as_deref(), &path, &parts.method) {
            Matched::Route(r) => r,
            Matched::MethodNotAllowed(allowed) => {
                return Err(Failure::new(ProxyError::MethodNotAllowed(allowed)));
            }
            Matched::None => return Err(Failure::new(ProxyError::NoRoute)),
        };
        info.route = Some(route.name.clone());
        let on_route = |error| Failure {
            error,
            route: Some(route),
            dpop_scheme: false,
        };

        let mut verified: Option<Arc<Verified>> = None;
        if let Some(auth) = &route.auth {
            let facts = RequestFacts {
                method: parts.method.as_str(),
                tls: ctx.tls,
                authority: authority.as_deref(),
                path: &path,
                headers: &parts.headers,
                now: store::unix_now(),
            };
            match self.auth.authenticate(auth, facts).await {
                Ok((v, key)) => {
                    info.client_id = v.claims.client_id().map(String::from);
                    info.sub = v.claims.sub().map(String::from);
                    info.token_hash = Some(hex_prefix(&key));
                    verified = Some(v);
                }
                Err(denial) => {
                    return Err(Failure {
                        dpop_scheme: uses_dpop_scheme(&parts.headers),
                        ..on_route(ProxyError::Denied(denial))
                    });
                }
            }
        }

        if content_length(&parts.headers).is_some_and(|n| n > route.max_body) {
            return Err(on_route(ProxyError::BodyTooLarge));
        }

        // Rewrite.
        // Only WebSocket is tunnelled: an `h2c` upgrade would open a connection whose later
        // requests never pass through the route's checks.
        let upgrade = parts.method == Method::GET && is_websocket(&parts.headers);
        let on_upgrade = if upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let mut new_path = route.upstream_path(&path);
        if let Some(q) = parts.uri.query() {
            new_path.push('?');
            new_path.push_str(q);
        }
        let path_and_query = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(new_path))
            .map_err(|_| on_route(ProxyError::UnforwardablePath))?;
        // A request is re-sent only when its body is known to be empty (an h2 request can have a
        // body without Content-Length).
        let retryable = is_idempotent(&parts.method) && http_body::Body::is_end_stream(&body);
        strip_hop_by_hop(&mut parts.headers, upgrade);
        parts.headers.remove(header::HOST);
        forwarded_headers(&mut parts.headers, authority.as_deref(), ctx);
        route.request_headers.apply(&mut parts.headers);
        if let (Some(auth), Some(v)) = (&route.auth, &verified) {
            self.forward_identity(auth, v, &mut parts.headers)
                .map_err(on_route)?;
        }
        if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
            parts
                .headers
                .insert(HeaderName::from_static("x-request-id"), id);
        }
        let limit = usize::try_from(route.max_body).unwrap_or(usize::MAX);
        let body: OutBody = Limited::new(body, limit)
            .map_err(BoxError::from)
            .boxed_unsync();

        let (mut response, target) = route
            .upstreams
            .forward(parts, path_and_query, body, retryable)
            .await
            .map_err(|e| {
                on_route(match e {
                    UpstreamError::Timeout => ProxyError::UpstreamTimeout,
                    UpstreamError::BodyTooLarge => ProxyError::BodyTooLarge,
                    UpstreamError::Failed(why) => ProxyError::UpstreamFailed(why),
                })
            })?;
        info.upstream = Some(target);
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_side) = on_upgrade {
                let upstream_side = hyper::upgrade::on(&mut response);
                tokio::spawn(tunnel(client_side, upstream_side));
            }
        }
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers, switching);
        route.response_headers.apply(&mut head.headers);
        Ok(Response::from_parts(
            head,
            body.map_err(BoxError::from).boxed_unsync(),
        ))
    }

    /// Replaces the client's credential by what the route forwards.
    fn forward_identity(
        &self,
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
            headers.remove(HeaderName::from_static("dpop"));
        }
        for (claim, name) in &auth.forward_claims {
            if let Some(value) = v
                .claim_text(claim)
                .and_then(|t| HeaderValue::from_str(&t).ok())
            {
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
                        if *aud == auth.audience
                            && *exp - now > oauth::INTERNAL_TOKEN_LIFETIME / 2 =>
                    {
                        t.clone()
                    }
                    _ => {
                        let (t, exp) = self
                            .service
                            .internal_token(v.claims.as_map(), &auth.audience, now, v.expires_at)
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

    fn audit_denial(&self, denial: &Denial, route: &Route, auth: &RouteAuth, ctx: &Context) {
        if *denial == Denial::MissingToken {
            // Not a token event: every browser probe would fill the trail.
            return;
        }
        self.audit.record(AuditEvent {
            time: store::unix_now(),
            event: "gateway.denied".into(),
            audience: Some(auth.audience.clone()),
            outcome: "failure".into(),
            reason: Some(format!("{} (route {})", denial.code(), route.name)),
            request_id: Some(ctx.request_id.clone()),
            ..AuditEvent::default()
        });
    }

    /// The one place a failure becomes a response: its status and JSON body with the request
    /// id, the RFC 6750 challenge for a refused credential (RFC 9449 §7.1 for DPoP, RFC 9728
    /// §5.1 `resource_metadata` on MCP routes), `Allow` for 405; and its access-log fields and
    /// audit event.
    fn refuse(
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
                        self.audit_denial(denial, route, auth, ctx);
                    }
                }
                if let Some(challenge) = challenge(denial, failure, err) {
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            _ => {}
        }
        response
    }
}

/// A failure and what its response needs besides the error: the route it happened on (for
/// the MCP challenge and the audit event), and whether the client used the DPoP scheme.
struct Failure<'g> {
    error: ProxyError,
    route: Option<&'g Route>,
    dpop_scheme: bool,
}

impl Failure<'_> {
    fn new(error: ProxyError) -> Self {
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
fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 5 && v.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("dpop ")))
}

/// The `WWW-Authenticate` challenge for a refused credential; none when the keys could not be
/// fetched (a 503 is no challenge).
fn challenge(denial: &Denial, failure: &Failure<'_>, err: &ProxyError) -> Option<String> {
    let dpop_failure = matches!(denial, Denial::InvalidDpop(_));
    let mut challenge = if failure.dpop_scheme || dpop_failure {
        let algs: Vec<&str> = oauth::dpop::ALGORITHMS.iter().map(|a| a.name()).collect();
        format!("DPoP realm=\"{REALM}\", algs=\"{}\"", algs.join(" "))
    } else {
        format!("Bearer realm=\"{REALM}\"")
    };
    let code = match denial {
        Denial::KeysUnavailable(_) => return None,
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

/// The first 4 bytes of a token's hash in hex, for the access log.
fn hex_prefix(key: &[u8]) -> String {
    let mut out = String::with_capacity(8);
    for b in key.iter().take(4) {
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

fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
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

/// Why a path is not in the one spelling routes are matched on, if it is not. Routes match
/// the raw path, and upstreams often decode or collapse it: `/public/../admin`, `//admin`,
/// `/%61dmin` or `/x/..;/admin` would match one route here and mean another upstream. So a
/// path must be canonical: no `.`/`..` segments (plain or escaped), no empty segments, no
/// `;` (matrix parameters), no backslash, and percent-escapes only for characters that need
/// them (never an unreserved character, `/` or `\\`), each well formed.
fn non_canonical_path(path: &str) -> Option<&'static str> {
    if path.contains('\\') || path.contains(';') {
        return Some("the path has a backslash or a semicolon");
    }
    if path.contains("//") {
        return Some("the path has an empty segment");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Some("the path has a malformed percent-escape");
            };
            let unreserved =
                value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~');
            if unreserved || value == b'/' || value == b'\\' {
                return Some("the path escapes a character that needs no escaping");
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("the path has dot segments");
    }
    None
}

/// The authority the client addressed: `Host`, or the URI's (HTTP/2).
fn authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| h.trim_start_matches('['));
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
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

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names; keeps
/// `Connection: upgrade` and `Upgrade` for a protocol switch.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
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
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
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

/// `X-Forwarded-For` (appended), `-Proto` and `-Host`.
fn forwarded_headers(headers: &mut HeaderMap, authority: Option<&str>, ctx: &Context) {
    // The client's own `Forwarded` would contradict the X-Forwarded-* set here.
    headers.remove(header::FORWARDED);
    if let Some(ip) = ctx.peer {
        let prior = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(|p| format!("{p}, {ip}"))
            .unwrap_or_else(|| ip.to_string());
        if let Ok(v) = HeaderValue::from_str(&prior) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    let proto = if ctx.tls { "https" } else { "http" };
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
}

/// Copies bytes both ways between the client's and the upstream's upgraded connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    if let (Ok(c), Ok(u)) = (client.await, upstream.await) {
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
    }
}
