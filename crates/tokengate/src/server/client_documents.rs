//! The HTTP side of Client ID Metadata Documents: fetching the document a `client_id` URL
//! names, with the rules of a fetch a stranger asked for. What a document means is decided in
//! `oauth::client_document`.
//!
//! - public addresses only, checked on the addresses connected to
//!   (`gateway::public_only`), with loopback added only by `metadata_documents_from_loopback`;
//! - https only (http only with that setting, and only to loopback: the URL rules refuse it
//!   elsewhere);
//! - no redirect followed (a 3xx is an answer other than 200);
//! - at most `MAX_DOCUMENT` bytes within `FETCH_TIMEOUT`, connection included;
//! - fresh for as long as the answer's `Cache-Control`/`Expires` say (RFC 9111), one hour
//!   when they say nothing.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ::gateway::cache_control::{freshness_lifetime, initial_age, response_directives};
use ::gateway::client::get_small;
use ::gateway::public_only::{new_public_client, PublicClient, Reach};
use oauth::client_document::{
    DocumentFetcher, FetchedDocument, Fetching, MetadataDocuments, FETCH_TIMEOUT, MAX_DOCUMENT,
    MAX_FRESH,
};
use url::Url;

/// Freshness of a document whose answer says nothing about it.
const DEFAULT_FRESH: Duration = Duration::from_secs(3600);

/// Fetches metadata documents for the token service; the HTTP client is made on first use
/// (loading the system's CA certificates), and again at the next fetch if that failed.
#[derive(Debug)]
pub(crate) struct DocumentClient {
    reach: Reach,
    http: Mutex<Option<PublicClient>>,
}

impl DocumentClient {
    /// A fetcher for the documents `documents` allows; `None` when they are off.
    pub(crate) fn for_setting(documents: MetadataDocuments) -> Option<DocumentClient> {
        let reach = match documents {
            MetadataDocuments::Off => return None,
            MetadataDocuments::On => Reach::Public,
            MetadataDocuments::OnWithLoopback => Reach::PublicAndLoopback,
        };
        Some(DocumentClient {
            reach,
            http: Mutex::new(None),
        })
    }

    fn http(&self) -> Result<PublicClient, String> {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = http.as_ref() {
            return Ok(client.clone());
        }
        let client = new_public_client(FETCH_TIMEOUT, self.reach)
            .map_err(|e| format!("no HTTP client: {e}"))?;
        *http = Some(client.clone());
        Ok(client)
    }

    async fn get(&self, url: &Url) -> Result<FetchedDocument, String> {
        let http = self.http()?;
        // The connector refuses an address out of reach, whether written in the URL or
        // resolved from a name, before connecting.
        let (body, headers) = get_small(&http, url.as_str(), FETCH_TIMEOUT, MAX_DOCUMENT)
            .await
            .map_err(|e| e.to_string())?;
        let received = SystemTime::now();
        // A Cache-Control that cannot be read counts as no-store: the service's floor applies.
        let fresh_for = match response_directives(&headers) {
            Ok(d) if !d.no_store && !d.no_cache => {
                freshness_lifetime(&d, &headers, received, DEFAULT_FRESH, MAX_FRESH)
                    .saturating_sub(initial_age(&headers, received))
            }
            _ => Duration::ZERO,
        };
        Ok(FetchedDocument {
            body: body.to_vec(),
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            fresh_for,
        })
    }
}

impl DocumentFetcher for DocumentClient {
    fn fetch<'a>(&'a self, url: &'a Url) -> Fetching<'a> {
        Box::pin(async move {
            let fetched = self.get(url).await;
            match &fetched {
                Ok(d) => tracing::info!(
                    client_id = %url,
                    fresh_for = d.fresh_for.as_secs(),
                    "client metadata document fetched"
                ),
                Err(why) => {
                    tracing::warn!(client_id = %url, "client metadata document refused: {why}")
                }
            }
            fetched
        })
    }
}
