//! Tunnel limits over real upgraded connections (a hyper client and server on loopback):
//! a tunnel ends at its lifetime, at its token's expiry, or on revocation, and not before.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

fn token(expires_at: i64, own: bool) -> Arc<Verified> {
    let text = serde_json::json!({"exp": expires_at, "jti": "j1", "client_id": "c1", "iat": 1})
        .to_string();
    Arc::new(Verified {
        issuer: "self".into(),
        own,
        claims: jose::jwt::Claims::parse(text).unwrap(),
        expires_at,
        not_before: None,
        issued_at: 1,
        scopes: Vec::new(),
        jkt: None,
        internal: Mutex::new(None),
    })
}

/// A 101 switching to WebSocket.
fn switching() -> Response<Empty<Bytes>> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .body(Empty::<Bytes>::new())
        .unwrap()
}

/// A request to switch to WebSocket.
fn upgrade_request() -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .body(Empty::<Bytes>::new())
        .unwrap()
}

/// An upgraded pair: the client's side as the test holds it, and the tunnel's end.
async fn upgraded_pair(
    limits: TunnelLimits,
) -> (
    TokioIo<hyper::upgrade::Upgraded>,
    tokio::task::JoinHandle<TunnelEnd>,
) {
    // The "upstream": answers 101 and echoes.
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = up.accept().await.unwrap();
        let svc =
            hyper::service::service_fn(|mut req: Request<hyper::body::Incoming>| async move {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(on.await.unwrap());
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                Ok::<_, std::convert::Infallible>(switching())
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .with_upgrades()
            .await;
    });
    // The "gateway": takes the client's upgrade, asks the upstream for one, tunnels.
    let gw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_addr = gw.local_addr().unwrap();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let limits = Arc::new(Mutex::new(Some((limits, ended_tx))));
    tokio::spawn(async move {
        let (s, _) = gw.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            let limits = Arc::clone(&limits);
            async move {
                let client_side = hyper::upgrade::on(&mut req);
                let io = TokioIo::new(tokio::net::TcpStream::connect(up_addr).await.unwrap());
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn.with_upgrades());
                let mut response = sender.send_request(upgrade_request()).await.unwrap();
                let upstream_side = hyper::upgrade::on(&mut response);
                let (limits, ended) = limits.lock().unwrap().take().unwrap();
                tokio::spawn(async move {
                    let _ = ended.send(tunnel(client_side, upstream_side, limits).await);
                });
                Ok::<_, std::convert::Infallible>(switching())
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .with_upgrades()
            .await;
    });
    let io = TokioIo::new(tokio::net::TcpStream::connect(gw_addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn.with_upgrades());
    let response = sender.send_request(upgrade_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let client = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    let ended = tokio::spawn(async move { ended_rx.await.unwrap() });
    (client, ended)
}

async fn echoes(client: &mut TokioIo<hyper::upgrade::Upgraded>) -> bool {
    if client.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"ping"
}

#[tokio::test]
async fn a_tunnel_closes_at_its_lifetime() {
    let revocations = Arc::new(Revocations::default());
    let limits = TunnelLimits::new(Duration::from_secs(1), None, &revocations, 0);
    let (mut client, ended) = upgraded_pair(limits).await;
    assert!(echoes(&mut client).await, "open at first");
    let end = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, TunnelEnd::Expired);
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the client's side is closed: {read:?}"
    );
}

#[tokio::test]
async fn a_tunnel_closes_when_its_token_expires_or_is_revoked() {
    let revocations = Arc::new(Revocations::default());
    let now = store::unix_now();
    // Expiry: the token's, shorter than the route's lifetime.
    let limits = TunnelLimits::new(
        Duration::from_secs(3600),
        Some(&token(now + 1, true)),
        &revocations,
        now,
    );
    let (mut client, ended) = upgraded_pair(limits).await;
    assert!(echoes(&mut client).await);
    let end = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, TunnelEnd::Expired);
    // Revocation: noticed within a few seconds.
    let limits = TunnelLimits::new(
        Duration::from_secs(3600),
        Some(&token(now + 3600, true)),
        &revocations,
        now,
    );
    let (mut client, ended) = upgraded_pair(limits).await;
    assert!(echoes(&mut client).await);
    revocations.revoke_jti("j1", now + 3600);
    let end = tokio::time::timeout(REVOCATION_CHECK * 4, ended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, TunnelEnd::Revoked);
}

#[tokio::test(start_paused = true)]
async fn the_lifetime_is_the_shorter_of_the_routes_and_the_tokens() {
    let revocations = Arc::new(Revocations::default());
    let now = tokio::time::Instant::now();
    let limits = TunnelLimits::new(
        Duration::from_secs(60),
        Some(&token(130, true)),
        &revocations,
        100,
    );
    assert_eq!(limits.until - now, Duration::from_secs(30));
    assert!(limits.watched.is_some());
    let limits = TunnelLimits::new(
        Duration::from_secs(60),
        Some(&token(1000, false)),
        &revocations,
        100,
    );
    assert_eq!(limits.until - now, Duration::from_secs(60));
    assert!(
        limits.watched.is_none(),
        "another issuer's revocations are not known here"
    );
    // An expired token (within the route's leeway) gets no tunnel time.
    let limits = TunnelLimits::new(
        Duration::from_secs(60),
        Some(&token(90, true)),
        &revocations,
        100,
    );
    assert_eq!(limits.until, now);
}
