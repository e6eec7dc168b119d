//! The route table: which route a request belongs to. Exact paths beat prefixes, the longest
//! prefix wins, a route with a host beats one without; two routes that would match the same
//! requests are refused when the table is built, never resolved by order.

use http::{HeaderName, HeaderValue, Method};

use crate::auth::RouteAuth;
use crate::upstream::Upstreams;

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// This path only.
    Exact(String),
    /// Paths starting with this prefix.
    Prefix(String),
}

/// Header changes on the way in or out.
#[derive(Debug, Clone, Default)]
pub struct HeaderRewrite {
    /// Headers set (replacing any the message had).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderRewrite {
    /// Applies the changes.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// RFC 9728 protected-resource settings of an MCP route.
#[derive(Debug, Clone)]
pub struct Mcp {
    /// The resource identifier (`resource`, and the required `aud`).
    pub resource: String,
    /// Where its metadata is served: `/.well-known/oauth-protected-resource` + the resource's
    /// path.
    pub metadata_path: String,
    /// The absolute URL of that document (for `resource_metadata` in challenges).
    pub metadata_url: String,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Its name, in logs and metrics.
    pub name: String,
    /// The `Host` it serves (lowercase, without port); `None` for any.
    pub host: Option<String>,
    /// The path it serves.
    pub path: PathMatch,
    /// The methods it serves; `None` for any.
    pub methods: Option<Vec<Method>>,
    /// Removed from the front of the path before forwarding.
    pub strip_prefix: Option<String>,
    /// Added to the front of the path before forwarding.
    pub add_prefix: Option<String>,
    /// Request header changes.
    pub request_headers: HeaderRewrite,
    /// Response header changes.
    pub response_headers: HeaderRewrite,
    /// Token checks; `None` for an explicitly public route.
    pub auth: Option<RouteAuth>,
    /// MCP protected-resource metadata.
    pub mcp: Option<Mcp>,
    /// Where requests go.
    pub upstreams: std::sync::Arc<Upstreams>,
    /// Largest request body forwarded, in bytes.
    pub max_body: u64,
}

/// What decides which requests a route serves. The configuration checks its routes with it
/// before anything runtime exists, and the table again when it is built, so both refuse the
/// same overlaps.
#[derive(Debug, Clone, Copy)]
pub struct RouteKey<'a> {
    /// The `Host` served; `None` for any.
    pub host: Option<&'a str>,
    /// The path matcher.
    pub path: &'a PathMatch,
    /// The methods served; `None` for any.
    pub methods: Option<&'a [Method]>,
}

impl RouteKey<'_> {
    /// Same host (hosts match case-insensitively), same matcher and a method in common: the
    /// two would serve the same requests, and order must not decide which.
    pub fn overlaps(&self, other: &RouteKey<'_>) -> bool {
        let hosts = match (self.host, other.host) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let methods_meet = match (self.methods, other.methods) {
            (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
            _ => true,
        };
        hosts && self.path == other.path && methods_meet
    }
}

impl Route {
    /// What decides which requests it serves.
    pub fn key(&self) -> RouteKey<'_> {
        RouteKey {
            host: self.host.as_deref(),
            path: &self.path,
            methods: self.methods.as_deref(),
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            // `/admin/` is the same resource as `/admin` to many upstreams.
            PathMatch::Exact(p) => p == path || path.strip_suffix('/').is_some_and(|x| x == p),
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        }
    }

    fn matches_host(&self, host: Option<&str>) -> bool {
        match &self.host {
            None => true,
            Some(h) => host.is_some_and(|got| got.eq_ignore_ascii_case(h)),
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// Specificity: host before none, exact before prefix, longer prefix first.
    fn rank(&self) -> (bool, bool, usize) {
        let (exact, len) = match &self.path {
            PathMatch::Exact(p) => (true, p.len()),
            PathMatch::Prefix(p) => (false, p.len()),
        };
        (self.host.is_some(), exact, len)
    }

    /// The path to send upstream.
    pub fn upstream_path(&self, path: &str) -> String {
        let mut rest = path;
        if let Some(strip) = &self.strip_prefix {
            if let Some(r) = rest.strip_prefix(strip.as_str()) {
                rest = r;
            }
        }
        let mut out = String::with_capacity(rest.len() + 16);
        if let Some(add) = &self.add_prefix {
            out.push_str(add.trim_end_matches('/'));
        }
        if !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        out
    }
}

/// What matching found.
#[derive(Debug)]
pub enum Matched<'a> {
    /// The route.
    Route(&'a Route),
    /// Routes match the path but none allows the method: 405 with these.
    MethodNotAllowed(Vec<Method>),
    /// No route: 404.
    None,
}

/// Two routes serve the same host, path and a shared method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routes {0:?} and {1:?} overlap: same host, path and methods")]
pub struct OverlappingRoutes(pub String, pub String);

/// The routes, most specific first.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table; refuses two routes that serve the same host, path and a shared method
    /// (naming both).
    pub fn new(mut routes: Vec<Route>) -> Result<RouteTable, OverlappingRoutes> {
        for (i, a) in routes.iter().enumerate() {
            if let Some(b) = routes
                .iter()
                .skip(i + 1)
                .find(|b| a.key().overlaps(&b.key()))
            {
                return Err(OverlappingRoutes(a.name.clone(), b.name.clone()));
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.rank()));
        Ok(RouteTable { routes })
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request. `host` without its port.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Matched<'_> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if !route.matches_host(host) || !route.matches_path(path) {
                continue;
            }
            if route.allows(method) {
                return Matched::Route(route);
            }
            allowed.extend(route.methods.iter().flatten().cloned());
        }
        if allowed.is_empty() {
            Matched::None
        } else {
            Matched::MethodNotAllowed(allowed)
        }
    }
}

/// Why a path is not in the one spelling routes are matched on, if it is not. Routes match
/// the raw path, and upstreams often decode or collapse it: `/public/../admin`, `//admin`,
/// `/%61dmin` or `/x/..;/admin` would match one route here and mean another upstream. So a
/// path must be canonical: no `.`/`..` segments (plain or escaped), no empty segments, no
/// `;` (matrix parameters), no backslash, and percent-escapes only for characters that need
/// them (never an unreserved character, `/` or `\\`), each well formed.
pub fn non_canonical_path(path: &str) -> Option<&'static str> {
    if path.contains('\\') || path.contains(';') {
        return Some("the path has a backslash or a semicolon");
    }
    if path.contains("//") {
        return Some("the path has an empty segment");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Some("the path has a malformed percent-escape");
            };
            let unreserved =
                value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~');
            if unreserved || value == b'/' || value == b'\\' {
                return Some("the path escapes a character that needs no escaping");
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("the path has dot segments");
    }
    None
}

/// The authority the client addressed: `Host`, or the URI's (HTTP/2).
pub(crate) fn authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
}

pub(crate) fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| h.trim_start_matches('['));
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
