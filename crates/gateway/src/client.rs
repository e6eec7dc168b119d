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
pub fn new_client(connect_timeout: Duration, h2_only: bool) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("loading the system's trusted CA certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2();
    let https = builder.wrap_connector(http);
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64);
    if h2_only {
        client.http2_only(true);
    }
    Ok(client.build(https))
}

/// An empty request body.
pub fn empty() -> OutBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// GETs `url` and returns the body, at most `max` bytes, within `timeout`. For small JSON
/// documents (JWKS, metadata): anything but 200 is an error.
pub async fn get_small(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    max: usize,
) -> Result<(Bytes, http::HeaderMap), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(empty())
        .map_err(|e| e.to_string())?;
    let fetch = async {
        let response = client
            .request(req)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        Ok((body, headers))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("{url}: timed out after {timeout:?}"))?
}
