//! Where the response cache keeps its entries: this node's memory (one `moka` cache for
//! every route, bounded by `[server.cache] max_memory`, least recently used first out), or
//! Redis (one cache for every node; each entry with its own expiry in Redis).
//!
//! A key is the SHA-256 of everything that selects a response (`response_cache.rs` makes
//! it): the route, method, scheme and host, upstream path and query, the identity of its
//! partition, and the values of the request fields the response varies on. The identity is never in a key in
//! the clear. A key also carries its route and path, so that a purge can find entries by
//! route and path prefix: in memory by reading the entries, in Redis because the key's
//! text starts with the route and the path, hex-encoded (`tokengate:cache:<route>:<path>:`
//! then the hash; hex keeps a path prefix a key prefix, and holds no glob characters).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use store::redis::{cmd, Redis};

use crate::ratelimit::RedisCounters;
use crate::respond::hex;

/// Where Redis keys of cached responses start.
pub const REDIS_PREFIX: &str = "tokengate:cache:";

/// Keys a purge deletes per Redis call, and asks `SCAN` for at a time.
const PURGE_BATCH: usize = 500;

/// The key of one stored entry.
#[derive(Debug, Clone)]
pub struct EntryKey {
    /// SHA-256 of what selects the response.
    pub digest: [u8; 32],
    /// The route's name.
    pub route: Arc<str>,
    /// The request's path (without the query).
    pub path: Arc<str>,
}

impl EntryKey {
    /// Its Redis key.
    fn redis_key(&self) -> String {
        format!(
            "{REDIS_PREFIX}{}:{}:{}",
            hex(self.route.as_bytes()),
            hex(self.path.as_bytes()),
            hex(&self.digest)
        )
    }
}

/// What is stored under a key: a response, or, under the key of a response that varies,
/// the names of the request fields it varies on (RFC 9111 §4.1), which give the key of
/// the response itself.
#[derive(Debug, Clone)]
pub enum Stored {
    /// A response.
    Response(Arc<CachedResponse>),
    /// The field names the responses at this key vary on.
    Vary(Arc<VaryMarker>),
}

/// What a varying response's key holds: the field names its variants are selected by, and
/// a random generation that is part of every variant's key, so that replacing or deleting
/// the marker (an unsafe request's invalidation, another `Vary`) orphans every variant
/// stored under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryMarker {
    /// Lowercase, sorted.
    pub names: Vec<HeaderName>,
    /// Random, one per marker.
    pub generation: u64,
}

impl Stored {
    /// Bytes it holds, roughly: the body, the fields, and a fixed overhead.
    fn weight(&self) -> u32 {
        let bytes = match self {
            Stored::Response(r) => {
                let fields: usize = r
                    .headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 32)
                    .sum();
                r.body.len() + fields + 256
            }
            Stored::Vary(marker) => {
                marker
                    .names
                    .iter()
                    .map(|n| n.as_str().len() + 32)
                    .sum::<usize>()
                    + 128
            }
        };
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// A stored response.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its fields as the client gets them (hop-by-hop fields already gone).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it was received, or last revalidated (unix seconds).
    pub received: u64,
    /// How old it was then, seconds (RFC 9111 §4.2.3).
    pub initial_age: u64,
    /// How long it is fresh, seconds (RFC 9111 §4.2.1).
    pub lifetime: u64,
    /// `no-cache`: revalidated before every use.
    pub revalidate: bool,
}

impl CachedResponse {
    /// Its age at `now` (unix seconds).
    pub fn age(&self, now: u64) -> u64 {
        self.initial_age
            .saturating_add(now.saturating_sub(self.received))
    }

    /// Seconds of freshness left at `now`; 0 when it must be revalidated first.
    pub fn fresh_for(&self, now: u64) -> u64 {
        if self.revalidate {
            return 0;
        }
        self.lifetime.saturating_sub(self.age(now))
    }
}

/// A route's share of the memory cache: bytes held, and entries evicted for room.
#[derive(Debug, Default)]
pub struct RouteAccount {
    bytes: AtomicI64,
    evictions: Counter,
}

impl RouteAccount {
    /// An account counting evictions on `evictions` (the route's series).
    pub fn new(evictions: Counter) -> RouteAccount {
        RouteAccount {
            bytes: AtomicI64::new(0),
            evictions,
        }
    }

    /// Bytes the route's entries hold in memory now.
    pub fn bytes(&self) -> i64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// An entry in memory: what is stored, until when, and whose it is.
#[derive(Clone)]
struct MemoryEntry {
    stored: Stored,
    path: Arc<str>,
    route: Arc<str>,
    keep_until: Instant,
    account: Arc<RouteAccount>,
}

/// Each entry lives until its `keep_until`, also when it replaces another.
struct UntilKept;

impl moka::Expiry<[u8; 32], MemoryEntry> for UntilKept {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &MemoryEntry,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep_until.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 32],
        value: &MemoryEntry,
        updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_until.saturating_duration_since(updated_at))
    }
}

/// The node's memory cache of responses, every route's together.
pub struct MemoryStore {
    entries: Cache<[u8; 32], MemoryEntry>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("bytes", &self.entries.weighted_size())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A cache of at most `max_bytes` (entries weighed by their body and fields).
    pub fn new(max_bytes: u64) -> MemoryStore {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_k: &[u8; 32], v: &MemoryEntry| v.stored.weight())
            .expire_after(UntilKept)
            .eviction_listener(|_k, v: MemoryEntry, cause| {
                v.account
                    .bytes
                    .fetch_sub(i64::from(v.stored.weight()), Ordering::Relaxed);
                if cause == RemovalCause::Size {
                    v.account.evictions.inc();
                }
            })
            .build();
        MemoryStore { entries }
    }

    fn get(&self, key: &EntryKey) -> Option<Stored> {
        self.entries.get(&key.digest).map(|e| e.stored)
    }

    fn put(&self, key: &EntryKey, stored: Stored, keep: Duration, account: &Arc<RouteAccount>) {
        let Some(keep_until) = Instant::now().checked_add(keep) else {
            return;
        };
        let weight = stored.weight();
        account
            .bytes
            .fetch_add(i64::from(weight), Ordering::Relaxed);
        self.entries.insert(
            key.digest,
            MemoryEntry {
                stored,
                path: Arc::clone(&key.path),
                route: Arc::clone(&key.route),
                keep_until,
                account: Arc::clone(account),
            },
        );
    }

    /// Removes the entries of `route` whose path starts with `path_prefix` (or every
    /// path); how many.
    fn purge(&self, route: &str, path_prefix: Option<&str>) -> u64 {
        let doomed: Vec<Arc<[u8; 32]>> = self
            .entries
            .iter()
            .filter(|(_, e)| *e.route == *route)
            .filter(|(_, e)| path_prefix.is_none_or(|p| e.path.starts_with(p)))
            .map(|(k, _)| k)
            .collect();
        for key in &doomed {
            self.entries.invalidate(&**key);
        }
        u64::try_from(doomed.len()).unwrap_or(u64::MAX)
    }

    /// Finishes pending removals (their accounts then say what is held).
    pub fn settle(&self) {
        self.entries.run_pending_tasks();
    }
}

/// One cache in Redis for every node.
#[derive(Debug, Clone)]
pub struct RedisStore {
    redis: Redis,
    counters: RedisCounters,
}

impl RedisStore {
    /// The store on `redis`, its calls counted on `counters`.
    pub fn new(redis: Redis, counters: RedisCounters) -> RedisStore {
        RedisStore { redis, counters }
    }

    async fn query<T: store::redis::FromRedisValue>(
        &self,
        command: &store::redis::Cmd,
    ) -> Option<T> {
        let (answer, took) = self.redis.query::<T>(command).await;
        self.counters.observe("response cache", took, answer)
    }

    async fn get(&self, key: &EntryKey) -> Result<Option<Stored>, Unavailable> {
        let value: Option<Vec<u8>> = self
            .query(cmd("GET").arg(key.redis_key()))
            .await
            .ok_or(Unavailable)?;
        // An entry that does not decode (another version wrote it) is a miss.
        Ok(value.and_then(|bytes| decode(&bytes)))
    }

    async fn put(
        &self,
        key: &EntryKey,
        stored: &Stored,
        keep: Duration,
    ) -> Result<(), Unavailable> {
        let millis = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let Some(value) = encode(stored) else {
            return Ok(());
        };
        self.query::<()>(
            cmd("SET")
                .arg(key.redis_key())
                .arg(value)
                .arg("PX")
                .arg(millis),
        )
        .await
        .ok_or(Unavailable)
    }

    /// Deletes the keys under `pattern`, `SCAN`ning in batches; how many.
    async fn purge(&self, pattern: &str) -> Result<u64, Unavailable> {
        let mut cursor = 0u64;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .query(
                    cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(PURGE_BATCH),
                )
                .await
                .ok_or(Unavailable)?;
            if !keys.is_empty() {
                let gone: u64 = self
                    .query(cmd("UNLINK").arg(&keys))
                    .await
                    .ok_or(Unavailable)?;
                deleted = deleted.saturating_add(gone);
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// Redis did not answer in time: a lookup is a miss, a store is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A route's storage.
#[derive(Debug, Clone)]
pub enum Storage {
    /// This node's memory.
    Memory(Arc<MemoryStore>),
    /// Redis, shared by the nodes.
    Redis(RedisStore),
}

impl Storage {
    /// What is stored under `key`.
    pub async fn get(&self, key: &EntryKey) -> Result<Option<Stored>, Unavailable> {
        match self {
            Storage::Memory(m) => Ok(m.get(key)),
            Storage::Redis(r) => r.get(key).await,
        }
    }

    /// Stores `stored` under `key` for `keep`.
    pub async fn put(
        &self,
        key: &EntryKey,
        stored: Stored,
        keep: Duration,
        account: &Arc<RouteAccount>,
    ) -> Result<(), Unavailable> {
        match self {
            Storage::Memory(m) => {
                m.put(key, stored, keep, account);
                Ok(())
            }
            Storage::Redis(r) => r.put(key, &stored, keep).await,
        }
    }

    /// Removes what is stored under `key`.
    pub async fn delete(&self, key: &EntryKey) -> Result<(), Unavailable> {
        match self {
            Storage::Memory(m) => {
                m.entries.invalidate(&key.digest);
                Ok(())
            }
            Storage::Redis(r) => r
                .query::<u64>(cmd("UNLINK").arg(key.redis_key()))
                .await
                .map(|_| ())
                .ok_or(Unavailable),
        }
    }

    /// Removes the entries of `route` whose path starts with `path_prefix` (every path when
    /// `None`); how many keys went (in Redis, a varying response's field list counts too).
    pub async fn purge(&self, route: &str, path_prefix: Option<&str>) -> Result<u64, Unavailable> {
        match self {
            Storage::Memory(m) => Ok(m.purge(route, path_prefix)),
            Storage::Redis(r) => {
                let pattern = format!(
                    "{REDIS_PREFIX}{}:{}*",
                    hex(route.as_bytes()),
                    hex(path_prefix.unwrap_or_default().as_bytes())
                );
                r.purge(&pattern).await
            }
        }
    }
}

/// Marks the encoding of an entry in Redis, so that a later change of it reads old entries
/// as misses instead of misreading them.
const MAGIC: &[u8; 4] = b"TGC1";

/// An entry's description in Redis (its body follows it, as is).
#[derive(Serialize, Deserialize)]
struct Meta {
    /// Field names a varying response's key is made with; `None` for a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    vary: Option<Vec<String>>,
    /// The varying response's generation.
    #[serde(default)]
    generation: u64,
    #[serde(default)]
    status: u16,
    /// Fields as (name, base64 of the value): values may hold any byte but controls.
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    received: u64,
    #[serde(default)]
    initial_age: u64,
    #[serde(default)]
    lifetime: u64,
    #[serde(default)]
    revalidate: bool,
}

/// `MAGIC`, the description's length (4 bytes, big-endian), the description (JSON), the body.
fn encode(stored: &Stored) -> Option<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (meta, body) = match stored {
        Stored::Vary(marker) => (
            Meta {
                vary: Some(marker.names.iter().map(|n| n.as_str().to_owned()).collect()),
                generation: marker.generation,
                status: 0,
                headers: Vec::new(),
                received: 0,
                initial_age: 0,
                lifetime: 0,
                revalidate: false,
            },
            Bytes::new(),
        ),
        Stored::Response(r) => (
            Meta {
                vary: None,
                generation: 0,
                status: r.status.as_u16(),
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), b64.encode(v.as_bytes())))
                    .collect(),
                received: r.received,
                initial_age: r.initial_age,
                lifetime: r.lifetime,
                revalidate: r.revalidate,
            },
            r.body.clone(),
        ),
    };
    let meta = serde_json::to_vec(&meta).ok()?;
    let len = u32::try_from(meta.len()).ok()?;
    let mut out = Vec::with_capacity(8 + meta.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&body);
    Some(out)
}

/// The entry `encode` wrote; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<Stored> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (meta, body) = (rest.get(..len)?, rest.get(len..)?);
    let meta: Meta = serde_json::from_slice(meta).ok()?;
    if let Some(names) = meta.vary {
        let names: Option<Vec<HeaderName>> = names
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        return Some(Stored::Vary(Arc::new(VaryMarker {
            names: names?,
            generation: meta.generation,
        })));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut headers = HeaderMap::with_capacity(meta.headers.len());
    for (name, value) in &meta.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(&b64.decode(value).ok()?).ok()?;
        headers.append(name, value);
    }
    Some(Stored::Response(Arc::new(CachedResponse {
        status: StatusCode::from_u16(meta.status).ok()?,
        headers,
        body: Bytes::copy_from_slice(body),
        received: meta.received,
        initial_age: meta.initial_age,
        lifetime: meta.lifetime,
        revalidate: meta.revalidate,
    })))
}

#[cfg(test)]
#[path = "cache_storage_tests.rs"]
mod tests;
