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

/// Longest wait for each dependency's answer (the checks run at once): a probe must answer
/// before its own timeout (Kubernetes' default is 1 s) even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// How long one round of checks answers every probe: probes (unauthenticated, perhaps
/// public) cost the store and Redis at most one check each per period, however many come.
const REUSE_FOR: Duration = Duration::from_secs(1);

/// What readiness depends on besides the service: Redis, and whether shutdown began.
#[derive(Debug, Default)]
pub struct Readiness {
    /// `[redis]`'s connection, when configured.
    redis: Option<Redis>,
    /// Set on SIGTERM: the node is leaving and must get no new traffic.
    draining: AtomicBool,
    /// Held while a round of checks runs, so that concurrent probes wait for it rather
    /// than start their own.
    round: tokio::sync::Mutex<()>,
    /// The last round's outcome and when it ended.
    last: std::sync::Mutex<Option<(std::time::Instant, Checks)>>,
}

/// The outcome of each check: `Ok` or why not.
#[derive(Debug, Clone)]
struct Checks {
    store: Result<(), String>,
    keys: Result<(), String>,
    redis: Option<Result<(), String>>,
}

impl Readiness {
    /// Readiness that also needs `redis` to answer, when given.
    pub fn new(redis: Option<Redis>) -> Readiness {
        Readiness {
            redis,
            draining: AtomicBool::new(false),
            round: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
        }
    }

    /// The last round's outcome, when it ended less than [`REUSE_FOR`] ago.
    fn recent(&self) -> Option<Checks> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < REUSE_FOR)
            .map(|(_, checks)| checks.clone())
    }

    fn keep(&self, checks: &Checks) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((std::time::Instant::now(), checks.clone()));
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
    // Leaving: said at once, whatever the store or Redis would say.
    if app.readiness.draining.load(Ordering::Relaxed) {
        let body = json!({ "status": "not ready", "reason": "shutting down" });
        return probe_answer(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    let checks = checks(&app).await;
    let mut shown = Map::new();
    let mut failing = Vec::new();
    let all = [
        ("store", Some(checks.store)),
        ("keys", Some(checks.keys)),
        ("redis", checks.redis),
    ];
    for (name, outcome) in all {
        let Some(outcome) = outcome else { continue };
        let text = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(why) => {
                failing.push(format!("{name}: {why}"));
                why
            }
        };
        shown.insert(name.to_owned(), Value::String(text));
    }
    if failing.is_empty() {
        return probe_answer(
            StatusCode::OK,
            &json!({ "status": "ready", "checks": shown }),
        );
    }
    let body = json!({
        "status": "not ready",
        "reason": failing.join("; "),
        "checks": shown,
    });
    probe_answer(StatusCode::SERVICE_UNAVAILABLE, &body)
}

/// The checks' outcomes: the last round's when it is recent, else a new round (the store
/// and Redis asked at once). One round at a time; it runs in a task of its own and keeps
/// its outcome itself, so a probe that goes away meanwhile (a reset stream) does not waste
/// it.
async fn checks(app: &Arc<App>) -> Checks {
    let _one_round = app.readiness.round.lock().await;
    if let Some(checks) = app.readiness.recent() {
        return checks;
    }
    let round = tokio::spawn({
        let app = Arc::clone(app);
        async move {
            let redis = async {
                match &app.readiness.redis {
                    Some(redis) => Some(redis_check(redis).await),
                    None => None,
                }
            };
            let (store, redis) = tokio::join!(store_check(&app), redis);
            let checks = Checks {
                store,
                keys: keys_check(&app),
                redis,
            };
            app.readiness.keep(&checks);
            checks
        }
    });
    round.await.unwrap_or_else(|_| Checks {
        store: Err("not checked".into()),
        keys: Err("not checked".into()),
        redis: None,
    })
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

/// Says what failed, not the driver's words (addresses, server messages): probes answer
/// anyone.
async fn redis_check(redis: &Redis) -> Result<(), String> {
    use store::redis::RedisUnavailable;
    match tokio::time::timeout(CHECK_TIMEOUT, redis.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(RedisUnavailable::Failed(_))) => Err("unreachable".into()),
        Ok(Err(RedisUnavailable::Timeout(_))) | Err(_) => {
            Err(format!("no answer within {CHECK_TIMEOUT:?}"))
        }
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
