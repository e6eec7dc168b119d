//! The verified-token cache: a token seen before skips signature checks and decryption (an
//! RSA or ECDH operation per request for encrypted tokens). Keyed by the SHA-256 of the token,
//! so the cache holds no tokens; bounded by memory (each entry weighed by its claims, so a
//! flood of large or freshly wrapped tokens cannot grow it past its budget; moka's TinyLFU
//! keeps the entries that are used);
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

/// What an entry is taken to cost besides its claims text: the key, the `Verified` record,
/// the cache's own node, and an internal token minted for it later.
const ENTRY_OVERHEAD: u64 = 1024;

/// An entry's weight in bytes, estimated: its claims text three times (the text, the
/// registered claims read from it, and the full map parsed when claims are forwarded), its
/// scopes, and [`ENTRY_OVERHEAD`].
fn weight(value: &Verified) -> u32 {
    let text = u64::try_from(value.claims.text_len()).unwrap_or(u64::MAX);
    let scopes: usize = value.scopes.iter().map(String::len).sum();
    let bytes = ENTRY_OVERHEAD
        .saturating_add(text.saturating_mul(3))
        .saturating_add(u64::try_from(scopes).unwrap_or(u64::MAX));
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl TokenCache {
    /// A cache of at most `max_bytes` (estimated, [`weight`]), counting hits and misses in
    /// `counters`.
    pub fn new(max_bytes: u64, counters: CacheCounters) -> TokenCache {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_key, value: &Arc<Verified>| weight(value))
                .expire_after(UntilExp)
                .build(),
            counters,
        }
    }

    /// The estimated memory of the entries, in bytes (after moka's pending maintenance).
    pub fn weighed_bytes(&self) -> u64 {
        self.entries.weighted_size()
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn verified(claims_size: usize, exp: i64) -> Arc<Verified> {
        let text = serde_json::json!({"exp": exp, "pad": "x".repeat(claims_size)}).to_string();
        Arc::new(Verified {
            issuer: "i".into(),
            own: false,
            claims: jose::jwt::Claims::parse(text).unwrap(),
            expires_at: exp,
            not_before: None,
            issued_at: 0,
            scopes: vec!["read".into()],
            jkt: None,
            internal: Mutex::new(None),
        })
    }

    /// A flood of large tokens (or one token wrapped in ever new JWEs) stays within the
    /// memory budget (issue #13, finding 9).
    #[test]
    fn the_cache_is_bounded_by_the_weight_of_its_entries() {
        let budget = 1 << 20;
        let cache = TokenCache::new(budget, CacheCounters::default());
        let now = store::unix_now();
        for i in 0u32..2_000 {
            let key = hash(&format!("token {i}"));
            cache.insert(key, verified(4_000, now + 600), now);
        }
        cache.entries.run_pending_tasks();
        assert!(cache.weighed_bytes() <= budget, "{}", cache.weighed_bytes());
        assert!(
            cache.len() < 100,
            "{} entries of ~13 KB in 1 MB",
            cache.len()
        );
        let one = verified(4_000, now + 600);
        let w = u64::from(weight(&one));
        assert!((13_000..14_000).contains(&w), "{w}");
    }
}
