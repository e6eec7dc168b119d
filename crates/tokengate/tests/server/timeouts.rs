//! `[server.timeouts]` against the real binary over raw sockets: a connection that sends
//! nothing, an HTTP/2 connection left idle after its preface, an HTTP/1 keep-alive connection
//! left idle, and a request body that stops coming are each closed (issue #13, finding 1).
//! Deadlines are set to seconds here; the assertions wait far longer, so that a slow machine
//! cannot fail them, and only check that the connection ended and how. `head` is longer than
//! the test's patience, so hyper's own head timer cannot be what closes a connection here;
//! h2 pings come every second, so answered or not they must not keep a connection open.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::process::{log_lines, start, Server, Upstream, MASTER};

/// Far past every deadline the tests set.
const PATIENCE: Duration = Duration::from_secs(20);

fn server(dir: &std::path::Path, upstream: &Upstream) -> Server {
    let config = format!(
        "[server]\ndata_dir = \"data\"\n[server.timeouts]\nfirst_byte = 1\nhead = 30\nbody = 1\nidle = 2\nh2_ping_interval = 1\nh2_ping_timeout = 1\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{}\"]\nauth = \"none\"\n",
        upstream.addr
    );
    std::fs::write(dir.join("t.toml"), config).unwrap();
    start(dir, Some(MASTER), &["serve", "--config", "t.toml"])
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Everything the server sends until it closes the connection; panics if it is still open
/// after [`PATIENCE`].
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("connection still open after {PATIENCE:?} ({e}); got {received:?}"),
        }
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(false);
    let server = server(dir.path(), &upstream);
    let mut silent = connect(&server);
    assert_eq!(read_until_closed(&mut silent), b"");
}

#[test]
fn an_http2_connection_idle_after_its_preface_is_sent_goaway_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(false);
    let server = server(dir.path(), &upstream);
    let mut h2 = connect(&server);
    // The client preface and an empty SETTINGS frame (RFC 9113 §3.4), then no request. The
    // server's pings (one a second here) are answered, as every HTTP/2 client does: they
    // must not keep the unused connection open.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    h2.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap();
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match h2.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection still open after {PATIENCE:?} ({e}); frames {seen:?}"),
        };
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 9 {
            let length = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + length {
                break;
            }
            let (kind, flags) = (pending[3], pending[4]);
            seen.push(kind);
            if kind == 0x6 && flags & 0x1 == 0 {
                // PING ACK with the same payload.
                let mut ack = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
                ack.extend_from_slice(&pending[9..9 + length]);
                let _ = h2.write_all(&ack);
            }
            pending.drain(..9 + length);
        }
    }
    assert!(
        seen.contains(&0x7),
        "no GOAWAY before the close: frame types {seen:?}"
    );
    assert!(
        seen.iter().filter(|&&k| k == 0x6).count() >= 2,
        "the pings were answered for a while before the close: {seen:?}"
    );
}

#[test]
fn a_streamed_response_that_goes_quiet_longer_than_idle_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(true);
    let server = server(dir.path(), &upstream);
    let mut conn = connect(&server);
    conn.write_all(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (_, held) = upstream.next();
    let mut held = held.unwrap();
    held.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst \r\n")
        .unwrap();
    // Quiet for twice `idle`, with the response still going.
    std::thread::sleep(Duration::from_secs(4));
    held.write_all(b"4\r\nlast\r\n0\r\n\r\n").unwrap();
    let received = String::from_utf8(read_until_closed(&mut conn)).unwrap();
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
    assert!(
        received.contains("first ") && received.ends_with("last\r\n0\r\n\r\n"),
        "the whole stream, then the close: {received:?}"
    );
}

#[test]
fn an_idle_http1_keep_alive_connection_is_closed_after_its_response() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(false);
    let server = server(dir.path(), &upstream);
    let mut conn = connect(&server);
    conn.write_all(b"GET /api/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let received = String::from_utf8(read_until_closed(&mut conn)).unwrap();
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
    assert!(
        received.ends_with("ok"),
        "one response, then the close: {received}"
    );
}

#[test]
fn a_request_body_that_stops_coming_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    // The upstream reads the head and waits: the gateway streams the body to it as it comes.
    let upstream = Upstream::start(true);
    let mut server = server(dir.path(), &upstream);
    let mut conn = connect(&server);
    conn.write_all(
        b"POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nten bytes.",
    )
    .unwrap();
    let received = String::from_utf8(read_until_closed(&mut conn)).unwrap();
    assert!(received.starts_with("HTTP/1.1 408 "), "{received}");
    assert!(received.contains("request_timeout"), "{received}");
    let log = log_lines(&server.stop());
    assert!(
        log.iter()
            .any(|l| l["status"] == 408 && l["path"] == "/api/upload"),
        "access line of the 408: {log:?}"
    );
}
