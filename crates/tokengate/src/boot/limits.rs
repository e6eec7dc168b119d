//! Rate limits and concurrency bounds made runtime objects: local limits get their cells
//! (kept across reloads while the limit is unchanged), cluster limits the process's one
//! Redis connection, every limit its metric handles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gateway::metrics::{Metrics, TOKEN_SERVICE};
use gateway::ratelimit::{
    Cells, ClusterCells, LimitKey, LocalCells, Rate, RateLimit, ServiceLimits,
};
use gateway::shed::InFlightLimit;
use store::redis::Redis;

use crate::config::limits::{Scope, ServiceRate};
use crate::config::table::RouteSpec;
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};

/// Where Redis keys of cluster limits start.
const REDIS_PREFIX: &str = "tokengate:rl:";

/// What limits keep across reloads: local cells by limit, routes' in-flight counts, and the
/// Redis connection.
#[derive(Default)]
pub struct LimitStates {
    local: Mutex<HashMap<String, Arc<LocalCells>>>,
    in_flight: Mutex<HashMap<String, Arc<InFlightLimit>>>,
    redis: Mutex<Option<(String, Redis)>>,
}

impl std::fmt::Debug for LimitStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitStates").finish_non_exhaustive()
    }
}

/// The limits of one build: cells found or made, and the ids used (the others are dropped
/// when the build is done).
pub struct LimitBuild<'a> {
    states: &'a LimitStates,
    metrics: &'a Metrics,
    redis: Option<Redis>,
    used: HashMap<String, Arc<LocalCells>>,
    used_in_flight: HashMap<String, Arc<InFlightLimit>>,
}

impl LimitStates {
    /// Starts a build for `config`: the Redis connection of `[redis]` (the one kept, when
    /// `[redis]` did not change), made without waiting for Redis.
    pub fn build<'a>(
        &'a self,
        config: &Config,
        metrics: &'a Metrics,
    ) -> Result<LimitBuild<'a>, CliError> {
        let redis = match &config.redis {
            None => None,
            Some(section) => {
                let settings = section
                    .store_config()
                    .map_err(|e| CliError::new("ERR_CONFIG", e, EXIT_USAGE))?;
                let id = format!(
                    "{:?}",
                    (&settings.url, &settings.password, settings.timeout)
                );
                let mut kept = self.redis.lock().unwrap_or_else(|e| e.into_inner());
                match kept.as_ref().filter(|(kept_id, _)| *kept_id == id) {
                    Some((_, redis)) => Some(redis.clone()),
                    None => {
                        let redis = Redis::new(&settings).map_err(|e| {
                            CliError::new("ERR_CONFIG", format!("[redis] url: {e}"), EXIT_USAGE)
                        })?;
                        *kept = Some((id, redis.clone()));
                        Some(redis)
                    }
                }
            }
        };
        Ok(LimitBuild {
            states: self,
            metrics,
            redis,
            used: HashMap::new(),
            used_in_flight: HashMap::new(),
        })
    }
}

impl LimitBuild<'_> {
    /// The Redis connection of `[redis]`, for the other state nodes share there.
    pub fn redis(&self) -> Option<Redis> {
        self.redis.clone()
    }

    /// A route's rate limits.
    pub fn route(&mut self, spec: &RouteSpec) -> Result<Vec<RateLimit>, CliError> {
        let mut limits = Vec::with_capacity(spec.rate_limits.len());
        for limit in &spec.rate_limits {
            let id = format!(
                "{}:{}:{}:{}/{}+{}:",
                spec.name,
                limit.name,
                limit.key,
                limit.rate.limit,
                limit.rate.per.as_secs(),
                limit.rate.burst
            );
            limits.push(RateLimit {
                name: limit.name.clone(),
                key: limit.key.clone(),
                rate: limit.rate,
                when_claim: limit.when_claim.clone(),
                on_unavailable: limit.on_unavailable,
                cells: self.cells(id, limit.scope, &limit.rate)?,
                counters: self.metrics.rate_limit(&spec.name, &limit.name),
            });
        }
        Ok(limits)
    }

    /// A route's `max_in_flight`: the count kept from the previous build when the route and
    /// its bound are unchanged, so requests in flight across a reload still count.
    pub fn in_flight(&mut self, spec: &RouteSpec) -> Option<Arc<InFlightLimit>> {
        let max = spec.max_in_flight?;
        let id = format!("{}:{max}", spec.name);
        let kept = self
            .states
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        let limit = kept.unwrap_or_else(|| InFlightLimit::new(max));
        self.used_in_flight.insert(id, Arc::clone(&limit));
        Some(limit)
    }

    /// `[token_service.rate_limits]`.
    pub fn service(&mut self, config: &Config) -> Result<ServiceLimits, CliError> {
        let written = &config.token_service.rate_limits;
        let mut one = |name: &str, key: LimitKey, rate: &Option<ServiceRate>| {
            rate.as_ref()
                .map(|r| self.service_limit(name, key, r))
                .transpose()
        };
        let per_client = one("per_client", LimitKey::ClientId, &written.per_client)?;
        let per_ip = one("per_ip", LimitKey::Ip, &written.per_ip)?;
        let failed_auth = one("failed_auth", LimitKey::ClientId, &written.failed_auth)?;
        Ok(ServiceLimits::new(per_client, per_ip, failed_auth))
    }

    fn service_limit(
        &mut self,
        name: &str,
        key: LimitKey,
        written: &ServiceRate,
    ) -> Result<RateLimit, CliError> {
        // Checked when the file was parsed; the same conversion gives the rate.
        let rate = crate::config::limits::rate(&written.limit, &written.per, written.burst, name)
            .map_err(|(_, why)| CliError::new("ERR_CONFIG", why, EXIT_USAGE))?;
        let id = format!(
            "{TOKEN_SERVICE}:{name}:{}/{}+{}:",
            rate.limit,
            rate.per.as_secs(),
            rate.burst
        );
        Ok(RateLimit {
            name: name.to_owned(),
            key,
            rate,
            when_claim: Vec::new(),
            on_unavailable: written.on_unavailable(name == "failed_auth").policy(),
            cells: self.cells(id, *written.scope.get_ref(), &rate)?,
            counters: self.metrics.rate_limit(TOKEN_SERVICE, name),
        })
    }

    /// The cells of the limit `id`: the kept local ones when the limit is unchanged, or keys
    /// under `id` in Redis (so an unchanged limit keeps its state across reloads and nodes,
    /// and a changed one starts afresh).
    fn cells(&mut self, id: String, scope: Scope, rate: &Rate) -> Result<Cells, CliError> {
        match scope {
            Scope::Local => {
                let kept = self.states.local.lock().unwrap_or_else(|e| e.into_inner());
                let cells = kept
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(LocalCells::new(rate)));
                self.used.insert(id, Arc::clone(&cells));
                Ok(Cells::Local(cells))
            }
            Scope::Cluster => {
                // The configuration refuses `cluster` without `[redis]`; this says so if that
                // ever changed.
                let redis = self.redis.clone().ok_or_else(|| {
                    CliError::new(
                        "ERR_CONFIG",
                        "a cluster rate limit needs a [redis] section",
                        EXIT_USAGE,
                    )
                })?;
                let prefix = format!("{REDIS_PREFIX}{id}");
                Ok(Cells::Cluster(Arc::new(ClusterCells::new(
                    redis,
                    prefix,
                    self.metrics.redis(),
                ))))
            }
        }
    }

    /// Keeps the local cells and in-flight counts this build used, for the next reload; the
    /// others are dropped.
    pub fn finish(self) {
        *self.states.local.lock().unwrap_or_else(|e| e.into_inner()) = self.used;
        *self
            .states
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.used_in_flight;
    }
}
