//! Accepting connections: TCP, optionally TLS (rustls with the aws-lc-rs provider, ALPN h2 and
//! http/1.1), HTTP/1.1 and h2 with upgrades, a deadline on every phase of a connection
//! (`[server.timeouts]`: first byte, TLS handshake, request head, body progress, idleness, h2
//! pings), and graceful shutdown (in-flight requests finish, up to a deadline).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use gateway::deadline::BodyDeadline;
use gateway::metrics::Shed;
use gateway::shed::InFlightLimit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::{self, Activity, Closable, Deadlines, Tracked, Watched};
use super::{App, ConnInfo, Surface};
use crate::config::Timeouts;

/// Largest request head accepted (431 beyond it).
const MAX_HEAD: usize = 64 * 1024;

/// Loads the TLS certificate chain and private key (PEM) into a server configuration.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `surface` of `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to `[server] shutdown_timeout`): token-service, admin and metrics paths
/// through the router, gateway traffic straight to the gateway. Every phase of a connection has a deadline
/// (`timeouts`; docs/configuration.md `[server.timeouts]`).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: Timeouts,
    surface: Surface,
    shutdown: impl Future<Output = ()>,
) {
    let router = super::surface_router(Arc::clone(&app), surface);
    let builder = Arc::new(protocols(&timeouts));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    // Per listener; the admin listener is not bounded, so operators can still reach it.
    let open = app
        .max_connections
        .filter(|_| surface != Surface::Admin)
        .map(InFlightLimit::new);
    // Connections being told 503: a few at a time; past that they are closed at once, so a
    // flood of connections cannot hold descriptors through their refusals.
    let refusing = InFlightLimit::new(REFUSING_AT_ONCE);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let place = match open.as_ref().map(InFlightLimit::try_enter) {
            Some(None) => {
                app.gateway().metrics().shed(None, Shed::Connections);
                if let (None, Some(place)) = (&acceptor, refusing.try_enter()) {
                    connections.spawn(refuse_connection(stream, place));
                }
                continue;
            }
            Some(Some(place)) => Some(place),
            None => None,
        };
        let accepted = Accepted {
            info: ConnInfo {
                peer: Some(peer),
                tls: acceptor.is_some(),
            },
            app: Arc::clone(&app),
            router: router.clone(),
            builder: Arc::clone(&builder),
            timeouts,
            surface,
            stopping: stopping.clone(),
        };
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            // The connection's place is given back when it ends.
            let _place = place;
            match acceptor {
                None => accepted.serve(stream).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(tls)) = tokio::time::timeout(timeouts.handshake, handshake).await {
                        accepted.serve(tls).await;
                    }
                }
            }
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    // Connections close gracefully within the drain time (connection::watch); this bound is
    // for the tasks themselves.
    let _ = tokio::time::timeout(timeouts.drain + Duration::from_secs(1), connections.wait()).await;
}

/// Plain connections past `[server] max_connections` told 503 at once, at most.
const REFUSING_AT_ONCE: usize = 64;

/// A plain connection past `[server] max_connections`: told 503 with `Retry-After` (written
/// before reading the request, then what the client sent is read for a moment so that
/// closing does not reset the connection before the answer is read). A TLS one is closed
/// by the caller without a word, since answering would first take a handshake, the work
/// being shed.
async fn refuse_connection(mut stream: tokio::net::TcpStream, _place: gateway::shed::Permit) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 70\r\nconnection: close\r\n\r\n{\"error\":\"overloaded\",\"error_description\":\"too many open connections\"}";
    let linger = async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(200), linger).await;
}

/// HTTP/1.1 and h2, with the deadlines hyper keeps itself: the HTTP/1 request head (which
/// also bounds how long an HTTP/1 connection waits for its next request) and the h2 pings.
fn protocols(timeouts: &Timeouts) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.head)
        .max_buf_size(MAX_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(timeouts.h2_ping_interval)
        .keep_alive_timeout(timeouts.h2_ping_timeout)
        .max_header_list_size(MAX_HEAD as u32);
    builder
}

/// An accepted connection and what serving it takes.
struct Accepted {
    info: ConnInfo,
    app: Arc<App>,
    router: axum::Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    timeouts: Timeouts,
    surface: Surface,
    stopping: CancellationToken,
}

impl Accepted {
    /// Serves the connection's requests until it ends or a deadline closes it.
    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let Accepted {
            info,
            app,
            router,
            builder,
            timeouts,
            surface,
            stopping,
        } = self;
        let requests = Arc::clone(&activity);
        let body_timeout = timeouts.body;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = Arc::clone(&app);
            let router = router.clone();
            // In flight until the response body ends (`Tracked`): idleness starts after it.
            let in_flight = requests.request();
            // The node's bound: past it, 503 at once rather than a queue (the admin
            // listener is not bounded, so operators can still reach it).
            let permit = match app.in_flight.as_ref().filter(|_| surface != Surface::Admin) {
                None => Ok(None),
                Some(limit) => limit.try_enter().map(Some).ok_or(()),
            };
            async move {
                let Ok(permit) = permit else {
                    let response = super::shed_request(&app, &req);
                    return Ok(response.map(|body| Tracked::new(body, (in_flight, None))));
                };
                // The admin listener has no gateway: all of it is the router's.
                let service_path =
                    surface == Surface::Admin || super::is_service_path(req.uri().path());
                let response = if service_path {
                    // The token service's and admin API's bodies are small forms and JSON
                    // documents: the whole of one must come within `body`, so a client
                    // cannot keep a request open by sending a byte now and then.
                    let mut req = req.map(|body| {
                        BodyDeadline::new(body, body_timeout).whole_within(body_timeout)
                    });
                    req.extensions_mut().insert(info);
                    router.oneshot(req.map(axum::body::Body::new)).await
                } else {
                    // Each piece of a gateway body within `body` of the one before; the
                    // route's `timeout` bounds the whole exchange.
                    let req = req.map(|body| BodyDeadline::new(body, body_timeout));
                    Ok(super::gateway_request(&app, info, req).await)
                };
                response.map(|r| r.map(|body| Tracked::new(body, (in_flight, permit))))
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Watched::new(stream, Arc::clone(&activity))),
                service,
            )
            .into_owned();
        let deadlines = Deadlines {
            first_byte: timeouts.first_byte,
            head: timeouts.head,
            idle: timeouts.idle,
            drain: timeouts.drain,
            settle: timeouts.h2_ping_timeout,
        };
        let (close, closed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(connection::serve_until_closed(conn, closed));
        let ended =
            connection::watch(&activity, deadlines, stopping.cancelled(), close, task).await;
        if ended != connection::Ended::Done {
            tracing::debug!(peer = ?info.peer, ?ended, "connection closed by a deadline");
        }
    }
}

impl<I, S, E> Closable for auto::UpgradeableConnection<'_, I, S, E>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + Send + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn close_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
