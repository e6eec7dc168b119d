//! A remote key set against a key server that fails, one that is slow, and one that serves
//! (issue #13, finding 4): failures are backed off instead of fetched per request, no request
//! waits longer than the fetch timeout, and held keys are answered at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::client::new_client;

/// How the test key server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fail,
    Slow,
    Serve,
}

struct KeyServer {
    url: String,
    requests: Arc<AtomicU64>,
    mode: Arc<Mutex<Mode>>,
}

impl KeyServer {
    async fn start(mode: Mode) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let mode = Arc::new(Mutex::new(mode));
        let jwk = jose::Jwk::generate(Algorithm::ES256, None, Some("k1".into()))
            .unwrap()
            .to_public()
            .unwrap();
        let body = format!("{{\"keys\":[{}]}}", jwk.to_json());
        let (count, current) = (Arc::clone(&requests), Arc::clone(&mode));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let mode = *current.lock().unwrap();
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 1024];
                    let _ = socket.read(&mut head).await;
                    let answer = match mode {
                        Mode::Fail => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                        Mode::Slow => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        Mode::Serve => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        KeyServer {
            url,
            requests,
            mode,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn remote(&self, timeout: Duration) -> Arc<RemoteJwks> {
        Arc::new(RemoteJwks::new(
            RemoteSource::Jwks(self.url.clone()),
            new_client(Duration::from_secs(1), false).unwrap(),
            RemoteOptions {
                default_max_age: Duration::from_secs(600),
                cooldown: Duration::from_secs(30),
                timeout,
            },
        ))
    }
}

fn has_k1(keys: &JwkSet) -> bool {
    keys.keys().iter().any(|k| k.kid() == Some("k1"))
}

#[tokio::test]
async fn a_failing_key_server_is_asked_once_per_backoff_not_per_request() {
    let server = KeyServer::start(Mode::Fail).await;
    let remote = server.remote(Duration::from_secs(5));
    for _ in 0..200 {
        let err = remote.keys().await.unwrap_err();
        assert!(matches!(err, FetchError::Status { .. }), "{err}");
    }
    assert_eq!(server.requests(), 1, "200 requests, one fetch");
    assert_eq!(remote.fetches("i").failures, 1);
    // After the backoff (1 s after the first failure) one more, and it serves now.
    server.set(Mode::Serve);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let keys = remote.keys().await.unwrap();
    assert!(has_k1(&keys));
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_slow_key_server_holds_no_request_past_the_fetch_timeout() {
    let server = KeyServer::start(Mode::Slow).await;
    let remote = server.remote(Duration::from_secs(1));
    let started = Instant::now();
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let remote = Arc::clone(&remote);
            tokio::spawn(async move { remote.keys().await })
        })
        .collect();
    for request in waiting {
        let err = request.await.unwrap().unwrap_err();
        assert!(matches!(err, FetchError::TimedOut { .. }), "{err}");
    }
    // Generous against a slow machine; the server would hold them 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests(), 1, "one fetch for twenty requests");
    // During the backoff the failure is answered without waiting.
    let again = Instant::now();
    assert!(remote.keys().await.is_err());
    assert!(again.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn held_keys_are_answered_at_once_while_a_slow_refresh_runs() {
    let server = KeyServer::start(Mode::Serve).await;
    let remote = server.remote(Duration::from_secs(2));
    remote.keys().await.unwrap();
    // `max-age=0` is clamped to 30 s; expire the keys by hand rather than wait.
    remote.cached().expires = Some(Instant::now());
    server.set(Mode::Slow);
    let started = Instant::now();
    for _ in 0..50 {
        assert!(has_k1(&remote.keys().await.unwrap()));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A token with a kid the held set lacks waits for the refresh (a rotation is how new
    // kids appear), but no longer than the fetch timeout; then the held keys.
    let started = Instant::now();
    assert!(has_k1(&remote.refetch_for_unknown_kid().await.unwrap()));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests(), 2, "one refresh, not one per request");
}

#[test]
fn backoff_doubles_up_to_the_cooldown() {
    let cap = Duration::from_secs(30);
    let waits: Vec<u64> = (1..=7).map(|n| backoff(n, cap).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(backoff(u32::MAX, cap), cap);
    assert_eq!(backoff(1, Duration::ZERO), Duration::from_secs(1));
}

#[test]
fn metadata_names_the_issuer_and_an_https_key_set() {
    let doc = |issuer: &str, uri: &str| format!(r#"{{"issuer":"{issuer}","jwks_uri":"{uri}"}}"#);
    let at = "https://idp.example/.well-known/openid-configuration";
    let of = |body: String| jwks_uri_of(body.as_bytes(), "https://idp.example", at);
    assert_eq!(
        of(doc("https://idp.example", "https://idp.example/jwks")).unwrap(),
        "https://idp.example/jwks"
    );
    assert_eq!(
        of(doc("https://idp.example", "http://127.0.0.1:9/jwks")).unwrap(),
        "http://127.0.0.1:9/jwks"
    );
    for refused in [
        doc("https://other.example", "https://idp.example/jwks"),
        doc("https://idp.example", "http://idp.example/jwks"),
        doc("https://idp.example", "ftp://idp.example/jwks"),
        r#"{"issuer":"https://idp.example"}"#.to_owned(),
        "not json".to_owned(),
    ] {
        assert!(
            matches!(of(refused.clone()), Err(FetchError::BadDocument { .. })),
            "{refused}"
        );
    }
}
