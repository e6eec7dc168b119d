//! Traces exported over OTLP/HTTP by the real binary, to a collector this test runs: the
//! request's span continues the client's trace, the phases are its children, and the
//! upstream is told the request's span as its parent.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::process::{request, start, Upstream, MASTER, WAIT};

/// A collector: answers every POST 200 and hands over its path and body.
fn collector() -> (String, Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            if tx.send((path, body)).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
#[test]
fn spans_are_exported_and_the_upstream_joins_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (collector, exports) = collector();
    let upstream = Upstream::start(false);
    let config = format!(
        "[server]\ndata_dir = \"data\"\n[telemetry]\notlp_endpoint = \"http://{collector}\"\nservice_name = \"gateway-under-test\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{}\"]\nauth = \"none\"\n",
        upstream.addr
    );
    std::fs::write(d.join("t.toml"), config).unwrap();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let reply = request(
        &server.addr,
        "GET",
        "/api/x",
        &[("traceparent", &format!("00-{trace_id}-{client_span}-01"))],
        None,
    );
    assert_eq!(reply.status, 200);
    let (head, _) = upstream.next();
    let sent = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent upstream: {head}"))
        .to_owned();
    // The spans are batched; stopping the server exports what is left.
    server.stop();
    // One export, or several if a batch timer fired between the spans' ends.
    let mut export = ExportTraceServiceRequest::default();
    let wanted = [
        "GET",
        "route",
        "authenticate",
        "rewrite",
        "forward",
        "respond",
    ];
    while !wanted.iter().all(|w| {
        export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .any(|s| s.name == *w)
    }) {
        let (path, body) = exports
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("not every span exported within {WAIT:?}: {e}: {export:?}"));
        assert_eq!(path, "/v1/traces");
        let more = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        export.resource_spans.extend(more.resource_spans);
    }
    let resource = export.resource_spans[0].resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| a.value.as_ref())
        .map(|v| format!("{:?}", v.value));
    assert!(
        service
            .as_deref()
            .unwrap_or("")
            .contains("gateway-under-test"),
        "{service:?}"
    );
    let spans: Vec<&Span> = export
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:?}"))
    };
    let root = named("GET");
    assert_eq!(hex(&root.trace_id), trace_id, "the client's trace goes on");
    assert_eq!(hex(&root.parent_span_id), client_span);
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", hex(&root.span_id)),
        "the upstream's parent is the request's span"
    );
    for phase in ["route", "authenticate", "rewrite", "forward", "respond"] {
        let span = named(phase);
        assert_eq!(hex(&span.trace_id), trace_id, "{phase}");
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{phase} is the request's child"
        );
    }
    assert!(
        !spans.iter().any(|s| s.name == "authorize"),
        "a route without token rules has no claims to authorize"
    );
}
