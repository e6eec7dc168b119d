//! The verified-token cache: a token seen before skips signature checks and decryption (an
//! RSA or ECDH operation per request for encrypted tokens). Keyed by the SHA-256 of the token,
//! so the cache holds no tokens; bounded (moka's TinyLFU keeps the entries that are used);
//! an entry never outlives its token; revocation is checked on every hit, and a revoked
//! entry is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::sync::Cache;

use crate::auth::Verified;
use crate::metrics::CacheCounters;

/// The cache key: SHA-256 of the token.
pub type TokenHash = [u8; 32];

/// The SHA-256 of a token.
pub fn hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Each entry lives until its token's `exp` (unix seconds, read when it is stored).
struct UntilExp;

impl moka::Expiry<TokenHash, Arc<Verified>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.expires_at.saturating_sub(store::unix_now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

/// A bounded map from token hash to verified token.
pub struct TokenCache {
    entries: Cache<TokenHash, Arc<Verified>>,
    /// Kept in the metrics registry, so the count goes on across the caches of reloads.
    counters: CacheCounters,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` entries, counting hits and misses in `counters`.
    pub fn new(capacity: usize, counters: CacheCounters) -> TokenCache {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .expire_after(UntilExp)
                .build(),
            counters,
        }
    }

    /// The entry for a token, if cached and not expired at `now` (the expiry above works in
    /// whole seconds from the time of storing; this is the exact check).
    pub fn get(&self, key: &TokenHash, now: i64) -> Option<Arc<Verified>> {
        let found = self.entries.get(key).filter(|v| v.expires_at > now);
        if found.is_some() {
            self.counters.hit();
        } else {
            self.counters.miss();
        }
        found
    }

    /// Stores an entry (one already expired at `now` is not stored).
    pub fn insert(&self, key: TokenHash, value: Arc<Verified>, now: i64) {
        if value.expires_at > now {
            self.entries.insert(key, value);
        }
    }

    /// Drops an entry (a revoked token).
    pub fn remove(&self, key: &TokenHash) {
        self.entries.invalidate(key);
    }

    /// (hits, misses) so far, of this cache and those it replaced on reloads.
    pub fn counters(&self) -> (u64, u64) {
        self.counters.values()
    }

    /// Number of entries (approximate: moka counts after its pending maintenance).
    pub fn len(&self) -> usize {
        usize::try_from(self.entries.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
