//! Building the gateway from `[[routes]]` and `[[issuers]]`: issuers with their key sources,
//! routes with their upstream clients. Used at start and on every reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway::auth::RouteAuth;
use gateway::cache::TokenCache;
use gateway::client::new_client;
use gateway::keys::{Issuer, KeySource, RemoteJwks, RemoteOptions, RemoteSource};
use gateway::route::{HeaderRewrite, Mcp, PathMatch, Route};
use gateway::upstream::{HealthCheck, Upstreams};
use gateway::{Gateway, Shared};
use oauth::Service;

use crate::config::routes::{self, Auth};
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};

/// Entries of the verified-token cache.
const TOKEN_CACHE_ENTRIES: usize = 100_000;

/// What a gateway shares with the one it replaces on reload.
#[derive(Debug, Clone)]
pub struct GatewayParts {
    /// The token service.
    pub service: Arc<Service>,
    /// Denial audit queue.
    pub audit: store::AuditQueue,
    /// Counters.
    pub metrics: Arc<gateway::metrics::Metrics>,
    /// DPoP proofs seen.
    pub replay: Arc<gateway::auth::ReplayCache>,
    /// Remote key sets by source and timing, so a reload keeps their last good keys instead
    /// of fetching them again (and failing, if the issuer is down just then).
    remotes: Arc<std::sync::Mutex<HashMap<String, Arc<RemoteJwks>>>>,
}

impl GatewayParts {
    /// Parts over a service: a new audit writer (inside the runtime) and new counters.
    pub fn new(service: Arc<Service>) -> GatewayParts {
        GatewayParts {
            audit: store::AuditQueue::spawn(service.store().clone()),
            metrics: Arc::default(),
            replay: Arc::default(),
            remotes: Arc::default(),
            service,
        }
    }

    /// What a new gateway shares, with a fresh token cache.
    pub fn shared(&self, dpop_window: u64) -> Shared {
        Shared {
            own: Arc::clone(&self.service) as Arc<dyn gateway::own::OwnIssuer>,
            cache: Arc::new(TokenCache::new(TOKEN_CACHE_ENTRIES)),
            audit: self.audit.clone(),
            metrics: Arc::clone(&self.metrics),
            dpop_window,
            replay: Arc::clone(&self.replay),
        }
    }
}

fn fail(message: String) -> CliError {
    CliError::new("ERR_GATEWAY_CONFIG", message, EXIT_USAGE)
}

/// Builds the gateway for `config`. Key files are read now; remote key sets are fetched on
/// first use.
pub fn build_gateway(config: &Config, parts: &GatewayParts) -> Result<Gateway, CliError> {
    let fetch_client =
        new_client(Duration::from_secs(5), false).map_err(|e| fail(e.to_string()))?;
    let mut issuers: Vec<Arc<Issuer>> = vec![Arc::new(Issuer {
        name: "self".into(),
        issuer: parts.service.settings().issuer.clone(),
        keys: KeySource::Own(Arc::clone(&parts.service) as Arc<dyn gateway::own::OwnIssuer>),
        algorithms: Vec::new(),
        typ: Some(oauth::AT_JWT.into()),
        decrypt: None,
    })];
    let mut remotes = parts.remotes.lock().unwrap_or_else(|e| e.into_inner());
    let mut kept: HashMap<String, Arc<RemoteJwks>> = HashMap::new();
    let mut remote = |source: RemoteSource, options: RemoteOptions| {
        let id = format!("{source:?} {options:?}");
        let set = remotes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Arc::new(RemoteJwks::new(source, fetch_client.clone(), options)));
        kept.insert(id, Arc::clone(&set));
        KeySource::Remote(set)
    };
    for i in &config.issuers {
        let options = RemoteOptions {
            default_max_age: Duration::from_secs(i.cache_max_age.0),
            cooldown: Duration::from_secs(i.refetch_cooldown.0),
            timeout: Duration::from_secs(i.fetch_timeout.0.max(1)),
        };
        let keys = match (&i.jwks_file, &i.jwks_url, i.discovery) {
            (Some(path), _, _) => {
                KeySource::Static(Arc::new(crate::input::load_key_set(path.get_ref())?))
            }
            (None, Some(url), _) => remote(RemoteSource::Jwks(url.get_ref().to_string()), options),
            (None, None, _) => remote(RemoteSource::Discovery(i.issuer.get_ref().clone()), options),
        };
        let decrypt = match &i.decrypt_keys_file {
            Some(path) => Some(Arc::new(crate::input::load_key_set(path)?)),
            None => None,
        };
        issuers.push(Arc::new(Issuer {
            name: i.name.get_ref().clone(),
            issuer: i.issuer.get_ref().clone(),
            keys,
            algorithms: i.algorithm_list(),
            typ: match i.typ.as_deref() {
                None => Some(oauth::AT_JWT.into()),
                Some("") => None,
                Some(t) => Some(t.to_owned()),
            },
            decrypt,
        }));
    }

    // Only the sets this configuration uses are kept for the next reload.
    *remotes = kept;
    drop(remotes);
    let mut built = Vec::new();
    for r in &config.routes {
        built.push(
            route(r, &issuers).map_err(|e| fail(format!("routes {:?}: {e}", r.name.get_ref())))?,
        );
    }
    Gateway::new(built, parts.shared(config.token_service.dpop_window.0))
        .map_err(|e| fail(e.to_string()))
}

fn rewrite(rules: &routes::HeaderRules) -> HeaderRewrite {
    HeaderRewrite {
        set: rules
            .set
            .0
            .iter()
            .map(|(name, value)| (name.0.clone(), value.0.clone()))
            .collect(),
        remove: rules.remove.iter().map(|name| name.0.clone()).collect(),
    }
}

fn route(r: &routes::Route, issuers: &[Arc<Issuer>]) -> Result<Route, String> {
    let (path, exact) = r
        .matcher()
        .ok_or("give exactly one of path and path_prefix")?;
    let client = new_client(Duration::from_secs(r.connect_timeout.0.max(1)), r.h2)
        .map_err(|e| e.to_string())?;
    let health = r.health_check.as_ref().map(|h| HealthCheck {
        path: h.path.clone(),
        interval: Duration::from_secs(h.interval.0.max(1)),
    });
    let targets = r.upstreams.get_ref().iter().map(|u| u.0.clone()).collect();
    let upstreams = Upstreams::new(
        targets,
        client,
        Duration::from_secs(r.timeout.0.max(1)),
        health,
    )
    .ok_or("a route needs at least one upstream")?;
    let mcp = match &r.mcp {
        Some(m) => {
            let resource = m.resource.get_ref().clone();
            let url = url::Url::parse(&resource).map_err(|e| e.to_string())?;
            let suffix = url.path().trim_end_matches('/');
            let metadata_path = format!("/.well-known/oauth-protected-resource{suffix}");
            let metadata_url = format!("{}{metadata_path}", url.origin().ascii_serialization());
            Some(Mcp {
                resource,
                metadata_path,
                metadata_url,
            })
        }
        None => None,
    };
    let auth = match r.auth.get_ref() {
        Auth::None => None,
        Auth::Rules(rules) => {
            let mut chosen = Vec::new();
            for name in &rules.issuers {
                let issuer = issuers
                    .iter()
                    .find(|i| i.name == *name.get_ref())
                    .ok_or_else(|| format!("unknown issuer {:?}", name.get_ref()))?;
                chosen.push(Arc::clone(issuer));
            }
            let audience = rules
                .audience
                .as_ref()
                .map(|a| a.get_ref().clone())
                .or_else(|| mcp.as_ref().map(|m| m.resource.clone()))
                .ok_or("auth.audience is required")?;
            let forward_claims = rules
                .forward_claims
                .iter()
                .map(|(claim, header)| (claim.clone(), header.0.clone()))
                .collect();
            Some(RouteAuth {
                issuers: chosen,
                audience,
                required_scopes: rules.required_scopes.clone(),
                required_claims: rules.required_claims.clone(),
                forward_claims,
                forward_token: rules.forward_token.0,
                token_cache: rules.token_cache,
                leeway: rules.leeway.0,
            })
        }
    };
    Ok(Route {
        name: r.name.get_ref().clone(),
        host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
        path: if exact {
            PathMatch::Exact(path.get_ref().clone())
        } else {
            PathMatch::Prefix(path.get_ref().clone())
        },
        methods: r.method_list(),
        strip_prefix: r.strip_prefix.clone(),
        add_prefix: r.add_prefix.clone(),
        request_headers: rewrite(&r.request_headers),
        response_headers: rewrite(&r.response_headers),
        auth,
        mcp,
        upstreams: Arc::new(upstreams),
        max_body: r.max_body,
    })
}
