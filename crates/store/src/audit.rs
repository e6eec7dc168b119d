//! The audit trail: one row per token event, in order.

use crate::{with_pool, Result, Store};

/// One audit event. `time`, `event` and `outcome` are required; the rest is what applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened (unix seconds).
    pub time: i64,
    /// What happened, e.g. `token.issued`, `token.revoked`, `client.created`.
    pub event: String,
    /// The client involved.
    pub client_id: Option<String>,
    /// The subject involved.
    pub subject: Option<String>,
    /// The token involved.
    pub jti: Option<String>,
    /// The audience involved.
    pub audience: Option<String>,
    /// How it ended, e.g. `success`, `failure`.
    pub outcome: String,
    /// Why (an error code, for failures).
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
}

/// A stored audit event with its id (ever increasing, never reused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The event's id.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

type AuditRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// `INSERT INTO audit_events … VALUES …` with one row per `&AuditEvent` of `$rows`, for the
/// database of the `with_pool!` arm it is used in: the one place the columns are listed.
macro_rules! insert_events {
    ($rows:expr) => {{
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events (time, event, client_id, subject, jti, audience, \
             outcome, reason, request_id) ",
        );
        q.push_values($rows, |mut row, e| {
            row.push_bind(e.time)
                .push_bind(&e.event)
                .push_bind(e.client_id.as_deref())
                .push_bind(e.subject.as_deref())
                .push_bind(e.jti.as_deref())
                .push_bind(e.audience.as_deref())
                .push_bind(&e.outcome)
                .push_bind(e.reason.as_deref())
                .push_bind(e.request_id.as_deref());
        });
        q
    }};
}
pub(crate) use insert_events;

impl Store {
    /// Appends an event; returns its id.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<i64> {
        let (id,): (i64,) = with_pool!(self, pool => {
            let mut q = insert_events!([event]);
            q.push(" RETURNING id");
            q.build_query_as().fetch_one(pool).await?
        });
        Ok(id)
    }

    /// Up to `limit` events with an id greater than `since_id`, in id order. Start with
    /// `since_id = 0`; continue from the last id returned.
    pub async fn audit_events(&self, since_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, time, event, client_id, subject, jti, audience, outcome, reason, \
             request_id FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(since_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    time,
                    event,
                    client_id,
                    subject,
                    jti,
                    audience,
                    outcome,
                    reason,
                    request_id,
                )| {
                    AuditRecord {
                        id,
                        event: AuditEvent {
                            time,
                            event,
                            client_id,
                            subject,
                            jti,
                            audience,
                            outcome,
                            reason,
                            request_id,
                        },
                    }
                },
            )
            .collect())
    }
}

/// Events written off the request path: a bounded queue to one writer task, so a flood of
/// failing requests cannot become a flood of database writes that slows every request.
/// When the queue is full, events are counted as dropped instead. For denials; events that
/// must not be lost (issuances) are written before the response instead.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    tx: tokio::sync::mpsc::Sender<AuditEvent>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Events waiting to be written, at most.
const AUDIT_QUEUE: usize = 4096;

impl AuditQueue {
    /// Starts the writer task (on the current runtime).
    pub fn spawn(store: Store) -> AuditQueue {
        use std::sync::atomic::Ordering;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AuditEvent>(AUDIT_QUEUE);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let lost = std::sync::Arc::clone(&dropped);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if store.append_audit(&event).await.is_err() {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        AuditQueue { tx, dropped }
    }

    /// Queues an event.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Events lost (queue full or write failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}
