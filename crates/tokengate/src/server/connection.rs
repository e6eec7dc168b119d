//! One client connection's deadlines, beside the ones hyper keeps (HTTP/1 head, HTTP/2 ping):
//! the first byte, and idleness. The socket is wrapped so that every byte read or written
//! marks the connection active; the service marks the requests in flight; a watchdog beside
//! the connection closes it when a deadline passes. `[server.timeouts]` sets them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What the watchdog needs to know of a connection: shared by its socket wrapper, its
/// service and the watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last byte read or written.
    last_ms: AtomicU64,
    /// Whether any byte was read.
    read_any: AtomicBool,
    /// Requests handed to the service whose response head is not ready.
    in_flight: AtomicUsize,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on its connection (see [`Activity::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The response head is out: the connection has been active until now.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that reports its traffic to [`Activity`].
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
        if buf.filled().len() > before {
            self.activity.read_any.store(true, Ordering::Relaxed);
            self.activity.touch();
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
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
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

/// The connection's deadlines that hyper does not keep.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accepting to the first byte read.
    pub first_byte: Duration,
    /// With no request in flight, from the last byte read or written.
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

/// Drives `conn` to its end, closing it when a deadline passes or `shutdown` completes.
pub async fn watch<C: Closable>(
    conn: C,
    activity: &Activity,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) -> Ended {
    tokio::pin!(conn);
    tokio::pin!(shutdown);
    let mut closing: Option<(Ended, Instant)> = None;
    loop {
        let check = match closing {
            Some((_, until)) => until,
            None => next_check(activity, deadlines),
        };
        tokio::select! {
            _ = conn.as_mut() => return closing.map_or(Ended::Done, |(why, _)| why),
            () = tokio::time::sleep_until(check) => {
                if let Some((why, _)) = closing {
                    // Requests still running past the drain deadline are cut off.
                    return why;
                }
                if !activity.read_any.load(Ordering::Relaxed) {
                    if activity.opened.elapsed() >= deadlines.first_byte {
                        return Ended::Silent;
                    }
                } else if is_idle(activity, deadlines.idle) {
                    conn.as_mut().close_gracefully();
                    closing = Some((Ended::Idle, Instant::now() + deadlines.settle));
                }
            }
            () = &mut shutdown, if closing.is_none() => {
                conn.as_mut().close_gracefully();
                closing = Some((Ended::Shutdown, Instant::now() + deadlines.drain));
            }
        }
    }
}

/// When the watchdog next looks: the first-byte deadline, the idle deadline, or (a request
/// in flight) one idle period from now.
fn next_check(activity: &Activity, deadlines: Deadlines) -> Instant {
    if !activity.read_any.load(Ordering::Relaxed) {
        activity.opened + deadlines.first_byte
    } else if activity.in_flight.load(Ordering::Relaxed) == 0 {
        activity.last() + deadlines.idle
    } else {
        Instant::now() + deadlines.idle
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
        idle: Duration::from_secs(60),
        drain: Duration::from_secs(30),
        settle: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_dropped_at_the_first_byte_deadline() {
        let activity = Activity::new();
        let started = Instant::now();
        let ended = watch(
            Open { closed: false },
            &activity,
            DEADLINES,
            std::future::pending(),
        )
        .await;
        assert_eq!(ended, Ended::Silent);
        assert_eq!(started.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_connection_is_closed_after_idle_and_a_busy_one_is_not() {
        let activity = Activity::new();
        activity.read_any.store(true, Ordering::Relaxed);
        let request = activity.request();
        let watching = watch(
            Open { closed: false },
            &activity,
            DEADLINES,
            std::future::pending(),
        );
        tokio::pin!(watching);
        // A request in flight for five idle periods: the connection stays.
        let busy = tokio::time::timeout(Duration::from_secs(300), watching.as_mut()).await;
        assert!(busy.is_err(), "closed with a request in flight");
        drop(request);
        let started = Instant::now();
        assert_eq!(watching.await, Ended::Idle);
        assert_eq!(started.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_gracefully() {
        let activity = Activity::new();
        activity.read_any.store(true, Ordering::Relaxed);
        let _request = activity.request();
        let ended = watch(
            Open { closed: false },
            &activity,
            DEADLINES,
            tokio::time::sleep(Duration::from_secs(1)),
        )
        .await;
        assert_eq!(ended, Ended::Shutdown);
    }
}
