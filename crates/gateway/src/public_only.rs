//! An outbound client that reaches public addresses only, for URLs a stranger chose (a Client
//! ID Metadata Document's `client_id`): without it, naming `http://169.254.169.254/` or a
//! host that resolves to `10.0.0.5` would make tokengate fetch from inside the network it
//! guards (server-side request forgery).
//!
//! The check is made on the addresses actually connected to, not on the URL's text: the
//! resolver drops every address that is not public (so a name resolving to a private address
//! is never connected to, and a name answering differently on a second lookup gains nothing),
//! and the connector checks the peer of every connection it made, which also covers an IP
//! literal in the URL (hyper connects to those without asking the resolver).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::client::{tcp_connector, tls_over, BoxError, OutBody, TrustStoreError};

/// Which addresses may be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Globally routable unicast addresses only.
    Public,
    /// Those and this machine's loopback addresses (development and tests only: a
    /// document served by a process beside tokengate).
    PublicAndLoopback,
}

impl Reach {
    /// Whether `ip` may be connected to.
    pub fn allows(self, ip: IpAddr) -> bool {
        is_public(ip) || (self == Reach::PublicAndLoopback && ip.to_canonical().is_loopback())
    }
}

/// Ranges that are not public: private use, loopback, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast, reserved (RFC 6890 and the IANA special-purpose
/// registries), and one public address that is a cloud host's own service (Azure's
/// WireServer). IPv6 outside global unicast (2000::/3) is refused before these are read.
const NOT_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "168.63.129.16/32",
    // Teredo and 6to4 embed IPv4 addresses (possibly private ones); benchmarking, ORCHID,
    // documentation.
    "2001::/32",
    "2001:2::/48",
    "2001:10::/28",
    "2001:20::/28",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
];

/// Whether `ip` is a globally routable unicast address. IPv4-mapped IPv6 addresses are read
/// as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if let IpAddr::V6(v6) = ip {
        // Global unicast is 2000::/3; everything else (ULA, link-local, multicast, NAT64,
        // IPv4-compatible, unspecified, loopback) is not reachable on the internet.
        if v6.segments().first().is_none_or(|s| s & 0xe000 != 0x2000) {
            return false;
        }
    }
    !not_public().iter().any(|range| range.contains(&ip))
}

/// [`NOT_PUBLIC`], parsed once (a test checks that every entry parses).
fn not_public() -> &'static [IpNet] {
    static RANGES: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
        NOT_PUBLIC
            .iter()
            .filter_map(|range| range.parse().ok())
            .collect()
    });
    &RANGES
}

/// The error of a connection to an address `Reach` does not allow.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a public address")]
pub struct NotPublic(pub IpAddr);

/// A resolver (the system's by default), keeping only the addresses `reach` allows.
#[derive(Debug, Clone)]
pub struct FilteringResolver<R = GaiResolver> {
    inner: R,
    reach: Reach,
}

impl<R> FilteringResolver<R> {
    /// `inner`'s answers, filtered.
    pub fn new(inner: R, reach: Reach) -> Self {
        FilteringResolver { inner, reach }
    }
}

impl<R> Service<Name> for FilteringResolver<R>
where
    R: Service<Name>,
    R::Response: Iterator<Item = SocketAddr>,
    R::Error: Into<BoxError>,
    R::Future: Send + 'static,
{
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (lookup, reach) = (self.inner.call(name.clone()), self.reach);
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = lookup
                .await
                .map_err(Into::into)?
                .filter(|addr| reach.allows(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// A TCP connector over [`FilteringResolver`] that also refuses any connection whose peer
/// `reach` does not allow.
#[derive(Debug, Clone)]
pub struct PublicConnector {
    inner: HttpConnector<FilteringResolver>,
    reach: Reach,
}

impl Service<http::Uri> for PublicConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // An address written in the URL is judged before any connection is tried.
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = literal.filter(|ip| !self.reach.allows(*ip)) {
            return Box::pin(async move { Err(NotPublic(ip).into()) });
        }
        let (connecting, reach) = (self.inner.call(uri), self.reach);
        Box::pin(async move {
            let stream = connecting.await?;
            let peer = stream.inner().peer_addr()?.ip();
            if !reach.allows(peer) {
                // Dropped unused: nothing was sent to it.
                return Err(NotPublic(peer).into());
            }
            Ok(stream)
        })
    }
}

/// A client over [`PublicConnector`]: https (and, only with [`Reach::PublicAndLoopback`],
/// http), HTTP/1.1 and h2, the system's trusted CAs, no connection pool (each document is
/// fetched rarely, and a pooled connection would outlive the address check's reason).
pub type PublicClient = Client<HttpsConnector<PublicConnector>, OutBody>;

/// A [`PublicClient`] with a connect timeout.
pub fn new_public_client(
    connect_timeout: Duration,
    reach: Reach,
) -> Result<PublicClient, TrustStoreError> {
    let tcp = tcp_connector(
        HttpConnector::new_with_resolver(FilteringResolver::new(GaiResolver::new(), reach)),
        connect_timeout,
    );
    let https = tls_over(
        PublicConnector { inner: tcp, reach },
        reach == Reach::PublicAndLoopback,
    )?;
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_max_idle_per_host(0);
    Ok(client.build(https))
}

#[cfg(test)]
#[path = "public_only_tests.rs"]
mod tests;
