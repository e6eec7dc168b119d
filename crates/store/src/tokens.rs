//! Issued access tokens and their revocation.

use crate::{with_pool, Result, Store, StoreError};

/// An issued access token, by its `jti`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's `jti`.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Its `sub`.
    pub subject: String,
    /// Its `aud` (as the token service chose to record it).
    pub audience: String,
    /// Its `scope` (space-separated).
    pub scope: String,
    /// `iat`.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A revoked token, as gateways need it: which jti, since when, and until when the
/// revocation matters (after `expires_at` the token is refused anyway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The token's `jti`.
    pub jti: String,
    /// When it was revoked.
    pub revoked_at: i64,
    /// When it expires.
    pub expires_at: i64,
}

/// Which recorded tokens [`Store::find_tokens`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokensOf<'a> {
    /// The token with this `jti`.
    Jti(&'a str),
    /// A client's.
    Client(&'a str),
    /// A subject's.
    Subject(&'a str),
}

type TokenRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

/// `INSERT INTO tokens … VALUES …` with one row per `&IssuedToken` of `$rows`, for the
/// database of the `with_pool!` arm it is used in: the one place the columns are listed.
macro_rules! insert_tokens {
    ($rows:expr) => {{
        insert_tokens!(String::new(); $rows)
    }};
    ($prefix:expr; $rows:expr) => {{
        let mut q = sqlx::QueryBuilder::new($prefix);
        q.push(
            "INSERT INTO tokens (jti, client_id, subject, audience, scope, issued_at, \
             expires_at, revoked_at) ",
        );
        q.push_values($rows, |mut row, t| {
            row.push_bind(&t.jti)
                .push_bind(&t.client_id)
                .push_bind(&t.subject)
                .push_bind(&t.audience)
                .push_bind(&t.scope)
                .push_bind(t.issued_at)
                .push_bind(t.expires_at)
                .push_bind(t.revoked_at);
        });
        q
    }};
}

/// Rows per multi-row insert in [`Writer::record_issued`]: 9 parameters each stays well under
/// SQLite's 32766 and PostgreSQL's 65535 bound parameters per statement.
const MAX_BATCH_ROWS: usize = 1024;

fn token_of(
    (jti, client_id, subject, audience, scope, issued_at, expires_at, revoked_at): TokenRow,
) -> IssuedToken {
    IssuedToken {
        jti,
        client_id,
        subject,
        audience,
        scope,
        issued_at,
        expires_at,
        revoked_at,
    }
}

/// Inserts the tokens of a batch beyond its first [`MAX_BATCH_ROWS`], on `$conn` (a
/// connection or an open transaction). Batch sizes vary: not prepared and cached, or they
/// would evict the statements that are.
macro_rules! insert_more_tokens {
    ($conn:expr, $rest:expr) => {
        for chunk in $rest.chunks(MAX_BATCH_ROWS) {
            insert_tokens!(chunk.iter().map(|(t, _)| t))
                .build()
                .persistent(false)
                .execute(&mut *$conn)
                .await
                .map_err(|e| StoreError::from(e).conflict_is("a token with this jti exists"))?;
        }
    };
}

/// One connection of the store's pool, held by a caller that writes often (the token
/// service's group commit). SQLite connections each keep their own page cache, which a write
/// through another connection invalidates; the pool hands out its connections in turn, so a
/// writer that took whichever was free re-read the pages it had just written (`pread` was
/// about 5 % of issuance CPU). Holding one connection keeps its cache warm. Drop it after an
/// error, so that a broken connection goes back to the pool to be closed.
#[derive(Debug)]
pub struct Writer {
    conn: WriterConn,
    /// The pool it came from: once that is closed, the writer refuses to write too.
    store: Store,
    /// A SQLite batch began and has not ended (committed, or rolled back after an error):
    /// its call was abandoned midway. The next batch rolls it back first, and a writer
    /// dropped in this state closes its connection rather than return it to the pool
    /// inside a transaction that holds the write lock.
    open_transaction: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let (true, WriterConn::Sqlite(conn)) = (self.open_transaction, &mut self.conn) {
            conn.close_on_drop();
        }
    }
}

#[derive(Debug)]
enum WriterConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl Store {
    /// Takes a connection out of the pool for [`Writer::record_issued`]; it goes back when
    /// the writer is dropped.
    pub async fn writer(&self) -> Result<Writer> {
        let conn = match self {
            Store::Sqlite(pool) => WriterConn::Sqlite(pool.acquire().await?),
            Store::Postgres(pool) => WriterConn::Postgres(pool.acquire().await?),
        };
        Ok(Writer {
            conn,
            store: self.clone(),
            open_transaction: false,
        })
    }

    /// [`Writer::record_issued`] on a connection taken for this call only.
    pub async fn record_issued(&self, batch: &[(IssuedToken, crate::PreparedEvent)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.writer().await?.record_issued(batch).await
    }

    /// Records an issued token. [`StoreError::Conflict`] if the jti was recorded before.
    pub async fn record_token(&self, token: &IssuedToken) -> Result<()> {
        with_pool!(self, pool => insert_tokens!([token])
        .build()
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| StoreError::from(e).conflict_is("a token with this jti exists"))?;
        Ok(())
    }

    /// One token, if it is recorded (and not purged).
    pub async fn token(&self, jti: &str) -> Result<Option<IssuedToken>> {
        let row: Option<TokenRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT jti, client_id, subject, audience, scope, issued_at, expires_at, revoked_at \
             FROM tokens WHERE jti = $1",
        )
        .bind(jti)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(token_of))
    }

    /// Recorded tokens (not yet purged), newest first, at most `limit`: for an operator
    /// looking one up. Each selection reads an index (the primary key, `tokens_client_id`,
    /// `tokens_subject`).
    pub async fn find_tokens(&self, of: TokensOf<'_>, limit: u32) -> Result<Vec<IssuedToken>> {
        let (column, value) = match of {
            TokensOf::Jti(v) => ("jti", v),
            TokensOf::Client(v) => ("client_id", v),
            TokensOf::Subject(v) => ("subject", v),
        };
        let sql = format!(
            "SELECT jti, client_id, subject, audience, scope, issued_at, expires_at, revoked_at \
             FROM tokens WHERE {column} = $1 ORDER BY issued_at DESC, jti LIMIT $2"
        );
        let rows: Vec<TokenRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(value)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(token_of).collect())
    }

    /// Revokes one token. `true` if this call revoked it; `false` if it was already revoked
    /// or is unknown (RFC 7009 answers both the same way).
    pub async fn revoke_token(&self, jti: &str, at: i64) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL",
        )
        .bind(jti)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated == 1)
    }

    /// Revokes every not-yet-revoked token of a client; returns how many.
    pub async fn revoke_by_client(&self, client_id: &str, at: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Revokes every unexpired, not-yet-revoked token of a disabled client (one recorded
    /// after its client was disabled, by a request that authenticated before); returns how
    /// many. Reads, per disabled client, only its unrevoked tokens (a partial index), so it
    /// stays cheap once their revocation is done.
    pub async fn revoke_tokens_of_disabled_clients(&self, at: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND expires_at > $1 \
             AND client_id IN (SELECT client_id FROM clients WHERE disabled)",
        )
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Revokes every not-yet-revoked token of a subject; returns how many.
    pub async fn revoke_by_subject(&self, subject: &str, at: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL",
        )
        .bind(subject)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Tokens revoked at or after `since` that have not expired by `alive_at` (an expired
    /// token is refused without a revocation, so a bulk revocation's expired rows need not
    /// be read again and again), oldest revocation first, for gateways that poll. Poll with
    /// some overlap (see the crate docs) and deduplicate by jti.
    pub async fn revoked_since(&self, since: i64, alive_at: i64) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, i64, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT jti, revoked_at, expires_at FROM tokens \
             WHERE revoked_at IS NOT NULL AND revoked_at >= $1 AND expires_at >= $2 \
             ORDER BY revoked_at, jti",
        )
        .bind(since)
        .bind(alive_at)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(jti, revoked_at, expires_at)| Revocation {
                jti,
                revoked_at,
                expires_at,
            })
            .collect())
    }

    /// Deletes at most `limit` tokens that expired before `before` (revoked or not: an
    /// expired token is refused without looking here); returns how many. Bounded so that a
    /// backlog is worked off over several calls, never in one long lock on the table.
    pub async fn purge_expired(&self, before: i64, limit: u32) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM tokens WHERE jti IN \
             (SELECT jti FROM tokens WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected()))
    }
}

/// A batch on SQLite in two calls to the connection's thread, where each call is a hand-off
/// there and back (two context switches on a busy machine, which cost more per batch than
/// the inserts): the first opens the transaction, inserts the first tokens and takes `n` audit
/// sequence numbers (sqlx runs each statement of a query in turn and answers the UPDATE's
/// row); the last inserts the events and commits. sqlx's own transactions would add a call
/// for `BEGIN` and one for `COMMIT`. Whatever fails, the transaction may be left open: the
/// caller rolls it back ([`Writer`]). The statements' `?` parameters are numbered across the
/// statements of one call (sqlx binds each statement's from where the last one's ended).
async fn sqlite_record(
    conn: &mut sqlx::SqliteConnection,
    batch: &[(IssuedToken, crate::PreparedEvent)],
) -> Result<()> {
    let (head, rest) = batch.split_at(batch.len().min(MAX_BATCH_ROWS));
    let n = batch.len();
    // IMMEDIATE: the write lock is taken (or waited for) at once, so the sequence numbers
    // read below stay this transaction's until it commits.
    let mut q = insert_tokens!("BEGIN IMMEDIATE; ".to_owned(); head.iter().map(|(t, _)| t));
    q.push(format_args!(
        "; UPDATE audit_head SET next = next + {n} WHERE id = 1 RETURNING next"
    ));
    let (next,): (i64,) = q
        .build_query_as()
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).conflict_is("a token with this jti exists"))?;
    insert_more_tokens!(conn, rest);
    let (events, first) = numbered(batch, next);
    let rows = crate::audit::sequenced(first, &events)?;
    let mut chunks = rows.chunks(crate::audit::MAX_EVENT_ROWS).peekable();
    while let Some(chunk) = chunks.next() {
        let mut q = crate::audit::insert_events!(chunk);
        if chunks.peek().is_none() {
            q.push("; COMMIT");
        }
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A batch's events, and the first of the sequence numbers it took (`next` is the head
/// after taking them, one per event).
fn numbered(
    batch: &[(IssuedToken, crate::PreparedEvent)],
    next: i64,
) -> (Vec<&crate::PreparedEvent>, i64) {
    let events: Vec<&crate::PreparedEvent> = batch.iter().map(|(_, e)| e).collect();
    let first = next - i64::try_from(events.len()).unwrap_or(i64::MAX);
    (events, first)
}

/// A batch on PostgreSQL, in a transaction of sqlx's: the first tokens and the sequence
/// numbers in one data-modifying CTE (one statement, one round trip), then the events.
async fn postgres_record(
    conn: &mut sqlx::PgConnection,
    batch: &[(IssuedToken, crate::PreparedEvent)],
) -> Result<()> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let (head, rest) = batch.split_at(batch.len().min(MAX_BATCH_ROWS));
    let n = batch.len();
    let mut q = insert_tokens!(format!(
        "WITH seq AS (UPDATE audit_head SET next = next + {n} WHERE id = 1 \
         RETURNING next), ins AS ("
    ); head.iter().map(|(t, _)| t));
    q.push(") SELECT next FROM seq");
    let (next,): (i64,) = q
        .build_query_as()
        .persistent(false)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from(e).conflict_is("a token with this jti exists"))?;
    insert_more_tokens!(tx, rest);
    let (events, first) = numbered(batch, next);
    crate::audit::insert_sequenced!(tx, first, &events);
    tx.commit().await?;
    Ok(())
}

impl Writer {
    /// Records issued tokens and their audit events in one transaction: all of them or none.
    /// A token service that gathers concurrent issuances into one call pays one durable
    /// commit for the lot (group commit) instead of two per token.
    /// [`StoreError::Conflict`] if a jti was recorded before (then nothing is).
    pub async fn record_issued(
        &mut self,
        batch: &[(IssuedToken, crate::PreparedEvent)],
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // One multi-row statement per table; batches stay far below both databases'
        // bound-parameter limits (see MAX_BATCH_ROWS). The audit sequence's numbers are taken
        // by the request that inserts the first tokens, so the audit log adds no round trip
        // to a batch. The head's row lock (PostgreSQL) or the write lock (SQLite) orders
        // every writer's audit events until the commit.
        if with_pool!(&self.store, pool => pool.is_closed()) {
            return Err(sqlx::Error::PoolClosed.into());
        }
        match &mut self.conn {
            WriterConn::Sqlite(conn) => {
                if self.open_transaction {
                    // An earlier batch was abandoned midway (its future dropped). If it never
                    // began, there is nothing to roll back and SQLite says so: ignored.
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    self.open_transaction = false;
                }
                self.open_transaction = true;
                let recorded = sqlite_record(conn, batch).await;
                if recorded.is_err() {
                    // Release the write lock at once; a failure to is left to the drop,
                    // which then closes the connection.
                    if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() {
                        self.open_transaction = false;
                    }
                } else {
                    self.open_transaction = false;
                }
                recorded?;
            }
            WriterConn::Postgres(conn) => postgres_record(conn, batch).await?,
        }
        Ok(())
    }
}
