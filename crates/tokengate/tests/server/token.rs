//! The token endpoint: grants, client authentication, DPoP and every error.

use std::time::Duration;

use jose::{Algorithm, Jwk, JwkSet};
use oauth::{Settings, TrustedIssuer};
use serde_json::json;
use store::testing::Ctx;
use store::AuthMethod;

use crate::harness::{
    app, app_with, basic, dpop_proof, form_encode, settings, signed, API, ISSUER, SECRET_API,
};

pub async fn client_credentials_issues_an_rfc9068_token(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let reply = app
        .token(
            &id,
            &secret,
            "resource=https%3A%2F%2Fapi.example&scope=read",
        )
        .await;
    let body = reply.ok();
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let (header, _) = jose::jwt::decode_unverified(token).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    let claims = app.verify(token, API).await;
    assert_eq!(claims.sub(), Some(id.as_str()));
    assert_eq!(claims.get("client_id").unwrap(), id.as_str());
    assert_eq!(claims.get("scope").unwrap(), "read");
    let (iat, exp) = (claims.iat().unwrap(), claims.exp().unwrap());
    assert_eq!(exp - iat, 300);
    let jti = claims.jti().unwrap();

    // Without scope: every scope the client and audience share; without resource: the
    // client's only audience.
    let body = app.token(&id, &secret, "").await.ok();
    assert_eq!(body["scope"], "read write");

    // The issuance is recorded and audited.
    let stored = app.service.store().token(jti).await.unwrap().unwrap();
    assert_eq!(stored.client_id, id);
    let events = app.service.store().audit_events(0, 100).await.unwrap();
    let issued = events
        .iter()
        .find(|e| e.event.jti.as_deref() == Some(jti))
        .unwrap();
    assert_eq!(issued.event.event, "token.issued");
    assert_eq!(issued.event.audience.as_deref(), Some(API));
    assert!(issued.event.request_id.is_some());
    // No secret or token in the audit trail.
    let all = format!("{events:?}");
    assert!(!all.contains(&secret) && !all.contains(token));
}

pub async fn secret_post_and_method_mismatch(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretPost)
        .await;
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    app.post("/oauth2/token", &form, &[]).await.ok();
    // Registered for post, presented with Basic.
    assert_eq!(
        app.token(&id, &secret, "").await.error(401),
        "invalid_client"
    );
    // Basic and post at once.
    let reply = app
        .post(
            "/oauth2/token",
            &form,
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    assert_eq!(reply.error(400), "invalid_request");
}

pub async fn private_key_jwt(ctx: Ctx) {
    let app = app(&ctx).await;
    let key = Jwk::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
    let jwks = JwkSet::new(vec![key.to_public().unwrap()]).unwrap();
    let creds = app
        .service
        .create_client(
            oauth::NewClient {
                name: "pk".into(),
                scopes: vec!["read".into()],
                audiences: vec![API.into()],
                auth_method: AuthMethod::PrivateKeyJwt,
                jwks: Some(serde_json::Value::Object(jwks.to_map()).to_string()),
            },
            store::unix_now(),
            None,
        )
        .await
        .unwrap();
    assert!(creds.client_secret.is_none());
    let id = creds.client_id;
    let now = store::unix_now();
    let assertion = |jti: &str, aud: &str, exp: i64| {
        signed(
            &key,
            &json!({"iss": id, "sub": id, "aud": aud, "exp": exp, "iat": now, "jti": jti}),
            &[],
        )
    };
    let form = |a: &str| {
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={a}",
            form_encode(oauth::JWT_BEARER)
        )
    };
    let token_url = format!("{ISSUER}/oauth2/token");
    let first = assertion("a1", &token_url, now + 60);
    let body = app.post("/oauth2/token", &form(&first), &[]).await.ok();
    assert_eq!(body["token_type"], "Bearer");
    // The issuer identifier is an accepted audience too.
    app.post(
        "/oauth2/token",
        &form(&assertion("a2", ISSUER, now + 60)),
        &[],
    )
    .await
    .ok();
    // Replay, wrong audience, expired, and a key the client did not register.
    let cases = [
        first,
        assertion("a3", "https://elsewhere.example", now + 60),
        assertion("a4", &token_url, now - 3600),
        signed(
            &Jwk::generate(Algorithm::ES256, None, Some("k1".into())).unwrap(),
            &json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60, "jti": "a5"}),
            &[],
        ),
    ];
    for case in cases {
        let reply = app.post("/oauth2/token", &form(&case), &[]).await;
        assert_eq!(reply.error(401), "invalid_client");
    }
    // A wrong assertion type.
    let reply = app
        .post(
            "/oauth2/token",
            &format!(
                "grant_type=client_credentials&client_assertion_type=x&client_assertion={}",
                assertion("a6", &token_url, now + 60)
            ),
            &[],
        )
        .await;
    assert_eq!(reply.error(400), "invalid_request");
}

pub async fn invalid_client(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    for (who, pass) in [("nobody", "x"), (id.as_str(), "wrong"), (id.as_str(), "")] {
        let reply = app.token(who, pass, "").await;
        assert_eq!(reply.error(401), "invalid_client");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"tokengate\"")
        );
    }
    // No credentials at all.
    let reply = app
        .post("/oauth2/token", "grant_type=client_credentials", &[])
        .await;
    assert_eq!(reply.error(401), "invalid_client");
    // Malformed Basic credentials.
    let reply = app
        .post(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", "Basic !!!")],
        )
        .await;
    assert_eq!(reply.error(401), "invalid_client");
    // A disabled client.
    app.service
        .set_client_disabled(&id, true, 0, None)
        .await
        .unwrap();
    assert_eq!(
        app.token(&id, &secret, "").await.error(401),
        "invalid_client"
    );
    // The client is told nothing more than "client authentication failed"; the audit trail
    // (written through a queue, so polled here) says why.
    let mut found = false;
    for _ in 0..100 {
        let denied = app.service.store().audit_events(0, 100).await.unwrap();
        found = denied.iter().any(|e| {
            e.event.event == "token.denied"
                && e.event
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("disabled"))
        });
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(found, "a token.denied event naming the cause");
}

pub async fn exchange_is_limited_to_holders_and_lifetimes(ctx: Ctx) {
    let app = app(&ctx).await;
    let (owner, owner_secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let (stranger, stranger_secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let short = app.token(&owner, &owner_secret, "scope=read").await.ok();
    let token = short["access_token"].as_str().unwrap().to_owned();
    let form = format!(
        "grant_type={}&subject_token={token}&subject_token_type={}&resource={}",
        form_encode(oauth::TOKEN_EXCHANGE),
        form_encode("urn:ietf:params:oauth:token-type:access_token"),
        form_encode(SECRET_API)
    );
    // A client that neither holds the token nor serves its audience cannot launder it.
    let reply = app.token(&stranger, &stranger_secret, &form).await;
    assert_eq!(reply.error(400), "invalid_grant");
    // The holder can; the new token does not outlive the subject token.
    let (both, both_secret) = app
        .client(&["read"], &[API, SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let _ = (both, both_secret);
    let own = app
        .token(
            &owner,
            &owner_secret,
            &form.replace(&form_encode(SECRET_API), &form_encode(API)),
        )
        .await
        .ok();
    let subject_exp = jose::jwt::decode_unverified(&token).unwrap().1["exp"]
        .as_i64()
        .unwrap();
    let new_exp = jose::jwt::decode_unverified(own["access_token"].as_str().unwrap())
        .unwrap()
        .1["exp"]
        .as_i64()
        .unwrap();
    assert!(new_exp <= subject_exp, "{new_exp} > {subject_exp}");
    // Error descriptions say nothing about why client authentication failed.
    let reply = app.token(&owner, "wrong", "").await;
    assert_eq!(
        reply.json()["error_description"],
        "client authentication failed"
    );
}

pub async fn malformed_requests(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let auth = basic(&id, &secret);
    let cases: Vec<(Option<&str>, String)> = vec![
        (
            Some("application/json"),
            r#"{"grant_type":"client_credentials"}"#.into(),
        ),
        (None, "grant_type=client_credentials".into()),
        (
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&grant_type=client_credentials".into(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&scope=%zz".into(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&scope=%ff".into(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            format!(
                "grant_type=client_credentials&pad={}",
                "a".repeat(70 * 1024)
            ),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "scope=read".into(),
        ),
    ];
    for (content_type, body) in cases {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri("/oauth2/token")
            .header("authorization", &auth);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = app
            .send(req.body(axum::body::Body::from(body.clone())).unwrap())
            .await;
        assert_eq!(
            reply.error(400),
            "invalid_request",
            "{}",
            &body[..body.len().min(80)]
        );
    }
    let reply = app
        .token(&id, &secret, "grant_type=password&username=a&password=b")
        .await;
    assert_eq!(reply.error(400), "unsupported_grant_type");
    // Wrong method: 405; unknown path: 404 JSON with a request id.
    assert_eq!(app.get("/oauth2/token", &[]).await.status, 405);
    let reply = app.get("/nowhere", &[("x-request-id", "trace-42")]).await;
    assert_eq!(reply.error(404), "not_found");
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));
    // A hostile request id is replaced, not echoed.
    let reply = app
        .get("/nowhere", &[("x-request-id", "a b<script>")])
        .await;
    assert_ne!(reply.header("x-request-id"), Some("a b<script>"));
}

pub async fn scope_and_target(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(
            &["read", "write"],
            &[API, SECRET_API],
            AuthMethod::ClientSecretBasic,
        )
        .await;
    let api = form_encode(API);
    let err = |reply: crate::harness::Reply| reply.error(400);
    assert_eq!(
        err(app
            .token(&id, &secret, &format!("resource={api}&scope=admin"))
            .await),
        "invalid_scope"
    );
    // write is the client's, but the secret audience does not accept it.
    let secret_api = form_encode(SECRET_API);
    assert_eq!(
        err(app
            .token(&id, &secret, &format!("resource={secret_api}&scope=write"))
            .await),
        "invalid_scope"
    );
    assert_eq!(
        err(app
            .token(&id, &secret, "resource=https%3A%2F%2Funknown.example")
            .await),
        "invalid_target"
    );
    // Two audiences registered: the resource must be named; one per token.
    assert_eq!(err(app.token(&id, &secret, "").await), "invalid_target");
    assert_eq!(
        err(app
            .token(
                &id,
                &secret,
                &format!("resource={api}&resource={secret_api}")
            )
            .await),
        "invalid_target"
    );
    // `audience` (RFC 8693 style) works like resource; the same value twice is one.
    app.token(&id, &secret, &format!("audience={api}&resource={api}"))
        .await
        .ok();
    // A client not registered for the audience.
    let (other, other_secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    assert_eq!(
        err(app
            .token(&other, &other_secret, &format!("resource={api}"))
            .await),
        "invalid_target"
    );
}

pub async fn encrypted_audience(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let body = app.token(&id, &secret, "").await.ok();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 5, "a nested JWE");
    assert_eq!(body["expires_in"], 120);
    // The payload is not readable without the service's key, and it decrypts with it.
    assert!(jose::jwt::decode_unverified(token).is_err());
    let ring = app.service.ring();
    let jwt = jose::jwt::decrypt_and_verify(
        token,
        ring.decryption_keys(),
        &jose::jwe::DecryptOptions::from_key(),
        ring.jwks(),
        &jose::jwt::Validation::new()
            .algorithms_from_key()
            .issuer(ISSUER)
            .audience(SECRET_API)
            .typ("at+jwt"),
    )
    .unwrap();
    assert_eq!(jwt.claims.get("scope").unwrap(), "read");
}

pub async fn token_exchange(ctx: Ctx) {
    let partner = Jwk::generate(Algorithm::ES256, None, Some("p1".into())).unwrap();
    let mut s = settings();
    s.trusted_issuers.push(TrustedIssuer {
        issuer: "https://partner.example".into(),
        keys: JwkSet::new(vec![partner.to_public().unwrap()]).unwrap(),
        algorithms: vec![Algorithm::ES256],
        audience: None,
    });
    let app = app_with(&ctx, s, None).await;
    let (user_client, user_secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let (svc, svc_secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let subject = app
        .token(&user_client, &user_secret, "scope=read")
        .await
        .ok();
    let subject = subject["access_token"].as_str().unwrap().to_owned();
    let exchange = |token: &str, extra: &str| {
        format!(
            "grant_type={}&subject_token={token}&subject_token_type={}{extra}",
            form_encode(oauth::TOKEN_EXCHANGE),
            form_encode("urn:ietf:params:oauth:token-type:access_token")
        )
    };
    let body = app
        .token(&svc, &svc_secret, &exchange(&subject, ""))
        .await
        .ok();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["scope"], "read", "an exchange cannot widen the scope");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some(user_client.as_str()));
    assert_eq!(claims.get("client_id").unwrap(), svc.as_str());
    let reply = app
        .token(&svc, &svc_secret, &exchange(&subject, "&scope=write"))
        .await;
    assert_eq!(reply.error(400), "invalid_scope");

    // A trusted partner's token, addressed to us.
    let now = store::unix_now();
    let partner_token = |iss: &str, aud: &str, key: &Jwk| {
        signed(
            key,
            &json!({"iss": iss, "sub": "alice", "aud": aud, "exp": now + 60, "iat": now}),
            &[],
        )
    };
    let good = partner_token("https://partner.example", ISSUER, &partner);
    let body = app
        .token(&svc, &svc_secret, &exchange(&good, ""))
        .await
        .ok();
    assert_eq!(
        app.verify(body["access_token"].as_str().unwrap(), API)
            .await
            .sub(),
        Some("alice")
    );
    // Untrusted issuer, wrong audience, wrong key, garbage, revoked: invalid_grant.
    let stranger = Jwk::generate(Algorithm::ES256, None, Some("p1".into())).unwrap();
    for bad in [
        partner_token("https://evil.example", ISSUER, &partner),
        partner_token("https://partner.example", "https://other.example", &partner),
        partner_token("https://partner.example", ISSUER, &stranger),
        "not-a-token".to_owned(),
    ] {
        assert_eq!(
            app.token(&svc, &svc_secret, &exchange(&bad, ""))
                .await
                .error(400),
            "invalid_grant"
        );
    }
    let revoke = format!("token={subject}");
    app.post(
        "/oauth2/revoke",
        &revoke,
        &[("authorization", &basic(&user_client, &user_secret))],
    )
    .await;
    assert_eq!(
        app.token(&svc, &svc_secret, &exchange(&subject, ""))
            .await
            .error(400),
        "invalid_grant"
    );
    // Missing pieces and delegation are invalid_request.
    let missing = format!(
        "grant_type={}&subject_token={good}",
        form_encode(oauth::TOKEN_EXCHANGE)
    );
    assert_eq!(
        app.token(&svc, &svc_secret, &missing).await.error(400),
        "invalid_request"
    );
    let actor = exchange(&good, &format!("&actor_token={good}"));
    assert_eq!(
        app.token(&svc, &svc_secret, &actor).await.error(400),
        "invalid_request"
    );
}

pub async fn dpop_binding(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let auth = basic(&id, &secret);
    let form = "grant_type=client_credentials";
    let proof = dpop_proof(&key, "p1", None);
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[("authorization", &auth), ("dpop", &proof)],
        )
        .await;
    let body = reply.ok();
    assert_eq!(body["token_type"], "DPoP");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.get("cnf").unwrap()["jkt"], key.thumbprint());
    // The same proof again, two proofs, a proof for another URL, a bearer-typed JWT.
    let other_url = signed(
        &key,
        &json!({"jti": "p2", "htm": "POST", "htu": "https://as.example/elsewhere", "iat": store::unix_now()}),
        &[
            ("typ", "dpop+jwt".into()),
            (
                "jwk",
                serde_json::Value::Object(key.to_public().unwrap().to_map()),
            ),
        ],
    );
    let no_jwk = signed(
        &key,
        &json!({"jti": "p3", "htm": "POST", "htu": format!("{ISSUER}/oauth2/token"), "iat": store::unix_now()}),
        &[("typ", "dpop+jwt".into())],
    );
    for headers in [
        vec![("authorization", auth.as_str()), ("dpop", proof.as_str())],
        vec![
            ("authorization", auth.as_str()),
            ("dpop", other_url.as_str()),
        ],
        vec![("authorization", auth.as_str()), ("dpop", no_jwk.as_str())],
        vec![("authorization", auth.as_str()), ("dpop", "garbage")],
    ] {
        let reply = app.post("/oauth2/token", form, &headers).await;
        assert_eq!(reply.error(400), "invalid_dpop_proof");
    }
    let mut req = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &auth);
    req = req
        .header("dpop", dpop_proof(&key, "p4", None))
        .header("dpop", dpop_proof(&key, "p5", None));
    let reply = app
        .send(req.body(axum::body::Body::from(form)).unwrap())
        .await;
    assert_eq!(reply.error(400), "invalid_dpop_proof");
}

pub async fn dpop_nonce(ctx: Ctx) {
    let mut s: Settings = settings();
    s.dpop.require_nonce = true;
    let app = app_with(&ctx, s, None).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let auth = basic(&id, &secret);
    let form = "grant_type=client_credentials";
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n1", None)),
            ],
        )
        .await;
    assert_eq!(reply.error(400), "use_dpop_nonce");
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n2", Some(&nonce))),
            ],
        )
        .await;
    assert_eq!(reply.ok()["token_type"], "DPoP");
    assert!(reply.header("dpop-nonce").is_some());
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n3", Some("stale"))),
            ],
        )
        .await;
    assert_eq!(reply.error(400), "use_dpop_nonce");
}

pub async fn database_unavailable(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    // An issuance first: the token service's writer then holds a connection, which it gives
    // back once idle, so closing the store does not wait for ever.
    assert!(app.token(&id, &secret, "").await.ok()["access_token"].is_string());
    tokio::time::timeout(Duration::from_secs(10), app.service.store().close())
        .await
        .expect("the store closes while the token service is running");
    let reply = app.token(&id, &secret, "").await;
    assert_eq!(
        reply.error(503),
        "temporarily_unavailable",
        "{}",
        ctx.backend()
    );
    assert!(reply.header("x-request-id").is_some());
}
