//! How a shared cache reads a response (RFC 9111): its `Cache-Control` directives, whether it
//! may be stored, how long it stays fresh and how old it already is; and how a stored
//! response answers a client's conditional request (RFC 9110 §13).
//!
//! Pure functions over header maps, so that every rule is tested apart from any I/O
//! (`cache_control_tests.rs`). A `Cache-Control` this module cannot read exactly, or one
//! that contradicts itself, counts as `no-store`: a cache that guesses stores what the
//! upstream meant to keep private.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

/// The statuses a response may be stored with: those RFC 9111 §4.2.2 lets a cache store
/// without explicit freshness ("heuristically cacheable", RFC 9110 §15.1), less 206 (a
/// part of a representation; ranges are not cached). Any other status passes through.
pub const STORABLE_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The largest delta-seconds a cache keeps (RFC 9111 §1.2.2: a larger value is read as
/// this one).
const MAX_DELTA_SECONDS: u64 = 2_147_483_648;

/// A response's `Cache-Control`, as RFC 9111 §5.2.2 defines the directives a shared cache
/// acts on (others are ignored, as §5.2.3 requires).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `no-store`: never stored.
    pub no_store: bool,
    /// `no-cache` (with or without field names: a cache that cannot strip exactly those
    /// fields revalidates the whole response).
    pub no_cache: bool,
    /// `private` (with or without field names): not for a shared cache.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, seconds (a shared cache's own `max-age`).
    pub s_maxage: Option<u64>,
}

/// Why a `Cache-Control` could not be read; the response is then not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not the directive list grammar (an empty or invalid name, an unterminated quote).
    #[error("cache-control is not a list of directives")]
    Syntax,
    /// `max-age` or `s-maxage` without digits.
    #[error("cache-control max-age or s-maxage is not a number of seconds")]
    Seconds,
    /// A directive given twice with different values, or `public` with `private`.
    #[error("cache-control contradicts itself")]
    Contradiction,
}

/// Reads every `Cache-Control` line of `headers` as one list.
pub fn response_directives(headers: &HeaderMap) -> Result<ResponseDirectives, Malformed> {
    let mut out = ResponseDirectives::default();
    for line in headers.get_all(header::CACHE_CONTROL) {
        let text = line.to_str().map_err(|_| Malformed::Syntax)?;
        for (name, value) in directives(text)? {
            apply(&mut out, &name, value.as_deref())?;
        }
    }
    if out.public && out.private {
        return Err(Malformed::Contradiction);
    }
    Ok(out)
}

/// Whether the request's own `Cache-Control` says `no-store` (RFC 9111 §5.2.1.5: the
/// response to it is not stored). Other request directives are not acted on: a client
/// cannot make the gateway bypass its cache and load the upstream (as CDNs and nginx
/// decide by default); `no-cache` only says what the client prefers.
pub fn request_forbids_storing(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|text| directives(text).ok())
        .flatten()
        .any(|(name, _)| name == "no-store")
}

fn apply(out: &mut ResponseDirectives, name: &str, value: Option<&str>) -> Result<(), Malformed> {
    match name {
        "no-store" => out.no_store = true,
        "no-cache" => out.no_cache = true,
        "private" => out.private = true,
        "public" => out.public = true,
        "max-age" => set_once(&mut out.max_age, seconds(value)?)?,
        "s-maxage" => set_once(&mut out.s_maxage, seconds(value)?)?,
        _ => {}
    }
    Ok(())
}

fn set_once(slot: &mut Option<u64>, value: u64) -> Result<(), Malformed> {
    match slot {
        Some(old) if *old != value => Err(Malformed::Contradiction),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// delta-seconds (RFC 9111 §1.2.2), also accepted in quotes as §5.2 asks of recipients.
fn seconds(value: Option<&str>) -> Result<u64, Malformed> {
    let digits = value.ok_or(Malformed::Seconds)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::Seconds);
    }
    Ok(digits
        .parse::<u64>()
        .unwrap_or(MAX_DELTA_SECONDS)
        .min(MAX_DELTA_SECONDS))
}

/// The directives of one field line: `token [ "=" ( token / quoted-string ) ]`, separated
/// by commas and optional whitespace; names lowercased, quoted values unescaped.
fn directives(text: &str) -> Result<Vec<(String, Option<String>)>, Malformed> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Ok(out);
        }
        let name_end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        if name.is_empty() {
            return Err(Malformed::Syntax);
        }
        let after = after.trim_start_matches([' ', '\t']);
        let (value, after) = match after.strip_prefix('=') {
            Some(v) => {
                let (value, after) = directive_value(v)?;
                (Some(value), after)
            }
            None => (None, after),
        };
        let after = after.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with(',')) {
            return Err(Malformed::Syntax);
        }
        out.push((name.to_ascii_lowercase(), value));
        rest = after;
    }
}

/// A directive's value and what follows it.
fn directive_value(text: &str) -> Result<(String, &str), Malformed> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(|c: char| !is_tchar(c)).unwrap_or(text.len());
        let (value, after) = text.split_at(end);
        if value.is_empty() {
            return Err(Malformed::Syntax);
        }
        return Ok((value.to_owned(), after));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, quoted.get(i + 1..).unwrap_or_default())),
            '\\' => value.push(chars.next().ok_or(Malformed::Syntax)?.1),
            c => value.push(c),
        }
    }
    Err(Malformed::Syntax)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The freshness lifetime a shared cache gives a response (RFC 9111 §4.2.1): `s-maxage`,
/// else `max-age`, else `Expires` less `Date`, else `default` (the route's `ttl`); never more
/// than `max`. An `Expires` that is not a date means already expired (§5.3).
pub fn freshness_lifetime(
    directives: &ResponseDirectives,
    headers: &HeaderMap,
    received: SystemTime,
    default: Duration,
    max: Duration,
) -> Duration {
    let explicit = directives
        .s_maxage
        .or(directives.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            let expires = headers.get(header::EXPIRES)?;
            let Some(expires) = http_date(expires) else {
                return Some(Duration::ZERO);
            };
            let date = headers.get(header::DATE).and_then(http_date);
            Some(
                expires
                    .duration_since(date.unwrap_or(received))
                    .unwrap_or(Duration::ZERO),
            )
        });
    explicit.unwrap_or(default).min(max)
}

/// How old a response already is when received (RFC 9111 §4.2.3's `corrected_initial_age`,
/// without the request's own delay): its `Age`, or the time since its `Date`, the larger.
pub fn initial_age(headers: &HeaderMap, received: SystemTime) -> Duration {
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or(MAX_DELTA_SECONDS)
                .min(MAX_DELTA_SECONDS)
        })
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO);
    let apparent = headers
        .get(header::DATE)
        .and_then(http_date)
        .and_then(|date| received.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    age.max(apparent)
}

/// An HTTP-date (RFC 9110 §5.6.7), in any of its three forms.
pub fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

/// Whether a stored response with these headers can be revalidated (it has a validator).
pub fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED)
}

/// Whether the status may be stored ([`STORABLE_STATUSES`]).
pub fn storable_status(status: StatusCode) -> bool {
    STORABLE_STATUSES.contains(&status.as_u16())
}

/// Whether a client's conditional GET or HEAD is answered 304 by a stored 200 with these
/// headers (RFC 9110 §13.1.2 and §13.1.3, evaluated as §13.2.2 orders them):
/// `If-None-Match` with the weak comparison, or, without it, `If-Modified-Since` against
/// `Last-Modified`.
pub fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let inm: Vec<&HeaderValue> = request.get_all(header::IF_NONE_MATCH).iter().collect();
    if !inm.is_empty() {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return inm
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || weak_eq(tag, etag));
    }
    let since = request.get(header::IF_MODIFIED_SINCE).and_then(http_date);
    let modified = stored.get(header::LAST_MODIFIED).and_then(http_date);
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// Whether a 304 is about the stored response (RFC 9111 §4.3.4): the same `ETag` (weak
/// comparison) when the entry has one; no `ETag` when it has none (one naming a tag the
/// entry never had is about another representation).
pub fn same_validator(stored: &HeaderMap, from_304: &HeaderMap) -> bool {
    let tag = |h: &HeaderMap| {
        h.get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match (tag(stored), tag(from_304)) {
        (Some(a), Some(b)) => weak_eq(&a, &b),
        (None, Some(_)) => false,
        _ => true,
    }
}

/// The weak comparison of two entity tags (RFC 9110 §8.8.3.2): their opaque tags are equal,
/// whether or not either is weak.
fn weak_eq(a: &str, b: &str) -> bool {
    let opaque = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    let (a, b) = (opaque(a), opaque(b));
    a.starts_with('"') && a.len() >= 2 && a == b
}

/// The fields a 304 carries from the stored response it stands for (RFC 9110 §15.4.5).
pub const NOT_MODIFIED_FIELDS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// The fields of a stored response a 304 from the upstream may replace (RFC 9111 §3.2):
/// all it sends, except those describing the body, which the 304 does not have.
pub fn refresh_headers(stored: &mut HeaderMap, from_304: &HeaderMap) {
    for name in from_304.keys() {
        if *name == header::CONTENT_LENGTH
            || *name == header::CONTENT_ENCODING
            || *name == header::CONTENT_TYPE
            || *name == header::CONTENT_RANGE
            || *name == header::TRANSFER_ENCODING
        {
            continue;
        }
        stored.remove(name);
        for value in from_304.get_all(name) {
            stored.append(name.clone(), value.clone());
        }
    }
}

/// The field names of the response's `Vary`, lowercased; `Err` for `Vary: *` (never
/// stored: no request can be shown to match it).
pub fn vary_names(headers: &HeaderMap) -> Result<Vec<header::HeaderName>, VaryAll> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let text = value.to_str().map_err(|_| VaryAll)?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(VaryAll);
            }
            let name = header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| VaryAll)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// `Vary: *`, or a `Vary` that cannot be read (treated alike: not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryAll;

#[cfg(test)]
#[path = "cache_control_tests.rs"]
mod tests;
