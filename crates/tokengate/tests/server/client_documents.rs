//! Client ID Metadata Documents over HTTP (issue #18): a client never registered here names
//! itself with the URL of its document, served by a real HTTP server beside the test; it
//! signs a user in, redeems and refreshes. Documents that break the rules, and URLs that
//! point inside the network (SSRF), are refused with the reason on the user's error page.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use oauth::client_document::MetadataDocuments;
use oauth::registration::DynamicRegistration;
use oauth::sign_in::Consent;
use store::testing::Ctx;

use crate::gateway_env::serve_router;
use crate::harness::{app_with, form_encode, TestApp, API, SECRET_API};
use crate::sign_in::{
    approve, login_settings, redirected, walk_to_consent, Browser, CHALLENGE, PRESENTED, REDIRECT,
    VERIFIER,
};

/// A document server on loopback: `/client.json` is a valid document for its own URL (its
/// reads counted), the others each break one rule.
struct DocumentServer {
    addr: SocketAddr,
    reads: Arc<AtomicUsize>,
}

async fn document_server() -> DocumentServer {
    let addr_cell = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let reads = Arc::new(AtomicUsize::new(0));
    // Serves a document naming `id_path` on this server as its client_id, with `pad` bytes
    // of an ignored member.
    let document = |id_path: &'static str, count: bool, pad: usize| {
        let (cell, reads) = (Arc::clone(&addr_cell), Arc::clone(&reads));
        move || async move {
            if count {
                reads.fetch_add(1, Ordering::SeqCst);
            }
            let addr = cell.get().unwrap();
            let body = serde_json::json!({
                "client_id": format!("http://{addr}{id_path}"),
                "client_name": "Docs <Editor>",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "software_statement_note": "x".repeat(pad),
            });
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "max-age=300"),
                ],
                body.to_string(),
            )
                .into_response()
        }
    };
    let router = axum::Router::new()
        .route("/client.json", get(document("/client.json", true, 0)))
        .route("/copied.json", get(document("/client.json", false, 0)))
        .route("/large.json", get(document("/large.json", false, 6 * 1024)))
        .route(
            "/moved.json",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [(header::LOCATION, "/client.json")],
                )
            }),
        )
        .route(
            "/page.json",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }),
        );
    let addr = serve_router(router).await;
    addr_cell.set(addr).unwrap();
    DocumentServer { addr, reads }
}

/// A loopback port that counts the connections made to it and closes each.
async fn connection_counter() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, accepted)
}

async fn documents_app(ctx: &Ctx, documents: MetadataDocuments) -> TestApp {
    let mut settings = login_settings(Consent::Always);
    settings.registration = DynamicRegistration {
        audiences: vec![API.into()],
        documents,
        ..DynamicRegistration::default()
    };
    app_with(ctx, settings, None).await
}

fn authorize(client_id: &str, resource: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=st-1&scope=read\
         &resource={}",
        form_encode(client_id),
        form_encode(PRESENTED),
        form_encode(resource)
    )
}

/// The error page an authorization request is answered with, asserting it is shown (400)
/// and not redirected.
async fn shown_error(app: &TestApp, client_id: &str) -> String {
    let reply = Browser::default()
        .get(app, &authorize(client_id, API))
        .await;
    assert_eq!(reply.status.as_u16(), 400, "{client_id}: {}", reply.text());
    assert!(reply.header("location").is_none());
    reply.text()
}

/// A client known only by its document signs a user in, redeems the code and refreshes;
/// it is a third party limited to the audiences opened to registration.
pub async fn a_client_known_by_its_document_signs_users_in(ctx: Ctx) {
    let app = documents_app(&ctx, MetadataDocuments::OnWithLoopback).await;
    let docs = document_server().await;
    let server = docs.addr;
    let client_id = format!("http://{server}/client.json");
    let metadata = app
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let mut browser = Browser::default();
    let page = walk_to_consent(&app, &mut browser, &authorize(&client_id, API), "alice").await;
    let html = page.text();
    assert!(html.contains("Docs &lt;Editor&gt;"), "{html}");
    assert!(
        html.contains(&format!(
            "describes itself in a document at <code>{server}</code>"
        )),
        "the site that vouches for it is named: {html}"
    );
    let code = approve(&app, &mut browser, &page).await;
    let form = format!(
        "grant_type=authorization_code&client_id={}&code={code}&code_verifier={VERIFIER}\
         &redirect_uri={}",
        form_encode(&client_id),
        form_encode(PRESENTED)
    );
    let tokens = app.post("/oauth2/token", &form, &[]).await.ok();
    let claims = app
        .verify(tokens["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some("alice"));
    assert_eq!(claims.get("client_id").unwrap().unwrap(), &client_id);

    let refresh = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        form_encode(&client_id),
        tokens["refresh_token"].as_str().unwrap()
    );
    let refreshed = app.post("/oauth2/token", &refresh, &[]).await.ok();
    assert!(refreshed["access_token"].is_string());

    // Only the audiences opened to registration; only its own redirect URIs; no
    // client_credentials (it has no secret, and signs users in only).
    let elsewhere = browser.get(&app, &authorize(&client_id, SECRET_API)).await;
    assert_eq!(redirected(&elsewhere)["error"], "invalid_target");
    let other_redirect = authorize(&client_id, API).replace(
        &form_encode(PRESENTED),
        &form_encode("https://evil.example/cb"),
    );
    let reply = browser.get(&app, &other_redirect).await;
    assert_eq!(reply.status.as_u16(), 400, "{}", reply.text());
    let form = format!(
        "grant_type=client_credentials&client_id={}&resource={}",
        form_encode(&client_id),
        form_encode(API)
    );
    let (error, _) = app.post("/oauth2/token", &form, &[]).await.refusal(400);
    assert_eq!(error, "unauthorized_client");
    assert_eq!(
        docs.reads.load(Ordering::SeqCst),
        1,
        "read once, then kept for its max-age"
    );
}

/// Consent given to a client known by its document is never remembered: the document (its
/// redirect URIs, its keys) may change hands.
pub async fn consent_to_a_document_client_is_not_remembered(ctx: Ctx) {
    let mut settings = login_settings(Consent::Remember);
    settings.registration = DynamicRegistration {
        audiences: vec![API.into()],
        documents: MetadataDocuments::OnWithLoopback,
        ..DynamicRegistration::default()
    };
    let app = app_with(&ctx, settings, None).await;
    let docs = document_server().await;
    let client_id = format!("http://{}/client.json", docs.addr);
    let mut browser = Browser::default();
    for _ in 0..2 {
        let page = walk_to_consent(&app, &mut browser, &authorize(&client_id, API), "alice").await;
        assert!(
            page.text().contains("Allow access?"),
            "asked every time: {}",
            page.text()
        );
        approve(&app, &mut browser, &page).await;
    }
}

/// A document that does not name itself or is not JSON is refused with the reason shown; a
/// redirect is not followed; an oversized body or a dead server is a failed fetch, whose
/// reason goes to the log only (it could map the network).
pub async fn documents_that_break_the_rules_are_refused(ctx: Ctx) {
    let app = documents_app(&ctx, MetadataDocuments::OnWithLoopback).await;
    let docs = document_server().await;
    let server = docs.addr;
    let (dead, _) = connection_counter().await;
    for (client_id, says) in [
        (
            format!("http://{server}/copied.json"),
            "does not name itself",
        ),
        (format!("http://{server}/page.json"), "application/json"),
        (format!("http://{server}/"), "needs a path"),
        (
            format!("http://{server}/moved.json"),
            "could not be fetched",
        ),
        // Valid but for its size (over 5 KB).
        (
            format!("http://{server}/large.json"),
            "could not be fetched",
        ),
        (
            format!("http://{server}/missing.json"),
            "could not be fetched",
        ),
        (format!("http://{dead}/client.json"), "could not be fetched"),
    ] {
        let page = shown_error(&app, &client_id).await;
        assert!(page.contains(says), "{client_id}: {page}");
        assert!(
            !page.contains("HTTP 3") && !page.contains("HTTP 4"),
            "{page}"
        );
    }
    assert_eq!(
        docs.reads.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}

/// Without `metadata_documents_from_loopback`, nothing inside the network is fetched: not a
/// loopback, private or link-local address, whether named by address or by a name that
/// resolves to one, and no connection is even opened; nor plain http.
pub async fn documents_inside_the_network_are_not_fetched(ctx: Ctx) {
    let app = documents_app(&ctx, MetadataDocuments::On).await;
    let (port, connections) = connection_counter().await;
    for client_id in [
        format!("https://{port}/client.json"),
        format!("https://localhost:{}/client.json", port.port()),
        format!("https://[::1]:{}/client.json", port.port()),
        "https://10.0.0.7/client.json".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::ffff:a9fe:a9fe]/latest/meta-data".to_owned(),
    ] {
        let page = shown_error(&app, &client_id).await;
        assert!(page.contains("could not be fetched"), "{client_id}: {page}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection to loopback was opened"
    );
    // Plain http is no document at all here: an unknown client.
    let page = shown_error(&app, &format!("http://{port}/client.json")).await;
    assert!(page.contains("unknown client"), "{page}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}
