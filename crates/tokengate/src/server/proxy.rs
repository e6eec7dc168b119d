//! Requests no token-service endpoint took go to the gateway; `/metrics` shows its counters.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{App, RequestTrace};

/// Facts about the connection, put on each request by the listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

pub(super) async fn proxy(
    State(app): State<Arc<App>>,
    Extension(request): Extension<RequestTrace>,
    req: Request,
) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or_default();
    // The token service's paths are never the gateway's, even under a catch-all route: an
    // unknown `/admin/…` (or all of them on a listener without the admin API) is a 404
    // here, not a request forwarded upstream with the caller's admin token.
    let path = req.uri().path();
    let metadata = path.starts_with(crate::config::routes::PROTECTED_RESOURCE_METADATA);
    if crate::config::routes::is_reserved(path) && !metadata {
        return super::error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
            &request.id,
        );
    }
    let ctx = request.gateway_context(conn);
    super::enter_gateway(&app, &ctx, req).await
}

/// `/metrics`, behind `[server] metrics_token` when one is set (compared in constant time).
pub(super) async fn metrics(
    State(app): State<Arc<App>>,
    Extension(id): Extension<super::RequestId>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(expected) = &app.metrics_token {
        if !super::admin::bearer_matches(&headers, expected) {
            let mut refused = super::error_json(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid metrics bearer token is required",
                &id.0,
            );
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokengate-metrics\""),
            );
            return refused;
        }
    }
    metrics_text(&app)
}

/// The node's metrics in the OpenMetrics text format (`/metrics`, `GET /admin/metrics`).
pub(super) fn metrics_text(app: &App) -> Response {
    match app.gateway().metrics_text() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(gateway::metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        // Only a metric whose encoding fails gets here (none of ours can): an empty 500 rather
        // than a document cut short.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
