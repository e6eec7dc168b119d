//! The gateway's metrics on `prometheus-client`: one registry, made once per process and
//! kept across configuration reloads, encoded as OpenMetrics text for `/metrics`.
//! docs/operations.md lists every series with its labels.
//!
//! No lock is shared by all requests. A route's handles ([`RouteMetrics`]) are resolved when
//! the gateway is built: its token rules and upstreams hold them, and the gateway keeps them
//! in a map by route name that never changes after (the request's last step knows its route
//! by name), so a request does atomic adds on its own series. The first request with a new status (or the first refusal with a new reason) takes
//! the family's lock once to create its series; after that a status's counter is an atomic
//! load and an add. A refused token's reason is looked up in its family (a shared read lock)
//! on each refusal: refusals are the slow path already (audit event, JSON body), and their
//! reasons are too many to resolve ahead. The latency histograms are this module's own
//! [`Latency`]: atomic bucket counters behind prometheus-client's encoder, because
//! prometheus-client's `Histogram` takes a mutex and walks its buckets as `f64`s on every
//! observation (docs/architecture.md has the measurement).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::encoding::{MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::route::Route;

/// The media type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds of the latency histograms, nanoseconds (0.5 ms to 30 s): a refusal takes
/// well under a millisecond and a cached token adds microseconds, so the low end is fine;
/// upstream timeouts are seconds to tens of seconds.
const LATENCY_BOUNDS_NANOS: [u64; 15] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Status classes, by the status's first digit (`StatusCode` is 100 to 999).
const CLASSES: [&str; 9] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// The route label of requests that no route took (404, 405, a refused path, an MCP
/// metadata document).
pub const UNROUTED: &str = "-";

/// Statuses whose counters a route keeps at hand (100 to 599); any other goes through its
/// family.
const SLOTS: std::ops::Range<u16> = 100..600;

type HistogramFamily<L> = Family<L, Latency, fn() -> Latency>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    route: Arc<str>,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    route: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    route: Arc<str>,
    limit: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    route: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

/// The per-route families (each `Arc`-backed: clones share their series).
#[derive(Clone, Debug)]
struct Families {
    requests: Family<StatusLabels, Counter>,
    durations: HistogramFamily<ClassLabels>,
    upstream: HistogramFamily<RouteLabel>,
    verifications: Family<OutcomeLabels, Counter>,
    rate_limits: Family<LimitLabels, Counter>,
    shed: Family<ShedLabels, Counter>,
    response_cache: Family<CacheEventLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheEventLabels {
    route: Arc<str>,
    event: &'static str,
}

/// The route label of the token service's rate limits and shed requests outside any route.
pub const TOKEN_SERVICE: &str = "/oauth2";

/// One rate limit's counts: requests allowed, limited, and checked while Redis could not
/// answer. Resolved when the limit is built; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct LimitCounters {
    allowed: Counter,
    limited: Counter,
    unavailable: Counter,
}

impl LimitCounters {
    /// Counts a request the limit allowed or refused.
    pub fn decided(&self, allowed: bool) {
        if allowed {
            self.allowed.inc();
        } else {
            self.limited.inc();
        }
    }

    /// Counts a request checked while Redis could not answer.
    pub fn unavailable(&self) {
        self.unavailable.inc();
    }

    /// (allowed, limited, unavailable) so far.
    pub fn values(&self) -> (u64, u64, u64) {
        (
            self.allowed.get(),
            self.limited.get(),
            self.unavailable.get(),
        )
    }
}

/// Why a request was shed without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `[server] max_in_flight` reached.
    ServerInFlight,
    /// The route's `[routes.limits] max_in_flight` reached.
    RouteInFlight,
    /// `[server] max_connections` reached (a connection, not a request).
    Connections,
}

impl Shed {
    fn label(self) -> &'static str {
        match self {
            Shed::ServerInFlight => "server_in_flight",
            Shed::RouteInFlight => "route_in_flight",
            Shed::Connections => "max_connections",
        }
    }
}

/// The verified-token cache's hit and miss counters.
#[derive(Clone, Debug, Default)]
pub struct CacheCounters {
    hits: Counter,
    misses: Counter,
}

impl CacheCounters {
    /// Counts a token found in the cache.
    pub fn hit(&self) {
        self.hits.inc();
    }

    /// Counts a token that had to be verified.
    pub fn miss(&self) {
        self.misses.inc();
    }

    /// (hits, misses) so far.
    pub fn values(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }
}

/// One route's response-cache counts (`[routes.cache]`), resolved when the route is built.
#[derive(Clone, Debug, Default)]
pub struct ResponseCacheCounters {
    /// Requests answered from the cache.
    pub hits: Counter,
    /// Requests the cache sent upstream (misses and revalidations).
    pub misses: Counter,
    /// Responses stored.
    pub stores: Counter,
    /// Requests that waited for another's upstream request.
    pub collapsed: Counter,
    /// Entries evicted from memory to make room.
    pub evictions: Counter,
}

/// What only the gateway in service knows, read when `/metrics` is asked for.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Bytes each cached route's entries hold in this node's memory.
    pub response_cache_bytes: Vec<(String, i64)>,
    /// Entries of its verified-token cache.
    pub token_cache_entries: u64,
    /// Audit events dropped so far (the audit queue outlives reloads).
    pub audit_events_dropped: u64,
    /// Its remote key sets' fetch counts.
    pub jwks: Vec<JwksFetches>,
}

/// Fetches of one issuer's remote key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksFetches {
    /// The issuer's name in the configuration.
    pub issuer: String,
    /// Fetches started (discovery and key set together).
    pub fetches: u64,
    /// Those that failed.
    pub failures: u64,
}

/// The registry and the series it holds. One per process: the gateway built on a reload
/// gets the same one, so counts go on.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    in_flight: Gauge,
    cache: CacheCounters,
    redis: crate::ratelimit::RedisCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The gateway's series, registered.
    pub fn new() -> Metrics {
        let families = Families {
            requests: Family::default(),
            durations: Family::new_with_constructor(Latency::default),
            upstream: Family::new_with_constructor(Latency::default),
            verifications: Family::default(),
            rate_limits: Family::default(),
            shed: Family::default(),
            response_cache: Family::default(),
        };
        let redis = crate::ratelimit::RedisCounters::default();
        let in_flight = Gauge::default();
        let cache = CacheCounters::default();
        let mut registry = Registry::default();
        registry.register(
            "tokengate_gateway_requests",
            "Gateway responses, by route (\"-\" when none matched) and status",
            families.requests.clone(),
        );
        registry.register_with_unit(
            "tokengate_gateway_request_duration",
            "Time from receiving a gateway request to its response head, by route and status class",
            Unit::Seconds,
            families.durations.clone(),
        );
        registry.register_with_unit(
            "tokengate_gateway_upstream_duration",
            "Time from sending a request upstream to the upstream's response head, by route",
            Unit::Seconds,
            families.upstream.clone(),
        );
        registry.register(
            "tokengate_gateway_requests_in_flight",
            "Gateway requests received whose response head is not ready yet",
            in_flight.clone(),
        );
        registry.register(
            "tokengate_gateway_token_verifications",
            "Tokens checked by the authenticate phase, by route and outcome: valid, or the refusal's stable code",
            families.verifications.clone(),
        );
        registry.register(
            "tokengate_token_cache_hits",
            "Tokens found in the verified-token cache",
            cache.hits.clone(),
        );
        registry.register(
            "tokengate_token_cache_misses",
            "Tokens not in the verified-token cache, verified in full",
            cache.misses.clone(),
        );
        registry.register(
            "tokengate_rate_limit_requests",
            "Requests checked by a rate limit, by route (\"/oauth2\" for the token service), limit and outcome: allowed, limited, or unavailable (Redis did not answer)",
            families.rate_limits.clone(),
        );
        registry.register(
            "tokengate_requests_shed",
            "Requests (and connections) refused at once with 503 because a concurrency limit was reached, by route (\"-\" for the node's) and reason",
            families.shed.clone(),
        );
        registry.register(
            "tokengate_response_cache_events",
            "Response-cache events, by route and event: hit, miss (sent upstream, revalidations included), store, collapsed (waited for another request's upstream answer), eviction (dropped from memory for room)",
            families.response_cache.clone(),
        );
        registry.register_with_unit(
            "tokengate_redis_call_duration",
            "Time of each Redis call, answered or not",
            Unit::Seconds,
            redis.latency.clone(),
        );
        registry.register(
            "tokengate_redis_failures",
            "Redis calls that failed or did not answer within [redis] timeout",
            redis.failures.clone(),
        );
        Metrics {
            registry,
            families,
            in_flight,
            cache,
            redis,
        }
    }

    /// Adds a counter kept outside the gateway (the binary's log writer), read at each scrape.
    /// `name` without `_total` and `help` without its final period, as for the registry's
    /// own: the encoder appends both.
    pub fn register_counter_fn(
        &mut self,
        name: &'static str,
        help: &'static str,
        read: fn() -> u64,
    ) {
        self.registry
            .register_collector(Box::new(CounterFn { name, help, read }));
    }

    /// The handles of the route `name` (its series are made on first use, so a configuration
    /// that is refused leaves none behind).
    pub fn route(&self, name: &str) -> RouteMetrics {
        RouteMetrics(Arc::new(RouteHandles {
            route: Arc::from(name),
            families: self.families.clone(),
            statuses: SLOTS.map(|_| OnceLock::new()).collect(),
            classes: Default::default(),
            upstream: OnceLock::new(),
            valid: OnceLock::new(),
        }))
    }

    /// The verified-token cache's counters (shared by the caches of successive reloads).
    pub fn token_cache(&self) -> CacheCounters {
        self.cache.clone()
    }

    /// The counters of the limit `limit` of route `route` ([`TOKEN_SERVICE`] for the token
    /// service's).
    pub fn rate_limit(&self, route: &str, limit: &str) -> LimitCounters {
        let route: Arc<str> = Arc::from(route);
        let limit: Arc<str> = Arc::from(limit);
        let counter = |outcome| {
            self.families.rate_limits.get_or_create_owned(&LimitLabels {
                route: Arc::clone(&route),
                limit: Arc::clone(&limit),
                outcome,
            })
        };
        LimitCounters {
            allowed: counter("allowed"),
            limited: counter("limited"),
            unavailable: counter("unavailable"),
        }
    }

    /// The response-cache counters of route `route`.
    pub fn response_cache(&self, route: &str) -> ResponseCacheCounters {
        let route: Arc<str> = Arc::from(route);
        let counter = |event| {
            self.families
                .response_cache
                .get_or_create_owned(&CacheEventLabels {
                    route: Arc::clone(&route),
                    event,
                })
        };
        ResponseCacheCounters {
            hits: counter("hit"),
            misses: counter("miss"),
            stores: counter("store"),
            collapsed: counter("collapsed"),
            evictions: counter("eviction"),
        }
    }

    /// The Redis calls' counters.
    pub fn redis(&self) -> crate::ratelimit::RedisCounters {
        self.redis.clone()
    }

    /// Counts a request (or connection) shed; `route` is `None` for the node's limits.
    pub fn shed(&self, route: Option<&str>, why: Shed) {
        self.families
            .shed
            .get_or_create(&ShedLabels {
                route: Arc::from(route.unwrap_or(UNROUTED)),
                reason: why.label(),
            })
            .inc();
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// The OpenMetrics text: the kept series, then what only the gateway in service knows.
    pub fn encode(&self, now: &Scrape) -> Result<String, std::fmt::Error> {
        let mut current = Registry::default();
        current.register(
            "tokengate_token_cache_entries",
            "Entries in the verified-token cache",
            ConstGauge::new(i64::try_from(now.token_cache_entries).unwrap_or(i64::MAX)),
        );
        current.register(
            "tokengate_audit_events_dropped",
            "Audit events dropped because the audit queue was full",
            ConstCounter::new(now.audit_events_dropped),
        );
        let held = Family::<RouteLabel, Gauge>::default();
        for (route, bytes) in &now.response_cache_bytes {
            held.get_or_create(&RouteLabel {
                route: Arc::from(route.as_str()),
            })
            .set(*bytes);
        }
        current.register_with_unit(
            "tokengate_response_cache",
            "Bytes the response cache holds in this node's memory, by route",
            Unit::Bytes,
            held,
        );
        let fetches = Family::<IssuerLabel, Counter>::default();
        let failures = Family::<IssuerLabel, Counter>::default();
        for jwks in &now.jwks {
            let label = IssuerLabel {
                issuer: jwks.issuer.clone(),
            };
            fetches.get_or_create(&label).inc_by(jwks.fetches);
            failures.get_or_create(&label).inc_by(jwks.failures);
        }
        current.register(
            "tokengate_jwks_fetches",
            "Fetches of an issuer's remote key set (discovery included), by issuer",
            fetches,
        );
        current.register(
            "tokengate_jwks_fetch_failures",
            "Fetches of an issuer's remote key set that failed, by issuer",
            failures,
        );
        let mut out = String::with_capacity(16 * 1024);
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &current)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// A request in flight: counted until dropped (also when the client goes away mid-request
/// and the request's future is dropped).
#[derive(Debug)]
pub struct InFlight<'m>(&'m Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A counter read from a function at each scrape.
#[derive(Debug)]
struct CounterFn {
    name: &'static str,
    help: &'static str,
    read: fn() -> u64,
}

impl Collector for CounterFn {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new((self.read)());
        // The registry ends each registered metric's help with a period; so does this.
        let help = format!("{}.", self.help);
        let metric = encoder.encode_descriptor(self.name, &help, None, counter.metric_type())?;
        counter.encode(metric)
    }
}

/// A latency histogram with fixed bounds ([`LATENCY_BOUNDS_NANOS`]): one atomic counter per
/// bucket and an atomic sum of nanoseconds, so an observation is a short search over integers
/// and two relaxed atomic adds, with no lock. Cheap to clone (one `Arc`); clones share counts.
///
/// A scrape reads the counters one by one while requests go on adding, so `_sum` may lag or
/// lead the buckets by the observations in between; `_count` is the buckets' total, so it
/// always equals the `+Inf` bucket.
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket, not cumulative; the last is above every bound (`+Inf`).
    buckets: [AtomicU64; LATENCY_BOUNDS_NANOS.len() + 1],
    /// Every observation added, nanoseconds. Wraps after 584 years of latency summed over
    /// all requests (at 1,000 s of latency a second, after 213 days); Prometheus reads the
    /// wrap as a counter reset.
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Adds one observation.
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // A bucket holds values at or under its bound (Prometheus's `le`).
        let bucket = LATENCY_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        if let Some(count) = self.0.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = LATENCY_BOUNDS_NANOS
            .iter()
            .map(|&nanos| nanos as f64 / 1e9)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|&(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One route's series, resolved once per gateway; cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct RouteMetrics(Arc<RouteHandles>);

#[derive(Debug)]
struct RouteHandles {
    route: Arc<str>,
    families: Families,
    /// A counter per status in [`SLOTS`], taken from the family on first use.
    statuses: Box<[OnceLock<Counter>]>,
    /// A duration histogram per status class, taken from the family on first use.
    classes: [OnceLock<Latency>; 9],
    upstream: OnceLock<Latency>,
    valid: OnceLock<Counter>,
}

impl RouteMetrics {
    /// The route's name, as its series are labelled.
    pub fn route(&self) -> &str {
        &self.0.route
    }

    /// Counts a response and how long its head took.
    pub fn responded(&self, status: StatusCode, took: Duration) {
        let h = &*self.0;
        let code = status.as_u16();
        let labels = || StatusLabels {
            route: Arc::clone(&h.route),
            status: code,
        };
        let slot = code
            .checked_sub(SLOTS.start)
            .and_then(|i| h.statuses.get(usize::from(i)));
        match slot {
            Some(slot) => slot
                .get_or_init(|| h.families.requests.get_or_create_owned(&labels()))
                .inc(),
            None => h.families.requests.get_or_create(&labels()).inc(),
        };
        let class = usize::from(code / 100).saturating_sub(1);
        if let (Some(slot), Some(&name)) = (h.classes.get(class), CLASSES.get(class)) {
            let histogram = slot.get_or_init(|| {
                h.families.durations.get_or_create_owned(&ClassLabels {
                    route: Arc::clone(&h.route),
                    status_class: name,
                })
            });
            histogram.observe(took);
        }
    }

    /// Records the time an upstream took to send its response head.
    pub fn upstream_answered(&self, took: Duration) {
        let h = &*self.0;
        h.upstream
            .get_or_init(|| {
                h.families.upstream.get_or_create_owned(&RouteLabel {
                    route: Arc::clone(&h.route),
                })
            })
            .observe(took);
    }

    /// Counts a token check: `Ok` for a valid token, else the refusal's stable code.
    pub fn verified(&self, outcome: Result<(), &'static str>) {
        let h = &*self.0;
        let labels = |outcome| OutcomeLabels {
            route: Arc::clone(&h.route),
            outcome,
        };
        match outcome {
            Ok(()) => h
                .valid
                .get_or_init(|| {
                    h.families
                        .verifications
                        .get_or_create_owned(&labels("valid"))
                })
                .inc(),
            Err(code) => h.families.verifications.get_or_create(&labels(code)).inc(),
        };
    }
}

/// A gateway's route handles by route name, and those of requests no route took: the last
/// step of a request knows its route by name only.
#[derive(Debug)]
pub(crate) struct ByRoute {
    routes: HashMap<String, RouteMetrics>,
    unrouted: RouteMetrics,
}

impl ByRoute {
    /// Handles for requests no route takes, and no routes yet.
    pub(crate) fn new(metrics: &Metrics) -> ByRoute {
        ByRoute {
            routes: HashMap::new(),
            unrouted: metrics.route(UNROUTED),
        }
    }

    /// Resolves each route's handles once, for the gateway being built: its token checks and
    /// its upstreams get theirs, and the request's last step finds them here.
    pub(crate) fn attach(&mut self, metrics: &Metrics, routes: &mut [Route]) {
        for route in routes {
            let handles = metrics.route(&route.name);
            if let Some(auth) = &mut route.auth {
                auth.metrics = Some(handles.clone());
            }
            route.upstreams.count_in(handles.clone());
            self.routes.insert(route.name.clone(), handles);
        }
    }

    /// The handles of the route named `route`, or those of unrouted requests. A lookup in a
    /// map that never changes after the gateway is built: no lock.
    pub(crate) fn get(&self, route: Option<&str>) -> &RouteMetrics {
        route
            .and_then(|name| self.routes.get(name))
            .unwrap_or(&self.unrouted)
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
