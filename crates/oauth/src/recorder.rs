//! Group commit of issuances: every token the service hands out is recorded (its jti, for
//! introspection and revocation) and audited, durably, before the response is sent. Done one
//! by one, that is two durable commits per token; here concurrent issuances queue up for one
//! writer, which takes whatever is waiting and commits it in a single transaction. An idle
//! writer commits a lone issuance at once, so this adds no latency, only throughput.
//!
//! The writer keeps one connection while issuances keep coming (a warm SQLite page cache; see
//! [`store::Writer`]) and gives it back to the pool after a second without any, or after an
//! error.

use std::time::Duration;

use store::{AuditEvent, IssuedToken, PreparedEvent, Store, Writer};
use tokio::sync::{mpsc, oneshot};

/// Issuances taken into one transaction, at most.
const MAX_BATCH: usize = 256;
/// Times the writer lets other tasks run to gather more issuances before committing.
const MAX_YIELDS: usize = 8;
/// An idle writer returns its connection to the pool after this long.
const KEEP_CONNECTION: Duration = Duration::from_secs(1);

/// Why a batch failed, as the waiting requests need it.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    /// The database was unreachable (503 rather than 500).
    pub unavailable: bool,
    /// The store's error code.
    pub code: &'static str,
}

type Job = (
    IssuedToken,
    PreparedEvent,
    oneshot::Sender<Result<(), Failed>>,
);

/// The queue to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the writer task (on the current runtime).
    pub(crate) fn spawn(store: Store) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut writer: Option<Writer> = None;
            loop {
                let first = if writer.is_some() {
                    match tokio::time::timeout(KEEP_CONNECTION, rx.recv()).await {
                        Ok(job) => job,
                        Err(_idle) => {
                            writer = None;
                            continue;
                        }
                    }
                } else {
                    rx.recv().await
                };
                let Some(first) = first else { break };
                let mut batch = Vec::with_capacity(rx.len().min(MAX_BATCH) + 1);
                let mut replies = Vec::with_capacity(batch.capacity());
                let mut next = Some(first);
                let mut yields = 0;
                loop {
                    while let Some((token, event, reply)) = next.take() {
                        batch.push((token, event));
                        replies.push(reply);
                        if batch.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    // Requests answered by the last commit are often a moment away from
                    // queueing again; letting the tasks that are ready run first gathers them
                    // into this commit instead of a string of small ones. Stops as soon as a
                    // round brings nothing, so a lone issuance is not held back.
                    if batch.len() >= MAX_BATCH || yields == MAX_YIELDS {
                        break;
                    }
                    tokio::task::yield_now().await;
                    yields += 1;
                    next = rx.try_recv().ok();
                    if next.is_none() {
                        break;
                    }
                }
                let outcome = record(&store, &mut writer, &batch).await.map_err(|e| {
                    // The connection may be broken, or inside a transaction being rolled
                    // back: the pool deals with it, and the next batch takes another.
                    writer = None;
                    Failed {
                        unavailable: e.is_unavailable(),
                        code: e.code(),
                    }
                });
                for reply in replies {
                    let _ = reply.send(outcome.clone());
                }
            }
        });
        Recorder { tx }
    }

    /// Records one issuance; returns once it is committed (or failed). The event is
    /// prepared here, in the caller's task, so the writer only numbers and hashes it.
    pub(crate) async fn record(&self, token: IssuedToken, event: AuditEvent) -> Result<(), Failed> {
        let event = event.prepare().map_err(|e| Failed {
            unavailable: false,
            code: e.code(),
        })?;
        let (reply, done) = oneshot::channel();
        let stopped = Failed {
            unavailable: true,
            code: "ERR_OAUTH_RECORDER_STOPPED",
        };
        self.tx
            .send((token, event, reply))
            .await
            .map_err(|_| stopped.clone())?;
        done.await.unwrap_or(Err(stopped))
    }
}

/// Records a batch on the writer's connection, taking one from the pool first if needed.
async fn record(
    store: &Store,
    writer: &mut Option<Writer>,
    batch: &[(IssuedToken, PreparedEvent)],
) -> store::Result<()> {
    let w = match writer {
        Some(w) => w,
        None => writer.insert(store.writer().await?),
    };
    w.record_issued(batch).await
}
