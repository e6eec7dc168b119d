//! The console's server side through the whole router: the bundle and its headers, sign-in,
//! the session cookie in place of the bearer token, CSRF on changes, sign-out.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::CSP;
use crate::server::{router, App};

const TOKEN: &str = "console-admin-token";

/// The whole router over a fresh SQLite store (kept in the returned directory).
async fn app(token: Option<&str>) -> (Router, store::Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("tg.db").display());
    let store = store::Store::open(&url).await.unwrap();
    let service = oauth::Service::start(
        store.clone(),
        store::MasterKey::from_bytes([7; 32]),
        oauth::Settings::new("https://as.example"),
        store::unix_now(),
    )
    .await
    .unwrap();
    let app = App::new(Arc::new(service), token.map(String::from));
    (router(app), store, dir)
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "console.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let reply = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = reply.status();
    let headers = reply.headers().clone();
    let body = axum::body::to_bytes(reply.into_body(), 1 << 22)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Signs in; the `Cookie` header value and the CSRF token.
async fn signed_in(router: &Router) -> (String, String) {
    let reply = call(
        router,
        Method::POST,
        "/console/session",
        &[],
        Some(json!({ "token": TOKEN })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let set = reply.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    (pair, reply.json()["csrf"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_console_is_off_with_the_admin_api() {
    let (router, _, _dir) = app(None).await;
    for path in [
        "/console",
        "/console/clients",
        "/console/console.js",
        "/console/session",
    ] {
        let reply = call(&router, Method::GET, path, &[], None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.headers[header::CONTENT_SECURITY_POLICY], CSP);
    }
}

#[tokio::test]
async fn every_page_is_the_bundle_under_a_strict_policy() {
    let (router, _, _dir) = app(Some(TOKEN)).await;
    for path in ["/console", "/console/", "/console/clients", "/console/keys"] {
        let reply = call(&router, Method::GET, path, &[], None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(reply.headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
        let html = String::from_utf8(reply.body).unwrap();
        // Scripts come from this origin only, never inline (the policy would block them).
        assert!(html.contains(r#"src="/console/console.js""#), "{html}");
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains(r#"href="/console/console.css""#), "{html}");
    }
    // Only the application's pages are the page: anything else under /console is a 404.
    let unknown = call(&router, Method::GET, "/console/admin/nothing", &[], None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown = call(&router, Method::GET, "/console/other", &[], None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let script = call(&router, Method::GET, "/console/console.js", &[], None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(!script.body.is_empty());
    let styles = call(&router, Method::GET, "/console/console.css", &[], None).await;
    assert_eq!(styles.status, StatusCode::OK);
    assert!(policy_forbids_inline_and_eval(CSP));
}

fn policy_forbids_inline_and_eval(policy: &str) -> bool {
    let script = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or("");
    script == "script-src 'self'" && !policy.contains("unsafe")
}

#[tokio::test]
async fn signing_in_needs_the_admin_token_and_sets_a_strict_cookie() {
    let (router, _, _dir) = app(Some(TOKEN)).await;
    let wrong = call(
        &router,
        Method::POST,
        "/console/session",
        &[],
        Some(json!({ "token": "not-it" })),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let malformed = call(
        &router,
        Method::POST,
        "/console/session",
        &[],
        Some(json!({ "token": TOKEN, "extra": 1 })),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let reply = call(
        &router,
        Method::POST,
        "/console/session",
        &[],
        Some(json!({ "token": TOKEN })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("tokengate_console="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Sent under /console only: never to the gateway's routes, which forward cookies upstream.
    assert!(cookie.contains("Path=/console;"), "{cookie}");
    // Plain HTTP from an http page: a Secure cookie would never be kept.
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Plain HTTP from an https page (a proxy ends TLS): Secure.
    let proxied = call(
        &router,
        Method::POST,
        "/console/session",
        &[("origin", "https://console.example")],
        Some(json!({ "token": TOKEN })),
    )
    .await;
    let proxied = proxied.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(proxied.contains("Secure"), "{proxied}");
    let csrf = reply.json()["csrf"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 40);

    let pair = cookie.split(';').next().unwrap();
    let state = call(
        &router,
        Method::GET,
        "/console/session",
        &[("cookie", pair)],
        None,
    )
    .await;
    assert_eq!(state.json(), json!({ "signed_in": true, "csrf": csrf }));
    // A cookie of the same name sent first (a longer path, a sibling domain) does not hide
    // the session.
    let shadowed = format!("tokengate_console=tossed; {pair}");
    let state = call(
        &router,
        Method::GET,
        "/console/session",
        &[("cookie", &shadowed)],
        None,
    )
    .await;
    assert_eq!(state.json()["signed_in"], true);
    // Signing in again replaces the session this browser had.
    let again = call(
        &router,
        Method::POST,
        "/console/session",
        &[("cookie", pair)],
        Some(json!({ "token": TOKEN })),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    let state = call(
        &router,
        Method::GET,
        "/console/session",
        &[("cookie", pair)],
        None,
    )
    .await;
    assert_eq!(state.json(), json!({ "signed_in": false }));
    let anonymous = call(&router, Method::GET, "/console/session", &[], None).await;
    assert_eq!(anonymous.json(), json!({ "signed_in": false }));
}

#[tokio::test]
async fn the_session_reads_freely_and_changes_only_with_its_csrf_token() {
    let (router, store, _dir) = app(Some(TOKEN)).await;
    let (cookie, csrf) = signed_in(&router).await;
    let list = call(
        &router,
        Method::GET,
        "/console/admin/clients",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    // The admin API as the console reaches it answers under the console's policy too.
    assert_eq!(list.headers[header::CONTENT_SECURITY_POLICY], CSP);
    let none = call(&router, Method::GET, "/console/admin/clients", &[], None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let forged = call(
        &router,
        Method::GET,
        "/console/admin/clients",
        &[("cookie", "tokengate_console=forged")],
        None,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let body = json!({ "name": "from the console", "scopes": ["read"] });
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("x-csrf-token", "wrong")],
    ] {
        let refused = call(
            &router,
            Method::POST,
            "/console/admin/clients",
            &headers,
            Some(body.clone()),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.json()["error"], "csrf");
    }
    assert!(store.list_clients().await.unwrap().is_empty());
    let created = call(
        &router,
        Method::POST,
        "/console/admin/clients",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        Some(body),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.json()["client_secret"].is_string());

    // Audited as an admin action, naming the console as the way in.
    let events = store.audit_events(0, 100).await.unwrap();
    let via: Vec<_> = events
        .iter()
        .filter(|e| e.event.event == "admin.action")
        .map(|e| {
            let d = e.event.detail.clone().unwrap_or_default();
            (d["path"].clone(), d["via"].clone())
        })
        .collect();
    assert!(
        via.contains(&(json!("/console/session"), json!("console"))),
        "{via:?}"
    );
    // Named by the admin API operation it called.
    assert!(
        via.contains(&(json!("/admin/clients"), json!("console"))),
        "{via:?}"
    );
}

#[tokio::test]
async fn signing_out_needs_the_csrf_token_and_ends_the_session() {
    let (router, _, _dir) = app(Some(TOKEN)).await;
    let (cookie, csrf) = signed_in(&router).await;
    let refused = call(
        &router,
        Method::DELETE,
        "/console/session",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let still = call(
        &router,
        Method::GET,
        "/console/admin/keys",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(still.status, StatusCode::OK);
    let out = call(
        &router,
        Method::DELETE,
        "/console/session",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let gone = call(
        &router,
        Method::GET,
        "/console/admin/keys",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
}
