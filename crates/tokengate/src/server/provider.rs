//! The HTTP side of signing users in at an OpenID Provider: its discovery document (cached
//! for an hour), the token request at its token endpoint, its keys (the gateway's remote
//! JWKS: cached per `Cache-Control`, one refetch for an unknown `kid`) and its userinfo
//! endpoint. What is checked lives in `oauth::upstream`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::gateway::client::{get_small, HttpClient};
use ::gateway::keys::{RemoteJwks, RemoteOptions, RemoteSource};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use jose::JwkSet;
use oauth::upstream::{provider_metadata, ProviderMetadata};
use oauth::{ErrorKind, ErrorResponse};
use serde_json::{Map, Value};

/// How long a fetched discovery document is used.
const METADATA_FOR: Duration = Duration::from_secs(3600);
/// How long a failed discovery is remembered before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// A discovery's outcome and when it was had.
type Discovered = (Instant, Result<Arc<ProviderMetadata>, String>);
/// One request to the provider, at most.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest document read from the provider.
const MAX_DOCUMENT: usize = 256 * 1024;

/// The provider's answers are unavailable: the client is told to try again later.
fn unavailable(why: impl std::fmt::Display) -> ErrorResponse {
    tracing::warn!("OpenID Provider: {why}");
    ErrorResponse::new(
        ErrorKind::TemporarilyUnavailable,
        "the sign-in provider cannot be reached; try again later",
    )
}

/// A refused answer from the provider.
fn refused(why: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::AccessDenied, why)
}

/// One OpenID Provider, as this node talks to it.
pub(crate) struct Upstream {
    http: HttpClient,
    metadata: Mutex<Option<Discovered>>,
    keys: Mutex<Option<(String, Arc<RemoteJwks>)>>,
}

impl Upstream {
    pub(crate) fn new() -> Result<Upstream, String> {
        let http = ::gateway::client::new_client(TIMEOUT, false).map_err(|e| e.to_string())?;
        Ok(Upstream {
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    /// The provider's metadata: OpenID Connect Discovery's document, else RFC 8414's.
    /// Fetched without holding the cache's lock (a slow provider holds up no other sign-in
    /// behind it); a failure is remembered for [`RETRY_AFTER`], so a flood of sign-ins while
    /// the provider is down does not become a flood of fetches.
    pub(crate) async fn metadata(
        &self,
        issuer: &str,
    ) -> Result<Arc<ProviderMetadata>, ErrorResponse> {
        if let Some((at, cached)) = self.cached().as_ref() {
            match cached {
                Ok(metadata) if at.elapsed() < METADATA_FOR => return Ok(Arc::clone(metadata)),
                Err(why) if at.elapsed() < RETRY_AFTER => return Err(unavailable(why)),
                _ => {}
            }
        }
        let fetched = self.discover(issuer).await;
        let mut cached = self.cached();
        let stale = match cached.as_ref() {
            Some((_, Ok(metadata))) => Some(Arc::clone(metadata)),
            _ => None,
        };
        match (fetched, stale) {
            // The provider's metadata rarely changes: while a refetch fails, the last good
            // copy serves, and the refetch is tried again after RETRY_AFTER.
            (Err(why), Some(stale)) => {
                tracing::warn!("OpenID Provider: {why}; using the metadata fetched before");
                let retry_at = Instant::now()
                    .checked_sub(METADATA_FOR.saturating_sub(RETRY_AFTER))
                    .unwrap_or_else(Instant::now);
                *cached = Some((retry_at, Ok(Arc::clone(&stale))));
                Ok(stale)
            }
            (fetched, _) => {
                *cached = Some((Instant::now(), fetched.clone()));
                fetched.map_err(unavailable)
            }
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<Discovered>> {
        self.metadata.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn discover(&self, issuer: &str) -> Result<Arc<ProviderMetadata>, String> {
        let base = issuer.trim_end_matches('/');
        let mut last = String::new();
        for url in [
            format!("{base}/.well-known/openid-configuration"),
            format!("{base}/.well-known/oauth-authorization-server"),
        ] {
            match get_small(&self.http, &url, TIMEOUT, MAX_DOCUMENT).await {
                Ok((body, _)) => {
                    return provider_metadata(&body, issuer)
                        .map(Arc::new)
                        .map_err(|e| format!("{url}: {e}"))
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// Redeems the code at the provider's token endpoint; returns the ID token and the
    /// access token (for userinfo).
    pub(crate) async fn redeem(
        &self,
        metadata: &ProviderMetadata,
        form: String,
        authorization: Option<String>,
    ) -> Result<(String, Option<String>), ErrorResponse> {
        let url = &metadata.token_endpoint;
        let mut req = http::Request::post(url.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if let Some(value) = authorization {
            req = req.header(http::header::AUTHORIZATION, value);
        }
        let body = Full::new(Bytes::from(form))
            .map_err(|never| match never {})
            .boxed_unsync();
        let req = req
            .body(body)
            .map_err(|e| unavailable(format!("{url}: {e}")))?;
        let (status, body) = self.send(req, url).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|_| unavailable(format!("{url}: the token response is not JSON")))?;
        if status != http::StatusCode::OK {
            let error = doc
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            return Err(refused(format!("the provider refused the code ({error})")));
        }
        let id_token = doc
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("the provider's token response has no id_token"))?;
        let access_token = doc.get("access_token").and_then(Value::as_str);
        Ok((id_token.to_owned(), access_token.map(str::to_owned)))
    }

    /// The provider's keys; `refetch` when a token named a key not in them.
    pub(crate) async fn keys(
        &self,
        metadata: &ProviderMetadata,
        refetch: bool,
    ) -> Result<Arc<JwkSet>, ErrorResponse> {
        let remote = {
            let mut held = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_ref() {
                Some((uri, remote)) if *uri == metadata.jwks_uri => Arc::clone(remote),
                _ => {
                    let remote = Arc::new(RemoteJwks::new(
                        RemoteSource::Jwks(metadata.jwks_uri.clone()),
                        self.http.clone(),
                        RemoteOptions::default(),
                    ));
                    *held = Some((metadata.jwks_uri.clone(), Arc::clone(&remote)));
                    remote
                }
            }
        };
        let keys = if refetch {
            remote.refetch_for_unknown_kid().await
        } else {
            remote.keys().await
        };
        keys.map_err(unavailable)
    }

    /// The userinfo endpoint's claims (OpenID Connect Core §5.3), if it answers.
    pub(crate) async fn userinfo(
        &self,
        metadata: &ProviderMetadata,
        access_token: &str,
    ) -> Option<Map<String, Value>> {
        let url = metadata.userinfo_endpoint.as_deref()?;
        let req = http::Request::get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(http::header::ACCEPT, "application/json")
            .body(::gateway::client::empty())
            .ok()?;
        match self.send(req, url).await {
            Ok((http::StatusCode::OK, body)) => match serde_json::from_slice(&body) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            },
            Ok((status, _)) => {
                tracing::warn!("OpenID Provider: {url}: HTTP {status}");
                None
            }
            Err(_) => None,
        }
    }

    async fn send(
        &self,
        req: http::Request<::gateway::client::OutBody>,
        url: &str,
    ) -> Result<(http::StatusCode, Bytes), ErrorResponse> {
        let exchange = async {
            let response = self
                .http
                .request(req)
                .await
                .map_err(|e| unavailable(format!("{url}: {e}")))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|_| unavailable(format!("{url}: the body is too large or broke off")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| unavailable(format!("{url}: timed out")))?
    }
}
