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

/// The environment variable naming the Redis server tests use.
pub const REDIS_ENV: &str = "TOKENGATE_TEST_REDIS_URL";

/// The Redis URL of [`REDIS_ENV`].
///
/// # Panics
///
/// When it is not set (the message says how to set it: a missing prerequisite fails the
/// test rather than skipping it). Whether the server answers is the test's first call's to
/// find out, and to fail loudly on.
pub fn redis_url() -> String {
    match std::env::var(REDIS_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs Redis and {REDIS_ENV} is not set (or empty): set \
             {REDIS_ENV}=redis://127.0.0.1:6379, or run `bash scripts/test`, which sets it"
        ),
    }
}

/// A `redis-server` of the test's own, on a free loopback port in a temporary directory,
/// that the test may stop and start again (on the same port); killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not answer within 10 s.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.resume();
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (its data goes with it: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Until the port refuses connections, a client may still see the old server.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting redis-server (is it installed?): {e}"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read as _, Write as _};
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A PostgreSQL server of the test's own (`initdb` and `pg_ctl`), on a free loopback port
/// in a temporary directory, that the test may stop and start again (on the same port, with
/// its data); stopped when dropped. Run as the `postgres` user when the test runs as root
/// (PostgreSQL refuses to run as root).
pub struct PostgresServer {
    port: u16,
    dir: tempfile::TempDir,
    running: bool,
    /// Server settings given at each start (`-c name=value`).
    settings: Vec<String>,
}

impl PostgresServer {
    /// Makes a cluster and starts it.
    ///
    /// # Panics
    ///
    /// When `initdb` or `pg_ctl` is not installed or fails.
    pub fn start() -> PostgresServer {
        PostgresServer::start_with(&[])
    }

    /// [`PostgresServer::start`] with server settings (`"log_statement=all"`).
    pub fn start_with(settings: &[&str]) -> PostgresServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let server = PostgresServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            running: false,
            settings: settings.iter().map(|s| format!(" -c {s}")).collect(),
        };
        if as_root() {
            let chown = std::process::Command::new("chown")
                .arg("postgres")
                .arg(server.dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown postgres on the test's directory");
        }
        let data = server.data();
        server.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut server = server;
        server.resume();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a PostgreSQL program, as `postgres` when root; panics with its output if it fails.
    fn pg(&self, program: &str, args: &[&str]) {
        let mut command = if as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            std::process::Command::new(program)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {program} (is PostgreSQL installed?): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Its URL (the `postgres` database, trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Stops it at once (`pg_ctl stop -m immediate`: connections are cut, as in a crash).
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            self.pg(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }
    }

    /// Starts it again on the same port, with its data, and waits until it accepts
    /// connections.
    pub fn resume(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.settings.concat()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        self.running = true;
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if std::mem::take(&mut self.running) {
            let data = self.data();
            let mut command = if as_root() {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--", "pg_ctl"]);
                c
            } else {
                std::process::Command::new("pg_ctl")
            };
            let _ = command
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// Whether this process runs as root.
fn as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
