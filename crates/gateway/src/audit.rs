//! Gateway denials into the audit trail, off the request path: events go through a bounded
//! queue to one writer task, so a flood of bad tokens cannot turn into a flood of database
//! writes that slow every request. When the queue is full, events are counted as dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use store::{AuditEvent, Store};
use tokio::sync::mpsc;

/// Events waiting to be written, at most.
const QUEUE: usize = 4096;

/// The sending side.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the writer task.
    pub fn spawn(store: Store) -> AuditSink {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if store.append_audit(&event).await.is_err() {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        AuditSink { tx, dropped }
    }

    /// Queues an event.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events lost (queue full or write failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
