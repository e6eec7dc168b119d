//! What the upstream learns of the client: `X-Forwarded-For`, `-Proto` and `-Host`, set by
//! the gateway. A client's own address and scheme are believed only from a peer in
//! `[server] trusted_proxies` (a load balancer in front); from anyone else they are replaced,
//! and the headers frameworks read as the client's host, path or method never pass, so an
//! upstream that reads them reads the gateway's word.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

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
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What a client could send to pass for another address, scheme, host or path, or to turn
/// its request into another method: removed from every request (the gateway sets its own
/// `X-Forwarded-*` after). `X-Forwarded-For`, `-Proto` and `X-Real-IP` are kept from a
/// trusted proxy; see [`forwarded_headers`].
static SPOOFABLE: [HeaderName; 17] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-method-override"),
];

/// Sets the forwarding headers. From a trusted proxy, its `X-Forwarded-For` is kept with the
/// peer appended, and its `X-Forwarded-Proto` and `X-Real-IP` are kept; from anyone else
/// those are replaced by what the gateway saw (or dropped). `X-Forwarded-Host` is always the
/// authority the gateway routed on, and the other headers in [`SPOOFABLE`] never pass:
/// frameworks read them as the client's host, scheme, path or method, which would let a
/// request be routed here as one thing and served upstream as another.
pub(crate) fn forwarded_headers(
    headers: &mut HeaderMap,
    authority: Option<&str>,
    ctx: &Context,
    from_trusted_proxy: bool,
) {
    for name in &SPOOFABLE {
        headers.remove(name);
    }
    if !from_trusted_proxy {
        for name in [&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_REAL_IP] {
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
    if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
}

/// Appends `ip` (an IPv4-mapped address as IPv4) to `X-Forwarded-For`; several field lines
/// are joined into one first, in order, as RFC 9110 §5.3 allows, byte for byte.
fn append_for(headers: &mut HeaderMap, ip: IpAddr) {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut joined: Vec<u8> = Vec::new();
    for prior in headers.get_all(&X_FORWARDED_FOR) {
        joined.extend_from_slice(prior.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(ip.to_string().as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
