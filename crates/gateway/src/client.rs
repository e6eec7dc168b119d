//! The outbound HTTP client (upstreams, remote JWKS, discovery): hyper's pooled client over
//! TCP or rustls (aws-lc-rs), HTTP/1.1 and h2.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The request body type sent upstream.
pub type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The pooled client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, OutBody>;

/// A client with a connect timeout; `h2_only` speaks HTTP/2 with prior knowledge (h2c) to
/// plain-HTTP upstreams and negotiates by ALPN over TLS otherwise.
pub fn new_client(connect_timeout: Duration, h2_only: bool) -> Result<HttpClient, TrustStoreError> {
    let https = tls_over(tcp_connector(HttpConnector::new(), connect_timeout), true)?;
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64);
    if h2_only {
        client.http2_only(true);
    }
    Ok(client.build(https))
}

/// An error and the errors under it, `: `-separated: hyper's own says only "client error
/// (Connect)", the reason is in its sources.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `tcp` set up as every outbound client uses it: the connect timeout, no Nagle delay, and
/// any scheme passed on (the TLS layer above decides which it takes).
pub(crate) fn tcp_connector<R>(
    mut tcp: HttpConnector<R>,
    connect_timeout: Duration,
) -> HttpConnector<R> {
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp
}

/// rustls (aws-lc-rs, the system's trusted CAs) over `connector`, HTTP/1.1 and h2 by ALPN;
/// plain http too only if `allow_http`.
pub(crate) fn tls_over<C>(
    connector: C,
    allow_http: bool,
) -> Result<HttpsConnector<C>, TrustStoreError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider)?;
    let builder = if allow_http {
        builder.https_or_http()
    } else {
        builder.https_only()
    };
    Ok(builder
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector))
}

/// An empty request body.
pub fn empty() -> OutBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Why a small document (JWKS, metadata, health check) could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL cannot be requested.
    #[error("{url}: not a URL that can be requested")]
    BadUrl {
        /// The URL.
        url: String,
    },
    /// No answer: connection refused, reset, TLS failure, protocol error.
    #[error("{url}: {detail}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the client said.
        detail: String,
    },
    /// An answer other than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status it answered.
        status: http::StatusCode,
    },
    /// The body was larger than allowed, or broke off.
    #[error("{url}: the body is over {max} bytes or broke off")]
    Body {
        /// The URL.
        url: String,
        /// The limit.
        max: usize,
    },
    /// No complete answer in time.
    #[error("{url}: timed out after {timeout:?}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The document is not what was asked for (not JSON, not a JWK Set, another issuer's
    /// metadata, no `jwks_uri`).
    #[error("{url}: {detail}")]
    BadDocument {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// The system's trusted CA certificates could not be loaded, so no client for `https://`
/// can be made.
#[derive(Debug, thiserror::Error)]
#[error("loading the system's trusted CA certificates: {0}")]
pub struct TrustStoreError(#[from] std::io::Error);

/// GETs `url` and returns the body, at most `max` bytes, within `timeout`. For small JSON
/// documents (JWKS, metadata): anything but 200 is an error.
pub async fn get_small<C>(
    client: &Client<C, OutBody>,
    url: &str,
    timeout: Duration,
    max: usize,
) -> Result<(Bytes, http::HeaderMap), FetchError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let bad_url = || FetchError::BadUrl {
        url: url.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad_url())?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(empty())
        .map_err(|_| bad_url())?;
    let fetch = async {
        let response = client
            .request(req)
            .await
            .map_err(|e| FetchError::Unreachable {
                url: url.to_owned(),
                detail: with_sources(&e),
            })?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: response.status(),
            });
        }
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|_| FetchError::Body {
                url: url.to_owned(),
                max,
            })?
            .to_bytes();
        Ok((body, headers))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| FetchError::TimedOut {
            url: url.to_owned(),
            timeout,
        })?
}
