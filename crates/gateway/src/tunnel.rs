//! WebSocket tunnels: after the upgrade the gateway copies bytes both ways and sees no more
//! requests, so the token that opened a tunnel is checked for as long as it stays open. A
//! tunnel closes when that token expires, when it is revoked (looked at every
//! [`REVOCATION_CHECK`]), and at the route's `max_tunnel_lifetime` in any case. Closing
//! drops both connections: the bytes are not parsed, so no WebSocket close frame is sent
//! (clients see the connection end, as after a network failure, and reconnect with a fresh
//! token).

use std::sync::Arc;
use std::time::Duration;

use oauth::Revocations;

use crate::auth::Verified;

/// How often an open tunnel looks at the revocation list.
pub const REVOCATION_CHECK: Duration = Duration::from_secs(2);

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// One side closed it, or an I/O error ended it.
    Closed,
    /// The token that opened it expired, or the route's `max_tunnel_lifetime` passed.
    Expired,
    /// The token that opened it was revoked.
    Revoked,
}

/// What bounds one tunnel: its lifetime, and the token to watch for revocation.
pub(crate) struct TunnelLimits {
    /// When it closes at the latest, fixed when the upgrade is asked for (the upstream's
    /// answer does not extend it).
    until: tokio::time::Instant,
    watched: Option<(Arc<Verified>, Arc<Revocations>)>,
}

impl TunnelLimits {
    /// The limits of a tunnel opened now (`now`, unix seconds) on a route with
    /// `max_lifetime`, by `token` when the route takes one.
    pub(crate) fn new(
        max_lifetime: Duration,
        token: Option<&Arc<Verified>>,
        revocations: &Arc<Revocations>,
        now: i64,
    ) -> TunnelLimits {
        let token_left = token.map(|v| {
            Duration::from_secs(u64::try_from(v.expires_at.saturating_sub(now)).unwrap_or(0))
        });
        let lifetime = token_left.map_or(max_lifetime, |left| left.min(max_lifetime));
        let now = tokio::time::Instant::now();
        TunnelLimits {
            // A lifetime past what the clock can hold is no limit at all: a year stands in.
            until: now
                .checked_add(lifetime)
                .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600)),
            watched: token
                .filter(|v| v.own)
                .map(|v| (Arc::clone(v), Arc::clone(revocations))),
        }
    }

    /// Resolves when the tunnel must close, and why.
    async fn reached(&self) -> TunnelEnd {
        let expiry = tokio::time::sleep_until(self.until);
        let Some((token, revocations)) = &self.watched else {
            expiry.await;
            return TunnelEnd::Expired;
        };
        tokio::pin!(expiry);
        let mut tick = tokio::time::interval(REVOCATION_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut expiry => return TunnelEnd::Expired,
                _ = tick.tick() => {
                    if token.is_revoked(revocations) {
                        return TunnelEnd::Revoked;
                    }
                }
            }
        }
    }
}

/// Copies bytes both ways between the client's and the upstream's upgraded connections
/// until either side closes or `limits` end the tunnel.
pub(crate) async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    limits: TunnelLimits,
) -> TunnelEnd {
    let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
        return TunnelEnd::Closed;
    };
    let mut c = hyper_util::rt::TokioIo::new(c);
    let mut u = hyper_util::rt::TokioIo::new(u);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut c, &mut u) => TunnelEnd::Closed,
        end = limits.reached() => end,
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
