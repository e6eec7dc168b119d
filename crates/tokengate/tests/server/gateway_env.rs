//! A gateway on a real socket in front of real upstreams, for the gateway tests: an echo
//! upstream (with SSE, upgrade, slow and health endpoints), a JWKS/metadata server for remote
//! issuers, and a small HTTP client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jose::{Algorithm, Jwk, JwkSet};
use oauth::{Grant, Service};
use serde_json::{json, Value};
use tokengate::boot::{build_gateway, GatewayParts};
use tokengate::config::Config;
use tokengate::server::App;

use store::testing::Ctx;

use crate::harness::{settings, ADMIN, ISSUER};

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub use crate::harness::Reply;

pub async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = axum::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// The echo upstream's state.
#[derive(Default)]
pub struct UpstreamState {
    pub healthy: AtomicBool,
    pub hits: AtomicU64,
    /// Requests per path.
    pub paths: Mutex<HashMap<String, u64>>,
    pub release_sse: tokio::sync::Notify,
}

impl UpstreamState {
    /// How many requests reached `path`.
    pub fn hits_on(&self, path: &str) -> u64 {
        self.paths.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn upstream_handler(state: Arc<UpstreamState>, name: String, req: Request) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    *state.paths.lock().unwrap().entry(path.clone()).or_default() += 1;
    match path.as_str() {
        "/health" => {
            return if state.healthy.load(Ordering::SeqCst) {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
            .into_response();
        }
        "/slow" => {
            // Never answers: the gateway's route timeout ends the request.
            std::future::pending::<()>().await;
        }
        "/hop" => {
            // Hop-by-hop fields an upstream may send, which must not reach the client.
            return Response::builder()
                .header("connection", "x-up-private")
                .header("x-up-private", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-authenticate", "Basic realm=\"up\"")
                .header("x-up-public", "1")
                .body(Body::from("hop"))
                .unwrap();
        }
        "/sse" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            let s = Arc::clone(&state);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from_static(b"data: first\n\n"))).await;
                s.release_sse.notified().await;
                let _ = tx.send(Ok(Bytes::from_static(b"data: second\n\n"))).await;
            });
            let stream = futures_stream(rx);
            return (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response();
        }
        "/upgrade" => {
            let mut req = req;
            if !req.headers().contains_key("upgrade") {
                return StatusCode::BAD_REQUEST.into_response();
            }
            let Some(on) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let mut io = hyper_util::rt::TokioIo::new(up);
                    let (mut r, mut w) = tokio::io::split(&mut io);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            return Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(Body::empty())
                .unwrap();
        }
        _ => {}
    }
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let query = req.uri().query().map(String::from);
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let doc = json!({"upstream": name, "version": version, "method": method, "path": path, "query": query, "headers": headers, "body_len": body.len()});
    ([("content-type", "application/json")], doc.to_string()).into_response()
}

fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    struct S(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);
    impl futures_core::Stream for S {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
    S(rx)
}

/// Serves an axum router on a free loopback port (with upgrades).
pub async fn serve_router(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Starts an echo upstream named `name`.
pub async fn upstream(name: &str) -> (SocketAddr, Arc<UpstreamState>) {
    let state = Arc::new(UpstreamState {
        healthy: AtomicBool::new(true),
        ..Default::default()
    });
    let s = Arc::clone(&state);
    let name = name.to_owned();
    let app = axum::Router::new().fallback(move |req: Request| {
        let s = Arc::clone(&s);
        let name = name.clone();
        async move { upstream_handler(s, name, req).await }
    });
    (serve_router(app).await, state)
}

/// A remote issuer: JWKS (with a fetch counter) and RFC 8414 metadata.
pub struct RemoteIssuer {
    pub addr: SocketAddr,
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub fetches: Arc<AtomicU64>,
    pub up: Arc<AtomicBool>,
    /// JWKS answers wait while a writer holds this (counted as fetches when they arrive).
    pub gate: Arc<tokio::sync::RwLock<()>>,
}

impl RemoteIssuer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn remote_issuer(keys: &[&Jwk]) -> RemoteIssuer {
    let published: Vec<Value> = keys
        .iter()
        .map(|k| Value::Object(k.to_public().unwrap().to_map()))
        .collect();
    let keys = Arc::new(Mutex::new(published));
    let fetches = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let (k, f, u, g) = (
        Arc::clone(&keys),
        Arc::clone(&fetches),
        Arc::clone(&up),
        Arc::clone(&gate),
    );
    let app = axum::Router::new().fallback(move |req: Request| {
        let (k, f, u, g, issuer) = (
            Arc::clone(&k),
            Arc::clone(&f),
            Arc::clone(&u),
            Arc::clone(&g),
            issuer.clone(),
        );
        async move {
            if !u.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            match req.uri().path() {
                "/jwks" => {
                    f.fetch_add(1, Ordering::SeqCst);
                    let _open = g.read().await;
                    let doc = json!({"keys": *k.lock().unwrap()});
                    (
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "max-age=600"),
                        ],
                        doc.to_string(),
                    )
                        .into_response()
                }
                "/.well-known/oauth-authorization-server" => {
                    let doc = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
                    ([("content-type", "application/json")], doc.to_string()).into_response()
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    RemoteIssuer {
        addr,
        keys,
        fetches,
        up,
        gate,
    }
}

/// tokengate (token service + gateway) on a free port, built from `config` (TOML).
pub struct Front {
    pub addr: SocketAddr,
    routes_file: std::path::PathBuf,
    pub app: Arc<App>,
    pub service: Arc<Service>,
    pub client: HttpClient,
    /// The id of the last audit event [`Front::denial_code`] read.
    audit_seen: tokio::sync::Mutex<i64>,
    _dir: tempfile::TempDir,
}

impl Front {
    /// The file reload reads.
    pub fn app_routes_file(&self) -> std::path::PathBuf {
        self.routes_file.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(&self.client, "GET", &self.url(path), headers, "").await
    }

    /// A token of ours: `aud`, scope; encrypted when the audience says so.
    pub fn token(&self, audience: &str, scope: &[&str]) -> String {
        self.grant(Grant::new(ISSUER, "client-1", "user-1", audience).scope(scope.iter().copied()))
    }

    pub fn grant(&self, mut grant: Grant) -> String {
        if let Some(a) = self
            .service
            .settings()
            .audiences
            .iter()
            .find(|a| a.id == grant.audience)
        {
            if a.encrypt.is_some() {
                grant = grant.encrypt(oauth::EncryptTo::Own);
            }
        }
        oauth::mint(&self.service.ring(), &grant, store::unix_now())
            .unwrap()
            .token
    }

    /// Mints and records (so it can be revoked); returns token and jti.
    pub async fn recorded(&self, audience: &str, scope: &[&str]) -> (String, String) {
        let grant = Grant::new(ISSUER, "client-1", "user-1", audience).scope(scope.iter().copied());
        let minted = oauth::mint(&self.service.ring(), &grant, store::unix_now()).unwrap();
        oauth::record(self.service.store(), &minted, &grant)
            .await
            .unwrap();
        (minted.token, minted.jti)
    }
}

/// Starts a front with `routes` (TOML for `[[routes]]`/`[[issuers]]`) over the test's
/// database, with the harness's audiences; reload reads the routes file again.
pub async fn front(ctx: &Ctx, routes: &str) -> Front {
    front_with(ctx, routes, tokengate::server::Access::default()).await
}

/// [`front`], with the node's bounds of `access` (the admin token is always [`ADMIN`]).
pub async fn front_with(ctx: &Ctx, routes: &str, access: tokengate::server::Access) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let service = Arc::new(
        Service::start(
            ctx.open().await,
            store::MasterKey::from_bytes([9; 32]),
            settings(),
            store::unix_now(),
        )
        .await
        .unwrap(),
    );
    let file = dir.path().join("routes.toml");
    std::fs::write(&file, routes).unwrap();
    let config = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let parts = GatewayParts::new(Arc::clone(&service));
    let gateway = build_gateway(&config, &parts).unwrap_or_else(|e| panic!("{e}"));
    let reload_parts = parts.clone();
    let fingerprints = Arc::clone(&service);
    let reloader: tokengate::server::Reloader = Box::new(move || {
        let (config, text) = Config::load_with_text(&file).map_err(|e| e.to_string())?;
        let gateway = build_gateway(&config, &reload_parts).map_err(|e| e.to_string())?;
        Ok(tokengate::server::Rebuilt {
            gateway,
            fingerprint: fingerprints.fingerprint(text.as_bytes()),
            effective: config.effective(),
        })
    });
    let app = App::with_gateway(
        Arc::clone(&service),
        tokengate::server::Access {
            admin_token: Some(ADMIN.into()),
            ..access
        },
        gateway,
        Some(reloader),
    );
    app.show_configuration(config.effective());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tokengate::server::listener::serve(
        listener,
        Arc::clone(&app),
        None,
        tokengate::config::Timeouts::default(),
        tokengate::server::Surface::All,
        std::future::pending(),
    ));
    Front {
        addr,
        routes_file: dir.path().join("routes.toml"),
        app,
        service,
        client: client(),
        audit_seen: tokio::sync::Mutex::new(0),
        _dir: dir,
    }
}

/// Waits for `condition` to hold, checking every 10 ms, and fails with `what` after 20 s.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the async `condition` to hold, checking every 50 ms, and fails with `what`
/// after 20 s.
pub async fn wait_for_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Front {
    /// The stable code (`ERR_…`) the gateway refused `reply`'s request with, read from the
    /// `gateway.denied` audit tally written since the last call. Denials are tallied per
    /// route, reason and client (`store::AuditQueue::tally`) and written at the interval's
    /// end, so the queue is flushed first; a test checks each refusal before the next.
    pub async fn denial_code(&self, reply: &Reply) -> String {
        let body = reply.json();
        assert!(
            body["request_id"].is_string(),
            "a denial names its request: {body}"
        );
        let events = self.new_audit_events().await;
        let denied: Vec<_> = events
            .iter()
            .filter(|e| e.event.event == "gateway.denied")
            .collect();
        match denied.as_slice() {
            [one] => {
                let count = one.event.detail.as_ref().and_then(|d| d["count"].as_u64());
                assert_eq!(count, Some(1), "one refusal since the last check: {one:?}");
                one.event.reason.clone().unwrap_or_default()
            }
            _ => panic!(
                "expected one gateway.denied tally since the last check: {denied:#?} ({body})"
            ),
        }
    }

    /// Writes the tallies of the refusals made so far and skips them: the next
    /// [`Front::denial_code`] reads only later ones.
    pub async fn forget_denials(&self) {
        self.new_audit_events().await;
    }

    /// The audit events written since the last call, the denials tallied so far first
    /// written (the queue flushed).
    async fn new_audit_events(&self) -> Vec<store::AuditRecord> {
        self.app.gateway().audit().flush().await;
        let mut seen = self.audit_seen.lock().await;
        let events = self
            .service
            .store()
            .audit_events(*seen, u32::MAX)
            .await
            .unwrap();
        if let Some(last) = events.last() {
            *seen = last.id;
        }
        events
    }

    /// Asserts that `reply` is a refusal with `status` for the reason `code`; returns the
    /// `WWW-Authenticate` challenge.
    pub async fn refused(&self, reply: &Reply, status: u16, code: &str) -> String {
        let challenge = reply.challenge(status);
        assert_eq!(self.denial_code(reply).await, code, "{challenge}");
        challenge
    }

    /// A route's upstreams, by route name.
    pub fn upstreams(&self, route: &str) -> Arc<gateway::upstream::Upstreams> {
        let gw = self.app.gateway();
        let r = gw
            .routes()
            .iter()
            .find(|r| r.name == route)
            .unwrap_or_else(|| panic!("no route {route}"));
        Arc::clone(&r.upstreams)
    }
}

/// An address this test owns on which nothing listens: a socket bound to it but never put
/// in the listening state, so connecting is refused and no one else can take the port while
/// the returned socket lives.
pub fn refused_address() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A signing key with a kid, and a token it signs.
pub fn partner_key(kid: &str) -> Jwk {
    Jwk::generate(Algorithm::ES256, None, Some(kid.into())).unwrap()
}

/// A partner's access-token claims: the defaults with `changes` set over them, a `null`
/// there removing the claim.
pub fn partner_claims(iss: &str, changes: &Value) -> Value {
    let mut c = json!({"iss": iss, "sub": "alice", "aud": crate::harness::API, "exp": store::unix_now() + 300, "iat": store::unix_now(), "scope": "read write"});
    let map = c.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    c
}

/// A partner's access token (`typ` at+jwt, the key's `kid`) with [`partner_claims`].
pub fn partner_token(key: &Jwk, iss: &str, changes: Value) -> String {
    crate::harness::signed(
        key,
        &partner_claims(iss, &changes),
        &[("typ", "at+jwt".into()), ("kid", key.kid().unwrap().into())],
    )
}

/// A partner issuer (`name = "partner"`, `https://partner.example`, ES256) with a new key:
/// the key, and the `[[issuers]]` TOML naming its key file (kept for the test's life).
pub fn partner_issuer(kid: &str) -> (Jwk, String) {
    let key = partner_key(kid);
    let dir = tempfile::tempdir().unwrap();
    let file = jwks_file(dir.path(), &[&key]);
    // The key file must outlive the front that reads it on every reload.
    std::mem::forget(dir);
    let toml = format!(
        "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\njwks_file = \"{file}\"\nalgorithms = [\"ES256\"]\n\n"
    );
    (key, toml)
}

pub fn jwks_file(dir: &std::path::Path, keys: &[&Jwk]) -> String {
    let set = JwkSet::new(keys.iter().map(|k| k.to_public().unwrap()).collect()).unwrap();
    let path = dir.join(format!("jwks-{}.json", store::testing::random_hex(4)));
    std::fs::write(&path, Value::Object(set.to_map()).to_string()).unwrap();
    path.display().to_string()
}
