//! Counters, rendered in the Prometheus text format at `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

/// Request counts per route and status.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<HashMap<String, HashMap<u16, u64>>>,
}

impl Metrics {
    /// Counts one response.
    pub fn request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        // No allocation once a route has been seen.
        match map.get_mut(route) {
            Some(by_status) => *by_status.entry(status).or_default() += 1,
            None => {
                map.insert(route.to_owned(), HashMap::from([(status, 1)]));
            }
        }
    }

    /// The exposition text, with the extra gauges and counters given.
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tokengate_gateway_requests_total counter\n");
        let sorted: BTreeMap<(String, u16), u64> = {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .flat_map(|(r, s)| s.iter().map(move |(st, n)| ((r.clone(), *st), *n)))
                .collect()
        };
        for ((route, status), n) in &sorted {
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
