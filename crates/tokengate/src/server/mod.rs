//! The HTTP front of the token service (axum): OAuth endpoints, metadata, JWKS and the admin
//! API, on one listener. The protocol lives in the `oauth` crate; this module only moves
//! headers and bodies in and out, and turns outcomes into responses in one place each
//! ([`oauth::ErrorResponse`] for OAuth endpoints, [`oauth::AdminError`] for the admin API).

mod admin;
mod endpoints;
pub mod listener;
mod proxy;

pub(crate) use admin::{client_view, key_use, key_view};
pub use proxy::ConnInfo;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::RwLock;

use ::gateway::Gateway;
use axum::Router;
use oauth::Service;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// The request id header, taken from the client when it is sane, generated otherwise.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared state of every handler.
pub struct App {
    /// The token service.
    pub service: Arc<Service>,
    /// The admin API bearer token; `None` turns the admin API off.
    admin_token: Option<Zeroizing<String>>,
    /// The gateway now serving; replaced whole on reload.
    gateway: RwLock<Arc<Gateway>>,
    /// How to rebuild the gateway (`None`: nothing to reload from).
    reloader: Option<Box<dyn Fn() -> Result<Gateway, String> + Send + Sync>>,
}

impl App {
    /// State over a started service, without gateway routes (must run inside the runtime:
    /// it starts the audit writer).
    pub fn new(service: Arc<Service>, admin_token: Option<String>) -> Arc<App> {
        let parts = crate::boot::GatewayParts::new(Arc::clone(&service));
        let gateway = Gateway::empty(parts.shared(60));
        Self::with_gateway(service, admin_token, gateway, None)
    }

    /// State with a gateway and, for `serve --config`, a way to rebuild it on reload.
    pub fn with_gateway(
        service: Arc<Service>,
        admin_token: Option<String>,
        gateway: Gateway,
        reloader: Option<Box<dyn Fn() -> Result<Gateway, String> + Send + Sync>>,
    ) -> Arc<App> {
        Arc::new(App {
            service,
            admin_token: admin_token.map(Zeroizing::new),
            gateway: RwLock::new(Arc::new(gateway)),
            reloader,
        })
    }

    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Rebuilds the gateway from the configuration file and swaps it in; a configuration
    /// that fails to load or build is refused and the current one keeps serving. Requests in
    /// flight finish on the gateway they started with.
    pub fn reload(&self) -> Result<usize, String> {
        let rebuild = self
            .reloader
            .as_ref()
            .ok_or("nothing to reload: the server was started without --config")?;
        let fresh = rebuild()?;
        let routes = fresh.routes().len();
        *self.gateway.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(routes)
    }
}

/// The request id of the request being handled.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Every route, with the request-id and access-log layers around them.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(endpoints::routes())
        .merge(admin::routes(Arc::clone(&app)))
        .route("/metrics", axum::routing::get(proxy::metrics))
        .fallback(proxy::proxy)
        .with_state(app)
        // Outermost: every response, including errors and 404s, carries the request id and is
        // logged.
        .layer(middleware::from_fn(request_id))
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

/// The request's id: the client's `X-Request-Id` when it is 1–128 characters of
/// `[A-Za-z0-9._:-]` (safe in logs and headers), a new one ([`new_request_id`]) otherwise.
fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    let given = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok());
    match given {
        Some(text)
            if !text.is_empty()
                && text.len() <= 128
                && text.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
                }) =>
        {
            text.to_owned()
        }
        _ => new_request_id(),
    }
}

/// A per-process random prefix and a counter run through a keyed bijection: unique within
/// the process and, with 64 random bits of prefix, across nodes and restarts, without a
/// random draw per request, and without showing the request count or rate to whoever sees
/// the ids. The id is for correlation, not security: a failed random generator (zeros) only
/// makes it less unique across processes.
fn new_request_id() -> String {
    static KEYS: std::sync::OnceLock<[u64; 3]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let [prefix, k1, k2] = *KEYS.get_or_init(|| {
        let mut raw = [0u8; 24];
        let _ = aws_lc_rs::rand::fill(&mut raw);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(w)
        };
        [word(0), word(1), word(2)]
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed = mix(mix(n ^ k1) ^ k2);
    let mut raw = [0u8; 16];
    let (a, b) = raw.split_at_mut(8);
    a.copy_from_slice(&prefix.to_le_bytes());
    b.copy_from_slice(&mixed.to_le_bytes());
    jose::b64::encode(raw)
}

/// The SplitMix64 finaliser: a bijection on u64 that spreads every input bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id_of(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let response = next.run(req).await;
    finish(response, &id, &method, &path, started)
}

/// Paths of the token service, its metadata, the admin API and the metrics: the router's.
/// Everything else is gateway traffic, which the listener hands to the gateway directly,
/// past the router and its middleware (docs/benchmarks.md, section 2). Every route of the
/// router starts with one of these prefixes, and the router sends what it does not serve to
/// the gateway too, so the split changes no answer (a gateway route such as `/admin-ui/`
/// only takes the longer way).
pub fn is_service_path(path: &str) -> bool {
    ["/oauth2", "/.well-known", "/admin", "/metrics"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// A gateway request, from the listener: the request-id and access-log work of the
/// [`request_id`] middleware, around [`Gateway::handle`].
pub async fn gateway_request(
    app: &App,
    conn: ConnInfo,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let started = Instant::now();
    let ctx = conn.context(request_id_of(req.headers()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = enter_gateway(app, &ctx, req).await;
    finish(response, &ctx.request_id, &method, &path, started)
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

/// Puts the request id on the response and writes the access-log line.
fn finish(
    mut response: Response,
    id: &str,
    method: &axum::http::Method,
    path: &str,
    started: Instant,
) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let info = response.extensions().get::<::gateway::AccessInfo>();
    crate::log::line(&AccessLine {
        time: store::unix_now(),
        request_id: id,
        method: method.as_str(),
        path,
        status: response.status().as_u16(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        gateway: info,
    });
    response
}

/// One access-log line. Never the query string (it may carry secrets) nor any header value.
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    time: i64,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    gateway: Option<&'a ::gateway::AccessInfo>,
}
