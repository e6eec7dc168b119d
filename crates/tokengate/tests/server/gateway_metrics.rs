//! `/metrics` after real gateway traffic: series by route, status and refusal reason, the
//! token cache and the remote key set, kept across a reload.

use std::sync::atomic::Ordering;

use serde_json::json;

use store::testing::Ctx;

use crate::gateway_env::{front, partner_key, partner_token, remote_issuer, upstream, Front};
use crate::harness::API;

/// The `/metrics` document, checked for its media type and its end.
async fn scrape(f: &Front) -> String {
    let r = f.get("/metrics", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    text
}

/// The sample lines of `text` starting with `prefix`, sorted.
fn samples<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    let mut found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    found.sort_unstable();
    found
}

pub async fn metrics_by_route_status_and_reason(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let key = partner_key("r1");
    let remote = remote_issuer(&[&key]).await;
    let config = format!(
        "[[issuers]]\nname = \"remote\"\nissuer = \"https://remote.example\"\njwks_url = \"{}/jwks\"\nalgorithms = [\"ES256\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\", \"remote\"]\naudience = \"{API}\"\n\n\
         [[routes]]\nname = \"open\"\npath = \"/open\"\nupstreams = [\"http://{up}\"]\nauth = \"none\"\n",
        remote.url()
    );
    let f = front(&ctx, &config).await;
    let ours = format!("Bearer {}", f.token(API, &["read"]));
    let theirs = format!(
        "Bearer {}",
        partner_token(&key, "https://remote.example", json!({}))
    );
    let expired = format!(
        "Bearer {}",
        partner_token(
            &key,
            "https://remote.example",
            json!({"exp": store::unix_now() - 600})
        )
    );
    // Our token twice (a cache miss, then a hit), the partner's once (a miss and the first
    // fetch of its key set).
    for bearer in [&ours, &ours, &theirs] {
        let r = f.get("/api/x", &[("authorization", bearer)]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = f.get("/api/x", &[("authorization", &expired)]).await;
    f.refused(&r, 401, "ERR_JWT_EXPIRED").await;
    // (Not audited: a request without a token is no token event.)
    let challenge = f.get("/api/x", &[]).await.challenge(401);
    assert_eq!(challenge, "Bearer realm=\"tokengate\"");
    assert_eq!(f.get("/open", &[]).await.status, 200);
    assert_eq!(f.get("/nowhere", &[]).await.status, 404);

    let text = scrape(&f).await;
    assert_eq!(
        samples(&text, "tokengate_gateway_requests_total{"),
        [
            "tokengate_gateway_requests_total{route=\"-\",status=\"404\"} 1",
            "tokengate_gateway_requests_total{route=\"api\",status=\"200\"} 3",
            "tokengate_gateway_requests_total{route=\"api\",status=\"401\"} 2",
            "tokengate_gateway_requests_total{route=\"open\",status=\"200\"} 1",
        ]
    );
    // Durations in seconds, by route and status class: every request in some bucket.
    for (labels, count) in [
        ("route=\"api\",status_class=\"2xx\"", 3),
        ("route=\"api\",status_class=\"4xx\"", 2),
        ("route=\"open\",status_class=\"2xx\"", 1),
    ] {
        let line = format!(
            "\ntokengate_gateway_request_duration_seconds_bucket{{le=\"+Inf\",{labels}}} {count}\n"
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert_eq!(
        samples(&text, "tokengate_gateway_upstream_duration_seconds_count"),
        [
            "tokengate_gateway_upstream_duration_seconds_count{route=\"api\"} 3",
            "tokengate_gateway_upstream_duration_seconds_count{route=\"open\"} 1",
        ]
    );
    // Token checks by reason; the public route has none.
    assert_eq!(
        samples(&text, "tokengate_gateway_token_verifications_total{"),
        [
            "tokengate_gateway_token_verifications_total{route=\"api\",outcome=\"ERR_GATEWAY_NO_TOKEN\"} 1",
            "tokengate_gateway_token_verifications_total{route=\"api\",outcome=\"ERR_JWT_EXPIRED\"} 1",
            "tokengate_gateway_token_verifications_total{route=\"api\",outcome=\"valid\"} 3",
        ]
    );
    // The names interop/gateway.mjs and operators' dashboards read. No token, no cache
    // look-up: three misses (ours, theirs, the expired one) and one hit.
    assert_eq!(
        samples(&text, "tokengate_token_cache_hits_total"),
        ["tokengate_token_cache_hits_total 1"]
    );
    assert_eq!(
        samples(&text, "tokengate_token_cache_misses_total"),
        ["tokengate_token_cache_misses_total 3"]
    );
    assert_eq!(samples(&text, "tokengate_token_cache_entries ").len(), 1);
    assert_eq!(
        samples(&text, "tokengate_jwks_"),
        [
            "tokengate_jwks_fetch_failures_total{issuer=\"remote\"} 0",
            "tokengate_jwks_fetches_total{issuer=\"remote\"} 1",
        ]
    );
    assert!(text.contains("\ntokengate_gateway_requests_in_flight 0\n"));
    assert!(text.contains("\ntokengate_audit_events_dropped_total 0\n"));
    assert_eq!(
        samples(&text, "tokengate_log_lines_dropped_total ").len(),
        1,
        "{text}"
    );

    // A reload builds a new gateway over the same registry: counts go on. The issuer's
    // endpoint is down, and a token names a key the cached set lacks: the refetch fails.
    f.app.reload().unwrap();
    remote.up.store(false, Ordering::SeqCst);
    let r = f.get("/api/x", &[("authorization", &ours)]).await;
    assert_eq!(r.status, 200);
    let rotated = format!(
        "Bearer {}",
        partner_token(&partner_key("r2"), "https://remote.example", json!({}))
    );
    let r = f.get("/api/x", &[("authorization", &rotated)]).await;
    f.refused(&r, 401, "ERR_JWKS_NO_MATCHING_KEY").await;
    let text = scrape(&f).await;
    for line in [
        "\ntokengate_gateway_requests_total{route=\"api\",status=\"200\"} 4\n",
        "\ntokengate_gateway_requests_total{route=\"api\",status=\"401\"} 3\n",
        "\ntokengate_gateway_token_verifications_total{route=\"api\",outcome=\"ERR_JWKS_NO_MATCHING_KEY\"} 1\n",
        // The new gateway's cache is empty: ours is verified again.
        "\ntokengate_token_cache_misses_total 5\n",
        "\ntokengate_jwks_fetches_total{issuer=\"remote\"} 2\n",
        "\ntokengate_jwks_fetch_failures_total{issuer=\"remote\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
