//! The demo upstream `tokengate dev` puts behind its routes: it answers every request with
//! what it received from the gateway (method, path, the forwarded identity headers, the
//! body), so the printed curl commands show what an upstream sees; and `GET /api/rates`, a
//! response the gateway may cache.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use serde_json::json;

use crate::error::CliError;

/// Headers the demo echoes (the identity the gateway forwards, and the request id).
const SHOWN: [&str; 4] = ["x-user-id", "x-client-id", "x-scopes", "x-request-id"];

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut seen = serde_json::Map::new();
    for name in SHOWN {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            seen.insert(name.into(), v.into());
        }
    }
    let authorization = headers.contains_key(axum::http::header::AUTHORIZATION);
    let body = json!({
        "upstream": "tokengate dev demo",
        "method": method.as_str(),
        "path": uri.path(),
        "headers": seen,
        "saw_client_token": authorization,
        "body": String::from_utf8_lossy(&body),
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// `GET /api/rates`: exchange rates the gateway may keep for 30 seconds (the demo's cached
/// route); `generated_at` shows whether an answer came from the upstream or the cache.
async fn rates() -> impl IntoResponse {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let body = json!({
        "upstream": "tokengate dev demo",
        "base": "EUR",
        "rates": { "USD": 1.08, "GBP": 0.86, "JPY": 162.5 },
        "generated_at_ms": now,
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CACHE_CONTROL, "max-age=30"),
        ],
        body.to_string(),
    )
}

/// Starts the demo upstream on a free loopback port.
pub async fn start() -> Result<SocketAddr, CliError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CliError::io("starting the demo upstream", &e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::io("starting the demo upstream", &e))?;
    let app = axum::Router::new()
        .route("/api/rates", axum::routing::get(rates))
        .fallback(echo);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
