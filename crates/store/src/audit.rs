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

/// Binds an [`AuditEvent`] to the parameters of [`EVENT_INSERT`].
macro_rules! bind_event {
    ($query:expr, $event:expr) => {
        $query
            .bind($event.time)
            .bind(&$event.event)
            .bind($event.client_id.as_deref())
            .bind($event.subject.as_deref())
            .bind($event.jti.as_deref())
            .bind($event.audience.as_deref())
            .bind(&$event.outcome)
            .bind($event.reason.as_deref())
            .bind($event.request_id.as_deref())
    };
}
pub(crate) use bind_event;

pub(crate) const EVENT_INSERT: &str = "INSERT INTO audit_events (time, event, client_id, \
     subject, jti, audience, outcome, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

impl Store {
    /// Appends an event; returns its id.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<i64> {
        let sql = format!("{EVENT_INSERT} RETURNING id");
        let (id,): (i64,) = with_pool!(self, pool => bind_event!(sqlx::query_as(&sql), event)
        .fetch_one(pool)
        .await?);
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
