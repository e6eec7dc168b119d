//! Test support (feature `testing`, for this workspace's tests only): run one async test
//! against each backend, each in a database of its own.
//!
//! SQLite runs always, in a temporary directory. PostgreSQL runs against the server named by
//! `TOKENGATE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`; `scripts/test`
//! sets it): a PostgreSQL test fails, saying how to provide one, when the variable is not set,
//! and fails when the server cannot be reached. It is never skipped, so a run that reports it
//! passed has run it. Each PostgreSQL test works in a schema of its own (`t_<random>`,
//! selected through the connection's `search_path`) that is dropped at the end, so tests
//! running in parallel, and runs sharing one database, never see each other's rows.
// Test support asserts by panicking: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;

use sqlx::postgres::PgPoolOptions;

use crate::Store;

/// The environment variable naming the PostgreSQL server tests use.
pub const POSTGRES_ENV: &str = "TOKENGATE_TEST_POSTGRES_URL";

/// What a test gets: a way to open (and reopen) its own database.
pub struct Ctx {
    /// The database URL (`sqlite://…` or `postgres://…` with its own schema).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Ctx {
    /// Opens the test's database (again).
    pub async fn open(&self) -> Store {
        match Store::open(&self.url).await {
            Ok(store) => store,
            Err(err) => panic!("opening the test store failed: {err} ({err:?})"),
        }
    }

    /// The backend's name, for messages.
    pub fn backend(&self) -> &'static str {
        if self.url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `test` against a fresh SQLite database in a temporary directory.
pub async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the store creates it.
    let path = dir.path().join("data").join("tokengate.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    test(Ctx {
        url,
        _dir: Some(dir),
    })
    .await;
}

/// The PostgreSQL URL with `?options=-c search_path=<schema>` added.
fn url_with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// How to provide the PostgreSQL server, for the failure messages.
fn postgres_how() -> String {
    format!(
        "set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test (or another server where \
         the user may create schemas), or run `bash scripts/test`, which sets it"
    )
}

/// Runs `test` against a fresh schema of the PostgreSQL server named by [`POSTGRES_ENV`].
///
/// # Panics
///
/// When [`POSTGRES_ENV`] is not set (the message says how to set it: a missing prerequisite
/// fails the test rather than skipping it), when the server cannot be reached, when `test`
/// panics (re-raised), and when the test's schema cannot be dropped afterwards.
pub async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let base = match std::env::var(POSTGRES_ENV) {
        Ok(base) if !base.is_empty() => base,
        _ => panic!(
            "this PostgreSQL test needs a server and {POSTGRES_ENV} is not set (or empty): {}",
            postgres_how()
        ),
    };
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&base)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "{POSTGRES_ENV} is set but PostgreSQL cannot be reached ({err}): {}",
                postgres_how()
            )
        });
    let schema = format!("t_{}", random_hex(8));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let ctx = Ctx {
        url: url_with_search_path(&base, &schema),
        _dir: None,
    };
    // Run the test as its own task so that a failing assertion still lets us drop the
    // schema; then re-raise it.
    let outcome = tokio::spawn(test(ctx)).await;
    let dropped = drop_schema(&admin, &schema).await;
    admin.close().await;
    if let Err(err) = outcome {
        if let Err(drop_err) = dropped {
            // The test's own failure is the one to report; this one is a consequence at most.
            eprintln!("{drop_err}");
        }
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
    if let Err(drop_err) = dropped {
        panic!("{drop_err}");
    }
}

/// Drops a test's schema.
///
/// Background writers of the test (queued audit events) may still be inserting: dropping the
/// schema under them can deadlock, and PostgreSQL then aborts one side. That, and only that,
/// is tried again, a bounded number of times with a short pause between attempts (a back-off,
/// not a wait for some event); any other error, or the last lost race, is the answer.
async fn drop_schema(admin: &sqlx::PgPool, schema: &str) -> Result<(), String> {
    const ATTEMPTS: u32 = 20;
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    let mut attempt = 1;
    loop {
        let Err(err) = sqlx::query(&drop).execute(admin).await else {
            return Ok(());
        };
        let state = err
            .as_database_error()
            .and_then(|db| db.code())
            .map(|code| code.into_owned());
        // 40P01 deadlock_detected, 40001 serialization_failure, 55P03 lock_not_available.
        let lost_a_race = matches!(state.as_deref(), Some("40P01" | "40001" | "55P03"));
        if !lost_a_race || attempt == ATTEMPTS {
            return Err(format!(
                "dropping the test schema {schema} failed (attempt {attempt} of {ATTEMPTS}, \
                 SQLSTATE {state:?}): {err}"
            ));
        }
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
