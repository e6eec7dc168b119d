//! A token service over a test database, and requests to its router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jose::jwt::{self, Claims, Validation};
use jose::{Algorithm, Jwk, JwkSet};
use oauth::{Audience, EncryptTo, NewClient, Service, Settings};
use serde_json::Value;
use store::testing::Ctx;
use store::{AuthMethod, MasterKey};
use tokengate::server::{router, App};
use tower::ServiceExt as _;

pub const ISSUER: &str = "https://as.example";
pub const API: &str = "https://api.example";
pub const SECRET_API: &str = "https://secret.example";
pub const ADMIN: &str = "admin-token-0123456789abcdef0123456789";

pub struct TestApp {
    pub router: Router,
    pub service: Arc<Service>,
}

pub fn settings() -> Settings {
    let mut s = Settings::new(ISSUER);
    s.audiences = vec![
        Audience {
            id: API.into(),
            scopes: vec!["read".into(), "write".into()],
            encrypt: None,
            token_lifetime: None,
        },
        Audience {
            id: SECRET_API.into(),
            scopes: vec!["read".into()],
            encrypt: Some(EncryptTo::Own),
            token_lifetime: Some(120),
        },
    ];
    s
}

pub async fn app(ctx: &Ctx) -> TestApp {
    app_with(ctx, settings(), Some(ADMIN)).await
}

pub async fn app_with(ctx: &Ctx, settings: Settings, admin: Option<&str>) -> TestApp {
    let store = ctx.open().await;
    let service = Service::start(
        store,
        MasterKey::from_bytes([7; 32]),
        settings,
        store::unix_now(),
    )
    .await
    .unwrap();
    let service = Arc::new(service);
    let router = router(App::new(Arc::clone(&service), admin.map(String::from)));
    TestApp { router, service }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status, showing the body when it differs.
    fn expect_status(&self, status: u16) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `WWW-Authenticate` challenge, asserting the status.
    pub fn challenge(&self, status: u16) -> String {
        self.expect_status(status);
        self.header("www-authenticate")
            .unwrap_or_default()
            .to_owned()
    }

    /// The OAuth error code, asserting the status too.
    pub fn error(&self, status: u16) -> String {
        self.expect_status(status);
        let body = self.json();
        assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        body["error"].as_str().unwrap().to_owned()
    }

    pub fn ok(&self) -> Value {
        self.expect_status(StatusCode::OK.as_u16());
        self.json()
    }
}

impl TestApp {
    /// Sends a request as a client would: with a `Host` (HTTP/1.1 requires one, and the
    /// server refuses a request without it).
    pub async fn send(&self, mut req: Request<Body>) -> Reply {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, header::HeaderValue::from_static("localhost"));
        }
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// POSTs a form with extra headers.
    pub async fn post(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(Method::GET).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// A client_secret_basic (or _post) client; returns (id, secret).
    pub async fn client(
        &self,
        scopes: &[&str],
        audiences: &[&str],
        method: AuthMethod,
    ) -> (String, String) {
        new_client(&self.service, scopes, audiences, method).await
    }

    /// A token for `form` (client_credentials unless it says otherwise) with Basic auth.
    pub async fn token(&self, id: &str, secret: &str, form: &str) -> Reply {
        let form = if form.contains("grant_type=") {
            form.to_owned()
        } else {
            format!("grant_type=client_credentials&{form}")
        };
        self.post(
            "/oauth2/token",
            &form,
            &[("authorization", &basic(id, secret))],
        )
        .await
    }

    /// The published JWKS.
    pub async fn jwks(&self) -> JwkSet {
        let reply = self.get("/oauth2/jwks", &[]).await;
        JwkSet::from_json(&reply.body).unwrap()
    }

    /// Verifies an access token of ours the way a resource server would (JWKS, RFC 9068).
    pub async fn verify(&self, token: &str, audience: &str) -> Claims {
        let jwks = self.jwks().await;
        let v = Validation::new()
            .algorithms([Algorithm::ES256])
            .issuer(ISSUER)
            .audience(audience)
            .typ("at+jwt");
        jwt::verify(token, &jwks, &v).unwrap().claims
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A signed JWT with the given header `typ` and extra header members.
pub fn signed(key: &Jwk, claims: &Value, header: &[(&str, Value)]) -> String {
    let mut params = jose::jws::HeaderParams::default();
    for (name, value) in header {
        params.protected.insert((*name).into(), value.clone());
    }
    jose::jws::compact::sign(
        claims.to_string().as_bytes(),
        key,
        key.signing_algorithm().unwrap(),
        &params,
    )
    .unwrap()
}

/// A DPoP proof for POST to the token endpoint.
pub fn dpop_proof(key: &Jwk, jti: &str, nonce: Option<&str>) -> String {
    let mut claims = serde_json::json!({
        "jti": jti, "htm": "POST", "htu": format!("{ISSUER}/oauth2/token"), "iat": store::unix_now(),
    });
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    let public = Value::Object(key.to_public().unwrap().to_map());
    signed(key, &claims, &[("typ", "dpop+jwt".into()), ("jwk", public)])
}

pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How long a test waits for something that happens in the background (a queued audit row).
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Reply {
    /// The OAuth error code and its description, asserting the status and the request id.
    pub fn refusal(&self, status: u16) -> (String, String) {
        let error = self.error(status);
        let description = self.json()["error_description"]
            .as_str()
            .unwrap_or_else(|| panic!("no error_description: {}", self.json()))
            .to_owned();
        (error, description)
    }

    /// Asserts a refusal: its status, OAuth error and description.
    pub fn refused(&self, status: u16, error: &str, description: &str) {
        let (e, d) = self.refusal(status);
        assert_eq!((e.as_str(), d.as_str()), (error, description));
    }

    /// The request id the body names (and the `X-Request-Id` header repeats).
    pub fn request_id(&self) -> String {
        let id = self.json()["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id: {}", self.json()))
            .to_owned();
        assert_eq!(self.header("x-request-id"), Some(id.as_str()));
        id
    }
}

/// The one audit event of request `request_id`, waited for up to [`WAIT`] (denials are
/// written through a queue); fails naming the events seen.
pub async fn audited(store: &store::Store, request_id: &str) -> store::AuditEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = store.audit_events(0, u32::MAX).await.unwrap();
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.event.request_id.as_deref() == Some(request_id))
            // The admin API's own record of a request (who, from where) is beside the event
            // of what it did.
            .filter(|e| e.event.event != "admin.action")
            .collect();
        match mine.as_slice() {
            [one] => return one.event.clone(),
            [] if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            _ => panic!(
                "expected one audit event of request {request_id} within {WAIT:?}, found {}: \
                 {events:#?}",
                mine.len()
            ),
        }
    }
}

impl TestApp {
    /// The one audit event of request `request_id` (see [`audited`]).
    pub async fn audited(&self, request_id: &str) -> store::AuditEvent {
        audited(self.service.store(), request_id).await
    }

    /// The audit reason of a refused request: its status, OAuth error and the event's reason
    /// (which, unlike the response, says why client authentication failed).
    pub async fn refusal_reason(&self, reply: &Reply, status: u16, error: &str) -> String {
        assert_eq!(reply.error(status), error);
        let event = self.audited(&reply.request_id()).await;
        assert_eq!(event.outcome, "failure", "{event:?}");
        event
            .reason
            .clone()
            .unwrap_or_else(|| panic!("a refusal audited without a reason: {event:?}"))
    }
}

/// A client with a secret of `service`; returns (id, secret). `ClientSecretBasic` stands for the default (the secret accepted
/// with Basic or in the form, as `client create` without `--auth-method` makes it); any
/// other method is pinned.
pub async fn new_client(
    service: &oauth::Service,
    scopes: &[&str],
    audiences: &[&str],
    method: AuthMethod,
) -> (String, String) {
    let creds = service
        .create_client(
            NewClient {
                name: "test".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                audiences: audiences.iter().map(|s| s.to_string()).collect(),
                auth_method: (method != AuthMethod::ClientSecretBasic).then_some(method),
                jwks: None,
                redirect_uris: vec![],
                first_party: true,
            },
            store::unix_now(),
            None,
        )
        .await
        .unwrap();
    (creds.client_id, creds.client_secret.unwrap().to_string())
}
