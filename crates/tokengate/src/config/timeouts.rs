//! `[server.timeouts]`: a deadline for every phase of a client connection, so that a client
//! that stops sending (or never starts) cannot hold a connection, and with it a file
//! descriptor, forever. docs/configuration.md sets each default beside nginx's and Envoy's.

use std::time::Duration as StdDuration;

use serde::Deserialize;
use toml::Spanned;

use super::{Duration, Failure};

/// `[server.timeouts]` as written; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// From accepting a TCP connection to its first byte (after the TLS handshake, with TLS).
    pub first_byte: Option<Spanned<Duration>>,
    /// For the TLS handshake.
    pub handshake: Option<Spanned<Duration>>,
    /// For a whole HTTP/1 request head, from the moment the connection waits for it.
    pub head: Option<Spanned<Duration>>,
    /// Longest wait for the next piece of a request body.
    pub body: Option<Spanned<Duration>>,
    /// A connection with no exchange in progress is closed this long after its last response
    /// ended, or after it opened (HTTP/2: GOAWAY, then close).
    pub idle: Option<Spanned<Duration>>,
    /// HTTP/2: how often an otherwise quiet connection is pinged.
    pub h2_ping_interval: Option<Spanned<Duration>>,
    /// HTTP/2: how long a ping may go unanswered before the connection is closed.
    pub h2_ping_timeout: Option<Spanned<Duration>>,
    /// Default of each route's `timeout` (until the upstream's response head).
    pub upstream: Option<Spanned<Duration>>,
}

/// The deadlines in force: the configured values, defaults for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// See [`TimeoutsConfig::first_byte`].
    pub first_byte: StdDuration,
    /// See [`TimeoutsConfig::handshake`].
    pub handshake: StdDuration,
    /// See [`TimeoutsConfig::head`].
    pub head: StdDuration,
    /// See [`TimeoutsConfig::body`].
    pub body: StdDuration,
    /// See [`TimeoutsConfig::idle`].
    pub idle: StdDuration,
    /// See [`TimeoutsConfig::h2_ping_interval`].
    pub h2_ping_interval: StdDuration,
    /// See [`TimeoutsConfig::h2_ping_timeout`].
    pub h2_ping_timeout: StdDuration,
    /// See [`TimeoutsConfig::upstream`].
    pub upstream: StdDuration,
    /// After shutdown began, how long requests in flight may take (`[server]
    /// shutdown_timeout`).
    pub drain: StdDuration,
}

impl Default for Timeouts {
    /// Close to what nginx and HAProxy ship (docs/configuration.md compares them): a client
    /// gets 10 s to start and to send its head, 20 s between two pieces of its body (shorter
    /// than `upstream`, so a stalled upload is the client's 408 before it is a 504), and an
    /// unused connection is closed after 60 s.
    fn default() -> Self {
        Timeouts {
            first_byte: StdDuration::from_secs(10),
            handshake: StdDuration::from_secs(10),
            head: StdDuration::from_secs(10),
            body: StdDuration::from_secs(20),
            idle: StdDuration::from_secs(60),
            h2_ping_interval: StdDuration::from_secs(20),
            h2_ping_timeout: StdDuration::from_secs(10),
            upstream: StdDuration::from_secs(30),
            drain: StdDuration::from_secs(30),
        }
    }
}

/// The deadlines of `[server.timeouts]`. Zero is refused: it would close every connection at
/// once, and raising it to a minimum behind the operator's back would hide the mistake.
pub(super) fn resolve(written: &TimeoutsConfig) -> Result<Timeouts, Failure> {
    let defaults = Timeouts::default();
    let pick = |value: &Option<Spanned<Duration>>, default: StdDuration, name: &str| {
        super::table::seconds_within_a_week(value.as_ref(), default.as_secs(), || {
            format!("server.timeouts.{name}")
        })
    };
    Ok(Timeouts {
        first_byte: pick(&written.first_byte, defaults.first_byte, "first_byte")?,
        handshake: pick(&written.handshake, defaults.handshake, "handshake")?,
        head: pick(&written.head, defaults.head, "head")?,
        body: pick(&written.body, defaults.body, "body")?,
        idle: pick(&written.idle, defaults.idle, "idle")?,
        h2_ping_interval: pick(
            &written.h2_ping_interval,
            defaults.h2_ping_interval,
            "h2_ping_interval",
        )?,
        h2_ping_timeout: pick(
            &written.h2_ping_timeout,
            defaults.h2_ping_timeout,
            "h2_ping_timeout",
        )?,
        upstream: pick(&written.upstream, defaults.upstream, "upstream")?,
        // `[server] shutdown_timeout`, set by the caller.
        drain: defaults.drain,
    })
}
