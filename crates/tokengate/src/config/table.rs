//! The one conversion from `[[issuers]]` and `[[routes]]` to the gateway's typed route table.
//! `Config::parse` runs it, so `config check`, `serve` and a reload accept and refuse the
//! same files, each problem reported at the value that causes it. It produces everything
//! about a route that needs no runtime (matchers, rewrites, MCP metadata paths, token rules
//! with their issuers resolved and audience defaulted) and refuses overlaps with the route
//! table's own check; boot only attaches HTTP clients, key sources and health checks.
//! Nothing is raised to a minimum or dropped on the way: a value that would not work as
//! written is an error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use gateway::auth::ForwardToken;
use gateway::keys::{is_loopback, RemoteOptions};
use gateway::route::{HeaderRewrite, Mcp, OverlappingRoutes, PathMatch, RouteKey};
use gateway::upstream::{HealthCheck, TargetUrl};
use jose::{Algorithm, JwkSet};
use serde_json::{json, Value};
use toml::Spanned;
use url::Url;

use super::routes::{self, Auth, AuthRules, HeaderRules, Route, RESERVED};
use super::{Config, ConfigError, Duration, Failure, Issuer, Source};

/// Defaults of the route's timings, in seconds (`timeout`'s is `[server.timeouts] upstream`).
const DEFAULT_CONNECT_TIMEOUT: u64 = 5;
const DEFAULT_HEALTH_INTERVAL: u64 = 5;
const DEFAULT_FETCH_TIMEOUT: u64 = 5;
const DEFAULT_MAX_TUNNEL_LIFETIME: u64 = 2 * 3600;
/// The largest `auth.leeway`, seconds.
const MAX_LEEWAY: u64 = 600;

/// The gateway's issuers and routes, in file order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// `[[issuers]]`.
    pub issuers: Vec<Arc<IssuerSpec>>,
    /// `[[routes]]`; no two overlap.
    pub routes: Vec<RouteSpec>,
}

/// A declared issuer as the gateway needs it.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// Its name.
    pub name: String,
    /// Its `iss`.
    pub issuer: String,
    /// Where its public keys come from.
    pub keys: KeySpec,
    /// The algorithms its tokens may use (at least one).
    pub algorithms: Vec<Algorithm>,
    /// Required `typ`; `None` checks none.
    pub typ: Option<String>,
    /// Private keys that decrypt its nested tokens.
    pub decrypt_keys: Option<KeyFile>,
    /// Timing of a remote key set.
    pub remote: RemoteOptions,
}

/// Where an issuer's public keys come from.
#[derive(Debug, Clone)]
pub enum KeySpec {
    /// A file, read at boot and on reload.
    File(KeyFile),
    /// A JWKS URL (http or https).
    Url(Url),
    /// The `jwks_uri` of the issuer's metadata; its `issuer` is an http(s) URL.
    Discovery,
}

/// A key file the configuration names, with the place that names it: a file that cannot be
/// read or parsed is reported there, by `config check` and at boot alike.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The file, as given.
    pub path: PathBuf,
    /// File, line and column of the value, and the field as the message's start.
    origin: ConfigError,
}

impl KeyFile {
    /// Reads and parses the file (a JWK, JWK Set or PEM key); errors name the file.
    pub fn load(&self) -> Result<Arc<JwkSet>, ConfigError> {
        crate::input::load_key_set(&self.path)
            .map(Arc::new)
            .map_err(|e| ConfigError {
                message: format!("{}: {}", self.origin.message, e.reason),
                ..self.origin.clone()
            })
    }
}

/// An issuer a route accepts.
#[derive(Debug, Clone)]
pub enum IssuerRef {
    /// The built-in token service ("self").
    Own,
    /// A declared issuer.
    Declared(Arc<IssuerSpec>),
}

impl IssuerRef {
    /// Its name in the configuration.
    pub fn name(&self) -> &str {
        match self {
            IssuerRef::Own => "self",
            IssuerRef::Declared(i) => &i.name,
        }
    }
}

/// A route without what exists only at runtime (its HTTP client and health-check task).
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Its name.
    pub name: String,
    /// The `Host` it serves, lowercase; `None` for any.
    pub host: Option<String>,
    /// The path it serves (canonical, not reserved by the token service).
    pub path: PathMatch,
    /// Whether the path is matched case-sensitively.
    pub case_sensitive: bool,
    /// The methods it serves (never an empty list); `None` for any.
    pub methods: Option<Vec<http::Method>>,
    /// Removed from the front of the path (it applies to the paths the route serves).
    pub strip_prefix: Option<String>,
    /// Added to the front of the path.
    pub add_prefix: Option<String>,
    /// Request header changes.
    pub request_headers: HeaderRewrite,
    /// Response header changes.
    pub response_headers: HeaderRewrite,
    /// Token rules; `None` for an explicitly public route.
    pub auth: Option<AuthSpec>,
    /// MCP protected-resource metadata.
    pub mcp: Option<Mcp>,
    /// Upstream base URLs (at least one).
    pub upstreams: Vec<TargetUrl>,
    /// Time to the upstream's response head (at least 1s).
    pub timeout: StdDuration,
    /// Time to connect to an upstream (at least 1s).
    pub connect_timeout: StdDuration,
    /// Longest a WebSocket tunnel stays open (at least 1s).
    pub max_tunnel_lifetime: StdDuration,
    /// HTTP/2 with prior knowledge to the upstreams.
    pub h2: bool,
    /// Largest request body, bytes.
    pub max_body: u64,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// Rate limits, in order.
    pub rate_limits: Vec<RateLimitSpec>,
    /// Requests in flight at most.
    pub max_in_flight: Option<usize>,
    /// Browser access.
    pub cors: Option<gateway::cors::Cors>,
    /// The response cache.
    pub cache: Option<super::cache::CacheSpec>,
}

/// A route's rate limit, checked.
#[derive(Debug, Clone)]
pub struct RateLimitSpec {
    /// Its name (unique in the route).
    pub name: String,
    /// What requests are counted by.
    pub key: gateway::ratelimit::LimitKey,
    /// The rate.
    pub rate: gateway::ratelimit::Rate,
    /// Where its cells live.
    pub scope: super::limits::Scope,
    /// Claim values a token must hold for the limit to apply.
    pub when_claim: Vec<(String, Value)>,
    /// When Redis cannot answer.
    pub on_unavailable: gateway::ratelimit::OnUnavailable,
}

impl RateLimitSpec {
    /// As `config check` shows it.
    fn effective(&self) -> Value {
        json!({
            "name": self.name,
            "key": self.key.to_string(),
            "limit": self.rate.limit,
            "per_seconds": self.rate.per.as_secs(),
            "burst": self.rate.burst,
            "scope": match self.scope {
                super::limits::Scope::Local => "local",
                super::limits::Scope::Cluster => "cluster",
            },
            "when_claim": self.when_claim.iter().cloned().collect::<serde_json::Map<String, Value>>(),
            "on_unavailable": match self.on_unavailable {
                gateway::ratelimit::OnUnavailable::Allow => "allow",
                gateway::ratelimit::OnUnavailable::Deny => "deny",
            },
        })
    }
}

impl RouteSpec {
    /// What decides which requests it serves (the route table's overlap key).
    pub fn key(&self) -> RouteKey<'_> {
        RouteKey {
            host: self.host.as_deref(),
            path: &self.path,
            case_sensitive: self.case_sensitive,
            methods: self.methods.as_deref(),
        }
    }
}

/// A route's token rules.
#[derive(Debug, Clone)]
pub struct AuthSpec {
    /// Issuers accepted (at least one, each once).
    pub issuers: Vec<IssuerRef>,
    /// The required `aud`: `auth.audience`, else the MCP resource.
    pub audience: String,
    /// Scopes all required (valid scope tokens).
    pub required_scopes: Vec<String>,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
    /// Claim → upstream header (each header once).
    pub forward_claims: Vec<(String, http::HeaderName)>,
    /// What replaces the client's token upstream.
    pub forward_token: ForwardToken,
    /// Use the verified-token cache.
    pub token_cache: bool,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway: u64,
    /// Authorization rules, in order.
    pub rules: Vec<gateway::authorize::AuthRule>,
}

impl Table {
    /// Reads every key file the issuers name. Parsing reads no file; `config check` adds
    /// this so a missing or malformed key is found before a start or reload needs it.
    pub fn load_key_files(&self) -> Result<(), ConfigError> {
        for issuer in &self.issuers {
            if let KeySpec::File(file) = &issuer.keys {
                file.load()?;
            }
            if let Some(file) = &issuer.decrypt_keys {
                file.load()?;
            }
        }
        Ok(())
    }

    /// The routes as `config check` shows them, defaults resolved.
    pub fn effective_routes(&self) -> Value {
        let routes = self.routes.iter().map(|r| {
            let (path, path_prefix) = match &r.path {
                PathMatch::Exact(p) => (Some(p), None),
                PathMatch::Prefix(p) => (None, Some(p)),
            };
            json!({
                "name": r.name,
                "path": path,
                "path_prefix": path_prefix,
                "case_sensitive": r.case_sensitive,
                "host": r.host,
                "methods": r.methods.as_ref().map(|m| m.iter().map(http::Method::as_str).collect::<Vec<_>>()),
                "upstreams": r.upstreams.iter().map(TargetUrl::as_str).collect::<Vec<_>>(),
                "public": r.auth.is_none(),
                "issuers": r.auth.as_ref().map(|a| a.issuers.iter().map(IssuerRef::name).collect::<Vec<_>>()),
                "audience": r.auth.as_ref().map(|a| &a.audience),
                "resource_metadata": r.mcp.as_ref().map(|m| &m.metadata_url),
                "auth_rules": r.auth.as_ref().map(|a| a.rules.iter().map(|rule| json!({
                    "methods": rule.methods.as_ref().map(|m| m.iter().map(http::Method::as_str).collect::<Vec<_>>()),
                    "path_prefix": rule.path_prefix,
                    "scopes": rule.scopes,
                    "claims": rule.claims.iter().cloned().collect::<serde_json::Map<String, Value>>(),
                })).collect::<Vec<_>>()),
                "rate_limits": r.rate_limits.iter().map(RateLimitSpec::effective).collect::<Vec<_>>(),
                "max_in_flight": r.max_in_flight,
                "cors": r.cors.as_ref().map(|c| json!({
                    "allow_origins": match &c.allow_origins {
                        gateway::cors::AllowOrigins::Any => json!(["*"]),
                        gateway::cors::AllowOrigins::List(l) => json!(l),
                    },
                    "allow_methods": c.allow_methods.iter().map(http::Method::as_str).collect::<Vec<_>>(),
                    "allow_headers": c.allow_headers.iter().map(http::HeaderName::as_str).collect::<Vec<_>>(),
                    "expose_headers": c.expose_headers.iter().map(http::HeaderName::as_str).collect::<Vec<_>>(),
                    "max_age_seconds": c.max_age.as_secs(),
                    "allow_credentials": c.allow_credentials,
                })),
                "cache": r.cache.as_ref().map(super::cache::CacheSpec::effective),
            })
        });
        Value::Array(routes.collect())
    }
}

impl Table {
    /// What the routes allow that is legal but risky, for `config check` and the log at
    /// start and reload: paths whose spelling differs only by case, which an upstream that
    /// ignores case (ASP.NET Core, IIS) serves as one, so a request in another case reaches a
    /// laxer route; and a route that serves some methods only under a route that serves more,
    /// where the other methods go (docs/security.md, finding 2).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, a) in self.routes.iter().enumerate() {
            for b in self.routes.iter().take(i) {
                if let Some(warning) = case_warning(a, b).or_else(|| case_warning(b, a)) {
                    out.push(warning);
                }
            }
        }
        for a in &self.routes {
            out.extend(self.routes.iter().filter_map(|b| method_warning(a, b)));
        }
        out
    }
}

/// The warning for a route that serves some methods only, under another route that serves
/// more: a request with another method is not refused (405) but goes to the other route,
/// whose rules may be laxer.
fn method_warning(narrow: &RouteSpec, wide: &RouteSpec) -> Option<String> {
    let methods = narrow.methods.as_ref()?;
    let PathMatch::Prefix(q) = &wide.path else {
        return None;
    };
    let (PathMatch::Exact(p) | PathMatch::Prefix(p)) = &narrow.path;
    // Strictly under the wide prefix (a route on the same path that serves other methods
    // splits them; the rest still get a 405), or its bare path; in the wide route's case.
    let under = p.len() > q.len()
        && p.get(..q.len()).is_some_and(|head| {
            head == q || (!wide.case_sensitive && head.eq_ignore_ascii_case(q))
        });
    let bare = q.strip_suffix('/') == Some(p.as_str());
    if std::ptr::eq(narrow, wide) || !hosts_meet(narrow, wide) || !(under || bare) {
        return None;
    }
    let others = wide
        .methods
        .as_ref()
        .is_none_or(|w| w.iter().any(|m| !methods.contains(m)));
    others.then(|| {
        format!(
            "route {:?} ({p}) serves {} only: other methods on its paths go to route {:?} ({q}) \
             and its rules, not to a 405",
            narrow.name,
            methods
                .iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            wide.name
        )
    })
}

/// Whether a request for `inner`'s host can reach `outer`: it serves any host, or the same.
fn hosts_meet(inner: &RouteSpec, outer: &RouteSpec) -> bool {
    outer.host.is_none() || outer.host == inner.host
}

/// The warning for `inner` next to `outer`, when a change of case would move a request
/// from `inner` to `outer`: their paths are equal ignoring case, or `inner` (case-sensitive)
/// lies under `outer`'s prefix and has letters past it.
fn case_warning(inner: &RouteSpec, outer: &RouteSpec) -> Option<String> {
    if !inner.case_sensitive || !hosts_meet(inner, outer) {
        return None;
    }
    let (PathMatch::Exact(p) | PathMatch::Prefix(p)) = &inner.path;
    let (PathMatch::Exact(q) | PathMatch::Prefix(q)) = &outer.path;
    let (a, b) = (&inner.name, &outer.name);
    if p != q && p.eq_ignore_ascii_case(q) {
        return Some(format!(
            "routes {a:?} ({p}) and {b:?} ({q}) differ only by case: an upstream that ignores \
             case serves both from either; give them one spelling, or set case_sensitive = false"
        ));
    }
    let rest = match &outer.path {
        PathMatch::Prefix(q) if p.len() > q.len() => p.strip_prefix(q.as_str())?,
        _ => return None,
    };
    rest.bytes().any(|c| c.is_ascii_alphabetic()).then(|| {
        format!(
            "route {a:?} ({p}) lies under route {b:?} ({q}) and matches case-sensitively: \
             {q}{upper} reaches route {b:?}; if the upstream ignores case, set \
             case_sensitive = false on route {a:?}",
            upper = rest.to_ascii_uppercase()
        )
    })
}

/// Converts `[[issuers]]` and `[[routes]]`, each rule reported at the value that breaks it.
pub(super) fn build(config: &Config, source: &Source<'_>) -> Result<Table, Failure> {
    let mut issuers: Vec<Arc<IssuerSpec>> = Vec::with_capacity(config.issuers.len());
    let own = config.issuer_id().ok();
    for declared in &config.issuers {
        if own.as_deref() == Some(declared.issuer.get_ref().trim_end_matches('/'))
            || own.as_deref() == Some(declared.issuer.get_ref())
        {
            return Err((
                declared.issuer.span(),
                format!(
                    "issuers {:?}: {:?} is the built-in token service's issuer; routes accept \
                     its tokens as \"self\" (with its own keys and revocations), never through a \
                     second declaration",
                    declared.name.get_ref(),
                    declared.issuer.get_ref()
                ),
            ));
        }
        let spec = issuer(declared, &issuers, source)?;
        issuers.push(Arc::new(spec));
    }
    let mut routes: Vec<RouteSpec> = Vec::with_capacity(config.routes.len());
    for declared in &config.routes {
        let spec = route(declared, &issuers, config.timeouts.upstream.as_secs())?;
        let spec = RouteSpec {
            rate_limits: rate_limits(declared, spec.auth.is_some(), config.redis.is_some())?,
            max_in_flight: match &declared.limits.max_in_flight {
                Some(n) => Some(super::limits::concurrency(
                    n,
                    &format!("routes {:?}: limits.max_in_flight", spec.name),
                )?),
                None => None,
            },
            cache: match &declared.cache {
                Some(written) => Some(super::cache::spec(
                    written,
                    &format!("routes {:?}: cache", spec.name),
                    &super::cache::Around {
                        has_token_rules: spec.auth.is_some(),
                        has_redis: config.redis.is_some(),
                        max_memory: config.server.cache.max_memory.0,
                    },
                )?),
                None => None,
            },
            ..spec
        };
        unique(declared, &spec, &routes)?;
        routes.push(spec);
    }
    Ok(Table { issuers, routes })
}

fn issuer(
    i: &Issuer,
    earlier: &[Arc<IssuerSpec>],
    source: &Source<'_>,
) -> Result<IssuerSpec, Failure> {
    let name = i.name.get_ref();
    if name.is_empty() || name == "self" || earlier.iter().any(|o| o.name == *name) {
        return Err((
            i.name.span(),
            format!("issuers.name {name:?} is reserved or declared twice"),
        ));
    }
    if i.issuer.get_ref().is_empty() {
        return Err((
            i.issuer.span(),
            format!("issuers {name:?}: issuer is empty"),
        ));
    }
    let keys = key_spec(i, source)?;
    if i.algorithms.is_empty() {
        return Err((
            i.name.span(),
            "issuers.algorithms must list at least one".into(),
        ));
    }
    let decrypt_keys = match &i.decrypt_keys_file {
        Some(file) => Some(key_file(name, "decrypt_keys_file", file, source)?),
        None => None,
    };
    if i.refetch_cooldown.0 == 0 && !matches!(keys, KeySpec::File(_)) {
        return Err((
            i.name.span(),
            format!("issuers {name:?}: refetch_cooldown must be at least 1s: without it every token with an unknown kid makes the gateway fetch the key set again, which anyone can do at will"),
        ));
    }
    let fetch_timeout = seconds(i.fetch_timeout.as_ref(), DEFAULT_FETCH_TIMEOUT, || {
        format!("issuers {name:?}: fetch_timeout")
    })?;
    Ok(IssuerSpec {
        name: name.clone(),
        issuer: i.issuer.get_ref().clone(),
        keys,
        algorithms: i.algorithm_list(),
        typ: match i.typ.as_deref() {
            None => Some(oauth::AT_JWT.into()),
            Some("") => None,
            Some(t) => Some(t.to_owned()),
        },
        decrypt_keys,
        remote: RemoteOptions {
            default_max_age: StdDuration::from_secs(i.cache_max_age.0),
            cooldown: StdDuration::from_secs(i.refetch_cooldown.0),
            timeout: fetch_timeout,
        },
    })
}

/// Where an issuer's public keys come from: exactly one of `jwks_file`, `jwks_url` (https, or
/// http on loopback) and `discovery` (from an https issuer, or http on loopback). Keys
/// fetched without TLS could be anyone's.
fn key_spec(i: &Issuer, source: &Source<'_>) -> Result<KeySpec, Failure> {
    let name = i.name.get_ref();
    let at = |span: std::ops::Range<usize>, message: &str| {
        Err((span, format!("issuers {name:?}: {message}")))
    };
    match (&i.jwks_file, &i.jwks_url, i.discovery) {
        (Some(file), None, false) => Ok(KeySpec::File(key_file(name, "jwks_file", file, source)?)),
        (None, Some(url), false) => match url.get_ref().scheme() {
            "https" => Ok(KeySpec::Url(url.get_ref().clone())),
            "http" if is_loopback(url.get_ref()) => Ok(KeySpec::Url(url.get_ref().clone())),
            "http" => at(
                url.span(),
                &format!(
                    "jwks_url {} is fetched without TLS, so anyone on the path could swap the \
                     keys and mint tokens this gateway accepts; use https (http only on loopback)",
                    url.get_ref()
                ),
            ),
            _ => Err((url.span(), "issuers.jwks_url must be an http(s) URL".into())),
        },
        (None, None, true) => match Url::parse(i.issuer.get_ref()) {
            Ok(u) if !is_http_url(u.as_str()) => at(
                i.issuer.span(),
                "discovery needs an issuer that is an http(s) URL (its metadata is fetched from it)",
            ),
            Err(_) => at(
                i.issuer.span(),
                "discovery needs an issuer that is an http(s) URL (its metadata is fetched from it)",
            ),
            Ok(u) if u.scheme() == "http" && !is_loopback(&u) => at(
                i.issuer.span(),
                "discovery over http would fetch the metadata and keys without TLS, so anyone \
                 on the path could swap the keys; use an https issuer (http only on loopback)",
            ),
            Ok(_) => Ok(KeySpec::Discovery),
        },
        _ => at(
            i.name.span(),
            "give exactly one of jwks_file, jwks_url or discovery = true",
        ),
    }
}

fn is_http_url(text: &str) -> bool {
    match Url::parse(text) {
        Ok(url) => matches!(url.scheme(), "https" | "http") && url.host().is_some(),
        Err(_) => false,
    }
}

fn key_file(
    issuer: &str,
    field: &str,
    file: &Spanned<PathBuf>,
    source: &Source<'_>,
) -> Result<KeyFile, Failure> {
    // `-` means stdin to the key loader; a server reading its keys from stdin would hang.
    if file.get_ref().as_os_str() == "-" {
        return Err((
            file.span(),
            format!("issuers {issuer:?}: {field} must name a file (\"-\" would be stdin)"),
        ));
    }
    Ok(KeyFile {
        path: file.get_ref().clone(),
        origin: source.error(Some(file.span()), format!("issuers {issuer:?}: {field}")),
    })
}

/// A timeout or interval: zero would fail every request or probe at once, so it is refused
/// rather than raised to a minimum behind the operator's back.
pub(super) fn seconds(
    value: Option<&Spanned<Duration>>,
    default: u64,
    what: impl FnOnce() -> String,
) -> Result<StdDuration, Failure> {
    match value {
        None => Ok(StdDuration::from_secs(default)),
        Some(v) if v.get_ref().0 == 0 => Err((v.span(), format!("{} must be at least 1s", what()))),
        Some(v) => Ok(StdDuration::from_secs(v.get_ref().0)),
    }
}

/// Longest duration a setting bounded by [`seconds_within_a_week`] takes: longer would be no
/// bound at all, and a clock value that far ahead does not fit every timer.
const A_WEEK: u64 = 7 * 24 * 3600;

/// [`seconds`], and at most a week.
pub(super) fn seconds_within_a_week(
    value: Option<&Spanned<Duration>>,
    default: u64,
    what: impl Fn() -> String,
) -> Result<StdDuration, Failure> {
    let picked = seconds(value, default, &what)?;
    match value {
        Some(v) if picked.as_secs() > A_WEEK => {
            Err((v.span(), format!("{} must be at most 7d", what())))
        }
        _ => Ok(picked),
    }
}

fn route(
    r: &Route,
    issuers: &[Arc<IssuerSpec>],
    default_timeout: u64,
) -> Result<RouteSpec, Failure> {
    let name = r.name.get_ref();
    if name.is_empty() {
        return Err((
            r.name.span(),
            format!("routes.name {name:?} is empty or declared twice"),
        ));
    }
    if name == gateway::metrics::UNROUTED {
        return Err((
            r.name.span(),
            format!("routes.name {name:?} is reserved: it labels unrouted requests in the metrics"),
        ));
    }
    let path = path_match(r)?;
    check_headers(r)?;
    if r.upstreams.get_ref().is_empty() {
        return Err((
            r.upstreams.span(),
            format!("routes {name:?}: at least one upstream"),
        ));
    }
    let mcp = match &r.mcp {
        Some(m) => Some(mcp(name, m)?),
        None => None,
    };
    let timing = |value: Option<&Spanned<Duration>>, default, field: &str| {
        seconds(value, default, || format!("routes {name:?}: {field}"))
    };
    Ok(RouteSpec {
        name: name.clone(),
        host: host(r)?,
        case_sensitive: r.case_sensitive,
        methods: methods(r)?,
        strip_prefix: strip_prefix(r, &path)?,
        add_prefix: add_prefix(r)?,
        request_headers: rewrite(&r.request_headers),
        response_headers: rewrite(&r.response_headers),
        auth: auth(r, mcp.as_ref(), issuers, &path)?,
        mcp,
        upstreams: r.upstreams.get_ref().iter().map(|u| u.0.clone()).collect(),
        timeout: timing(r.timeout.as_ref(), default_timeout, "timeout")?,
        connect_timeout: timing(
            r.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
            "connect_timeout",
        )?,
        max_tunnel_lifetime: tunnel_lifetime(r)?,
        h2: r.h2,
        max_body: r.max_body,
        health_check: match &r.health_check {
            Some(h) => Some(health_check(name, h)?),
            None => None,
        },
        path,
        rate_limits: Vec::new(),
        max_in_flight: None,
        cache: None,
        cors: match &r.cors {
            Some(written) => Some(super::cors::policy(
                written,
                &format!("routes {name:?}: cors"),
            )?),
            None => None,
        },
    })
}

/// `[[routes.rate_limits]]`, each checked (`config::limits`).
fn rate_limits(
    r: &Route,
    has_token_rules: bool,
    has_redis: bool,
) -> Result<Vec<RateLimitSpec>, Failure> {
    let name = r.name.get_ref();
    let mut specs = Vec::with_capacity(r.rate_limits.len());
    for (i, limit) in r.rate_limits.iter().enumerate() {
        let earlier = r.rate_limits.get(..i).unwrap_or_default();
        let (key, rate, when_claim) =
            super::limits::check_route_limit(name, limit, earlier, has_token_rules, has_redis)?;
        specs.push(RateLimitSpec {
            name: limit.name.get_ref().clone(),
            key,
            rate,
            scope: *limit.scope.get_ref(),
            when_claim,
            on_unavailable: limit.on_unavailable.policy(),
        });
    }
    Ok(specs)
}

/// `max_tunnel_lifetime`: at least 1s, at most a week (a tunnel open longer is not bounded
/// in any useful sense, and the clock's arithmetic has limits).
fn tunnel_lifetime(r: &Route) -> Result<StdDuration, Failure> {
    let name = r.name.get_ref();
    seconds_within_a_week(
        r.max_tunnel_lifetime.as_ref(),
        DEFAULT_MAX_TUNNEL_LIFETIME,
        || format!("routes {name:?}: max_tunnel_lifetime"),
    )
}

/// What a route may not share with an earlier one: its name, the requests it serves (the
/// route table's own overlap rule), and the path its MCP metadata is served at.
fn unique(r: &Route, spec: &RouteSpec, earlier: &[RouteSpec]) -> Result<(), Failure> {
    let name = &spec.name;
    if earlier.iter().any(|o| o.name == *name) {
        return Err((
            r.name.span(),
            format!("routes.name {name:?} is empty or declared twice"),
        ));
    }
    if let Some(other) = earlier.iter().find(|o| o.key().overlaps(&spec.key())) {
        return Err((
            r.name.span(),
            OverlappingRoutes(other.name.clone(), name.clone()).to_string(),
        ));
    }
    if let (Some(mine), Some(declared)) = (&spec.mcp, &r.mcp) {
        let clash = earlier.iter().find(|o| {
            o.mcp
                .as_ref()
                .is_some_and(|m| m.metadata_path == mine.metadata_path)
        });
        if let Some(other) = clash {
            return Err((
                declared.resource.span(),
                format!(
                    "routes {name:?}: mcp.resource has the metadata path {} of route {:?} already",
                    mine.metadata_path, other.name
                ),
            ));
        }
    }
    Ok(())
}

fn path_match(r: &Route) -> Result<PathMatch, Failure> {
    let name = r.name.get_ref();
    let (path, exact) = match (&r.path, &r.path_prefix) {
        (Some(p), None) => (p, true),
        (None, Some(p)) => (p, false),
        _ => {
            return Err((
                r.name.span(),
                format!("routes {name:?}: give exactly one of path and path_prefix"),
            ))
        }
    };
    let p = path.get_ref();
    let at = |message: String| (path.span(), format!("routes {name:?}: {message}"));
    if !p.starts_with('/') {
        return Err(at("the path must start with /".into()));
    }
    // Requests are matched only in canonical form, so any other spelling would never match.
    if let Some(why) = not_a_plain_path(p) {
        return Err(at(format!("{p:?} would never match: {why}")));
    }
    // `/api` would serve `/apix` and `/api-internal/` too, which is never what was meant.
    if !exact && !p.ends_with('/') {
        return Err(at(format!(
            "path_prefix {p:?} would also match {p}x and {p}-other/; end it with / \
             (\"{p}/\" serves {p} itself and everything under it)"
        )));
    }
    // A prefix also serves its bare path: `/healthz/` would claim the probe's.
    if routes::is_reserved(p) || routes::PROBES.contains(&p.trim_end_matches('/')) {
        return Err(at(format!(
            "{p} is served by the token service ({}, {})",
            RESERVED.join(", "),
            routes::PROBES.join(", ")
        )));
    }
    Ok(if exact {
        PathMatch::Exact(p.clone())
    } else {
        PathMatch::Prefix(p.clone())
    })
}

/// Why `p` cannot be the path of a request, if it cannot.
pub(super) fn not_a_plain_path(p: &str) -> Option<&'static str> {
    if p.contains(['?', '#']) {
        return Some("a path has no query or fragment");
    }
    if http::uri::PathAndQuery::try_from(p).is_err() {
        return Some("it has characters a request path cannot have");
    }
    gateway::route::non_canonical_path(p)
}

/// The `Host` is compared with the request's without its port, case-insensitively; a port,
/// a wildcard or non-ASCII text could never be equal to it.
fn host(r: &Route) -> Result<Option<String>, Failure> {
    let Some(host) = &r.host else {
        return Ok(None);
    };
    let text = host.get_ref();
    // An IPv6 address is written without brackets: the request's `[::1]:8080` is compared
    // as `::1`.
    if let Ok(v6) = text.parse::<std::net::Ipv6Addr>() {
        // Compared as text with the request's: in the form clients write (RFC 5952).
        return Ok(Some(v6.to_string()));
    }
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        return Err((
            host.span(),
            format!(
                "routes {:?}: host {text:?} must be a DNS name, an IPv4 address or an IPv6 \
                 address without brackets, without port (an internationalised name in its xn-- \
                 form)",
                r.name.get_ref()
            ),
        ));
    }
    // Compared with the request's host without its final dot (`route::route_host`).
    Ok(Some(
        text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase(),
    ))
}

fn methods(r: &Route) -> Result<Option<Vec<http::Method>>, Failure> {
    match &r.methods {
        None => Ok(None),
        Some(m) if m.is_empty() => Err((
            r.name.span(),
            format!(
                "routes {:?}: methods is empty, so the route serves nothing: leave it out to serve every method",
                r.name.get_ref()
            ),
        )),
        Some(m) => Ok(Some(m.iter().map(|s| s.get_ref().0.clone()).collect())),
    }
}

/// `strip_prefix` must apply to some path the route serves; one that never does would leave
/// every path unchanged without a word.
fn strip_prefix(r: &Route, path: &PathMatch) -> Result<Option<String>, Failure> {
    let Some(strip) = &r.strip_prefix else {
        return Ok(None);
    };
    let s = strip.get_ref();
    let applies = match path {
        PathMatch::Exact(p) => p.starts_with(s.as_str()),
        PathMatch::Prefix(p) => p.starts_with(s.as_str()) || s.starts_with(p.as_str()),
    };
    if !s.starts_with('/') || !applies {
        return Err((
            strip.span(),
            format!(
                "routes {:?}: strip_prefix {s:?} must start with / and apply to the route's path",
                r.name.get_ref()
            ),
        ));
    }
    Ok(Some(s.clone()))
}

fn add_prefix(r: &Route) -> Result<Option<String>, Failure> {
    let Some(add) = &r.add_prefix else {
        return Ok(None);
    };
    let a = add.get_ref();
    let why = if a.starts_with('/') {
        not_a_plain_path(a)
    } else {
        Some("it must start with /")
    };
    match why {
        Some(why) => Err((
            add.span(),
            format!("routes {:?}: add_prefix {a:?}: {why}", r.name.get_ref()),
        )),
        None => Ok(Some(a.clone())),
    }
}

fn rewrite(rules: &HeaderRules) -> HeaderRewrite {
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

fn health_check(route: &str, h: &routes::HealthCheck) -> Result<HealthCheck, Failure> {
    let path = h.path.get_ref();
    if !path.starts_with('/') {
        return Err((
            h.path.span(),
            format!("routes {route:?}: health_check.path must start with /"),
        ));
    }
    if let Some(why) = not_a_plain_path(path) {
        return Err((
            h.path.span(),
            format!("routes {route:?}: health_check.path {path:?}: {why}"),
        ));
    }
    let interval = seconds(h.interval.as_ref(), DEFAULT_HEALTH_INTERVAL, || {
        format!("routes {route:?}: health_check.interval")
    })?;
    Ok(HealthCheck {
        path: path.clone(),
        interval,
    })
}

/// RFC 9728: the metadata of `https://host/mcp` is served at
/// `/.well-known/oauth-protected-resource/mcp` on the same origin.
fn mcp(route: &str, m: &routes::Mcp) -> Result<Mcp, Failure> {
    let resource = m.resource.get_ref();
    let url = match Url::parse(resource) {
        Ok(url)
            if url.fragment().is_none()
                && matches!(url.scheme(), "https" | "http")
                && url.host().is_some() =>
        {
            url
        }
        _ => {
            return Err((
                m.resource.span(),
                format!("routes {route:?}: mcp.resource must be an http(s) URL without fragment"),
            ))
        }
    };
    let suffix = url.path().trim_end_matches('/');
    let metadata_path = format!("{}{suffix}", routes::PROTECTED_RESOURCE_METADATA);
    let metadata_url = format!("{}{metadata_path}", url.origin().ascii_serialization());
    Ok(Mcp {
        resource: resource.clone(),
        metadata_path,
        metadata_url,
    })
}

/// Fields that frame a message or belong to one connection: a route may not set them, nor
/// forward a claim in them (RFC 9110 §7.6.1; the gateway manages them itself).
const FRAMING: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields the gateway sets on every upstream request after the route's rules: a rule on them
/// would be silently undone.
const GATEWAY_SET: [&str; 3] = ["traceparent", "tracestate", "x-request-id"];

/// Nothing a route sets may break framing or be undone by the gateway, and no header may
/// carry two claims.
fn check_headers(route: &Route) -> Result<(), Failure> {
    let name = route.name.get_ref();
    let at = |message: String| (route.name.span(), format!("routes {name:?}: {message}"));
    let set = route
        .request_headers
        .set
        .0
        .iter()
        .chain(&route.response_headers.set.0)
        .map(|(h, _)| h.0.as_str());
    let claims: Vec<&str> = match route.auth.get_ref() {
        Auth::Rules(rules) => rules
            .forward_claims
            .values()
            .map(|h| h.0.as_str())
            .collect(),
        Auth::None => Vec::new(),
    };
    if let Some(h) = set
        .chain(claims.iter().copied())
        .find(|h| FRAMING.contains(h))
    {
        return Err(at(format!(
            "{h:?} frames the message or belongs to the connection; a route may not set it"
        )));
    }
    let mut upstream_bound = route
        .request_headers
        .set
        .0
        .iter()
        .map(|(h, _)| h.0.as_str())
        .chain(route.request_headers.remove.iter().map(|h| h.0.as_str()))
        .chain(claims.iter().copied())
        // The response's `X-Request-Id` is set last too.
        .chain(
            route
                .response_headers
                .set
                .0
                .iter()
                .map(|(h, _)| h.0.as_str())
                .filter(|h| *h == "x-request-id"),
        );
    if let Some(h) = upstream_bound.find(|h| GATEWAY_SET.contains(h)) {
        return Err(at(format!(
            "the gateway sets {h:?} itself (on every upstream request, and the request id on every response); a route may not set or remove it"
        )));
    }
    if let Some((_, h)) = claims
        .iter()
        .enumerate()
        .find(|(i, h)| claims.iter().skip(i + 1).any(|o| o == *h))
    {
        return Err(at(format!(
            "forward_claims names the header {h:?} for two claims"
        )));
    }
    Ok(())
}

fn auth(
    route: &Route,
    mcp: Option<&Mcp>,
    issuers: &[Arc<IssuerSpec>],
    path: &PathMatch,
) -> Result<Option<AuthSpec>, Failure> {
    let name = route.name.get_ref();
    let rules = match route.auth.get_ref() {
        Auth::None if mcp.is_some() => {
            return Err((
                route.auth.span(),
                format!("routes {name:?}: an MCP route needs token rules"),
            ))
        }
        Auth::None => return Ok(None),
        Auth::Rules(rules) => rules,
    };
    let audience = match (&rules.audience, mcp) {
        (None, None) => {
            return Err((
                route.auth.span(),
                format!("routes {name:?}: auth.audience is required"),
            ))
        }
        (None, Some(m)) => m.resource.clone(),
        (Some(a), Some(m)) if *a.get_ref() != m.resource => {
            return Err((
                a.span(),
                format!("routes {name:?}: auth.audience must equal mcp.resource (RFC 9728)"),
            ))
        }
        (Some(a), _) if a.get_ref().is_empty() => {
            return Err((a.span(), format!("routes {name:?}: auth.audience is empty")))
        }
        (Some(a), _) => a.get_ref().clone(),
    };
    // Token records are kept a day after they expire; a leeway near that would accept a
    // revoked token whose revocation was already forgotten.
    if rules.leeway.0 > MAX_LEEWAY {
        return Err((
            route.auth.span(),
            format!(
                "routes {name:?}: auth.leeway must be at most {}m: it is for clock skew, and a \
                 longer one accepts tokens long expired",
                MAX_LEEWAY / 60
            ),
        ));
    }
    Ok(Some(AuthSpec {
        issuers: accepted_issuers(route, rules, issuers)?,
        audience,
        required_scopes: required(
            name,
            "required_scopes",
            &rules.required_scopes,
            store::is_scope_token,
            "a valid scope token",
        )?,
        required_claims: required(
            name,
            "required_claims",
            &rules.required_claims,
            |c| !c.is_empty(),
            "a claim name",
        )?,
        forward_claims: rules
            .forward_claims
            .iter()
            .map(|(claim, header)| (claim.clone(), header.0.clone()))
            .collect(),
        forward_token: rules.forward_token.0,
        token_cache: rules.token_cache,
        leeway: rules.leeway.0,
        rules: super::rules::rules(name, &rules.rules, path, route.case_sensitive)?,
    }))
}

/// `auth.issuers`, resolved: `self` or a declared issuer, each named once.
fn accepted_issuers(
    route: &Route,
    rules: &AuthRules,
    declared: &[Arc<IssuerSpec>],
) -> Result<Vec<IssuerRef>, Failure> {
    let name = route.name.get_ref();
    if rules.issuers.is_empty() {
        return Err((
            route.auth.span(),
            format!("routes {name:?}: auth.issuers is empty"),
        ));
    }
    let mut chosen: Vec<IssuerRef> = Vec::with_capacity(rules.issuers.len());
    for wanted in &rules.issuers {
        let w = wanted.get_ref();
        let found = if w == "self" {
            IssuerRef::Own
        } else {
            match declared.iter().find(|d| d.name == *w) {
                Some(d) => IssuerRef::Declared(Arc::clone(d)),
                None => return Err((wanted.span(), format!("routes {name:?}: unknown issuer {w:?} (declare it in [[issuers]], or use \"self\")"))),
            }
        };
        if chosen.iter().any(|c| c.name() == w) {
            return Err((
                wanted.span(),
                format!("routes {name:?}: auth.issuers names {w:?} twice"),
            ));
        }
        chosen.push(found);
    }
    Ok(chosen)
}

/// `required_scopes` must be scope tokens (a token's `scope` is split on spaces, so one
/// with a space could never be present) and `required_claims` claim names.
pub(super) fn required(
    route: &str,
    field: &str,
    values: &[Spanned<String>],
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, Failure> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let text = v.get_ref();
        if !valid(text) {
            return Err((
                v.span(),
                format!("routes {route:?}: {field}: {text:?} is not {what}"),
            ));
        }
        out.push(text.clone());
    }
    Ok(out)
}
