//! Rate limits and load shedding through a real gateway on a socket: local and cluster
//! (Redis) limits, their keys and tiers, the `RateLimit` fields and 429s, Redis going away
//! and coming back, the token service's limits, reload, and the concurrency bounds.
//! The exactness of one budget across two `tokengate serve` processes is in `process.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use store::testing::{redis_url, run_sqlite, Ctx, RedisServer};

use crate::gateway_env::{front, front_with, partner_issuer, partner_token, send, upstream, Front};
use crate::harness::{basic, Reply};

/// A route name no other run shares: cluster limits keep their cells in a Redis other runs
/// may use too.
fn unique(name: &str) -> String {
    format!("{name}-{}", store::testing::random_hex(4))
}

/// A front with the `partner` issuer, and one route `name` at `/api/` with `limits` (TOML
/// after the route's auth); `head` goes before the routes (`[server]`, `[redis]`…).
async fn limited(ctx: &Ctx, name: &str, head: &str, limits: &str) -> (Front, jose::Jwk) {
    let (up, _) = upstream("up").await;
    let (key, issuer) = partner_issuer("p1");
    let config = format!(
        "{head}\n{issuer}\
         [[routes]]\nname = \"{name}\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"partner\"]\naudience = \"https://api.example\"\n\n{limits}"
    );
    (front(ctx, &config).await, key)
}

fn token(key: &jose::Jwk, claims: serde_json::Value) -> String {
    partner_token(key, "https://partner.example", claims)
}

async fn call(f: &Front, token: &str, extra: &[(&str, &str)]) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    f.get("/api/x", &headers).await
}

/// Statuses of `n` calls.
async fn statuses(f: &Front, token: &str, extra: &[(&str, &str)], n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(call(f, token, extra).await.status.as_u16());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

const PER_CLIENT: &str =
    "[[routes.rate_limits]]\nname = \"per-client\"\nkey = \"client_id\"\nlimit = 3\nper = \"1m\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_limit_counts_each_client_and_says_where_it_stands() {
    run_sqlite(|ctx| async move {
        let (f, key) = limited(&ctx, "api", "", PER_CLIENT).await;
        let alice = token(&key, json!({"client_id": "app-1"}));
        let mut left = Vec::new();
        for _ in 0..3 {
            let r = call(&f, &alice, &[]).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.header("ratelimit-policy"), Some("\"per-client\";q=3;w=60"));
            left.push(r.header("ratelimit").unwrap().to_owned());
        }
        assert_eq!(left[0], "\"per-client\";r=2;t=20");
        assert_eq!(left[2], "\"per-client\";r=0;t=60");
        let refused = call(&f, &alice, &[]).await;
        assert_eq!(refused.status, 429, "{}", refused.text());
        assert_eq!(refused.header("retry-after"), Some("20"));
        assert_eq!(refused.header("ratelimit"), Some("\"per-client\";r=0;t=60"));
        let body = refused.json();
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(body["limit"], "per-client");
        assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
        // The key's value (a client id here, a user id elsewhere) is in no response field.
        assert!(!format!("{:?}", refused.headers).contains("app-1"));
        // Another client has its own budget.
        let bob = token(&key, json!({"client_id": "app-2"}));
        assert_eq!(statuses(&f, &bob, &[], 4).await, [200, 200, 200, 429]);
        // Counted in the metrics by route, limit and outcome.
        let metrics = f.get("/metrics", &[]).await.text();
        assert!(metrics.contains("tokengate_rate_limit_requests_total{route=\"api\",limit=\"per-client\",outcome=\"allowed\"} 6"), "{metrics}");
        assert!(metrics.contains("tokengate_rate_limit_requests_total{route=\"api\",limit=\"per-client\",outcome=\"limited\"} 2"), "{metrics}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_and_claim_tiers() {
    run_sqlite(|ctx| async move {
        let limits = "[[routes.rate_limits]]\nname = \"free\"\nkey = \"sub\"\nlimit = 2\nper = \"1h\"\nburst = 1\nwhen_claim = { plan = \"free\" }\n\n\
                      [[routes.rate_limits]]\nname = \"gold\"\nkey = \"sub\"\nlimit = 5\nper = \"1h\"\nwhen_claim = { plan = \"gold\", groups = \"beta\" }\n";
        let (f, key) = limited(&ctx, "api", "", limits).await;
        let free = token(&key, json!({"sub": "u1", "plan": "free"}));
        let gold = token(&key, json!({"sub": "u2", "plan": "gold", "groups": ["x", "beta"]}));
        let gold_not_beta = token(&key, json!({"sub": "u3", "plan": "gold", "groups": ["x"]}));
        let s = statuses(&f, &free, &[], 5).await;
        assert_eq!(count(&s, 200), 3, "limit 2 plus burst 1: {s:?}");
        let s = statuses(&f, &gold, &[], 7).await;
        assert_eq!(count(&s, 200), 5, "{s:?}");
        let r = call(&f, &gold, &[]).await;
        assert_eq!(r.json()["limit"], "gold");
        // A token no tier applies to is not limited, and its responses carry no fields.
        let s = statuses(&f, &gold_not_beta, &[], 8).await;
        assert_eq!(count(&s, 200), 8, "{s:?}");
        assert_eq!(call(&f, &gold_not_beta, &[]).await.header("ratelimit"), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_claim_keys_with_the_address_when_missing() {
    run_sqlite(|ctx| async move {
        let limits = "[[routes.rate_limits]]\nname = \"by-key\"\nkey = \"header:x-api-key\"\nlimit = 2\nper = \"1h\"\n\n\
                      [[routes.rate_limits]]\nname = \"by-tenant\"\nkey = \"claim:tenant\"\nlimit = 4\nper = \"1h\"\n";
        let (f, key) = limited(&ctx, "api", "", limits).await;
        let acme = token(&key, json!({"tenant": "acme"}));
        assert_eq!(statuses(&f, &acme, &[("x-api-key", "k1")], 3).await, [200, 200, 429]);
        assert_eq!(statuses(&f, &acme, &[("x-api-key", "k2")], 3).await, [200, 200, 429]);
        // Four allowed for the tenant in all: its fifth request is refused by the tenant's
        // limit, whatever its API key.
        let r = call(&f, &acme, &[("x-api-key", "k3")]).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["limit"], "by-tenant");
        // Without the header the client's address is the key: one budget for both calls
        // from here, and a token without the claim too.
        let other = token(&key, json!({"sub": "x"}));
        assert_eq!(statuses(&f, &other, &[], 3).await, [200, 200, 429]);
    })
    .await;
}

/// A public route counted by address, with the peer (127.0.0.1) trusted or not.
async fn by_address(ctx: &Ctx, trusted: bool) -> Front {
    let (up, _) = upstream("up").await;
    let server = if trusted {
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n"
    } else {
        ""
    };
    let config = format!(
        "{server}[[routes]]\nname = \"open\"\npath_prefix = \"/open/\"\nupstreams = [\"http://{up}\"]\nauth = \"none\"\n\
         [[routes.rate_limits]]\nname = \"per-ip\"\nkey = \"ip\"\nlimit = 2\nper = \"1h\"\n"
    );
    front(ctx, &config).await
}

/// Statuses of three requests to the public route claiming to be forwarded for `xff`.
async fn from(f: &Front, xff: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(
            f.get("/open/", &[("x-forwarded-for", xff)])
                .await
                .status
                .as_u16(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_key_believes_forwarded_for_only_from_a_trusted_proxy() {
    run_sqlite(|ctx| async move {
        let untrusted = by_address(&ctx, false).await;
        // From an untrusted peer, every address it claims is 127.0.0.1's budget.
        assert_eq!(from(&untrusted, "198.51.100.1").await, [200, 200, 429]);
        assert_eq!(from(&untrusted, "198.51.100.2").await, [429, 429, 429]);
        let trusted = by_address(&ctx, true).await;
        assert_eq!(from(&trusted, "198.51.100.1").await, [200, 200, 429]);
        assert_eq!(from(&trusted, "198.51.100.2").await, [200, 200, 429]);
        // The rightmost address its proxy did not add: a client cannot pick a fresh one.
        assert_eq!(
            from(&trusted, "203.0.113.9, 198.51.100.2").await,
            [429, 429, 429]
        );
    })
    .await;
}

fn cluster_limits(on_unavailable: &str) -> String {
    format!(
        "[[routes.rate_limits]]\nname = \"shared\"\nkey = \"client_id\"\nlimit = 3\nper = \"1h\"\nscope = \"cluster\"\non_unavailable = \"{on_unavailable}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_limits_share_one_budget_in_redis() {
    run_sqlite(|ctx| async move {
        let name = unique("cluster");
        let head = format!("[redis]\nurl = \"{}\"\ntimeout = \"1s\"\n", redis_url());
        let (a, key) = limited(&ctx, &name, &head, &cluster_limits("deny")).await;
        // A second gateway (as a second node would) on the same Redis, same route.
        let config = std::fs::read_to_string(a.app_routes_file()).unwrap();
        let b = front(&ctx, &config).await;
        let alice = token(&key, json!({"client_id": "c-1"}));
        let r = call(&a, &alice, &[]).await;
        assert_eq!(
            r.status,
            200,
            "Redis at {} must answer: {}",
            redis_url(),
            r.text()
        );
        assert_eq!(r.header("ratelimit"), Some("\"shared\";r=2;t=1200"));
        assert_eq!(
            call(&b, &alice, &[]).await.header("ratelimit"),
            Some("\"shared\";r=1;t=2400")
        );
        assert_eq!(call(&a, &alice, &[]).await.status, 200);
        let refused = call(&b, &alice, &[]).await;
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("1200"));
        assert_eq!(refused.json()["limit"], "shared");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_follows_on_unavailable_and_limiting_resumes_when_it_returns() {
    run_sqlite(|ctx| async move {
        let mut redis = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap();
        let head = format!("[redis]\nurl = \"{}\"\ntimeout = \"200ms\"\n", redis.url());
        let (allow, key) = limited(&ctx, &unique("allow"), &head, &cluster_limits("allow")).await;
        let (deny, deny_key) = limited(&ctx, &unique("deny"), &head, &cluster_limits("deny")).await;
        let deny_token = token(&deny_key, json!({"client_id": "c"}));
        let t = token(&key, json!({"client_id": "c"}));
        assert_eq!(statuses(&allow, &t, &[], 4).await, [200, 200, 200, 429]);
        assert_eq!(call(&deny, &deny_token, &[]).await.status, 200);
        let mut redis = tokio::task::spawn_blocking(move || {
            redis.stop();
            redis
        })
        .await
        .unwrap();
        // allow: through (Redis's answer is missing, not a refusal), counted as failures.
        assert_eq!(statuses(&allow, &t, &[], 3).await, [200, 200, 200]);
        let metrics = allow.get("/metrics", &[]).await.text();
        let failures = metric(&metrics, "tokengate_redis_failures_total");
        assert!(failures >= 3.0, "{metrics}");
        assert!(metrics.contains("outcome=\"unavailable\"} 3"), "{metrics}");
        // deny: 503 with Retry-After.
        let r = call(&deny, &deny_token, &[]).await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["error"], "temporarily_unavailable");
        // Back (empty: its data went with it), and limiting resumes without a restart.
        redis = tokio::task::spawn_blocking(move || {
            redis.resume();
            redis
        })
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = call(&deny, &deny_token, &[]).await;
            if r.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still {} after Redis came back",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = statuses(&allow, &t, &[], 5).await;
        assert_eq!(
            count(&s, 429),
            2,
            "three allowed again, then limited: {s:?}"
        );
        drop(redis);
    })
    .await;
}

/// The value of an unlabelled metric line `name value`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_in_redis_answers_as_gcra_does_here() {
    use gateway::ratelimit::{gcra, Rate, GCRA_SCRIPT};
    let redis = store::redis::Redis::new(&store::redis::RedisConfig {
        url: redis_url(),
        password: None,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let script = store::redis::Script::new(GCRA_SCRIPT);
    let rate = Rate {
        limit: 4,
        per: Duration::from_secs(3600),
        burst: 2,
    };
    let key = format!("tokengate:test:{}", store::testing::random_hex(8));
    let mut tat = 0u64;
    for i in 0..8 {
        let spend = i != 3;
        let (answer, _) = redis
            .run_script::<Vec<i64>>(
                &script,
                &[key.as_bytes()],
                &[rate.interval_micros(), rate.capacity(), u64::from(spend)],
            )
            .await;
        let answer = answer.unwrap_or_else(|e| panic!("Redis at {} must answer: {e}", redis_url()));
        // The same request here, at a `now` that makes the reset equal Redis's (both count
        // from their own clock; only the differences matter).
        let (ours, next) = gcra(tat, 1, &rate);
        if spend {
            if let Some(next) = next {
                tat = next;
            }
        }
        assert_eq!(
            answer[0] == 1,
            ours.allowed,
            "request {i}: {answer:?} vs {ours:?}"
        );
        assert_eq!(
            u64::try_from(answer[1]).unwrap(),
            ours.remaining,
            "request {i}"
        );
        // Redis's clock moved on between calls: its reset is at most a few ms shorter.
        let reset = Duration::from_micros(u64::try_from(answer[2]).unwrap());
        assert!(
            ours.reset.saturating_sub(reset) < Duration::from_millis(500),
            "{i}: {reset:?} vs {:?}",
            ours.reset
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_state_of_unchanged_limits_only() {
    run_sqlite(|ctx| async move {
        let (f, key) = limited(&ctx, "api", "", PER_CLIENT).await;
        let t = token(&key, json!({"client_id": "c"}));
        assert_eq!(statuses(&f, &t, &[], 4).await, [200, 200, 200, 429]);
        // Same limit, something else changed: still spent.
        let file = f.app_routes_file();
        let config = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            format!("{config}\n[routes.limits]\nmax_in_flight = 100\n"),
        )
        .unwrap();
        f.app.reload().unwrap();
        assert_eq!(call(&f, &t, &[]).await.status, 429);
        // The limit changed: a fresh budget.
        std::fs::write(&file, config.replace("limit = 3", "limit = 2")).unwrap();
        f.app.reload().unwrap();
        assert_eq!(statuses(&f, &t, &[], 3).await, [200, 200, 429]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_at_its_max_in_flight_answers_503_at_once() {
    run_sqlite(|ctx| async move {
        let (up, state) = upstream("up").await;
        let config = format!(
            "[[routes]]\nname = \"held\"\npath_prefix = \"/held/\"\nstrip_prefix = \"/held\"\nupstreams = [\"http://{up}\"]\nauth = \"none\"\ntimeout = \"60s\"\n\
             [routes.limits]\nmax_in_flight = 2\n"
        );
        let f = Arc::new(front(&ctx, &config).await);
        // Two requests the upstream holds (its /slow never answers).
        let held: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&f);
                tokio::spawn(async move { f.get("/held/slow", &[]).await })
            })
            .collect();
        crate::gateway_env::wait_for("two requests held upstream", || state.hits_on("/slow") == 2)
            .await;
        let started = Instant::now();
        let third = f.get("/held/slow", &[]).await;
        let took = started.elapsed();
        assert_eq!(third.status, 503, "{}", third.text());
        assert_eq!(third.header("retry-after"), Some("1"));
        assert_eq!(third.json()["error"], "overloaded");
        // At once, not after the held ones (the route's timeout is a minute): the issue's
        // target is under 100 ms, which this machine meets; the bound here only proves that
        // nothing waited, so a loaded machine does not fail the test.
        assert!(took < Duration::from_secs(5), "{took:?}");
        eprintln!("the third request was refused in {took:?}");
        let metrics = f.get("/metrics", &[]).await.text();
        assert!(metrics.contains("tokengate_requests_shed_total{route=\"held\",reason=\"route_in_flight\"} 1"), "{metrics}");
        for h in held {
            h.abort();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sheds_requests_and_connections_past_its_bounds() {
    run_sqlite(|ctx| async move {
        let (up, state) = upstream("up").await;
        let config = format!(
            "[[routes]]\nname = \"held\"\npath_prefix = \"/held/\"\nstrip_prefix = \"/held\"\nupstreams = [\"http://{up}\"]\nauth = \"none\"\ntimeout = \"60s\"\n"
        );
        let access = tokengate::server::Access {
            max_in_flight: Some(1),
            max_connections: Some(3),
            ..Default::default()
        };
        let f = Arc::new(front_with(&ctx, &config, access).await);
        let f2 = Arc::clone(&f);
        let held = tokio::spawn(async move { f2.get("/held/slow", &[]).await });
        crate::gateway_env::wait_for("one request held upstream", || state.hits_on("/slow") == 1)
            .await;
        // The token service is bounded too: the node's bound is the node's.
        let r = f.get("/oauth2/jwks", &[]).await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["error"], "overloaded");
        assert!(r.header("x-request-id").is_some());
        held.abort();
        // The aborted request's connection closes, and with it its place.
        let deadline = Instant::now() + Duration::from_secs(20);
        while f.get("/oauth2/jwks", &[]).await.status == 503 {
            assert!(Instant::now() < deadline, "the held request's place was never given back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Connections: with three open (the test client's own pooled ones count too), the
        // next is told 503 and closed.
        let addr = f.url("").trim_start_matches("http://").to_owned();
        let mut open = Vec::new();
        let refused = loop {
            assert!(open.len() <= 3, "a fourth connection was served");
            let (stream, answer) = raw_get(&addr, "/oauth2/jwks").await;
            if answer.starts_with("HTTP/1.1 503") {
                break answer;
            }
            open.push(stream);
        };
        assert!(refused.to_ascii_lowercase().contains("retry-after: 1"), "{refused}");
        assert!(refused.contains("\"error\":\"overloaded\""), "{refused}");
        drop(open);
        // Once they close, connections are served again.
        let deadline = Instant::now() + Duration::from_secs(20);
        let metrics = loop {
            let (_, answer) = raw_get(&addr, "/metrics").await;
            if answer.starts_with("HTTP/1.1 200") {
                break answer;
            }
            assert!(Instant::now() < deadline, "{answer}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // At least once each (the wait for the held request's place may have been shed too).
        assert!(metrics.contains("reason=\"server_in_flight\"}"), "{metrics}");
        assert!(metrics.contains("reason=\"max_connections\"}"), "{metrics}");
    })
    .await;
}

/// One GET on a new connection, read to the end of its answer's head and body (the
/// connection is kept open when the server keeps it: the answer is read by length).
async fn raw_get(addr: &str, path: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    (stream, String::from_utf8_lossy(&out).into_owned())
}

/// A front whose token service has `limits` (`[token_service.rate_limits]` entries), and a
/// client_secret_basic client of it.
async fn service_front(ctx: &Ctx, limits: &str) -> Front {
    // The test's requests all come from 127.0.0.1: as a trusted proxy, it can say which
    // address each one is for.
    let server = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    front(
        ctx,
        &format!("{server}[token_service.rate_limits]\n{limits}"),
    )
    .await
}

async fn new_client(f: &Front) -> (String, String) {
    crate::harness::new_client(
        &f.service,
        &["read"],
        &[crate::harness::API],
        store::AuthMethod::ClientSecretBasic,
    )
    .await
}

/// A client_credentials request for client `id`, from the address `from`.
async fn token_request(f: &Front, id: &str, secret: &str, from: &str) -> Reply {
    let auth = basic(id, secret);
    send(
        &crate::gateway_env::client(),
        "POST",
        &f.url("/oauth2/token"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-for", from),
        ],
        "grant_type=client_credentials",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentications_lock_the_client_out_for_the_period() {
    run_sqlite(|ctx| async move {
        let f = service_front(&ctx, "failed_auth = { limit = 10, per = \"5m\" }\n").await;
        let (a, a_secret) = new_client(&f).await;
        let (b, b_secret) = new_client(&f).await;
        let (c, c_secret) = new_client(&f).await;
        let attacker = "198.51.100.1";
        for i in 0..11 {
            let r = token_request(&f, &a, "wrong", attacker).await;
            let expected = if i < 10 { 401 } else { 429 };
            assert_eq!(r.status, expected, "attempt {}: {}", i + 1, r.text());
        }
        let locked = token_request(&f, &a, &a_secret, attacker).await;
        assert_eq!(
            locked.status,
            429,
            "the right secret too: {}",
            locked.text()
        );
        assert_eq!(locked.json()["error"], "rate_limited");
        assert_eq!(locked.json()["limit"], "failed_auth");
        // One failure comes back every 5m / 10 = 30 s.
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
        assert_eq!(locked.header("cache-control"), Some("no-store"));
        // From elsewhere the locked client is still locked (its own count)…
        let r = token_request(&f, &a, &a_secret, "203.0.113.5").await;
        assert_eq!(r.status, 429, "{}", r.text());
        // …another client from elsewhere is unaffected…
        let r = token_request(&f, &b, &b_secret, "203.0.113.5").await;
        assert_eq!(r.status, 200, "{}", r.text());
        // …and the address that failed ten times is locked for every client.
        let r = token_request(&f, &c, &c_secret, attacker).await;
        assert_eq!(r.status, 429, "{}", r.text());
        // Audited once for the client and once for the address, not per attempt.
        let limited = || async {
            let events = f.service.store().audit_events(0, 1000).await.unwrap();
            events
                .into_iter()
                .filter(|e| e.event.event == "client.auth_limited")
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while limited().await.len() < 2 {
            assert!(Instant::now() < deadline, "{:?}", limited().await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let events = limited().await;
        assert_eq!(events.len(), 2, "{events:?}");
        // The address is asked first: its lockout is the first event, the client's (met
        // from the other address) the second; client C from the locked address adds none.
        let reason = |i: usize| events[i].event.reason.clone().unwrap();
        assert!(reason(0).contains(attacker), "{events:?}");
        assert_eq!(events[1].event.client_id.as_deref(), Some(a.as_str()));
        assert!(reason(1).ends_with("for the client"), "{events:?}");
    })
    .await;
}

/// A TCP proxy in front of Redis that can go silent: connections open when `silence` is
/// called stop passing bytes either way (they stay open, as behind a dead network path),
/// while new ones pass as before.
struct SilentProxy {
    addr: std::net::SocketAddr,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl SilentProxy {
    async fn start(to: String) -> SilentProxy {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = Arc::new(AtomicU64::new(0));
        let current = Arc::clone(&generation);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&to).await else {
                    continue;
                };
                let mine = current.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| {
                    (
                        Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(w) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    )
                }) {
                    let current = Arc::clone(&current);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // Silenced: swallow what comes, answer nothing, close nothing.
                            if current.load(Ordering::SeqCst) != mine {
                                continue;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        SilentProxy { addr, generation }
    }

    fn silence(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_connection_gone_silent_is_replaced() {
    run_sqlite(|ctx| async move {
        let redis = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap();
        let proxy = SilentProxy::start(redis.url().trim_start_matches("redis://").to_owned()).await;
        let head = format!(
            "[redis]\nurl = \"redis://{}\"\ntimeout = \"100ms\"\n",
            proxy.addr
        );
        let (f, key) = limited(&ctx, &unique("silent"), &head, &cluster_limits("deny")).await;
        let t = token(&key, json!({"client_id": "c"}));
        assert_eq!(call(&f, &t, &[]).await.status, 200);
        proxy.silence();
        // The open connection answers nothing; after a few calls without an answer a new
        // connection is made, and that one is answered.
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = call(&f, &t, &[]).await.status.as_u16();
            seen.push(status);
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "never answered again: {seen:?}");
        }
        assert!(seen.len() > 1 && seen[0] == 503, "{seen:?}");
        assert!(
            seen.len() <= 6,
            "replaced after three silent calls: {seen:?}"
        );
        drop(redis);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_sent_at_once_get_no_more_than_the_limit() {
    run_sqlite(|ctx| async move {
        let f = Arc::new(service_front(&ctx, "failed_auth = { limit = 5, per = \"5m\" }\n").await);
        let (a, a_secret) = new_client(&f).await;
        let guesses: Vec<_> = (0..30)
            .map(|i| {
                let (f, a) = (Arc::clone(&f), a.clone());
                // Each from its own address: only the client's count can stop them.
                tokio::spawn(async move {
                    token_request(&f, &a, "wrong", &format!("198.51.100.{}", i + 1))
                        .await
                        .status
                        .as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for g in guesses {
            statuses.push(g.await.unwrap());
        }
        assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
        assert_eq!(count(&statuses, 429), 25, "{statuses:?}");
        // Successes spend nothing: another client may ask again and again.
        let (b, b_secret) = new_client(&f).await;
        for _ in 0..8 {
            assert_eq!(
                token_request(&f, &b, &b_secret, "203.0.113.7").await.status,
                200
            );
        }
        assert_eq!(
            token_request(&f, &a, &a_secret, "203.0.113.7").await.status,
            429
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_counts_what_the_client_was_served_and_no_one_else_can_spend_it() {
    run_sqlite(|ctx| async move {
        let f = service_front(
            &ctx,
            "per_client = { limit = 3, per = \"1h\" }\nper_ip = { limit = 100, per = \"1h\" }\n",
        )
        .await;
        let (a, a_secret) = new_client(&f).await;
        // Someone naming the client without its secret spends nothing of its budget.
        for _ in 0..5 {
            assert_eq!(
                token_request(&f, &a, "wrong", "198.51.100.1").await.status,
                401
            );
        }
        let mut left = Vec::new();
        for _ in 0..3 {
            let r = token_request(&f, &a, &a_secret, "203.0.113.7").await;
            assert_eq!(r.status, 200, "{}", r.text());
            left.push(r.header("ratelimit").unwrap().to_owned());
        }
        assert_eq!(left[0], "\"per_client\";r=2;t=1200");
        let r = token_request(&f, &a, &a_secret, "203.0.113.7").await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json()["limit"], "per_client");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_pages_count_per_address() {
    run_sqlite(|ctx| async move {
        let f = service_front(&ctx, "per_ip = { limit = 3, per = \"1h\" }\n").await;
        let page = |from: &'static str| {
            let url = f.url("/oauth2/authorize?client_id=x");
            async move {
                send(
                    &crate::gateway_env::client(),
                    "GET",
                    &url,
                    &[("x-forwarded-for", from)],
                    "",
                )
                .await
            }
        };
        // Sign-in is not configured here: each load is a 404 page, and still one request of
        // its address.
        for _ in 0..3 {
            assert_eq!(page("198.51.100.1").await.status, 404);
        }
        let refused = page("198.51.100.1").await;
        assert_eq!(refused.status, 429, "{}", refused.text());
        assert!(refused.header("retry-after").is_some());
        assert_eq!(page("203.0.113.7").await.status, 404, "another address");
    })
    .await;
}
