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
    /// Whether the path is matched case-sensitively (the default); `false` for an upstream
    /// that ignores case (ASP.NET Core, IIS), where `/API/Admin/` is `/api/admin/`.
    pub case_sensitive: bool,
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
    /// Longest a WebSocket tunnel stays open (it also ends when its token expires or is
    /// revoked).
    pub max_tunnel_lifetime: std::time::Duration,
    /// Rate limits, each checked in order (`[[routes.rate_limits]]`).
    pub rate_limits: Vec<crate::ratelimit::RateLimit>,
    /// Requests in flight on the route at most (`[routes.limits] max_in_flight`).
    pub max_in_flight: Option<std::sync::Arc<crate::shed::InFlightLimit>>,
    /// Browser access (`[routes.cors]`).
    pub cors: Option<std::sync::Arc<crate::cors::Cors>>,
    /// The response cache (`[routes.cache]`).
    pub cache: Option<std::sync::Arc<crate::response_cache::ResponseCache>>,
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
    /// Whether the path is matched case-sensitively.
    pub case_sensitive: bool,
    /// The methods served; `None` for any.
    pub methods: Option<&'a [Method]>,
}

impl RouteKey<'_> {
    /// Same host (hosts match case-insensitively), same matcher (ignoring case when either
    /// route does) and a method in common: the two would serve the same requests, and order
    /// must not decide which.
    pub fn overlaps(&self, other: &RouteKey<'_>) -> bool {
        let hosts = match (self.host, other.host) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let methods_meet = match (self.methods, other.methods) {
            (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
            _ => true,
        };
        let paths = if self.case_sensitive && other.case_sensitive {
            self.path == other.path
        } else {
            match (self.path, other.path) {
                (PathMatch::Exact(a), PathMatch::Exact(b))
                | (PathMatch::Prefix(a), PathMatch::Prefix(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
        };
        hosts && paths && methods_meet
    }
}

impl Route {
    /// What decides which requests it serves.
    pub fn key(&self) -> RouteKey<'_> {
        RouteKey {
            host: self.host.as_deref(),
            path: &self.path,
            case_sensitive: self.case_sensitive,
            methods: self.methods.as_deref(),
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            // `/admin/` is the same resource as `/admin` to many upstreams.
            PathMatch::Exact(p) => {
                self.same_path(p, path)
                    || path.strip_suffix('/').is_some_and(|x| self.same_path(x, p))
            }
            // And the prefix `/api/` serves `/api` itself, as a directory would.
            PathMatch::Prefix(p) => self.is_under(path, p),
        }
    }

    /// Whether two paths are equal by the route's case rule.
    fn same_path(&self, a: &str, b: &str) -> bool {
        if self.case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    }

    /// Whether `path` is under `prefix` (a prefix ending with `/`, which also covers the bare
    /// path), compared as the route compares paths.
    pub fn is_under(&self, path: &str, prefix: &str) -> bool {
        self.strip_matched(path, prefix).is_some()
            || prefix
                .strip_suffix('/')
                .is_some_and(|bare| self.same_path(bare, path))
    }

    /// `path` without `prefix`, when it starts with it (ignoring case if the route does).
    fn strip_matched<'p>(&self, path: &'p str, prefix: &str) -> Option<&'p str> {
        let head = path.get(..prefix.len())?;
        self.same_path(head, prefix)
            .then(|| path.get(prefix.len()..))
            .flatten()
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
            if let Some(r) = self.strip_matched(rest, strip) {
                rest = r;
            } else if strip
                .strip_suffix('/')
                .is_some_and(|bare| self.same_path(rest, bare))
            {
                // `/api` on the route `/api/` that strips `/api/`: the upstream's root.
                rest = "";
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
/// them (never an unreserved character, `/` or `\\`), each well formed. Upstreams that
/// decode twice, or decode leniently, see more: an escaped `%` before two hex digits
/// (`%252e`, a `.` after a second decoding), an escaped control character (`%00` ends a
/// C string) and escapes that do not decode to UTF-8 (`%c0%ae`, an overlong `.`) are refused
/// too, and so are escaped `?` and `#` and characters upstreams fold to ASCII
/// ([`FOLDED_TO_ASCII`]).
pub fn non_canonical_path(path: &str) -> Option<&'static str> {
    if path.contains('\\') || path.contains(';') {
        return Some("the path has a backslash or a semicolon");
    }
    if path.contains("//") {
        return Some("the path has an empty segment");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut beyond_ascii = false;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let Some(value) = escaped_byte(bytes, i) else {
                return Some("the path has a malformed percent-escape");
            };
            if let Some(why) = needless_or_hostile_escape(value, bytes, i) {
                return Some(why);
            }
            beyond_ascii |= value >= 0x80;
            i += 3;
        } else {
            beyond_ascii |= b >= 0x80;
            i += 1;
        }
    }
    // Decoded only when something beyond ASCII is there: most paths are not copied.
    if beyond_ascii {
        if let Some(why) = non_ascii_trouble(&percent_decoded(bytes)) {
            return Some(why);
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

/// Characters that upstreams fold to ASCII ones that routes compare: .NET's and IIS's
/// case-insensitive comparisons take `ı` (dotless i) for `I`, `ſ` (long s) for `S` and the
/// Kelvin sign for `K`, and IIS's best-fit mapping takes fullwidth `．`, `／` and `＼` for `.`,
/// `/` and `\`. `/api/adm%C4%B1n/` would miss the route of `/api/admin/` here and be the
/// admin endpoint there.
const FOLDED_TO_ASCII: [char; 6] = [
    '\u{131}', '\u{17f}', '\u{212a}', '\u{ff0e}', '\u{ff0f}', '\u{ff3c}',
];

/// Why a decoded path beyond ASCII is refused, if it is: not UTF-8, or a character some
/// upstream folds to ASCII ([`FOLDED_TO_ASCII`]).
fn non_ascii_trouble(decoded: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(decoded) else {
        return Some("the path escapes bytes that are not UTF-8 (an overlong or broken sequence)");
    };
    text.contains(FOLDED_TO_ASCII)
        .then_some("the path has a character an upstream may read as an ASCII one")
}

/// The byte the escape at `at` (`%XY`) stands for, if it is well formed.
fn escaped_byte(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = bytes.get(at + 1..at + 3)?;
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Why the escape of `value` at `at` is refused, if it is.
fn needless_or_hostile_escape(value: u8, bytes: &[u8], at: usize) -> Option<&'static str> {
    let unreserved = value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~');
    if unreserved || value == b'/' || value == b'\\' {
        return Some("the path escapes a character that needs no escaping");
    }
    if value.is_ascii_control() {
        return Some("the path escapes a control character");
    }
    // An upstream that decodes the path and parses it again ends it there.
    if value == b'?' || value == b'#' {
        return Some("the path escapes a character that would end it (? or #)");
    }
    let hex_follows = bytes
        .get(at + 3..at + 5)
        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    if value == b'%' && hex_follows {
        return Some("the path has a double-encoded percent-escape");
    }
    None
}

/// The path with its (well-formed) escapes decoded.
fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, escaped_byte(bytes, i)) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The authority the client addressed, checked as RFC 9112 §3.2 and RFC 9113 §8.3.1 ask:
/// one `Host` at most, required in HTTP/1.1; the request target's authority (absolute form,
/// or h2's `:authority`) wins over it, and on h2 the two must agree; the value is a host (a
/// name, an IPv4 address or a bracketed IPv6 one) with an optional port. `None` only for an
/// HTTP/1.0 request that names no host. Anything else is why the request is refused (400):
/// the upstream, the route table and `X-Forwarded-Host` would each read a loose value their
/// own way.
pub fn request_authority<'r>(
    version: http::Version,
    uri: &'r http::Uri,
    headers: &'r http::HeaderMap,
) -> Result<Option<&'r str>, &'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("the request has more than one Host");
    }
    let host = match host {
        Some(h) => Some(h.to_str().map_err(|_| "the Host is malformed")?),
        None => None,
    };
    let chosen = match (uri.authority().map(http::uri::Authority::as_str), host) {
        (Some(target), Some(h))
            if version >= http::Version::HTTP_2 && !target.eq_ignore_ascii_case(h) =>
        {
            return Err("the Host differs from the request's :authority");
        }
        (_, None) if version == http::Version::HTTP_11 => {
            return Err("the request has no Host");
        }
        (Some(target), _) => target,
        (None, Some(h)) => h,
        (None, None) if version >= http::Version::HTTP_2 => {
            return Err("the request has no :authority or Host");
        }
        (None, None) => return Ok(None),
    };
    if !is_authority(chosen) {
        return Err("the Host is malformed");
    }
    Ok(Some(chosen))
}

/// `host[:port]`: a DNS name or IPv4 address (letters, digits, `-`, `_`, `.`, no empty
/// label but a final dot), or an IPv6 address in brackets; a port of 1 to 5 digits. One pass
/// over the bytes: it runs on every request.
fn is_authority(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.as_bytes() {
            [] => return true,
            [b':', port @ ..] => (&[][..], Some(port)),
            _ => return false,
        }
    } else {
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) => (
                bytes.get(..colon).unwrap_or_default(),
                bytes.get(colon + 1..),
            ),
            None => (bytes, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok())
    });
    port_ok && (text.starts_with('[') || is_dns_name(host))
}

/// Labels of letters, digits, `-` and `_`, none empty, with an optional final dot.
fn is_dns_name(host: &[u8]) -> bool {
    let name = host.strip_suffix(b".").unwrap_or(host);
    let mut previous = b'.';
    for &b in name {
        match b {
            b'.' if previous == b'.' => return false,
            b'.' | b'-' | b'_' => {}
            b if b.is_ascii_alphanumeric() => {}
            _ => return false,
        }
        previous = b;
    }
    !name.is_empty() && previous != b'.'
}

/// The host routes compare with: without the port, without the final dot of a fully
/// qualified name (`api.example.` is `api.example`), lowercase; an IPv6 address without
/// brackets, in its canonical text.
pub fn route_host(authority: &str) -> String {
    let host = strip_port(authority);
    // `[0:0::1]` and `[::1]` are one address: compared in the form routes are written in
    // (RFC 5952, as the configuration stores them).
    if authority.starts_with('[') {
        if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
            return v6.to_string();
        }
    }
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
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
