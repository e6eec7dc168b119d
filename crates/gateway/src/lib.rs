//! tokengate's gateway: the request pipeline in front of upstream services.
//!
//! One request goes through these phases, in this order, over one [`Context`] and the
//! request's facts (`Gateway::pipeline` reads as this list):
//!
//! | phase | where | why there |
//! |---|---|---|
//! | route | [`route`] (and [`shed`], [`cors`]) | every later phase follows the route's rules; a path in another spelling could reach a laxer route; a route at its `max_in_flight` refuses here, before any work; a CORS preflight is answered here, since browsers send no token with it |
//! | authenticate | [`auth`] (with [`cache`], [`keys`]) | before any work for the request; cheapest checks first |
//! | authorize | [`authorize`] | only a verified token's claims are worth checking: required scopes, then the first matching rule |
//! | rate limit | [`ratelimit`] | keyed on a verified identity, before the upstream it spares |
//! | rewrite | `rewrite` | the upstream sees a verified identity and the gateway's forwarding headers only |
//! | cache | [`response_cache`] (with [`cache_control`], [`cache_storage`]) | after the limits, so a cached answer is still a counted request and never reaches a caller the earlier phases refused; after the rewrite, so that its key and `Vary` read what the upstream would be sent |
//! | forward | [`upstream`] | a healthy target, retried only when that is safe; bodies streamed both ways |
//! | respond | `respond` | the upstream's answer without hop-by-hop fields; the one place a [`ProxyError`] becomes a response; every response then gets its `RateLimit` and CORS fields |
//!
//! [`AccessInfo`] goes to the access log, [`metrics`] count every request, and each refused
//! token is audited (through a [`store::AuditQueue`]; a request without a token is not a token
//! event and is not).

pub mod auth;
pub mod authorize;
pub mod cache;
pub mod cache_control;
pub mod cache_storage;
pub mod client;
pub mod cors;
pub mod deadline;
mod error;
pub mod forwarded;
pub mod keys;
pub mod metrics;
pub mod own;
pub mod public_only;
pub mod ratelimit;
pub mod replay;
mod respond;
pub mod response_cache;
mod rewrite;
pub mod route;
pub mod shed;
#[cfg(test)]
mod test_headers;
pub mod trace;
pub mod tunnel;
pub mod upstream;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::{json, Value};
use tracing::Instrument as _;

/// Awaits an async phase inside its span when spans are recorded, and as it is otherwise. A
/// macro, not a function: the phase's future stays in the pipeline's own state, where a
/// wrapper would copy it into its own (the forward phase's is the size of an HTTP client
/// exchange) on every request.
macro_rules! in_phase {
    ($which:expr, $work:expr) => {{
        let span = phase($which);
        if span.is_disabled() {
            $work.await
        } else {
            $work.instrument(span).await
        }
    }};
}

use crate::auth::{Authenticator, Denial, RequestFacts, Verified};
use crate::cache::TokenCache;
use crate::client::{BoxError, OutBody};
use crate::metrics::{ByRoute, Metrics};
use crate::own::OwnIssuer;
use crate::respond::{json_response, Failure};
use crate::route::{Matched, Route, RouteTable};
use crate::upstream::is_idempotent;

pub use crate::error::{Origin, ProxyError};

/// The request id field: the gateway forwards the request's id in it, and the server puts it
/// on every response. One name for both, made once.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// The DPoP proof field (RFC 9449): read by the gateway and the token endpoint, never
/// forwarded upstream.
pub const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

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
    /// This node's place in the request's trace (sent upstream as `traceparent` and
    /// `tracestate`).
    pub trace: trace::TraceContext,
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
    /// `hit` when the response cache answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
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
    own: Arc<dyn OwnIssuer>,
    audit: store::AuditQueue,
    metrics: Arc<Metrics>,
    /// Each route's metric handles, resolved when the gateway is built.
    by_route: ByRoute,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    mcp: Vec<(String, Value)>,
    trusted_proxies: forwarded::TrustedProxies,
    service_limits: ratelimit::ServiceLimits,
    service_cors: Option<cors::Cors>,
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
    /// The built-in issuer ("self"): its keys, revocations and internal tokens.
    pub own: Arc<dyn OwnIssuer>,
    /// The verified-token cache (a new one per configuration: issuers may have changed).
    pub cache: Arc<TokenCache>,
    /// Where denials are audited.
    pub audit: store::AuditQueue,
    /// The metrics registry (one per process, kept across reloads).
    pub metrics: Arc<Metrics>,
    /// DPoP `iat` window, seconds.
    pub dpop_window: u64,
    /// DPoP proofs seen (kept across reloads, so a reload does not reopen replays).
    pub replay: Arc<replay::ReplayCache>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: forwarded::TrustedProxies,
}

impl Gateway {
    /// Builds the gateway and starts the routes' health checks. Refuses overlapping routes.
    pub fn new(
        mut routes: Vec<Route>,
        shared: Shared,
    ) -> Result<Gateway, route::OverlappingRoutes> {
        // Once per gateway, so that a request only adds to its route's series.
        let mut by_route = ByRoute::new(&shared.metrics);
        by_route.attach(&shared.metrics, &mut routes);
        let table = RouteTable::new(routes)?;
        let tasks = table
            .routes()
            .iter()
            .filter_map(|r| r.upstreams.spawn_health_checks())
            .collect();
        let issuer = shared.own.issuer().to_owned();
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
        gateway.by_route = by_route;
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
                revocations: Arc::clone(shared.own.revocations()),
                replay: shared.replay,
                dpop_window: shared.dpop_window,
            },
            own: shared.own,
            audit: shared.audit,
            by_route: ByRoute::new(&shared.metrics),
            metrics: shared.metrics,
            tasks: Vec::new(),
            mcp: Vec::new(),
            trusted_proxies: shared.trusted_proxies,
            service_limits: ratelimit::ServiceLimits::default(),
            service_cors: None,
        }
    }

    /// The gateway with the token service's CORS policy (rebuilt with it on every reload).
    pub fn with_service_cors(mut self, policy: Option<cors::Cors>) -> Gateway {
        self.service_cors = policy;
        self
    }

    /// The token service's CORS policy (`[token_service.cors]`).
    pub fn service_cors(&self) -> Option<&cors::Cors> {
        self.service_cors.as_ref()
    }

    /// The gateway with the token service's rate limits (they are rebuilt with it on every
    /// reload).
    pub fn with_service_limits(mut self, limits: ratelimit::ServiceLimits) -> Gateway {
        self.service_limits = limits;
        self
    }

    /// The token service's rate limits.
    pub fn service_limits(&self) -> &ratelimit::ServiceLimits {
        &self.service_limits
    }

    /// Peers whose forwarding headers are believed (for the token service's `per_ip`).
    pub fn trusted_proxies(&self) -> &forwarded::TrustedProxies {
        &self.trusted_proxies
    }

    /// Where token events are audited.
    pub fn audit(&self) -> &store::AuditQueue {
        &self.audit
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        self.routes.routes()
    }

    /// The metrics for `/metrics`, as OpenMetrics text ([`metrics::CONTENT_TYPE`]): the
    /// kept series and what this gateway's cache, audit queue and key sets say now.
    pub fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        let issuers = self
            .routes()
            .iter()
            .filter_map(|r| r.auth.as_ref())
            .flat_map(|a| a.issuers.iter().map(|i| &**i));
        let response_cache_bytes = self
            .routes()
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.cache.as_ref()?.bytes_held())))
            .collect();
        self.metrics.encode(&metrics::Scrape {
            response_cache_bytes,
            token_cache_entries: u64::try_from(self.auth.cache.len()).unwrap_or(u64::MAX),
            audit_events_dropped: self.audit.dropped(),
            jwks: keys::remote_fetches(issuers),
        })
    }

    /// Removes stored responses: of `route` (every cached route when `None`), under
    /// `path_prefix` (every path when `None`); how many entries went. Entries in Redis go
    /// for every node; entries in memory only on this node.
    pub async fn purge_cache(
        &self,
        route: Option<&str>,
        path_prefix: Option<&str>,
    ) -> Result<u64, response_cache::PurgeError> {
        let cached: Vec<(&str, &Arc<response_cache::ResponseCache>)> = self
            .routes()
            .iter()
            .filter(|r| route.is_none_or(|name| r.name == name))
            .filter_map(|r| Some((r.name.as_str(), r.cache.as_ref()?)))
            .collect();
        if let (Some(name), true) = (route, cached.is_empty()) {
            return Err(response_cache::PurgeError::UnknownRoute(name.to_owned()));
        }
        let mut purged = 0u64;
        for (name, cache) in cached {
            purged = purged.saturating_add(cache.purge(name, path_prefix).await?);
        }
        Ok(purged)
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
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let mut info = AccessInfo::default();
        let mut held = Held::default();
        let mut response = match self.pipeline(req, ctx, &mut info, &mut held).await {
            Ok(response) => response,
            Err(failure) => self.refuse(&failure, ctx, &mut info),
        };
        // Whatever the answer, a limited route's response says where its limit stands, and
        // the route's place in flight is kept until the response body ends.
        if let Some(nearest) = &held.nearest {
            nearest.set_fields(response.headers_mut());
        }
        if let Some((policy, origin)) = &held.cors {
            policy.decorate(origin.as_ref(), response.headers_mut());
        }
        if let Some(permit) = held.permit {
            response = response.map(|body| shed::Held::new(body, permit).boxed_unsync());
        }
        self.by_route
            .get(info.route.as_deref())
            .responded(response.status(), started.elapsed());
        response.extensions_mut().insert(info);
        response
    }

    /// The phases, in order; each says why it sits where it does.
    async fn pipeline<'g, B>(
        &'g self,
        req: Request<B>,
        ctx: &Context,
        info: &mut AccessInfo,
        held: &mut Held,
    ) -> Result<Response<ResponseBody>, Failure<'g>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let facts = Facts::of(&parts).map_err(|why| Failure::new(ProxyError::BadHost(why)))?;
        // Route first: every later phase follows the route's rules, and a path in another
        // spelling could otherwise reach a laxer route than the upstream will serve.
        let route = match phase(Phase::Route).in_scope(|| self.route(&parts, &facts))? {
            Routed::Route(route) => route,
            Routed::Answered(response) => return Ok(response),
            Routed::Preflight(route, response) => {
                info.route = Some(route.name.clone());
                return Ok(response);
            }
        };
        info.route = Some(route.name.clone());
        if let Some(policy) = &route.cors {
            let origin = parts.headers.get(http::header::ORIGIN).cloned();
            held.cors = Some((Arc::clone(policy), origin));
        }
        let on_route = |error| Failure {
            error,
            route: Some(route),
            dpop_scheme: false,
        };
        if let Some(limit) = &route.max_in_flight {
            let permit = limit.try_enter().ok_or_else(|| {
                self.metrics
                    .shed(Some(&route.name), metrics::Shed::RouteInFlight);
                on_route(ProxyError::Overloaded)
            })?;
            held.permit = Some(permit);
        }
        // Authenticate, then authorize: before any work for the request, cheapest checks
        // first, and only a verified token's claims are worth authorizing.
        let verified = in_phase!(
            Phase::Authenticate,
            self.authenticate(route, &parts, &facts, ctx, info)
        )
        .map_err(|denial| Failure {
            dpop_scheme: respond::uses_dpop_scheme(&parts.headers),
            ..on_route(ProxyError::Denied(denial))
        })?;
        // Rate limit: after authorization, so it counts a verified identity; before the
        // upstream, which it spares.
        if !route.rate_limits.is_empty() {
            let subject = ratelimit::Subject {
                verified: verified.as_deref(),
                headers: &parts.headers,
                client: self
                    .trusted_proxies
                    .client_address(ctx.peer, &parts.headers),
            };
            in_phase!(Phase::RateLimit, rate_limit(route, &subject, held)).map_err(on_route)?;
        }
        // Rewrite: the upstream sees a verified identity and the gateway's forwarding
        // headers only.
        let retryable = is_idempotent(&parts.method) && http_body::Body::is_end_stream(&body);
        let out = phase(Phase::Rewrite)
            .in_scope(|| {
                rewrite::upstream_request(
                    self.own.as_ref(),
                    route,
                    verified.as_deref(),
                    &mut parts,
                    &facts,
                    ctx,
                    self.trusted_proxies.contains(ctx.peer),
                )
            })
            .map_err(on_route)?;
        // Cache: after the limits, so a hit is a counted request that every earlier phase
        // allowed; after the rewrite, so that its key and the `Vary` values are what the
        // upstream would be sent (the forwarded identity, host and scheme included).
        let mut pending = None;
        if let Some(cache) = &route.cache {
            let has_body = !http_body::Body::is_end_stream(&body);
            let looked_up = look_up(
                cache,
                route,
                &parts,
                &facts,
                &out,
                has_body,
                verified.as_deref(),
            );
            match looked_up.await {
                response_cache::Lookup::Forward(forward) => {
                    forward.prepare(&mut parts.headers);
                    pending = Some(forward);
                }
                response_cache::Lookup::Hit(hit) => {
                    info.cache = Some("hit");
                    return Ok(hit);
                }
            }
        }
        let on_upgrade = out
            .upgrade
            .then(|| self.tunnel_end(route, &mut parts, verified.as_ref()))
            .flatten();
        // Forward: to a healthy target, retried only when that is safe.
        let (body, fate) = limited(body, route.max_body);
        let forwarded = in_phase!(
            Phase::Forward,
            route
                .upstreams
                .forward(parts, out.path_and_query, body, retryable)
        );
        let (response, target) = forwarded
            .map_err(|e| on_route(fate.client_error().unwrap_or_else(|| ProxyError::from(e))))?;
        info.upstream = Some(target);
        // Respond: the upstream's answer, without its hop-by-hop fields; stored when the
        // route caches it.
        let response = phase(Phase::Respond)
            .in_scope(|| respond::upstream_response(route, response, on_upgrade));
        match pending {
            Some(pending) => Ok(pending.finish(response).await),
            None => Ok(response),
        }
    }

    /// The client's side of an accepted WebSocket upgrade, with what bounds the tunnel
    /// (the route's lifetime, the token's expiry and revocation).
    fn tunnel_end(
        &self,
        route: &Route,
        parts: &mut http::request::Parts,
        verified: Option<&Arc<Verified>>,
    ) -> Option<(hyper::upgrade::OnUpgrade, tunnel::TunnelLimits)> {
        let client_side = parts.extensions.remove::<hyper::upgrade::OnUpgrade>()?;
        let limits = tunnel::TunnelLimits::new(
            route.max_tunnel_lifetime,
            verified,
            &self.auth.revocations,
            store::unix_now(),
        );
        Some((client_side, limits))
    }

    /// The route phase: a canonical path, the MCP metadata documents, then host, path and
    /// method against the route table.
    fn route(
        &self,
        parts: &http::request::Parts,
        facts: &Facts,
    ) -> Result<Routed<'_>, Failure<'_>> {
        if let Some(why) = route::non_canonical_path(&facts.path) {
            return Err(Failure::new(ProxyError::NonCanonicalPath(why)));
        }
        if parts.method == Method::GET {
            if let Some((_, doc)) = self.mcp.iter().find(|(p, _)| *p == facts.path) {
                return Ok(Routed::Answered(json_response(StatusCode::OK, doc)));
            }
        }
        // A CORS preflight is answered for the route of the method it asks about, before
        // any token: browsers send none with it.
        if let Some(requested) = cors::preflight_method(&parts.method, &parts.headers) {
            let host = facts.host.as_deref();
            if let Matched::Route(r) = self.routes.find(host, &facts.path, &requested) {
                if let Some(policy) = &r.cors {
                    let answer = policy.preflight(&parts.headers, &requested);
                    return Ok(Routed::Preflight(r, answer));
                }
            }
        }
        match self
            .routes
            .find(facts.host.as_deref(), &facts.path, &parts.method)
        {
            Matched::Route(r) => Ok(Routed::Route(r)),
            Matched::MethodNotAllowed(allowed) => {
                Err(Failure::new(ProxyError::MethodNotAllowed(allowed)))
            }
            Matched::None => Err(Failure::new(ProxyError::NoRoute)),
        }
    }

    /// The authenticate and authorize phases, for a route with token rules; the verified
    /// token (its claims, for the rewrite), and what the access log records of it.
    async fn authenticate(
        &self,
        route: &Route,
        parts: &http::request::Parts,
        facts: &Facts,
        ctx: &Context,
        info: &mut AccessInfo,
    ) -> Result<Option<Arc<Verified>>, Denial> {
        let Some(auth) = &route.auth else {
            return Ok(None);
        };
        let request = RequestFacts {
            method: parts.method.as_str(),
            tls: ctx.tls,
            authority: facts.authority.as_deref(),
            path: &facts.path,
            headers: &parts.headers,
            now: store::unix_now(),
        };
        let (verified, key) = self.auth.authenticate(auth, request).await?;
        info.client_id = verified.claims.client_id().map(String::from);
        info.sub = verified.claims.sub().map(String::from);
        info.token_hash = Some(oauth::hash_prefix(&key));
        phase(Phase::Authorize).in_scope(|| {
            authorize::authorize(route, auth, &verified, &parts.method, &facts.path)
        })?;
        Ok(Some(verified))
    }
}

/// The cache phase, on a route with `[routes.cache]`: a stored answer, or what the forward
/// needs to store the upstream's. Boxed: a route without a cache carries none of its state
/// in its requests' futures.
fn look_up<'a>(
    cache: &'a Arc<response_cache::ResponseCache>,
    route: &'a Route,
    parts: &'a http::request::Parts,
    facts: &'a Facts,
    out: &'a rewrite::UpstreamRequest,
    has_body: bool,
    verified: Option<&'a Verified>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = response_cache::Lookup> + Send + 'a>> {
    Box::pin(async move {
        let request = response_cache::CacheRequest {
            method: &parts.method,
            path: &facts.path,
            target: out.path_and_query.as_str(),
            headers: &parts.headers,
            has_body,
            upgrade: out.upgrade,
            verified,
        };
        in_phase!(Phase::Cache, cache.lookup(&route.name, &request))
    })
}

/// The rate-limit phase: every limit of the route that applies, in order, until one
/// refuses; the nearest to running out is kept for the response's fields.
async fn rate_limit(
    route: &Route,
    subject: &ratelimit::Subject<'_>,
    held: &mut Held,
) -> Result<(), ProxyError> {
    for limit in &route.rate_limits {
        if !limit.applies(subject.verified) {
            continue;
        }
        let outcome = limit
            .check(subject)
            .await
            .map_err(|_| ProxyError::LimitUnavailable(limit.name.clone()))?;
        let ratelimit::Outcome::Checked(verdict) = outcome else {
            continue;
        };
        let nearest = ratelimit::Nearest::closer(held.nearest.take(), limit, verdict);
        held.nearest = Some(nearest);
        if !verdict.allowed {
            return Err(ProxyError::RateLimited {
                limit: limit.name.clone(),
                retry_after: ratelimit::ceil_seconds(verdict.retry_after),
            });
        }
    }
    Ok(())
}

/// What a request holds until its response is made: the limit nearest to running out (for
/// the `RateLimit` fields), its place among the route's requests in flight, and the CORS
/// policy its response answers to.
#[derive(Default)]
struct Held {
    nearest: Option<ratelimit::Nearest>,
    permit: Option<shed::Permit>,
    /// The route's CORS policy and the request's `Origin`.
    cors: Option<(Arc<cors::Cors>, Option<http::HeaderValue>)>,
}

/// The phases, for their spans.
#[derive(Clone, Copy)]
enum Phase {
    Route,
    Authenticate,
    Authorize,
    RateLimit,
    Rewrite,
    Cache,
    Forward,
    Respond,
}

/// A phase's span, inside the request's: exported when tracing is on, otherwise disabled
/// (then one relaxed load per span). One macro call per name: a span's name is static.
fn phase(phase: Phase) -> tracing::Span {
    match phase {
        Phase::Route => tracing::info_span!(target: trace::TARGET, "route"),
        Phase::Authenticate => tracing::info_span!(target: trace::TARGET, "authenticate"),
        Phase::Authorize => tracing::info_span!(target: trace::TARGET, "authorize"),
        Phase::RateLimit => tracing::info_span!(target: trace::TARGET, "rate_limit"),
        Phase::Cache => tracing::info_span!(target: trace::TARGET, "cache"),
        Phase::Rewrite => tracing::info_span!(target: trace::TARGET, "rewrite"),
        Phase::Forward => tracing::info_span!(target: trace::TARGET, "forward"),
        Phase::Respond => tracing::info_span!(target: trace::TARGET, "respond"),
    }
}

/// What became of a request body on its way upstream, when it did not arrive whole.
#[derive(Debug, Default)]
struct BodyFate {
    /// Cut at the route's `max_body`.
    over_limit: AtomicBool,
    /// The client stopped sending it (`[server.timeouts] body` passed between two pieces).
    stalled: AtomicBool,
}

impl BodyFate {
    /// The client's error, if the body is why forwarding failed: however the client reports
    /// it (HTTP/1 passes the body's error on, h2 only resets the stream), a body stopped at
    /// the limit is the client's 413, and one that stopped coming its 408.
    fn client_error(&self) -> Option<ProxyError> {
        if self.over_limit.load(Ordering::Relaxed) {
            Some(ProxyError::BodyTooLarge)
        } else if self.stalled.load(Ordering::Relaxed) {
            Some(ProxyError::BodyTimeout)
        } else {
            None
        }
    }
}

/// The request body as sent upstream: cut at `max` bytes, with its fate recorded.
fn limited<B>(body: B, max: u64) -> (OutBody, Arc<BodyFate>)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let fate = Arc::new(BodyFate::default());
    let seen = Arc::clone(&fate);
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let body = Limited::new(body, limit)
        .map_err(move |e: BoxError| {
            if e.is::<LengthLimitError>() {
                seen.over_limit.store(true, Ordering::Relaxed);
            } else if e.is::<deadline::BodyStalled>() {
                seen.stalled.store(true, Ordering::Relaxed);
            }
            e
        })
        .boxed_unsync();
    (body, fate)
}

/// What the route phase found.
enum Routed<'g> {
    /// The route to follow.
    Route(&'g Route),
    /// Answered by the gateway itself (an MCP protected-resource metadata document).
    Answered(Response<ResponseBody>),
    /// A CORS preflight, answered for this route.
    Preflight(&'g Route, Response<ResponseBody>),
}

/// The request's facts every phase reads, taken from it once.
pub(crate) struct Facts {
    /// The authority the client addressed (the target's, or `Host`), checked.
    pub(crate) authority: Option<String>,
    /// That authority's host as routes compare it ([`route::route_host`]).
    pub(crate) host: Option<String>,
    /// The path, as sent.
    pub(crate) path: String,
}

impl Facts {
    /// The facts, or why the request's authority is refused.
    fn of(parts: &http::request::Parts) -> Result<Facts, &'static str> {
        let authority = route::request_authority(parts.version, &parts.uri, &parts.headers)?;
        Ok(Facts {
            authority: authority.map(String::from),
            host: authority.map(route::route_host),
            path: parts.uri.path().to_owned(),
        })
    }
}
