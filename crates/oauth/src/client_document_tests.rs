use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use store::{AuthMethod, MasterKey, Store};

use super::*;
use crate::registration::DynamicRegistration;
use crate::service::{Audience, Settings};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://issuer.example";
const MCP: &str = "https://mcp.example/mcp";
const DOC: &str = "https://app.example/oauth/client.json";

struct Fixture {
    service: Service,
    _dir: tempfile::TempDir,
}

async fn fixture(documents: MetadataDocuments) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tg.db").to_string_lossy())
        .await
        .unwrap();
    let mut settings = Settings::new(ISS);
    for id in ["https://api.example", MCP] {
        settings.audiences.push(Audience {
            id: id.to_owned(),
            scopes: vec![format!("{id}:read"), "tools".into()],
            encrypt: None,
            token_lifetime: None,
        });
    }
    settings.registration = DynamicRegistration {
        audiences: vec![MCP.into()],
        documents,
        ..DynamicRegistration::default()
    };
    let service = Service::start(store, MasterKey::from_bytes([7; 32]), settings, NOW)
        .await
        .unwrap();
    Fixture { service, _dir: dir }
}

fn doc_url() -> Url {
    Url::parse(DOC).unwrap()
}

fn served(body: serde_json::Value) -> FetchedDocument {
    FetchedDocument {
        body: body.to_string().into_bytes(),
        content_type: Some("application/json; charset=utf-8".into()),
        fresh_for: Duration::from_secs(300),
    }
}

fn valid() -> serde_json::Value {
    json!({
        "client_id": DOC,
        "client_name": "Ed\u{200b}itor\u{202e}\u{7}",
        "redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://app.example/logo.png",
    })
}

#[test]
fn client_id_urls_follow_the_drafts_rules() {
    let on = MetadataDocuments::On;
    assert!(
        document_url("c-123", on).is_none(),
        "a registered client's id"
    );
    assert!(
        document_url(DOC, MetadataDocuments::Off).is_none(),
        "documents off: an unknown client like any other"
    );
    assert_eq!(document_url(DOC, on).unwrap().unwrap().as_str(), DOC);
    for bad in [
        "https://app.example/",
        "https://app.example",
        "https://app.example/a/../b",
        "https://app.example/a/./b",
        "https://user:pw@app.example/c",
        "https://app.example/c#frag",
        "HTTPS://app.example/c",
        "https://APP.example/c",
        "https://app.example/c d",
    ] {
        let refused = document_url(bad, on).map(Result::unwrap_err);
        assert!(
            refused
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::InvalidClient),
            "{bad}: {refused:?}"
        );
    }
    // Without loopback documents an http id is no document: an unknown client.
    assert!(document_url("http://127.0.0.1:8080/c", on).is_none());
    let long = format!("https://app.example/{}", "a".repeat(MAX_CLIENT_ID_URL));
    assert!(document_url(&long, on).unwrap().is_err());
    // Loopback over http only when allowed, and only on loopback.
    let dev = MetadataDocuments::OnWithLoopback;
    for ok in [
        "http://127.0.0.1:8080/c",
        "http://localhost:8080/c",
        "http://[::1]:8080/c",
    ] {
        assert!(document_url(ok, dev).unwrap().is_ok(), "{ok}");
    }
    assert!(document_url("http://app.example/c", dev).unwrap().is_err());
}

#[test]
fn only_json_content_types_are_documents() {
    for ok in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/oauth-client+json",
    ] {
        assert!(is_json(Some(ok)), "{ok}");
    }
    for bad in [
        "text/html",
        "application/jsonx",
        "application/+json",
        "text/json",
    ] {
        assert!(!is_json(Some(bad)), "{bad}");
    }
    assert!(!is_json(None));
}

#[test]
fn documents_are_kept_as_their_headers_say_within_bounds_and_failures_briefly() {
    let ok: Result<Client, ErrorResponse> = Ok(Client {
        client_id: DOC.into(),
        name: "n".into(),
        secret_hash: None,
        auth_method: AuthMethod::Public,
        auth_method_pinned: true,
        scopes: Vec::new(),
        audiences: Vec::new(),
        jwks: None,
        disabled: false,
        created_at: NOW,
        redirect_uris: Vec::new(),
        first_party: false,
    });
    let secs = Duration::from_secs;
    assert_eq!(kept_for(&ok, secs(300)), secs(300));
    assert_eq!(
        kept_for(&ok, Duration::ZERO),
        MIN_FRESH,
        "no-store: the floor"
    );
    assert_eq!(kept_for(&ok, secs(30 * 24 * 3600)), MAX_FRESH);
    let failed: Result<Client, ErrorResponse> = Err(refused("x"));
    assert_eq!(kept_for(&failed, secs(3600)), FAILURE_FRESH);
}

#[tokio::test]
async fn a_document_is_a_third_party_public_client_for_the_registration_audiences() {
    let f = fixture(MetadataDocuments::On).await;
    let client = f
        .service
        .read_document(&served(valid()), &doc_url(), NOW)
        .unwrap();
    assert_eq!(client.client_id, DOC);
    assert_eq!(
        client.name, "Editor",
        "control and bidirectional characters dropped"
    );
    assert_eq!(client.auth_method, AuthMethod::Public);
    assert!(client.auth_method_pinned && !client.first_party && !client.disabled);
    assert_eq!(client.audiences, vec![MCP.to_owned()]);
    assert_eq!(
        client.scopes,
        vec![format!("{MCP}:read"), "tools".to_owned()],
        "by default every scope of the audiences opened to it"
    );
    assert_eq!(client.redirect_uris.len(), 2);
    assert!(client.secret_hash.is_none());

    let mut unnamed = valid();
    unnamed.as_object_mut().unwrap().remove("client_name");
    let client = f
        .service
        .read_document(&served(unnamed), &doc_url(), NOW)
        .unwrap();
    assert_eq!(client.name, "app.example", "named by its host");
}

#[tokio::test]
async fn documents_that_break_the_rules_are_refused() {
    let f = fixture(MetadataDocuments::On).await;
    let with = |key: &str, value: serde_json::Value| {
        let mut doc = valid();
        doc.as_object_mut().unwrap().insert(key.into(), value);
        doc
    };
    let cases = [
        (
            with("client_id", json!("https://other.example/c.json")),
            "name itself",
        ),
        (with("client_id", json!(format!("{DOC}/"))), "name itself"),
        (with("client_secret", json!("s")), "client_secret"),
        (
            with("client_secret_expires_at", json!(0)),
            "client_secret_expires_at",
        ),
        (
            with("token_endpoint_auth_method", json!("client_secret_basic")),
            "token_endpoint_auth_method",
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "jwks",
        ),
        (with("redirect_uris", json!([])), "redirect_uris"),
        (
            with("redirect_uris", json!(["http://evil.example/cb"])),
            "redirect URI",
        ),
        (
            with("grant_types", json!(["client_credentials"])),
            "grant_types",
        ),
        (
            with("client_name", json!("\u{200b}\u{202e} ")),
            "visible character",
        ),
        (
            with("scope", json!("https://api.example:read")),
            "not offered",
        ),
        (json!(["not", "an", "object"]), "JSON object"),
    ];
    for (doc, says) in cases {
        let refused = f
            .service
            .read_document(&served(doc.clone()), &doc_url(), NOW)
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidClient, "{doc}");
        assert!(
            refused.description.contains(says),
            "{doc}: {}",
            refused.description
        );
    }
    let mut html = served(valid());
    html.content_type = Some("text/html".into());
    assert!(f.service.read_document(&html, &doc_url(), NOW).is_err());
}

#[tokio::test]
async fn private_key_jwt_clients_give_their_keys_inline() {
    let f = fixture(MetadataDocuments::On).await;
    let key = jose::Jwk::generate(jose::Algorithm::ES256, None, None).unwrap();
    let mut doc = valid();
    let map = doc.as_object_mut().unwrap();
    map.insert(
        "token_endpoint_auth_method".into(),
        json!("private_key_jwt"),
    );
    map.insert(
        "jwks".into(),
        serde_json::from_str(&format!(
            "{{\"keys\":[{}]}}",
            key.to_public().unwrap().to_json()
        ))
        .unwrap(),
    );
    let client = f
        .service
        .read_document(&served(doc.clone()), &doc_url(), NOW)
        .unwrap();
    assert_eq!(client.auth_method, AuthMethod::PrivateKeyJwt);
    assert!(client.jwks.is_some());
    with_jwks_uri_instead(&mut doc);
    let refused = f
        .service
        .read_document(&served(doc), &doc_url(), NOW)
        .unwrap_err();
    assert!(
        refused.description.contains("jwks_uri is not supported"),
        "{refused:?}"
    );
}

fn with_jwks_uri_instead(doc: &mut serde_json::Value) {
    let map = doc.as_object_mut().unwrap();
    map.remove("jwks");
    map.insert("jwks_uri".into(), json!("https://app.example/jwks"));
}

/// Serves one document and counts the fetches.
#[derive(Debug)]
struct Counting {
    fetches: AtomicUsize,
    answer: Result<FetchedDocument, String>,
}

impl DocumentFetcher for Counting {
    fn fetch<'a>(&'a self, url: &'a Url) -> Fetching<'a> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.clone();
        assert_eq!(url.as_str(), DOC);
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn documents_and_failures_are_kept_and_fetched_once() {
    let f = fixture(MetadataDocuments::On).await;
    let missing = f.service.client(DOC).await.unwrap_err();
    assert_eq!(
        missing.kind,
        ErrorKind::TemporarilyUnavailable,
        "no fetcher installed"
    );

    let fetcher = Arc::new(Counting {
        fetches: AtomicUsize::new(0),
        answer: Ok(served(valid())),
    });
    f.service
        .use_document_fetcher(Arc::clone(&fetcher) as Arc<dyn DocumentFetcher>);
    for _ in 0..3 {
        let client = f.service.client(DOC).await.unwrap().unwrap();
        assert_eq!(client.client_id, DOC);
    }
    assert_eq!(
        fetcher.fetches.load(Ordering::SeqCst),
        1,
        "kept while fresh"
    );

    let g = fixture(MetadataDocuments::On).await;
    let failing = Arc::new(Counting {
        fetches: AtomicUsize::new(0),
        answer: Err("HTTP 404".into()),
    });
    g.service
        .use_document_fetcher(Arc::clone(&failing) as Arc<dyn DocumentFetcher>);
    for _ in 0..3 {
        let refused = g.service.client(DOC).await.unwrap_err();
        // The fetcher's reason goes to the log only: it could map the network.
        assert!(
            refused.description.contains("could not be fetched"),
            "{refused:?}"
        );
        assert!(!refused.description.contains("HTTP 404"), "{refused:?}");
    }
    assert_eq!(
        failing.fetches.load(Ordering::SeqCst),
        1,
        "a failure is remembered"
    );

    // The metadata says so only when documents are on.
    assert_eq!(
        g.service.metadata()["client_id_metadata_document_supported"],
        true
    );
    let off = fixture(MetadataDocuments::Off).await;
    assert!(off
        .service
        .metadata()
        .get("client_id_metadata_document_supported")
        .is_none());
    assert!(
        off.service.client(DOC).await.unwrap().is_none(),
        "off: unknown"
    );
}

/// Answers after a pause, counting the fetches.
#[derive(Debug)]
struct Slow {
    fetches: AtomicUsize,
}

impl DocumentFetcher for Slow {
    fn fetch<'a>(&'a self, url: &'a Url) -> Fetching<'a> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut document = valid();
        document["client_id"] = url.as_str().into();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(served(document))
        })
    }
}

#[tokio::test]
async fn one_fetch_per_document_and_a_bounded_number_per_node() {
    let f = fixture(MetadataDocuments::On).await;
    let service = Arc::new(f.service);
    let slow = Arc::new(Slow {
        fetches: AtomicUsize::new(0),
    });
    service.use_document_fetcher(Arc::clone(&slow) as Arc<dyn DocumentFetcher>);
    // Ten requests naming one document at once: one fetch, ten answers.
    let mut same = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let service = Arc::clone(&service);
        same.spawn(async move { service.client(DOC).await });
    }
    while let Some(answer) = same.join_next().await {
        assert_eq!(answer.unwrap().unwrap().unwrap().client_id, DOC);
    }
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 1);
    assert!(
        service.documents.in_flight.lock().unwrap().is_empty(),
        "no line left behind"
    );

    // More documents at once than fetches allowed: the excess is refused at once.
    let mut many = tokio::task::JoinSet::new();
    for i in 0..(MAX_FETCHES + 4) {
        let service = Arc::clone(&service);
        many.spawn(async move {
            service
                .client(&format!("https://app.example/c/{i}.json"))
                .await
        });
    }
    let mut busy = 0;
    while let Some(answer) = many.join_next().await {
        match answer.unwrap() {
            Ok(Some(_)) => {}
            Err(e) if e.kind == ErrorKind::TemporarilyUnavailable => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(busy, 4, "{MAX_FETCHES} fetches at a time");
}
