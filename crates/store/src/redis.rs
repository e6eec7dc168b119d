//! Redis: the state several nodes share that must be fast rather than durable (rate-limit
//! cells, cached responses, DPoP proofs seen) and the channel on which nodes tell each other
//! of changes ([`Redis::publish`], [`Redis::subscribe`]). Never the only copy of anything that
//! must survive: every key expires on its own, and every caller says what it does when
//! Redis does not answer in time.
//!
//! One [`redis::aio::ConnectionManager`] per process: one multiplexed connection that
//! reconnects by itself (with backoff) after Redis went away, created without waiting for
//! Redis, so a node starts and serves while Redis is down. Each call is bounded by the
//! configured `timeout`; past it the call is [`RedisUnavailable`], whatever the reason.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ToRedisArgs};

/// A Lua script, run by its SHA-1 (`EVALSHA`) and loaded on first use.
pub use redis::Script;
/// One Redis command and its arguments ([`Redis::query`]).
pub use redis::{cmd, Cmd, FromRedisValue};

/// Why a Redis call gave no answer: the caller decides what that means (allow, deny, or
/// fall back to this node's state).
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    /// No answer within the configured timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed or Redis answered with an error.
    #[error("redis: {0}")]
    Failed(#[source] redis::RedisError),
}

/// `[redis]` as the store takes it: a URL (`redis://` or `rediss://`, credentials in it or
/// given apart) and a per-call timeout.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS).
    pub url: String,
    /// Password when not in the URL (from an environment variable named in the file).
    pub password: Option<String>,
    /// Longest wait for one call's answer.
    pub timeout: Duration,
}

/// A reconnecting connection to one Redis, with a deadline on every call.
#[derive(Clone)]
pub struct Redis(Arc<Shared>);

struct Shared {
    client: Client,
    config: ConnectionManagerConfig,
    /// The connection in use, and its generation (one more at each replacement).
    connection: RwLock<(u64, ConnectionManager)>,
    timeout: Duration,
    /// Calls in a row on the current connection that got no answer in time.
    silent: AtomicU32,
    /// When the connection was last replaced.
    replaced: Mutex<Instant>,
}

/// Calls in a row without an answer after which the connection is replaced. The connection
/// manager reconnects when a connection fails, but a Redis that stops answering without
/// closing it (paused, failed over, a network path that drops packets) leaves it open and
/// silent until the kernel gives up on it, many minutes later.
const SILENT_CALLS: u32 = 3;

/// Least time between two replacements: a connection being made is not thrown away for
/// another before it had a chance (a TLS connection to a managed Redis may take longer
/// than one call's timeout).
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.0.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A connection manager for `config`, connecting on first use (inside a Tokio runtime).
    /// Fails only for a URL that cannot be used; an unreachable Redis is a later call's
    /// [`RedisUnavailable`].
    pub fn new(config: &RedisConfig) -> Result<Redis, redis::RedisError> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())?;
        if let Some(password) = &config.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info)?;
        // Reconnect attempts back off from 100 ms to 2 s, so a Redis that comes back is
        // used again within about two seconds, without a restart.
        let manager = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2))
            .set_connection_timeout(Some(config.timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(config.timeout));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager.clone())?;
        Ok(Redis(Arc::new(Shared {
            client,
            config: manager,
            connection: RwLock::new((0, connection)),
            timeout: config.timeout,
            silent: AtomicU32::new(0),
            // As if replaced long ago: the first silence is acted on at once.
            replaced: Mutex::new(
                Instant::now()
                    .checked_sub(REPLACE_AT_MOST_EVERY)
                    .unwrap_or_else(Instant::now),
            ),
        })))
    }

    /// The connection to use now, with its generation.
    fn connection(&self) -> (u64, ConnectionManager) {
        self.0
            .connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the outcome of a call made on the connection of `generation`; after
    /// [`SILENT_CALLS`] in a row on the current connection without an answer, puts a new
    /// connection in its place (at most once per [`REPLACE_AT_MOST_EVERY`]), connecting it
    /// in a task of its own so that the connection is made whether or not calls wait for it.
    fn answered(&self, generation: u64, answered: bool) {
        let current = self
            .0
            .connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if generation != current {
            // A call on a connection already replaced says nothing of the new one.
            return;
        }
        if answered {
            self.0.silent.store(0, Ordering::Relaxed);
            return;
        }
        if self.0.silent.fetch_add(1, Ordering::Relaxed) + 1 < SILENT_CALLS {
            return;
        }
        {
            let mut replaced = self.0.replaced.lock().unwrap_or_else(|e| e.into_inner());
            if replaced.elapsed() < REPLACE_AT_MOST_EVERY {
                return;
            }
            *replaced = Instant::now();
        }
        let Ok(fresh) =
            ConnectionManager::new_lazy_with_config(self.0.client.clone(), self.0.config.clone())
        else {
            return;
        };
        {
            let mut slot = self.0.connection.write().unwrap_or_else(|e| e.into_inner());
            if slot.0 != generation {
                return;
            }
            *slot = (generation + 1, fresh.clone());
        }
        self.0.silent.store(0, Ordering::Relaxed);
        let mut connecting = fresh;
        tokio::spawn(async move {
            let _ = redis::cmd("PING")
                .query_async::<String>(&mut connecting)
                .await;
        });
    }

    /// `call`, made on the connection of `generation`, within the timeout.
    async fn bounded<T, F>(&self, generation: u64, call: F) -> Result<T, RedisUnavailable>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let outcome = match tokio::time::timeout(self.0.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) if e.is_timeout() => Err(RedisUnavailable::Timeout(self.0.timeout)),
            Ok(Err(e)) => Err(RedisUnavailable::Failed(e)),
            Err(_) => Err(RedisUnavailable::Timeout(self.0.timeout)),
        };
        self.answered(
            generation,
            !matches!(outcome, Err(RedisUnavailable::Timeout(_))),
        );
        outcome
    }

    /// Sends one command; the answer and how long the call took.
    pub async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
    ) -> (Result<T, RedisUnavailable>, Duration) {
        let started = Instant::now();
        let (generation, mut connection) = self.connection();
        let result = self
            .bounded(generation, command.query_async::<T>(&mut connection))
            .await;
        (result, started.elapsed())
    }

    /// Runs `script` (EVALSHA, loading it on first use) with `keys` and `args`; the answer
    /// and how long the call took.
    pub async fn run_script<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[impl ToRedisArgs],
    ) -> (Result<T, RedisUnavailable>, Duration) {
        let started = Instant::now();
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let (generation, mut connection) = self.connection();
        let result = self
            .bounded(generation, invocation.invoke_async::<T>(&mut connection))
            .await;
        (result, started.elapsed())
    }
}

/// Least time given to making a subscription's connection: a TLS connection to a managed
/// Redis may take longer than one call's timeout.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Redis {
    /// `PING`: whether Redis answers within the timeout.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.query::<String>(&cmd("PING")).await.0.map(|_| ())
    }

    /// Publishes `payload` on `channel` to every subscriber connected now (Redis keeps
    /// nothing for those that are not: subscribers catch up from the store).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), RedisUnavailable> {
        let mut command = cmd("PUBLISH");
        command.arg(channel).arg(payload);
        self.query::<i64>(&command).await.0.map(|_| ())
    }

    /// A connection of its own subscribed to `channel` (a subscribed connection can do
    /// nothing else). Made within the timeout, or at least [`SUBSCRIBE_TIMEOUT`].
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, RedisUnavailable> {
        let within = self.0.timeout.max(SUBSCRIBE_TIMEOUT);
        let subscribed = async {
            let (mut sink, stream) = self.0.client.get_async_pubsub().await?.split();
            sink.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(Subscription {
                sink,
                stream,
                timeout: within,
            })
        };
        match tokio::time::timeout(within, subscribed).await {
            Ok(Ok(subscription)) => Ok(subscription),
            Ok(Err(e)) => Err(RedisUnavailable::Failed(e)),
            Err(_) => Err(RedisUnavailable::Timeout(within)),
        }
    }
}

/// A subscription to one channel ([`Redis::subscribe`]).
pub struct Subscription {
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
    timeout: Duration,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next message's payload, in the order Redis delivered them; `None` once the
    /// connection is gone (subscribe again).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        use futures_core::Stream;
        let message =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.stream).poll_next(cx)).await?;
        Some(message.get_payload_bytes().to_vec())
    }

    /// Whether Redis still answers on this connection: a Redis that stopped answering
    /// without closing it would otherwise leave the subscription silent, not ended.
    pub async fn ping(&mut self) -> Result<(), RedisUnavailable> {
        // Any answer will do: a subscribed RESP2 connection answers PING with an array.
        match tokio::time::timeout(self.timeout, self.sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RedisUnavailable::Failed(e)),
            Err(_) => Err(RedisUnavailable::Timeout(self.timeout)),
        }
    }
}
