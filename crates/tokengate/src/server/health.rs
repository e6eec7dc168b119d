//! `GET /healthz` and `GET /readyz`, for load balancers and Kubernetes probes, on every
//! listener and without credentials (they say nothing secret).
//!
//! - `/healthz`: the process answers (liveness). Nothing else is checked, so a database
//!   outage never gets a healthy process restarted.
//! - `/readyz`: the node can do its work (readiness): the store answers, the key ring is
//!   loaded with an active signing key, Redis answers when `[redis]` is configured, and the
//!   node is not shutting down. 503 with the reason otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use store::redis::Redis;

use super::{json_response, App};

/// Paths of the probes.
pub const HEALTHZ: &str = "/healthz";
/// See [`HEALTHZ`].
pub const READYZ: &str = "/readyz";

/// Longest wait for each dependency's answer: a probe must answer before its own timeout
/// (Kubernetes' default is 1 s) even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// What readiness depends on besides the service: Redis, and whether shutdown began.
#[derive(Debug, Default)]
pub struct Readiness {
    /// `[redis]`'s connection, when configured.
    redis: Option<Redis>,
    /// Set on SIGTERM: the node is leaving and must get no new traffic.
    draining: AtomicBool,
}

impl Readiness {
    /// Readiness that also needs `redis` to answer, when given.
    pub fn new(redis: Option<Redis>) -> Readiness {
        Readiness {
            redis,
            draining: AtomicBool::new(false),
        }
    }

    /// From now on `/readyz` answers 503 (shutdown began).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// The probes' routes.
pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
}

async fn healthz() -> Response {
    probe_answer(StatusCode::OK, &json!({ "status": "ok" }))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let mut checks = Map::new();
    let mut failing = Vec::new();
    let mut record = |name: &str, outcome: Result<(), String>| {
        let shown = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(why) => {
                failing.push(format!("{name}: {why}"));
                why
            }
        };
        checks.insert(name.to_owned(), Value::String(shown));
    };
    record("store", store_check(&app).await);
    record("keys", keys_check(&app));
    if let Some(redis) = &app.readiness.redis {
        record("redis", redis_check(redis).await);
    }
    if app.readiness.draining.load(Ordering::Relaxed) {
        failing.insert(0, "shutting down".to_owned());
    }
    if failing.is_empty() {
        return probe_answer(
            StatusCode::OK,
            &json!({ "status": "ready", "checks": checks }),
        );
    }
    let body = json!({
        "status": "not ready",
        "reason": failing.join("; "),
        "checks": checks,
    });
    probe_answer(StatusCode::SERVICE_UNAVAILABLE, &body)
}

async fn store_check(app: &App) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, app.service.store().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable ({})", e.code())),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// The key ring is loaded: the node does not start without one, and a reload replaces it
/// only with a ring that loaded, so this reports what the ring signs with now.
fn keys_check(app: &App) -> Result<(), String> {
    let ring = app.service.ring();
    let signing = ring.active_signing();
    match signing.kid() {
        Some(_) => Ok(()),
        None => Err("no active signing key".into()),
    }
}

async fn redis_check(redis: &Redis) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, redis.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable ({e})")),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// A probe's answer: JSON, never cached.
fn probe_answer(status: StatusCode, body: &Value) -> Response {
    let mut response = json_response(status, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
