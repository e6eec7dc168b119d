//! Building the gateway from the configuration's checked route table (`config::table`):
//! issuers get their key sources, routes their upstream clients. Used at start and on every
//! reload; nothing here judges a route's shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway::auth::RouteAuth;
use gateway::cache::TokenCache;
use gateway::cache_storage::{MemoryStore, RedisStore, RouteAccount, Storage};
use gateway::client::{new_client, HttpClient};
use gateway::keys::{Issuer, KeySource, RemoteJwks, RemoteOptions, RemoteSource};
use gateway::response_cache::{ResponseCache, UpstreamIdentity};
use gateway::route::Route;
use gateway::upstream::Upstreams;
use gateway::{Gateway, Shared};
use oauth::Service;

use crate::config::cache::{CacheSpec, StorageKind};
use crate::config::table::{AuthSpec, IssuerRef, KeySpec, RouteSpec};
use crate::config::{Config, ConfigError};
use crate::error::{CliError, EXIT_USAGE};

/// What a gateway shares with the one it replaces on reload.
#[derive(Debug, Clone)]
pub struct GatewayParts {
    /// The token service.
    pub service: Arc<Service>,
    /// Denial audit queue.
    pub audit: store::AuditQueue,
    /// The metrics registry: one per process, so counts go on across reloads.
    pub metrics: Arc<gateway::metrics::Metrics>,
    /// DPoP proofs seen.
    pub replay: Arc<gateway::replay::ReplayCache>,
    /// Remote key sets by source and timing, so a reload keeps their last good keys instead
    /// of fetching them again (and failing, if the issuer is down just then).
    remotes: Arc<std::sync::Mutex<HashMap<String, Arc<RemoteJwks>>>>,
    /// Local rate-limit cells and the Redis connection, kept across reloads.
    limits: Arc<super::limits::LimitStates>,
}

impl GatewayParts {
    /// Parts over a service: a new audit writer (inside the runtime) and new metrics.
    pub fn new(service: Arc<Service>) -> GatewayParts {
        let mut metrics = gateway::metrics::Metrics::new();
        // The log writer counts what it drops; the registry reads it at each scrape.
        metrics.register_counter_fn(
            "tokengate_log_lines_dropped",
            "Log lines dropped because the log writer did not keep up",
            crate::log::dropped,
        );
        GatewayParts {
            audit: store::AuditQueue::spawn(service.store().clone()),
            metrics: Arc::new(metrics),
            replay: Arc::default(),
            remotes: Arc::default(),
            limits: Arc::default(),
            service,
        }
    }

    /// Parts for a node serving `config`: with `[redis]`, the process's one Redis
    /// connection (returned too, for the change channel and readiness), which the DPoP
    /// replay check uses so that every node refuses a proof used at another, and which rate
    /// limits and the response cache reuse; on PostgreSQL without Redis, the DPoP replay
    /// check uses the store's single-use table, which the nodes share.
    pub fn for_node(
        service: Arc<Service>,
        config: &Config,
    ) -> Result<(GatewayParts, Option<store::redis::Redis>), CliError> {
        use crate::config::limits::DpopOnUnavailable;
        use gateway::replay::{OnUnavailable, ReplayCache};
        let mut parts = GatewayParts::new(service);
        let redis = parts.limits.build(config, &parts.metrics)?.redis();
        if let (Some(redis), Some(section)) = (&redis, &config.redis) {
            let on_unavailable = match section.dpop_on_unavailable {
                DpopOnUnavailable::Deny => OnUnavailable::Deny,
                DpopOnUnavailable::Local => OnUnavailable::Local,
            };
            // Its own down/up state: its log lines say when this check lost Redis.
            let counters = gateway::ratelimit::RedisCounters {
                down: Arc::default(),
                ..parts.metrics.redis()
            };
            parts.replay = Arc::new(ReplayCache::shared(redis.clone(), on_unavailable, counters));
        } else if parts.service.store().backend() == store::Backend::Postgres {
            // Several nodes may share this database: so must they the proofs seen.
            parts.replay = Arc::new(ReplayCache::in_store(parts.service.store().clone()));
        }
        Ok((parts, redis))
    }

    /// What a new gateway shares, with a fresh token cache.
    pub fn shared(&self, settings: SharedSettings) -> Shared {
        Shared {
            own: Arc::clone(&self.service) as Arc<dyn gateway::own::OwnIssuer>,
            cache: Arc::new(TokenCache::new(
                settings.token_cache_bytes,
                self.metrics.token_cache(),
            )),
            audit: self.audit.clone(),
            metrics: Arc::clone(&self.metrics),
            dpop_window: settings.dpop_window,
            replay: Arc::clone(&self.replay),
            trusted_proxies: settings.trusted_proxies,
        }
    }
}

/// The configuration's part of what gateways share.
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// DPoP `iat` window, seconds.
    pub dpop_window: u64,
    /// `[server] trusted_proxies`.
    pub trusted_proxies: gateway::forwarded::TrustedProxies,
    /// `[server] token_cache_memory`, bytes.
    pub token_cache_bytes: u64,
}

impl SharedSettings {
    /// The settings `config` gives.
    pub fn of(config: &Config) -> SharedSettings {
        SharedSettings {
            dpop_window: config.token_service.dpop_window.0,
            trusted_proxies: config.trusted_proxies(),
            token_cache_bytes: config.server.token_cache_memory.0,
        }
    }
}

impl Default for SharedSettings {
    /// The defaults of an empty configuration.
    fn default() -> SharedSettings {
        SharedSettings {
            dpop_window: crate::config::TokenService::default().dpop_window.0,
            trusted_proxies: gateway::forwarded::TrustedProxies::default(),
            token_cache_bytes: crate::config::Server::default().token_cache_memory.0,
        }
    }
}

/// A failure to make what exists only at runtime: the configuration's shape was checked
/// when it was parsed (`config::table`), so what remains are files and the trust store.
fn config_error(e: ConfigError) -> CliError {
    CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE)
}

fn trust_store(e: impl std::fmt::Display) -> CliError {
    CliError::new(
        "ERR_TLS",
        format!("the trust store for upstream connections: {e}"),
        EXIT_USAGE,
    )
}

/// Builds the gateway for `config`: attaches HTTP clients, key sources and health checks to
/// the checked route table. Key files are read now; remote key sets are fetched on first use.
pub fn build_gateway(config: &Config, parts: &GatewayParts) -> Result<Gateway, CliError> {
    let table = config.table();
    for warning in table.warnings() {
        tracing::warn!("configuration: {warning}");
    }
    let mut remotes = parts.remotes.lock().unwrap_or_else(|e| e.into_inner());
    let mut issuers = Issuers {
        own: Arc::new(Issuer {
            name: "self".into(),
            issuer: parts.service.settings().issuer.clone(),
            keys: KeySource::Own(Arc::clone(&parts.service) as Arc<dyn gateway::own::OwnIssuer>),
            algorithms: Vec::new(),
            typ: Some(oauth::AT_JWT.into()),
            decrypt: None,
        }),
        fetch_client: new_client(Duration::from_secs(5), false).map_err(trust_store)?,
        previous: &remotes,
        kept: HashMap::new(),
        built: HashMap::new(),
    };
    let mut limits = parts.limits.build(config, &parts.metrics)?;
    // One memory cache for every route that keeps its responses in memory; a new one for
    // each configuration (a reload starts it empty, so no route serves what an upstream it
    // no longer has answered).
    let memory = table
        .routes
        .iter()
        .any(|r| {
            r.cache
                .as_ref()
                .is_some_and(|c| c.storage == StorageKind::Memory)
        })
        .then(|| Arc::new(MemoryStore::new(config.server.cache.max_memory.0)));
    let mut routes = Vec::with_capacity(table.routes.len());
    for spec in &table.routes {
        let auth = match &spec.auth {
            Some(rules) => Some(issuers.route_auth(rules)?),
            None => None,
        };
        let mut route = route(spec, auth)?;
        route.rate_limits = limits.route(spec)?;
        route.max_in_flight = limits.in_flight(spec);
        route.cache = match &spec.cache {
            Some(c) => Some(response_cache(
                &route,
                c,
                &memory,
                limits.redis(),
                &parts.metrics,
            )?),
            None => None,
        };
        routes.push(route);
    }
    let service_limits = limits.service(config)?;
    // The table refuses what `config::table` refused already, with the same check.
    let gateway = Gateway::new(routes, parts.shared(SharedSettings::of(config)))
        .map_err(|e| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE))?;
    // Only the key sets and limit cells this configuration uses are kept for the next
    // reload, and only once it is built.
    let Issuers { kept, .. } = issuers;
    *remotes = kept;
    limits.finish();
    Ok(gateway
        .with_service_limits(service_limits)
        .with_service_cors(config.service_cors().cloned()))
}

/// The issuers of one build. Each declared issuer is made on first use by a route and shared
/// by every route that names it; remote key sets come from the previous build when their
/// source and timing are unchanged, so a reload keeps their last good keys.
struct Issuers<'a> {
    own: Arc<Issuer>,
    fetch_client: HttpClient,
    previous: &'a HashMap<String, Arc<RemoteJwks>>,
    kept: HashMap<String, Arc<RemoteJwks>>,
    built: HashMap<String, Arc<Issuer>>,
}

impl Issuers<'_> {
    fn get(&mut self, wanted: &IssuerRef) -> Result<Arc<Issuer>, CliError> {
        let spec = match wanted {
            IssuerRef::Own => return Ok(Arc::clone(&self.own)),
            IssuerRef::Declared(spec) => spec,
        };
        if let Some(issuer) = self.built.get(&spec.name) {
            return Ok(Arc::clone(issuer));
        }
        let keys = match &spec.keys {
            KeySpec::File(file) => KeySource::Static(file.load().map_err(config_error)?),
            KeySpec::Url(url) => self.remote(RemoteSource::Jwks(url.to_string()), spec.remote),
            KeySpec::Discovery => {
                self.remote(RemoteSource::Discovery(spec.issuer.clone()), spec.remote)
            }
        };
        let decrypt = match &spec.decrypt_keys {
            Some(file) => Some(file.load().map_err(config_error)?),
            None => None,
        };
        let issuer = Arc::new(Issuer {
            name: spec.name.clone(),
            issuer: spec.issuer.clone(),
            keys,
            algorithms: spec.algorithms.clone(),
            typ: spec.typ.clone(),
            decrypt,
        });
        self.built.insert(spec.name.clone(), Arc::clone(&issuer));
        Ok(issuer)
    }

    fn remote(&mut self, source: RemoteSource, options: RemoteOptions) -> KeySource {
        let id = format!("{source:?} {options:?}");
        let set = match self.previous.get(&id) {
            Some(set) => Arc::clone(set),
            None => Arc::new(RemoteJwks::new(source, self.fetch_client.clone(), options)),
        };
        self.kept.insert(id, Arc::clone(&set));
        KeySource::Remote(set)
    }

    fn route_auth(&mut self, rules: &AuthSpec) -> Result<RouteAuth, CliError> {
        let mut issuers = Vec::with_capacity(rules.issuers.len());
        for wanted in &rules.issuers {
            issuers.push(self.get(wanted)?);
        }
        Ok(RouteAuth {
            issuers,
            audience: rules.audience.clone(),
            required_scopes: rules.required_scopes.clone(),
            required_claims: rules.required_claims.clone(),
            forward_claims: rules.forward_claims.clone(),
            forward_token: rules.forward_token,
            token_cache: rules.token_cache,
            leeway: rules.leeway,
            rules: rules.rules.clone(),
            // Resolved by `Gateway::new`, with the route's other metric handles.
            metrics: None,
        })
    }
}

/// A route's response cache over its storage, keyed also by what the route tells its
/// upstream about the caller.
fn response_cache(
    route: &Route,
    cache: &CacheSpec,
    memory: &Option<Arc<MemoryStore>>,
    redis: Option<store::redis::Redis>,
    metrics: &gateway::metrics::Metrics,
) -> Result<Arc<ResponseCache>, CliError> {
    let missing = |what: &str| {
        CliError::new(
            "ERR_CONFIG",
            format!("routes {:?}: cache: no {what} to store in", route.name),
            EXIT_USAGE,
        )
    };
    let storage = match cache.storage {
        StorageKind::Memory => Storage::Memory(Arc::clone(
            memory.as_ref().ok_or_else(|| missing("memory cache"))?,
        )),
        StorageKind::Redis => Storage::Redis(RedisStore::new(
            redis.ok_or_else(|| missing("[redis]"))?,
            // Its own up/down state, so that its log lines speak for the cache alone.
            gateway::ratelimit::RedisCounters {
                down: Arc::default(),
                ..metrics.redis()
            },
        )),
    };
    let counters = metrics.response_cache(&route.name);
    let account = Arc::new(RouteAccount::new(counters.evictions.clone()));
    let told = route
        .auth
        .as_ref()
        .map_or_else(UpstreamIdentity::default, |auth| UpstreamIdentity {
            fields: auth.forward_claims.iter().map(|(_, h)| h.clone()).collect(),
            token: auth.forward_token != gateway::auth::ForwardToken::None,
        });
    Ok(Arc::new(
        ResponseCache::new(
            cache.settings.clone(),
            storage,
            route.upstreams.response_timeout,
            counters,
            account,
        )
        .with_upstream_identity(told),
    ))
}

/// A route: the checked spec with its upstream client and health checks.
fn route(spec: &RouteSpec, auth: Option<RouteAuth>) -> Result<Route, CliError> {
    let client = new_client(spec.connect_timeout, spec.h2).map_err(trust_store)?;
    let upstreams = Upstreams::new(
        spec.upstreams.clone(),
        client,
        spec.timeout,
        spec.health_check.clone(),
    )
    // The table holds at least one upstream per route; this says so if that ever changed.
    .ok_or_else(|| {
        CliError::new(
            "ERR_CONFIG",
            format!("routes {:?}: at least one upstream", spec.name),
            EXIT_USAGE,
        )
    })?;
    Ok(Route {
        name: spec.name.clone(),
        host: spec.host.clone(),
        path: spec.path.clone(),
        case_sensitive: spec.case_sensitive,
        methods: spec.methods.clone(),
        strip_prefix: spec.strip_prefix.clone(),
        add_prefix: spec.add_prefix.clone(),
        request_headers: spec.request_headers.clone(),
        response_headers: spec.response_headers.clone(),
        auth,
        mcp: spec.mcp.clone(),
        upstreams: Arc::new(upstreams),
        max_body: spec.max_body,
        max_tunnel_lifetime: spec.max_tunnel_lifetime,
        rate_limits: Vec::new(),
        max_in_flight: None,
        cors: spec.cors.clone().map(Arc::new),
        cache: None,
    })
}
