//! Rate limits, concurrency limits and `[redis]` as written in the file, and their checks:
//! `[[routes.rate_limits]]`, `[routes.limits]`, `[server] max_in_flight` and
//! `max_connections`, `[token_service.rate_limits]`. docs/configuration.md documents each
//! field; the gateway's `ratelimit` module says what the numbers mean.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use toml::Spanned;

use gateway::ratelimit::{LimitKey, OnUnavailable, Rate};

use super::{Duration, Failure};

/// Longest `per`: a month (a quota), and short enough that `capacity × interval` stays
/// exact in Redis's Lua numbers.
const LONGEST_PERIOD: u64 = 31 * 24 * 3600;

/// Most requests per period, and most burst.
const MOST_PER_PERIOD: u64 = 1_000_000_000;

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.
    pub url: Spanned<String>,
    /// The environment variable holding the password, when it is not in the URL.
    pub password_env: Option<Spanned<String>>,
    /// Longest wait for one command's answer (default 50ms); past it the call counts as
    /// unavailable.
    #[serde(default = "default_redis_timeout")]
    pub timeout: Spanned<Millis>,
    /// What the gateway's DPoP replay check does when Redis cannot answer: `deny` (default:
    /// 503, refusing is safer than accepting a replay) or `local` (this node's memory only).
    #[serde(default)]
    pub dpop_on_unavailable: DpopOnUnavailable,
}

/// `[redis] dpop_on_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopOnUnavailable {
    /// Refuse the request with 503 until Redis answers again.
    #[default]
    Deny,
    /// Remember the proof in this node's memory only: a replay at another node goes unseen
    /// while Redis is away.
    Local,
}

impl DpopOnUnavailable {
    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopOnUnavailable::Deny => "deny",
            DpopOnUnavailable::Local => "local",
        }
    }
}

fn default_redis_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(StdDuration::from_millis(50)))
}

impl RedisSection {
    /// The store's settings; the password read from `password_env` now.
    pub fn store_config(&self) -> Result<store::redis::RedisConfig, String> {
        let password = match &self.password_env {
            Some(name) => Some(std::env::var(name.get_ref()).map_err(|_| {
                format!(
                    "[redis] password_env: the environment variable {} is not set",
                    name.get_ref()
                )
            })?),
            None => None,
        };
        Ok(store::redis::RedisConfig {
            url: self.url.get_ref().clone(),
            password,
            timeout: self.timeout.get_ref().0,
        })
    }

    /// The URL without its password, for `config check`.
    pub fn shown_url(&self) -> String {
        match url::Url::parse(self.url.get_ref()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("REDACTED"));
                }
                url.to_string()
            }
            Err(_) => "(not a URL)".into(),
        }
    }

    /// `url` is a Redis URL and `timeout` is sane.
    pub(super) fn validate(&self) -> Result<(), Failure> {
        let url = self.url.get_ref();
        let scheme_ok = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some());
        if !scheme_ok {
            return Err((
                self.url.span(),
                "redis.url must be redis://host[:port][/db] or rediss://… (TLS)".into(),
            ));
        }
        let timeout = self.timeout.get_ref().0;
        if timeout.is_zero() || timeout > StdDuration::from_secs(10) {
            return Err((
                self.timeout.span(),
                "redis.timeout must be more than 0 and at most 10s".into(),
            ));
        }
        Ok(())
    }
}

/// A duration that may be shorter than a second: `50ms`, `2s`, `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub StdDuration);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            D::Error::custom(format!(
                "{text:?}: write a duration such as \"50ms\", \"2s\" or \"1m\""
            ))
        };
        let (digits, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1_000)
        } else if let Some(n) = text.strip_suffix('m') {
            (n, 60_000)
        } else {
            return Err(bad());
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
        Ok(Millis(StdDuration::from_millis(ms)))
    }
}

/// `local` or `cluster`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This node's memory.
    #[default]
    Local,
    /// Redis, shared by every node.
    Cluster,
}

fn local_scope() -> Spanned<Scope> {
    Spanned::new(0..0, Scope::Local)
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unavailable {
    /// Let requests through.
    #[default]
    Allow,
    /// Refuse them with 503.
    Deny,
}

impl Unavailable {
    /// The gateway's value.
    pub fn policy(self) -> OnUnavailable {
        match self {
            Unavailable::Allow => OnUnavailable::Allow,
            Unavailable::Deny => OnUnavailable::Deny,
        }
    }
}

/// `[[routes.rate_limits]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRateLimit {
    /// Unique within the route: metrics, the `RateLimit` fields and 429 bodies name it.
    pub name: Spanned<String>,
    /// `client_id`, `sub`, `ip`, `route`, `header:<name>` or `claim:<name>`.
    pub key: Spanned<String>,
    /// Requests per period.
    pub limit: Spanned<u64>,
    /// The period.
    pub per: Spanned<Duration>,
    /// Extra allowance on top of `limit` (default 0).
    #[serde(default)]
    pub burst: u64,
    /// `local` (default) or `cluster` (needs `[redis]`).
    #[serde(default = "local_scope")]
    pub scope: Spanned<Scope>,
    /// Applies only to tokens with these claim values.
    #[serde(default)]
    pub when_claim: BTreeMap<String, Spanned<toml::Value>>,
    /// `allow` (default) or `deny`, when Redis cannot answer in time.
    #[serde(default)]
    pub on_unavailable: Unavailable,
}

/// `[routes.limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    /// Requests in flight on the route at most; past it 503 at once.
    pub max_in_flight: Option<Spanned<u64>>,
}

/// `{ limit = 60, per = "1m" }` in `[token_service.rate_limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRate {
    /// Requests (or failures) per period.
    pub limit: Spanned<u64>,
    /// The period.
    pub per: Spanned<Duration>,
    /// Extra allowance on top of `limit` (default 0).
    #[serde(default)]
    pub burst: u64,
    /// `local` (default) or `cluster` (needs `[redis]`).
    #[serde(default = "local_scope")]
    pub scope: Spanned<Scope>,
    /// `allow` or `deny`, when Redis cannot answer in time (default `allow`, `deny` for
    /// `failed_auth`: [`ServiceRate::on_unavailable`]).
    pub on_unavailable: Option<Unavailable>,
}

impl ServiceRate {
    /// What a check does when Redis cannot answer: as written, else `deny` for `failed_auth`
    /// (guesses must not go uncounted while Redis is away) and `allow` for the others.
    pub fn on_unavailable(&self, failed_auth: bool) -> Unavailable {
        self.on_unavailable.unwrap_or(if failed_auth {
            Unavailable::Deny
        } else {
            Unavailable::Allow
        })
    }
}

/// `[token_service.rate_limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRateLimits {
    /// Requests per client (the `client_id` a request names).
    pub per_client: Option<ServiceRate>,
    /// Requests per client address.
    pub per_ip: Option<ServiceRate>,
    /// Failed client authentications, per `client_id` and per address.
    pub failed_auth: Option<ServiceRate>,
}

impl ServiceRateLimits {
    /// As `config check` shows them.
    pub fn effective(&self) -> serde_json::Value {
        let one = |r: &Option<ServiceRate>, failed_auth: bool| {
            r.as_ref().map(|r| {
                serde_json::json!({
                    "limit": r.limit.get_ref(),
                    "per_seconds": r.per.get_ref().0,
                    "burst": r.burst,
                    "scope": match r.scope.get_ref() { Scope::Local => "local", Scope::Cluster => "cluster" },
                    "on_unavailable": match r.on_unavailable(failed_auth) { Unavailable::Allow => "allow", Unavailable::Deny => "deny" },
                })
            })
        };
        serde_json::json!({
            "per_client": one(&self.per_client, false),
            "per_ip": one(&self.per_ip, false),
            "failed_auth": one(&self.failed_auth, true),
        })
    }
}

/// A rate checked: positive, not faster than one request a microsecond, not longer than a
/// month, and small enough for Redis's arithmetic.
pub fn rate(
    limit: &Spanned<u64>,
    per: &Spanned<Duration>,
    burst: u64,
    what: &str,
) -> Result<Rate, Failure> {
    let n = *limit.get_ref();
    if n == 0 || n > MOST_PER_PERIOD {
        return Err((
            limit.span(),
            format!("{what}: limit must be from 1 to {MOST_PER_PERIOD}"),
        ));
    }
    let seconds = per.get_ref().0;
    if seconds == 0 || seconds > LONGEST_PERIOD {
        return Err((per.span(), format!("{what}: per must be from 1s to 31d")));
    }
    if burst > MOST_PER_PERIOD {
        return Err((
            limit.span(),
            format!("{what}: burst must be at most {MOST_PER_PERIOD}"),
        ));
    }
    let rate = Rate {
        limit: n,
        per: StdDuration::from_secs(seconds),
        burst,
    };
    if seconds.saturating_mul(1_000_000) < n {
        return Err((
            limit.span(),
            format!("{what}: at most one request per microsecond ({n} per {seconds}s is faster)"),
        ));
    }
    // Redis computes in doubles: keep `now + capacity × interval` below 2^53 µs.
    if u128::from(rate.capacity()) * u128::from(rate.interval_micros()) > 1u128 << 50 {
        return Err((
            limit.span(),
            format!("{what}: limit + burst is too large for the period"),
        ));
    }
    Ok(rate)
}

/// A route's rate limit checked: unique name, known key, a token for keys and conditions
/// that read one, `cluster` only with `[redis]`.
pub fn check_route_limit(
    route: &str,
    limit: &RouteRateLimit,
    earlier: &[RouteRateLimit],
    has_token_rules: bool,
    has_redis: bool,
) -> Result<(LimitKey, Rate, ClaimValues), Failure> {
    let name = limit.name.get_ref();
    let what = format!("routes {route:?}: rate_limits {name:?}");
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if !name_ok {
        return Err((
            limit.name.span(),
            format!("{what}: a name is 1 to 64 letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    if earlier.iter().any(|e| e.name.get_ref() == name) {
        return Err((limit.name.span(), format!("{what}: declared twice")));
    }
    let key = LimitKey::parse(limit.key.get_ref()).ok_or_else(|| {
        (
            limit.key.span(),
            format!(
                "{what}: key {:?}: use client_id, sub, ip, route, header:<name> or claim:<name>",
                limit.key.get_ref()
            ),
        )
    })?;
    if !has_token_rules && (key.needs_token() || !limit.when_claim.is_empty()) {
        return Err((
            limit.key.span(),
            format!("{what}: key and when_claim read the token, and the route has auth = \"none\""),
        ));
    }
    let when_claim = claim_values(&limit.when_claim, &format!("{what}: when_claim"))?;
    check_scope(&limit.scope, has_redis, &what)?;
    let rate = rate(&limit.limit, &limit.per, limit.burst, &what)?;
    Ok((key, rate, when_claim))
}

/// `cluster` only with `[redis]`.
pub fn check_scope(scope: &Spanned<Scope>, has_redis: bool, what: &str) -> Result<(), Failure> {
    if *scope.get_ref() == Scope::Cluster && !has_redis {
        return Err((
            scope.span(),
            format!("{what}: scope = \"cluster\" needs a [redis] section"),
        ));
    }
    Ok(())
}

/// Claim names and the values a token must hold for them.
pub type ClaimValues = Vec<(String, serde_json::Value)>;

/// Claim values as a token would hold them (a rate limit's `when_claim`, a rule's `claims`),
/// each a string, integer or boolean; `what` names the table in errors.
pub fn claim_values(
    written: &BTreeMap<String, Spanned<toml::Value>>,
    what: &str,
) -> Result<ClaimValues, Failure> {
    written
        .iter()
        .map(|(name, value)| match claim_value(value.get_ref()) {
            Some(v) => Ok((name.clone(), v)),
            None => Err((
                value.span(),
                format!("{what}.{name} must be a string, integer or boolean"),
            )),
        })
        .collect()
}

/// A claim value written in TOML as the claim would hold it.
fn claim_value(value: &toml::Value) -> Option<serde_json::Value> {
    match value {
        toml::Value::String(s) => Some(serde_json::Value::String(s.clone())),
        toml::Value::Integer(i) => Some(serde_json::Value::from(*i)),
        toml::Value::Boolean(b) => Some(serde_json::Value::Bool(*b)),
        _ => None,
    }
}

/// A concurrency bound: from 1 to 1,000,000.
pub fn concurrency(value: &Spanned<u64>, what: &str) -> Result<usize, Failure> {
    let n = *value.get_ref();
    if n == 0 || n > 1_000_000 {
        return Err((value.span(), format!("{what} must be from 1 to 1000000")));
    }
    usize::try_from(n).map_err(|_| (value.span(), format!("{what} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_read_ms_seconds_and_minutes_only() {
        let read = |t: &str| toml::from_str::<BTreeMap<String, Millis>>(&format!("v = {t:?}"));
        assert_eq!(read("50ms").unwrap()["v"].0, StdDuration::from_millis(50));
        assert_eq!(read("2s").unwrap()["v"].0, StdDuration::from_secs(2));
        assert_eq!(read("1m").unwrap()["v"].0, StdDuration::from_secs(60));
        for bad in ["50", "ms", "1h", "-5ms", "1.5s"] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_refuse_zero_too_fast_and_too_large() {
        let at = |n| Spanned::new(0..1, n);
        let per = |s| Spanned::new(0..1, Duration(s));
        assert!(rate(&at(100), &per(60), 20, "x").is_ok());
        assert!(rate(&at(0), &per(60), 0, "x").is_err());
        assert!(rate(&at(1), &per(0), 0, "x").is_err());
        assert!(rate(&at(1), &per(LONGEST_PERIOD + 1), 0, "x").is_err());
        assert!(
            rate(&at(2_000_000), &per(1), 0, "x").is_err(),
            "faster than 1/µs"
        );
        assert!(rate(&at(1), &per(LONGEST_PERIOD), MOST_PER_PERIOD, "x").is_err());
    }
}
