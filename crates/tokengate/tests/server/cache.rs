//! The response cache (`[routes.cache]`) through a real gateway in front of an upstream
//! whose answers the tests choose: identities never cross (also under concurrency), the
//! `shared` partition, every directive, `Vary`, revalidation and the client's own
//! conditionals, request collapsing, purge, the memory bound, and Redis storage seen by a
//! second node (and Redis going away).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use oauth::Grant;
use serde_json::json;
use store::testing::{redis_url, run_sqlite, Ctx, RedisServer};

use crate::gateway_env::{front, partner_issuer, partner_token, send, serve_router, Front};
use crate::harness::{Reply, ADMIN, API, ISSUER};

/// The upstream's counts: requests per path and query, and 304s it answered.
#[derive(Default)]
struct Counts {
    by_target: Mutex<HashMap<String, u64>>,
    not_modified: AtomicU64,
}

impl Counts {
    fn of(&self, target: &str) -> u64 {
        self.by_target
            .lock()
            .unwrap()
            .get(target)
            .copied()
            .unwrap_or(0)
    }
}

/// A Last-Modified the upstream gives with `lm=1`.
const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// Answers as the query asks: `cc` (Cache-Control), `etag`, `lm`, `vary`, `cookie`,
/// `status`, `size` (body padding), `stream` (a chunked body of `size` bytes), `delay`
/// (ms), `expires`. The body says how many requests this target had, for whom (the
/// forwarded `sub`) and in which language. A matching `If-None-Match` or
/// `If-Modified-Since` gets 304.
async fn answer(counts: Arc<Counts>, req: Request) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let n = {
        let mut map = counts.by_target.lock().unwrap();
        let n = map.entry(target.clone()).or_default();
        *n += 1;
        *n
    };
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if let Some(ms) = q.get("delay") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let etag = q.get("etag").map(|e| format!("\"{e}\""));
    let mut r = Response::builder();
    if let Some(e) = &etag {
        r = r.header("etag", e);
    }
    if q.contains_key("lm") {
        r = r.header("last-modified", LAST_MODIFIED);
    }
    for (param, field) in [
        ("cc", "cache-control"),
        ("vary", "vary"),
        ("expires", "expires"),
    ] {
        if let Some(v) = q.get(param) {
            r = r.header(field, v);
        }
    }
    if q.contains_key("cookie") {
        r = r.header("set-cookie", "session=1");
    }
    let unchanged = (etag.is_some() && header("if-none-match") == etag)
        || (q.contains_key("lm") && header("if-modified-since").as_deref() == Some(LAST_MODIFIED));
    if unchanged {
        counts.not_modified.fetch_add(1, Ordering::SeqCst);
        // `tag304`: a 304 naming a tag (the upstream changed how it validates).
        if let Some(t) = q.get("tag304") {
            r = r.header("etag", format!("\"{t}\""));
        }
        return r.status(304).body(Body::empty()).unwrap();
    }
    let size: usize = q.get("size").map_or(0, |s| s.parse().unwrap());
    let body = json!({
        "n": n,
        "user": header("x-user-id"),
        "lang": header("accept-language"),
        "pad": "x".repeat(size),
    })
    .to_string();
    let status: u16 = q.get("status").map_or(200, |s| s.parse().unwrap());
    let r = r.status(status).header("content-type", "application/json");
    if q.contains_key("stream") {
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = body
            .into_bytes()
            .chunks(16 * 1024)
            .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
            .collect();
        return r
            .body(Body::from_stream(futures_util_stream(chunks)))
            .unwrap();
    }
    r.body(Body::from(body)).unwrap()
}

/// A stream of ready chunks (without a length, so the body goes chunked).
fn futures_util_stream(
    chunks: Vec<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    struct Chunks(std::vec::IntoIter<Result<axum::body::Bytes, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<axum::body::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

async fn upstream() -> (std::net::SocketAddr, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let app = axum::Router::new().fallback(move |req: Request| answer(Arc::clone(&c), req));
    (serve_router(app).await, counts)
}

/// A front whose route `cached` (`/c/`, our tokens, `sub` forwarded) has `[routes.cache]`
/// with `cache`; `head` goes first (`[server.cache]`, `[redis]`).
async fn cached(ctx: &Ctx, head: &str, cache: &str) -> (Front, Arc<Counts>) {
    let (up, counts) = upstream().await;
    let config = format!(
        "{head}\n[[routes]]\nname = \"cached\"\npath_prefix = \"/c/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"{API}\"\n\
         forward_claims = {{ sub = \"x-user-id\" }}\n\
         [routes.cache]\n{cache}\n\
         [[routes]]\nname = \"open\"\npath_prefix = \"/o/\"\nupstreams = [\"http://{up}\"]\nauth = \"none\"\n\
         [routes.cache]\npartition = \"shared\"\n"
    );
    (front(ctx, &config).await, counts)
}

fn token_for(f: &Front, sub: &str) -> String {
    f.grant(Grant::new(ISSUER, "client-1", sub, API).scope(["read"]))
}

async fn get(f: &Front, path: &str, token: &str, extra: &[(&str, &str)]) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    send(&f.client, "GET", &f.url(path), &headers, "").await
}

fn status_of(r: &Reply) -> String {
    r.header("cache-status").unwrap_or("").to_owned()
}

fn body_n(r: &Reply) -> u64 {
    r.json()["n"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_never_cross_also_under_concurrency() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "ttl = \"60s\"").await;
        let f = Arc::new(f);
        let users = ["alice", "bob", "carol"];
        let tokens: Vec<String> = users.iter().map(|u| token_for(&f, u)).collect();
        let mut tasks = Vec::new();
        for i in 0..60 {
            let f = Arc::clone(&f);
            let (user, token) = (users[i % 3], tokens[i % 3].clone());
            tasks.push(tokio::spawn(async move {
                let r = get(&f, "/c/me?delay=20", &token, &[]).await;
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(r.json()["user"], user, "{user} got {}", r.text());
                status_of(&r)
            }));
        }
        let mut hits = 0;
        for t in tasks {
            if t.await.unwrap().contains("; hit") {
                hits += 1;
            }
        }
        // One upstream request per identity, however many asked at once.
        assert_eq!(counts.of("/c/me?delay=20"), 3);
        assert_eq!(hits, 57);
        // The same path with the client's own token later is still its own.
        for (user, token) in users.iter().zip(&tokens) {
            let r = get(&f, "/c/me?delay=20", token, &[]).await;
            assert_eq!(r.json()["user"], *user);
            assert!(
                status_of(&r).starts_with("tokengate; hit; ttl="),
                "{}",
                status_of(&r)
            );
            assert!(r.header("age").is_some());
        }
        // The subject partition is the user's, whichever client asks for them.
        let other_client = f.grant(Grant::new(ISSUER, "client-2", "alice", API).scope(["read"]));
        let r = get(&f, "/c/me?delay=20", &other_client, &[]).await;
        assert!(status_of(&r).contains("; hit"));
        assert_eq!(r.json()["user"], "alice");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_authorization_come_before_the_cache() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "").await;
        let (token, jti) = f.recorded(API, &["read"]).await;
        assert_eq!(
            status_of(&get(&f, "/c/x", &token, &[]).await),
            "tokengate; fwd=miss; stored"
        );
        assert!(status_of(&get(&f, "/c/x", &token, &[]).await).contains("; hit"));
        // No token, a bad one, a revoked one: refused, never the stored answer.
        let r = send(&f.client, "GET", &f.url("/c/x"), &[], "").await;
        assert_eq!(r.status, 401);
        assert!(r.header("cache-status").is_none());
        assert_eq!(get(&f, "/c/x", "not-a-token", &[]).await.status, 401);
        f.service
            .revoke_tokens(oauth::RevokeBy::Jti(jti), store::unix_now(), None)
            .await
            .unwrap();
        let r = get(&f, "/c/x", &token, &[]).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(counts.of("/c/x"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_directive_decides_what_is_stored() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(
            &ctx,
            "",
            "ttl = \"30s\"\nmax_ttl = \"60s\"\nmax_body = \"8KB\"",
        )
        .await;
        let token = token_for(&f, "alice");
        let past = "Thu, 01 Jan 2015 00:00:00 GMT";
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
        // (target, request fields, the first answer's Cache-Status, stored)
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, bool);
        let cases: Vec<Case> = vec![
            (
                "/c/1?cc=max-age%3D20".into(),
                vec![],
                "fwd=miss; stored",
                true,
            ),
            ("/c/2".into(), vec![], "fwd=miss; stored", true),
            (
                "/c/3?cc=no-store".into(),
                vec![],
                "fwd=miss; detail=\"no-store\"",
                false,
            ),
            (
                "/c/4?cc=private".into(),
                vec![],
                "fwd=miss; detail=\"private\"",
                false,
            ),
            (
                "/c/5?cc=private%3D%22x%22%2C+max-age%3D9".into(),
                vec![],
                "fwd=miss; detail=\"private\"",
                false,
            ),
            (
                "/c/6?cc=max-age%3Dten".into(),
                vec![],
                "fwd=miss; detail=\"malformed-cache-control\"",
                false,
            ),
            (
                "/c/7?cc=public%2C+private".into(),
                vec![],
                "fwd=miss; detail=\"malformed-cache-control\"",
                false,
            ),
            (
                "/c/8?cc=max-age%3D1%2C+max-age%3D2".into(),
                vec![],
                "fwd=miss; detail=\"malformed-cache-control\"",
                false,
            ),
            (
                "/c/9?cookie=1".into(),
                vec![],
                "fwd=miss; detail=\"set-cookie\"",
                false,
            ),
            (
                "/c/10?vary=*".into(),
                vec![],
                "fwd=miss; detail=\"vary\"",
                false,
            ),
            (
                "/c/11?status=500".into(),
                vec![],
                "fwd=miss; detail=\"status\"",
                false,
            ),
            (
                "/c/12?status=302".into(),
                vec![],
                "fwd=miss; detail=\"status\"",
                false,
            ),
            ("/c/13?status=404".into(), vec![], "fwd=miss; stored", true),
            (
                "/c/14?cc=no-cache".into(),
                vec![],
                "fwd=miss; detail=\"stale\"",
                false,
            ),
            (
                "/c/15?cc=max-age%3D0".into(),
                vec![],
                "fwd=miss; detail=\"stale\"",
                false,
            ),
            (
                format!(
                    "/c/16?expires={}",
                    url::form_urlencoded::byte_serialize(past.as_bytes()).collect::<String>()
                ),
                vec![],
                "fwd=miss; detail=\"stale\"",
                false,
            ),
            (
                format!(
                    "/c/17?expires={}",
                    url::form_urlencoded::byte_serialize(future.as_bytes()).collect::<String>()
                ),
                vec![],
                "fwd=miss; stored",
                true,
            ),
            (
                "/c/18?size=20000".into(),
                vec![],
                "fwd=miss; detail=\"too-large\"",
                false,
            ),
            (
                "/c/19".into(),
                vec![("cache-control", "no-store")],
                "fwd=miss; detail=\"request-no-store\"",
                false,
            ),
            (
                "/c/20?cc=max-age%3D5".into(),
                vec![("range", "bytes=0-1")],
                "fwd=bypass; detail=\"request\"",
                false,
            ),
        ];
        for (target, fields, first, stored) in &cases {
            let r = get(&f, target, &token, fields).await;
            assert_eq!(status_of(&r), format!("tokengate; {first}"), "{target}");
            let again = get(&f, target, &token, fields).await;
            assert_eq!(again.status, r.status, "{target}");
            assert_eq!(
                counts.of(target),
                if *stored { 1 } else { 2 },
                "{target}: {}",
                status_of(&again)
            );
            if *stored {
                assert_eq!(again.body, r.body, "{target}");
            }
        }
        // max_ttl bounds the upstream's freshness; the default ttl applies without one.
        let r = get(&f, "/c/long?cc=max-age%3D86400", &token, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        let hit = status_of(&get(&f, "/c/long?cc=max-age%3D86400", &token, &[]).await);
        let ttl: u64 = hit.rsplit("ttl=").next().unwrap().parse().unwrap();
        assert!((58..=60).contains(&ttl), "{hit}");
        let hit = status_of(&get(&f, "/c/2", &token, &[]).await);
        let ttl: u64 = hit.rsplit("ttl=").next().unwrap().parse().unwrap();
        assert!((28..=30).contains(&ttl), "{hit}");
        // Only the configured methods: POST goes through, with the method as the reason.
        let bearer = format!("Bearer {token}");
        let r = send(
            &f.client,
            "POST",
            &f.url("/c/1?cc=max-age%3D20"),
            &[("authorization", &bearer)],
            "x",
        )
        .await;
        assert_eq!(status_of(&r), "tokengate; fwd=method");
        // A body larger than max_body without a length streams through whole, unstored.
        let r = get(
            &f,
            "/c/big?stream=1&size=100000&cc=max-age%3D60",
            &token,
            &[],
        )
        .await;
        assert_eq!(r.json()["pad"].as_str().unwrap().len(), 100_000);
        let again = get(
            &f,
            "/c/big?stream=1&size=100000&cc=max-age%3D60",
            &token,
            &[],
        )
        .await;
        assert_eq!(again.json()["n"], 2, "not stored");
        // A small chunked body is stored.
        get(&f, "/c/small?stream=1&size=10&cc=max-age%3D60", &token, &[]).await;
        let again = get(&f, "/c/small?stream=1&size=10&cc=max-age%3D60", &token, &[]).await;
        assert!(status_of(&again).contains("; hit"), "{}", status_of(&again));
        assert_eq!(again.json()["n"], 1);
        // HEAD is cached apart from GET.
        let head = send(
            &f.client,
            "HEAD",
            &f.url("/c/1?cc=max-age%3D20"),
            &[("authorization", &bearer)],
            "",
        )
        .await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_partition_stores_only_public_answers() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "partition = \"shared\"").await;
        let (alice, bob) = (token_for(&f, "alice"), token_for(&f, "bob"));
        let r = get(&f, "/c/p?cc=max-age%3D60", &alice, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; detail=\"not-public\"");
        get(&f, "/c/p?cc=max-age%3D60", &bob, &[]).await;
        assert_eq!(counts.of("/c/p?cc=max-age%3D60"), 2);
        for cc in ["public%2C+max-age%3D60", "s-maxage%3D60"] {
            let target = format!("/c/q?cc={cc}");
            assert_eq!(
                status_of(&get(&f, &target, &alice, &[]).await),
                "tokengate; fwd=miss; stored"
            );
            let r = get(&f, &target, &bob, &[]).await;
            assert!(status_of(&r).contains("; hit"), "{target}");
            assert_eq!(
                r.json()["user"],
                "alice",
                "shared: everyone gets the one public answer"
            );
            assert_eq!(counts.of(&target), 1);
        }
        // A public route without tokens caches public answers too.
        let url = f.url("/o/a?cc=public%2C+max-age%3D9");
        let r = send(&f.client, "GET", &url, &[], "").await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        let r = send(&f.client, "GET", &url, &[], "").await;
        assert!(status_of(&r).contains("; hit"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_selects_among_stored_answers() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "").await;
        let token = token_for(&f, "alice");
        let target = "/c/v?vary=accept-language&cc=max-age%3D60";
        for lang in ["en", "de"] {
            let r = get(&f, target, &token, &[("accept-language", lang)]).await;
            assert_eq!(status_of(&r), "tokengate; fwd=miss; stored", "{lang}");
        }
        for lang in ["en", "de", "en"] {
            let r = get(&f, target, &token, &[("accept-language", lang)]).await;
            assert!(status_of(&r).contains("; hit"), "{lang}");
            assert_eq!(r.json()["lang"], lang);
        }
        // Without the field: a variant of its own.
        let r = get(&f, target, &token, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        assert_eq!(r.json()["lang"], serde_json::Value::Null);
        assert_eq!(counts.of(target), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_and_the_clients_own_conditional_requests() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "").await;
        let token = token_for(&f, "alice");
        // no-cache with an ETag: stored, then revalidated on every use; a 304 refreshes it.
        let target = "/c/r?cc=no-cache&etag=v1";
        let first = get(&f, target, &token, &[]).await;
        assert_eq!(status_of(&first), "tokengate; fwd=miss; stored");
        for _ in 0..2 {
            let r = get(&f, target, &token, &[]).await;
            assert_eq!(r.status, 200);
            assert_eq!(status_of(&r), "tokengate; fwd=stale; fwd-status=304");
            assert_eq!(r.body, first.body, "served from the entry");
        }
        assert_eq!(counts.of(target), 3);
        assert_eq!(counts.not_modified.load(Ordering::SeqCst), 2);
        // A request with `no-store`: the client's own conditional goes upstream as it is, and
        // its 304 is the client's; the entry is left as it was.
        let r = get(
            &f,
            target,
            &token,
            &[("cache-control", "no-store"), ("if-none-match", "\"v1\"")],
        )
        .await;
        assert_eq!(r.status, 304);
        assert_eq!(
            status_of(&r),
            "tokengate; fwd=miss; detail=\"request-no-store\""
        );
        // The entry is as it was: the next request revalidates it and gets its body.
        let r = get(&f, target, &token, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=stale; fwd-status=304");
        assert_eq!(r.body, first.body);
        assert_eq!(counts.not_modified.load(Ordering::SeqCst), 4);
        assert_eq!(counts.of(target), 5);
        // Last-Modified works as a validator too.
        let target = "/c/lm?cc=no-cache&lm=1";
        get(&f, target, &token, &[]).await;
        let r = get(&f, target, &token, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=stale; fwd-status=304");
        // A 304 about another representation (a tag the entry never had): served this once
        // from the entry, which is then gone.
        let target = "/c/lm2?cc=no-cache&lm=1&tag304=new";
        let first = get(&f, target, &token, &[]).await;
        let r = get(&f, target, &token, &[]).await;
        assert_eq!(
            status_of(&r),
            "tokengate; fwd=stale; fwd-status=304; detail=\"validator-mismatch\""
        );
        assert_eq!(r.body, first.body);
        assert_eq!(
            status_of(&get(&f, target, &token, &[]).await),
            "tokengate; fwd=miss; stored"
        );
        // The client's own conditional request: 304 from the entry, with its validators.
        let target = "/c/c?cc=max-age%3D60&etag=v2&lm=1";
        let stored = get(&f, target, &token, &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(
            stored.status, 200,
            "a miss that does not match gets the full answer"
        );
        let r = get(&f, target, &token, &[("if-none-match", "W/\"v2\"")]).await;
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some("\"v2\""));
        assert!(r.body.is_empty());
        assert!(status_of(&r).contains("; hit"));
        assert_eq!(
            get(&f, target, &token, &[("if-none-match", "\"v3\"")])
                .await
                .status,
            200
        );
        let r = get(
            &f,
            target,
            &token,
            &[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")],
        )
        .await;
        assert_eq!(r.status, 304);
        assert_eq!(counts.of(target), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_upstream_request() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "").await;
        let f = Arc::new(f);
        let token = token_for(&f, "alice");
        let target = "/c/slow?delay=300&cc=max-age%3D60";
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (f, token) = (Arc::clone(&f), token.clone());
                tokio::spawn(async move { get(&f, target, &token, &[]).await })
            })
            .collect();
        let mut collapsed = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(body_n(&r), 1);
            if status_of(&r).contains("collapsed") {
                collapsed += 1;
            }
        }
        // However many of them waited (all of them, unless the machine was too slow to
        // start them within the upstream's 300 ms), one upstream request.
        assert_eq!(counts.of(target), 1);
        assert!(collapsed >= 1, "{collapsed}");
        // Answers that are not stored: the waiting requests go upstream themselves.
        let target = "/c/slow2?delay=100&cc=no-store";
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (f, token) = (Arc::clone(&f), token.clone());
                tokio::spawn(async move { get(&f, target, &token, &[]).await.status })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(counts.of(target), 5);
        let metrics = send(&f.client, "GET", &f.url("/metrics"), &[], "")
            .await
            .text();
        for (event, at_least) in [
            ("hit", 9.0),
            ("miss", 6.0),
            ("store", 1.0),
            ("collapsed", 1.0),
        ] {
            let line = format!(
                "tokengate_response_cache_events_total{{route=\"cached\",event=\"{event}\"}}"
            );
            let n = metric(&metrics, &line);
            assert!(n >= at_least, "{line} {n}");
        }
        assert!(metric(&metrics, "tokengate_response_cache_bytes{route=\"cached\"}") > 0.0);
    })
    .await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}: {text}"))
}

async fn purge(f: &Front, query: &str, admin: &str) -> Reply {
    let bearer = format!("Bearer {admin}");
    send(
        &f.client,
        "DELETE",
        &f.url(&format!("/admin/cache{query}")),
        &[("authorization", &bearer)],
        "",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_route_and_path_prefix_is_audited() {
    run_sqlite(|ctx| async move {
        let (f, _) = cached(&ctx, "", "").await;
        let token = token_for(&f, "alice");
        let fill = || async {
            for path in ["/c/a/1", "/c/a/2", "/c/b/1"] {
                get(&f, path, &token, &[]).await;
            }
        };
        let hit = |path: &'static str| {
            let (f, token) = (&f, token.clone());
            async move { status_of(&get(f, path, &token, &[]).await).contains("; hit") }
        };
        fill().await;
        let r = purge(&f, "?route=cached&path_prefix=/c/a/", ADMIN).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["purged"], 2);
        assert!(!hit("/c/a/1").await && hit("/c/b/1").await);
        let r = purge(&f, "", ADMIN).await;
        assert!(r.json()["purged"].as_u64().unwrap() >= 2);
        assert!(!hit("/c/b/1").await);
        // Refusals: no admin token, an unknown route, a bad prefix, an unknown parameter.
        assert_eq!(purge(&f, "", "wrong").await.status, 401);
        let r = purge(&f, "?route=nope", ADMIN).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["error"].as_str()),
            (404, Some("not_found"))
        );
        assert_eq!(purge(&f, "?path_prefix=c", ADMIN).await.status, 400);
        assert_eq!(purge(&f, "?everything=1", ADMIN).await.status, 400);
        let events = f.service.store().audit_events(0, 1000).await.unwrap();
        let purges: Vec<_> = events
            .iter()
            .filter(|e| e.event.event == "cache.purged")
            .collect();
        assert_eq!(purges.len(), 3, "{purges:?}");
        assert!(purges[0]
            .event
            .reason
            .as_deref()
            .unwrap()
            .contains("route=cached path_prefix=/c/a/ entries=2"));
        assert_eq!(purges[2].event.outcome, "failure");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_and_the_least_recently_used_go_first() {
    run_sqlite(|ctx| async move {
        let (f, _) = cached(
            &ctx,
            "[server.cache]\nmax_memory = \"64KB\"\n",
            "max_body = \"16KB\"",
        )
        .await;
        let token = token_for(&f, "alice");
        for i in 0..20 {
            let r = get(&f, &format!("/c/m{i}?size=8000"), &token, &[]).await;
            assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        }
        let metrics = send(&f.client, "GET", &f.url("/metrics"), &[], "")
            .await
            .text();
        let held = metric(&metrics, "tokengate_response_cache_bytes{route=\"cached\"}");
        assert!(held > 0.0 && held <= 64.0 * 1024.0, "{held}");
        let evicted = metric(
            &metrics,
            "tokengate_response_cache_events_total{route=\"cached\",event=\"eviction\"}",
        );
        assert!(evicted >= 10.0, "{evicted}");
        assert!(status_of(&get(&f, "/c/m19?size=8000", &token, &[]).await).contains("; hit"));
        assert!(!status_of(&get(&f, "/c/m0?size=8000", &token, &[]).await).contains("; hit"));
    })
    .await;
}

fn unique(name: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{n}")
}

/// A front with a route `route` (partner tokens) keeping its answers in the Redis at `url`.
async fn redis_front(
    ctx: &Ctx,
    route: &str,
    url: &str,
    up: std::net::SocketAddr,
    issuer: &str,
) -> Front {
    let config = format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"300ms\"\n{issuer}\
         [[routes]]\nname = \"{route}\"\npath_prefix = \"/r/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"partner\"]\naudience = \"https://api.example\"\n\
         [routes.cache]\nstorage = \"redis\"\n"
    );
    front(ctx, &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_storage_is_one_cache_for_every_node() {
    run_sqlite(|ctx| async move {
        let (up, counts) = upstream().await;
        let (key, issuer) = partner_issuer("p1");
        let route = unique("shared-cache");
        let a = redis_front(&ctx, &route, &redis_url(), up, &issuer).await;
        let b = redis_front(&ctx, &route, &redis_url(), up, &issuer).await;
        let token = partner_token(&key, "https://partner.example", json!({"sub": "alice"}));
        let target = "/r/x?cc=max-age%3D60&vary=accept";
        assert_eq!(
            status_of(
                &get(
                    &a,
                    target,
                    &token,
                    &[("accept", "a"), ("host", "api.example")]
                )
                .await
            ),
            "tokengate; fwd=miss; stored"
        );
        let r = get(
            &b,
            target,
            &token,
            &[("accept", "a"), ("host", "api.example")],
        )
        .await;
        assert!(status_of(&r).contains("; hit"), "{}", status_of(&r));
        assert_eq!(body_n(&r), 1);
        // (Behind one load balancer, every node is sent the same Host: it is in the key.)
        // Another subject misses on either node.
        let bob = partner_token(&key, "https://partner.example", json!({"sub": "bob"}));
        assert_eq!(
            status_of(
                &get(
                    &b,
                    target,
                    &bob,
                    &[("accept", "a"), ("host", "api.example")]
                )
                .await
            ),
            "tokengate; fwd=miss; stored"
        );
        // A purge on one node is seen by the other.
        let r = purge(&b, &format!("?route={route}&path_prefix=/r/x"), ADMIN).await;
        assert!(r.json()["purged"].as_u64().unwrap() >= 2, "{}", r.text());
        assert_eq!(
            status_of(
                &get(
                    &a,
                    target,
                    &token,
                    &[("accept", "a"), ("host", "api.example")]
                )
                .await
            ),
            "tokengate; fwd=miss; stored"
        );
        assert_eq!(counts.of(target), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_requests_go_upstream_and_caching_resumes_when_it_returns() {
    run_sqlite(|ctx| async move {
        let mut redis = RedisServer::start();
        let (up, counts) = upstream().await;
        let (key, issuer) = partner_issuer("p1");
        let f = redis_front(&ctx, "r", &redis.url(), up, &issuer).await;
        let token = partner_token(&key, "https://partner.example", json!({"sub": "alice"}));
        let target = "/r/y?cc=max-age%3D60";
        assert_eq!(
            status_of(&get(&f, target, &token, &[]).await),
            "tokengate; fwd=miss; stored"
        );
        redis.stop();
        for _ in 0..3 {
            let r = get(&f, target, &token, &[]).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                status_of(&r),
                "tokengate; fwd=miss; detail=\"storage-unavailable\""
            );
        }
        assert_eq!(counts.of(target), 4);
        let r = purge(&f, "", ADMIN).await;
        assert_eq!(r.status, 503, "{}", r.text());
        redis.resume();
        crate::gateway_env::wait_for_async("caching through Redis again", || async {
            get(&f, target, &token, &[]).await;
            status_of(&get(&f, target, &token, &[]).await).contains("; hit")
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hold_what_the_upstream_is_told_and_unsafe_requests_invalidate() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "partition = \"client\"").await;
        let (alice, bob) = (token_for(&f, "alice"), token_for(&f, "bob"));
        // One client, two users: the route forwards `sub`, so each has their own entry.
        assert_eq!(
            status_of(&get(&f, "/c/k", &alice, &[]).await),
            "tokengate; fwd=miss; stored"
        );
        let r = get(&f, "/c/k", &bob, &[]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        assert_eq!(r.json()["user"], "bob");
        // The host the upstream is told is part of the key.
        let r = get(&f, "/c/k", &alice, &[("host", "other.example")]).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        assert!(status_of(&get(&f, "/c/k", &alice, &[]).await).contains("; hit"));
        // A successful unsafe request invalidates its target's GET and HEAD entries.
        let bearer = format!("Bearer {alice}");
        let r = send(
            &f.client,
            "POST",
            &f.url("/c/k"),
            &[("authorization", &bearer)],
            "x",
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), status_of(&r).as_str()),
            (200, "tokengate; fwd=method")
        );
        assert_eq!(
            status_of(&get(&f, "/c/k", &alice, &[]).await),
            "tokengate; fwd=miss; stored"
        );
        assert!(
            status_of(&get(&f, "/c/k", &bob, &[]).await).contains("; hit"),
            "bob's is his own"
        );
        // HEAD is cached apart from GET.
        let url = f.url("/c/k");
        let r = send(&f.client, "HEAD", &url, &[("authorization", &bearer)], "").await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        let r = send(&f.client, "HEAD", &url, &[("authorization", &bearer)], "").await;
        assert!(
            status_of(&r).contains("; hit") && r.body.is_empty(),
            "{}",
            status_of(&r)
        );
        assert_eq!(counts.of("/c/k"), 6);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_reads_the_fields_the_upstream_is_sent() {
    run_sqlite(|ctx| async move {
        // Shared: the upstream says its answer is public but varies on the forwarded user.
        let (f, counts) = cached(&ctx, "", "partition = \"shared\"").await;
        let target = "/c/v?vary=x-user-id&cc=public%2C+max-age%3D60";
        for user in ["alice", "bob", "alice"] {
            let r = get(&f, target, &token_for(&f, user), &[]).await;
            assert_eq!(r.json()["user"], user);
        }
        assert_eq!(counts.of(target), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_request_orphans_every_variant_and_cookies_need_consent() {
    run_sqlite(|ctx| async move {
        let (f, counts) = cached(&ctx, "", "").await;
        let token = token_for(&f, "alice");
        let target = "/c/w?vary=accept-language&cc=max-age%3D60";
        for lang in ["en", "de"] {
            get(&f, target, &token, &[("accept-language", lang)]).await;
        }
        let bearer = format!("Bearer {token}");
        let r = send(
            &f.client,
            "PUT",
            &f.url(target),
            &[("authorization", &bearer)],
            "x",
        )
        .await;
        assert_eq!(r.status, 200);
        get(&f, target, &token, &[("accept-language", "en")]).await;
        let r = get(&f, target, &token, &[("accept-language", "de")]).await;
        assert_eq!(
            status_of(&r),
            "tokengate; fwd=miss; stored",
            "the old variant is gone"
        );
        assert_eq!(counts.of(target), 5);
        // A request with a cookie: stored only when the answer is public or varies on it.
        let cookie = [("cookie", "session=abc")];
        let r = get(&f, "/c/ck?cc=max-age%3D60", &token, &cookie).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; detail=\"cookie\"");
        let r = get(&f, "/c/ck2?cc=max-age%3D60&vary=cookie", &token, &cookie).await;
        assert_eq!(status_of(&r), "tokengate; fwd=miss; stored");
        // The client's own conditional request on a miss: the full answer (stored), then
        // 304s from the entry.
        let target = "/c/cond?cc=max-age%3D60&etag=v9";
        let r = get(&f, target, &token, &[("if-none-match", "\"v9\"")]).await;
        assert_eq!(
            (r.status.as_u16(), status_of(&r).as_str()),
            (200, "tokengate; fwd=miss; stored")
        );
        let r = get(&f, target, &token, &[("if-none-match", "\"v9\"")]).await;
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some("\"v9\""));
        assert_eq!(counts.of(target), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_claims_of_any_bytes_are_in_a_partitioned_key() {
    run_sqlite(|ctx| async move {
        let (up, counts) = upstream().await;
        let (key, issuer) = partner_issuer("p1");
        let config = format!(
            "{issuer}[[routes]]\nname = \"named\"\npath_prefix = \"/n/\"\nupstreams = [\"http://{up}\"]\n\
             [routes.auth]\nissuers = [\"partner\"]\naudience = \"https://api.example\"\n\
             forward_claims = {{ name = \"x-name\" }}\n[routes.cache]\npartition = \"client\"\n"
        );
        let f = front(&ctx, &config).await;
        let token = |name: &str| {
            partner_token(&key, "https://partner.example", json!({"client_id": "app", "name": name}))
        };
        let (zoe, jose) = (token("Zoë"), token("José"));
        assert_eq!(status_of(&get(&f, "/n/me", &zoe, &[]).await), "tokengate; fwd=miss; stored");
        assert_eq!(status_of(&get(&f, "/n/me", &jose, &[]).await), "tokengate; fwd=miss; stored");
        assert!(status_of(&get(&f, "/n/me", &zoe, &[]).await).contains("; hit"));
        assert_eq!(counts.of("/n/me"), 2);
    })
    .await;
}
