//! The metrics without sockets: the exact series names and labels `/metrics` shows, counts
//! kept across the gateways of reloads, and the in-flight guard.

use std::time::Duration;

use http::StatusCode;

use super::*;

fn encoded(metrics: &Metrics) -> String {
    metrics.encode(&Scrape::default()).unwrap()
}

/// The sample lines of `text` that start with `prefix`.
fn lines<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn a_response_is_counted_by_route_and_status_and_timed_by_status_class() {
    let metrics = Metrics::new();
    let api = metrics.route("api");
    api.responded(StatusCode::OK, Duration::from_millis(3));
    api.responded(StatusCode::OK, Duration::from_millis(40));
    api.responded(StatusCode::UNAUTHORIZED, Duration::from_micros(200));
    let text = encoded(&metrics);
    let mut requests = lines(&text, "tokengate_gateway_requests_total");
    requests.sort_unstable();
    assert_eq!(
        requests,
        [
            "tokengate_gateway_requests_total{route=\"api\",status=\"200\"} 2",
            "tokengate_gateway_requests_total{route=\"api\",status=\"401\"} 1",
        ]
    );
    assert!(text.contains("# TYPE tokengate_gateway_request_duration_seconds histogram\n"));
    assert!(text.contains("# UNIT tokengate_gateway_request_duration_seconds seconds\n"));
    // 3 ms and 40 ms: one at or under 5 ms, both at or under 50 ms.
    for (line, count) in [
        ("{le=\"0.0025\",route=\"api\",status_class=\"2xx\"}", 0),
        ("{le=\"0.005\",route=\"api\",status_class=\"2xx\"}", 1),
        ("{le=\"0.05\",route=\"api\",status_class=\"2xx\"}", 2),
        ("{le=\"+Inf\",route=\"api\",status_class=\"2xx\"}", 2),
        ("{le=\"0.0005\",route=\"api\",status_class=\"4xx\"}", 1),
    ] {
        let want = format!("tokengate_gateway_request_duration_seconds_bucket{line} {count}\n");
        assert!(text.contains(&want), "{want} in\n{text}");
    }
    assert!(text.contains(
        "tokengate_gateway_request_duration_seconds_count{route=\"api\",status_class=\"2xx\"} 2\n"
    ));
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn statuses_outside_the_kept_slots_are_counted_too() {
    let metrics = Metrics::new();
    let route = metrics.route("odd");
    let status = StatusCode::from_u16(799).unwrap();
    route.responded(status, Duration::ZERO);
    route.responded(status, Duration::ZERO);
    let text = encoded(&metrics);
    assert!(
        text.contains("tokengate_gateway_requests_total{route=\"odd\",status=\"799\"} 2\n"),
        "{text}"
    );
    assert!(text.contains(
        "tokengate_gateway_request_duration_seconds_count{route=\"odd\",status_class=\"7xx\"} 2\n"
    ));
}

#[test]
fn the_gateway_of_a_reload_counts_on_in_the_same_series() {
    let metrics = Metrics::new();
    metrics
        .route("api")
        .responded(StatusCode::OK, Duration::ZERO);
    // The next configuration's gateway resolves its handles again, from the same registry.
    metrics
        .route("api")
        .responded(StatusCode::OK, Duration::ZERO);
    let text = encoded(&metrics);
    assert_eq!(
        lines(&text, "tokengate_gateway_requests_total{"),
        ["tokengate_gateway_requests_total{route=\"api\",status=\"200\"} 2"]
    );
}

#[test]
fn a_route_that_served_nothing_has_no_series() {
    let metrics = Metrics::new();
    let _unused = metrics.route("never");
    let text = encoded(&metrics);
    assert!(!text.contains("never"), "{text}");
}

#[test]
fn token_checks_are_counted_by_route_and_outcome() {
    let metrics = Metrics::new();
    let api = metrics.route("api");
    api.verified(Ok(()));
    api.verified(Ok(()));
    api.verified(Err("ERR_JWT_EXPIRED"));
    metrics.route("mcp").verified(Err("ERR_GATEWAY_NO_TOKEN"));
    let text = encoded(&metrics);
    let mut got = lines(&text, "tokengate_gateway_token_verifications_total{");
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "tokengate_gateway_token_verifications_total{route=\"api\",outcome=\"ERR_JWT_EXPIRED\"} 1",
            "tokengate_gateway_token_verifications_total{route=\"api\",outcome=\"valid\"} 2",
            "tokengate_gateway_token_verifications_total{route=\"mcp\",outcome=\"ERR_GATEWAY_NO_TOKEN\"} 1",
        ]
    );
}

#[test]
fn upstream_latency_is_a_histogram_by_route() {
    let metrics = Metrics::new();
    metrics
        .route("api")
        .upstream_answered(Duration::from_millis(700));
    let text = encoded(&metrics);
    assert!(text.contains(
        "tokengate_gateway_upstream_duration_seconds_bucket{le=\"0.5\",route=\"api\"} 0\n"
    ));
    assert!(text.contains(
        "tokengate_gateway_upstream_duration_seconds_bucket{le=\"1.0\",route=\"api\"} 1\n"
    ));
    assert!(text.contains("tokengate_gateway_upstream_duration_seconds_sum{route=\"api\"} 0.7\n"));
}

#[test]
fn the_in_flight_gauge_follows_its_guards() {
    let metrics = Metrics::new();
    let first = metrics.in_flight();
    let second = metrics.in_flight();
    assert!(encoded(&metrics).contains("\ntokengate_gateway_requests_in_flight 2\n"));
    drop(first);
    drop(second);
    assert!(encoded(&metrics).contains("\ntokengate_gateway_requests_in_flight 0\n"));
}

#[test]
fn cache_counters_keep_the_names_scrapers_parse() {
    let metrics = Metrics::new();
    let counters = metrics.token_cache();
    counters.hit();
    counters.hit();
    counters.miss();
    assert_eq!(counters.values(), (2, 1));
    let text = metrics
        .encode(&Scrape {
            response_cache_bytes: vec![("api".into(), 1234)],
            token_cache_entries: 5,
            audit_events_dropped: 3,
            jwks: Vec::new(),
        })
        .unwrap();
    assert!(
        text.contains("\ntokengate_response_cache_bytes{route=\"api\"} 1234\n"),
        "{text}"
    );
    // interop/gateway.mjs reads the hits with ^tokengate_token_cache_hits_total( {…})? N$.
    assert_eq!(
        lines(&text, "tokengate_token_cache_hits_total"),
        ["tokengate_token_cache_hits_total 2"]
    );
    assert_eq!(
        lines(&text, "tokengate_token_cache_misses_total"),
        ["tokengate_token_cache_misses_total 1"]
    );
    assert_eq!(
        lines(&text, "tokengate_token_cache_entries"),
        ["tokengate_token_cache_entries 5"]
    );
    assert_eq!(
        lines(&text, "tokengate_audit_events_dropped_total"),
        ["tokengate_audit_events_dropped_total 3"]
    );
    assert!(text.contains("# TYPE tokengate_token_cache_hits counter\n"));
}

#[test]
fn jwks_fetches_and_failures_are_labelled_by_issuer() {
    let metrics = Metrics::new();
    let text = metrics
        .encode(&Scrape {
            jwks: vec![
                JwksFetches {
                    issuer: "partner".into(),
                    fetches: 4,
                    failures: 1,
                },
                JwksFetches {
                    issuer: "oidc".into(),
                    fetches: 1,
                    failures: 0,
                },
            ],
            ..Scrape::default()
        })
        .unwrap();
    let mut got = lines(&text, "tokengate_jwks_");
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "tokengate_jwks_fetch_failures_total{issuer=\"oidc\"} 0",
            "tokengate_jwks_fetch_failures_total{issuer=\"partner\"} 1",
            "tokengate_jwks_fetches_total{issuer=\"oidc\"} 1",
            "tokengate_jwks_fetches_total{issuer=\"partner\"} 4",
        ]
    );
}

fn seven() -> u64 {
    7
}

#[test]
fn a_counter_kept_elsewhere_is_read_at_each_scrape() {
    let mut metrics = Metrics::new();
    metrics.register_counter_fn("tokengate_log_lines_dropped", "Log lines dropped", seven);
    let text = encoded(&metrics);
    assert!(
        text.contains(
            "# HELP tokengate_log_lines_dropped Log lines dropped.\n\
             # TYPE tokengate_log_lines_dropped counter\n\
             tokengate_log_lines_dropped_total 7\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("# EOF").count(), 1);
}

#[test]
fn route_names_are_escaped_in_labels() {
    let metrics = Metrics::new();
    metrics
        .route("a\"b\\c")
        .responded(StatusCode::OK, Duration::ZERO);
    let text = encoded(&metrics);
    assert!(
        text.contains("tokengate_gateway_requests_total{route=\"a\\\"b\\\\c\",status=\"200\"} 1\n"),
        "{text}"
    );
}

#[test]
fn unrouted_requests_and_routes_share_one_lookup() {
    let metrics = Metrics::new();
    let by_route = ByRoute::new(&metrics);
    by_route
        .get(None)
        .responded(StatusCode::NOT_FOUND, Duration::ZERO);
    by_route
        .get(Some("not a route of this gateway"))
        .responded(StatusCode::NOT_FOUND, Duration::ZERO);
    assert_eq!(by_route.get(None).route(), UNROUTED);
    assert!(encoded(&metrics)
        .contains("tokengate_gateway_requests_total{route=\"-\",status=\"404\"} 2\n"));
}

#[test]
fn a_latency_on_a_bound_counts_in_that_bucket_and_one_past_the_last_in_inf() {
    let metrics = Metrics::new();
    let api = metrics.route("api");
    api.upstream_answered(Duration::from_millis(1)); // exactly the 0.001 bound
    api.upstream_answered(Duration::from_nanos(1_000_001)); // just past it
    api.upstream_answered(Duration::from_secs(31)); // past the last bound
    let text = encoded(&metrics);
    let bucket = |le: &str| {
        let prefix = format!(
            "tokengate_gateway_upstream_duration_seconds_bucket{{le=\"{le}\",route=\"api\"}} "
        );
        lines(&text, &prefix)
            .first()
            .and_then(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
    };
    assert_eq!(bucket("0.0005").as_deref(), Some("0"));
    assert_eq!(bucket("0.001").as_deref(), Some("1"));
    assert_eq!(bucket("0.0025").as_deref(), Some("2"));
    assert_eq!(bucket("30.0").as_deref(), Some("2"));
    assert_eq!(bucket("+Inf").as_deref(), Some("3"));
    assert!(text.contains("tokengate_gateway_upstream_duration_seconds_count{route=\"api\"} 3\n"));
    // 0.001 + 0.001000001 + 31 seconds.
    assert!(
        text.contains(
            "tokengate_gateway_upstream_duration_seconds_sum{route=\"api\"} 31.002000001\n"
        ),
        "{text}"
    );
}
