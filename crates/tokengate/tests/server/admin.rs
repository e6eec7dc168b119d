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

/// Path, method, status, and the refusal's (error, description).
type Operation = (
    &'static str,
    &'static str,
    u16,
    Option<(&'static str, &'static str)>,
);

/// The operations of the OpenAPI document (path, method) and the status each answers here
/// when called with the admin token (`{client_id}` an unknown client, bodies as given), with
/// the error code and description of the refusals.
const OPERATIONS: [Operation; 20] = [
    ("/admin/openapi.json", "get", 200, None),
    ("/admin/clients", "get", 200, None),
    ("/admin/clients", "post", 201, None),
    (
        "/admin/clients/{client_id}",
        "get",
        404,
        Some(("not_found", "client not found")),
    ),
    (
        "/admin/clients/{client_id}",
        "delete",
        404,
        Some(("not_found", "client not found")),
    ),
    (
        "/admin/clients/{client_id}/disable",
        "post",
        404,
        Some(("not_found", "client not found")),
    ),
    (
        "/admin/clients/{client_id}/enable",
        "post",
        404,
        Some(("not_found", "client not found")),
    ),
    (
        "/admin/clients/{client_id}/rotate-secret",
        "post",
        404,
        Some(("not_found", "client not found")),
    ),
    ("/admin/keys", "get", 200, None),
    ("/admin/keys/rotate", "post", 201, None),
    ("/admin/revocations", "post", 200, None),
    // Called without a selection.
    (
        "/admin/tokens",
        "get",
        400,
        Some((
            "invalid_request",
            "give exactly one of jti, client_id or subject",
        )),
    ),
    ("/admin/audit", "get", 200, None),
    // No checkpoint is signed here (no node task runs): nothing to show or prove yet.
    (
        "/admin/audit/checkpoint",
        "get",
        404,
        Some(("not_found", "checkpoint not found")),
    ),
    (
        "/admin/audit/proof/{seq}",
        "get",
        404,
        Some(("not_found", "signed event not found")),
    ),
    ("/admin/audit/verify", "post", 200, None),
    ("/admin/config", "get", 200, None),
    ("/admin/metrics", "get", 200, None),
    ("/admin/cache", "delete", 200, None),
    // Without --config there is nothing to reload from.
    (
        "/admin/reload",
        "post",
        409,
        Some((
            "invalid_config",
            "nothing to reload: the server was started without --config",
        )),
    ),
];

/// The request body each operation is called with.
fn operation_body(path: &str, method: &str) -> Option<Value> {
    match (path, method) {
        ("/admin/clients", "post") => Some(json!({"name": "probe"})),
        ("/admin/revocations", "post") => Some(json!({"jti": "no-such-token"})),
        _ => None,
    }
}

pub async fn admin_auth_and_openapi(ctx: Ctx) {
    let app = app(&ctx).await;
    let challenge = Some("Bearer realm=\"tokengate-admin\"");
    let reply = app.get("/admin/clients", &[]).await;
    reply.refused(
        401,
        "unauthorized",
        "a valid admin bearer token is required",
    );
    assert_eq!(reply.header("www-authenticate"), challenge);
    let reply = app
        .get("/admin/clients", &[("authorization", "Bearer wrong")])
        .await;
    reply.refused(
        401,
        "unauthorized",
        "a valid admin bearer token is required",
    );
    assert_eq!(reply.header("www-authenticate"), challenge);
    let reply = app.get("/admin/openapi.json", &[]).await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-request-id").is_some());
    let doc = reply.ok();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "tokengate admin API");
    assert_eq!(
        (
            &doc["components"]["securitySchemes"]["adminToken"]["type"],
            &doc["components"]["securitySchemes"]["adminToken"]["scheme"]
        ),
        (&json!("http"), &json!("bearer"))
    );

    // Every operation the document declares, and no other, answers the status expected here,
    // which is one the document declares for it.
    let paths = doc["paths"].as_object().unwrap();
    let mut declared: Vec<(String, String, Vec<u16>)> = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let statuses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} declares no responses"))
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            declared.push((path.clone(), method.clone(), statuses));
        }
    }
    let expected = &OPERATIONS;
    assert_eq!(paths.len(), 18, "paths declared: {:?}", paths.keys());
    assert_eq!(declared.len(), OPERATIONS.len());
    let mut names: Vec<(&str, &str)> = declared
        .iter()
        .map(|(p, m, _)| (p.as_str(), m.as_str()))
        .collect();
    let mut expected_names: Vec<(&str, &str)> = expected.iter().map(|o| (o.0, o.1)).collect();
    names.sort_unstable();
    expected_names.sort_unstable();
    assert_eq!(names, expected_names, "the document's operations");
    for (path, method, statuses) in &declared {
        let &(_, _, status, refusal) = expected
            .iter()
            .find(|o| o.0 == path && o.1 == method)
            .unwrap();
        assert!(
            statuses.contains(&status),
            "{method} {path}: {status} is not among the declared {statuses:?}"
        );
        let uri = path.replace("{client_id}", "nobody").replace("{seq}", "7");
        let body = operation_body(path, method);
        let reply = admin_call(&app, &method.to_uppercase(), &uri, body.clone()).await;
        match refusal {
            Some((error, why)) => reply.refused(status, error, why),
            None => assert_eq!(
                reply.status,
                status,
                "{method} {uri}: {}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
        // Only the document itself is public; every other operation declares and answers 401
        // without the token.
        let req = axum::http::Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("content-type", "application/json")
            .body(body.map_or(axum::body::Body::empty(), |b| {
                axum::body::Body::from(b.to_string())
            }))
            .unwrap();
        let anonymous = app.send(req).await;
        let security = &paths[path.as_str()][method.as_str()]["security"];
        if path == "/admin/openapi.json" {
            assert_eq!(anonymous.status, 200);
            assert_eq!(security, &json!([]), "the document needs no token");
        } else {
            assert!(statuses.contains(&401), "{method} {path} declares no 401");
            assert_eq!(
                security,
                &json!([{"adminToken": []}]),
                "{method} {path} declares the admin token"
            );
            anonymous.refused(
                401,
                "unauthorized",
                "a valid admin bearer token is required",
            );
        }
    }

    // Without an admin token the API does not exist.
    drop(app);
    let off = app_with(&ctx, settings(), None).await;
    off.get("/admin/openapi.json", &[])
        .await
        .refused(404, "not_found", "the admin API is off");
    off.get(
        "/admin/clients",
        &[("authorization", &format!("Bearer {ADMIN}"))],
    )
    .await
    .refused(404, "not_found", "the admin API is off");
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

    // A token issued before the client is disabled dies with it (#13 finding 5), as seen by
    // another client's introspection.
    let (watcher, watcher_secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let active = |token: String| {
        let (watcher, watcher_secret) = (watcher.clone(), watcher_secret.clone());
        let app = &app;
        async move {
            let reply = app
                .post(
                    "/oauth2/introspect",
                    &format!("token={token}"),
                    &[("authorization", &basic(&watcher, &watcher_secret))],
                )
                .await
                .ok();
            reply["active"] == true
        }
    };
    let before = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(active(before.clone()).await);
    let disabled = admin_call(&app, "POST", &format!("/admin/clients/{id}/disable"), None)
        .await
        .ok();
    assert_eq!(disabled["disabled"], true);
    assert!(
        !active(before.clone()).await,
        "disabling revokes its tokens"
    );
    let reply = app.token(&id, &secret, "").await;
    assert_eq!(
        app.refusal_reason(&reply, 401, "invalid_client").await,
        "invalid_client: the client is disabled"
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
    let reply = app.token(&id, &secret, "").await;
    assert_eq!(
        app.refusal_reason(&reply, 401, "invalid_client").await,
        "invalid_client: client authentication failed",
        "the old secret"
    );
    let after = app.token(&id, new_secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        active(after.clone()).await,
        "re-enabled: new tokens are good"
    );
    assert!(!active(before).await, "and the old ones stay revoked");

    let reply = admin_call(&app, "DELETE", &format!("/admin/clients/{id}"), None).await;
    assert_eq!(reply.status, 204);
    assert!(!active(after).await, "deleting revokes its tokens");
    admin_call(&app, "GET", &format!("/admin/clients/{id}"), None)
        .await
        .refused(404, "not_found", "client not found");
    admin_call(&app, "DELETE", &format!("/admin/clients/{id}"), None)
        .await
        .refused(404, "not_found", "client not found");

    // Bad bodies, each refused for what is wrong with it.
    for (body, why) in [
        (
            json!({"name": "x", "colour": "red"}),
            "invalid JSON body: unknown field `colour`",
        ),
        (json!({"name": ""}), "the name is empty"),
        (
            json!({"name": "x", "auth_method": "secret"}),
            "auth_method must be client_secret_basic, client_secret_post, private_key_jwt or none",
        ),
        (
            json!({"name": "x", "auth_method": "none"}),
            "a public client needs a redirect URI",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://app.example/cb#top"]}),
            "redirect URI \"https://app.example/cb#top\": a fragment is not allowed",
        ),
        (
            json!({"name": "x", "redirect_uris": ["http://app.example/cb"]}),
            "redirect URI \"http://app.example/cb\": http is allowed on loopback addresses only",
        ),
        (
            json!({"name": "x", "auth_method": "private_key_jwt"}),
            "private_key_jwt needs a jwks",
        ),
        (
            json!({"name": "x", "scopes": ["bad scope"]}),
            "scope is not an RFC 6749 scope token",
        ),
    ] {
        let reply = admin_call(&app, "POST", "/admin/clients", Some(body.clone())).await;
        let (error, description) = reply.refusal(400);
        assert_eq!(error, "invalid_request", "{body}");
        assert!(description.starts_with(why), "{body}: {description}");
    }
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/admin/clients")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let (error, description) = app.send(req).await.refusal(400);
    assert_eq!(error, "invalid_request");
    assert!(
        description.starts_with("invalid JSON body: "),
        "{description}"
    );
    // A private_key_jwt client has no secret to rotate.
    let key = jose::Jwk::generate(jose::Algorithm::ES256, None, None).unwrap();
    let jwks = json!({"keys": [Value::Object(key.to_public().unwrap().to_map())]});
    let reply = admin_call(
        &app,
        "POST",
        "/admin/clients",
        Some(json!({"name": "pk", "auth_method": "private_key_jwt", "jwks": jwks})),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let pk = reply.json()["client_id"].as_str().unwrap().to_owned();
    admin_call(
        &app,
        "POST",
        &format!("/admin/clients/{pk}/rotate-secret"),
        None,
    )
    .await
    .refused(
        409,
        "conflict",
        "the client authenticates with private_key_jwt and has no secret",
    );
    // A public client: no secret to show or rotate, its redirect URIs as given, and no way
    // to get a token by itself.
    let uris = json!(["http://127.0.0.1/callback", "com.example.app:/cb"]);
    let reply = admin_call(
        &app,
        "POST",
        "/admin/clients",
        Some(json!({"name": "app", "auth_method": "none", "redirect_uris": uris})),
    )
    .await;
    assert_eq!(reply.status, 201);
    assert!(reply.json().get("client_secret").is_none());
    let public = reply.json()["client_id"].as_str().unwrap().to_owned();
    let shown = admin_call(&app, "GET", &format!("/admin/clients/{public}"), None).await;
    assert_eq!(shown.json()["auth_method"], "none");
    assert_eq!(shown.json()["auth_method_pinned"], true);
    assert_eq!(shown.json()["redirect_uris"], uris);
    admin_call(
        &app,
        "POST",
        &format!("/admin/clients/{public}/rotate-secret"),
        None,
    )
    .await
    .refused(409, "conflict", "the client is public and has no secret");
    let form = format!("grant_type=client_credentials&client_id={public}");
    app.post("/oauth2/token", &form, &[]).await.refused(
        400,
        "unauthorized_client",
        "a public client may use the authorization_code and refresh_token grants only",
    );
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
    // Signing, encryption, audit, and the new one.
    assert_eq!(keys.len(), 4);
    let new = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(new["state"], "pending");
    assert_eq!(new["use"], "enc");
    assert!(new["public_jwk"].get("d").is_none());
    admin_call(
        &app,
        "POST",
        "/admin/keys/rotate",
        Some(json!({"use": "x"})),
    )
    .await
    .refused(400, "invalid_request", "use must be sig, enc or audit");
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
    // Looked up by client (all three, active), by subject, and by jti.
    let listed = |found: Value| {
        found["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["jti"].as_str().unwrap().to_owned(), t["state"].clone()))
            .collect::<Vec<_>>()
    };
    let by_client = admin_call(&app, "GET", &format!("/admin/tokens?client_id={id}"), None)
        .await
        .ok();
    let found = listed(by_client);
    assert_eq!(found.len(), 3);
    assert!(
        found.iter().all(|(_, state)| state == "active"),
        "{found:?}"
    );
    assert!(found.iter().any(|(j, _)| *j == jti));
    let by_subject = admin_call(
        &app,
        "GET",
        &format!("/admin/tokens?subject={id}&limit=2"),
        None,
    )
    .await
    .ok();
    assert_eq!(listed(by_subject).len(), 2);
    for bad in [
        "/admin/tokens?jti=a&subject=b",
        "/admin/tokens?jti=",
        "/admin/tokens?client_id=x&limit=0",
        "/admin/tokens?client_id=x&limit=many",
        "/admin/tokens?client_id=x&other=1",
    ] {
        assert_eq!(
            admin_call(&app, "GET", bad, None).await.status,
            400,
            "{bad}"
        );
    }
    let one = admin_call(
        &app,
        "POST",
        "/admin/revocations",
        Some(json!({"jti": jti})),
    )
    .await
    .ok();
    assert_eq!(one["revoked"], 1);
    let by_jti = admin_call(&app, "GET", &format!("/admin/tokens?jti={jti}"), None)
        .await
        .ok();
    assert_eq!(listed(by_jti), [(jti.clone(), json!("revoked"))]);
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
        admin_call(&app, "POST", "/admin/revocations", Some(body))
            .await
            .refused(
                400,
                "invalid_request",
                "give exactly one of jti, client_id or subject",
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
    admin_call(&app, "GET", "/admin/audit?limit=0", None)
        .await
        .refused(400, "invalid_request", "limit must be between 1 and 1000");
    admin_call(&app, "GET", "/admin/audit?after=x", None)
        .await
        .refused(400, "invalid_request", "after and limit must be integers");
}
