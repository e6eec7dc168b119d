//! Registered clients as client authentication reads them: from the store, kept in memory for
//! a second. Under load that saves a database round trip per request; changes made on this
//! node (disable, delete, new secret) take effect at once, changes made on another node
//! within a second, like revocations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store::{Client, Store};

/// How long a client read from the store is trusted.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries kept at most; beyond it the cache is emptied (a flood of unknown ids).
const MAX_ENTRIES: usize = 10_000;

/// The cache. Unknown ids are cached too, so guessing ids costs no database reads.
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    entries: Mutex<HashMap<String, (Option<Client>, Instant)>>,
    /// One more at every forget: a read that began before a change must not put back what
    /// it read after the change was forgotten.
    generation: std::sync::atomic::AtomicU64,
}

impl ClientCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Client>, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The client, from memory when read less than a second ago.
    pub(crate) async fn get(
        &self,
        store: &Store,
        client_id: &str,
    ) -> store::Result<Option<Client>> {
        if let Some((client, at)) = self.lock().get(client_id) {
            if at.elapsed() < FRESH_FOR {
                return Ok(client.clone());
            }
        }
        let (generation, read_at) = (self.generation(), Instant::now());
        let client = store.client(client_id).await?;
        let mut entries = self.lock();
        if self.generation() != generation {
            // Something was forgotten while this read ran: it may be stale already.
            return Ok(client);
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        // Fresh from when the read began, not from when it ended.
        entries.insert(client_id.to_owned(), (client.clone(), read_at));
        Ok(client)
    }

    /// Forgets a client changed on this node (or, as another node said, on that one).
    pub(crate) fn forget(&self, client_id: &str) {
        let mut entries = self.lock();
        self.changed();
        entries.remove(client_id);
    }

    /// Forgets every client: changes may have been missed.
    pub(crate) fn forget_all(&self) {
        let mut entries = self.lock();
        self.changed();
        entries.clear();
    }
}
