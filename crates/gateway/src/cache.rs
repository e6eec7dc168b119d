//! The verified-token cache: a token seen before skips signature checks and decryption (an
//! RSA or ECDH operation per request for encrypted tokens). Keyed by the SHA-256 of the token,
//! so the cache holds no tokens; bounded; an entry never outlives its token; revocation is
//! checked on every hit, and a revoked entry is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;

use crate::auth::Verified;

/// The cache key: SHA-256 of the token.
pub type TokenHash = [u8; 32];

/// The SHA-256 of a token.
pub fn hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Shards cut lock contention between cores.
const SHARDS: usize = 16;

/// A bounded map from token hash to verified token.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<TokenHash, Arc<Verified>>>>,
    per_shard: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// A cache of at most about `capacity` entries.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(
        &self,
        key: &TokenHash,
    ) -> Option<std::sync::MutexGuard<'_, HashMap<TokenHash, Arc<Verified>>>> {
        let i = usize::from(key[0]) % SHARDS;
        self.shards
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The entry for a token, if cached and not expired at `now`.
    pub fn get(&self, key: &TokenHash, now: i64) -> Option<Arc<Verified>> {
        let mut shard = self.shard(key)?;
        let found = match shard.get(key) {
            Some(v) if v.expires_at > now => Some(Arc::clone(v)),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        };
        drop(shard);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an entry; when the shard is full, expired entries go first, then arbitrary ones.
    pub fn insert(&self, key: TokenHash, value: Arc<Verified>, now: i64) {
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, v| v.expires_at > now);
        }
        if shard.len() >= self.per_shard {
            let victims: Vec<TokenHash> =
                shard.keys().take(self.per_shard / 8 + 1).copied().collect();
            for k in victims {
                shard.remove(&k);
            }
        }
        shard.insert(key, value);
    }

    /// Drops an entry (a revoked token).
    pub fn remove(&self, key: &TokenHash) {
        if let Some(mut shard) = self.shard(key) {
            shard.remove(key);
        }
    }

    /// (hits, misses) so far.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
