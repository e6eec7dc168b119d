//! The audit trail: one row per token event, in order.

use serde_json::{Map, Value};

use crate::{with_pool, Result, Store, StoreError};

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
    /// Anything else the event names (the admin credential, a source address, a count…),
    /// as JSON members of its own. Never a secret or a whole token.
    pub detail: Option<Map<String, Value>>,
}

impl AuditEvent {
    /// The event as the log's leaf holds it: a JSON object with its sequence number and
    /// every field that is set (`detail` as an object), whose RFC 8785 form is hashed.
    pub fn to_json(&self, seq: u64) -> Value {
        let mut map = self.members();
        map.insert("seq".into(), seq.into());
        Value::Object(map)
    }

    /// Every member of [`AuditEvent::to_json`] but `seq`.
    fn members(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("time".into(), self.time.into());
        map.insert("event".into(), self.event.clone().into());
        map.insert("outcome".into(), self.outcome.clone().into());
        for (name, value) in [
            ("client_id", &self.client_id),
            ("subject", &self.subject),
            ("jti", &self.jti),
            ("audience", &self.audience),
            ("reason", &self.reason),
            ("request_id", &self.request_id),
        ] {
            if let Some(value) = value {
                map.insert(name.into(), value.clone().into());
            }
        }
        if let Some(detail) = &self.detail {
            map.insert("detail".into(), Value::Object(detail.clone()));
        }
        map
    }

    /// What the writer needs of the event, worked out beforehand: its canonical form cut
    /// where the sequence number goes and its detail as stored. The issuance path prepares
    /// each event in its request's task, so the one writer that every issuance waits for
    /// only numbers and hashes.
    pub fn prepare(self) -> Result<PreparedEvent> {
        let unnumbered = audit::event::Unnumbered::new(self.members())
            .map_err(|_| StoreError::Invalid("an audit event has no canonical form"))?;
        let detail = self
            .detail
            .as_ref()
            .map(|d| Value::Object(d.clone()).to_string());
        Ok(PreparedEvent {
            event: self,
            unnumbered,
            detail,
        })
    }
}

/// An [`AuditEvent`] ready to be numbered and written ([`AuditEvent::prepare`]).
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    // Read by the insert macros only, never changed: the hash is of these.
    pub(crate) event: AuditEvent,
    unnumbered: audit::event::Unnumbered,
    pub(crate) detail: Option<String>,
}

/// A stored audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The row's id (ever increasing, never reused; not the sequence number).
    pub id: i64,
    /// The event's place in the log: 0, 1, 2, … with no gaps. `None` only for a row that
    /// tokengate did not write (`audit verify` reports it).
    pub seq: Option<i64>,
    /// The event's leaf hash as written (standard base64).
    pub hash: Option<String>,
    /// The event.
    pub event: AuditEvent,
}

impl AuditRecord {
    /// [`AuditEvent::to_json`] at the record's sequence number (`None` without one).
    pub fn to_json(&self) -> Option<Value> {
        Some(self.event.to_json(u64::try_from(self.seq?).ok()?))
    }
}

/// A signed checkpoint of the log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it signs.
    pub size: i64,
    /// The tree's root (standard base64).
    pub root: String,
    /// The signed note (C2SP `tlog-checkpoint` in a `signed-note`).
    pub note: String,
    /// When it was made (unix seconds).
    pub created_at: i64,
    /// For a checkpoint of a pruned part: the size of the later checkpoint that
    /// `consistency` leads to.
    pub anchor: Option<i64>,
    /// For a checkpoint of a pruned part: the RFC 9162 consistency proof from its tree to
    /// the anchor's (a JSON array of base64 hashes).
    pub consistency: Option<String>,
}

/// What `tokengate audit prune` left of the log's beginning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunedPrefix {
    /// How many events (sequence numbers 0 to `size - 1`) were removed.
    pub size: i64,
    /// The frontier of their tree: base64 hashes, largest subtree first.
    pub frontier: Vec<String>,
}

impl PrunedPrefix {
    /// The frontier decoded; `None` when an entry is not a base64 SHA-256 hash.
    pub fn hashes(&self) -> Option<Vec<audit::tree::Hash>> {
        self.frontier
            .iter()
            .map(|h| audit::event::decode_hash(h))
            .collect()
    }
}

impl StoredCheckpoint {
    /// For a checkpoint of a pruned part, its anchor and consistency proof, decoded
    /// (`Ok(None)` for the others); [`StoreError::Corrupt`] when the stored proof is not a
    /// list of hashes.
    pub fn pruned_proof(&self) -> Result<Option<(u64, Vec<audit::tree::Hash>)>> {
        let (Some(anchor), Some(proof)) = (self.anchor, &self.consistency) else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt("a checkpoint's proof is not a list of hashes", None);
        let proof: Value = serde_json::from_str(proof).map_err(|_| corrupt())?;
        let proof = audit::export::hashes(Some(&proof)).ok_or_else(corrupt)?;
        Ok(Some((u64::try_from(anchor).unwrap_or(0), proof)))
    }
}

/// A checkpoint of the part being pruned, with its proof to the anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointProof {
    /// The checkpoint's size.
    pub size: i64,
    /// The later checkpoint's size the proof leads to.
    pub anchor: i64,
    /// The proof, a JSON array of base64 hashes.
    pub consistency: String,
}

type AuditRow = (
    i64,
    Option<i64>,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

const AUDIT_COLUMNS: &str = "id, seq, hash, time, event, client_id, subject, jti, audience, \
                             outcome, reason, request_id, detail";

fn record_of(row: AuditRow) -> Result<AuditRecord> {
    let (
        id,
        seq,
        hash,
        time,
        event,
        client_id,
        subject,
        jti,
        audience,
        outcome,
        reason,
        request_id,
        detail,
    ) = row;
    let detail = match detail {
        None => None,
        Some(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                return Err(StoreError::Corrupt(
                    "an audit event's detail is not a JSON object",
                    None,
                ))
            }
        },
    };
    Ok(AuditRecord {
        id,
        seq,
        hash,
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
            detail,
        },
    })
}

/// An event ready to insert: its sequence number and leaf hash.
pub(crate) struct Sequenced<'a> {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) prepared: &'a PreparedEvent,
}

/// Numbers `events` from `first` and hashes each as the log's leaf.
pub(crate) fn sequenced<'a>(
    first: i64,
    events: &[&'a PreparedEvent],
) -> Result<Vec<Sequenced<'a>>> {
    let mut out = Vec::with_capacity(events.len());
    for (seq, prepared) in (first..).zip(events) {
        let number =
            u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative audit sequence", None))?;
        out.push(Sequenced {
            seq,
            hash: audit::event::encode_hash(
                &prepared
                    .unnumbered
                    .leaf(number)
                    .map_err(|_| StoreError::Invalid("an audit event has no canonical form"))?,
            ),
            prepared,
        });
    }
    Ok(out)
}

/// `INSERT INTO audit_events … VALUES …` with one row per [`Sequenced`] of `$rows`, for the
/// database of the `with_pool!` arm it is used in: the one place the columns are listed.
macro_rules! insert_events {
    ($rows:expr) => {{
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events (seq, hash, time, event, client_id, subject, jti, \
             audience, outcome, reason, request_id, detail) ",
        );
        q.push_values($rows, |mut row, s| {
            let e = &s.prepared.event;
            row.push_bind(s.seq)
                .push_bind(s.hash.as_str())
                .push_bind(e.time)
                .push_bind(&e.event)
                .push_bind(e.client_id.as_deref())
                .push_bind(e.subject.as_deref())
                .push_bind(e.jti.as_deref())
                .push_bind(e.audience.as_deref())
                .push_bind(&e.outcome)
                .push_bind(e.reason.as_deref())
                .push_bind(e.request_id.as_deref())
                .push_bind(s.prepared.detail.as_deref());
        });
        q
    }};
}

/// Appends `$events` (`&[&PreparedEvent]`) in the open transaction `$tx`: takes as many sequence
/// numbers from `audit_head` (whose row lock holds other writers until this transaction
/// ends, so sequence numbers commit in order and a rollback leaves no gap), then inserts the
/// events numbered and hashed. Evaluates to the first sequence number.
macro_rules! append_events {
    ($tx:expr, $events:expr) => {{
        let events: &[&$crate::PreparedEvent] = $events;
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let (next,): (i64,) =
            sqlx::query_as("UPDATE audit_head SET next = next + $1 WHERE id = 1 RETURNING next")
                .bind(n)
                .fetch_one(&mut *$tx)
                .await?;
        $crate::audit::insert_sequenced!($tx, next - n, events);
        next - n
    }};
}

/// Inserts `$events` (`&[&PreparedEvent]`) numbered from `$first`, whose sequence numbers the
/// open transaction `$tx` took from `audit_head`.
macro_rules! insert_sequenced {
    ($tx:expr, $first:expr, $events:expr) => {{
        let rows = $crate::audit::sequenced($first, $events)?;
        for chunk in rows.chunks($crate::audit::MAX_EVENT_ROWS) {
            $crate::audit::insert_events!(chunk)
                .build()
                .persistent(false)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_events;
pub(crate) use insert_sequenced;

/// Rows per multi-row insert of events: 12 parameters each stays well under SQLite's 32766
/// and PostgreSQL's 65535 bound parameters per statement.
pub(crate) const MAX_EVENT_ROWS: usize = 1024;

impl Store {
    /// Appends an event; returns its sequence number.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<i64> {
        let prepared = event.clone().prepare()?;
        let seq = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let seq = append_events!(tx, &[&prepared]);
            tx.commit().await?;
            seq
        });
        Ok(seq)
    }

    /// Appends events in one transaction, numbered in order.
    pub async fn append_audits(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let prepared = events
            .iter()
            .map(|e| e.clone().prepare())
            .collect::<Result<Vec<_>>>()?;
        let events: Vec<&PreparedEvent> = prepared.iter().collect();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let _first = append_events!(tx, &events);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` events with an id greater than `since_id`, in id order. Start with
    /// `since_id = 0`; continue from the last id returned.
    pub async fn audit_events(&self, since_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(since_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(record_of).collect()
    }

    /// Up to `limit` events with a sequence number of at least `from`, in sequence order:
    /// the log as `audit verify` and the checkpointer read it.
    pub async fn audit_log(&self, from: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(record_of).collect()
    }

    /// Up to `limit` `(seq, hash)` pairs from sequence number `from` on, in order: what a
    /// node's tree needs, without the events' fields.
    pub async fn audit_hashes(&self, from: i64, limit: u32) -> Result<Vec<(i64, Option<String>)>> {
        let rows: Vec<(i64, Option<String>)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT seq, hash FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// The rows of the audit table below sequence number `bound` (or without one), and those
    /// from it on: a verifier reads a log up to the head it saw while the node appends.
    pub async fn audit_rows_split(&self, bound: i64) -> Result<(i64, i64)> {
        let (below, beyond): (i64, i64) = with_pool!(self, pool => sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN seq IS NULL OR seq < $1 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN seq >= $1 THEN 1 ELSE 0 END), 0) FROM audit_events",
        )
        .bind(bound)
        .fetch_one(pool)
        .await?);
        Ok((below, beyond))
    }

    /// Rows without a sequence number: none that tokengate wrote since the log began.
    pub async fn audit_unsequenced(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(record_of).collect()
    }

    /// The number of events sequenced so far (the next sequence number).
    pub async fn audit_length(&self) -> Result<i64> {
        let (next,): (i64,) = with_pool!(self, pool => sqlx::query_as(
            "SELECT next FROM audit_head WHERE id = 1",
        )
        .fetch_one(pool)
        .await?);
        Ok(next)
    }

    /// The log's name: the one stored, or `proposed` when none is (the first node to start
    /// names the log, and the name stays when the issuer changes).
    pub async fn audit_origin(&self, proposed: &str) -> Result<String> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE audit_head SET origin = $1 WHERE id = 1 AND origin IS NULL",
        )
        .bind(proposed)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.stored_audit_origin()
            .await?
            .ok_or(StoreError::Corrupt("the audit log has no origin", None))
    }

    /// The log's name, if a node has named it.
    pub async fn stored_audit_origin(&self) -> Result<Option<String>> {
        let row: (Option<String>,) = with_pool!(self, pool => sqlx::query_as(
            "SELECT origin FROM audit_head WHERE id = 1",
        )
        .fetch_one(pool)
        .await?);
        Ok(row.0)
    }

    /// Stores a checkpoint; `false` if one of that size was stored before (by another node:
    /// the tree is the same everywhere, so is its root).
    pub async fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<bool> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(checkpoint.size)
        .bind(&checkpoint.root)
        .bind(&checkpoint.note)
        .bind(checkpoint.created_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// Up to `limit` checkpoints of a size greater than `after`, smallest first.
    pub async fn checkpoints(&self, after: i64, limit: u32) -> Result<Vec<StoredCheckpoint>> {
        let rows: Vec<CheckpointRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT size, root, note, created_at, anchor, consistency FROM audit_checkpoints \
             WHERE size > $1 ORDER BY size LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(checkpoint_of).collect())
    }

    /// The checkpoint of the largest tree, if any.
    pub async fn newest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        let row: Option<CheckpointRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT size, root, note, created_at, anchor, consistency FROM audit_checkpoints \
             ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?);
        Ok(row.map(checkpoint_of))
    }

    /// What pruning left of the log's beginning (size 0 when it was never pruned).
    pub async fn audit_pruned(&self) -> Result<PrunedPrefix> {
        let (size, frontier): (i64, Option<String>) = with_pool!(self, pool => sqlx::query_as(
            "SELECT pruned, frontier FROM audit_head WHERE id = 1",
        )
        .fetch_one(pool)
        .await?);
        let frontier = match frontier {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|_| {
                StoreError::Corrupt("the audit log's frontier is not a JSON list", None)
            })?,
        };
        Ok(PrunedPrefix { size, frontier })
    }

    /// Removes the events before `prefix.size` and records the frontier that stands for
    /// them and each older checkpoint's proof to a later one, in one transaction. Refused
    /// ([`StoreError::Conflict`]) unless it prunes further than before. Returns the number of
    /// events removed.
    pub async fn prune_audit(
        &self,
        prefix: &PrunedPrefix,
        proofs: &[CheckpointProof],
    ) -> Result<u64> {
        let frontier = Value::from(prefix.frontier.clone()).to_string();
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The head's row last: every audit write of every node waits on it, so it is not
            // held while the rows are deleted.
            let removed = sqlx::query("DELETE FROM audit_events WHERE seq < $1")
                .bind(prefix.size)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for proof in proofs {
                sqlx::query(
                    "UPDATE audit_checkpoints SET anchor = $1, consistency = $2 WHERE size = $3",
                )
                .bind(proof.anchor)
                .bind(&proof.consistency)
                .bind(proof.size)
                .execute(&mut *tx)
                .await?;
            }
            let moved = sqlx::query(
                "UPDATE audit_head SET pruned = $1, frontier = $2 WHERE id = 1 AND pruned < $1",
            )
            .bind(prefix.size)
            .bind(&frontier)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved != 1 {
                return Err(StoreError::Conflict("the audit log is pruned that far already"));
            }
            tx.commit().await?;
            removed
        });
        Ok(removed)
    }

    /// Gives the events recorded before the log existed (this version's migration) their
    /// sequence numbers and hashes, in id order, once: only while nothing is sequenced yet,
    /// so that a row slipped in later is reported by `audit verify` instead of adopted.
    pub(crate) async fn adopt_unsequenced_audit(&self) -> Result<()> {
        // Read first: a log in use (or an empty one) needs no write, so an auditor's
        // read-only connection opens the store too.
        if self.audit_length().await? != 0 || self.audit_unsequenced(1).await?.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Takes the head's lock first: two nodes starting at once adopt once.
            let (next,): (i64,) = sqlx::query_as(
                "UPDATE audit_head SET next = next WHERE id = 1 RETURNING next",
            )
            .fetch_one(&mut *tx)
            .await?;
            if next == 0 {
                let rows: Vec<AuditRow> = sqlx::query_as(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq IS NULL ORDER BY id"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let records = rows.into_iter().map(record_of).collect::<Result<Vec<_>>>()?;
                let prepared = records
                    .iter()
                    .map(|r| r.event.clone().prepare())
                    .collect::<Result<Vec<_>>>()?;
                let events: Vec<&PreparedEvent> = prepared.iter().collect();
                for (record, s) in records.iter().zip(sequenced(0, &events)?) {
                    sqlx::query("UPDATE audit_events SET seq = $1, hash = $2 WHERE id = $3")
                        .bind(s.seq)
                        .bind(&s.hash)
                        .bind(record.id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE audit_head SET next = $1 WHERE id = 1")
                    .bind(i64::try_from(records.len()).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

type CheckpointRow = (i64, String, String, i64, Option<i64>, Option<String>);

fn checkpoint_of(
    (size, root, note, created_at, anchor, consistency): CheckpointRow,
) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        root,
        note,
        created_at,
        anchor,
        consistency,
    }
}

/// Events written off the request path: a bounded queue to one writer task, so a flood of
/// failing requests cannot become a flood of database writes that slows every request.
/// When the queue is full, events are counted as dropped instead. For denials; events that
/// must not be lost (issuances) are written before the response instead.
///
/// [`AuditQueue::tally`] goes further for floods: events alike (same event, client,
/// audience, reason and detail) are counted in the writer task and written once per
/// [`TALLY_EVERY`] as one event whose detail adds `count`, `first` and `last` (unix
/// seconds), so the log measures an attack instead of drowning in it.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    tx: tokio::sync::mpsc::Sender<Queued>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Events waiting to be written, at most.
const AUDIT_QUEUE: usize = 4096;
/// How often tallied events are written.
pub const TALLY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Distinct tallies kept per interval; past it, new kinds are tallied together under the
/// reason `(other)` with no client, so a flood of made-up client ids stays one event.
const MAX_TALLIES: usize = 1024;

#[derive(Debug)]
enum Queued {
    Record(AuditEvent),
    Tally(AuditEvent),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What makes two tallied events alike.
type TallyKey = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// Events alike counted within one interval.
#[derive(Debug, Default)]
struct Tallies {
    counts: std::collections::HashMap<TallyKey, (u64, AuditEvent)>,
}

impl Tallies {
    fn add(&mut self, mut event: AuditEvent) {
        let detail = |e: &AuditEvent| {
            e.detail
                .as_ref()
                .map(|d| Value::Object(d.clone()).to_string())
                .unwrap_or_default()
        };
        let mut key = (
            event.event.clone(),
            event.client_id.clone(),
            event.audience.clone(),
            event.reason.clone(),
            detail(&event),
        );
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_TALLIES {
            event.client_id = None;
            event.reason = Some("(other)".into());
            event.detail = None;
            key = (
                event.event.clone(),
                None,
                event.audience.clone(),
                event.reason.clone(),
                String::new(),
            );
        }
        let time = event.time;
        let entry = self.counts.entry(key).or_insert_with(|| (0, event));
        entry.0 += 1;
        // `time` of the kept event is the first; the last is tracked in its detail below.
        let detail = entry.1.detail.get_or_insert_with(Map::new);
        detail.insert("last".into(), time.into());
    }

    /// The events to write: each with its count, first and last time.
    fn drain(&mut self) -> Vec<AuditEvent> {
        self.counts
            .drain()
            .map(|(_, (count, mut event))| {
                let detail = event.detail.get_or_insert_with(Map::new);
                detail.insert("count".into(), count.into());
                detail.insert("first".into(), event.time.into());
                event
            })
            .collect()
    }
}

impl AuditQueue {
    /// Starts the writer task (on the current runtime).
    pub fn spawn(store: Store) -> AuditQueue {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(AUDIT_QUEUE);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let lost = std::sync::Arc::clone(&dropped);
        tokio::spawn(async move {
            let mut tallies = Tallies::default();
            let mut tick = tokio::time::interval(TALLY_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let first = tokio::select! {
                    queued = rx.recv() => match queued {
                        Some(queued) => queued,
                        None => break,
                    },
                    _ = tick.tick() => {
                        write_batch(&store, &lost, &tallies.drain()).await;
                        continue;
                    }
                };
                // What else is waiting goes in the same transaction: one commit (and one
                // turn of the audit sequence's lock) for many events.
                let mut batch = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                while let Some(queued) = next.take() {
                    match queued {
                        Queued::Record(event) => batch.push(event),
                        Queued::Tally(event) => tallies.add(event),
                        Queued::Flush(done) => {
                            batch.extend(tallies.drain());
                            flushed.push(done);
                        }
                    }
                    if batch.len() < MAX_EVENT_ROWS {
                        next = rx.try_recv().ok();
                    }
                }
                write_batch(&store, &lost, &batch).await;
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        AuditQueue { tx, dropped }
    }

    /// Queues an event.
    pub fn record(&self, event: AuditEvent) {
        self.send(Queued::Record(event));
    }

    /// Counts an event with those alike, written together at the end of the interval.
    pub fn tally(&self, event: AuditEvent) {
        self.send(Queued::Tally(event));
    }

    fn send(&self, queued: Queued) {
        if self.tx.try_send(queued).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes the tallies counted so far and waits for it (at shutdown).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Events lost (queue full or write failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Writes `events` in one transaction; counts them as lost if it fails.
async fn write_batch(store: &Store, lost: &std::sync::atomic::AtomicU64, events: &[AuditEvent]) {
    if events.is_empty() {
        return;
    }
    if store.append_audits(events).await.is_err() {
        let n = u64::try_from(events.len()).unwrap_or(u64::MAX);
        lost.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(client: &str, reason: &str, time: i64) -> AuditEvent {
        AuditEvent {
            time,
            event: "gateway.denied".into(),
            client_id: Some(client.into()),
            outcome: "failure".into(),
            reason: Some(reason.into()),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn alike_events_become_one_with_a_count() {
        let mut t = Tallies::default();
        for i in 0..1000 {
            t.add(denial("c1", "ERR_JWT_EXPIRED", 100 + i));
        }
        t.add(denial("c2", "ERR_JWT_EXPIRED", 150));
        let mut out = t.drain();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        assert_eq!(out.len(), 2);
        let d = out[0].detail.as_ref().unwrap();
        assert_eq!(
            (d["count"].as_u64(), d["first"].as_i64(), d["last"].as_i64()),
            (Some(1000), Some(100), Some(1099))
        );
        assert_eq!(out[1].detail.as_ref().unwrap()["count"], 1);
        assert!(t.drain().is_empty());
    }

    #[test]
    fn made_up_clients_cannot_grow_the_tallies() {
        let mut t = Tallies::default();
        for i in 0..5000 {
            t.add(denial(
                &format!("forged-{i}"),
                "ERR_JWS_INVALID_SIGNATURE",
                1,
            ));
        }
        let out = t.drain();
        assert_eq!(out.len(), MAX_TALLIES + 1);
        let other: Vec<_> = out
            .iter()
            .filter(|e| e.reason.as_deref() == Some("(other)"))
            .collect();
        assert_eq!(other.len(), 1);
        assert_eq!(
            other[0].detail.as_ref().unwrap()["count"],
            5000 - MAX_TALLIES as u64
        );
        assert_eq!(other[0].client_id, None);
    }
}
