//! Revoked tokens, in memory, so the gateway's per-request check is a hash lookup rather than
//! a database query. Filled from the store at start, updated at once by revocations made on
//! this node, and refreshed from the store every second for revocations made elsewhere
//! (other nodes, the CLI).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

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
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
    /// When revocations were last read from the store (unix seconds).
    synced_at: AtomicI64,
    /// How long after `synced_at` the list still counts as current; 0 for always (a node
    /// that does not poll the store, e.g. in tests).
    max_staleness: AtomicI64,
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
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        self.max_staleness.store(seconds, Ordering::Relaxed);
    }

    /// Whether the list is too old to trust: the last successful read from the store was
    /// more than the maximum staleness ago (the store is unreachable), so a revocation made
    /// since could be missing. The gateway then refuses the tokens this list decides on.
    pub fn is_stale(&self, now: i64) -> bool {
        let max = self.max_staleness.load(Ordering::Relaxed);
        max > 0 && now.saturating_sub(self.synced_at.load(Ordering::Relaxed)) > max
    }

    /// Records one revoked token.
    pub fn revoke_jti(&self, jti: &str, expires_at: i64) {
        self.write().jtis.insert(jti.to_owned(), expires_at);
    }

    /// Records a bulk revocation of a client's tokens at `at`.
    pub fn revoke_client(&self, client_id: &str, at: i64) {
        self.write().clients.insert(client_id.to_owned(), at);
    }

    /// Records a bulk revocation of a subject's tokens at `at`.
    pub fn revoke_subject(&self, subject: &str, at: i64) {
        self.write().subjects.insert(subject.to_owned(), at);
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
        let rows = store.revoked_since(since).await?;
        let mut inner = self.write();
        for row in rows {
            inner.since = inner.since.max(row.revoked_at);
            inner.jtis.insert(row.jti, row.expires_at);
        }
        if inner.since == 0 {
            inner.since = since.max(1);
        }
        inner.jtis.retain(|_, exp| *exp >= now);
        let horizon = now.saturating_sub(max_lifetime);
        inner.clients.retain(|_, at| *at >= horizon);
        inner.subjects.retain(|_, at| *at >= horizon);
        self.synced_at.fetch_max(now, Ordering::Relaxed);
        Ok(())
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
        assert!(!r.is_stale(1_000_000), "no bound: never stale");
        r.synced_at.store(100, Ordering::Relaxed);
        r.set_max_staleness(60);
        assert!(!r.is_stale(160));
        assert!(r.is_stale(161));
    }
}
