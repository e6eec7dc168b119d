//! Rate limits (`[[routes.rate_limits]]`, `[token_service.rate_limits]`): the generic cell
//! rate algorithm (GCRA), per key, on this node or shared through Redis.
//!
//! A limit of `limit` requests per `per` with `burst` extra is a cell every
//! `per / limit` (the *interval*) and room for `limit + burst` cells (the *capacity*). The
//! whole state of a key is one number, its *theoretical arrival time* (TAT): when the key
//! would be idle again if it stopped now. A request at `now` is allowed when
//! `max(TAT, now) + interval` is at most `now + capacity × interval`, and then that sum is
//! the new TAT. So an idle key may spend its whole capacity at once, and after that gets one
//! request per interval: smooth, with no window edges to burst across.
//!
//! The same arithmetic runs in two places, on microseconds: [`gcra`] here for `local`
//! limits, whose TATs live in a bounded [`moka`] cache that forgets a key once it has been
//! idle long enough to be full again (so forgetting changes no answer), and [`GCRA_SCRIPT`]
//! in Redis for `cluster` limits, one script call per check on Redis's own clock, so every
//! node shares one exact budget whatever its clock says. Why not the `governor` crate:
//! docs/architecture.md.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::auth::Verified;
use crate::metrics::LimitCounters;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): the limit's quota and window.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of it and when it is whole again.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Keys a local limit remembers at most; past it the least recently used are forgotten
/// (each forgotten key starts over with a full allowance: docs/security.md).
const LOCAL_KEYS: u64 = 100_000;

/// Key values longer than this are kept as their SHA-256: a header value chosen by the
/// client must not make a local limit's memory grow with it.
const LONGEST_KEPT_KEY: usize = 64;

/// A rate: `limit` requests per `per`, plus `burst` for short peaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per period.
    pub limit: u64,
    /// The period.
    pub per: Duration,
    /// Extra allowance on top of `limit`.
    pub burst: u64,
}

impl Rate {
    /// Microseconds between two cells (at least 1: the configuration refuses faster rates).
    pub fn interval_micros(&self) -> u64 {
        let per = u64::try_from(self.per.as_micros()).unwrap_or(u64::MAX);
        (per / self.limit.max(1)).max(1)
    }

    /// Cells an idle key may spend at once.
    pub fn capacity(&self) -> u64 {
        self.limit.saturating_add(self.burst)
    }

    /// The time an exhausted key takes to be whole again, microseconds.
    fn refill_micros(&self) -> u64 {
        self.capacity().saturating_mul(self.interval_micros())
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The request may go on.
    pub allowed: bool,
    /// Requests left right after this one.
    pub remaining: u64,
    /// Until the key is whole again.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when this one was).
    pub retry_after: Duration,
}

/// GCRA on microseconds: the verdict for a request at `now` given the key's TAT (0 for a key
/// never seen), and the TAT to store when the request is allowed. [`GCRA_SCRIPT`] is the
/// same arithmetic in Redis.
pub fn gcra(tat: u64, now: u64, rate: &Rate) -> (Verdict, Option<u64>) {
    let interval = rate.interval_micros();
    let tat = tat.max(now);
    let next = tat.saturating_add(interval);
    let horizon = now.saturating_add(rate.refill_micros());
    if next > horizon {
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset: Duration::from_micros(tat - now),
            retry_after: Duration::from_micros(next - horizon),
        };
        return (verdict, None);
    }
    let verdict = Verdict {
        allowed: true,
        remaining: (horizon - next) / interval,
        reset: Duration::from_micros(next - now),
        retry_after: Duration::ZERO,
    };
    (verdict, Some(next))
}

/// [`gcra`] in Redis: KEYS[1] the cell, ARGV the interval and capacity (µs, cells) and
/// whether an allowed request is spent (`1`) or only asked about (`0`). Redis's own clock
/// (`TIME`), so nodes whose clocks differ share one budget; the key expires when it would
/// be whole again. Answers `{allowed, remaining, reset_us, retry_us}`. Numbers stay below
/// 2^53 (the configuration bounds `capacity × interval`), so Lua's doubles are exact.
pub const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local next = tat + interval
local horizon = now + capacity * interval
if next > horizon then
  return {0, 0, tat - now, next - horizon}
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
end
return {1, math.floor((horizon - next) / interval), next - now, 0}
";

/// Where a limit's cells live.
#[derive(Clone)]
pub enum Cells {
    /// In this node's memory (`scope = "local"`).
    Local(Arc<LocalCells>),
    /// In Redis, shared by every node (`scope = "cluster"`).
    Cluster(Arc<ClusterCells>),
}

impl std::fmt::Debug for Cells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cells::Local(_) => "Cells::Local",
            Cells::Cluster(_) => "Cells::Cluster",
        })
    }
}

/// A local limit's TATs, by key: bounded, and each key forgotten once it has been idle for
/// the rate's refill time (it would be whole again by then, so forgetting it changes
/// nothing). Kept across configuration reloads while the limit is unchanged.
pub struct LocalCells {
    cells: moka::sync::Cache<Vec<u8>, Arc<AtomicU64>>,
    epoch: Instant,
}

impl LocalCells {
    /// Cells for `rate`.
    pub fn new(rate: &Rate) -> LocalCells {
        let idle = Duration::from_micros(rate.refill_micros()).max(Duration::from_secs(1));
        LocalCells {
            // Least recently used first: moka's default admission policy may refuse a new
            // key when full, and a refused key would get a fresh cell, a full budget, on
            // every request.
            cells: moka::sync::Cache::builder()
                .max_capacity(LOCAL_KEYS)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(idle)
                .build(),
            epoch: Instant::now(),
        }
    }

    /// Checks (and when `spend`, spends) a cell of `key`. Lock-free per key: a
    /// compare-and-swap of the TAT, retried when another request changed it meanwhile.
    fn check(&self, key: &[u8], rate: &Rate, spend: bool) -> Verdict {
        let now = u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if !spend {
            // Asking makes no cell: keys that only ask cannot push others out.
            let tat = self.cells.get(key).map_or(0, |c| c.load(Ordering::Acquire));
            return gcra(tat, now, rate).0;
        }
        let cell = self
            .cells
            .get_with_by_ref(key, || Arc::new(AtomicU64::new(0)));
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            let (verdict, next) = gcra(tat, now, rate);
            let Some(next) = next else {
                return verdict;
            };
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return verdict,
                Err(current) => tat = current,
            }
        }
    }

    /// Keys remembered now (for tests and metrics).
    pub fn len(&self) -> u64 {
        self.cells.run_pending_tasks();
        self.cells.entry_count()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A cluster limit's cells: keys under `prefix` in Redis.
pub struct ClusterCells {
    redis: store::redis::Redis,
    script: store::redis::Script,
    prefix: String,
    counters: RedisCounters,
}

impl ClusterCells {
    /// Cells in `redis` under `prefix` (which names the limit and its rate, so that a changed
    /// limit starts afresh and an unchanged one keeps its state across reloads and nodes).
    pub fn new(redis: store::redis::Redis, prefix: String, counters: RedisCounters) -> Self {
        ClusterCells {
            redis,
            script: store::redis::Script::new(GCRA_SCRIPT),
            prefix,
            counters,
        }
    }

    /// The Redis key of a limit's `key`.
    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(self.prefix.as_bytes());
        full.extend_from_slice(key);
        full
    }

    /// One script call; `None` when Redis gave no usable answer in time.
    async fn check(&self, key: &[u8], rate: &Rate, spend: bool) -> Option<Verdict> {
        let full = self.full_key(key);
        let args = [rate.interval_micros(), rate.capacity(), u64::from(spend)];
        let (answer, took) = self
            .redis
            .run_script::<Vec<i64>>(&self.script, &[&full], &args)
            .await;
        let reply = self.counters.observe("rate limit", took, answer)?;
        let verdict = verdict_of(&reply);
        if verdict.is_none() {
            // An answer of another shape: as good as none.
            self.counters.failures.inc();
        }
        verdict
    }
}

/// The script's answer as a verdict; `None` for an answer of another shape.
fn verdict_of(reply: &[i64]) -> Option<Verdict> {
    let [allowed, remaining, reset, retry] = reply else {
        return None;
    };
    let micros = |v: &i64| Duration::from_micros(u64::try_from(*v).unwrap_or(0));
    Some(Verdict {
        allowed: *allowed == 1,
        remaining: u64::try_from(*remaining).unwrap_or(0),
        reset: micros(reset),
        retry_after: micros(retry),
    })
}

/// The Redis calls' latency and failures (one set per process).
#[derive(Clone, Debug, Default)]
pub struct RedisCounters {
    /// Time each call took.
    pub latency: crate::metrics::Latency,
    /// Calls that failed or timed out.
    pub failures: prometheus_client::metrics::counter::Counter,
    /// Whether the last call failed (for logging the change, not every failure).
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl RedisCounters {
    /// Records a call by `who` that took `took`: its latency, a failure, and a log line when
    /// Redis goes away or comes back (not per request: at thousands of requests a second a
    /// line each would flood the log). A caller that cannot use an answer counts that too.
    pub fn observe<T>(
        &self,
        who: &str,
        took: Duration,
        answer: Result<T, store::redis::RedisUnavailable>,
    ) -> Option<T> {
        self.latency.observe(took);
        match answer {
            Ok(value) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("{who}: redis answers again");
                }
                Some(value)
            }
            Err(e) => {
                self.failures.inc();
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "{who}: redis unavailable");
                }
                None
            }
        }
    }
}

/// What a limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The token's `client_id` (with its issuer).
    ClientId,
    /// The token's `sub` (with its issuer).
    Sub,
    /// The client's address ([`crate::forwarded::TrustedProxies::client_address`]).
    Ip,
    /// One budget for the whole route.
    Route,
    /// A request header's value.
    Header(HeaderName),
    /// A claim's value (a string, number or boolean).
    Claim(String),
}

impl LimitKey {
    /// Its spelling in the configuration.
    pub fn parse(text: &str) -> Option<LimitKey> {
        Some(match text {
            "client_id" => LimitKey::ClientId,
            "sub" => LimitKey::Sub,
            "ip" => LimitKey::Ip,
            "route" => LimitKey::Route,
            _ => {
                if let Some(name) = text.strip_prefix("header:") {
                    LimitKey::Header(HeaderName::from_bytes(name.as_bytes()).ok()?)
                } else {
                    let claim = text.strip_prefix("claim:").filter(|c| !c.is_empty())?;
                    LimitKey::Claim(claim.to_owned())
                }
            }
        })
    }

    /// Whether it reads the token (and so needs a route with token rules).
    pub fn needs_token(&self) -> bool {
        matches!(
            self,
            LimitKey::ClientId | LimitKey::Sub | LimitKey::Claim(_)
        )
    }
}

impl std::fmt::Display for LimitKey {
    /// Its spelling in the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitKey::ClientId => f.write_str("client_id"),
            LimitKey::Sub => f.write_str("sub"),
            LimitKey::Ip => f.write_str("ip"),
            LimitKey::Route => f.write_str("route"),
            LimitKey::Header(name) => write!(f, "header:{name}"),
            LimitKey::Claim(name) => write!(f, "claim:{name}"),
        }
    }
}

/// What a request is counted by: read once per request, for all of a route's limits.
pub struct Subject<'r> {
    /// The verified token, on a route with token rules.
    pub verified: Option<&'r Verified>,
    /// The request's headers.
    pub headers: &'r HeaderMap,
    /// The client's address.
    pub client: Option<IpAddr>,
}

impl Subject<'_> {
    /// The key's value, kind-prefixed so that no value can pass for another kind's; the
    /// client's address when the request has no such value (never one shared bucket).
    fn key(&self, key: &LimitKey) -> Vec<u8> {
        let value = match key {
            LimitKey::ClientId => self.token_value(|v| v.claims.client_id().map(String::from)),
            LimitKey::Sub => self.token_value(|v| v.claims.sub().map(String::from)),
            LimitKey::Ip => None,
            LimitKey::Route => return b"r".to_vec(),
            // Always hashed: a header that keys a limit is often a secret (an API key), which
            // must not sit in Redis's keyspace or this node's memory as it is.
            LimitKey::Header(name) => self.headers.get(name).map(|v| {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
                let mut out = b"h".to_vec();
                out.extend_from_slice(digest.as_ref());
                out
            }),
            LimitKey::Claim(name) => self.token_value(|v| claim_text(v, name)),
        };
        bounded(value.unwrap_or_else(|| self.address()))
    }

    /// A token's value, with its issuer's name: two issuers' `sub`s are two people.
    fn token_value(&self, read: impl Fn(&Verified) -> Option<String>) -> Option<Vec<u8>> {
        let verified = self.verified?;
        let value = read(verified)?;
        let mut out = b"t".to_vec();
        out.extend_from_slice(verified.issuer.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        Some(out)
    }

    fn address(&self) -> Vec<u8> {
        address_key(self.client)
    }
}

/// The key of a client's address: `a` and the address, an IPv6 one as its /64 (one host
/// commonly has a whole /64, and would otherwise have 2^64 budgets).
pub fn address_key(client: Option<IpAddr>) -> Vec<u8> {
    match client {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("a{}/64", std::net::Ipv6Addr::from(prefix)).into_bytes()
        }
        Some(IpAddr::V6(v6)) => format!(
            "a{}",
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        )
        .into_bytes(),
        Some(ip) => format!("a{ip}").into_bytes(),
        None => b"a?".to_vec(),
    }
}

/// A claim as key text: a string as it is, a number or boolean as JSON; `None` otherwise.
fn claim_text(verified: &Verified, name: &str) -> Option<String> {
    match verified.claims.get(name).ok().flatten()? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// A key no longer than [`LONGEST_KEPT_KEY`]: longer ones become `#` and their SHA-256.
fn bounded(key: Vec<u8>) -> Vec<u8> {
    if key.len() <= LONGEST_KEPT_KEY {
        return key;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
    let mut out = b"#".to_vec();
    out.extend_from_slice(digest.as_ref());
    out
}

/// What to do when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnavailable {
    /// Let the request through (counted as a Redis failure).
    #[default]
    Allow,
    /// Refuse it with 503.
    Deny,
}

/// One limit, ready to check.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Its name (metrics, headers, 429 bodies).
    pub name: String,
    /// What requests are counted by.
    pub key: LimitKey,
    /// The rate.
    pub rate: Rate,
    /// Applies only to tokens holding all of these claim values.
    pub when_claim: Vec<(String, Value)>,
    /// When Redis cannot answer.
    pub on_unavailable: OnUnavailable,
    /// Where its cells live.
    pub cells: Cells,
    /// Its allowed, limited and unavailable counts.
    pub counters: LimitCounters,
}

/// The outcome of one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Checked: its verdict.
    Checked(Verdict),
    /// Redis did not answer and the limit lets requests through.
    Unavailable,
}

impl RateLimit {
    /// Whether it applies to the request (its `when_claim`, all of them).
    pub fn applies(&self, verified: Option<&Verified>) -> bool {
        if self.when_claim.is_empty() {
            return true;
        }
        verified.is_some_and(|v| {
            self.when_claim
                .iter()
                .all(|(name, want)| crate::authorize::claim_holds(v, name, want))
        })
    }

    /// Checks and spends a cell of the request's key; [`LimitUnavailable`] when Redis did
    /// not answer and the limit refuses requests then.
    pub async fn check(&self, subject: &Subject<'_>) -> Result<Outcome, LimitUnavailable> {
        // `Subject::key` has bounded the key already.
        self.decide(&subject.key(&self.key), true).await
    }

    /// Checks a cell of `key` (a key made by the caller: the token service's limits count
    /// client ids and addresses it reads itself), spending it when `spend`.
    pub async fn check_key(&self, key: &[u8], spend: bool) -> Result<Outcome, LimitUnavailable> {
        self.decide(&bounded(key.to_vec()), spend).await
    }

    /// Checks (and when `spend`, spends) a cell of a bounded key, and counts the outcome.
    async fn decide(&self, key: &[u8], spend: bool) -> Result<Outcome, LimitUnavailable> {
        let verdict = match &self.cells {
            Cells::Local(cells) => Some(cells.check(key, &self.rate, spend)),
            Cells::Cluster(cells) => cells.check(key, &self.rate, spend).await,
        };
        match verdict {
            Some(v) => {
                if spend {
                    self.counters.decided(v.allowed);
                }
                Ok(Outcome::Checked(v))
            }
            None => {
                self.counters.unavailable();
                match self.on_unavailable {
                    OnUnavailable::Allow => Ok(Outcome::Unavailable),
                    OnUnavailable::Deny => Err(LimitUnavailable),
                }
            }
        }
    }
}

/// The token service's limits (`[token_service.rate_limits]`), rebuilt with the gateway on
/// every reload: requests per client and per address, and failed client authentications
/// per client and per address.
#[derive(Debug, Default)]
pub struct ServiceLimits {
    /// Requests per `client_id`.
    pub per_client: Option<RateLimit>,
    /// Requests per client address.
    pub per_ip: Option<RateLimit>,
    /// Failed client authentications, per `client_id` and per address.
    pub failed_auth: Option<RateLimit>,
    /// Keys whose refusal by `failed_auth` was audited within its period: audited once per
    /// period, not per attempt.
    pub audited: Option<moka::sync::Cache<Vec<u8>, ()>>,
}

impl ServiceLimits {
    /// The limits, with the memory of audited refusals `failed_auth` needs.
    pub fn new(
        per_client: Option<RateLimit>,
        per_ip: Option<RateLimit>,
        failed_auth: Option<RateLimit>,
    ) -> ServiceLimits {
        let audited = failed_auth.as_ref().map(|limit| {
            moka::sync::Cache::builder()
                .max_capacity(LOCAL_KEYS)
                .time_to_live(limit.rate.per)
                .build()
        });
        ServiceLimits {
            per_client,
            per_ip,
            failed_auth,
            audited,
        }
    }

    /// Whether `key` was refused by `failed_auth` without an audit event in its period
    /// (and remembers that one is written now).
    pub fn first_refusal_in_period(&self, key: &[u8]) -> bool {
        let Some(audited) = &self.audited else {
            return false;
        };
        let entry = audited.entry_by_ref(key).or_insert(());
        entry.is_fresh()
    }
}

/// Redis gave no answer for a limit that refuses requests then (`on_unavailable = "deny"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitUnavailable;

/// The limit nearest to running out among those checked, for the response's fields.
#[derive(Debug, Clone)]
pub struct Nearest {
    name: Arc<str>,
    rate: Rate,
    verdict: Verdict,
}

impl Nearest {
    /// Keeps whichever of `self` and the other limit has fewer requests left.
    pub fn closer(current: Option<Nearest>, limit: &RateLimit, verdict: Verdict) -> Nearest {
        match current {
            // A refusal is the nearest of all; otherwise the fewest requests left (the first
            // of equals).
            Some(n) if verdict.allowed && n.verdict.remaining <= verdict.remaining => n,
            _ => Nearest {
                name: Arc::from(limit.name.as_str()),
                rate: limit.rate,
                verdict,
            },
        }
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, as
    /// Structured Fields): the quota an idle client may spend at once (`q`) in the window
    /// (`w`, seconds), what is left (`r`) and the seconds until it is whole again (`t`).
    /// Never the key's value: it may be a user's id.
    pub fn set_fields(&self, headers: &mut HeaderMap) {
        let name = sf_string(&self.name);
        let policy = format!(
            "{name};q={};w={}",
            self.rate.capacity(),
            ceil_seconds(self.rate.per)
        );
        let state = format!(
            "{name};r={};t={}",
            self.verdict.remaining,
            ceil_seconds(self.verdict.reset)
        );
        if let (Ok(policy), Ok(state)) = (
            HeaderValue::from_str(&policy),
            HeaderValue::from_str(&state),
        ) {
            headers.insert(RATELIMIT_POLICY, policy);
            headers.insert(RATELIMIT, state);
        }
    }
}

/// A Structured Field string (RFC 8941 §3.3.3): quoted, with `"` and `\` escaped; other
/// characters outside printable ASCII replaced (limit names are the operator's, and checked
/// by the configuration, so this is only a guard).
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Whole seconds, rounded up (a client that waits this long is never early).
pub fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
