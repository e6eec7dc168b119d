use store::{AuthMethod, MasterKey, Store};

use super::*;
use crate::service::{Audience, Settings};
use crate::NewClient;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://issuer.example";
const API: &str = "https://api.example";
const MCP: &str = "https://mcp.example/mcp";
/// A S256 challenge: base64url SHA-256 of RFC 7636 appendix B's verifier.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Fixture {
    service: Service,
    /// A public client with an https and a loopback redirect URI.
    app: String,
    _dir: tempfile::TempDir,
}

async fn fixture(audiences: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tg.db").to_string_lossy())
        .await
        .unwrap();
    let mut settings = Settings::new(ISS);
    settings.audiences = audiences
        .iter()
        .map(|id| Audience {
            id: (*id).to_owned(),
            scopes: vec!["read".into(), "write".into()],
            encrypt: None,
            token_lifetime: None,
        })
        .collect();
    let service = Service::start(store, MasterKey::from_bytes([7; 32]), settings, NOW)
        .await
        .unwrap();
    let app = service
        .create_client(
            NewClient {
                name: "app".into(),
                scopes: vec!["read".into(), "admin".into()],
                audiences: Vec::new(),
                auth_method: Some(AuthMethod::Public),
                jwks: None,
                redirect_uris: vec![
                    "https://app.example/cb?tenant=a".into(),
                    "http://127.0.0.1/callback".into(),
                ],
                first_party: true,
            },
            NOW,
            None,
        )
        .await
        .unwrap()
        .client_id;
    Fixture {
        service,
        app,
        _dir: dir,
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A valid request's query for `client_id`, with `extra` pairs added and the pairs named in
/// `drop` left out.
fn query(client_id: &str, extra: &[(&str, &str)], drop: &[&str]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "https://app.example/cb?tenant=a"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "af0ifjsldkj"),
    ];
    pairs.retain(|(name, _)| !drop.contains(name) && !extra.iter().any(|(n, _)| n == name));
    pairs.extend_from_slice(extra);
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", enc(n), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn ask(f: &Fixture, q: &str) -> Result<AuthorizationRequest, AuthorizeError> {
    f.service.authorization_request(q.as_bytes()).await
}

#[tokio::test]
async fn a_valid_request_is_bound_to_everything_it_names() {
    let f = fixture(&[API]).await;
    let ok = ask(&f, &query(&f.app, &[("scope", "read")], &[]))
        .await
        .unwrap();
    assert_eq!(
        ok,
        AuthorizationRequest {
            client_id: f.app.clone(),
            redirect_uri: "https://app.example/cb?tenant=a".into(),
            state: Some("af0ifjsldkj".into()),
            code_challenge: CHALLENGE.into(),
            audience: API.into(),
            scope: vec!["read".into()],
            dpop_jkt: None,
            first_party: true,
            assured: true,
        }
    );
    // No scope asked: what the client and the audience both allow. A loopback redirect URI
    // on another port (RFC 8252 §7.3); no state; a DPoP key named (RFC 9449 §10).
    let loopback = "http://127.0.0.1:53123/callback";
    let ok = ask(
        &f,
        &query(
            &f.app,
            &[("redirect_uri", loopback), ("dpop_jkt", CHALLENGE)],
            &["state"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (ok.redirect_uri.as_str(), ok.state, ok.scope, ok.dpop_jkt),
        (
            loopback,
            None,
            vec!["read".to_owned()],
            Some(CHALLENGE.to_owned())
        )
    );
    // A public client on loopback may be any app on the device (RFC 8252 §8.6).
    assert!(!ok.assured);
    // prompt=none cannot be answered: nobody stays signed in here.
    let refused = ask(&f, &query(&f.app, &[("prompt", "none")], &[]))
        .await
        .unwrap_err();
    assert_eq!(refused.error().kind, ErrorKind::LoginRequired);
}

/// Refusals before the client and its redirect URI are verified are shown to the user,
/// never redirected.
#[tokio::test]
async fn an_unverified_client_or_redirect_uri_is_shown_to_the_user() {
    let f = fixture(&[API]).await;
    let machine = f
        .service
        .create_client(
            NewClient {
                name: "machine".into(),
                scopes: vec!["read".into()],
                audiences: Vec::new(),
                auth_method: None,
                jwks: None,
                redirect_uris: Vec::new(),
                first_party: true,
            },
            NOW,
            None,
        )
        .await
        .unwrap()
        .client_id;
    let app = f.app.as_str();
    let cases: Vec<(String, ErrorKind, &str)> = vec![
        (
            query(app, &[], &["client_id"]),
            ErrorKind::InvalidRequest,
            "client_id is missing",
        ),
        (
            query("nobody", &[], &[]),
            ErrorKind::InvalidRequest,
            "unknown client",
        ),
        (
            query(&machine, &[], &[]),
            ErrorKind::UnauthorizedClient,
            "no redirect URI",
        ),
        (
            query(app, &[], &["redirect_uri"]),
            ErrorKind::InvalidRequest,
            "redirect_uri is missing",
        ),
        (
            query(app, &[("redirect_uri", "https://evil.example/cb")], &[]),
            ErrorKind::InvalidRequest,
            "not one the client registered",
        ),
        (
            query(app, &[("redirect_uri", "https://app.example/cb")], &[]),
            ErrorKind::InvalidRequest,
            "not one the client registered",
        ),
        (
            query(app, &[("redirect_uri", "http://127.0.0.1:1/other")], &[]),
            ErrorKind::InvalidRequest,
            "not one the client registered",
        ),
        (
            format!("{}&client_id={app}", query(app, &[], &[])),
            ErrorKind::InvalidRequest,
            "repeated",
        ),
        (
            format!("{}&redirect_uri=x", query(app, &[], &[])),
            ErrorKind::InvalidRequest,
            "repeated",
        ),
        (
            "client_id=%zz".into(),
            ErrorKind::InvalidRequest,
            "percent-escape in the query",
        ),
    ];
    for (q, kind, says) in cases {
        let err = ask(&f, &q).await.unwrap_err();
        let AuthorizeError::ShowUser(e) = &err else {
            panic!("{q}: redirected: {err:?}");
        };
        assert_eq!(e.kind, kind, "{q}: {e:?}");
        assert!(e.description.contains(says), "{q}: {e:?}");
        assert_eq!(err.location(ISS), None);
    }
    f.service
        .set_client_disabled(app, true, NOW, None)
        .await
        .unwrap();
    let err = ask(&f, &query(app, &[], &[])).await.unwrap_err();
    assert_eq!(err.error().kind, ErrorKind::InvalidRequest);
    assert_eq!(err.location(ISS), None);
}

/// Once the client and redirect URI are verified, refusals go back to it with `state`
/// and `iss`, keeping the redirect URI's own query.
#[tokio::test]
async fn later_refusals_go_back_to_the_client() {
    let f = fixture(&[API, MCP]).await;
    let app = f.app.as_str();
    let api = [("resource", API)];
    let with = |extra: &[(&str, &str)], drop: &[&str]| {
        let mut all: Vec<(&str, &str)> = api.to_vec();
        all.extend_from_slice(extra);
        query(app, &all, drop)
    };
    let cases: Vec<(String, ErrorKind, &str)> = vec![
        (
            with(&[("response_type", "token")], &[]),
            ErrorKind::UnsupportedResponseType,
            "only response_type code",
        ),
        (
            with(&[], &["response_type"]),
            ErrorKind::InvalidRequest,
            "response_type is missing",
        ),
        (
            with(&[("response_mode", "fragment")], &[]),
            ErrorKind::InvalidRequest,
            "response_mode",
        ),
        (
            with(&[], &["code_challenge"]),
            ErrorKind::InvalidRequest,
            "PKCE",
        ),
        (
            with(&[("code_challenge_method", "plain")], &[]),
            ErrorKind::InvalidRequest,
            "must be S256",
        ),
        (
            with(&[], &["code_challenge_method"]),
            ErrorKind::InvalidRequest,
            "plain",
        ),
        (
            with(&[("code_challenge", "short")], &[]),
            ErrorKind::InvalidRequest,
            "43",
        ),
        (
            with(&[("code_challenge", &"a".repeat(128))], &[]),
            ErrorKind::InvalidRequest,
            "43",
        ),
        // 43 characters whose last one has bits set that 32 bytes do not fill.
        (
            with(
                &[(
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
                )],
                &[],
            ),
            ErrorKind::InvalidRequest,
            "43",
        ),
        (
            with(&[("dpop_jkt", "x")], &[]),
            ErrorKind::InvalidRequest,
            "dpop_jkt",
        ),
        (
            with(&[("request", "eyJ")], &[]),
            ErrorKind::RequestNotSupported,
            "request objects",
        ),
        (
            with(&[("request_uri", "urn:x")], &[]),
            ErrorKind::RequestUriNotSupported,
            "request objects",
        ),
        // Two audiences: the resource must be named, and be one of them.
        (
            query(app, &[], &[]),
            ErrorKind::InvalidTarget,
            "name the resource",
        ),
        (
            query(app, &[("resource", "https://other.example")], &[]),
            ErrorKind::InvalidTarget,
            "unknown resource",
        ),
        (
            format!("{}&resource={}", with(&[], &[]), enc(MCP)),
            ErrorKind::InvalidTarget,
            "one resource",
        ),
        // Allowed to the client but not by the audience, and not allowed to the client.
        (
            with(&[("scope", "read admin")], &[]),
            ErrorKind::InvalidScope,
            "admin",
        ),
        (
            with(&[("scope", "write")], &[]),
            ErrorKind::InvalidScope,
            "write",
        ),
    ];
    for (q, kind, says) in cases {
        let err = ask(&f, &q).await.unwrap_err();
        assert!(
            matches!(err, AuthorizeError::Redirect { .. }),
            "{q}: {err:?}"
        );
        let e = err.error();
        assert_eq!(e.kind, kind, "{q}: {e:?}");
        assert!(e.description.contains(says), "{q}: {e:?}");
        let location = Url::parse(&err.location(ISS).unwrap()).unwrap();
        assert_eq!(
            (location.host_str(), location.path()),
            (Some("app.example"), "/cb")
        );
        let got: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let want = [
            ("tenant", "a"),
            ("error", kind.as_str()),
            ("error_description", e.description.as_str()),
            ("state", "af0ifjsldkj"),
            ("iss", ISS),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(got, want, "{q}");
    }

    // A state too long to carry, or not printable ASCII, is refused and not sent back.
    for bad in ["s".repeat(MAX_STATE + 1), "caf\u{e9}".into(), "a\nb".into()] {
        let err = ask(&f, &with(&[("state", &bad)], &[])).await.unwrap_err();
        assert_eq!(err.error().kind, ErrorKind::InvalidRequest, "{bad}");
        let location = Url::parse(&err.location(ISS).unwrap()).unwrap();
        assert!(location.query_pairs().all(|(n, _)| n != "state"), "{bad}");
    }
    assert!(ask(&f, &with(&[("state", &"s".repeat(MAX_STATE))], &[]))
        .await
        .is_ok());
    // A state full of characters that mean something in a URL comes back as it was sent,
    // as one parameter.
    let hostile = "a&b=c#d%20e+f?g/h;i'j\"k<l>";
    let ok = ask(&f, &with(&[("state", hostile)], &[])).await.unwrap();
    assert_eq!(ok.state.as_deref(), Some(hostile));
    let err = ask(&f, &with(&[("state", hostile), ("scope", "admin")], &[]))
        .await
        .unwrap_err();
    let location = Url::parse(&err.location(ISS).unwrap()).unwrap();
    let states: Vec<String> = location
        .query_pairs()
        .filter(|(n, _)| n == "state")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(states, [hostile]);
    assert_eq!(location.fragment(), None);
}

#[test]
fn a_redirected_description_is_printable_ascii_without_quotes_and_short() {
    assert_eq!(
        redirectable_description("the scope \"x\\y\"\n is caf\u{e9}"),
        "the scope xy is caf"
    );
    assert_eq!(
        redirectable_description(&"d".repeat(500)).len(),
        MAX_DESCRIPTION
    );
    let err = AuthorizeError::Redirect {
        redirect_uri: "https://app.example/cb".into(),
        state: None,
        error: ErrorResponse::new(ErrorKind::InvalidScope, "bad \"scope\"\r\nX-Injected: 1"),
    };
    let location = err.location(ISS).unwrap();
    assert!(
        !location.contains('\r') && !location.contains('\n'),
        "{location}"
    );
    let url = Url::parse(&location).unwrap();
    let description = url
        .query_pairs()
        .find(|(n, _)| n == "error_description")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(description, "bad scopeX-Injected: 1");
}

#[test]
fn parameters_are_added_to_any_kind_of_redirect_uri() {
    let pairs = [("code", "c 1"), ("iss", ISS)];
    for (uri, want) in [
        (
            "com.example.app:/cb",
            "com.example.app:/cb?code=c+1&iss=https%3A%2F%2Fissuer.example",
        ),
        (
            "http://127.0.0.1:53123/callback",
            "http://127.0.0.1:53123/callback?code=c+1&iss=https%3A%2F%2Fissuer.example",
        ),
        (
            "https://app.example/cb?tenant=a",
            "https://app.example/cb?tenant=a&code=c+1&iss=https%3A%2F%2Fissuer.example",
        ),
    ] {
        assert_eq!(with_query(uri, &pairs).as_deref(), Some(want), "{uri}");
    }
    assert_eq!(with_query("not a uri", &pairs), None);
}

/// A client registered without audiences that names none gets the only declared one, at
/// the token endpoint as at the authorization endpoint; with two declared, it must name one.
#[tokio::test]
async fn the_only_declared_audience_is_the_default() {
    for (audiences, want) in [(&[API][..], Some(API)), (&[API, MCP][..], None)] {
        let f = fixture(audiences).await;
        let creds = f
            .service
            .create_client(
                NewClient {
                    name: "machine".into(),
                    scopes: vec!["read".into()],
                    audiences: Vec::new(),
                    auth_method: None,
                    jwks: None,
                    redirect_uris: Vec::new(),
                    first_party: true,
                },
                NOW,
                None,
            )
            .await
            .unwrap();
        let secret = creds.client_secret.unwrap();
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            creds.client_id,
            secret.as_str()
        );
        let req = crate::Request {
            content_type: Some("application/x-www-form-urlencoded"),
            body: Some(body.as_bytes()),
            request_id: "r1",
            ..crate::Request::default()
        };
        let answer = f.service.token(&req, NOW).await;
        match want {
            Some(aud) => {
                let body = answer.unwrap().body;
                let token = body["access_token"].as_str().unwrap();
                let (_, claims) = jose::jwt::decode_unverified(token).unwrap();
                assert_eq!(claims["aud"], aud);
            }
            None => assert_eq!(answer.unwrap_err().kind, ErrorKind::InvalidTarget),
        }
    }
}
