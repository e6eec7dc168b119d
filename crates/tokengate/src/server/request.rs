//! What every request gets, whichever way it comes in (the listener's fast path to the
//! gateway or the router): its id, its place in a trace, a span around its handling, the
//! `X-Request-Id` on its response and its access-log line. Made here only.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use gateway::trace::{Incoming, TraceContext};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::REQUEST_ID;
use crate::log::{ACCESS_TARGET, TRACE_TARGET};

/// One request's identity for logs and traces, made when it arrives.
#[derive(Clone, Debug)]
pub struct RequestTrace {
    /// The request id (the client's `X-Request-Id` when sane).
    pub id: String,
    /// This node's place in the request's trace, sent to the upstream.
    pub trace: TraceContext,
    /// Whether the trace was the client's (its `tracestate` is then forwarded).
    pub continued: bool,
    /// The span the request is handled in (disabled unless traces are exported).
    pub span: tracing::Span,
    method: Method,
    path: String,
    started: Instant,
}

impl RequestTrace {
    /// Starts a request: its id, its trace (the client's `traceparent` continued), its span.
    pub fn start(method: &Method, path: &str, headers: &HeaderMap) -> RequestTrace {
        let incoming = Incoming::from_headers(headers);
        let span = tracing::info_span!(
            target: TRACE_TARGET,
            "request",
            otel.name = method.as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method.as_str(),
            url.path = path,
            http.route = Empty,
            http.response.status_code = Empty,
        );
        // One draw serves the request id and a new trace's ids: all three are for
        // correlation only.
        let fresh = unique_words();
        let trace = match exported_context(&span, incoming.as_ref()) {
            Some(ours) => ours,
            None => unexported_context(incoming.as_ref(), fresh),
        };
        RequestTrace {
            id: request_id_of(headers, fresh),
            trace,
            continued: incoming.is_some(),
            span,
            method: method.clone(),
            path: path.to_owned(),
            started: Instant::now(),
        }
    }

    /// Finishes the request: puts its id on the response, closes its span with the status
    /// and writes its access-log line. Never the query string (it may carry secrets) nor any
    /// header value.
    pub fn finish(self, mut response: Response) -> Response {
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let status = response.status().as_u16();
        let info = response.extensions().get::<::gateway::AccessInfo>();
        let route = info.and_then(|i| i.route.as_deref());
        self.span.record("http.response.status_code", status);
        if let Some(route) = route {
            self.span.record("http.route", route);
        }
        if status >= 500 {
            self.span.record("otel.status_code", "ERROR");
        }
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = self.id.as_str(),
            trace_id = self.trace.trace_id_hex().as_str(),
            method = self.method.as_str(),
            path = self.path.as_str(),
            status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            route,
            client_id = info.and_then(|i| i.client_id.as_deref()),
            sub = info.and_then(|i| i.sub.as_deref()),
            token_hash = info.and_then(|i| i.token_hash.as_deref()),
            upstream = info.and_then(|i| i.upstream.as_deref()),
            denial = info.and_then(|i| i.denial),
            detail = info.and_then(|i| i.detail.as_deref()),
        );
        response
    }

    /// What the gateway needs to know of the request.
    pub fn gateway_context(&self, conn: super::ConnInfo) -> gateway::Context {
        gateway::Context {
            request_id: self.id.clone(),
            peer: conn.peer.map(|p| p.ip()),
            tls: conn.tls,
            trace: self.trace,
            trace_continued: self.continued,
        }
    }
}

/// When spans are exported: the client's trace continued as the span's parent, and the
/// exporter's ids for this node's span. `None` when the span is not exported.
fn exported_context(span: &tracing::Span, incoming: Option<&Incoming>) -> Option<TraceContext> {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    use opentelemetry::trace::{SpanId, TraceId};
    if span.is_disabled() {
        return None;
    }
    if let Some(parent) = incoming {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let context = span.context();
    let ours = context.span().span_context().clone();
    ours.is_valid().then(|| TraceContext {
        trace_id: ours.trace_id().to_bytes(),
        span_id: ours.span_id().to_bytes(),
        flags: ours.trace_flags().to_u8(),
    })
}

/// When spans are not exported, this node records nothing of the trace: the client's
/// `traceparent` goes on as it came (the upstream's spans then hang off the client's), and
/// without one a new trace starts here, marked sampled so that an upstream that samples by
/// its parent records it as it would a trace of its own.
fn unexported_context(incoming: Option<&Incoming>, [high, low]: [u64; 2]) -> TraceContext {
    match incoming {
        Some(parent) => TraceContext {
            trace_id: parent.trace_id,
            span_id: parent.parent_id,
            flags: parent.flags,
        },
        // `low` is unique per request in this process, and so is any bijection of it.
        None => TraceContext {
            trace_id: (u128::from(high) << 64 | u128::from(low)).to_be_bytes(),
            span_id: mix(low).to_be_bytes(),
            flags: 1,
        },
    }
}

/// The request's id: the client's `X-Request-Id` when it is 1–128 characters of
/// `[A-Za-z0-9._:-]` (safe in logs and headers), a new one from `fresh` otherwise.
fn request_id_of(headers: &HeaderMap, [prefix, mixed]: [u64; 2]) -> String {
    let given = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok());
    match given {
        Some(text)
            if !text.is_empty()
                && text.len() <= 128
                && text.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
                }) =>
        {
            text.to_owned()
        }
        _ => {
            let mut raw = [0u8; 16];
            let (a, b) = raw.split_at_mut(8);
            a.copy_from_slice(&prefix.to_le_bytes());
            b.copy_from_slice(&mixed.to_le_bytes());
            jose::b64::encode(raw)
        }
    }
}

/// A per-process random prefix and a counter run through a keyed bijection: unique within
/// the process and, with 64 random bits of prefix, across nodes and restarts, without a
/// random draw per request, and without showing the request count or rate to whoever sees
/// the ids. For correlation (request and trace ids), not security: a failed random
/// generator (zeros) only makes them less unique across processes.
fn unique_words() -> [u64; 2] {
    static KEYS: std::sync::OnceLock<[u64; 3]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let [prefix, k1, k2] = *KEYS.get_or_init(|| {
        let mut raw = [0u8; 24];
        let _ = aws_lc_rs::rand::fill(&mut raw);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(w)
        };
        [word(0), word(1), word(2)]
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    [prefix, mix(mix(n ^ k1) ^ k2)]
}

/// The SplitMix64 finaliser: a bijection on u64 that spreads every input bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_trace_goes_on_unchanged_when_nothing_is_exported() {
        let mut headers = HeaderMap::new();
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        headers.insert("traceparent", HeaderValue::from_static(given));
        let request = RequestTrace::start(&Method::GET, "/api/x", &headers);
        assert!(request.continued);
        assert_eq!(request.trace.traceparent(), given);
    }

    #[test]
    fn without_one_a_new_sampled_trace_starts() {
        let one = RequestTrace::start(&Method::GET, "/", &HeaderMap::new());
        let two = RequestTrace::start(&Method::GET, "/", &HeaderMap::new());
        assert!(!one.continued);
        assert_ne!(one.trace.trace_id, two.trace.trace_id);
        assert_ne!(one.trace.trace_id, [0; 16]);
        assert_ne!(one.trace.span_id, [0; 8]);
        assert_eq!(one.trace.flags, 1);
        assert_ne!(one.id, two.id);
    }

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123:x.y_z"));
        assert_eq!(request_id_of(&headers, unique_words()), "abc-123:x.y_z");
        headers.insert(REQUEST_ID, HeaderValue::from_static("a b"));
        let replaced = request_id_of(&headers, unique_words());
        assert_eq!(replaced.len(), 22, "{replaced}");
        assert_ne!(replaced, "a b");
    }
}
