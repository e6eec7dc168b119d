//! The gateway end to end: real upstreams and issuers on loopback, tokengate on a real socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jose::jwt::{self, Validation};
use jose::{Algorithm, Jwk};
use oauth::{Grant, RevokeBy};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use store::testing::Ctx;

use crate::gateway_env::{
    front, jwks_file, partner_key, partner_token, refused_address, remote_issuer, send, upstream,
    wait_for,
};
use crate::harness::{signed, API, ISSUER, SECRET_API};

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

pub async fn routing_rewriting_and_forwarded_identity(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let (other, _) = upstream("b").await;
    let config = [
        route("api", "/api/", &[up], &format!("strip_prefix = \"/api\"\nadd_prefix = \"/v1\"\nrequest_headers = {{ set = {{ x-env = \"test\" }}, remove = [\"x-drop\"] }}\nresponse_headers = {{ set = {{ x-served-by = \"tokengate\" }} }}\n{SELF_AUTH}")),
        route("admin-api", "/api/admin/", &[other], &SELF_AUTH.replace("\"read\"", "\"admin\"")),
        format!("[[routes]]\nname = \"exact\"\npath = \"/status\"\nmethods = [\"GET\"]\nupstreams = [\"http://{other}\"]\nauth = \"none\"\n"),
    ]
    .concat();
    let f = front(&ctx, &config).await;
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
    // W3C trace context: one is always sent upstream, a new sampled trace when the client
    // sent none (nothing is exported here, so the gateway adds no span of its own)...
    let started = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
    let fields: Vec<&str> = started.split('-').collect();
    assert_eq!(fields.len(), 4, "{started}");
    assert_eq!((fields[0], fields[3]), ("00", "01"), "{started}");
    assert!(
        fields[1].len() == 32 && fields[1] != "0".repeat(32),
        "{started}"
    );
    assert!(seen["headers"].get("tracestate").is_none());
    // ... and the client's, with its vendor state, continued unchanged.
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let with_trace = |traceparent: &'static str| {
        let bearer = bearer.clone();
        let f = &f;
        async move {
            f.get(
                "/api/things",
                &[
                    ("authorization", bearer.as_str()),
                    ("traceparent", traceparent),
                    ("tracestate", "congo=t61rcWkgMzE"),
                ],
            )
            .await
            .json()
        }
    };
    let seen = with_trace(given).await;
    assert_eq!(seen["headers"]["traceparent"], given);
    assert_eq!(seen["headers"]["tracestate"], "congo=t61rcWkgMzE");
    // An invalid one starts a new trace, and its vendor state is dropped with it.
    let seen = with_trace("00-00000000000000000000000000000000-00f067aa0ba902b7-01").await;
    let replaced = seen["headers"]["traceparent"].as_str().unwrap();
    assert!(
        !replaced.contains("00000000000000000000000000000000"),
        "{replaced}"
    );
    assert_ne!(replaced, started, "a new trace per request");
    assert!(seen["headers"].get("tracestate").is_none());

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

pub async fn token_rules_and_challenges(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let f = front(&ctx, &route("api", "/api/", &[up], SELF_AUTH)).await;
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
    assert_eq!(r.json()["error"], "missing_token");
    // Bad tokens: invalid_token with a description, each for its own reason.
    let now = store::unix_now();
    let other_key = Jwk::generate(Algorithm::ES256, None, Some("x".into())).unwrap();
    let forged = signed(
        &other_key,
        &json!({"iss": ISSUER, "sub": "u", "aud": API, "exp": now + 60, "scope": "read"}),
        &[("typ", "at+jwt".into())],
    );
    for (bad, code) in [
        ("garbage".to_owned(), "ERR_JWT_INVALID"),
        ("a.b.c".to_owned(), "ERR_JOSE_BASE64_INVALID"),
        (
            f.token("https://other.example", &["read"]),
            "ERR_GATEWAY_WRONG_AUDIENCE",
        ),
        (forged, "ERR_JWKS_NO_MATCHING_KEY"),
        ("x".repeat(10_000), "ERR_JWT_INVALID"),
        ("x".repeat(20_000), "ERR_GATEWAY_TOKEN_TOO_LONG"),
    ] {
        let c = f.refused(&call(bad).await, 401, code).await;
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
    let c = f
        .refused(&call(bad_iss).await, 401, "ERR_JWT_CLAIM_VALIDATION_FAILED")
        .await;
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains("iss"),
        "{c}"
    );
    // Signed by our active key as an at+jwt, with the given claims.
    let ours = |claims: serde_json::Value| {
        let ring = f.service.ring();
        jwt::sign(
            claims.as_object().unwrap(),
            ring.active_signing(),
            ring.signing_alg(),
            Some("at+jwt"),
        )
        .unwrap()
    };
    // Our own signature, typ and audience, but an issuer the route does not trust.
    let stranger = ours(
        json!({"iss": "https://elsewhere.example", "sub": "u", "aud": API, "exp": now + 60, "scope": "read"}),
    );
    f.refused(&call(stranger).await, 401, "ERR_GATEWAY_UNTRUSTED_ISSUER")
        .await;
    // Expiry: within the route's 30 s leeway a token is still accepted; beyond it, refused.
    let with_exp = |exp: i64| {
        ours(
            json!({"iss": ISSUER, "sub": "u", "aud": API, "exp": exp, "iat": exp - 180, "scope": "read"}),
        )
    };
    assert_eq!(
        call(with_exp(now - 5)).await.status,
        200,
        "within the leeway"
    );
    let c = f
        .refused(&call(with_exp(now - 120)).await, 401, "ERR_JWT_EXPIRED")
        .await;
    assert!(c.contains("expired"), "{c}");
    // Missing scope: 403 naming the required scope.
    let r = call(f.token(API, &["write"])).await;
    let c = f.refused(&r, 403, "ERR_GATEWAY_INSUFFICIENT_SCOPE").await;
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
    f.refused(&r, 400, "ERR_GATEWAY_BAD_CREDENTIALS").await;
    assert_eq!(r.json()["error"], "invalid_request");
}

pub async fn encrypted_tokens_cache_and_revocation(ctx: Ctx) {
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
    let f = front(&ctx, &config).await;
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
    let r = f.get("/api/x", &[("authorization", &bearer)]).await;
    f.refused(&r, 401, "ERR_GATEWAY_WRONG_AUDIENCE").await;
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
    let r = f.get("/api/x", &[("authorization", &bearer)]).await;
    let c = f.refused(&r, 401, "ERR_GATEWAY_REVOKED").await;
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
    let r = f.get("/api/x", &[("authorization", &bearer)]).await;
    f.refused(&r, 401, "ERR_GATEWAY_REVOKED").await;
}

pub async fn forward_original_and_internal_tokens(ctx: Ctx) {
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
    let f = front(&ctx, &config).await;
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
    assert_eq!(claims.get("scope").unwrap().unwrap(), "read");
    assert!(claims.exp().unwrap() - claims.iat().unwrap() <= 60);
    // Reused while fresh.
    let again = f.get("/int/x", &[("authorization", &bearer)]).await.json();
    assert_eq!(
        again["headers"]["authorization"],
        seen["headers"]["authorization"]
    );
}

pub async fn dpop_bound_tokens(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let f = front(&ctx, &route("api", "/api/", &[up], SELF_AUTH)).await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let token = f.grant(
        Grant::new(ISSUER, "c", "u", API)
            .scope(["read"])
            .bind(key.thumbprint()),
    );
    let url = f.url("/api/x");
    // A proof with the given claims changed from a good one for GET `url` and `token`.
    let proof_with = |jti: &str, key: &Jwk, changes: serde_json::Value| {
        let mut claims = json!({"jti": jti, "htm": "GET", "htu": url, "iat": store::unix_now(), "ath": oauth::dpop::access_token_hash(&token)});
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
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
    let proof = |jti: &str, key: &Jwk| proof_with(jti, key, json!({}));
    let dpop_auth = format!("DPoP {token}");
    // Refused as DPoP failures, and for the reason `why` (the error_description).
    let refused_for = |r: crate::harness::Reply, why: &'static str| {
        let f = &f;
        async move {
            let c = f.refused(&r, 401, "ERR_GATEWAY_DPOP").await;
            let description = r.json()["error_description"].as_str().unwrap().to_owned();
            assert!(
                description.contains(why),
                "{description} (wanted: {why}); {c}"
            );
            c
        }
    };
    // As a bearer token: refused.
    let r = f
        .get("/api/x", &[("authorization", &format!("Bearer {token}"))])
        .await;
    let c = refused_for(r, "must be presented with the DPoP scheme").await;
    assert!(c.contains("DPoP"), "{c}");
    // With a proof: accepted; the same proof again: refused.
    let p = proof("d1", &key);
    let with = |p: String| {
        let (f, dpop_auth) = (&f, &dpop_auth);
        async move {
            f.get("/api/x", &[("authorization", dpop_auth), ("dpop", &p)])
                .await
        }
    };
    assert_eq!(with(p.clone()).await.status, 200);
    let c = refused_for(with(p).await, "used before").await;
    assert!(c.starts_with("DPoP realm=\"tokengate\""), "{c}");
    assert!(c.contains("error=\"invalid_dpop_proof\""), "{c}");
    // No proof, a proof by another key, a proof for another token.
    let r = f.get("/api/x", &[("authorization", &dpop_auth)]).await;
    refused_for(r, "the DPoP proof is missing").await;
    let stranger = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    refused_for(with(proof("d2", &stranger)).await, "signed by another key").await;
    let other_ath = json!({"ath": oauth::dpop::access_token_hash("other")});
    refused_for(
        with(proof_with("d3", &key, other_ath)).await,
        "ath does not match",
    )
    .await;
    // The proof must name this request: its method, its URL (scheme, authority, path), and
    // be fresh within the window (60 s by default) both ways.
    let now = store::unix_now();
    for (jti, changes, why) in [
        ("m1", json!({"htm": "POST"}), "htm does not match"),
        (
            "u1",
            json!({"htu": f.url("/api/other")}),
            "htu does not match",
        ),
        (
            "u2",
            json!({"htu": url.replace("http://", "https://")}),
            "htu does not match",
        ),
        (
            "u3",
            json!({"htu": url.replace("127.0.0.1", "localhost")}),
            "htu does not match",
        ),
        ("t1", json!({"iat": now - 3600}), "iat is outside"),
        ("t2", json!({"iat": now + 3600}), "iat is outside"),
    ] {
        refused_for(with(proof_with(jti, &key, changes)).await, why).await;
    }
    // Within the window (either side), and a query string, which `htu` leaves out
    // (RFC 9449 §4.3): accepted.
    for (jti, changes) in [
        ("ok1", json!({"iat": now - 30})),
        ("ok2", json!({"iat": now + 30})),
    ] {
        assert_eq!(
            with(proof_with(jti, &key, changes)).await.status,
            200,
            "{jti}"
        );
    }
    let r = f
        .get(
            "/api/x?page=2",
            &[("authorization", &dpop_auth), ("dpop", &proof("q1", &key))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // An unbound token presented as DPoP.
    let plain = f.token(API, &["read"]);
    let plain_proof = {
        let ath = json!({"ath": oauth::dpop::access_token_hash(&plain)});
        proof_with("d4", &key, ath)
    };
    let r = f
        .get(
            "/api/x",
            &[
                ("authorization", &format!("DPoP {plain}")),
                ("dpop", &plain_proof),
            ],
        )
        .await;
    refused_for(r, "not DPoP-bound").await;
}

pub async fn third_party_issuers_static_remote_and_discovered(ctx: Ctx) {
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
    let f = front(
        &ctx,
        &format!("{issuers}{}", route("api", "/api/", &[up], auth)),
    )
    .await;
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
    f.refused(&call(untyped).await, 401, "ERR_JOSE_TYP_INVALID")
        .await;

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
    // The JWKS answer is held until all 16 requests have missed the token cache, so they are
    // all verifying at once: one fetch is in flight for all of them.
    let held = remote.gate.write().await;
    let (_, misses) = f.app.gateway().cache().counters();
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
    wait_for("16 concurrent requests miss the token cache", || {
        f.app.gateway().cache().counters().1 >= misses + 16
    })
    .await;
    wait_for("the refetch reaches the issuer", || {
        remote.fetches.load(Ordering::SeqCst) == 2
    })
    .await;
    drop(held);
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
        let r = call(partner_token(&unknown, "https://remote.example", json!({}))).await;
        f.refused(&r, 401, "ERR_JWKS_NO_MATCHING_KEY").await;
    }
    assert_eq!(remote.fetches.load(Ordering::SeqCst), 2, "cooldown");
    // A partner token claiming to be the remote issuer: refused.
    let r = call(partner_token(&partner, "https://remote.example", json!({}))).await;
    f.refused(&r, 401, "ERR_JWKS_NO_MATCHING_KEY").await;
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

pub async fn mcp_protected_resource(ctx: Ctx) {
    let (up, _) = upstream("mcp").await;
    let extra = "[routes.mcp]\nresource = \"https://tools.example/mcp\"\n[routes.auth]\nissuers = [\"self\"]\nrequired_scopes = [\"tools\"]\n";
    let f = front(&ctx, &route("mcp", "/mcp/", &[up], extra)).await;
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
    let r = f
        .get("/mcp", &[("authorization", &format!("Bearer {wrong}"))])
        .await;
    let c = f.refused(&r, 401, "ERR_GATEWAY_WRONG_AUDIENCE").await;
    assert!(c.contains("resource_metadata="), "{c}");
    let right = f.grant(Grant::new(ISSUER, "c", "u", "https://tools.example/mcp").scope(["tools"]));
    assert_eq!(
        f.get("/mcp", &[("authorization", &format!("Bearer {right}"))])
            .await
            .status,
        200
    );
}

pub async fn upstream_failures_balancing_and_limits(ctx: Ctx) {
    let (a, a_state) = upstream("a").await;
    let (b, b_state) = upstream("b").await;
    // An address nothing listens on, held by this test so no one else takes it.
    let (_dead_socket, dead) = refused_address();
    // An upstream that passes its first health check and then goes away: one request per
    // connection, so no pooled connection outlives it.
    let flaky_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = flaky_listener.local_addr().unwrap();
    let flaky_server = tokio::spawn(async move {
        while let Ok((mut s, _)) = flaky_listener.accept().await {
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
        route(
            "slow",
            "/slow/",
            &[a],
            "auth = \"none\"\ntimeout = \"1s\"\n",
        ),
        route(
            "small",
            "/small/",
            &[a],
            "auth = \"none\"\nmax_body = 100\n",
        ),
        route(
            "small-h2",
            "/small-h2/",
            &[a],
            "auth = \"none\"\nmax_body = 100\nh2 = true\n",
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
    let f = front(&ctx, &config).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(
            f.get("/rr/x", &[]).await.json()["upstream"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(names, ["a", "b", "a", "b"], "round robin");
    let r = f.get("/dead/x", &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    for _ in 0..4 {
        let r = f.get("/retry/x", &[]).await;
        assert_eq!(r.status, 200, "GET is retried on the next target");
        assert_eq!(r.json()["upstream"], "a");
    }
    // The flaky target passed its first health check (a round completed with it healthy),
    // then died: a GET that finds it gone is retried on the next target, even though the
    // failure marks the first one unhealthy.
    let retry_hc = f.upstreams("retry-hc");
    let flaky_base = format!("http://{flaky}");
    wait_for("the first health-check round", || {
        retry_hc.health_rounds() >= 1
    })
    .await;
    assert_eq!(retry_hc.is_healthy(&flaky_base), Some(true));
    flaky_server.abort();
    let _ = flaky_server.await;
    for _ in 0..4 {
        let r = f.get("/retry-hc/x", &[]).await;
        assert_eq!(r.status, 200, "retried on the healthy target");
        assert_eq!(r.json()["upstream"], "a");
    }
    assert_eq!(
        retry_hc.is_healthy(&flaky_base),
        Some(false),
        "the dead target was tried, and taken out of rotation"
    );
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
    // The request reached the upstream, which did not answer within the route's timeout.
    let r = f.get("/slow", &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "gateway_timeout");
    assert_eq!(a_state.hits_on("/slow"), 1);
    let r = send(&f.client, "POST", &f.url("/small/x"), &[], &"x".repeat(200)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");
    assert_eq!(
        send(&f.client, "POST", &f.url("/small/x"), &[], "ok")
            .await
            .status,
        200
    );
    // A body without Content-Length (chunked) is stopped at the limit while it streams to
    // the upstream: 413 as well, whether the upstream is spoken to over HTTP/1.1 (the body's
    // error comes back) or h2 (the stream is reset).
    for path in ["/small/x", "/small-h2/x"] {
        let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
        let chunk = "x".repeat(200);
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
                     Connection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
                    chunk.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
            .await
            .expect("an answer to the chunked body")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }

    // Health checks take an unhealthy target out of rotation: once a round that started
    // after the change has completed, only a is used.
    let hc = f.upstreams("hc");
    b_state.healthy.store(false, Ordering::SeqCst);
    let rounds = hc.health_rounds();
    wait_for("two more health-check rounds", || {
        hc.health_rounds() >= rounds + 2
    })
    .await;
    assert_eq!(hc.is_healthy(&format!("http://{b}")), Some(false));
    for _ in 0..4 {
        assert_eq!(f.get("/hc/x", &[]).await.json()["upstream"], "a");
    }
    // And back in once healthy again.
    b_state.healthy.store(true, Ordering::SeqCst);
    let rounds = hc.health_rounds();
    wait_for("two more health-check rounds", || {
        hc.health_rounds() >= rounds + 2
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(f.get("/hc/x", &[]).await.json()["upstream"].clone());
    }
    seen.sort_by_key(|v| v.to_string());
    assert_eq!(seen, [json!("a"), json!("b")]);
}

pub async fn streaming_and_upgrades_pass_through(ctx: Ctx) {
    let (up, state) = upstream("a").await;
    let f = front(
        &ctx,
        &route(
            "s",
            "/s/",
            &[up],
            "auth = \"none\"\nstrip_prefix = \"/s\"\n",
        ),
    )
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
    open_tunnel(&f, "/s/upgrade", None).await;
    // Other upgrades (h2c) are not tunnelled: the request goes through as a plain one,
    // without the upgrade request.
    let r = send(
        &f.client,
        "GET",
        &f.url("/s/plain"),
        &[
            ("connection", "upgrade, http2-settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = r.json();
    assert_eq!(seen["path"], "/plain");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(seen["headers"].get(name).is_none(), "{name}: {seen}");
    }
    tunnels_end_with_their_lifetime_or_token(&ctx).await;
}

/// Opens a WebSocket tunnel through `f` at `path` and checks it echoes.
async fn open_tunnel(
    f: &crate::gateway_env::Front,
    path: &str,
    bearer: Option<&str>,
) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let auth = bearer.map_or(String::new(), |b| format!("Authorization: {b}\r\n"));
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", f.addr).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
        .await
        .expect("the tunnel echoes within 5 s")
        .unwrap();
    assert_eq!(&echo, b"ping");
    stream
}

/// Waits (at most 10 s) for the gateway to close a tunnel.
async fn closed_by_the_gateway(stream: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the tunnel is still open: {read:?}"
    );
}

/// WebSocket tunnels do not outlive their route's `max_tunnel_lifetime`, nor the
/// revocation of the token that opened them (issue #13, finding 6).
async fn tunnels_end_with_their_lifetime_or_token(ctx: &Ctx) {
    let (up, _) = upstream("a").await;
    let config = [
        route(
            "short",
            "/short/",
            &[up],
            "auth = \"none\"\nstrip_prefix = \"/short\"\nmax_tunnel_lifetime = \"1s\"\n",
        ),
        route(
            "ws",
            "/ws/",
            &[up],
            &format!("strip_prefix = \"/ws\"\n{SELF_AUTH}"),
        ),
    ]
    .concat();
    let f = front(ctx, &config).await;
    let mut short = open_tunnel(&f, "/short/upgrade", None).await;
    closed_by_the_gateway(&mut short).await;
    let (token, jti) = f.recorded(API, &["read"]).await;
    let bearer = format!("Bearer {token}");
    let mut ws = open_tunnel(&f, "/ws/upgrade", Some(&bearer)).await;
    // Still open a moment later, then revoked: closed within a few seconds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.write_all(b"pong").await.unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"pong");
    f.service
        .revoke_tokens(RevokeBy::Jti(jti), store::unix_now(), None)
        .await
        .unwrap();
    closed_by_the_gateway(&mut ws).await;
}

pub async fn hostile_input(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let f = front(&ctx, &route("api", "/api/", &[up], SELF_AUTH)).await;
    // A 1 MB token: refused at the header limit (431) without reaching token parsing. The
    // answer is read while the request is still being written: the server stops reading at
    // its limit, so the client's write fails once it has answered.
    let huge = format!("Bearer {}", "a".repeat(1024 * 1024));
    let stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let request = format!("GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: {huge}\r\n\r\n");
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(request.as_bytes()).await;
        writer
    });
    let mut reply = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let read = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut reply[n..]))
            .await
            .expect("an answer to the oversized head")
            .expect("the answer is readable before the connection closes");
        assert!(read > 0, "closed without an answer after {n} bytes");
        n += read;
    }
    let text = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    drop(writing.await.unwrap());
    // A 20 KB token within the header limit: 401 at the gateway's own token limit.
    let r = f
        .get(
            "/api/x",
            &[("authorization", &format!("Bearer {}", "a".repeat(20_000)))],
        )
        .await;
    f.refused(&r, 401, "ERR_GATEWAY_TOKEN_TOO_LONG").await;
    // Garbage bytes in headers: the Authorization header is not text.
    let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    stream.write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x01\r\nDPoP: \xc3\x28\r\n\r\n").await.unwrap();
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // A slow client trickling a request head byte by byte is cut off at the header
    // timeout, although it keeps sending: the connection closes without an answer (a
    // refused head would get one).
    let slow = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let (mut slow_reader, mut slow_writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .chain(std::iter::repeat(&b'a'))
        {
            if slow_writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 256];
    let answer = tokio::time::timeout(
        tokengate::config::Timeouts::default().head + Duration::from_secs(20),
        slow_reader.read(&mut buf),
    )
    .await
    .expect("the trickling connection is closed");
    assert!(
        matches!(answer, Ok(0) | Err(_)),
        "closed without an answer: {:?}",
        answer.map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
    );
    trickle.abort();
    // The server still serves.
    let r = f.get("/api/x", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "missing_token");
}

pub async fn reload_and_key_rotation_under_load(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let f = Arc::new(front(&ctx, &route("api", "/api/", &[up], SELF_AUTH)).await);
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
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
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
    // Each step (reload, refused reload, rotation) happens while requests flow: before each,
    // the load has served more requests since the previous step.
    let progressed = |served: &Arc<AtomicU64>| {
        let before = served.load(Ordering::SeqCst);
        let served = Arc::clone(served);
        async move {
            wait_for("requests served between two steps", || {
                served.load(Ordering::SeqCst) >= before + 4
            })
            .await;
        }
    };
    for round in 0..3 {
        progressed(&served).await;
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
        progressed(&served).await;
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
        progressed(&served).await;
        let now = store::unix_now();
        f.service
            .rotate_key(store::KeyUse::Sig, now, None)
            .await
            .unwrap();
        f.service.maintain(now + 600).await.unwrap();
    }
    progressed(&served).await;
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
    // The admin API shows the routes in effect: the last reload's, with when it happened.
    let r = send(
        &f.client,
        "GET",
        &f.url("/admin/config"),
        &[("authorization", &admin)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let shown: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(shown["reloadable"], true, "{shown}");
    assert!(shown["reloaded_at"].as_i64().unwrap() > 0, "{shown}");
    assert!(
        shown["fingerprint"].as_str().is_some_and(|f| !f.is_empty()),
        "{shown}"
    );
    assert!(shown["configuration"]["routes"].is_array(), "{shown}");
    assert!(
        !String::from_utf8_lossy(&r.body).contains(crate::harness::ADMIN),
        "the admin token is never shown"
    );
}

pub async fn h2_upstreams_and_tls_listener(ctx: Ctx) {
    // An upstream spoken to over HTTP/2 with prior knowledge.
    let (up, _) = upstream("h2").await;
    let f = front(
        &ctx,
        &route("h2", "/h2/", &[up], "auth = \"none\"\nh2 = true\n"),
    )
    .await;
    let seen = f.get("/h2/x", &[]).await.json();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");

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
        tokengate::config::Timeouts::default(),
        tokengate::server::Surface::All,
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
    let seen: serde_json::Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        format!("localhost:{port}")
    );
    // HEAD over h2 to gateway paths: the gateway's own answers (here a 404) go out
    // without a body, which h2 would treat as a protocol error; proxied ones too.
    // `/admin-ui/` takes the router's way into the gateway (its fallback), the others the
    // listener's; both behave alike.
    for path in ["/nothing-here", "/h2/x?probe", "/admin-ui/x"] {
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
    assert!(
        !String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/"),
        "no HTTP answer over plain TCP: {:?}",
        &buf[..n]
    );
}

pub async fn forwarded_headers_hop_by_hop_and_hosts(ctx: Ctx) {
    let (a, _) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let config = [
        route(
            "any-host",
            "/h/",
            &[a],
            "auth = \"none\"\nstrip_prefix = \"/h\"\n",
        ),
        route(
            "a-host",
            "/h/",
            &[b],
            "auth = \"none\"\nstrip_prefix = \"/h\"\nhost = \"api.example\"\n",
        ),
    ]
    .concat();
    let f = front(&ctx, &config).await;
    // X-Forwarded-*: from a peer that is not a trusted proxy (none is, by default) the
    // gateway's own: a client's For, Real-IP, Proto and Host are replaced or dropped, and
    // Forwarded and X-Original-URL never pass (issue #13, finding 8).
    let spoofed = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-real-ip", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-original-url", "/admin/"),
    ];
    let r = f.get("/h/x", &spoofed).await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["upstream"], "a");
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], f.addr.to_string());
    for gone in ["forwarded", "x-real-ip", "x-original-url"] {
        assert!(h.get(gone).is_none(), "{gone}: {h}");
    }
    // Behind a trusted proxy, its chain is kept and the peer appended.
    let behind = front(
        &ctx,
        &format!("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{config}"),
    )
    .await;
    let h = &behind.get("/h/x", &spoofed).await.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-real-ip"], "203.0.113.7");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert!(h.get("x-original-url").is_none(), "{h}");
    // Hop-by-hop fields (RFC 9110 §7.6.1) and those Connection names stay at the gateway,
    // both ways.
    let r = f
        .get(
            "/h/x",
            &[
                ("connection", "x-private, keep-alive"),
                ("x-private", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic c2VjcmV0"),
                ("te", "trailers"),
                ("x-public", "1"),
            ],
        )
        .await;
    let h = &r.json()["headers"];
    for name in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
    }
    assert_eq!(h["x-public"], "1");
    let r = f.get("/h/hop", &[]).await;
    assert_eq!(r.status, 200);
    for name in [
        "connection",
        "x-up-private",
        "keep-alive",
        "proxy-authenticate",
    ] {
        assert!(r.header(name).is_none(), "{name} reached the client");
    }
    assert_eq!(r.header("x-up-public"), Some("1"));
    // Host routing at request time: the route for the request's host (any case, any port)
    // beats the one without a host; other hosts get the one without.
    for (host, upstream) in [
        ("api.example", "b"),
        ("API.Example:8443", "b"),
        ("api.example.", "b"),
        ("other.example", "a"),
    ] {
        let seen = f.get("/h/x", &[("host", host)]).await.json();
        assert_eq!(seen["upstream"], upstream, "{host}");
        assert_eq!(seen["headers"]["x-forwarded-host"], host);
    }
    hosts_follow_rfc_9112_and_9113(&f).await;
}

/// Host handling over raw HTTP/1.1 and h2 (issue #13, finding 7): missing, repeated and
/// malformed are refused; the request target's authority wins over Host; on h2 a Host
/// that contradicts `:authority` is refused.
async fn hosts_follow_rfc_9112_and_9113(f: &crate::gateway_env::Front) {
    for (head, status, upstream) in [
        ("GET /h/x HTTP/1.1\r\n", "400", None),
        (
            "GET /h/x HTTP/1.1\r\nHost: api.example\r\nHost: other.example\r\n",
            "400",
            None,
        ),
        (
            "GET /h/x HTTP/1.1\r\nHost: api.example/../x\r\n",
            "400",
            None,
        ),
        (
            "GET /h/x HTTP/1.1\r\nHost: evil@api.example\r\n",
            "400",
            None,
        ),
        (
            "GET /oauth2/jwks HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
            "400",
            None,
        ),
        (
            "GET http://api.example/h/x HTTP/1.1\r\nHost: other.example\r\n",
            "200",
            Some("b"),
        ),
        ("GET /h/x HTTP/1.0\r\n", "200", Some("a")),
    ] {
        let mut stream = tokio::net::TcpStream::connect(f.addr).await.unwrap();
        stream
            .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} "))
                || answer.starts_with(&format!("HTTP/1.0 {status} ")),
            "{head:?}: {answer}"
        );
        if let Some(upstream) = upstream {
            assert!(
                answer.contains(&format!("\"upstream\":\"{upstream}\"")),
                "{head:?}: {answer}"
            );
        }
    }
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(f.addr).await.unwrap());
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    for (host, status) in [
        (None, 200),
        (Some("API.example"), 200),
        (Some("other.example"), 400),
    ] {
        let mut req = axum::http::Request::get("http://api.example/h/x");
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let response = h2
            .send_request(
                req.body(http_body_util::Empty::<axum::body::Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            status,
            "h2 :authority api.example, Host {host:?}"
        );
    }
}
