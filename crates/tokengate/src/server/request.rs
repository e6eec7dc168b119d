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
        let mut trace = match exported_context(&span, incoming.as_ref()) {
            Some(ours) => ours,
            None => unexported_context(incoming.as_ref()),
        };
        // A vendor's state belongs to the client's trace: kept only when that goes on.
        if incoming.is_some() {
            trace.tracestate = gateway::trace::tracestate(headers);
        }
        RequestTrace {
            id: request_id_of(headers),
            trace,
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
        let trace_id = self.trace.trace_id_hex();
        crate::log::access_line(&AccessLine {
            timestamp: crate::log::Timestamp,
            level: "INFO",
            target: ACCESS_TARGET,
            request_id: &self.id,
            trace_id: trace_id.as_str(),
            method: self.method.as_str(),
            path: &self.path,
            status,
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            route,
            client_id: info.and_then(|i| i.client_id.as_deref()),
            sub: info.and_then(|i| i.sub.as_deref()),
            token_hash: info.and_then(|i| i.token_hash.as_deref()),
            upstream: info.and_then(|i| i.upstream.as_deref()),
            cache: info.and_then(|i| i.cache),
            denial: info.and_then(|i| i.denial),
            detail: info.and_then(|i| i.detail.as_deref()),
        });
        response
    }

    /// What the gateway needs to know of the request.
    pub fn gateway_context(&self, conn: super::ConnInfo) -> gateway::Context {
        gateway::Context {
            request_id: self.id.clone(),
            peer: conn.peer.map(|p| p.ip()),
            tls: conn.tls,
            trace: self.trace.clone(),
        }
    }
}

/// One access-log line, with the members of the other log lines (tracing-subscriber's JSON:
/// `timestamp`, `level`, `target` and the fields; a field without a value left out).
/// Serialised straight to the log writer rather than through a `tracing` event: the JSON
/// formatter cost the cached gateway path about 4 µs of CPU per request, 7 to 10 % of its
/// throughput in `bench/gateway` (docs/benchmarks.md).
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    timestamp: crate::log::Timestamp,
    level: &'static str,
    target: &'static str,
    request_id: &'a str,
    trace_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denial: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// When spans are exported: the client's trace continued as the span's parent, and the
/// exporter's ids for this node's span. `None` when the span is not exported.
fn exported_context(span: &tracing::Span, incoming: Option<&Incoming>) -> Option<TraceContext> {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    use opentelemetry::trace::{SpanId, TraceId};
    if span.is_disabled() {
        return None;
    }
    // The client's sampled flag goes to the sampler, which follows it only when
    // `trust_client_sampling` is set (crate::log::init).
    if let Some(parent) = incoming {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags & 1),
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
        tracestate: None,
    })
}

/// When spans are not exported, this node records nothing of the trace: the client's
/// `traceparent` goes on with its ids (the upstream's spans then hang off the client's), and
/// without one a new trace starts here. Either way the sampled flag is what this node's
/// sampler would decide ([`crate::log::sampled`]), so `sample_ratio` bounds what upstreams
/// that sample by their parent record, and a client cannot raise it.
fn unexported_context(incoming: Option<&Incoming>) -> TraceContext {
    let (trace_id, span_id) = match incoming {
        Some(parent) => (parent.trace_id, parent.parent_id),
        None => new_trace_ids(),
    };
    TraceContext {
        trace_id,
        span_id,
        flags: u8::from(crate::log::sampled(
            &trace_id,
            incoming.map(Incoming::sampled),
        )),
        tracestate: None,
    }
}

/// A new trace id and span id, for correlation only: [`unique_words`] mixed once more, so
/// they are unique to the request and not the request id's bytes, without a random draw per
/// request (a DRBG draw per request cost the cached path measurably, docs/benchmarks.md run
/// 4). Never zero, which W3C Trace Context calls invalid.
fn new_trace_ids() -> ([u8; 16], [u8; 8]) {
    let [prefix, mixed] = unique_words();
    let high = mix(prefix ^ mixed.rotate_left(32)) | 1;
    let low = mix(mixed ^ 0x9e37_79b9_7f4a_7c15);
    (
        (u128::from(high) << 64 | u128::from(low)).to_be_bytes(),
        (mix(low ^ prefix) | 1).to_be_bytes(),
    )
}

/// The request's id: the client's `X-Request-Id` when it is 1–128 characters of
/// `[A-Za-z0-9._:-]` (safe in logs and headers), a new one otherwise.
fn request_id_of(headers: &HeaderMap) -> String {
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
            let [prefix, mixed] = unique_words();
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_trace_goes_on_with_this_nodes_sampling_when_nothing_is_exported() {
        let trace = |given: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", HeaderValue::from_static(given));
            headers.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
            RequestTrace::start(&Method::GET, "/api/x", &headers).trace
        };
        // The default: every trace sampled, whatever the client's flag said.
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace(sampled).traceparent(), sampled);
        let unsampled = trace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert_eq!(unsampled.traceparent(), sampled);
        assert_eq!(unsampled.tracestate.unwrap(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn without_one_a_new_random_trace_starts() {
        let one = RequestTrace::start(&Method::GET, "/", &HeaderMap::new());
        let two = RequestTrace::start(&Method::GET, "/", &HeaderMap::new());
        assert_ne!(one.trace.trace_id, two.trace.trace_id);
        assert_ne!(
            one.trace.trace_id[..8],
            two.trace.trace_id[..8],
            "mixed, not a counter"
        );
        assert_ne!(one.trace.trace_id, [0; 16]);
        assert_ne!(one.trace.span_id, [0; 8]);
        assert_eq!(one.trace.flags, 1);
        assert_eq!(one.trace.tracestate, None);
        assert_ne!(one.id, two.id);
    }

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123:x.y_z"));
        assert_eq!(request_id_of(&headers), "abc-123:x.y_z");
        headers.insert(REQUEST_ID, HeaderValue::from_static("a b"));
        let replaced = request_id_of(&headers);
        assert_eq!(replaced.len(), 22, "{replaced}");
        assert_ne!(replaced, "a b");
    }
}
