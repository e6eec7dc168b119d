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

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use ::gateway::cache_control::{freshness_lifetime, initial_age, response_directives};
use ::gateway::client::get_small;
use ::gateway::public_only::{is_public, new_public_client, PublicClient, Reach};
use oauth::client_document::{
    DocumentFetcher, FetchedDocument, Fetching, MetadataDocuments, FETCH_TIMEOUT, MAX_DOCUMENT,
};
use url::Url;

/// Freshness of a document whose answer says nothing about it.
const DEFAULT_FRESH: Duration = Duration::from_secs(3600);
/// The longest freshness read from headers (the service bounds it further).
const MAX_FRESH: Duration = Duration::from_secs(7 * 24 * 3600);

/// Fetches metadata documents for the token service; the HTTP client is made on first use.
#[derive(Debug)]
pub(crate) struct DocumentClient {
    reach: Reach,
    http: OnceLock<Result<PublicClient, String>>,
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
            http: OnceLock::new(),
        })
    }

    async fn get(&self, url: &Url) -> Result<FetchedDocument, String> {
        // An address in the URL itself is refused before any connection is tried.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.reach.allows(*ip)) {
            let what = if is_public(ip) { "allowed" } else { "public" };
            return Err(format!("{ip} is not a {what} address"));
        }
        let http = self
            .http
            .get_or_init(|| new_public_client(FETCH_TIMEOUT, self.reach).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        let (body, headers) = get_small(http, url.as_str(), FETCH_TIMEOUT, MAX_DOCUMENT)
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
