//! The one error type of the crate, and how database driver errors map onto it.

use std::error::Error as StdError;
use std::path::PathBuf;

use sqlx::error::DatabaseError as _;

/// A boxed error kept as the [`source`](std::error::Error::source) of a [`StoreError`], for logs.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
///
/// Messages never contain secrets (master key, private keys, client secrets, database
/// passwords): driver errors are kept as the `source` only, and the database URL is never
/// echoed. [`StoreError::code`] gives a stable code for each variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or used right now: connection refused or lost, pool
    /// timed out or closed, file cannot be opened or written, disk full, database busy or
    /// read-only. Transient from the caller's point of view: an HTTP front end answers 503.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),

    /// The database URL or connection options are not usable (the URL itself is not repeated
    /// here: it may hold a password).
    #[error("invalid database configuration: {0}")]
    Config(&'static str, #[source] Option<BoxError>),

    /// A row with the same identity already exists, or a state change lost a race.
    #[error("conflict: {0}")]
    Conflict(&'static str),

    /// The row addressed by an update or delete does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),

    /// A value given to the store is not acceptable (e.g. a scope containing a space, a public
    /// JWK that is not JSON).
    #[error("invalid value: {0}")]
    Invalid(&'static str),

    /// The master key does not decrypt what this database holds: either the check value
    /// written when the database first met a master key, or a private key's ciphertext
    /// (AES-GCM cannot tell a wrong key from a modified ciphertext).
    #[error("wrong master key: it does not decrypt this database's data")]
    WrongMasterKey,

    /// A master key given as text is not the base64 (standard alphabet) of exactly 32 bytes.
    #[error("master key must be the base64 (standard alphabet) of exactly 32 bytes")]
    MasterKeyFormat,

    /// The master key file could not be read or created.
    #[error("master key file {path}: {source}")]
    MasterKeyFile {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },

    /// The master key file may be opened by group or others: refused rather than used, as
    /// ssh refuses a private key file others can read.
    #[error("master key file {} is open to group or others (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    MasterKeyExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The database holds something this code cannot read: an unknown enum value, malformed
    /// JSON, a ciphertext of the wrong shape, a column of an unexpected type.
    #[error("corrupt data in the database: {0}")]
    Corrupt(&'static str, #[source] Option<BoxError>),

    /// Applying the embedded schema migrations failed (includes a database whose schema is
    /// newer than this binary, or a migration changed after it was applied).
    #[error("database migration failed")]
    Migration(#[source] BoxError),

    /// A cryptographic primitive failed (random generator, key setup). Not expected to happen.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),

    /// Any other database error (a bug in a query, an unexpected constraint violation).
    #[error("database error")]
    Database(#[source] BoxError),
}

impl StoreError {
    /// A stable, machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "ERR_STORE_UNAVAILABLE",
            StoreError::Config(..) => "ERR_STORE_CONFIG",
            StoreError::Conflict(_) => "ERR_STORE_CONFLICT",
            StoreError::NotFound(_) => "ERR_STORE_NOT_FOUND",
            StoreError::Invalid(_) => "ERR_STORE_INVALID",
            StoreError::WrongMasterKey => "ERR_STORE_WRONG_MASTER_KEY",
            StoreError::MasterKeyFormat => "ERR_STORE_MASTER_KEY_FORMAT",
            StoreError::MasterKeyFile { .. } => "ERR_STORE_MASTER_KEY_FILE",
            StoreError::MasterKeyExposed { .. } => "ERR_STORE_MASTER_KEY_EXPOSED",
            StoreError::Corrupt(..) => "ERR_STORE_CORRUPT",
            StoreError::Migration(_) => "ERR_STORE_MIGRATION",
            StoreError::Crypto(_) => "ERR_STORE_CRYPTO",
            StoreError::Database(_) => "ERR_STORE_DATABASE",
        }
    }

    /// Whether the database could not be reached or used (the caller answers 503 and may
    /// retry later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Replaces the generic message of a [`StoreError::Conflict`] with one naming what
    /// collided; other errors pass through.
    pub(crate) fn conflict_is(self, what: &'static str) -> StoreError {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(what),
            other => other,
        }
    }
}

/// SQLite primary result codes (the low byte of an extended code) that mean the database
/// cannot be used right now. <https://www.sqlite.org/rescode.html>
const SQLITE_UNAVAILABLE: &[i64] = &[
    3,  // SQLITE_PERM
    5,  // SQLITE_BUSY
    6,  // SQLITE_LOCKED
    7,  // SQLITE_NOMEM
    8,  // SQLITE_READONLY
    10, // SQLITE_IOERR
    13, // SQLITE_FULL
    14, // SQLITE_CANTOPEN
    15, // SQLITE_PROTOCOL
    23, // SQLITE_AUTH
];
/// SQLite primary result codes that mean the file is damaged or not a database.
const SQLITE_CORRUPT: &[i64] = &[
    11, // SQLITE_CORRUPT
    26, // SQLITE_NOTADB
];

/// Whether a PostgreSQL SQLSTATE means the database cannot be used right now.
/// <https://www.postgresql.org/docs/current/errcodes-appendix.html>
fn pg_unavailable(state: &str) -> bool {
    state.starts_with("08") // connection exception
        || state.starts_with("53") // insufficient resources (disk full, too many connections)
        || state.starts_with("57") // operator intervention (shutdown, cannot connect now, canceled)
        || state.starts_with("28") // invalid authorization
        || state == "3D000" // database does not exist
        || state == "25006" // read-only transaction (hot standby)
        || state == "40001" // serialization failure
        || state == "40P01" // deadlock detected
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match err {
            E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
            E::Configuration(_) => {
                StoreError::Config("rejected by the driver", Some(Box::new(err)))
            }
            E::RowNotFound => StoreError::NotFound("row"),
            E::TypeNotFound { .. }
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnNotFound(_)
            | E::ColumnDecode { .. }
            | E::Decode(_) => StoreError::Corrupt("unexpected column value", Some(Box::new(err))),
            E::Migrate(inner) => StoreError::from(*inner),
            E::Database(ref db) => {
                if db.is_unique_violation() {
                    return StoreError::Conflict("duplicate");
                }
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    let primary = sqlite
                        .code()
                        .and_then(|code| code.parse::<i64>().ok())
                        .map(|code| code & 0xff);
                    match primary {
                        Some(code) if SQLITE_UNAVAILABLE.contains(&code) => {
                            StoreError::Unavailable(Box::new(err))
                        }
                        Some(code) if SQLITE_CORRUPT.contains(&code) => {
                            StoreError::Corrupt("the SQLite file is damaged", Some(Box::new(err)))
                        }
                        _ => StoreError::Database(Box::new(err)),
                    }
                } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    let state = pg.code();
                    if pg_unavailable(state) {
                        StoreError::Unavailable(Box::new(err))
                    } else if state.starts_with("XX00") {
                        // data_corrupted, index_corrupted
                        StoreError::Corrupt("PostgreSQL reports corruption", Some(Box::new(err)))
                    } else {
                        StoreError::Database(Box::new(err))
                    }
                } else {
                    StoreError::Database(Box::new(err))
                }
            }
            other => StoreError::Database(Box::new(other)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        match err {
            // A migration that could not run because the database went away is an outage,
            // not a schema problem.
            M::Execute(inner) | M::ExecuteMigration(inner, _) => match StoreError::from(inner) {
                StoreError::Unavailable(source) => StoreError::Unavailable(source),
                StoreError::Database(source)
                | StoreError::Corrupt(_, Some(source))
                | StoreError::Config(_, Some(source)) => StoreError::Migration(source),
                other => StoreError::Migration(Box::new(other)),
            },
            other => StoreError::Migration(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_are_unavailable() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            StoreError::from(sqlx::Error::Io(io)).code(),
            "ERR_STORE_UNAVAILABLE"
        );
    }

    #[test]
    fn sqlstates() {
        for state in ["08006", "57P01", "53100", "3D000", "28P01", "40001"] {
            assert!(pg_unavailable(state), "{state}");
        }
        for state in ["23505", "42P01", "22001"] {
            assert!(!pg_unavailable(state), "{state}");
        }
    }
}
