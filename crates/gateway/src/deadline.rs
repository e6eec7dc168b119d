//! A request body that must keep coming: each next piece within a deadline of the last
//! (`[server.timeouts] body`), so a client that trickles its body, or stops, cannot hold a
//! connection and an upstream request open forever. The listener wraps every request body;
//! the forward phase turns [`BodyStalled`] into the client's 408.
//!
//! Not tower-http's `TimeoutBody`, which has the same per-piece rule but does not pass on the
//! wrapped body's `is_end_stream` and `size_hint`: behind it a GET looked like a request with
//! a body of unknown length, so it went upstream chunked and was no longer retried.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::client::BoxError;

/// The client sent no more of its request body within the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body stopped coming")]
pub struct BodyStalled;

/// A body whose every next frame must arrive within `wait` of asking for it.
#[derive(Debug)]
pub struct BodyDeadline<B> {
    body: B,
    wait: Duration,
    /// Made on the first wait and reset for each next one (one allocation per body).
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the frame being waited for.
    waiting: bool,
    /// When the whole body must be in, if it must ([`BodyDeadline::whole_within`]).
    whole_by: Option<Instant>,
}

impl<B> BodyDeadline<B> {
    /// Wraps `body`.
    pub fn new(body: B, wait: Duration) -> BodyDeadline<B> {
        BodyDeadline {
            body,
            wait,
            timer: None,
            waiting: false,
            whole_by: None,
        }
    }

    /// Also requires the whole body within `total` from now: for small bodies, which a
    /// client could otherwise keep coming a byte at a time, each within `wait`.
    pub fn whole_within(mut self, total: Duration) -> BodyDeadline<B> {
        self.whole_by = Instant::now().checked_add(total);
        self
    }
}

impl<B> Body for BodyDeadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let next = Instant::now().checked_add(this.wait);
        let deadline = match (next, this.whole_by) {
            (Some(next), Some(whole)) => next.min(whole),
            (Some(at), None) | (None, Some(at)) => at,
            // Further than any clock: no deadline in practice (the body, polled above, will
            // wake the task).
            (None, None) => return Poll::Pending,
        };
        let timer = match &mut this.timer {
            Some(timer) => {
                if !this.waiting {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.waiting = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Full};

    /// A body fed through a channel.
    struct Fed(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx)
        }
    }

    #[test]
    fn the_wrapped_body_s_length_and_end_are_passed_on() {
        let empty = BodyDeadline::new(Full::new(Bytes::new()), Duration::from_secs(1));
        assert!(empty.is_end_stream());
        let sized = BodyDeadline::new(
            Full::new(Bytes::from_static(b"abc")),
            Duration::from_secs(1),
        );
        assert_eq!(sized.size_hint().exact(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_fails_with_body_stalled_after_the_wait() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let mut body = BodyDeadline::new(Fed(rx), Duration::from_secs(30));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // 29 s later the next piece is still in time.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(29)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
                .await
                .unwrap();
            tx
        });
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "b");
        let _tx = sender.await.unwrap();
        let started = Instant::now();
        let stalled = body.frame().await.unwrap().unwrap_err();
        assert!(stalled.is::<BodyStalled>(), "{stalled}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_must_come_whole_within_its_total() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let started = Instant::now();
        let mut body = BodyDeadline::new(Fed(rx), Duration::from_secs(30))
            .whole_within(Duration::from_secs(30));
        // A byte every 20 s: each in time for the per-piece wait, not for the total.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "x");
        let stalled = body.frame().await.unwrap().unwrap_err();
        assert!(stalled.is::<BodyStalled>(), "{stalled}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
