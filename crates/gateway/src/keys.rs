//! Trusted issuers and where their keys come from: the built-in token service's ring, a
//! static file, or a remote JWKS (given, or found by discovery) cached per its
//! `Cache-Control` max-age, with one single-flight refetch for an unknown `kid` followed by a
//! cooldown, the last good keys kept when the endpoint fails, failures backed off, and no
//! request held longer than the fetch timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::own::OwnIssuer;
use jose::{Algorithm, JwkSet};
use serde_json::Value;

use crate::client::{get_small, FetchError, HttpClient};
use crate::metrics::JwksFetches;

/// Bounds on how long a fetched key set is used before it is fetched again.
const MIN_MAX_AGE: Duration = Duration::from_secs(30);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Largest JWKS or metadata document read.
const MAX_DOCUMENT: usize = 512 * 1024;

/// Remote key set timing.
#[derive(Debug, Clone, Copy)]
pub struct RemoteOptions {
    /// Cache lifetime when the response gives no `max-age` (default 10 minutes).
    pub default_max_age: Duration,
    /// Minimum time between refetches for unknown kids (default 30 s).
    pub cooldown: Duration,
    /// Timeout of one fetch (default 5 s).
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            default_max_age: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Where a remote key set is found.
#[derive(Debug, Clone)]
pub enum RemoteSource {
    /// A JWKS URL.
    Jwks(String),
    /// The issuer's metadata (RFC 8414, then OpenID discovery), whose `jwks_uri` is used.
    Discovery(String),
}

#[derive(Debug, Default)]
struct Cached {
    keys: Option<Arc<JwkSet>>,
    jwks_uri: Option<String>,
    /// Until when the keys are fresh.
    expires: Option<Instant>,
    /// A fetch is running (in its own task).
    fetching: bool,
    /// When the last refetch for an unknown kid started (the cooldown runs from it).
    last_kid_refetch: Option<Instant>,
    /// Fetches failed in a row; none starts before `retry_at`.
    failures: u32,
    retry_at: Option<Instant>,
    /// Why the last fetch failed, answered during the backoff when no keys are held.
    last_error: Option<FetchError>,
}

/// A remote JWKS. One fetch at a time runs in its own task, bounded by the fetch timeout as
/// a whole (discovery included); a request never waits longer than that for it, and waits
/// not at all when keys are held (stale ones are used while they are refreshed). Failures
/// back off (1 s, doubling, up to the refetch cooldown), so a dead endpoint is asked about
/// once per backoff, not once per request.
#[derive(Debug)]
pub struct RemoteJwks {
    source: RemoteSource,
    client: HttpClient,
    options: RemoteOptions,
    cached: Mutex<Cached>,
    /// Bumped at the end of every fetch; requests waiting for one watch it.
    done: tokio::sync::watch::Sender<u64>,
    /// Fetches started and failed (for metrics; the set outlives reloads that keep it).
    attempts: AtomicU64,
    failures: AtomicU64,
}

impl RemoteJwks {
    /// A key set fetched on first use.
    pub fn new(source: RemoteSource, client: HttpClient, options: RemoteOptions) -> RemoteJwks {
        RemoteJwks {
            source,
            client,
            options,
            cached: Mutex::new(Cached::default()),
            done: tokio::sync::watch::Sender::new(0),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys: cached while fresh; when stale, the held ones at once while a fetch
    /// refreshes them; with none held, the fetch's result if it comes within the fetch
    /// timeout. During a backoff with no keys, the last failure at once.
    pub async fn keys(self: &Arc<Self>) -> Result<Arc<JwkSet>, FetchError> {
        let mut done = self.done.subscribe();
        {
            let mut c = self.cached();
            let now = Instant::now();
            if let Some(keys) = c
                .keys
                .as_ref()
                .filter(|_| c.expires.is_some_and(|e| now < e))
            {
                return Ok(Arc::clone(keys));
            }
            self.start_fetch(&mut c, now);
            if let Some(keys) = &c.keys {
                return Ok(Arc::clone(keys));
            }
            if !c.fetching {
                return Err(self.failure(&c));
            }
        }
        self.wait(&mut done).await
    }

    /// A refetch because a token named a kid the cached set lacks: at most one per cooldown
    /// (within it, or while backing off, the held keys are answered at once), waited for at
    /// most the fetch timeout. (A token whose kid is missing from a set it waited for may
    /// wait once more, for this refetch: a rotation right after a fetch is how that happens.)
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>) -> Result<Arc<JwkSet>, FetchError> {
        let mut done = self.done.subscribe();
        {
            let mut c = self.cached();
            let now = Instant::now();
            let cooling = c
                .last_kid_refetch
                .is_some_and(|last| now.duration_since(last) < self.options.cooldown);
            if !cooling && !c.fetching && self.start_fetch(&mut c, now) {
                c.last_kid_refetch = Some(now);
            }
            if !c.fetching {
                return c.keys.clone().ok_or_else(|| self.failure(&c));
            }
        }
        self.wait(&mut done).await
    }

    /// Fetches started and those that failed, labelled with `issuer`.
    pub fn fetches(&self, issuer: &str) -> JwksFetches {
        JwksFetches {
            issuer: issuer.to_owned(),
            fetches: self.attempts.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Starts a fetch in its own task unless one runs or the backoff forbids it; whether it
    /// started. Its own task, so that a request that stops waiting does not cancel it.
    fn start_fetch(self: &Arc<Self>, c: &mut Cached, now: Instant) -> bool {
        if c.fetching || c.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        c.fetching = true;
        let this = Arc::clone(self);
        tokio::spawn(async move { this.fetch().await });
        true
    }

    async fn fetch(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        // Whatever ends the fetch (done, failed, or the task dropped mid-way), its end is
        // recorded: a fetch that never cleared `fetching` would stop all later ones.
        let mut end = FetchEnd {
            jwks: self,
            outcome: None,
        };
        let timeout = self.options.timeout;
        let downloaded = tokio::time::timeout(timeout, self.download())
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::TimedOut {
                    url: self.source_url().to_owned(),
                    timeout,
                })
            });
        end.outcome = Some(downloaded);
    }

    /// Records how a fetch ended and wakes the requests waiting for it.
    fn record(&self, outcome: Result<(JwkSet, Duration), FetchError>) {
        {
            let mut c = self.cached();
            let now = Instant::now();
            c.fetching = false;
            match outcome {
                Ok((keys, max_age)) => {
                    c.keys = Some(Arc::new(keys));
                    c.expires = Some(now + max_age);
                    c.failures = 0;
                    c.retry_at = None;
                    c.last_error = None;
                }
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    c.failures = c.failures.saturating_add(1);
                    c.retry_at = Some(now + backoff(c.failures, self.options.cooldown));
                    c.last_error = Some(e);
                }
            }
        }
        self.done.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits for the running fetch, at most the fetch timeout; then whatever keys are held.
    async fn wait(
        &self,
        done: &mut tokio::sync::watch::Receiver<u64>,
    ) -> Result<Arc<JwkSet>, FetchError> {
        // An error means the sender is gone, which it cannot be while `self` lives.
        let _ = tokio::time::timeout(self.options.timeout, done.changed()).await;
        let c = self.cached();
        c.keys.clone().ok_or_else(|| self.failure(&c))
    }

    /// Why there are no keys: the last failure, or a fetch that is taking too long.
    fn failure(&self, c: &Cached) -> FetchError {
        match (&c.last_error, c.fetching) {
            (Some(e), false) => e.clone(),
            _ => FetchError::TimedOut {
                url: self.source_url().to_owned(),
                timeout: self.options.timeout,
            },
        }
    }

    fn source_url(&self) -> &str {
        match &self.source {
            RemoteSource::Jwks(url) | RemoteSource::Discovery(url) => url,
        }
    }

    async fn jwks_uri(&self) -> Result<String, FetchError> {
        match &self.source {
            RemoteSource::Jwks(url) => Ok(url.clone()),
            RemoteSource::Discovery(issuer) => {
                if let Some(uri) = self.cached().jwks_uri.clone() {
                    return Ok(uri);
                }
                let uri = discover(&self.client, issuer, self.options.timeout).await?;
                self.cached().jwks_uri = Some(uri.clone());
                Ok(uri)
            }
        }
    }

    async fn download(&self) -> Result<(JwkSet, Duration), FetchError> {
        let url = self.jwks_uri().await?;
        let (body, headers) =
            get_small(&self.client, &url, self.options.timeout, MAX_DOCUMENT).await?;
        let keys = JwkSet::from_json(&body).map_err(|e| FetchError::BadDocument {
            url: url.clone(),
            detail: e.reason().to_owned(),
        })?;
        // Clamped: `no-cache` or `max-age=0` would turn every token check into a fetch, and a
        // huge value would pin keys the issuer has removed.
        let max_age = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(cache_max_age)
            .unwrap_or(self.options.default_max_age)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        Ok((keys, max_age))
    }
}

/// The end of one fetch, recorded when dropped: with its outcome, or as cancelled when the
/// fetch's task was dropped or panicked before it had one.
struct FetchEnd<'a> {
    jwks: &'a RemoteJwks,
    outcome: Option<Result<(JwkSet, Duration), FetchError>>,
}

impl Drop for FetchEnd<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(FetchError::Unreachable {
                url: self.jwks.source_url().to_owned(),
                detail: "the fetch was cancelled".to_owned(),
            })
        });
        self.jwks.record(outcome);
    }
}

/// The wait before the next fetch after `failures` failures in a row: 1 s, doubling, at
/// most `cap` (the refetch cooldown), never less than 1 s.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let doubled = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16));
    doubled.min(cap).max(Duration::from_secs(1))
}

/// `max-age=N` from a `Cache-Control` value (`no-cache`/`no-store` count as 0).
pub fn cache_max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// Finds an issuer's `jwks_uri` from its metadata: RFC 8414's location first, then OpenID
/// Connect's. The document's `issuer` must be the issuer asked for (RFC 8414 §3.3).
pub async fn discover(
    client: &HttpClient,
    issuer: &str,
    timeout: Duration,
) -> Result<String, FetchError> {
    let base = issuer.trim_end_matches('/');
    let (origin, path) = match url::Url::parse(base) {
        Ok(u) => (
            u.origin().ascii_serialization(),
            u.path().trim_end_matches('/').to_owned(),
        ),
        Err(_) => {
            return Err(FetchError::BadUrl {
                url: issuer.to_owned(),
            })
        }
    };
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{base}/.well-known/openid-configuration"),
    ];
    let mut last = None;
    for url in candidates {
        match get_small(client, &url, timeout, MAX_DOCUMENT).await {
            Ok((body, _)) => return jwks_uri_of(&body, issuer, &url),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(FetchError::BadUrl {
        url: issuer.to_owned(),
    }))
}

/// The `jwks_uri` of `issuer`'s metadata document `body` (fetched from `url`): JSON, an
/// object naming `issuer` exactly (RFC 8414 §3.3) and an https `jwks_uri` (http only on
/// loopback).
pub fn jwks_uri_of(body: &[u8], issuer: &str, url: &str) -> Result<String, FetchError> {
    let bad = |detail: &str| FetchError::BadDocument {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("the metadata is not JSON"))?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(bad("the metadata names another issuer"));
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no jwks_uri"))?;
    // As for a configured `jwks_url`: keys fetched without TLS could be anyone's.
    let fetchable = url::Url::parse(uri).is_ok_and(|u| match u.scheme() {
        "https" => true,
        "http" => is_loopback(&u),
        _ => false,
    });
    if !fetchable {
        return Err(bad("the jwks_uri is not https (http only on loopback)"));
    }
    Ok(uri.to_owned())
}

/// Whether `url`'s host is this machine (`localhost`, 127.0.0.0/8, ::1): the one place keys
/// may be fetched over plain http.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Where an issuer's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// The built-in token service ("self"): its published keys, and its private encryption
    /// keys for nested tokens.
    Own(Arc<dyn OwnIssuer>),
    /// A fixed set.
    Static(Arc<JwkSet>),
    /// A remote set.
    Remote(Arc<RemoteJwks>),
}

/// A trusted issuer.
#[derive(Debug)]
pub struct Issuer {
    /// Its name in the configuration ("self" for the built-in one).
    pub name: String,
    /// Its `iss`.
    pub issuer: String,
    /// Its keys.
    pub keys: KeySource,
    /// Accepted algorithms (empty for "self": each key's own).
    pub algorithms: Vec<Algorithm>,
    /// Required `typ` (default `at+jwt`); `None` when not checked.
    pub typ: Option<String>,
    /// Private keys to decrypt this issuer's encrypted tokens (ours for "self").
    pub decrypt: Option<Arc<JwkSet>>,
}

/// The fetch counts of the remote key sets among `issuers`, one per issuer name (an issuer
/// trusted by several routes is listed once), by name.
pub fn remote_fetches<'a>(issuers: impl IntoIterator<Item = &'a Issuer>) -> Vec<JwksFetches> {
    let mut by_name = std::collections::BTreeMap::new();
    for issuer in issuers {
        if let KeySource::Remote(remote) = &issuer.keys {
            by_name
                .entry(issuer.name.as_str())
                .or_insert_with(|| remote.fetches(&issuer.name));
        }
    }
    by_name.into_values().collect()
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
