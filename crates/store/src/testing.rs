//! Test support (feature `testing`, for this workspace's tests only): run one async test
//! against each backend, each in a database of its own.
//!
//! SQLite runs always, in a temporary directory. PostgreSQL runs when
//! `TOKENGATE_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`); if it
//! is set but the server cannot be reached, the test fails. Each PostgreSQL test works in a
//! schema of its own (`t_<random>`, selected through the connection's `search_path`) that is
//! dropped at the end, so tests running in parallel, and runs sharing one database, never
//! see each other's rows.
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

/// Runs `test` against a fresh schema of the PostgreSQL server named by [`POSTGRES_ENV`];
/// skipped (with a line on stderr) when it is not set, failed when it is set but unreachable.
pub async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("PostgreSQL test not run: {POSTGRES_ENV} is not set");
        return;
    };
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&base)
        .await
        .unwrap_or_else(|err| {
            panic!("{POSTGRES_ENV} is set but PostgreSQL cannot be reached: {err}")
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
    // Background writers of the test (queued audit events) may still be inserting: dropping
    // the schema under them can deadlock, and PostgreSQL then aborts one side. Try again.
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    let mut attempts = 0;
    while let Err(err) = sqlx::query(&drop).execute(&admin).await {
        attempts += 1;
        assert!(attempts < 20, "dropping the test schema failed: {err}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    admin.close().await;
    if let Err(err) = outcome {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
}
