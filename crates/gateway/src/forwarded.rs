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
        let ip = unmapped(ip);
        self.0.iter().any(|range| range.contains(&ip))
    }
}

impl TrustedProxies {
    /// The client's address: the peer's, or, when the peer is a trusted proxy, the
    /// rightmost address in `X-Forwarded-For` that is not one (the first hop a trusted
    /// proxy saw; those to its left are the client's own word). Each entry is read on its
    /// own (so a client's bytes in one entry cannot spoil the next), as an address, with or
    /// without a port (`192.0.2.1:5678`, `[2001:db8::1]:443`). An entry that is none of these
    /// (`unknown`) stops the walk at the last trusted hop: a header a client wrote cannot
    /// name someone else's address.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(unmapped);
        if !self.contains(peer) {
            return peer;
        }
        let lines: Vec<&HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        let hops = lines
            .iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','));
        let mut client = peer;
        for hop in hops {
            let Some(ip) = hop_address(hop) else {
                break;
            };
            client = Some(unmapped(ip));
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry's address: bare, with a port, or bracketed IPv6.
fn hop_address(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// An IPv4 peer seen through a dual-stack listener (`::ffff:a.b.c.d`) as the IPv4 address
/// it is; other addresses as they are.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether a client's header could pass for another host, scheme, path, address or method:
/// removed from every request (the gateway sets its own `X-Forwarded-*` after).
/// `X-Forwarded-For`, `-Proto` and `X-Real-IP` are also the client's claims, kept from a
/// trusted proxy only; see [`forwarded_headers`]. A match over the request's few names
/// rather than a removal per listed name: each removal hashes its name, and most requests
/// carry none of these (issue #13 run in docs/benchmarks.md).
fn spoofable(name: &str, from_trusted_proxy: bool) -> bool {
    // Every listed name starts with one of these: most names are passed over here.
    if !matches!(name.as_bytes().first(), Some(b'x' | b'f' | b't')) {
        return false;
    }
    match name {
        "forwarded"
        | "x-forwarded-host"
        | "x-forwarded-port"
        | "x-forwarded-prefix"
        | "x-forwarded-server"
        | "x-forwarded-ssl"
        | "x-forwarded-scheme"
        | "x-url-scheme"
        | "front-end-https"
        | "x-original-host"
        | "x-original-url"
        | "x-rewrite-url"
        | "x-client-ip"
        | "true-client-ip"
        | "x-cluster-client-ip"
        | "x-http-method-override"
        | "x-method-override"
        | "x-http-method"
        | "x-forwarded-uri"
        | "x-original-uri"
        | "x-forwarded-path" => true,
        "x-forwarded-for" | "x-forwarded-proto" | "x-real-ip" => !from_trusted_proxy,
        _ => false,
    }
}

/// Sets the forwarding headers. From a trusted proxy, its `X-Forwarded-For` is kept with the
/// peer appended, and its `X-Forwarded-Proto` and `X-Real-IP` are kept; from anyone else
/// those are replaced by what the gateway saw (or dropped). `X-Forwarded-Host` is always the
/// authority the gateway routed on, and the other [`spoofable`] headers never pass:
/// frameworks read them as the client's host, scheme, path or method, which would let a
/// request be routed here as one thing and served upstream as another.
pub(crate) fn forwarded_headers(
    headers: &mut HeaderMap,
    authority: Option<&str>,
    ctx: &Context,
    from_trusted_proxy: bool,
) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| spoofable(name.as_str(), from_trusted_proxy))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
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
    let ip = unmapped(ip);
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
