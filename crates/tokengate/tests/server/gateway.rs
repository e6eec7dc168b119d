//! The gateway end to end: real upstreams and issuers on loopback, tokengate on a real socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jose::jwt::{self, Validation};
use jose::{Algorithm, Jwk};
use oauth::{Grant, RevokeBy};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::gateway_env::{
    front, jwks_file, partner_key, partner_token, remote_issuer, send, upstream,
};
use crate::harness::{dpop_proof, signed, API, ISSUER, SECRET_API};

fn route(name: &str, prefix: &str, upstreams: &[std::net::SocketAddr], extra: &str) -> String {
    let list: Vec<String> = upstreams
        .iter()
        .map(|a| format!("\"http://{a}\""))
        .collect();
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstreams = [{}]\n{extra}\n",
        list.join(", ")
    )
}

const SELF_AUTH: &str = "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\nrequired_scopes = [\"read\"]\nforward_claims = { sub = \"x-user-id\", scope = \"x-scopes\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_rewriting_and_forwarded_identity() {
    let (up, _) = upstream("a").await;
    let (other, _) = upstream("b").await;
    let config = [
        route("api", "/api/", &[up], &format!("strip_prefix = \"/api\"\nadd_prefix = \"/v1\"\nrequest_headers = {{ set = {{ x-env = \"test\" }}, remove = [\"x-drop\"] }}\nresponse_headers = {{ set = {{ x-served-by = \"tokengate\" }} }}\n{SELF_AUTH}")),
        route("admin-api", "/api/admin/", &[other], &SELF_AUTH.replace("\"read\"", "\"admin\"")),
        format!("[[routes]]\nname = \"exact\"\npath = \"/status\"\nmethods = [\"GET\"]\nupstreams = [\"http://{other}\"]\nauth = \"none\"\n"),
    ]
    .concat();
    let f = front(&config).await;
    let token = f.token(API, &["read"]);
    let bearer = format!("Bearer {token}");

    let r = f
        .get(
            "/api/things?q=1",
            &[
                ("authorization", &bearer),
                ("x-user-id", "admin"),
                ("x-drop", "1"),
                ("x-request-id", "req-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = r.json();
    assert_eq!(seen["upstream"], "a");
    assert_eq!(seen["path"], "/v1/things");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(
        seen["headers"]["x-user-id"], "user-1",
        "the spoofed header is replaced"
    );
    assert_eq!(seen["headers"]["x-scopes"], "read");
    assert_eq!(seen["headers"]["x-env"], "test");
    assert_eq!(seen["headers"]["x-request-id"], "req-1");
    assert!(seen["headers"].get("x-drop").is_none());
    assert!(
        seen["headers"].get("x_user_id").is_none(),
        "underscore spellings are stripped too"
    );
    assert!(seen["headers"].get("forwarded").is_none());
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the client's token stays at the gateway"
    );
    assert!(seen["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
    assert_eq!(r.header("x-served-by"), Some("tokengate"));
    assert_eq!(r.header("x-request-id"), Some("req-1"));

    // The longest prefix wins, with its own rules.
    let r = f.get("/api/admin/x", &[("authorization", &bearer)]).await;
    assert!(r.challenge(403).contains("scope=\"admin\""));
    // Exact path, method list, public route passes Authorization through; 404 and 405.
    let r = f.get("/status", &[("authorization", "Basic abc")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["authorization"], "Basic abc");
    let r = send(&f.client, "POST", &f.url("/status"), &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    // An exact path also serves its trailing-slash spelling.
    assert_eq!(f.get("/status/", &[]).await.status, 200);
    let r = f.get("/nowhere", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["request_id"].is_string());
    // Other spellings of a path could slip past a route to another upstream path: refused.
    for sneaky in [
        "/status/../api/admin/x",
        "/api/%2e%2e/admin/x",
        "/api/.%2E/x",
        "/api/x%2F..%2Fadmin",
        "/api/a\\..\\b",
        "/api/%61dmin/x",
        "//api/admin/x",
        "/api//admin",
        "/api/x/..;/admin",
        "/api/%zz",
    ] {
        let r = send(
            &f.client,
            "GET",
            &f.url(sneaky),
            &[("authorization", &bearer)],
            "",
        )
        .await;
        assert_eq!(r.status, 400, "{sneaky}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rules_and_challenges() {
    let (up, _) = upstream("a").await;
    let f = front(&route("api", "/api/", &[up], SELF_AUTH)).await;
    let call = |token: String| {
        let f = &f;
        async move {
            f.get("/api/x", &[("authorization", &format!("Bearer {token}"))])
                .await
        }
    };
    // No token: a challenge without an error code.
    let r = f.get("/api/x", &[]).await;
    assert_eq!(r.challenge(401), "Bearer realm=\"tokengate\"");
    // Bad tokens: invalid_token with a description.
    let now = store::unix_now();
    let expired = f.grant(
        Grant::new(ISSUER, "c", "u", API)
            .scope(["read"])
            .lifetime(1),
    );
    let other_key = Jwk::generate(Algorithm::ES256, None, Some("x".into())).unwrap();
    let forged = signed(
        &other_key,
        &json!({"iss": ISSUER, "sub": "u", "aud": API, "exp": now + 60, "scope": "read"}),
        &[("typ", "at+jwt".into())],
    );
    for bad in [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        f.token("https://other.example", &["read"]),
        forged,
        "x".repeat(20_000),
    ] {
        let c = call(bad).await.challenge(401);
        assert!(
            c.contains("error=\"invalid_token\"") && c.contains("error_description="),
            "{c}"
        );
    }
    // Signed by the right key, but `iss` is not a string: refused as malformed claims (the
    // reason verification gives), not as an untrusted issuer.
    let bad_iss = signed(
        f.service.ring().active_signing(),
        &json!({"iss": 7, "sub": "u", "aud": API, "exp": now + 60, "scope": "read"}),
        &[("typ", "at+jwt".into())],
    );
    let c = call(bad_iss).await.challenge(401);
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains("iss"),
        "{c}"
    );
    // Expired (beyond the 30 s leeway): simulate with a token whose exp is long past.
    let _ = expired;
    let old = {
        let ring = f.service.ring();
        let claims = json!({"iss": ISSUER, "sub": "u", "aud": API, "exp": now - 120, "iat": now - 300, "jti": "old", "scope": "read"});
        jwt::sign(
            claims.as_object().unwrap(),
            ring.active_signing(),
            ring.signing_alg(),
            Some("at+jwt"),
        )
        .unwrap()
    };
    assert!(call(old).await.challenge(401).contains("expired"));
    // Missing scope: 403 naming the required scope.
    let c = call(f.token(API, &["write"])).await.challenge(403);
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"read\""),
        "{c}"
    );
    // Two Authorization headers: 400.
    let r = f
        .get(
            "/api/x",
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
        )
        .await;
    assert_eq!(r.status, 400);
    // Denials are audited (asynchronously) with their reason code.
    let mut found = false;
    for _ in 0..100 {
        let events = f.service.store().audit_events(0, 1000).await.unwrap();
        if events.iter().any(|e| {
            e.event.event == "gateway.denied"
                && e.event
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("ERR_JWT_EXPIRED"))
        }) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "a gateway.denied audit event with the reason code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_tokens_cache_and_revocation() {
    let (up, _) = upstream("a").await;
    let secret_auth = SELF_AUTH.replace(API, SECRET_API);
    let config = [
        route("api", "/api/", &[up], SELF_AUTH),
        route("secret", "/secret/", &[up], &secret_auth),
        route(
            "nocache",
            "/nocache/",
            &[up],
            &format!("{SELF_AUTH}token_cache = false\n"),
        ),
    ]
    .concat();
    let f = front(&config).await;
    let jwe = f.token(SECRET_API, &["read"]);
    assert_eq!(jwe.split('.').count(), 5);
    let bearer = format!("Bearer {jwe}");
    assert_eq!(
        f.get("/secret/x", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    let (hits, _) = f.app.gateway().cache().counters();
    assert_eq!(
        f.get("/secret/x", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    assert_eq!(
        f.app.gateway().cache().counters().0,
        hits + 1,
        "the second request is a cache hit"
    );
    // The encrypted token is not accepted where the audience differs.
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        401
    );
    // Without the cache, every request verifies.
    let plain = format!("Bearer {}", f.token(API, &["read"]));
    let (_, misses) = f.app.gateway().cache().counters();
    for _ in 0..3 {
        assert_eq!(
            f.get("/nocache/x", &[("authorization", &plain)])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        f.app.gateway().cache().counters().1,
        misses,
        "token_cache = false does not touch the cache"
    );

    // Revocation through the token service takes effect on the next request, cached or not.
    let (token, jti) = f.recorded(API, &["read"]).await;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        200
    );
    f.service
        .revoke_tokens(RevokeBy::Jti(jti), store::unix_now(), None)
        .await
        .unwrap();
    let c = f
        .get("/api/x", &[("authorization", &bearer)])
        .await
        .challenge(401);
    assert!(c.contains("revoked"), "{c}");
    // Bulk revocation by client.
    let (token, _) = f.recorded(API, &["read"]).await;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        200
    );
    f.service
        .revoke_tokens(RevokeBy::Client("client-1".into()), store::unix_now(), None)
        .await
        .unwrap();
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_original_and_internal_tokens() {
    let (up, _) = upstream("a").await;
    let config = [
        route(
            "orig",
            "/orig/",
            &[up],
            &format!("{SELF_AUTH}forward_token = \"original\"\n"),
        ),
        route(
            "int",
            "/int/",
            &[up],
            &format!("{SELF_AUTH}forward_token = \"internal\"\n"),
        ),
    ]
    .concat();
    let f = front(&config).await;
    let token = f.token(API, &["read"]);
    let bearer = format!("Bearer {token}");
    let seen = f.get("/orig/x", &[("authorization", &bearer)]).await.json();
    assert_eq!(seen["headers"]["authorization"], bearer);
    let seen = f.get("/int/x", &[("authorization", &bearer)]).await.json();
    let internal = seen["headers"]["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    assert_ne!(
        internal, token,
        "the upstream never sees the client's token"
    );
    let jwks = f.service.ring().jwks().to_public().unwrap();
    let v = Validation::new()
        .algorithms_from_key()
        .issuer(ISSUER)
        .audience(API);
    let claims = jwt::verify(&internal, &jwks, &v).unwrap().claims;
    assert_eq!(claims.sub(), Some("user-1"));
    assert_eq!(claims.get("scope").unwrap(), "read");
    assert!(claims.exp().unwrap() - claims.iat().unwrap() <= 60);
    // Reused while fresh.
    let again = f.get("/int/x", &[("authorization", &bearer)]).await.json();
    assert_eq!(
        again["headers"]["authorization"],
        seen["headers"]["authorization"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens() {
    let (up, _) = upstream("a").await;
    let f = front(&route("api", "/api/", &[up], SELF_AUTH)).await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let token = f.grant(
        Grant::new(ISSUER, "c", "u", API)
            .scope(["read"])
            .bind(key.thumbprint()),
    );
    let url = f.url("/api/x");
    let proof = |jti: &str, for_token: &str, key: &Jwk| {
        let claims = json!({"jti": jti, "htm": "GET", "htu": url, "iat": store::unix_now(), "ath": oauth::dpop::access_token_hash(for_token)});
        signed(
            key,
            &claims,
            &[
                ("typ", "dpop+jwt".into()),
                (
                    "jwk",
                    serde_json::Value::Object(key.to_public().unwrap().to_map()),
                ),
            ],
        )
    };
    let dpop_auth = format!("DPoP {token}");
    // As a bearer token: refused.
    let c = f
        .get("/api/x", &[("authorization", &format!("Bearer {token}"))])
        .await
        .challenge(401);
    assert!(c.contains("DPoP"), "{c}");
    // With a proof: accepted; the same proof again: refused.
    let p = proof("d1", &token, &key);
    assert_eq!(
        f.get("/api/x", &[("authorization", &dpop_auth), ("dpop", &p)])
            .await
            .status,
        200
    );
    let c = f
        .get("/api/x", &[("authorization", &dpop_auth), ("dpop", &p)])
        .await
        .challenge(401);
    assert!(c.starts_with("DPoP realm=\"tokengate\""), "{c}");
    // No proof, a proof by another key, a proof for another token.
    assert_eq!(
        f.get("/api/x", &[("authorization", &dpop_auth)])
            .await
            .status,
        401
    );
    let stranger = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    assert_eq!(
        f.get(
            "/api/x",
            &[
                ("authorization", &dpop_auth),
                ("dpop", &proof("d2", &token, &stranger))
            ]
        )
        .await
        .status,
        401
    );
    assert_eq!(
        f.get(
            "/api/x",
            &[
                ("authorization", &dpop_auth),
                ("dpop", &proof("d3", "other", &key))
            ]
        )
        .await
        .status,
        401
    );
    // An unbound token presented as DPoP.
    let plain = f.token(API, &["read"]);
    let r = f
        .get(
            "/api/x",
            &[
                ("authorization", &format!("DPoP {plain}")),
                ("dpop", &proof("d4", &plain, &key)),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    let _ = dpop_proof;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_issuers_static_remote_and_discovered() {
    let (up, _) = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let partner = partner_key("p1");
    let file = jwks_file(dir.path(), &[&partner]);
    let k1 = partner_key("r1");
    let remote = remote_issuer(&[&k1]).await;
    let discovered_key = partner_key("d1");
    let discovered = remote_issuer(&[&discovered_key]).await;
    let issuers = format!(
        "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\njwks_file = \"{file}\"\nalgorithms = [\"ES256\"]\n\n\
         [[issuers]]\nname = \"remote\"\nissuer = \"https://remote.example\"\njwks_url = \"{}/jwks\"\nalgorithms = [\"ES256\"]\nrefetch_cooldown = \"1h\"\n\n\
         [[issuers]]\nname = \"disc\"\nissuer = \"{}\"\ndiscovery = true\nalgorithms = [\"ES256\"]\n\n",
        remote.url(),
        discovered.url()
    );
    let auth = "[routes.auth]\nissuers = [\"partner\", \"remote\", \"disc\"]\naudience = \"https://api.example\"\nforward_claims = { sub = \"x-user-id\" }\n";
    let f = front(&format!("{issuers}{}", route("api", "/api/", &[up], auth))).await;
    let call = |token: String| {
        let f = &f;
        async move {
            f.get("/api/x", &[("authorization", &format!("Bearer {token}"))])
                .await
        }
    };
    let r = call(partner_token(
        &partner,
        "https://partner.example",
        json!({}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
    assert_eq!(
        call(partner_token(&discovered_key, &discovered.url(), json!({})))
            .await
            .status,
        200
    );
    // typ must be at+jwt.
    let untyped = signed(
        &partner,
        &json!({"iss": "https://partner.example", "sub": "a", "aud": API, "exp": store::unix_now() + 60}),
        &[("kid", "p1".into())],
    );
    assert_eq!(call(untyped).await.status, 401);

    // Remote issuer rotates to r2 while requests flow: one refetch serves them all.
    assert_eq!(
        call(partner_token(&k1, "https://remote.example", json!({})))
            .await
            .status,
        200
    );
    assert_eq!(remote.fetches.load(Ordering::SeqCst), 1);
    let k2 = partner_key("r2");
    remote
        .keys
        .lock()
        .unwrap()
        .push(serde_json::Value::Object(k2.to_public().unwrap().to_map()));
    let rotated = partner_token(&k2, "https://remote.example", json!({}));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, t) = (f.client.clone(), f.url("/api/x"), rotated.clone());
        tasks.push(tokio::spawn(async move {
            send(
                &client,
                "GET",
                &url,
                &[("authorization", &format!("Bearer {t}"))],
                "",
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        remote.fetches.load(Ordering::SeqCst),
        2,
        "a single refetch for the unknown kid"
    );
    // Unknown kids within the cooldown: no more fetches.
    let unknown = partner_key("r3");
    for _ in 0..5 {
        assert_eq!(
            call(partner_token(&unknown, "https://remote.example", json!({})))
                .await
                .status,
            401
        );
    }
    assert_eq!(remote.fetches.load(Ordering::SeqCst), 2, "cooldown");
    // A partner token claiming to be the remote issuer: refused.
    assert_eq!(
        call(partner_token(&partner, "https://remote.example", json!({})))
            .await
            .status,
        401
    );
    // The JWKS endpoint goes down: cached keys keep working, across a reload too.
    remote.up.store(false, Ordering::SeqCst);
    f.app.reload().unwrap();
    assert_eq!(
        call(partner_token(
            &k1,
            "https://remote.example",
            json!({"jti": "again"})
        ))
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_protected_resource() {
    let (up, _) = upstream("mcp").await;
    let extra = "[routes.mcp]\nresource = \"https://tools.example/mcp\"\n[routes.auth]\nissuers = [\"self\"]\nrequired_scopes = [\"tools\"]\n";
    let f = front(&route("mcp", "/mcp", &[up], extra)).await;
    let doc = f
        .get("/.well-known/oauth-protected-resource/mcp", &[])
        .await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["resource"], "https://tools.example/mcp");
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["scopes_supported"], json!(["tools"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    let c = f.get("/mcp", &[]).await.challenge(401);
    assert!(
        c.contains(
            "resource_metadata=\"https://tools.example/.well-known/oauth-protected-resource/mcp\""
        ),
        "{c}"
    );
    // aud must be the resource.
    let wrong = f.grant(Grant::new(ISSUER, "c", "u", API).scope(["tools"]));
    assert_eq!(
        f.get("/mcp", &[("authorization", &format!("Bearer {wrong}"))])
            .await
            .status,
        401
    );
    let right = f.grant(Grant::new(ISSUER, "c", "u", "https://tools.example/mcp").scope(["tools"]));
    assert_eq!(
        f.get("/mcp", &[("authorization", &format!("Bearer {right}"))])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_balancing_and_limits() {
    let (a, a_state) = upstream("a").await;
    let (b, b_state) = upstream("b").await;
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // An upstream that passes its first health check and then goes away: one request per
    // connection, so no pooled connection outlives it.
    let flaky_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = flaky_listener.local_addr().unwrap();
    let flaky_hits = Arc::new(AtomicU64::new(0));
    let hits = Arc::clone(&flaky_hits);
    let flaky_server = tokio::spawn(async move {
        while let Ok((mut s, _)) = flaky_listener.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let config = [
        route("rr", "/rr/", &[a, b], "auth = \"none\"\n"),
        route("dead", "/dead/", &[dead], "auth = \"none\"\n"),
        route("retry", "/retry/", &[dead, a], "auth = \"none\"\n"),
        route("slow", "/slow", &[a], "auth = \"none\"\ntimeout = \"1s\"\n"),
        route(
            "small",
            "/small/",
            &[a],
            "auth = \"none\"\nmax_body = 100\n",
        ),
        route(
            "hc",
            "/hc/",
            &[a, b],
            "auth = \"none\"\nhealth_check = { path = \"/health\", interval = \"1s\" }\n",
        ),
        route(
            "retry-hc",
            "/retry-hc/",
            &[flaky, a],
            "auth = \"none\"\nhealth_check = { path = \"/health\", interval = \"1h\" }\n",
        ),
    ]
    .concat();
    let f = front(&config).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(
            f.get("/rr/x", &[]).await.json()["upstream"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        names.contains(&"a".to_owned()) && names.contains(&"b".to_owned()),
        "{names:?}"
    );
    assert_eq!(f.get("/dead/x", &[]).await.status, 502);
    for _ in 0..4 {
        assert_eq!(
            f.get("/retry/x", &[]).await.status,
            200,
            "GET is retried on the next target"
        );
    }
    // The flaky target passed its health check, then died: a GET that finds it gone is
    // retried on the next target, even though the failure marks the first one unhealthy.
    for _ in 0..100 {
        if flaky_hits.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    flaky_server.abort();
    let _ = flaky_server.await;
    for _ in 0..4 {
        let r = f.get("/retry-hc/x", &[]).await;
        assert_eq!(r.status, 200, "retried on the healthy target");
        assert_eq!(r.json()["upstream"], "a");
    }
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(
            send(&f.client, "POST", &f.url("/retry/x"), &[], "body")
                .await
                .status
                .as_u16(),
        );
    }
    assert!(
        posts.contains(&502) && posts.contains(&200),
        "POST is not retried: {posts:?}"
    );
    assert_eq!(f.get("/slow", &[]).await.status, 504);
    let r = send(&f.client, "POST", &f.url("/small/x"), &[], &"x".repeat(200)).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        send(&f.client, "POST", &f.url("/small/x"), &[], "ok")
            .await
            .status,
        200
    );

    // Health checks take an unhealthy target out of rotation.
    b_state.healthy.store(false, Ordering::SeqCst);
    let mut only_a = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(
                f.get("/hc/x", &[]).await.json()["upstream"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        if seen.iter().all(|s| s == "a") {
            only_a = true;
            break;
        }
    }
    assert!(only_a, "b left the rotation");
    let _ = a_state;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_and_upgrades_pass_through() {
    let (up, state) = upstream("a").await;
    let f = front(&route(
        "s",
        "/s/",
        &[up],
        "auth = \"none\"\nstrip_prefix = \"/s\"\n",
    ))
    .await;
    // SSE: the first event arrives while the upstream is still producing.
    let req = axum::http::Request::get(f.url("/s/sse"))
        .body(http_body_util::Full::new(axum::body::Bytes::new()))
        .unwrap();
    let response = f.client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        http_body_util::BodyExt::frame(&mut body),
    )
    .await
    .expect("the first event arrives before the upstream finishes")
    .unwrap()
    .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");
    state.release_sse.notify_one();
    let rest = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "data: second\n\n");

    // An upgrade is tunnelled both ways.
    let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    stream
        .write_all(format!("GET /s/upgrade HTTP/1.1\r\nHost: {}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", f.addr).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    // Other upgrades (h2c) are not tunnelled: the request goes through as a plain one.
    let r = send(
        &f.client,
        "GET",
        &f.url("/s/upgrade"),
        &[
            ("connection", "upgrade, http2-settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
        ],
        "",
    )
    .await;
    assert_ne!(r.status, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input() {
    let (up, _) = upstream("a").await;
    let f = front(&route("api", "/api/", &[up], SELF_AUTH)).await;
    // A 1 MB token: refused at the header limit (431) without reaching token parsing.
    let huge = format!("Bearer {}", "a".repeat(1024 * 1024));
    let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let _ = stream
        .write_all(
            format!("GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: {huge}\r\n\r\n").as_bytes(),
        )
        .await;
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
        .await
        .unwrap()
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    // A 20 KB token within the header limit: 401, not a crash.
    assert_eq!(
        f.get(
            "/api/x",
            &[("authorization", &format!("Bearer {}", "a".repeat(20_000)))]
        )
        .await
        .status,
        401
    );
    // Garbage bytes in headers.
    let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    stream.write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x01\r\nDPoP: \xc3\x28\r\n\r\n").await.unwrap();
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(
        text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 401"),
        "{text}"
    );
    // A slow client sending headers byte by byte is cut off at the header timeout.
    let mut slow = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    slow.write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(
        tokengate::server::listener::HEADER_TIMEOUT + Duration::from_secs(5),
        async {
            loop {
                match slow.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        },
    )
    .await;
    assert!(closed.is_ok(), "the connection is closed");
    assert!(
        started.elapsed() >= tokengate::server::listener::HEADER_TIMEOUT - Duration::from_secs(1)
    );
    // The server still serves.
    assert_eq!(f.get("/api/x", &[]).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_key_rotation_under_load() {
    let (up, _) = upstream("a").await;
    let f = Arc::new(front(&route("api", "/api/", &[up], SELF_AUTH)).await);
    let routes_file = {
        // The front's own routes file, rewritten to reload.
        let config = route(
            "api",
            "/api/",
            &[up],
            &format!("request_headers = {{ set = {{ x-version = \"2\" }} }}\n{SELF_AUTH}"),
        );
        (
            config,
            route(
                "api",
                "/api/",
                &[up],
                "[routes.auth]\nissuers = [\"nobody\"]\naudience = \"x\"\n",
            ),
        )
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (f, stop, failures, served) = (
            Arc::clone(&f),
            Arc::clone(&stop),
            Arc::clone(&failures),
            Arc::clone(&served),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                // A fresh token each time: it may be signed by whichever key is active.
                let token = f.token(API, &["read"]);
                let r = f
                    .get("/api/x", &[("authorization", &format!("Bearer {token}"))])
                    .await;
                if r.status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                served.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let admin = format!("Bearer {}", crate::harness::ADMIN);
    let file = f.app_routes_file();
    for round in 0..3 {
        std::fs::write(&file, &routes_file.0).unwrap();
        let r = send(
            &f.client,
            "POST",
            &f.url("/admin/reload"),
            &[("authorization", &admin)],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        // A broken configuration is refused and the old one keeps serving.
        std::fs::write(&file, &routes_file.1).unwrap();
        let r = send(
            &f.client,
            "POST",
            &f.url("/admin/reload"),
            &[("authorization", &admin)],
            "",
        )
        .await;
        assert_eq!(r.status, 409, "round {round}");
        // Rotate the signing key and promote it at once, while requests flow.
        let now = store::unix_now();
        f.service
            .rotate_key(store::KeyUse::Sig, now, None)
            .await
            .unwrap();
        f.service.maintain(now + 600).await.unwrap();
    }
    let before = served.load(Ordering::SeqCst);
    while served.load(Ordering::SeqCst) < before + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during reloads and rotations"
    );
    let token = f.token(API, &["read"]);
    let seen = f
        .get("/api/x", &[("authorization", &format!("Bearer {token}"))])
        .await
        .json();
    assert_eq!(
        seen["headers"]["x-version"], "2",
        "the reloaded configuration serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_upstreams_and_tls_listener() {
    // An upstream spoken to over HTTP/2 with prior knowledge.
    let (up, _) = upstream("h2").await;
    let f = front(&route("h2", "/h2/", &[up], "auth = \"none\"\nh2 = true\n")).await;
    let seen = f.get("/h2/x", &[]).await.json();
    assert_eq!(seen["version"], "HTTP/2.0");

    // The listener with TLS: ALPN offers h2, and the service answers over it.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let tls = tokengate::server::listener::tls_config(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(tokengate::server::listener::serve(
        listener,
        std::sync::Arc::clone(&f.app),
        Some(tls),
        std::future::pending(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<axum::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let req = axum::http::Request::get(format!("https://localhost:{port}/h2/x"))
        .body(http_body_util::Full::default())
        .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(
        response.version(),
        axum::http::Version::HTTP_2,
        "ALPN chose h2"
    );
    assert_eq!(response.status(), 200);
    // HEAD over h2 to gateway paths: the gateway's own answers (here a 404) go out
    // without a body, which h2 would treat as a protocol error; proxied ones too.
    for path in ["/nothing-here", "/h2/x?probe"] {
        let head = axum::http::Request::head(format!("https://localhost:{port}{path}"))
            .body(http_body_util::Full::default())
            .unwrap();
        let response = client.request(head).await.unwrap();
        assert_eq!(response.version(), axum::http::Version::HTTP_2);
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("no h2 stream error")
            .to_bytes();
        assert!(body.is_empty(), "HEAD {path} ({status}) has no body");
    }
    // A plain-HTTP client on the TLS port gets nothing.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(15), plain.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
