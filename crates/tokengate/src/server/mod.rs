//! The HTTP front of the token service (axum): OAuth endpoints, metadata, JWKS and the admin
//! API, on one listener. The protocol lives in the `oauth` crate; this module only moves
//! headers and bodies in and out, and turns outcomes into responses in one place each
//! ([`oauth::ErrorResponse`] for OAuth endpoints, [`oauth::AdminError`] for the admin API).

mod admin;
mod client_documents;
mod connection;
mod console;
pub mod dev_client;
mod endpoints;
pub mod health;
mod limits;
pub mod listener;
mod pages;
mod provider;
mod proxy;
mod request;
mod sign_in;

pub(crate) use admin::{client_view, key_use, key_view};
pub use proxy::ConnInfo;
pub use request::RequestTrace;

use std::sync::Arc;
use tracing::Instrument as _;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::RwLock;

use ::gateway::Gateway;
use axum::Router;
use oauth::Service;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// The request id header, taken from the client when it is sane, generated otherwise.
pub use gateway::REQUEST_ID;

/// What the operator sets for the whole node: the bearer tokens that open the admin API and
/// `/metrics`, and the node's concurrency bounds.
#[derive(Default)]
pub struct Access {
    /// The admin API's; `None` turns the admin API off.
    pub admin_token: Option<String>,
    /// `/metrics`'s; `None` leaves it open.
    pub metrics_token: Option<String>,
    /// `[server] max_in_flight`: requests in flight on the public surface at most.
    pub max_in_flight: Option<usize>,
    /// `[server] max_connections`: open connections per public listener at most.
    pub max_connections: Option<usize>,
    /// `[redis]`'s connection, which readiness checks.
    pub redis: Option<store::redis::Redis>,
}

/// Shared state of every handler.
pub struct App {
    /// The token service.
    pub service: Arc<Service>,
    /// The admin API bearer token; `None` turns the admin API off.
    admin_token: Option<Zeroizing<String>>,
    /// The bearer token `/metrics` requires; `None` leaves it open.
    metrics_token: Option<Zeroizing<String>>,
    /// Failed admin authentications, audited once per interval.
    pub admin_failures: admin::AuthFailures,
    /// The web console's signed-in browsers (this node's).
    pub(crate) console: console::Sessions,
    /// The configuration in effect, for `GET /admin/config`.
    shown: RwLock<Shown>,
    /// Held while `POST /admin/audit/verify` runs: one at a time per node.
    pub(crate) audit_verification: tokio::sync::Mutex<()>,
    /// The gateway now serving; replaced whole on reload.
    gateway: RwLock<Arc<Gateway>>,
    /// How to rebuild the gateway (`None`: nothing to reload from).
    reloader: Option<Reloader>,
    /// The node's bound on requests in flight (public surface only: the admin listener
    /// stays reachable under load).
    pub(crate) in_flight: Option<Arc<::gateway::shed::InFlightLimit>>,
    /// Open connections per public listener at most.
    pub(crate) max_connections: Option<usize>,
    /// What `/readyz` checks besides the service, and whether shutdown began.
    pub readiness: health::Readiness,
    /// The OpenID Provider users sign in at, made on first use.
    upstream: std::sync::OnceLock<Result<Arc<provider::Upstream>, String>>,
}

impl App {
    /// State over a started service, without gateway routes (must run inside the runtime:
    /// it starts the audit writer).
    pub fn new(service: Arc<Service>, admin_token: Option<String>) -> Arc<App> {
        let parts = crate::boot::GatewayParts::new(Arc::clone(&service));
        let gateway = Gateway::empty(parts.shared(crate::boot::SharedSettings::default()));
        let access = Access {
            admin_token,
            ..Access::default()
        };
        Self::with_gateway(service, access, gateway, None)
    }

    /// State with a gateway and, for `serve --config`, a way to rebuild it on reload.
    pub fn with_gateway(
        service: Arc<Service>,
        access: Access,
        gateway: Gateway,
        reloader: Option<Reloader>,
    ) -> Arc<App> {
        if let Some(fetcher) =
            client_documents::DocumentClient::for_setting(service.metadata_documents())
        {
            service.use_document_fetcher(Arc::new(fetcher));
        }
        Arc::new(App {
            service,
            admin_token: access.admin_token.map(Zeroizing::new),
            metrics_token: access.metrics_token.map(Zeroizing::new),
            admin_failures: admin::AuthFailures::default(),
            console: console::Sessions::default(),
            shown: RwLock::new(Shown::default()),
            audit_verification: tokio::sync::Mutex::new(()),
            gateway: RwLock::new(Arc::new(gateway)),
            reloader,
            in_flight: access
                .max_in_flight
                .map(::gateway::shed::InFlightLimit::new),
            max_connections: access.max_connections,
            readiness: health::Readiness::new(access.redis),
            upstream: std::sync::OnceLock::new(),
        })
    }

    /// Records the effective settings the node started with (`Config::effective`), which
    /// `GET /admin/config` shows.
    pub fn show_configuration(&self, effective: Value) {
        self.shown
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .effective = effective;
    }

    /// The configuration in effect, and whether it can be reloaded.
    pub(crate) fn shown_configuration(&self) -> (Shown, bool) {
        let shown = self.shown.read().unwrap_or_else(|e| e.into_inner()).clone();
        (shown, self.reloader.is_some())
    }

    /// The admin API's bearer token, if the admin API (and with it the console) is on.
    pub(crate) fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref().map(String::as_str)
    }

    /// The client of the OpenID Provider (one per node: its pool, metadata and keys).
    pub(crate) fn upstream(&self) -> Result<Arc<provider::Upstream>, oauth::ErrorResponse> {
        match self
            .upstream
            .get_or_init(|| provider::Upstream::new().map(Arc::new))
        {
            Ok(upstream) => Ok(Arc::clone(upstream)),
            Err(why) => {
                tracing::error!("no HTTP client for the OpenID Provider: {why}");
                Err(oauth::ErrorResponse::new(
                    oauth::ErrorKind::ServerError,
                    "internal error (no HTTP client for the sign-in provider)",
                ))
            }
        }
    }

    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Rebuilds the gateway from the configuration file and swaps it in; a configuration
    /// that fails to load or build is refused and the current one keeps serving. Requests in
    /// flight finish on the gateway they started with.
    pub fn reload(&self) -> Result<(usize, String), String> {
        let rebuild = self
            .reloader
            .as_ref()
            .ok_or("nothing to reload: the server was started without --config")?;
        let Rebuilt {
            gateway,
            fingerprint,
            effective,
        } = rebuild()?;
        let count = gateway.routes().len();
        *self.gateway.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(gateway);
        let mut shown = self.shown.write().unwrap_or_else(|e| e.into_inner());
        if let Some(settings) = shown.effective.as_object_mut() {
            for key in RELOADED {
                settings.insert(key.into(), effective.get(key).cloned().unwrap_or_default());
            }
        }
        shown.reloaded = Some((store::unix_now(), fingerprint.clone()));
        Ok((count, fingerprint))
    }

    /// [`App::reload`], audited: `config.reloaded` with the new configuration's SHA-256 (or
    /// why it was refused), whether asked by the admin API (`request_id`) or by SIGHUP.
    pub async fn reload_audited(&self, request_id: Option<&str>) -> Result<usize, String> {
        let result = self.reload();
        let mut detail = serde_json::Map::new();
        let (outcome, reason) = match &result {
            Ok((routes, hash)) => {
                detail.insert("fingerprint".into(), hash.clone().into());
                detail.insert("routes".into(), (*routes).into());
                ("success", None)
            }
            Err(why) => ("failure", Some(why.chars().take(500).collect())),
        };
        let event = store::AuditEvent {
            time: store::unix_now(),
            event: "config.reloaded".into(),
            outcome: outcome.into(),
            reason,
            request_id: request_id.map(str::to_owned),
            detail: (!detail.is_empty()).then_some(detail),
            ..store::AuditEvent::default()
        };
        if let Err(e) = self.service.store().append_audit(&event).await {
            tracing::error!("a configuration reload was not audited: {e}");
        }
        result.map(|(routes, _)| routes)
    }
}

/// Rebuilds the gateway from the configuration file ([`Rebuilt`]).
pub type Reloader = Box<dyn Fn() -> Result<Rebuilt, String> + Send + Sync>;

/// What a reload built from the configuration file.
pub struct Rebuilt {
    /// The new gateway.
    pub gateway: Gateway,
    /// The keyed fingerprint of the file's text ([`oauth::Service::fingerprint`]).
    pub fingerprint: String,
    /// The file's effective settings (`Config::effective`), of which a reload applies
    /// [`RELOADED`].
    pub effective: Value,
}

/// The effective settings a reload replaces in what `GET /admin/config` shows. A reload
/// also rebuilds the gateway's issuers, rate limits and cache settings, but parts of each
/// stay as the node started (token exchange's issuers, the DPoP replay cache's Redis), so
/// only the routes, which a reload replaces whole, are shown as reloaded.
const RELOADED: [&str; 1] = ["routes"];

/// The configuration in effect, as `GET /admin/config` shows it: the effective settings of
/// the start, with the routes of the last successful reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shown {
    pub effective: Value,
    /// When the routes were last reloaded (Unix seconds) and the file's fingerprint then.
    pub reloaded: Option<(i64, String)>,
}

/// The request id of the request being handled.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: the token service, the gateway, the admin API and `/metrics` (one
    /// listener, the default).
    All,
    /// The token service and the gateway (the main listener when `admin_listen` is set).
    Public,
    /// The admin API and `/metrics` only (`admin_listen`).
    Admin,
}

/// Every route, with the request-id and access-log layers around them.
pub fn router(app: Arc<App>) -> Router {
    surface_router(app, Surface::All)
}

/// The routes of one surface, with the request-id and access-log layers around them. On the
/// public surface `/admin/` and `/metrics` are 404 (never the gateway's: a catch-all route
/// would forward them upstream); on the admin surface everything but them is 404.
pub fn surface_router(app: Arc<App>, surface: Surface) -> Router {
    // Probes answer on every listener: a load balancer checks the main one, Kubernetes may
    // check the admin one (never limited by max_connections or max_in_flight).
    let mut router = health::routes();
    if surface != Surface::Admin {
        router = router.merge(endpoints::routes()).merge(
            sign_in::routes().merge(dev_client::routes()).route_layer(
                middleware::from_fn_with_state(Arc::clone(&app), limits::per_address),
            ),
        );
    }
    // On the public surface `/admin/` and `/metrics` reach the fallback, which answers
    // reserved paths with 404 rather than hand them to the gateway.
    if surface != Surface::Public {
        router = router
            .merge(admin::routes(Arc::clone(&app)))
            .merge(console::routes(Arc::clone(&app)))
            // The admin API again under the console's path, where the browser sends the
            // console's cookie (which never goes to the gateway's routes and their upstreams).
            .nest(
                console::ADMIN_API,
                admin::routes(Arc::clone(&app))
                    .layer(middleware::from_fn(console::console_headers)),
            )
            .route("/metrics", axum::routing::get(proxy::metrics));
    }
    let router = if surface == Surface::Admin {
        router.fallback(not_found)
    } else {
        router
            .fallback(proxy::proxy)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&app),
                service_cors,
            ))
    };
    router
        .with_state(app)
        // Outermost: every response, including errors and 404s, carries the request id and is
        // logged.
        .layer(middleware::from_fn(request_id))
}

async fn not_found(axum::Extension(id): axum::Extension<RequestId>) -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        "not_found",
        "the admin listener serves /admin/, /console/, /metrics, /healthz and /readyz only",
        &id.0,
    )
}

/// The answer to a request past `[server] max_in_flight`: 503 at once, with `Retry-After`,
/// its request id and access-log line, counted in the metrics.
pub(crate) fn shed_request<B>(app: &App, req: &hyper::Request<B>) -> Response {
    let request = RequestTrace::start(req.method(), req.uri().path(), req.headers());
    app.gateway()
        .metrics()
        .shed(None, ::gateway::metrics::Shed::ServerInFlight);
    let mut response = error_json(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the server is at its limit of requests in flight",
        &request.id,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    request.finish(response)
}

/// A small JSON error body with the request id.
pub(crate) fn error_json(status: StatusCode, code: &str, description: &str, id: &str) -> Response {
    let body = json!({ "error": code, "error_description": description, "request_id": id });
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `[token_service.cors]` for `/oauth2/…` and `/.well-known/…`: preflights answered here,
/// responses given their CORS fields (the gateway's routes have their own, `[routes.cors]`).
async fn service_cors(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/oauth2/") || path.starts_with("/.well-known/")) || is_browser_page(path)
    {
        return next.run(req).await;
    }
    let gateway = app.gateway();
    let Some(policy) = gateway.service_cors() else {
        return next.run(req).await;
    };
    if let Some(requested) = ::gateway::cors::preflight_method(req.method(), req.headers()) {
        return policy
            .preflight(req.headers(), &requested)
            .map(axum::body::Body::new);
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(req).await;
    policy.decorate(origin.as_ref(), response.headers_mut());
    response
}

/// The pages a user's browser visits (sign-in, consent, the provider's and the dev client's
/// callbacks): never readable cross-origin, whatever `[token_service.cors]` allows, or a page
/// of an allowed origin could read the consent form's CSRF value and approve for the user.
fn is_browser_page(path: &str) -> bool {
    path == oauth::paths::AUTHORIZE
        || path.starts_with("/oauth2/authorize/")
        || path == oauth::upstream::CALLBACK
        || path.starts_with("/oauth2/dev/")
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let request = RequestTrace::start(req.method(), req.uri().path(), req.headers());
    req.extensions_mut().insert(RequestId(request.id.clone()));
    req.extensions_mut().insert(request.clone());
    // The gateway checks the authority of its own requests; the token service's get the
    // same check here (RFC 9112 §3.2: a missing, repeated or malformed Host is a 400).
    if let Err(why) = ::gateway::route::request_authority(req.version(), req.uri(), req.headers()) {
        let refused = error_json(StatusCode::BAD_REQUEST, "invalid_request", why, &request.id);
        return request.finish(refused);
    }
    let response = if request.span.is_disabled() {
        next.run(req).await
    } else {
        next.run(req).instrument(request.span.clone()).await
    };
    request.finish(response)
}

/// Paths of the token service, its metadata, the admin API, the console and the metrics: the
/// router's.
/// Everything else is gateway traffic, which the listener hands to the gateway directly,
/// past the router and its middleware (docs/benchmarks.md, section 2). Every route of the
/// router starts with one of these prefixes, and the router sends what it does not serve to
/// the gateway too, so the split changes no answer (a gateway route such as `/admin-ui/`
/// only takes the longer way).
pub fn is_service_path(path: &str) -> bool {
    crate::config::routes::PROBES.contains(&path)
        || ["/oauth2", "/.well-known", "/admin", "/console", "/metrics"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// A gateway request, from the listener: what the [`request_id`] middleware does for the
/// router's requests, around [`enter_gateway`].
pub async fn gateway_request<B>(app: &App, conn: ConnInfo, req: hyper::Request<B>) -> Response
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<::gateway::client::BoxError>,
{
    let request = RequestTrace::start(req.method(), req.uri().path(), req.headers());
    let ctx = request.gateway_context(conn);
    // Branches rather than a wrapper function, which would copy the request's whole future
    // into its own on every request; the span is entered only when it is recorded.
    let response = if request.span.is_disabled() {
        enter_gateway(app, &ctx, req).await
    } else {
        enter_gateway(app, &ctx, req)
            .instrument(request.span.clone())
            .await
    };
    request.finish(response)
}

/// The one way into the gateway, from the listener's fast path ([`gateway_request`]) and from
/// the router's fallback alike: the gateway current at the start serves the whole request,
/// and a HEAD response loses its body.
pub(crate) async fn enter_gateway<B>(
    app: &App,
    ctx: &::gateway::Context,
    req: hyper::Request<B>,
) -> Response
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<::gateway::client::BoxError>,
{
    let head = req.method() == axum::http::Method::HEAD;
    // Hold this gateway for the whole request: a reload swaps in a new one for later requests.
    let gateway = app.gateway();
    let mut response = gateway.handle(req, ctx).await.map(axum::body::Body::new);
    if head {
        // hyper drops a HEAD response's body on HTTP/1.1 but sends it on h2, where it is a
        // protocol error.
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sign_in_pages_are_never_under_service_cors() {
        for page in [
            "/oauth2/authorize",
            "/oauth2/authorize/sign-in",
            "/oauth2/authorize/consent",
            "/oauth2/callback",
            "/oauth2/dev/start",
            "/oauth2/dev/callback",
        ] {
            assert!(super::is_browser_page(page), "{page}");
        }
        for api in [
            "/oauth2/token",
            "/oauth2/register",
            "/oauth2/jwks",
            "/oauth2/revoke",
            "/oauth2/authorizex",
            "/.well-known/oauth-authorization-server",
        ] {
            assert!(!super::is_browser_page(api), "{api}");
        }
    }
}
