//! Metadata, JWKS and the admin API.

use serde_json::{json, Value};
use store::testing::Ctx;
use store::AuthMethod;

use crate::harness::{app, app_with, basic, settings, Reply, TestApp, ADMIN, API, ISSUER};

pub async fn metadata_and_jwks(ctx: Ctx) {
    let app = app(&ctx).await;
    let meta = app
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert_eq!(meta["issuer"], ISSUER);
    assert_eq!(meta["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(meta["jwks_uri"], format!("{ISSUER}/oauth2/jwks"));
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{ISSUER}/oauth2/introspect")
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{ISSUER}/oauth2/revoke")
    );
    let methods = meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert_eq!(methods.len(), 3);
    assert!(meta["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));
    assert_eq!(meta["scopes_supported"], json!(["read", "write"]));
    let oidc = app.get("/.well-known/openid-configuration", &[]).await.ok();
    assert_eq!(oidc, meta);

    let reply = app.get("/oauth2/jwks", &[]).await;
    assert_eq!(reply.header("cache-control"), Some("public, max-age=600"));
    let jwks = reply.ok();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "one signing and one encryption key");
    for key in keys {
        assert!(key.get("d").is_none(), "no private members");
        assert!(key["kid"].is_string() && key["alg"].is_string() && key["use"].is_string());
    }
}

async fn admin_call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Reply {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json");
    let body = body.map_or(axum::body::Body::empty(), |b| {
        axum::body::Body::from(b.to_string())
    });
    app.send(req.body(body).unwrap()).await
}

pub async fn admin_auth_and_openapi(ctx: Ctx) {
    let app = app(&ctx).await;
    let reply = app.get("/admin/clients", &[]).await;
    assert_eq!(reply.error(401), "unauthorized");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"tokengate-admin\"")
    );
    let reply = app
        .get("/admin/clients", &[("authorization", "Bearer wrong")])
        .await;
    assert_eq!(reply.error(401), "unauthorized");
    let doc = app.get("/admin/openapi.json", &[]).await.ok();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented path answers (not 404) with the token.
    for path in doc["paths"].as_object().unwrap().keys() {
        let path = path.replace("{client_id}", "nobody");
        let reply = admin_call(&app, "GET", &path, None).await;
        let routed =
            reply.status != 404 || reply.json()["error_description"] != "no route for this request";
        assert!(routed, "{path}: {}", String::from_utf8_lossy(&reply.body));
    }
    // Without an admin token the API does not exist.
    drop(app);
    let off = app_with(&ctx, settings(), None).await;
    assert_eq!(
        off.get("/admin/openapi.json", &[]).await.error(404),
        "not_found"
    );
    assert_eq!(
        off.get(
            "/admin/clients",
            &[("authorization", &format!("Bearer {ADMIN}"))]
        )
        .await
        .error(404),
        "not_found"
    );
}

pub async fn admin_clients(ctx: Ctx) {
    let app = app(&ctx).await;
    let reply = admin_call(
        &app,
        "POST",
        "/admin/clients",
        Some(json!({"name": "svc", "scopes": ["read"], "audiences": [API]})),
    )
    .await;
    assert_eq!(reply.status, 201);
    let creds = reply.json();
    let id = creds["client_id"].as_str().unwrap().to_owned();
    let secret = creds["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    app.token(&id, &secret, "").await.ok();

    let shown = admin_call(&app, "GET", &format!("/admin/clients/{id}"), None)
        .await
        .ok();
    assert_eq!(shown["auth_method"], "client_secret_basic");
    assert!(shown.get("secret_hash").is_none());
    let list = admin_call(&app, "GET", "/admin/clients", None).await.ok();
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);

    let disabled = admin_call(&app, "POST", &format!("/admin/clients/{id}/disable"), None)
        .await
        .ok();
    assert_eq!(disabled["disabled"], true);
    assert_eq!(
        app.token(&id, &secret, "").await.error(401),
        "invalid_client"
    );
    admin_call(&app, "POST", &format!("/admin/clients/{id}/enable"), None)
        .await
        .ok();
    let rotated = admin_call(
        &app,
        "POST",
        &format!("/admin/clients/{id}/rotate-secret"),
        None,
    )
    .await
    .ok();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(
        app.token(&id, &secret, "").await.error(401),
        "invalid_client"
    );
    app.token(&id, new_secret, "").await.ok();

    let reply = admin_call(&app, "DELETE", &format!("/admin/clients/{id}"), None).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        admin_call(&app, "GET", &format!("/admin/clients/{id}"), None)
            .await
            .error(404),
        "not_found"
    );
    assert_eq!(
        admin_call(&app, "DELETE", &format!("/admin/clients/{id}"), None)
            .await
            .error(404),
        "not_found"
    );

    // Bad bodies.
    for body in [
        json!({"name": "x", "colour": "red"}),
        json!({"name": ""}),
        json!({"name": "x", "auth_method": "none"}),
        json!({"name": "x", "auth_method": "private_key_jwt"}),
        json!({"name": "x", "scopes": ["bad scope"]}),
    ] {
        let reply = admin_call(&app, "POST", "/admin/clients", Some(body.clone())).await;
        assert_eq!(reply.error(400), "invalid_request", "{body}");
    }
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/admin/clients")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    assert_eq!(app.send(req).await.error(400), "invalid_request");
    let events = app.service.store().audit_events(0, 1000).await.unwrap();
    for name in [
        "client.created",
        "client.disabled",
        "client.enabled",
        "client.secret_rotated",
        "client.deleted",
    ] {
        assert!(events.iter().any(|e| e.event.event == name), "{name}");
    }
    let all = format!("{events:?}");
    assert!(
        !all.contains(&secret) && !all.contains(new_secret),
        "no secrets in the audit trail"
    );
}

pub async fn admin_keys_revocations_and_audit(ctx: Ctx) {
    let app = app(&ctx).await;
    let reply = admin_call(
        &app,
        "POST",
        "/admin/keys/rotate",
        Some(json!({"use": "enc"})),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let kid = reply.json()["kid"].as_str().unwrap().to_owned();
    let keys = admin_call(&app, "GET", "/admin/keys", None).await.ok();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let new = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(new["state"], "pending");
    assert_eq!(new["use"], "enc");
    assert!(new["public_jwk"].get("d").is_none());
    assert_eq!(
        admin_call(
            &app,
            "POST",
            "/admin/keys/rotate",
            Some(json!({"use": "x"}))
        )
        .await
        .error(400),
        "invalid_request"
    );
    // An empty body rotates the signing key.
    assert_eq!(
        admin_call(&app, "POST", "/admin/keys/rotate", None)
            .await
            .status,
        201
    );

    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(
            app.token(&id, &secret, "").await.ok()["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let jti = jose::jwt::decode_unverified(&tokens[0]).unwrap().1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = admin_call(
        &app,
        "POST",
        "/admin/revocations",
        Some(json!({"jti": jti})),
    )
    .await
    .ok();
    assert_eq!(one["revoked"], 1);
    let rest = admin_call(
        &app,
        "POST",
        "/admin/revocations",
        Some(json!({"client_id": id})),
    )
    .await
    .ok();
    assert_eq!(rest["revoked"], 2);
    let none = admin_call(
        &app,
        "POST",
        "/admin/revocations",
        Some(json!({"subject": id})),
    )
    .await
    .ok();
    assert_eq!(none["revoked"], 0);
    for token in &tokens {
        let seen = app
            .post(
                "/oauth2/introspect",
                &format!("token={token}"),
                &[("authorization", &basic(&id, &secret))],
            )
            .await
            .ok();
        assert_eq!(seen["active"], false);
    }
    for body in [
        json!({}),
        json!({"jti": "a", "subject": "b"}),
        json!({"jti": ""}),
    ] {
        assert_eq!(
            admin_call(&app, "POST", "/admin/revocations", Some(body))
                .await
                .error(400),
            "invalid_request"
        );
    }

    let all = admin_call(&app, "GET", "/admin/audit?limit=1000", None)
        .await
        .ok();
    let events = all["events"].as_array().unwrap();
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let page = admin_call(
        &app,
        "GET",
        &format!("/admin/audit?after={}&limit=2", ids[0]),
        None,
    )
    .await
    .ok();
    let page: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[1..3]);
    assert_eq!(
        admin_call(&app, "GET", "/admin/audit?limit=0", None)
            .await
            .error(400),
        "invalid_request"
    );
    assert_eq!(
        admin_call(&app, "GET", "/admin/audit?after=x", None)
            .await
            .error(400),
        "invalid_request"
    );
}
