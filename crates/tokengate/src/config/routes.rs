//! `[[routes]]` as written in the file. Values that stand alone (methods, header names and
//! values, upstream URLs, `forward_token`) are typed while the TOML is read; the rules across
//! fields and routes are the conversion in `table.rs`, which is what the gateway is built from.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::values::{ForwardToken, HeaderName, HeaderSet, Method, Upstream};
use super::Duration;

/// Paths served by the token service (and the web console); a route may not shadow them.
pub const RESERVED: [&str; 5] = [
    "/oauth2/",
    "/.well-known/",
    "/admin/",
    "/console/",
    "/metrics",
];

/// The probes' paths, served on every listener: reserved as exact paths only, so that an
/// upstream's `/healthz/deep` or `/readyz-ui/` stays routable.
pub const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Where MCP routes' protected-resource metadata is served (RFC 9728 §3.1): under
/// `/.well-known/`, by the gateway, which answers those paths itself.
pub const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// Whether `path` is the token service's: one of [`PROBES`], under one of [`RESERVED`], or
/// one of them without its final slash.
pub fn is_reserved(path: &str) -> bool {
    PROBES.contains(&path)
        || RESERVED
            .iter()
            .any(|r| path.starts_with(r) || r.trim_end_matches('/') == path)
}

/// `[[routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name (logs, metrics).
    pub name: Spanned<String>,
    /// Serve exactly this path.
    pub path: Option<Spanned<String>>,
    /// Serve paths starting with this prefix (the longest matching prefix wins).
    pub path_prefix: Option<Spanned<String>>,
    /// Match the path case-sensitively (default true); false for an upstream that ignores
    /// case, so that `/API/Admin/` reaches the route of `/api/admin/` and not a laxer one.
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    /// Serve only this `Host` (without port).
    pub host: Option<Spanned<String>>,
    /// Serve only these methods.
    pub methods: Option<Vec<Spanned<Method>>>,
    /// Upstream base URLs (round robin).
    pub upstreams: Spanned<Vec<Upstream>>,
    /// Removed from the front of the path before forwarding.
    pub strip_prefix: Option<Spanned<String>>,
    /// Added to the front of the path before forwarding.
    pub add_prefix: Option<Spanned<String>>,
    /// Request header changes.
    #[serde(default)]
    pub request_headers: HeaderRules,
    /// Response header changes.
    #[serde(default)]
    pub response_headers: HeaderRules,
    /// Token rules, or `"none"` for an explicitly public route.
    pub auth: Spanned<Auth>,
    /// MCP protected-resource settings (RFC 9728).
    pub mcp: Option<Mcp>,
    /// Time to the upstream's response head (default 30s).
    pub timeout: Option<Spanned<Duration>>,
    /// Time to connect to an upstream (default 5s).
    pub connect_timeout: Option<Spanned<Duration>>,
    /// Longest a WebSocket tunnel stays open (default 2h); it also closes when the token
    /// that opened it expires or is revoked.
    pub max_tunnel_lifetime: Option<Spanned<Duration>>,
    /// Speak HTTP/2 to the upstreams (prior knowledge over plain HTTP).
    #[serde(default)]
    pub h2: bool,
    /// Largest request body in bytes (default 10 MiB).
    #[serde(default = "default_max_body")]
    pub max_body: u64,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// Rate limits; a request must pass all of them.
    #[serde(default)]
    pub rate_limits: Vec<super::limits::RouteRateLimit>,
    /// Concurrency bounds.
    #[serde(default)]
    pub limits: super::limits::RouteLimits,
    /// Browser access (CORS).
    pub cors: Option<super::cors::CorsConfig>,
    /// The response cache.
    pub cache: Option<Spanned<super::cache::CacheConfig>>,
}

fn default_max_body() -> u64 {
    10 * 1024 * 1024
}

/// `request_headers` / `response_headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Headers to set.
    #[serde(default)]
    pub set: HeaderSet,
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<HeaderName>,
}

/// `[routes.health_check]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path probed with GET.
    pub path: Spanned<String>,
    /// Time between probes (default 5s).
    pub interval: Option<Spanned<Duration>>,
}

/// `[routes.mcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mcp {
    /// The protected resource's identifier: the required `aud`.
    pub resource: Spanned<String>,
}

/// `auth = "none"` or `[routes.auth]`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A public route.
    None,
    /// Token rules.
    Rules(Box<AuthRules>),
}

/// `[routes.auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRules {
    /// Issuer names ("self" for the built-in one).
    pub issuers: Vec<Spanned<String>>,
    /// Required `aud` (default: the MCP resource, when the route has one).
    pub audience: Option<Spanned<String>>,
    /// Scopes all required.
    #[serde(default)]
    pub required_scopes: Vec<Spanned<String>>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<Spanned<String>>,
    /// Claim → upstream header.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, HeaderName>,
    /// `none` (default), `original` or `internal`.
    #[serde(default)]
    pub forward_token: ForwardToken,
    /// The verified-token cache (default on).
    #[serde(default = "yes")]
    pub token_cache: bool,
    /// Clock skew allowed on `exp`/`nbf` (default 30s).
    #[serde(default = "default_leeway")]
    pub leeway: Duration,
    /// Authorization rules, checked in order (`[[routes.auth.rules]]`).
    #[serde(default)]
    pub rules: Vec<super::rules::RuleConfig>,
}

fn yes() -> bool {
    true
}
fn default_leeway() -> Duration {
    Duration(30)
}

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = Auth;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"none\" or a table of token rules")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Auth, E> {
                if v == "none" {
                    Ok(Auth::None)
                } else {
                    Err(E::custom(format!(
                        "auth = {v:?}: use \"none\" for a public route, or a table of rules"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Auth, A::Error> {
                AuthRules::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|r| Auth::Rules(Box::new(r)))
            }
        }
        d.deserialize_any(AuthVisitor)
    }
}
