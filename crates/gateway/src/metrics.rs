//! Counters, rendered in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Request counts per route and status.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    /// Counts one response.
    pub fn request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// The exposition text, with the extra gauges and counters given.
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tokengate_gateway_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in map.iter() {
            let route = route.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(
                out,
                "tokengate_gateway_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        for (name, kind, value) in extra {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}
