//! Upstream targets of a route: round robin over the healthy ones, active health checks,
//! connect and response timeouts, and retries only for idempotent requests without a body
//! that failed before anything was sent (a connect error).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;

use crate::client::{empty, get_small, HttpClient, OutBody};
use crate::metrics::RouteMetrics;

/// Active health checking of a route's targets.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Path probed with GET; any 2xx is healthy.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
}

/// An upstream's base URL, parsed once (from the configuration): `http://` or `https://`, a
/// host, an optional base path, no query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `scheme://authority` and the base path (no trailing slash), as given.
    base: String,
    /// `base` taken apart, so that a request's URI is assembled without parsing.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base_path: String,
}

/// Why an upstream URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream {url:?}: {why}")]
pub struct InvalidTargetUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl TargetUrl {
    /// Parses an upstream base URL.
    pub fn parse(url: &str) -> Result<TargetUrl, InvalidTargetUrl> {
        let invalid = |why| InvalidTargetUrl {
            url: url.to_owned(),
            why,
        };
        let parsed = url::Url::parse(url).map_err(|_| invalid("not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid("must be an http:// or https:// URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must have no query or fragment"));
        }
        // Credentials in the URL are not sent (hyper ignores them) but would be logged.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("must have no user name or password"));
        }
        let base = url.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| invalid("not a URI"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(invalid("must be an absolute URL"));
        };
        // The base path is sent as written (the URL parser above would have resolved these).
        if uri.path().split('/').any(|s| s == "." || s == "..") {
            return Err(invalid("must have no dot segments in its path"));
        }
        Ok(TargetUrl {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            base,
        })
    }

    /// `scheme://authority[/base path]`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The absolute URI of `path_and_query` on this target.
    fn uri(&self, path_and_query: &PathAndQuery) -> Result<Uri, UpstreamError> {
        let pq = if self.base_path.is_empty() {
            path_and_query.clone()
        } else {
            PathAndQuery::from_maybe_shared(Bytes::from(format!(
                "{}{}",
                self.base_path,
                path_and_query.as_str()
            )))
            .map_err(|e| UpstreamError::Failed(format!("upstream URI: {e}")))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| UpstreamError::Failed(format!("upstream URI: {e}")))
    }
}

/// One target: its URL and its health.
#[derive(Debug)]
struct Target {
    url: TargetUrl,
    healthy: AtomicBool,
}

/// Why forwarding failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No response head within the timeout (504).
    Timeout,
    /// Connection refused, reset, protocol error (502).
    Failed(String),
}

/// A route's targets and how to reach them.
#[derive(Debug)]
pub struct Upstreams {
    targets: Vec<Target>,
    next: AtomicUsize,
    client: HttpClient,
    /// Time allowed for the response head.
    pub response_timeout: Duration,
    health: Option<HealthCheck>,
    /// Health-check rounds completed (every target probed once per round).
    health_rounds: AtomicU64,
    /// The route's metrics, given by the gateway that serves it ([`Upstreams::count_in`]).
    metrics: OnceLock<RouteMetrics>,
}

impl Upstreams {
    /// A route's targets (a path in a URL is a base path); `None` without any.
    pub fn new(
        urls: Vec<TargetUrl>,
        client: HttpClient,
        response_timeout: Duration,
        health: Option<HealthCheck>,
    ) -> Option<Upstreams> {
        if urls.is_empty() {
            return None;
        }
        let targets = urls
            .into_iter()
            .map(|url| Target {
                url,
                healthy: AtomicBool::new(true),
            })
            .collect();
        Some(Upstreams {
            targets,
            next: AtomicUsize::new(0),
            client,
            response_timeout,
            health,
            health_rounds: AtomicU64::new(0),
            metrics: OnceLock::new(),
        })
    }

    /// Records upstream latency in `metrics` from now on. Set by the gateway built with these
    /// upstreams (a route's own, never another's); a second call changes nothing.
    pub(crate) fn count_in(&self, metrics: RouteMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Whether the target with `base` (`scheme://authority[/path]`) is in rotation; `None`
    /// for no such target.
    pub fn is_healthy(&self, base: &str) -> Option<bool> {
        self.targets
            .iter()
            .find(|t| t.url.base == base)
            .map(|t| t.healthy.load(Ordering::Relaxed))
    }

    /// Health-check rounds completed so far: a state seen by a round that started after a
    /// change is the state the change caused.
    pub fn health_rounds(&self) -> u64 {
        self.health_rounds.load(Ordering::Acquire)
    }

    /// The targets in the order to try, fixed once per request (a failure marks a target
    /// unhealthy mid-request, which must not shift the order): healthy ones from the
    /// round-robin position, or all of them when none is healthy (a wrong health check must
    /// not take the route down).
    fn order(&self) -> Vec<&Target> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.targets.len();
        let rotated = (0..n).filter_map(|i| self.targets.get((start + i) % n));
        let healthy: Vec<&Target> = rotated
            .clone()
            .filter(|t| t.healthy.load(Ordering::Relaxed))
            .collect();
        if healthy.is_empty() {
            rotated.collect()
        } else {
            healthy
        }
    }

    /// Sends the request to a target, as `path_and_query` there; returns the response and the
    /// target used.
    pub async fn forward(
        &self,
        parts: http::request::Parts,
        path_and_query: PathAndQuery,
        body: OutBody,
        retryable: bool,
    ) -> Result<(Response<Incoming>, String), UpstreamError> {
        // Retries go to another target, so only a request that may be retried on a route
        // with several targets keeps a copy of its headers.
        let may_retry = retryable && self.targets.len() > 1;
        let http::request::Parts {
            method, headers, ..
        } = parts;
        let mut headers = Some(headers);
        let mut body = Some(body);
        let mut last = UpstreamError::Failed("no upstream".into());
        for target in self.order() {
            let uri = target.url.uri(&path_and_query)?;
            let mut req = Request::new(body.take().unwrap_or_else(empty));
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = match (&headers, may_retry) {
                (Some(h), true) => h.clone(),
                _ => headers.take().unwrap_or_default(),
            };
            *req.version_mut() = http::Version::HTTP_11;
            let sent = Instant::now();
            match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
                Ok(Ok(response)) => {
                    // Only an attempt that got a response head has a latency; failed ones
                    // show as the 502 or 504 they end in.
                    if let Some(metrics) = self.metrics.get() {
                        metrics.upstream_answered(sent.elapsed());
                    }
                    return Ok((response, target.url.base.clone()));
                }
                Ok(Err(e)) => {
                    let connect = e.is_connect();
                    if connect && self.health.is_some() {
                        target.healthy.store(false, Ordering::Relaxed);
                    }
                    last = UpstreamError::Failed(format!("{}: {e}", target.url.base));
                    if !(may_retry && connect) {
                        return Err(last);
                    }
                }
                Err(_) => return Err(UpstreamError::Timeout),
            }
        }
        Err(last)
    }

    /// Starts the health checks, if configured; the task ends when the returned handle is
    /// aborted (on reload and shutdown).
    pub fn spawn_health_checks(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let check = self.health.clone()?;
        let me = Arc::clone(self);
        Some(tokio::spawn(async move {
            let timeout = check.interval.min(Duration::from_secs(5));
            loop {
                for target in &me.targets {
                    let url = format!("{}{}", target.url.base, check.path);
                    let ok = get_small(&me.client, &url, timeout, 64 * 1024)
                        .await
                        .is_ok();
                    target.healthy.store(ok, Ordering::Relaxed);
                }
                // Release: whoever sees the count sees this round's health states.
                me.health_rounds.fetch_add(1, Ordering::Release);
                tokio::time::sleep(check.interval).await;
            }
        }))
    }
}

/// Idempotent methods (RFC 9110 §9.2.2), the only ones retried.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_url_is_taken_apart_once() {
        let url = TargetUrl::parse("https://api.internal:8443/base/").unwrap();
        assert_eq!(url.as_str(), "https://api.internal:8443/base");
        let uri = url.uri(&PathAndQuery::from_static("/v1/x?q=1")).unwrap();
        assert_eq!(uri.to_string(), "https://api.internal:8443/base/v1/x?q=1");
        let bare = TargetUrl::parse("http://10.0.0.5").unwrap();
        assert_eq!(bare.as_str(), "http://10.0.0.5");
        assert_eq!(bare.base_path, "");
    }

    #[test]
    fn refused_target_urls_say_why() {
        for (url, why) in [
            ("ftp://h", "must be an http:// or https:// URL with a host"),
            ("http://h/?q", "must have no query or fragment"),
            ("not a url", "not a URL"),
            ("http://user:pw@h/", "must have no user name or password"),
            ("http://user@h/", "must have no user name or password"),
            ("http://h/a/../b", "must have no dot segments in its path"),
        ] {
            assert_eq!(
                TargetUrl::parse(url),
                Err(InvalidTargetUrl {
                    url: url.to_owned(),
                    why
                })
            );
        }
    }
}
