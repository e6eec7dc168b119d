//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; the MCP
//! authorization specification, revision 2025-11-25): a client that was never registered
//! here names itself with an https URL, and the JSON document at that URL is its
//! registration. MCP hosts use them so that one client works with every server without
//! registering at each.
//!
//! The rules, and why:
//! - the `client_id` is an https URL with a path, no fragment, no user information, written
//!   as a URL parser writes it back (so one client has one id);
//! - the document names itself (`client_id` equal to the URL, byte for byte), so a document
//!   copied elsewhere is not a second client;
//! - it is a stranger's claim: the client is a third party (consent is never skipped for
//!   it), signs users in only, and gets tokens only for the audiences opened to
//!   registration (`[token_service.registration] audiences`), as a self-registered client;
//! - no shared secret can be agreed with a document, so the client is public (`none`) or
//!   proves itself with its own keys (`private_key_jwt` with `jwks`);
//! - its `redirect_uris` are matched exactly, as a registered client's.
//!
//! Fetching is the binary's ([`DocumentFetcher`]: https only, public addresses only, size
//! and time limits, no redirects); this module decides what a fetched document means, and
//! keeps each answer for as long as the document's caching headers say, within bounds.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use store::Client;
use url::Url;

use crate::protocol::{ErrorKind, ErrorResponse};
use crate::registration::Methods;
use crate::service::Service;

/// The largest document read (the draft's recommendation).
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// The time allowed for one fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `client_id` URL accepted: it rides in the sign-in cookie with the redirect URI.
pub const MAX_CLIENT_ID_URL: usize = 512;
/// A document is kept at least this long, whatever its headers say (`no-store` included):
/// one sign-in reads the client three or four times within a minute.
pub const MIN_FRESH: Duration = Duration::from_secs(60);
/// And at most this long, so a changed document is seen within a day.
pub const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
/// A failed fetch or a refused document is remembered this long, so that a flood of
/// requests naming it does not become a flood of fetches.
pub const FAILURE_FRESH: Duration = Duration::from_secs(10);
/// What the documents kept may weigh, in bytes of what they said (a stranger can name any
/// number of URLs).
const MAX_WEIGHT: u64 = 8 * 1024 * 1024;
/// Fetches in flight on this node at most; beyond it a request naming an unknown document is
/// refused at once (503) rather than queued behind slow servers or slow name lookups.
pub const MAX_FETCHES: usize = 16;

/// `[token_service.registration] client_id_metadata_documents`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetadataDocuments {
    /// A `client_id` URL is an unknown client like any other.
    #[default]
    Off,
    /// https URLs on public addresses.
    On,
    /// Those, and http or https URLs on this machine's loopback addresses
    /// (`metadata_documents_from_loopback`: development and tests only).
    OnWithLoopback,
}

/// A fetched document, as the fetcher received it.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    /// The body (at most [`MAX_DOCUMENT`] bytes).
    pub body: Vec<u8>,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// How long it stays fresh by its caching headers (RFC 9111), before the bounds here.
    pub fresh_for: Duration,
}

/// The future a [`DocumentFetcher`] answers with.
pub type Fetching<'a> = Pin<Box<dyn Future<Output = Result<FetchedDocument, String>> + Send + 'a>>;

/// Fetches documents: the binary's HTTP client, which connects to public addresses only
/// (and loopback with [`MetadataDocuments::OnWithLoopback`]), follows no redirect, reads at
/// most [`MAX_DOCUMENT`] bytes within [`FETCH_TIMEOUT`], and answers only a 200. The error
/// says why, for the log only: callers are told no more than that the fetch failed, or the
/// reasons would map the network for whoever names URLs (which internal names exist, which
/// ports answer).
pub trait DocumentFetcher: std::fmt::Debug + Send + Sync {
    /// GETs `url`.
    fn fetch<'a>(&'a self, url: &'a Url) -> Fetching<'a>;
}

/// What a document said, kept `fresh_for`.
#[derive(Debug, Clone)]
struct Entry {
    client: Result<Client, ErrorResponse>,
    fresh_for: Duration,
}

impl Entry {
    /// Roughly what the entry holds, in bytes.
    fn weight(&self) -> u32 {
        let size = match &self.client {
            Ok(c) => {
                c.client_id.len()
                    + c.name.len()
                    + c.jwks.as_ref().map_or(0, String::len)
                    + c.redirect_uris
                        .iter()
                        .chain(&c.scopes)
                        .chain(&c.audiences)
                        .map(String::len)
                        .sum::<usize>()
            }
            Err(e) => e.description.len(),
        };
        u32::try_from(size.saturating_add(128)).unwrap_or(u32::MAX)
    }
}

/// How long an entry is kept: a document as its headers said, within [`MIN_FRESH`] and
/// [`MAX_FRESH`]; a failure or a refusal [`FAILURE_FRESH`].
pub(crate) fn kept_for(client: &Result<Client, ErrorResponse>, fresh_for: Duration) -> Duration {
    match client {
        Ok(_) => fresh_for.clamp(MIN_FRESH, MAX_FRESH),
        Err(_) => FAILURE_FRESH,
    }
}

struct Freshness;

impl moka::Expiry<String, Entry> for Freshness {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.fresh_for)
    }

    // An entry replaced gets its own lifetime, not what was left of the one before.
    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.fresh_for)
    }
}

/// The documents read, the fetches in flight, and the fetcher the binary installed.
pub(crate) struct ClientDocuments {
    cache: moka::sync::Cache<String, Entry>,
    /// One fetch per document at a time: who comes while it runs waits for its answer.
    in_flight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the fetches of the whole node.
    fetches: tokio::sync::Semaphore,
    fetcher: OnceLock<Arc<dyn DocumentFetcher>>,
}

impl Default for ClientDocuments {
    fn default() -> Self {
        ClientDocuments {
            cache: moka::sync::Cache::builder()
                .max_capacity(MAX_WEIGHT)
                .weigher(|_key: &String, entry: &Entry| entry.weight())
                .expire_after(Freshness)
                .build(),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            fetches: tokio::sync::Semaphore::new(MAX_FETCHES),
            fetcher: OnceLock::new(),
        }
    }
}

impl ClientDocuments {
    /// A place in the line of requests for `client_id`'s document: everyone asking for it
    /// while one is in the line shares the same lock, and takes it in turn.
    fn line_up<'a>(&'a self, client_id: &'a str) -> InLine<'a> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let lock = Arc::clone(in_flight.entry(client_id.to_owned()).or_default());
        InLine {
            documents: self,
            client_id,
            lock,
        }
    }
}

/// A request's place in a document's line; leaving it (however the request ended: answered,
/// refused, or dropped by a client that went away, even while waiting) forgets the line once
/// nobody else is in it. Clones of the lock are made under the map's lock only, so the count
/// read there is exact.
struct InLine<'a> {
    documents: &'a ClientDocuments,
    client_id: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .documents
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The map's clone and this one: nobody else is waiting.
        let last = in_flight
            .get(self.client_id)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock) && Arc::strong_count(&self.lock) == 2);
        if last {
            in_flight.remove(self.client_id);
        }
    }
}

fn refused(why: impl std::fmt::Display) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::InvalidClient,
        format!("the client's metadata document: {why}"),
    )
}

/// The `token_endpoint_auth_method`s a document may name: no secret can be agreed with it.
const DOCUMENT_METHODS: Methods = Methods {
    default: store::AuthMethod::Public,
    allowed: &[store::AuthMethod::Public, store::AuthMethod::PrivateKeyJwt],
};

/// Whether `client_id` names a metadata document: it starts with `https://`, or `http://`
/// when loopback documents are allowed (whether it is a good URL is [`document_url`]'s).
fn names_document(client_id: &str, documents: MetadataDocuments) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    let http = lower.starts_with("http://") && documents == MetadataDocuments::OnWithLoopback;
    documents != MetadataDocuments::Off && (lower.starts_with("https://") || http)
}

/// If `client_id` names a metadata document, its URL or why it cannot be one.
pub(crate) fn document_url(
    client_id: &str,
    documents: MetadataDocuments,
) -> Option<Result<Url, ErrorResponse>> {
    names_document(client_id, documents).then(|| checked_url(client_id, documents))
}

/// The draft's rules for a `client_id` URL (§3).
fn checked_url(client_id: &str, documents: MetadataDocuments) -> Result<Url, ErrorResponse> {
    let bad = |why: &str| Err(refused(format!("the client_id URL {why}")));
    if client_id.len() > MAX_CLIENT_ID_URL {
        return bad(&format!("is longer than {MAX_CLIENT_ID_URL} bytes"));
    }
    let Ok(url) = Url::parse(client_id) else {
        return bad("is not a URL");
    };
    if url.as_str() != client_id {
        return bad(&format!(
            "is not written as a URL parser writes it back ({})",
            url.as_str()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("has user information");
    }
    if url.fragment().is_some() {
        return bad("has a fragment");
    }
    if url.path() == "/"
        || url
            .path_segments()
            .is_some_and(|mut s| s.any(|s| s == "." || s == ".."))
    {
        return bad("needs a path (and no . or .. segments)");
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback && documents == MetadataDocuments::OnWithLoopback => Ok(url),
        _ => bad("must be https (http only on loopback, with metadata_documents_from_loopback)"),
    }
}

/// Whether a `Content-Type` is JSON: `application/json` or `application/<x>+json`.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(|t| t.split(';').next()) else {
        return false;
    };
    let essence = essence.trim().to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > 5)
}

impl Service {
    /// Installs what fetches metadata documents (the binary does, at start). Without it,
    /// every document client is refused as unavailable.
    pub fn use_document_fetcher(&self, fetcher: Arc<dyn DocumentFetcher>) {
        let _ = self.documents.fetcher.set(fetcher);
    }

    /// Whether `client_id` names a client known by its metadata document.
    pub(crate) fn is_document_client(&self, client_id: &str) -> bool {
        names_document(client_id, self.metadata_documents())
    }

    /// Whether `client_id` URLs are read as metadata documents.
    pub fn metadata_documents(&self) -> MetadataDocuments {
        self.settings.registration.documents
    }

    /// The client a `client_id` names: from its metadata document when it is a URL and
    /// documents are on, else as registered. `Ok(None)`: no such client. `Err`: the store
    /// failed, or the document could not be had or was refused (said in the description).
    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<Client>, ErrorResponse> {
        match document_url(client_id, self.metadata_documents()) {
            None => Ok(self.clients.get(&self.store, client_id).await?),
            Some(url) => self.document_client(&url?).await.map(Some),
        }
    }

    /// The client the document at `url` describes, from memory while fresh. One fetch per
    /// document at a time: requests naming it meanwhile wait in line, and the first finds it
    /// fetched (or, if that fetch was abandoned, fetches it itself).
    async fn document_client(&self, url: &Url) -> Result<Client, ErrorResponse> {
        // The URL is the id exactly (checked_url refuses any other spelling).
        let client_id = url.as_str();
        let documents = &self.documents;
        if let Some(entry) = documents.cache.get(client_id) {
            return entry.client;
        }
        let line = documents.line_up(client_id);
        let _turn = line.lock.lock().await;
        if let Some(entry) = documents.cache.get(client_id) {
            // Fetched by the request that had the turn before.
            return entry.client;
        }
        let busy = || {
            ErrorResponse::new(
                ErrorKind::TemporarilyUnavailable,
                "too many client metadata documents are being fetched; try again later",
            )
        };
        let Some(fetcher) = documents.fetcher.get() else {
            return Err(ErrorResponse::new(
                ErrorKind::TemporarilyUnavailable,
                "client metadata documents cannot be fetched by this node",
            ));
        };
        let _permit = documents.fetches.try_acquire().map_err(|_| busy())?;
        let (client, fresh_for) = match fetcher.fetch(url).await {
            Ok(document) => (
                self.read_document(&document, url, store::unix_now()),
                document.fresh_for,
            ),
            // The reason is in the fetcher's log line, not in the answer (see DocumentFetcher).
            Err(_) => (
                Err(refused(format!(
                    "{client_id} could not be fetched (tokengate's log says why)"
                ))),
                Duration::ZERO,
            ),
        };
        let entry = Entry {
            fresh_for: kept_for(&client, fresh_for),
            client,
        };
        documents.cache.insert(client_id.to_owned(), entry.clone());
        entry.client
    }

    /// A fetched document as a client, or why it is refused.
    pub(crate) fn read_document(
        &self,
        document: &FetchedDocument,
        url: &Url,
        now: i64,
    ) -> Result<Client, ErrorResponse> {
        let client_id = url.as_str();
        if !is_json(document.content_type.as_deref()) {
            return Err(refused(format!(
                "{client_id} is not served as application/json"
            )));
        }
        let Ok(Value::Object(metadata)) = serde_json::from_slice::<Value>(&document.body) else {
            return Err(refused(format!("{client_id} is not a JSON object")));
        };
        if metadata.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Err(refused(format!(
                "{client_id} does not name itself as its client_id"
            )));
        }
        if let Some(secret) = ["client_secret", "client_secret_expires_at"]
            .into_iter()
            .find(|k| metadata.contains_key(*k))
        {
            return Err(refused(format!(
                "{secret} cannot be used: no secret is shared with a metadata document"
            )));
        }
        let requested = self
            .requested(&metadata, &DOCUMENT_METHODS)
            .map_err(|e| refused(e.description))?;
        Ok(Client {
            client_id: client_id.to_owned(),
            name: requested
                .name
                .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned()),
            secret_hash: None,
            auth_method: requested.auth_method,
            auth_method_pinned: true,
            scopes: requested.scope,
            audiences: self.settings.registration.audiences.clone(),
            jwks: requested.jwks,
            disabled: false,
            created_at: now,
            redirect_uris: requested.redirect_uris,
            first_party: false,
        })
    }
}

#[cfg(test)]
#[path = "client_document_tests.rs"]
mod tests;
