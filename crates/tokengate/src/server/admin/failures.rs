//! Failed admin authentications, counted per source address and written to the audit trail
//! once per interval: a flood of bad admin tokens costs one event per address per interval,
//! not one per request, so it can neither go unnoticed nor flood the trail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use store::{AuditEvent, Store, StoreError};

/// Addresses counted separately in one interval; failures from more are counted together
/// (as from an unknown address), so the map stays small whatever a client sends.
const MAX_SOURCES: usize = 4096;

/// Failures since the last [`AuthFailures::flush`], by source address (`None`: unknown, or
/// beyond [`MAX_SOURCES`]).
#[derive(Debug, Default)]
pub struct AuthFailures {
    counts: Mutex<HashMap<Option<IpAddr>, u64>>,
}

impl AuthFailures {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one failure from `source`.
    pub fn record(&self, source: Option<IpAddr>) {
        add(&mut self.counts(), source, 1);
    }

    /// Writes one `admin.auth_failed` event per source counted since the last flush (at
    /// `now`, covering the last `interval_secs`). What cannot be written is kept for the
    /// next flush; the error is returned.
    pub async fn flush(
        &self,
        store: &Store,
        now: i64,
        interval_secs: u64,
    ) -> Result<(), StoreError> {
        let pending: Vec<(Option<IpAddr>, u64)> = self.counts().drain().collect();
        let mut rest = pending.into_iter();
        while let Some((source, count)) = rest.next() {
            let from = source.map_or_else(
                || "unknown or other addresses".to_owned(),
                |ip| ip.to_string(),
            );
            let event = AuditEvent {
                time: now,
                event: "admin.auth_failed".into(),
                outcome: "failure".into(),
                reason: Some(format!(
                    "{count} failed admin authentication(s) from {from} in the last {interval_secs} s"
                )),
                ..AuditEvent::default()
            };
            if let Err(e) = store.append_audit(&event).await {
                let mut counts = self.counts();
                for (source, count) in std::iter::once((source, count)).chain(rest) {
                    add(&mut counts, source, count);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Adds `n` failures from `source`, counted as from an unknown address once
/// [`MAX_SOURCES`] addresses are counted.
fn add(counts: &mut HashMap<Option<IpAddr>, u64>, source: Option<IpAddr>, n: u64) {
    let key = if counts.len() >= MAX_SOURCES && !counts.contains_key(&source) {
        None
    } else {
        source
    };
    let count = counts.entry(key).or_default();
    *count = count.saturating_add(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_beyond_the_bound_are_counted_together() {
        let failures = AuthFailures::default();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            failures.record(Some(IpAddr::from(i.to_be_bytes())));
        }
        failures.record(Some(IpAddr::from([0, 0, 0, 1])));
        let counts = failures.counts();
        assert_eq!(counts.len(), MAX_SOURCES + 1);
        assert_eq!(counts[&None], 10);
        assert_eq!(counts[&Some(IpAddr::from([0, 0, 0, 1]))], 2);
    }
}
