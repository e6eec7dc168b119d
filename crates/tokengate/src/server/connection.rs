//! One client connection's deadlines, beside the ones hyper keeps (HTTP/1 head, HTTP/2 ping):
//! the first byte, and idleness. The socket is wrapped so that the first byte read is seen;
//! the service counts the exchanges in flight, each from its request to the end of its
//! response body ([`Tracked`]); a watchdog beside the connection closes it when a deadline
//! passes. Idleness is measured from the last exchange, not from the last byte: HTTP/2 pings
//! (which peers answer by themselves) must not keep an unused connection open.
//! `[server.timeouts]` sets the deadlines.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the watchdog needs to know of a connection: shared by its socket wrapper, its
/// service and the watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last exchange's start or end.
    last_ms: AtomicU64,
    /// Whether any byte was read.
    read_any: AtomicBool,
    /// Exchanges from their request to the end of their response body.
    in_flight: AtomicUsize,
    /// Whether an exchange ever started (before one has, `head` bounds idleness too).
    served: AtomicBool,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Counts an exchange in flight until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.touch();
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// An exchange in flight on its connection (see [`Activity::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The response is over: the connection has been in use until now.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that reports its first byte to [`Activity`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && !self.activity.read_any.load(Ordering::Relaxed) {
            self.activity.read_any.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its exchange in flight until its last piece (or until it is
/// dropped), with its place among the node's requests in flight (`[server] max_in_flight`)
/// when there is a bound: a streamed response that goes quiet for a while is still in use.
pub type Tracked<B> = gateway::shed::Held<B, (InFlight, Option<gateway::shed::Permit>)>;

/// The connection's deadlines that hyper does not keep.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accepting to the first byte read.
    pub first_byte: Duration,
    /// Until the first request: sniffing HTTP/1 or h2 and the h2 handshake are not under
    /// hyper's head timer, so a client that sends a byte or a bare preface is held to this.
    pub head: Duration,
    /// With no exchange in progress, from the end of the last one (or the opening).
    pub idle: Duration,
    /// After a graceful close at shutdown starts, how long requests in flight may take to
    /// finish.
    pub drain: Duration,
    /// After an idle connection is asked to close, how long it may take: an HTTP/2 peer
    /// must acknowledge a ping first, and one that never does is cut off after this.
    pub settle: Duration,
}

/// A connection that can be asked to finish its requests in flight and close.
pub trait Closable: Future {
    /// Stops taking requests (HTTP/2: GOAWAY); the future completes once those in flight
    /// are answered.
    fn close_gracefully(self: Pin<&mut Self>);
}

/// Why a connection ended, when the watchdog ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed by its peer or after its last response.
    Done,
    /// Nothing arrived within `first_byte`.
    Silent,
    /// Idle past `idle`: closed gracefully.
    Idle,
    /// The server is shutting down: closed gracefully.
    Shutdown,
}

/// The connection's own task: drives `conn` to its end, closing it gracefully when the
/// watchdog asks (`close`). The watchdog is a task of its own, so a connection's every wake
/// polls the connection and one oneshot receiver, not the watchdog's timer and the shared
/// shutdown signal.
pub async fn serve_until_closed<C: Closable>(conn: C, close: oneshot::Receiver<()>) {
    tokio::pin!(conn);
    tokio::select! {
        biased;
        _ = conn.as_mut() => return,
        asked = close => if asked.is_ok() {
            conn.as_mut().close_gracefully();
        },
    }
    conn.await;
}

/// The watchdog of the connection whose task is `conn`: asks it to close (`close`) when it
/// is idle or the server shuts down (`shutdown`), and ends the task when nothing arrived
/// within `first_byte` or a close takes longer than allowed. Returns when the task has ended.
pub async fn watch(
    activity: &Activity,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
    close: oneshot::Sender<()>,
    mut conn: JoinHandle<()>,
) -> Ended {
    tokio::pin!(shutdown);
    let mut close = Some(close);
    let mut ask_to_close = move || {
        if let Some(close) = close.take() {
            let _ = close.send(());
        }
    };
    let mut closing: Option<(Ended, Instant)> = None;
    loop {
        let check = match closing {
            Some((_, until)) => until,
            None => next_check(activity, deadlines),
        };
        tokio::select! {
            _ = &mut conn => return closing.map_or(Ended::Done, |(why, _)| why),
            () = tokio::time::sleep_until(check) => {
                if let Some((why, until)) = closing {
                    // A request that started while an idle connection was closing (HTTP/2
                    // takes new streams until its last GOAWAY) gets the shutdown drain.
                    if why == Ended::Idle && activity.in_flight.load(Ordering::Relaxed) > 0 {
                        let drained = until.checked_add(deadlines.drain).unwrap_or(until);
                        closing = Some((Ended::Shutdown, drained));
                        continue;
                    }
                    // Requests still running past the drain deadline are cut off.
                    conn.abort();
                    return why;
                }
                if !activity.read_any.load(Ordering::Relaxed) {
                    if activity.opened.elapsed() >= deadlines.first_byte {
                        conn.abort();
                        return Ended::Silent;
                    }
                } else if is_idle(activity, idle_limit(activity, deadlines)) {
                    ask_to_close();
                    closing = Some((Ended::Idle, later(deadlines.settle)));
                }
            }
            () = &mut shutdown, if closing.is_none() => {
                ask_to_close();
                closing = Some((Ended::Shutdown, later(deadlines.drain)));
            }
        }
    }
}

/// `wait` from now (or as far as the clock goes).
fn later(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).unwrap_or(now)
}

/// When the watchdog next looks: the first-byte deadline, the idle deadline, or (a request
/// in flight) one idle period from now.
fn next_check(activity: &Activity, deadlines: Deadlines) -> Instant {
    let after = |at: Instant, wait: Duration| at.checked_add(wait).unwrap_or(at);
    if !activity.read_any.load(Ordering::Relaxed) {
        after(activity.opened, deadlines.first_byte)
    } else if activity.in_flight.load(Ordering::Relaxed) == 0 {
        after(activity.last(), idle_limit(activity, deadlines))
    } else {
        later(deadlines.idle)
    }
}

/// How long the connection may sit unused: `idle`, or the shorter of `idle` and `head`
/// before its first request.
fn idle_limit(activity: &Activity, deadlines: Deadlines) -> Duration {
    if activity.served.load(Ordering::Relaxed) {
        deadlines.idle
    } else {
        deadlines.idle.min(deadlines.head)
    }
}

fn is_idle(activity: &Activity, idle: Duration) -> bool {
    activity.in_flight.load(Ordering::Relaxed) == 0 && activity.last().elapsed() >= idle
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that never ends by itself and ends at once when closed.
    struct Open {
        closed: bool,
    }

    impl Future for Open {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.closed {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Closable for Open {
        fn close_gracefully(mut self: Pin<&mut Self>) {
            self.closed = true;
        }
    }

    const DEADLINES: Deadlines = Deadlines {
        first_byte: Duration::from_secs(10),
        head: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        drain: Duration::from_secs(30),
        settle: Duration::from_secs(10),
    };

    /// The connection's task and its watchdog, as the listener starts them.
    fn started(
        activity: &Arc<Activity>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<Ended> {
        let (close, closed) = oneshot::channel();
        let conn = tokio::spawn(serve_until_closed(Open { closed: false }, closed));
        let activity = Arc::clone(activity);
        tokio::spawn(async move { watch(&activity, DEADLINES, shutdown, close, conn).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_dropped_at_the_first_byte_deadline() {
        let activity = Activity::new();
        let began = Instant::now();
        let ended = started(&activity, std::future::pending()).await.unwrap();
        assert_eq!(ended, Ended::Silent);
        assert_eq!(began.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_connection_is_closed_after_idle_and_a_busy_one_is_not() {
        let activity = Activity::new();
        activity.read_any.store(true, Ordering::Relaxed);
        let request = activity.request();
        let mut watching = started(&activity, std::future::pending());
        // An exchange in flight for five idle periods: the connection stays.
        let busy = tokio::time::timeout(Duration::from_secs(300), &mut watching).await;
        assert!(busy.is_err(), "closed with an exchange in flight");
        drop(request);
        let began = Instant::now();
        assert_eq!(watching.await.unwrap(), Ended::Idle);
        assert_eq!(began.elapsed().as_secs(), 60);
    }

    #[tokio::test]
    async fn a_response_stops_counting_with_its_last_piece_not_when_it_is_read_past() {
        use http_body_util::BodyExt as _;
        let activity = Activity::new();
        let node = gateway::shed::InFlightLimit::new(1);
        let mut body = Tracked::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"token")),
            (activity.request(), node.try_enter()),
        );
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 1);
        assert_eq!(node.current(), 1, "the node's place is held with it");
        // The one piece handed out: a client that never reads it holds nothing.
        let piece = body.frame().await.unwrap().unwrap();
        assert_eq!(piece.into_data().unwrap(), "token");
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(node.current(), 0, "and the node's place with it");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_that_never_become_a_request_are_held_to_head() {
        let activity = Activity::new();
        activity.read_any.store(true, Ordering::Relaxed);
        let began = Instant::now();
        assert_eq!(
            started(&activity, std::future::pending()).await.unwrap(),
            Ended::Idle
        );
        assert_eq!(began.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_gracefully() {
        let activity = Activity::new();
        activity.read_any.store(true, Ordering::Relaxed);
        let _request = activity.request();
        let ended = started(&activity, tokio::time::sleep(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(ended, Ended::Shutdown);
    }
}
