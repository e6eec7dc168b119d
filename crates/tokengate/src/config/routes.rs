//! `[[routes]]`: what the gateway serves. Parsed into typed values here and checked across
//! fields (one path matcher, known issuers, no overlap, no shadowed endpoint), so the gateway
//! is only ever built from a valid table.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::values::{ForwardToken, HeaderName, HeaderSet, Method, Upstream};
use super::{Config, Duration};

/// Paths served by the token service; a route may not shadow them.
pub const RESERVED: [&str; 4] = ["/oauth2/", "/.well-known/", "/admin/", "/metrics"];

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
    /// Serve only this `Host` (without port).
    pub host: Option<String>,
    /// Serve only these methods.
    pub methods: Option<Vec<Spanned<Method>>>,
    /// Upstream base URLs (round robin).
    pub upstreams: Spanned<Vec<Upstream>>,
    /// Removed from the front of the path before forwarding.
    pub strip_prefix: Option<String>,
    /// Added to the front of the path before forwarding.
    pub add_prefix: Option<String>,
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
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Time to connect to an upstream (default 5s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Speak HTTP/2 to the upstreams (prior knowledge over plain HTTP).
    #[serde(default)]
    pub h2: bool,
    /// Largest request body in bytes (default 10 MiB).
    #[serde(default = "default_max_body")]
    pub max_body: u64,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
}

fn default_timeout() -> Duration {
    Duration(30)
}
fn default_connect_timeout() -> Duration {
    Duration(5)
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
    pub path: String,
    /// Time between probes (default 5s).
    #[serde(default = "default_health_interval")]
    pub interval: Duration,
}

fn default_health_interval() -> Duration {
    Duration(5)
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
    pub required_scopes: Vec<String>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
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

impl Route {
    /// The path matcher text (exact or prefix).
    pub fn matcher(&self) -> Option<(&Spanned<String>, bool)> {
        match (&self.path, &self.path_prefix) {
            (Some(p), None) => Some((p, true)),
            (None, Some(p)) => Some((p, false)),
            _ => None,
        }
    }

    /// The methods it serves; `None` for any.
    pub fn method_list(&self) -> Option<Vec<http::Method>> {
        self.methods
            .as_ref()
            .map(|m| m.iter().map(|s| s.get_ref().0.clone()).collect())
    }
}

type Failure = (Range<usize>, String);

/// Cross-field rules of `[[routes]]`.
pub fn validate(config: &Config) -> Result<(), Failure> {
    for (i, route) in config.routes.iter().enumerate() {
        let name = route.name.get_ref();
        let at = |message: String| (route.name.span(), format!("routes {name:?}: {message}"));
        if name.is_empty()
            || config
                .routes
                .iter()
                .take(i)
                .any(|r| r.name.get_ref() == name)
        {
            return Err((
                route.name.span(),
                format!("routes.name {name:?} is empty or declared twice"),
            ));
        }
        let Some((path, exact)) = route.matcher() else {
            return Err(at("give exactly one of path and path_prefix".into()));
        };
        let p = path.get_ref();
        if !p.starts_with('/') {
            return Err((
                path.span(),
                format!("routes {name:?}: the path must start with /"),
            ));
        }
        if RESERVED
            .iter()
            .any(|r| p.starts_with(r) || (exact && r.trim_end_matches('/') == p))
        {
            return Err((
                path.span(),
                format!(
                    "routes {name:?}: {p} is served by the token service ({})",
                    RESERVED.join(", ")
                ),
            ));
        }
        if route.upstreams.get_ref().is_empty() {
            return Err((
                route.upstreams.span(),
                format!("routes {name:?}: at least one upstream"),
            ));
        }
        if let Some(hc) = &route.health_check {
            if !hc.path.starts_with('/') || hc.interval.0 == 0 {
                return Err(at(
                    "health_check.path must start with / and interval be at least 1s".into(),
                ));
            }
        }
        if let Some(mcp) = &route.mcp {
            let ok = Url::parse(mcp.resource.get_ref())
                .is_ok_and(|u| u.fragment().is_none() && matches!(u.scheme(), "https" | "http"));
            if !ok {
                return Err((
                    mcp.resource.span(),
                    format!(
                        "routes {name:?}: mcp.resource must be an http(s) URL without fragment"
                    ),
                ));
            }
        }
        validate_headers(route)?;
        validate_auth(config, route)?;
        // Overlap: same host and matcher with a method in common.
        for other in config.routes.iter().take(i) {
            let same_matcher = matches!((other.matcher(), route.matcher()), (Some((a, ea)), Some((b, eb))) if ea == eb && a.get_ref() == b.get_ref());
            let hosts = other.host.as_deref().map(str::to_ascii_lowercase)
                == route.host.as_deref().map(str::to_ascii_lowercase);
            let methods_meet = match (other.method_list(), route.method_list()) {
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                _ => true,
            };
            if same_matcher && hosts && methods_meet {
                return Err(at(format!(
                    "overlaps route {:?} (same host, path and methods)",
                    other.name.get_ref()
                )));
            }
        }
    }
    Ok(())
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

/// Methods and headers: nothing a route says may be silently ineffective or break framing.
fn validate_headers(route: &Route) -> Result<(), Failure> {
    let name = route.name.get_ref();
    let at = |message: String| (route.name.span(), format!("routes {name:?}: {message}"));
    if route.methods.as_ref().is_some_and(Vec::is_empty) {
        return Err(at(
            "methods is empty, so the route serves nothing: leave it out to serve every method"
                .into(),
        ));
    }
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

fn validate_auth(config: &Config, route: &Route) -> Result<(), Failure> {
    let name = route.name.get_ref();
    let rules = match route.auth.get_ref() {
        Auth::None => {
            if route.mcp.is_some() {
                return Err((
                    route.auth.span(),
                    format!("routes {name:?}: an MCP route needs token rules"),
                ));
            }
            return Ok(());
        }
        Auth::Rules(r) => r,
    };
    if rules.issuers.is_empty() {
        return Err((
            route.auth.span(),
            format!("routes {name:?}: auth.issuers is empty"),
        ));
    }
    for i in &rules.issuers {
        let known = i.get_ref() == "self"
            || config
                .issuers
                .iter()
                .any(|d| d.name.get_ref() == i.get_ref());
        if !known {
            return Err((i.span(), format!("routes {name:?}: unknown issuer {:?} (declare it in [[issuers]], or use \"self\")", i.get_ref())));
        }
    }
    match (&rules.audience, &route.mcp) {
        (None, None) => {
            return Err((
                route.auth.span(),
                format!("routes {name:?}: auth.audience is required"),
            ))
        }
        (Some(a), Some(m)) if a.get_ref() != m.resource.get_ref() => {
            return Err((
                a.span(),
                format!("routes {name:?}: auth.audience must equal mcp.resource (RFC 9728)"),
            ))
        }
        _ => {}
    }
    Ok(())
}
