//! Single use of DPoP proofs at the gateway (RFC 9449 §11.1): a proof's `jti`, under its
//! key's thumbprint, is accepted once within the proof's lifetime.
//!
//! On one node the memory of the node is enough. With several nodes behind a load balancer a
//! proof replayed at another node must be refused too, so with `[redis]` the check is one
//! atomic `SET key 1 NX EX lifetime` in Redis, which every node shares. When Redis does not
//! answer in time the configured [`OnUnavailable`] decides: refuse (the default: a replay
//! accepted is worse than a request refused) or fall back to this node's memory. Several
//! nodes on PostgreSQL without Redis share the store's single-use table instead (one insert
//! per DPoP request; a store that does not answer refuses the request).

use std::collections::HashMap;
use std::sync::Mutex;

use store::redis::{cmd, Redis};

use crate::ratelimit::RedisCounters;

/// Where Redis keys of proofs seen start.
const REDIS_PREFIX: &str = "tokengate:dpop:";

/// Live entries kept at most in memory.
const LOCAL_MAX: usize = 200_000;

/// What the check does when Redis cannot answer (`[redis] dpop_on_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Refuse the request (503) until Redis answers again.
    Deny,
    /// Remember the proof in this node's memory only.
    Local,
}

/// The answer for one proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// Never seen: accepted, and remembered until it expires.
    Fresh,
    /// Seen before (or, in memory, the cache is full of live proofs): refused.
    Replayed,
    /// Redis did not answer and the policy is [`OnUnavailable::Deny`], or the store did
    /// not answer.
    Unavailable,
}

/// Proofs seen, in memory, bounded: expired entries are swept at most once a second, and
/// when the cache is full of live entries a new proof is refused rather than remembered
/// badly (a holder of a bound token flooding proofs only hurts itself and the other DPoP
/// callers of this node, never memory).
#[derive(Debug, Default)]
struct LocalSeen {
    seen: Mutex<(HashMap<String, i64>, i64)>,
}

impl LocalSeen {
    /// Whether `key` is remembered and not yet expired.
    fn seen(&self, key: &str, now: i64) -> bool {
        let guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(key).is_some_and(|exp| *exp > now)
    }

    fn first_use(&self, key: &str, expires_at: i64, now: i64) -> FirstUse {
        let mut guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, last_sweep) = &mut *guard;
        if seen.len() >= LOCAL_MAX && *last_sweep != now {
            seen.retain(|_, exp| *exp > now);
            *last_sweep = now;
        }
        match seen.get(key) {
            Some(exp) if *exp > now => FirstUse::Replayed,
            _ if seen.len() >= LOCAL_MAX => FirstUse::Replayed,
            _ => {
                seen.insert(key.to_owned(), expires_at);
                FirstUse::Fresh
            }
        }
    }
}

/// Where the nodes share the proofs seen.
#[derive(Debug)]
enum Shared {
    /// Redis (`[redis]`).
    Redis {
        redis: Redis,
        on_unavailable: OnUnavailable,
        counters: RedisCounters,
    },
    /// The store's single-use table (PostgreSQL without Redis).
    Store(store::Store),
}

/// The namespace of the gateway's proofs in the store's single-use table.
const STORE_NAMESPACE: &str = "gateway_dpop";

/// The proofs seen: in memory, in Redis with a fallback, or in the store. Kept across
/// reloads, so a reload does not reopen replays.
#[derive(Debug, Default)]
pub struct ReplayCache {
    local: LocalSeen,
    shared: Option<Shared>,
}

impl ReplayCache {
    /// Proofs remembered in this node's memory only (one node).
    pub fn local() -> ReplayCache {
        ReplayCache::default()
    }

    /// Proofs remembered in Redis, shared by every node; `on_unavailable` when Redis does
    /// not answer in time. `counters` count the calls (their down/up state is this check's
    /// own: give it a fresh `down` flag).
    pub fn shared(
        redis: Redis,
        on_unavailable: OnUnavailable,
        counters: RedisCounters,
    ) -> ReplayCache {
        ReplayCache {
            local: LocalSeen::default(),
            shared: Some(Shared::Redis {
                redis,
                on_unavailable,
                counters,
            }),
        }
    }

    /// Proofs remembered in the store's single-use table, which every node on the same
    /// PostgreSQL shares (for several nodes without Redis).
    pub fn in_store(store: store::Store) -> ReplayCache {
        ReplayCache {
            local: LocalSeen::default(),
            shared: Some(Shared::Store(store)),
        }
    }

    /// Whether `key` (the proof's `jkt:jti`) is used for the first time. It is remembered
    /// until `expires_at` (the end of the proof's acceptance window) here, and a `window`
    /// longer where nodes share it: each node accepts the proof while `|now - iat|` is
    /// within the window by its own clock, so a node whose clock is behind must still find
    /// it.
    pub async fn first_use(&self, key: &str, expires_at: i64, window: i64, now: i64) -> FirstUse {
        let shared_until = expires_at.saturating_add(window);
        match &self.shared {
            None => self.local.first_use(key, expires_at, now),
            Some(Shared::Store(store)) => {
                match store.use_jti(STORE_NAMESPACE, key, shared_until).await {
                    Ok(true) => FirstUse::Fresh,
                    Ok(false) => FirstUse::Replayed,
                    Err(_) => FirstUse::Unavailable,
                }
            }
            Some(Shared::Redis {
                redis,
                on_unavailable,
                counters,
            }) => {
                let local = *on_unavailable == OnUnavailable::Local;
                self.in_redis(redis, counters, local, key, (expires_at, shared_until), now)
                    .await
            }
        }
    }

    /// The check in Redis. With the local fallback (`local`), memory keeps every proof too,
    /// so a proof used while Redis answered is still refused here once it does not; `until`
    /// is (the end of the window here, the end of the window where nodes share it).
    async fn in_redis(
        &self,
        redis: &Redis,
        counters: &RedisCounters,
        local: bool,
        key: &str,
        until: (i64, i64),
        now: i64,
    ) -> FirstUse {
        let (expires_at, shared_until) = until;
        if local && self.local.seen(key, now) {
            return FirstUse::Replayed;
        }
        let mut set = cmd("SET");
        set.arg(format!("{REDIS_PREFIX}{key}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(shared_until.saturating_sub(now).max(1));
        let (answer, took) = redis.query::<Option<String>>(&set).await;
        let answer = match counters.observe("dpop replay check", took, answer) {
            Some(Some(_)) => FirstUse::Fresh,
            Some(None) => FirstUse::Replayed,
            None if local => return self.local.first_use(key, expires_at, now),
            None => FirstUse::Unavailable,
        };
        if local && answer == FirstUse::Fresh {
            self.local.first_use(key, expires_at, now);
        }
        answer
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod replay_tests;
