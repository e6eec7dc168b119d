//! The rewrite phase's header rules without sockets.

use super::*;

use crate::test_headers::{headers, names};

#[test]
fn hop_by_hop_fields_and_those_connection_names_go() {
    let mut h = headers(&[
        ("connection", "x-private, Keep-Alive"),
        ("connection", "x-other"),
        ("x-private", "1"),
        ("x-other", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("proxy-authorization", "Basic x"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "h2c"),
        ("x-public", "1"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(names(&h), ["x-public"]);
}

#[test]
fn a_protocol_switch_keeps_upgrade_only() {
    let mut h = headers(&[
        ("connection", "Upgrade, x-private"),
        ("upgrade", "websocket"),
        ("x-private", "1"),
    ]);
    assert!(is_websocket(&h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(names(&h), ["connection", "upgrade"]);
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["upgrade"], "websocket");
}

#[test]
fn only_websocket_counts_as_an_upgrade() {
    assert!(is_websocket(&headers(&[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", " WebSocket "),
    ])));
    assert!(!is_websocket(&headers(&[
        ("connection", "upgrade"),
        ("upgrade", "h2c"),
    ])));
    assert!(!is_websocket(&headers(&[("upgrade", "websocket")])));
}

#[test]
fn a_declared_length_is_read_strictly() {
    assert_eq!(
        content_length(&headers(&[("content-length", "42")])),
        Some(42)
    );
    assert_eq!(content_length(&headers(&[("content-length", "4x")])), None);
    assert_eq!(content_length(&HeaderMap::new()), None);
}
