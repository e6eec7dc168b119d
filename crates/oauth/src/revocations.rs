//! Revoked tokens, in memory, so the gateway's per-request check is a hash lookup rather than
//! a database query. Filled from the store at start, updated at once by revocations made on
//! this node, and refreshed from the store every second for revocations made elsewhere
//! (other nodes, the CLI).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Instant;

use store::Store;

use crate::error::Result;

/// How far back each refresh re-reads, in seconds: PostgreSQL rows can commit out of order
/// (see the store's docs), so a little overlap catches late commits.
const OVERLAP: i64 = 5;

#[derive(Debug, Default)]
struct Inner {
    /// Revoked jti → its token's expiry (after which the entry is useless).
    jtis: HashMap<String, i64>,
    /// Client → time of a bulk revocation: its tokens issued at or before it are revoked.
    clients: HashMap<String, i64>,
    /// Subject → time of a bulk revocation.
    subjects: HashMap<String, i64>,
    /// The newest revocation time read from the store.
    since: i64,
}

/// The revocation list of the built-in issuer.
#[derive(Debug)]
pub struct Revocations {
    inner: RwLock<Inner>,
    /// What `synced_ms` counts from: a monotonic clock, so a wall clock stepped back or
    /// forward neither extends nor cuts the staleness bound.
    base: Instant,
    /// Milliseconds from `base` to the last successful read from the store, plus one (0:
    /// never read).
    synced_ms: AtomicU64,
    /// How long after the last read the list still counts as current, in milliseconds; 0
    /// for always (a node that does not poll the store, e.g. in tests).
    max_staleness_ms: AtomicU64,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            inner: RwLock::default(),
            base: Instant::now(),
            synced_ms: AtomicU64::new(0),
            max_staleness_ms: AtomicU64::new(0),
        }
    }
}

impl Revocations {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a token of ours is revoked: by its jti, or by a bulk revocation of its client
    /// or subject made at or after it was issued.
    pub fn is_revoked(
        &self,
        jti: &str,
        client_id: Option<&str>,
        subject: Option<&str>,
        iat: i64,
    ) -> bool {
        let inner = self.read();
        inner.jtis.contains_key(jti)
            || client_id
                .and_then(|c| inner.clients.get(c))
                .is_some_and(|at| iat <= *at)
            || subject
                .and_then(|s| inner.subjects.get(s))
                .is_some_and(|at| iat <= *at)
    }

    /// From now on, [`Revocations::is_stale`] once the store was not read for `seconds`.
    pub fn set_max_staleness(&self, seconds: u64) {
        self.max_staleness_ms
            .store(seconds.saturating_mul(1000), Ordering::Relaxed);
    }

    /// Whether the list is too old to trust: the last successful read from the store was
    /// more than the maximum staleness ago (the store is unreachable), so a revocation made
    /// since could be missing. The gateway then refuses the tokens this list decides on.
    pub fn is_stale(&self) -> bool {
        let max = self.max_staleness_ms.load(Ordering::Relaxed);
        max > 0 && self.since_sync_ms().is_none_or(|age| age > max)
    }

    /// Milliseconds since the last successful read from the store; `None` before the first.
    fn since_sync_ms(&self) -> Option<u64> {
        let synced = self.synced_ms.load(Ordering::Relaxed).checked_sub(1)?;
        Some(self.elapsed_ms().saturating_sub(synced))
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records one revoked token. Entries only grow: a later, smaller expiry (a message
    /// out of order, or a hostile one) never shortens what is remembered.
    pub fn revoke_jti(&self, jti: &str, expires_at: i64) {
        keep_latest(&mut self.write().jtis, jti, expires_at);
    }

    /// Records a bulk revocation of a client's tokens at `at` (the latest one stands).
    pub fn revoke_client(&self, client_id: &str, at: i64) {
        keep_latest(&mut self.write().clients, client_id, at);
    }

    /// Records a bulk revocation of a subject's tokens at `at` (the latest one stands).
    pub fn revoke_subject(&self, subject: &str, at: i64) {
        keep_latest(&mut self.write().subjects, subject, at);
    }

    /// Reads revocations recorded in the store since the last refresh (all unexpired ones the
    /// first time), and forgets entries whose tokens have expired. `max_lifetime` bounds how
    /// long a bulk entry can matter.
    pub async fn refresh(&self, store: &Store, now: i64, max_lifetime: i64) -> Result<()> {
        let since = {
            let inner = self.read();
            if inner.since == 0 {
                now.saturating_sub(max_lifetime)
            } else {
                inner.since.saturating_sub(OVERLAP)
            }
        };
        self.read_since(store, since, now, max_lifetime).await
    }

    /// Reads every revocation of a token that may still be live, whatever was read before:
    /// what the overlap of [`Revocations::refresh`] cannot catch (a revocation whose commit
    /// came later than the overlap after its time, a node whose clock is off by more) is
    /// caught by this, run now and then and after the node was not listening.
    pub async fn resync(&self, store: &Store, now: i64, max_lifetime: i64) -> Result<()> {
        self.read_since(store, now.saturating_sub(max_lifetime), now, max_lifetime)
            .await
    }

    async fn read_since(
        &self,
        store: &Store,
        since: i64,
        now: i64,
        max_lifetime: i64,
    ) -> Result<()> {
        let rows = store.revoked_since(since, now).await?;
        let mut inner = self.write();
        for row in rows {
            // Not past now: a row stamped by a node whose clock runs ahead must not move
            // the next read's start past revocations still to come.
            inner.since = inner.since.max(row.revoked_at.min(now));
            keep_latest(&mut inner.jtis, &row.jti, row.expires_at);
        }
        if inner.since == 0 {
            inner.since = since.max(1);
        }
        inner.jtis.retain(|_, exp| *exp >= now);
        let horizon = now.saturating_sub(max_lifetime);
        inner.clients.retain(|_, at| *at >= horizon);
        inner.subjects.retain(|_, at| *at >= horizon);
        self.synced_ms
            .fetch_max(self.elapsed_ms().saturating_add(1), Ordering::Relaxed);
        Ok(())
    }
}

/// Records `time` for `key`, unless a later one is recorded: entries only grow.
fn keep_latest(map: &mut HashMap<String, i64>, key: &str, time: i64) {
    match map.get_mut(key) {
        Some(kept) => *kept = (*kept).max(time),
        None => {
            map.insert(key.to_owned(), time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_client_and_subject_rules() {
        let r = Revocations::default();
        r.revoke_jti("a", 100);
        r.revoke_client("c", 50);
        r.revoke_subject("s", 60);
        assert!(r.is_revoked("a", None, None, 0));
        assert!(r.is_revoked("x", Some("c"), None, 50));
        assert!(
            !r.is_revoked("x", Some("c"), None, 51),
            "issued after the bulk revocation"
        );
        assert!(r.is_revoked("x", None, Some("s"), 10));
        assert!(!r.is_revoked("x", Some("d"), Some("t"), 10));
    }

    #[test]
    fn stale_only_with_a_bound_and_past_it() {
        let r = Revocations::default();
        assert!(!r.is_stale(), "no bound: never stale");
        r.set_max_staleness(60);
        assert!(r.is_stale(), "never read: stale");
        r.synced_ms.store(r.elapsed_ms() + 1, Ordering::Relaxed);
        assert!(!r.is_stale());
        r.max_staleness_ms.store(1, Ordering::Relaxed);
        r.synced_ms.store(1, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(r.is_stale(), "read more than the bound ago");
    }

    #[test]
    fn entries_only_grow() {
        let r = Revocations::default();
        r.revoke_jti("a", 100);
        r.revoke_jti("a", 0);
        r.revoke_client("c", 50);
        r.revoke_client("c", 0);
        let inner = r.read();
        assert_eq!(inner.jtis.get("a"), Some(&100));
        assert_eq!(inner.clients.get("c"), Some(&50));
    }
}
