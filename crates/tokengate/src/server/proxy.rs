//! Requests no token-service endpoint took go to the gateway; `/metrics` shows its counters.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{App, RequestId};

/// Facts about the connection, put on each request by the listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl ConnInfo {
    /// What the gateway needs to know of a request on this connection.
    pub(super) fn context(self, request_id: String) -> gateway::Context {
        gateway::Context {
            request_id,
            peer: self.peer.map(|p| p.ip()),
            tls: self.tls,
        }
    }
}

pub(super) async fn proxy(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    req: Request,
) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or_default();
    let ctx = conn.context(id.0);
    super::enter_gateway(&app, &ctx, req).await
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        format!(
            "{}# HELP tokengate_log_lines_dropped_total Log lines dropped because stderr did not keep up.\n\
             # TYPE tokengate_log_lines_dropped_total counter\n\
             tokengate_log_lines_dropped_total {}\n",
            app.gateway().metrics_text(),
            crate::log::dropped()
        ),
    )
        .into_response()
}
