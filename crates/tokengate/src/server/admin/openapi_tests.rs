//! The generated document against the router that serves it: the same operations, the same
//! security, nothing dangling; and its schemas against the bodies the server writes.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::{Extension, Router};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::document;
use crate::server::admin::views::{
    AuditEventView, ClientView, CredentialsView, ErrorBody, KeyView,
};
use crate::server::{App, RequestId};

const TOKEN: &str = "unit-admin-token";

fn doc() -> Value {
    serde_json::to_value(document()).unwrap()
}

/// Every (method, path) of the document, with its operation.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, path.clone(), op.clone()));
        }
    }
    ops
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("$ref", Some(target)) => out.push(target),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The admin router alone over a fresh SQLite store, with the request id the server's outer
/// middleware would add.
async fn admin_router(ctx: &store::testing::Ctx, token: Option<&str>) -> Router {
    let service = oauth::Service::start(
        ctx.open().await,
        store::MasterKey::from_bytes([7; 32]),
        oauth::Settings::new("https://as.example"),
        store::unix_now(),
    )
    .await
    .unwrap();
    let app = App::new(Arc::new(service), token.map(String::from));
    super::super::routes(Arc::clone(&app))
        .layer(Extension(RequestId("unit".into())))
        .with_state(app)
}

async fn call(router: &Router, method: &Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let reply = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = reply.status().as_u16();
    let bytes = axum::body::to_bytes(reply.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The router serves every documented operation and, on the documented paths, no other
/// method; the admin token is asked for exactly where the document declares it. Together with
/// the router being built only from `routes!` (every route it has is an operation of the
/// document), the two cannot drift.
#[tokio::test]
async fn router_serves_exactly_the_documented_operations() {
    store::testing::run_sqlite(|ctx| async move {
        let router = admin_router(&ctx, Some(TOKEN)).await;
        let doc = doc();
        let ops = operations(&doc);
        let paths: BTreeSet<&str> = ops.iter().map(|(_, p, _)| p.as_str()).collect();
        let all = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ];
        for path in paths {
            let uri = path.replace("{client_id}", "nobody");
            for method in &all {
                let op = ops.iter().find(|(m, p, _)| m == method && p == path);
                let (status, body) = call(&router, method, &uri, Some(TOKEN)).await;
                let Some((_, _, op)) = op else {
                    assert_eq!(status, 405, "{method} {path} is served but not documented");
                    continue;
                };
                // Served: answered by its handler, with a status the document declares for it
                // (a missing route would be 405, or 404 with no body).
                assert_ne!(status, 405, "{method} {path}");
                assert!(
                    op["responses"].get(status.to_string()).is_some(),
                    "{method} {path}: {status} {body} is not among its declared responses"
                );
                if status == 404 {
                    assert_eq!(body["error"], "not_found", "{method} {path}");
                }
                let guarded = op["security"] == json!([{"adminToken": []}]);
                let (anonymous, body) = call(&router, method, &uri, None).await;
                if guarded {
                    assert_eq!(anonymous, 401, "{method} {path}: {body}");
                    assert_eq!(body["error"], "unauthorized");
                } else {
                    assert_eq!((anonymous, path), (200, "/admin/openapi.json"));
                }
            }
        }
        // Off without an admin token: every documented operation answers 404.
        let off = admin_router(&ctx, None).await;
        for (method, path, _) in &ops {
            let uri = path.replace("{client_id}", "nobody");
            let (status, body) = call(&off, method, &uri, Some(TOKEN)).await;
            assert_eq!(
                (status, body["error_description"].as_str()),
                (404, Some("the admin API is off")),
                "{method} {path}"
            );
        }
    })
    .await;
}

#[test]
fn the_documented_operations() {
    let doc = doc();
    let mut ops: Vec<(String, String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, op)| (m.to_string(), p, op["operationId"].as_str().unwrap().into()))
        .collect();
    ops.sort();
    let expected = [
        ("DELETE", "/admin/cache", "purgeCache"),
        ("DELETE", "/admin/clients/{client_id}", "deleteClient"),
        ("GET", "/admin/audit", "listAuditEvents"),
        ("GET", "/admin/audit/checkpoint", "getAuditCheckpoint"),
        ("GET", "/admin/audit/proof/{seq}", "getAuditProof"),
        ("GET", "/admin/clients", "listClients"),
        ("GET", "/admin/clients/{client_id}", "getClient"),
        ("GET", "/admin/config", "getConfiguration"),
        ("GET", "/admin/keys", "listKeys"),
        ("GET", "/admin/metrics", "getMetrics"),
        ("GET", "/admin/openapi.json", "getOpenApi"),
        ("GET", "/admin/tokens", "listTokens"),
        ("POST", "/admin/audit/verify", "verifyAuditLog"),
        ("POST", "/admin/clients", "createClient"),
        (
            "POST",
            "/admin/clients/{client_id}/disable",
            "disableClient",
        ),
        ("POST", "/admin/clients/{client_id}/enable", "enableClient"),
        (
            "POST",
            "/admin/clients/{client_id}/rotate-secret",
            "rotateClientSecret",
        ),
        ("POST", "/admin/keys/rotate", "rotateKey"),
        ("POST", "/admin/reload", "reloadConfiguration"),
        ("POST", "/admin/revocations", "revokeTokens"),
    ]
    .map(|(m, p, id)| (m.to_owned(), p.to_owned(), id.to_owned()));
    assert_eq!(ops, expected);
}

/// Every operation but the document itself needs the bearer admin token, and says it answers
/// 401 without it.
#[test]
fn operations_declare_the_admin_token_except_the_document() {
    let doc = doc();
    assert_eq!(
        doc["components"]["securitySchemes"]["adminToken"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["adminToken"]["scheme"],
        "bearer"
    );
    for (method, path, op) in operations(&doc) {
        if path == "/admin/openapi.json" {
            assert_eq!(op["security"], json!([]), "{method} {path}");
            assert!(op["responses"].get("401").is_none(), "{method} {path}");
        } else {
            assert_eq!(
                op["security"],
                json!([{"adminToken": []}]),
                "{method} {path}"
            );
            assert_eq!(
                op["responses"]["401"],
                json!({"$ref": "#/components/responses/Unauthorized"}),
                "{method} {path}"
            );
        }
    }
}

/// Every `$ref` points at a component that exists, and every component is referenced.
#[test]
fn every_ref_resolves_and_every_component_is_used() {
    let doc = doc();
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    let targets: BTreeSet<&str> = targets.into_iter().collect();
    for target in &targets {
        let pointer = target.strip_prefix('#').unwrap_or(target);
        assert!(
            pointer.starts_with("/components/") && doc.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
    let mut components = BTreeSet::new();
    for kind in ["schemas", "responses", "headers"] {
        for name in doc["components"][kind].as_object().unwrap().keys() {
            components.insert(format!("#/components/{kind}/{name}"));
        }
    }
    let used: BTreeSet<String> = targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(components, used, "components and the references to them");
    assert!(used.contains("#/components/schemas/Error"));
    assert!(used.contains("#/components/headers/XRequestId"));
}

/// The request-id middleware answers every request with `X-Request-Id`: every response says so.
#[test]
fn every_response_names_the_request_id_header() {
    let doc = doc();
    let header = json!({"$ref": "#/components/headers/XRequestId"});
    let shared = doc["components"]["responses"].as_object().unwrap();
    assert_eq!(shared.len(), 6);
    for (name, response) in shared {
        assert_eq!(response["headers"]["X-Request-Id"], header, "{name}");
    }
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            if response.get("$ref").is_none() {
                assert_eq!(
                    response["headers"]["X-Request-Id"], header,
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[test]
fn the_document_describes_itself() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "tokengate admin API");
    assert_eq!(doc["info"]["version"], "1");
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("TOKENGATE_ADMIN_TOKEN"));
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["clients", "keys", "tokens", "revocation", "audit", "meta"]
    );
    for (method, path, op) in operations(&doc) {
        let op_tags = op["tags"].as_array().unwrap();
        assert_eq!(op_tags.len(), 1, "{method} {path}");
        assert!(
            tags.contains(&op_tags[0].as_str().unwrap()),
            "{method} {path}"
        );
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

/// The `Error` schema is what `server::error_json` writes.
#[tokio::test]
async fn the_error_schema_is_what_error_json_writes() {
    let reply = crate::server::error_json(StatusCode::CONFLICT, "conflict", "why", "id-1");
    let bytes = axum::body::to_bytes(reply.into_body(), 1024).await.unwrap();
    let written: Value = serde_json::from_slice(&bytes).unwrap();
    // The schema's type refuses unknown members.
    let parsed: ErrorBody = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(
        (
            parsed.error.as_str(),
            parsed.error_description.as_str(),
            parsed.request_id.as_str()
        ),
        ("conflict", "why", "id-1")
    );
    assert_shape("Error", &written);
}

/// Asserts `value` has exactly the properties of the named schema, the required ones among
/// them.
fn assert_shape(schema: &str, value: &Value) {
    let doc = doc();
    let schema = &doc["components"]["schemas"][schema];
    let properties: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let members: BTreeSet<&String> = value.as_object().unwrap().keys().collect();
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        required.iter().all(|r| members.iter().any(|m| m == r)),
        "{value} lacks one of {required:?}"
    );
    assert!(members.is_subset(&properties), "{value} vs {properties:?}");
}

/// The views serialise with the members their schemas name (serde renames included).
#[test]
fn views_serialise_as_their_schemas() {
    let client = store::Client {
        client_id: "c1".into(),
        name: "one".into(),
        secret_hash: Some(vec![1, 2, 3]),
        auth_method: store::AuthMethod::ClientSecretBasic,
        auth_method_pinned: false,
        redirect_uris: vec![],
        first_party: true,
        scopes: vec!["read".into()],
        audiences: vec![],
        jwks: None,
        disabled: false,
        created_at: 1,
    };
    let view = serde_json::to_value(ClientView::from(&client)).unwrap();
    assert_shape("Client", &view);
    assert_eq!(view["jwks"], Value::Null);
    assert!(view.get("secret_hash").is_none());

    let creds = oauth::Credentials {
        client_id: "c1".into(),
        client_secret: Some(zeroize::Zeroizing::new("s".into())),
    };
    let view = serde_json::to_value(CredentialsView::from(&creds)).unwrap();
    assert_eq!(view, json!({"client_id": "c1", "client_secret": "s"}));
    assert_shape("Credentials", &view);

    let record = store::AuditRecord {
        id: 9,
        seq: Some(4),
        hash: Some("aGFzaA==".into()),
        event: store::AuditEvent {
            time: 2,
            event: "client.created".into(),
            client_id: Some("c1".into()),
            subject: None,
            jti: None,
            audience: None,
            outcome: "success".into(),
            reason: None,
            request_id: Some("r".into()),
            detail: serde_json::json!({"count": 2}).as_object().cloned(),
        },
    };
    let view = serde_json::to_value(AuditEventView::from(&record)).unwrap();
    assert_eq!(
        (view["seq"].as_i64(), &view["detail"]["count"]),
        (Some(4), &json!(2))
    );
    assert_shape("AuditEvent", &view);
    assert_eq!(
        (view["id"].as_i64(), view["subject"].is_null()),
        (Some(9), true)
    );
}

/// A key's view shows `use` and never a symmetric key's material.
#[tokio::test]
async fn key_views_serialise_as_their_schema() {
    store::testing::run_sqlite(|ctx| async move {
        let store = ctx.open().await;
        let service = oauth::Service::start(
            store,
            store::MasterKey::from_bytes([7; 32]),
            oauth::Settings::new("https://as.example"),
            store::unix_now(),
        )
        .await
        .unwrap();
        let keys = service.store().list_keys().await.unwrap();
        assert!(!keys.is_empty());
        for key in &keys {
            let view = serde_json::to_value(KeyView::from(key)).unwrap();
            assert_shape("Key", &view);
            assert_eq!(view["use"], key.key_use.as_str());
            assert!(view["public_jwk"].get("d").is_none());
        }
        let mut secret = keys[0].clone();
        secret.public_jwk = r#"{"kty":"oct","k":"c2VjcmV0"}"#.into();
        assert_eq!(
            serde_json::to_value(KeyView::from(&secret)).unwrap()["public_jwk"],
            Value::Null
        );
    })
    .await;
}
