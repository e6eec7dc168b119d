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
use std::time::{Duration, Instant};

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

/// A client-supplied id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]` (safe in
/// logs and headers); anything else is replaced by 128 random bits.
fn sane_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| text.to_owned())
}

fn new_request_id() -> String {
    // A failed random generator gives zeros; the id is for correlation, not security.
    oauth::random_b64(16).unwrap_or_else(|_| jose::b64::encode([0u8; 16]))
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = sane_request_id(req.headers().get(&REQUEST_ID)).unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let info = response
        .extensions()
        .get::<::gateway::AccessInfo>()
        .cloned();
    access_log(
        &method,
        &path,
        response.status(),
        started.elapsed(),
        &id,
        info,
    );
    response
}

/// One JSON line per request on stderr. Never the query string (it may carry secrets) nor
/// any header value.
fn access_log(
    method: &axum::http::Method,
    path: &str,
    status: StatusCode,
    elapsed: Duration,
    id: &str,
    info: Option<::gateway::AccessInfo>,
) {
    let mut line = json!({
        "time": store::unix_now(),
        "request_id": id,
        "method": method.as_str(),
        "path": path,
        "status": status.as_u16(),
        "latency_ms": elapsed.as_secs_f64() * 1000.0,
    });
    if let (Some(info), Some(map)) = (info, line.as_object_mut()) {
        map.insert("route".into(), info.route.into());
        map.insert("client_id".into(), info.client_id.into());
        map.insert("sub".into(), info.sub.into());
        map.insert("token_hash".into(), info.token_hash.into());
        map.insert("upstream".into(), info.upstream.into());
        map.insert("denial".into(), info.denial.into());
        if let Some(detail) = info.detail {
            map.insert("detail".into(), detail.into());
        }
    }
    crate::log::line(&line);
}
