//! What makes one `serve` process a node among several: a claim on an embedded database
//! (SQLite is for one node), the store re-read every second for changes made elsewhere, and,
//! with Redis, the change channel that brings them at once (docs/deployment.md).

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oauth::Service;
use store::redis::{Redis, Subscription};

use super::StorageFlags;
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};

/// An exclusive lock on a file beside the SQLite database, held while the node serves.
#[derive(Debug)]
pub struct SqliteClaim {
    _file: File,
}

/// Claims the embedded database for this process: a second `serve` on the same SQLite file
/// is refused at start. SQLite's own locks would keep the file consistent, but every node
/// keeps state in memory that only PostgreSQL (with Redis) keeps shared, so several nodes on
/// one file would be several single nodes that do not know of each other. The CLI does not
/// claim: `tokengate client …` beside a running node is how one node is operated.
pub fn claim_sqlite(
    config: &Config,
    flags: &StorageFlags,
) -> Result<Option<SqliteClaim>, CliError> {
    let Some(path) = sqlite_file(&flags.database_url(config)) else {
        return Ok(None);
    };
    let mut lock_path = path.into_os_string();
    lock_path.push(".serve-lock");
    let lock_path = PathBuf::from(lock_path);
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The owner's alone, as the store makes it (docs/security.md, finding 10).
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(parent)
            .map_err(|e| CliError::io("creating the data directory", &e))?;
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|e| CliError::io("opening the database's lock file", &e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SqliteClaim { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::new(
            "ERR_SQLITE_IN_USE",
            format!(
                "another tokengate node is serving from this SQLite database ({}): several \
                 nodes must share PostgreSQL (`database_url = \"postgres://…\"`, with [redis] \
                 for instant revocation), not one SQLite file; see docs/deployment.md",
                lock_path.with_extension("").display()
            ),
            EXIT_USAGE,
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(CliError::io("locking the database's lock file", &e))
        }
    }
}

/// The file of a SQLite database URL (a plain path or `sqlite://path?…`); `None` for
/// PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = match url.strip_prefix("sqlite:") {
        Some(rest) => rest
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default(),
        None => url,
    };
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

/// Longest wait for one poll of the store: a database behind a path that drops packets
/// would otherwise hold the poll (and keep the node's revocations stale) until the kernel
/// gives up on the connection, many minutes later. Generous: a poll that reads many rows
/// (a large bulk revocation, the minutely full re-read) must be able to finish.
const POLL_TIMEOUT: Duration = Duration::from_secs(15);
/// Every this many polls, every revocation of a live token is read again, not only those
/// since the last read ([`oauth::Revocations::resync`]).
const RESYNC_EVERY: u64 = 60;

/// Reads what other nodes (and the CLI) change every second: revocations and the key ring
/// (clients are read again a second after they were cached). The fallback of the change
/// channel, and the only way without Redis. A failure is logged when it starts and when
/// it ends, not every second.
pub async fn poll_store(service: Arc<Service>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut unpublished = (0, None::<std::time::Instant>);
    for round in 1u64.. {
        tick.tick().await;
        warn_of_unpublished_changes(&service, &mut unpublished);
        let polled = tokio::time::timeout(POLL_TIMEOUT, poll_once(&service, round)).await;
        match polled {
            Ok(Ok(())) if failing => {
                failing = false;
                tracing::info!("the store answers again: revocations and keys are current");
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::error!(
                    "reading revocations and keys from the store failed ({}): {e}; \
                     retrying every second",
                    e.code()
                );
            }
            Err(_) if !failing => {
                failing = true;
                tracing::error!(
                    "reading revocations and keys from the store took more than \
                     {POLL_TIMEOUT:?}; retrying every second"
                );
            }
            _ => {}
        }
    }
}

/// Says (at most once a minute) that change messages could not be published: the other
/// nodes then learn of this node's changes by polling, about a second later.
fn warn_of_unpublished_changes(service: &Service, last: &mut (u64, Option<std::time::Instant>)) {
    let count = service.changes_not_published();
    let quiet = last
        .1
        .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
    if count > last.0 && quiet {
        tracing::warn!(
            "{} change message(s) could not be published on Redis so far: other nodes learn \
             of those changes by polling the store (about a second)",
            count
        );
        *last = (count, Some(std::time::Instant::now()));
    }
}

async fn poll_once(service: &Service, round: u64) -> oauth::Result<()> {
    let now = store::unix_now();
    if round.is_multiple_of(RESYNC_EVERY) {
        service.resync_revocations(now).await?;
    } else {
        service.refresh_revocations(now).await?;
    }
    service.refresh_ring().await.map(|_| ())
}

/// How often a quiet subscription is checked: a Redis that stops answering without closing
/// the connection would otherwise leave it silent rather than ended.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest wait between two attempts to subscribe again.
const MOST_BACKOFF: Duration = Duration::from_secs(2);
/// A subscription that lasted this long counts as working: the backoff starts over. One
/// that Redis drops at once (a client output limit, a proxy) is retried with backoff, not
/// in a loop that re-reads the store each time.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Least time between two warnings about messages that are not ours.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Publishes this node's changes on Redis and applies the other nodes' as they come; when
/// the subscription is lost, subscribes again (backing off up to two seconds) and then
/// re-reads the store for what was missed. Meanwhile [`poll_store`] keeps the node current
/// within about a second.
pub fn follow_changes(service: Arc<Service>, redis: Redis) -> Result<(), CliError> {
    let node =
        oauth::random_b64(12).map_err(|e| CliError::new(e.code(), e.to_string(), EXIT_USAGE))?;
    service.publish_changes(redis.clone(), node);
    tokio::spawn(follow_key_changes(Arc::clone(&service)));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut lost = false;
        loop {
            match redis.subscribe(&service.changes_channel()).await {
                Ok(mut subscription) => {
                    let began = std::time::Instant::now();
                    if let Err(e) = service.catch_up(store::unix_now()).await {
                        tracing::warn!("catching up with the store failed ({}): {e}", e.code());
                    }
                    if std::mem::take(&mut lost) {
                        tracing::info!("following other nodes' changes on Redis again");
                    }
                    apply_changes(&service, &mut subscription).await;
                    tracing::warn!(
                        "lost the Redis change channel: other nodes' changes arrive by \
                         polling the store (about a second) until it is back"
                    );
                    lost = true;
                    if began.elapsed() >= STABLE_AFTER {
                        backoff = Duration::from_millis(100);
                    }
                }
                Err(e) if !std::mem::replace(&mut lost, true) => tracing::warn!(
                    "cannot subscribe to the Redis change channel ({e}): other nodes' \
                     changes arrive by polling the store until it is back"
                ),
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MOST_BACKOFF);
        }
    });
    Ok(())
}

/// Compares the key ring with the store each time another node says it changed (repeats
/// while a comparison runs count once): off the message loop, which must never wait on the
/// store.
async fn follow_key_changes(service: Arc<Service>) {
    loop {
        service.keys_changed().await;
        match tokio::time::timeout(POLL_TIMEOUT, service.refresh_ring()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                "reading the key ring another node changed failed ({}): {e}; the poll tries \
                 again within a second",
                e.code()
            ),
            Err(_) => tracing::warn!(
                "reading the key ring another node changed took more than {POLL_TIMEOUT:?}; \
                 the poll tries again within a second"
            ),
        }
    }
}

/// Applies messages until the subscription ends or stops answering.
async fn apply_changes(service: &Service, subscription: &mut Subscription) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut warned: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(payload) = message else { return };
                if let Err(e) = service.apply_message(&payload, store::unix_now()) {
                    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        warned = Some(std::time::Instant::now());
                        tracing::warn!("a change message was not applied ({}): {e}", e.code());
                    }
                }
            }
            _ = ping.tick() => {
                if subscription.ping().await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;
    use std::path::PathBuf;

    #[test]
    fn the_sqlite_file_of_each_url_form() {
        assert_eq!(
            sqlite_file("data/tokengate.db"),
            Some(PathBuf::from("data/tokengate.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/t.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/t.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://rel.db"),
            Some(PathBuf::from("rel.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
