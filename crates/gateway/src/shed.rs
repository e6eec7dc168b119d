//! Load shedding: a bound on what is in flight (requests on a route or on the node,
//! connections on a listener), checked without waiting. Past it the request is answered
//! 503 with `Retry-After` at once: a queue in front of a saturated upstream only makes every
//! request late, and a client told to come back can go to another node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// At most `max` at once; entered without waiting, or not at all.
#[derive(Debug)]
pub struct InFlightLimit {
    max: usize,
    current: AtomicUsize,
}

impl InFlightLimit {
    /// A bound of `max` (at least 1).
    pub fn new(max: usize) -> Arc<InFlightLimit> {
        Arc::new(InFlightLimit {
            max: max.max(1),
            current: AtomicUsize::new(0),
        })
    }

    /// A permit while fewer than `max` are held, `None` otherwise. The permit is given back
    /// when dropped.
    pub fn try_enter(self: &Arc<Self>) -> Option<Permit> {
        // Compare-and-swap rather than add-then-undo: an add past the bound, undone a moment
        // later, would refuse a request that came in between while a place was free.
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()?;
        Some(Permit(Arc::clone(self)))
    }

    /// How many are held now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

/// One place of an [`InFlightLimit`], held until dropped.
#[derive(Debug)]
pub struct Permit(Arc<InFlightLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds something (a [`Permit`], the listener's count of exchanges in
/// flight) until its last piece is handed out, or until it is dropped: a streamed response
/// is in flight until its last byte.
#[derive(Debug)]
pub struct Held<B, T = Permit> {
    body: B,
    held: Option<T>,
}

impl<B, T> Held<B, T> {
    /// `body`, holding `held`.
    pub fn new(body: B, held: T) -> Held<B, T> {
        Held {
            body,
            held: Some(held),
        }
    }
}

impl<B: http_body::Body + Unpin, T: Unpin> http_body::Body for Held<B, T> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        // Given back with the last piece, not when the body is dropped or asked past it: a
        // client that never reads on (h2 window 0, a full socket) must not hold the place,
        // or keep its connection out of the idle deadline's reach, forever.
        let ended = match &polled {
            std::task::Poll::Ready(None | Some(Err(_))) => true,
            std::task::Poll::Ready(Some(Ok(_))) => self.body.is_end_stream(),
            std::task::Poll::Pending => false,
        };
        if ended {
            self.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_bound_and_come_back_when_dropped() {
        let limit = InFlightLimit::new(2);
        let a = limit.try_enter();
        let b = limit.try_enter();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_enter().is_none(), "a third is refused");
        assert_eq!(limit.current(), 2, "a refusal holds nothing");
        drop(a);
        assert!(
            limit.try_enter().is_some(),
            "a dropped permit frees its place"
        );
        drop(b);
        assert_eq!(limit.current(), 0);
    }

    #[test]
    fn a_held_body_keeps_its_permit_until_dropped() {
        let limit = InFlightLimit::new(1);
        let body = Held::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            limit.try_enter().unwrap(),
        );
        assert!(limit.try_enter().is_none());
        drop(body);
        assert!(limit.try_enter().is_some());
    }
}
