//! What the upstream learns of the client: `X-Forwarded-For`, `-Proto` and `-Host`, set by
//! the gateway. A client's own values are believed only from a peer in `[server]
//! trusted_proxies` (a load balancer in front); from anyone else they are replaced, so an
//! upstream that reads the client address or scheme from them reads the gateway's word.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::Context;

/// Address ranges whose forwarding headers are believed (`[server] trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// The ranges; empty trusts no one (the default).
    pub fn new(ranges: Vec<ipnet::IpNet>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    /// Whether `peer` is in one of the ranges. An IPv4 peer seen as an IPv4-mapped IPv6
    /// address (a dual-stack listener) is compared as IPv4.
    pub fn contains(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else {
            return false;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|range| range.contains(&ip))
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_REWRITE_URL: HeaderName = HeaderName::from_static("x-rewrite-url");

/// Sets the forwarding headers. From a trusted proxy, its `X-Forwarded-For` is kept with the
/// peer appended, and its `X-Real-IP`, `-Proto`, `-Host`, `-Port` and `-Prefix` are kept
/// where it sent them; from anyone else each is removed or replaced by what the gateway saw.
/// `Forwarded` (which would contradict them) and `X-Original-URL`/`X-Rewrite-URL` (which
/// some frameworks route on instead of the path this gateway routed on) never pass.
pub(crate) fn forwarded_headers(
    headers: &mut HeaderMap,
    authority: Option<&str>,
    ctx: &Context,
    from_trusted_proxy: bool,
) {
    for name in [&header::FORWARDED, &X_ORIGINAL_URL, &X_REWRITE_URL] {
        headers.remove(name);
    }
    if !from_trusted_proxy {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_FORWARDED_PORT,
            &X_FORWARDED_PREFIX,
            &X_REAL_IP,
        ] {
            headers.remove(name);
        }
    }
    if let Some(ip) = ctx.peer {
        append_for(headers, ip);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        let proto = if ctx.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
}

/// Appends `ip` to `X-Forwarded-For` (several field lines are joined into one first, in
/// order, as RFC 9110 §5.3 allows).
fn append_for(headers: &mut HeaderMap, ip: IpAddr) {
    let mut joined = String::new();
    for prior in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(text) = prior.to_str() {
            joined.push_str(text);
            joined.push_str(", ");
        }
    }
    joined.push_str(&ip.to_string());
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
