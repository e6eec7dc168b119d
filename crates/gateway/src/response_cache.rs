//! The response-cache phase (`[routes.cache]`): RFC 9111 as a shared cache in front of the
//! route's upstream, with RFC 9211 `Cache-Status` on every response it had a say in.
//!
//! It runs after authentication, authorization and the rate limits, so that a revoked or
//! expired token never gets a stored response and a hit is still a counted request. Its key
//! holds the identity its `partition` names (`sub` with its issuer, or `client_id` with its
//! issuer), so one caller's response is never another's; `shared` keys hold none, and
//! only responses the upstream marked `public` or gave an `s-maxage` are stored there.
//!
//! Concurrent misses for one key make one upstream request: the first is the leader, the
//! others wait (at most the route's upstream timeout) and then read what it stored; when it
//! stored nothing they go upstream themselves, at once. A stale entry with a validator is
//! revalidated (`If-None-Match`, `If-Modified-Since`); a 304 refreshes it. A miss's body
//! streams to the client while it is copied; the entry is stored when the body ends whole
//! and within `max_body`, before the client sees the end.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Empty, Full};
use tokio::sync::watch;

use crate::auth::Verified;
use crate::cache_control::{self as cc, ResponseDirectives};
use crate::cache_storage::{CachedResponse, EntryKey, RouteAccount, Storage, Stored, VaryMarker};
use crate::client::BoxError;
use crate::metrics::ResponseCacheCounters;
use crate::ResponseBody;

/// The `Cache-Status` field (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// This cache's name in `Cache-Status`.
const NAME: &str = "tokengate";

/// Whose responses a key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// One caller: the token's `sub`, with its issuer.
    Subject,
    /// One client: the token's `client_id`, with its issuer.
    Client,
    /// Everyone: only responses marked `public` or with `s-maxage`.
    Shared,
}

impl Partition {
    /// Its spelling in the configuration.
    pub fn parse(text: &str) -> Option<Partition> {
        match text {
            "subject" => Some(Partition::Subject),
            "client" => Some(Partition::Client),
            "shared" => Some(Partition::Shared),
            _ => None,
        }
    }

    /// Its spelling in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Subject => "subject",
            Partition::Client => "client",
            Partition::Shared => "shared",
        }
    }
}

/// What the route tells its upstream about the caller, which a partitioned key must hold
/// too: an upstream may tailor its answer to any of it without saying so.
#[derive(Debug, Clone, Default)]
pub struct UpstreamIdentity {
    /// The fields the route's `forward_claims` set.
    pub fields: Vec<HeaderName>,
    /// A token goes upstream (the client's or an internal one): its `sub`, `client_id` and
    /// `scope` are keyed too.
    pub token: bool,
}

/// A route's response cache: its settings, storage and counters.
#[derive(Debug)]
pub struct ResponseCache {
    /// Freshness when the upstream gives none.
    pub ttl: Duration,
    /// The most freshness an entry gets, whatever the upstream says.
    pub max_ttl: Duration,
    /// Whose responses a key holds.
    pub partition: Partition,
    /// Methods whose responses are cached (GET and HEAD at most).
    pub methods: Vec<Method>,
    /// Largest body stored, bytes; a larger response passes through, streamed.
    pub max_body: u64,
    /// Where entries are kept.
    pub storage: Storage,
    /// Longest a request waits for another's upstream request (the route's upstream timeout).
    pub wait: Duration,
    /// What the upstream learns of the caller.
    pub upstream_identity: UpstreamIdentity,
    counters: ResponseCacheCounters,
    account: Arc<RouteAccount>,
    flights: Arc<Flights>,
}

/// A cache's settings as configured.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `ttl`.
    pub ttl: Duration,
    /// `max_ttl`.
    pub max_ttl: Duration,
    /// `partition`.
    pub partition: Partition,
    /// `methods`.
    pub methods: Vec<Method>,
    /// `max_body`, bytes.
    pub max_body: u64,
}

/// Why a purge did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No route of that name caches responses.
    #[error("no route named {0:?} caches responses")]
    UnknownRoute(String),
    /// Redis did not answer in time (some entries may be gone, the others are not).
    #[error("redis did not answer; the purge did not finish")]
    Unavailable,
}

/// What the cache phase decided.
pub(crate) enum Lookup {
    /// A stored response answers the request.
    Hit(Response<ResponseBody>),
    /// The request goes upstream; [`Pending::finish`] handles the answer. (Boxed: the
    /// pipeline holds it across the forward, in every request's future.)
    Forward(Box<Pending>),
}

/// The request's facts the cache phase reads: after the rewrite, so that the key and the
/// `Vary` values are what the upstream is sent.
pub(crate) struct CacheRequest<'r> {
    pub(crate) method: &'r Method,
    /// The path the client asked for (what a purge's `path_prefix` matches).
    pub(crate) path: &'r str,
    /// The path and query sent upstream.
    pub(crate) target: &'r str,
    /// The fields sent upstream: the key's scheme and host (`X-Forwarded-Proto`,
    /// `X-Forwarded-Host`), the forwarded identity and the `Vary` values are read there.
    pub(crate) headers: &'r HeaderMap,
    pub(crate) has_body: bool,
    /// A WebSocket upgrade.
    pub(crate) upgrade: bool,
    pub(crate) verified: Option<&'r Verified>,
}

impl ResponseCache {
    /// A route's cache over `storage`, counting on `counters` and `account`.
    pub fn new(
        settings: CacheSettings,
        storage: Storage,
        wait: Duration,
        counters: ResponseCacheCounters,
        account: Arc<RouteAccount>,
    ) -> ResponseCache {
        ResponseCache {
            ttl: settings.ttl,
            max_ttl: settings.max_ttl,
            partition: settings.partition,
            methods: settings.methods,
            max_body: settings.max_body,
            storage,
            wait,
            upstream_identity: UpstreamIdentity::default(),
            counters,
            account,
            flights: Arc::default(),
        }
    }

    /// The cache, keyed also by what the upstream learns of the caller.
    pub fn with_upstream_identity(mut self, identity: UpstreamIdentity) -> ResponseCache {
        self.upstream_identity = identity;
        self
    }

    /// Removes this route's entries whose path starts with `path_prefix` (all when `None`);
    /// how many keys went.
    pub async fn purge(&self, route: &str, path_prefix: Option<&str>) -> Result<u64, PurgeError> {
        self.storage
            .purge(route, path_prefix)
            .await
            .map_err(|_| PurgeError::Unavailable)
    }

    /// Bytes this route's entries hold in this node's memory (pending evictions done
    /// first, so that the count is what the cache holds now).
    pub fn bytes_held(&self) -> i64 {
        if let Storage::Memory(memory) = &self.storage {
            memory.settle();
        }
        self.account.bytes()
    }

    /// The cache phase: a fresh stored response, or what the forward needs to store the
    /// upstream's.
    pub(crate) async fn lookup(self: &Arc<Self>, route: &str, req: &CacheRequest<'_>) -> Lookup {
        let bypass = |why| Lookup::Forward(Box::new(Pending::bypass(why)));
        let cached_method = self.methods.contains(req.method);
        if !cached_method && is_safe(req.method) {
            return bypass("fwd=method");
        }
        let Some(identity) = self.key_identity(req) else {
            return bypass("fwd=bypass; detail=\"no-identity\"");
        };
        if !cached_method {
            // RFC 9111 §4.4: a successful unsafe request invalidates what is stored for
            // its target.
            let doomed =
                [Method::GET, Method::HEAD].map(|m| self.primary_key(route, &m, req, identity));
            return Lookup::Forward(Box::new(Pending::invalidating(Arc::clone(self), doomed)));
        }
        if req.has_body || req.upgrade || req.headers.contains_key(header::RANGE) {
            return bypass("fwd=bypass; detail=\"request\"");
        }
        let mut pending = Pending {
            cache: Some(Arc::clone(self)),
            key: self.primary_key(route, req.method, req, identity),
            request: req.headers.clone(),
            method: req.method.clone(),
            no_store: cc::request_forbids_storing(req.headers),
            ..Pending::bypass("")
        };
        match self.find(&mut pending).await {
            Ok(found) => {
                if let Some(hit) = self.use_found(found, &mut pending) {
                    return Lookup::Hit(hit);
                }
            }
            Err(_) => {
                pending.status = "detail=\"storage-unavailable\"";
                pending.no_store = true;
                return Lookup::Forward(Box::new(pending));
            }
        }
        if pending.no_store {
            // Nothing to wait for or store: the answer goes to this client only.
            pending.stale = None;
            return Lookup::Forward(Box::new(pending));
        }
        self.collapse(pending).await
    }

    /// A miss: the first request for the key goes upstream, the others wait for what it
    /// stores (a flight is joined only while it is younger than `wait`, so a leader whose
    /// client reads slowly holds back no one for longer).
    async fn collapse(&self, mut pending: Pending) -> Lookup {
        match self.flights.join(pending.key.digest, self.wait) {
            Flight::Lead(guard) => {
                // Another leader may have stored it between the lookup and now (and left):
                // looked up once more, so that it is not fetched twice.
                if let Ok(Some(entry)) = self.find(&mut pending).await {
                    if let Some(hit) = self.use_found(Some(entry), &mut pending) {
                        guard.done(FlightState::Stored);
                        return Lookup::Hit(hit);
                    }
                }
                pending.flight = Some(guard);
            }
            Flight::Follow(mut rx, left) => {
                let stored = tokio::time::timeout(left, async {
                    rx.wait_for(|s| *s != FlightState::Pending)
                        .await
                        .is_ok_and(|s| *s == FlightState::Stored)
                })
                .await
                .unwrap_or(false);
                pending.collapsed = true;
                self.counters.collapsed.inc();
                if stored {
                    if let Ok(found) = self.find(&mut pending).await {
                        if let Some(hit) = self.use_found(found, &mut pending) {
                            return Lookup::Hit(hit);
                        }
                    }
                }
            }
            Flight::TooOld => {}
        }
        Lookup::Forward(Box::new(pending))
    }

    /// The identity in the key: none for `shared`; otherwise the token's `iss` and its
    /// `sub` or `client_id`, and what the upstream learns of the caller (the forwarded
    /// claim fields; every claim but the times and `jti` when a token goes upstream).
    /// `None` when the token has no such identity (or an empty one).
    fn key_identity(&self, req: &CacheRequest<'_>) -> Option<[u8; 32]> {
        let mut input = KeyInput::new();
        let id = match self.partition {
            Partition::Shared => return Some(input.finish()),
            Partition::Subject => req.verified?.claims.sub(),
            Partition::Client => req.verified?.claims.client_id(),
        };
        let v = req.verified?;
        input.part(Some(v.claims.iss().unwrap_or(&v.issuer).as_bytes()));
        input.part(Some(id.filter(|id| !id.is_empty())?.as_bytes()));
        for name in &self.upstream_identity.fields {
            input.part(Some(name.as_str().as_bytes()));
            for value in req.headers.get_all(name) {
                input.part(Some(value.as_bytes()));
            }
            input.part(None);
        }
        if self.upstream_identity.token {
            let mut scopes: Vec<&str> = v.scopes.iter().map(String::as_str).collect();
            scopes.sort_unstable();
            for scope in scopes {
                input.part(Some(scope.as_bytes()));
            }
            input.part(None);
            // Sorted by name (serde_json's map keeps the token's order where a dependency
            // turns `preserve_order` on): the same claims make the same key.
            let claims: std::collections::BTreeMap<&String, &serde_json::Value> = v
                .claims
                .as_map()
                .ok()?
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "exp" | "iat" | "nbf" | "jti"))
                .collect();
            input.part(Some(serde_json::to_string(&claims).ok()?.as_bytes()));
        }
        Some(input.finish())
    }

    /// A fresh entry as the response (a hit), or, for a stale one with a validator, the
    /// entry kept in `pending` for revalidation.
    fn use_found(
        &self,
        found: Option<Arc<CachedResponse>>,
        pending: &mut Pending,
    ) -> Option<Response<ResponseBody>> {
        let now = unix_now();
        let entry = found?;
        let fresh_for = entry.fresh_for(now);
        if fresh_for > 0 {
            self.counters.hits.inc();
            let status = if pending.collapsed {
                format!("hit; collapsed; ttl={fresh_for}")
            } else {
                format!("hit; ttl={fresh_for}")
            };
            return Some(serve(
                &entry,
                &pending.request,
                &pending.method,
                now,
                &status,
            ));
        }
        if cc::has_validator(&entry.headers) {
            pending.stale = Some(entry);
        }
        None
    }

    /// The entry for the request: at its key, or, when that holds the field names the
    /// responses vary on, at the key those fields' values make.
    async fn find(
        &self,
        pending: &mut Pending,
    ) -> Result<Option<Arc<CachedResponse>>, crate::cache_storage::Unavailable> {
        match self.storage.get(&pending.key).await? {
            None => Ok(None),
            Some(Stored::Response(r)) => Ok(Some(r)),
            Some(Stored::Vary(marker)) => {
                let key = variant_key(&pending.key, &marker, &pending.request);
                pending.marker = Some(marker);
                match self.storage.get(&key).await? {
                    Some(Stored::Response(r)) => Ok(Some(r)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// The key of everything that selects a response but the fields it varies on: route,
    /// method, scheme and host as sent upstream, the upstream path and query, the
    /// partition and the identity.
    fn primary_key(
        &self,
        route: &str,
        method: &Method,
        req: &CacheRequest<'_>,
        identity: [u8; 32],
    ) -> EntryKey {
        let mut input = KeyInput::new();
        input.part(Some(route.as_bytes()));
        input.part(Some(method.as_str().as_bytes()));
        for name in ["x-forwarded-proto", "x-forwarded-host"] {
            for value in req.headers.get_all(name) {
                input.part(Some(value.as_bytes()));
            }
            input.part(None);
        }
        input.part(Some(req.target.as_bytes()));
        input.part(Some(self.partition.as_str().as_bytes()));
        input.part(Some(&identity));
        EntryKey {
            digest: input.finish(),
            route: Arc::from(route),
            path: Arc::from(req.path),
        }
    }
}

/// What a key is the SHA-256 of: parts, each tagged (present or not) and length-prefixed,
/// so that no two different sequences of parts make the same input.
struct KeyInput(digest::Context);

impl KeyInput {
    fn new() -> KeyInput {
        KeyInput(digest::Context::new(&digest::SHA256))
    }

    fn part(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.0.update(&[0]),
            Some(bytes) => {
                self.0.update(&[1]);
                self.0
                    .update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
                self.0.update(bytes);
            }
        }
    }

    fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// Whether a method is safe (RFC 9110 §9.2.1): its requests change nothing stored.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The key of the variant the request's `fields` select among the responses `marker`
/// stands for.
fn variant_key(primary: &EntryKey, marker: &VaryMarker, fields: &HeaderMap) -> EntryKey {
    let mut input = KeyInput::new();
    input.part(Some(&primary.digest));
    input.part(Some(&marker.generation.to_be_bytes()));
    for name in &marker.names {
        input.part(Some(name.as_str().as_bytes()));
        for value in fields.get_all(name) {
            input.part(Some(value.as_bytes()));
        }
        input.part(None);
    }
    EntryKey {
        digest: input.finish(),
        route: Arc::clone(&primary.route),
        path: Arc::clone(&primary.path),
    }
}

/// A varying response's generation: random, so that no node makes one another used.
fn random_generation() -> u64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Never seen; the time is unique enough that an old variant is not revived.
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    u64::from_be_bytes(bytes)
}

/// Unix seconds now.
fn unix_now() -> u64 {
    u64::try_from(store::unix_now()).unwrap_or(0)
}

/// A stored response as the answer: 304 to a client's matching conditional request,
/// otherwise the stored status, fields and body; with `Age` and `Cache-Status`.
fn serve(
    entry: &CachedResponse,
    request: &HeaderMap,
    method: &Method,
    now: u64,
    status: &str,
) -> Response<ResponseBody> {
    let conditional = entry.status == StatusCode::OK
        && (*method == Method::GET || *method == Method::HEAD)
        && cc::not_modified(request, &entry.headers);
    let mut response = if conditional {
        not_modified(&entry.headers)
    } else {
        let body = if *method == Method::HEAD {
            Bytes::new()
        } else {
            entry.body.clone()
        };
        let mut r = Response::new(Full::new(body).map_err(BoxError::from).boxed_unsync());
        *r.status_mut() = entry.status;
        *r.headers_mut() = entry.headers.clone();
        r
    };
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(entry.age(now)));
    add_cache_status(response.headers_mut(), status);
    response
}

/// A 304 for a stored 200 with these fields: those RFC 9110 §15.4.5 asks for, and its
/// `Last-Modified`.
fn not_modified(fields: &HeaderMap) -> Response<ResponseBody> {
    let mut r = Response::new(Empty::new().map_err(BoxError::from).boxed_unsync());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    for name in cc::NOT_MODIFIED_FIELDS
        .iter()
        .chain([&header::LAST_MODIFIED])
    {
        for value in fields.get_all(name) {
            r.headers_mut().append(name.clone(), value.clone());
        }
    }
    r
}

/// Appends this cache's member to `Cache-Status` (RFC 9211 §2: the cache nearest the
/// client last).
fn add_cache_status(headers: &mut HeaderMap, member: &str) {
    let ours = format!("{NAME}; {member}");
    let value = match headers.get(&CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {ours}"),
        _ => ours,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(CACHE_STATUS, v);
    }
}

/// A request on its way upstream, and what the cache needs to store its answer.
pub(crate) struct Pending {
    /// `None` for a request the cache does not take part in.
    cache: Option<Arc<ResponseCache>>,
    key: EntryKey,
    /// The client's fields (for `Vary` and its conditional request).
    request: HeaderMap,
    method: Method,
    /// A stale entry being revalidated.
    stale: Option<Arc<CachedResponse>>,
    /// The `Vary` marker found at the key.
    marker: Option<Arc<VaryMarker>>,
    /// This request's upstream request is the one others wait for.
    flight: Option<FlightGuard>,
    /// This request waited for another's.
    collapsed: bool,
    /// The answer may not be stored (the request's `no-store`, or the storage is away).
    no_store: bool,
    /// `Cache-Status` decided already: a bypass's whole member, or, when the cache takes
    /// part, why its answer will not be stored.
    status: &'static str,
    /// An unsafe request's target: what is stored for it goes when it succeeds.
    invalidate: Option<(Arc<ResponseCache>, [EntryKey; 2])>,
}

impl Pending {
    fn invalidating(cache: Arc<ResponseCache>, doomed: [EntryKey; 2]) -> Pending {
        Pending {
            invalidate: Some((cache, doomed)),
            ..Pending::bypass("fwd=method")
        }
    }

    fn bypass(status: &'static str) -> Pending {
        Pending {
            invalidate: None,
            cache: None,
            key: EntryKey {
                digest: [0; 32],
                route: Arc::from(""),
                path: Arc::from(""),
            },
            request: HeaderMap::new(),
            method: Method::GET,
            stale: None,
            marker: None,
            flight: None,
            collapsed: false,
            no_store: true,
            status,
        }
    }

    /// The upstream request's fields: the client's own validators are replaced by the
    /// stored entry's (a full response can be stored; the client's conditional is then
    /// answered from it), or just dropped on a miss.
    pub(crate) fn prepare(&self, headers: &mut HeaderMap) {
        if self.cache.is_none() || self.no_store {
            return;
        }
        headers.remove(header::IF_NONE_MATCH);
        headers.remove(header::IF_MODIFIED_SINCE);
        if let Some(stale) = &self.stale {
            if let Some(etag) = stale.headers.get(header::ETAG) {
                headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = stale.headers.get(header::LAST_MODIFIED) {
                headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
            }
        }
    }

    /// The upstream's answer for the client, stored when it may be (a 304 to a
    /// revalidation refreshes the stale entry and answers from it).
    pub(crate) async fn finish(
        mut self,
        mut response: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        if let Some((cache, doomed)) = self.invalidate.take() {
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                for key in &doomed {
                    let _ = cache.storage.delete(key).await;
                }
            }
        }
        let Some(cache) = self.cache.take() else {
            add_cache_status(response.headers_mut(), self.status);
            return response;
        };
        cache.counters.misses.inc();
        if response.status() == StatusCode::NOT_MODIFIED {
            if let Some(stale) = self.stale.take() {
                return self.revalidated(&cache, &stale, response.headers()).await;
            }
        }
        let fwd = if self.stale.is_some() {
            "fwd=stale"
        } else {
            "fwd=miss"
        };
        let collapsed = if self.collapsed { "; collapsed" } else { "" };
        let received = SystemTime::now();
        let decision = if !self.status.is_empty() {
            Err(self.status)
        } else if self.no_store {
            Err("detail=\"request-no-store\"")
        } else {
            storable(
                &cache,
                response.status(),
                response.headers(),
                &self.request,
                received,
            )
        };
        match decision {
            Err(why) => {
                add_cache_status(response.headers_mut(), &format!("{fwd}{collapsed}; {why}"));
                if let Some(flight) = self.flight.take() {
                    flight.done(FlightState::NotStored);
                }
                response
            }
            Ok(plan) => {
                // Stored as the upstream sent it: this cache's status is the request's own.
                let fields = response.headers().clone();
                add_cache_status(response.headers_mut(), &format!("{fwd}{collapsed}; stored"));
                self.store_as_it_streams(cache, response, fields, plan, received)
                    .await
            }
        }
    }

    /// A 304 to a revalidation. Only one about the entry held refreshes it (RFC 9111
    /// §4.3.4); one about another representation (another `ETag`) makes the entry untrusted:
    /// it is removed and served this once, as the upstream said it was not modified.
    async fn revalidated(
        self,
        cache: &Arc<ResponseCache>,
        stale: &CachedResponse,
        fields: &HeaderMap,
    ) -> Response<ResponseBody> {
        if cc::same_validator(&stale.headers, fields) {
            return self.refreshed(cache, stale, fields).await;
        }
        let entry_key = match &self.marker {
            Some(marker) => variant_key(&self.key, marker, &self.request),
            None => self.key.clone(),
        };
        let _ = cache.storage.delete(&entry_key).await;
        let status = "fwd=stale; fwd-status=304; detail=\"validator-mismatch\"";
        serve(stale, &self.request, &self.method, unix_now(), status)
    }

    /// A 304 to a revalidation: the stale entry with the 304's fields, fresh again, stored
    /// and served.
    async fn refreshed(
        mut self,
        cache: &Arc<ResponseCache>,
        stale: &CachedResponse,
        fields: &HeaderMap,
    ) -> Response<ResponseBody> {
        let received = SystemTime::now();
        let mut headers = stale.headers.clone();
        // The entry's age starts again from the 304 (its own `Date` and `Age`, if any).
        headers.remove(header::AGE);
        headers.remove(header::DATE);
        cc::refresh_headers(&mut headers, fields);
        let status = "fwd=stale; fwd-status=304";
        let Ok(plan) = storable(cache, stale.status, &headers, &self.request, received) else {
            // The refreshed fields forbid storing: served, and not stored again (the old
            // entry stays stale, so the next request revalidates it once more).
            if let Some(flight) = self.flight.take() {
                flight.done(FlightState::NotStored);
            }
            let entry = CachedResponse {
                headers,
                ..stale.clone()
            };
            return serve(&entry, &self.request, &self.method, unix_now(), status);
        };
        let entry = plan.entry(stale.status, headers, stale.body.clone(), received);
        let now = unix_now();
        let response = serve(&entry, &self.request, &self.method, now, status);
        self.store(cache, plan, entry).await;
        response
    }

    /// Wraps the body so that it is stored when it ends whole within `max_body`; an empty
    /// body is stored at once.
    async fn store_as_it_streams(
        mut self,
        cache: Arc<ResponseCache>,
        response: Response<ResponseBody>,
        headers: HeaderMap,
        plan: Plan,
        received: SystemTime,
    ) -> Response<ResponseBody> {
        let (head, body) = response.into_parts();
        if body.is_end_stream() {
            let entry = plan.entry(head.status, headers, Bytes::new(), received);
            self.store(&cache, plan, entry).await;
            return Response::from_parts(head, body);
        }
        let status = head.status;
        let max = usize::try_from(cache.max_body).unwrap_or(usize::MAX);
        let expected =
            crate::rewrite::content_length(&head.headers).and_then(|n| usize::try_from(n).ok());
        let done: OnBody = Box::new(move |bytes: Bytes| {
            let entry = plan.entry(status, headers, bytes, received);
            Box::pin(async move { self.store(&cache, plan, entry).await })
        });
        let body = Filling {
            inner: body,
            parts: BytesMut::new(),
            max,
            done: Some(done),
            storing: None,
            last: None,
            expected,
        };
        Response::from_parts(head, body.boxed_unsync())
    }

    /// Stores `entry` (and, for a varying response, the field names at the primary key),
    /// then lets the requests waiting for it read it.
    async fn store(&mut self, cache: &ResponseCache, plan: Plan, entry: CachedResponse) {
        let key = match plan.vary {
            Some(names) => {
                // The marker at the key, if it selects by the same fields (its variants stay
                // reachable); else a new one, which orphans the variants of the old. Read
                // again rather than taken from the lookup: an invalidation since must not be
                // undone by putting its marker back.
                let current = match cache.storage.get(&self.key).await {
                    Ok(Some(Stored::Vary(m))) if m.names == names => Some(m),
                    _ => None,
                };
                let marker = current.unwrap_or_else(|| {
                    Arc::new(VaryMarker {
                        names,
                        generation: random_generation(),
                    })
                });
                let vary = Stored::Vary(Arc::clone(&marker));
                let _ = cache
                    .storage
                    .put(&self.key, vary, plan.keep, &cache.account)
                    .await;
                variant_key(&self.key, &marker, &self.request)
            }
            None => self.key.clone(),
        };
        let stored = cache
            .storage
            .put(
                &key,
                Stored::Response(Arc::new(entry)),
                plan.keep,
                &cache.account,
            )
            .await;
        let state = if stored.is_ok() {
            cache.counters.stores.inc();
            FlightState::Stored
        } else {
            FlightState::NotStored
        };
        if let Some(flight) = self.flight.take() {
            flight.done(state);
        }
    }
}

/// What storing a response takes: its freshness, how long storage keeps it, and the field
/// names it varies on.
struct Plan {
    lifetime: u64,
    initial_age: u64,
    revalidate: bool,
    keep: Duration,
    vary: Option<Vec<HeaderName>>,
}

impl Plan {
    fn entry(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        received: SystemTime,
    ) -> CachedResponse {
        CachedResponse {
            status,
            headers,
            body,
            received: received
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            initial_age: self.initial_age,
            lifetime: self.lifetime,
            revalidate: self.revalidate,
        }
    }
}

/// Whether a response may be stored (RFC 9111 §3, as a shared cache, with the route's
/// partition), and how; otherwise the `Cache-Status` detail saying why not.
fn storable(
    cache: &ResponseCache,
    status: StatusCode,
    headers: &HeaderMap,
    request: &HeaderMap,
    received: SystemTime,
) -> Result<Plan, &'static str> {
    if !cc::storable_status(status) {
        return Err("detail=\"status\"");
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err("detail=\"set-cookie\"");
    }
    if headers.contains_key(header::CONTENT_RANGE) {
        return Err("detail=\"partial\"");
    }
    let directives: ResponseDirectives =
        cc::response_directives(headers).map_err(|_| "detail=\"malformed-cache-control\"")?;
    if directives.no_store {
        return Err("detail=\"no-store\"");
    }
    if directives.private {
        return Err("detail=\"private\"");
    }
    if cache.partition == Partition::Shared && !directives.public && directives.s_maxage.is_none() {
        return Err("detail=\"not-public\"");
    }
    let vary = cc::vary_names(headers).map_err(|_| "detail=\"vary\"")?;
    // A cookie is an identity the key does not hold: an answer to a request with one is
    // stored only when the upstream says it is for everyone or varies on it.
    if request.contains_key(header::COOKIE) && !directives.public && !vary.contains(&header::COOKIE)
    {
        return Err("detail=\"cookie\"");
    }
    if crate::rewrite::content_length(headers).is_some_and(|n| n > cache.max_body) {
        return Err("detail=\"too-large\"");
    }
    let lifetime = cc::freshness_lifetime(&directives, headers, received, cache.ttl, cache.max_ttl);
    let initial_age = cc::initial_age(headers, received);
    let validator = cc::has_validator(headers);
    let fresh_left = lifetime.saturating_sub(initial_age);
    if (fresh_left.is_zero() || directives.no_cache) && !validator {
        return Err("detail=\"stale\"");
    }
    // A stale entry is worth keeping only to be revalidated; then for max_ttl more.
    let keep = if validator {
        fresh_left.saturating_add(cache.max_ttl)
    } else {
        fresh_left
    };
    Ok(Plan {
        lifetime: lifetime.as_secs(),
        initial_age: initial_age.as_secs(),
        revalidate: directives.no_cache,
        keep,
        vary: (!vary.is_empty()).then_some(vary),
    })
}

/// Stores the body once it has all come.
type OnBody =
    Box<dyn FnOnce(Bytes) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// A miss's body on its way to the client, copied up to `max` bytes; when it ends whole,
/// the copy is stored before the last frame is passed on (so that the client's next
/// request finds it; and a server that stops reading once the announced length was sent
/// never asks for the end).
struct Filling {
    inner: ResponseBody,
    parts: BytesMut,
    max: usize,
    /// `None` once storing was given up (too large, an error, trailers) or begun.
    done: Option<OnBody>,
    storing: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The last frame, held while its body is stored.
    last: Option<Frame<Bytes>>,
    /// The body's `Content-Length`: once that much is copied, the body is whole (whether
    /// or not the upstream connection has said so yet).
    expected: Option<usize>,
}

impl Filling {
    /// Copies a data frame, or gives storing up when the copy would pass `max` or the
    /// frame is trailers.
    fn copy(&mut self, frame: &Frame<Bytes>) {
        if self.done.is_none() {
            return;
        }
        match frame.data_ref() {
            Some(data) if self.parts.len().saturating_add(data.len()) <= self.max => {
                self.parts.extend_from_slice(data);
            }
            _ => {
                self.done = None;
                self.parts = BytesMut::new();
            }
        }
    }

    /// Starts storing the copy, if it is still wanted.
    fn start_storing(&mut self) {
        if let Some(done) = self.done.take() {
            let body = std::mem::take(&mut self.parts).freeze();
            self.storing = Some(done(body));
        }
    }
}

impl Body for Filling {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(storing) = &mut this.storing {
                if storing.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.storing = None;
                return Poll::Ready(this.last.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    this.copy(&frame);
                    let whole = this.inner.is_end_stream()
                        || this.expected.is_some_and(|n| n == this.parts.len());
                    if this.done.is_none() || !whole {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    this.last = Some(frame);
                    this.start_storing();
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if this.done.is_none() {
                        return Poll::Ready(None);
                    }
                    this.start_storing();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.last.is_none()
            && self.storing.is_none()
            && (self.done.is_none() || self.parts.is_empty())
            && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Upstream requests in flight, by primary key: the requests that miss the same key while
/// one is in flight wait for it.
#[derive(Debug, Default)]
struct Flights {
    by_key: Mutex<HashMap<[u8; 32], Flying>>,
    ids: AtomicU64,
}

/// A flight's id (so that only its own leader ends it), when it started, and how it ended,
/// to wait on.
type Flying = (u64, Instant, watch::Receiver<FlightState>);

/// How a flight ended, as those waiting for it see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlightState {
    Pending,
    Stored,
    NotStored,
}

enum Flight {
    /// No request in flight for the key: this one leads.
    Lead(FlightGuard),
    /// Another leads: wait for it, at most this long.
    Follow(watch::Receiver<FlightState>, Duration),
    /// Another has led for longer than a request waits: go upstream alone.
    TooOld,
}

impl Flights {
    /// Leads the flight for `key`, or follows one younger than `wait` (for what is left
    /// of it); an older one is neither followed nor replaced.
    fn join(self: &Arc<Self>, key: [u8; 32], wait: Duration) -> Flight {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, started, rx)) = map.get(&key) {
            return match wait.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => Flight::Follow(rx.clone(), left),
                _ => Flight::TooOld,
            };
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(FlightState::Pending);
        map.insert(key, (id, Instant::now(), rx));
        Flight::Lead(FlightGuard {
            flights: Arc::clone(self),
            key,
            id,
            tx,
        })
    }
}

/// The leader's hold on its flight: ended with [`FlightGuard::done`], or, when dropped
/// (the client went away, the body failed), as `NotStored`.
struct FlightGuard {
    flights: Arc<Flights>,
    key: [u8; 32],
    id: u64,
    tx: watch::Sender<FlightState>,
}

impl FlightGuard {
    fn done(self, state: FlightState) {
        self.tx.send_replace(state);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        {
            let mut map = self
                .flights
                .by_key
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if map.get(&self.key).is_some_and(|(id, _, _)| *id == self.id) {
                map.remove(&self.key);
            }
        }
        self.tx.send_if_modified(|s| {
            let pending = *s == FlightState::Pending;
            if pending {
                *s = FlightState::NotStored;
            }
            pending
        });
    }
}

#[cfg(test)]
#[path = "response_cache_tests.rs"]
mod tests;
