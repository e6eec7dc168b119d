//! Forwarding headers from untrusted and trusted peers.

use http::header::{HeaderMap, HeaderValue};

use super::*;

use crate::test_headers::{headers, names};

fn ctx(peer: Option<&str>, tls: bool) -> Context {
    Context {
        request_id: "r".into(),
        peer: peer.map(|p| p.parse().unwrap()),
        tls,
        trace: crate::trace::TraceContext {
            trace_id: [7; 16],
            span_id: [9; 8],
            flags: 1,
            tracestate: None,
        },
    }
}

/// What a client might send to pass for someone else, or to steer a framework's routing.
fn spoofed() -> HeaderMap {
    headers(&[
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-real-ip", "203.0.113.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "admin.internal"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-prefix", "/admin"),
        ("x-original-url", "/admin/users"),
        ("x-rewrite-url", "/admin/users"),
        ("x-http-method-override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-original-uri", "/admin/"),
        ("x-forwarded-ssl", "on"),
        ("true-client-ip", "203.0.113.1"),
        ("forwarded", "for=203.0.113.1"),
    ])
}

#[test]
fn an_untrusted_peer_gets_the_gateways_word_only() {
    let mut h = spoofed();
    forwarded_headers(
        &mut h,
        Some("api.example:8443"),
        &ctx(Some("192.0.2.7"), false),
        false,
    );
    assert_eq!(
        names(&h),
        ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]
    );
    assert_eq!(h["x-forwarded-for"], "192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example:8443");
    // No peer address, no authority: only the scheme is known.
    let mut h = spoofed();
    forwarded_headers(&mut h, None, &ctx(None, true), false);
    assert_eq!(names(&h), ["x-forwarded-proto"]);
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[test]
fn a_trusted_proxy_keeps_its_chain_and_the_peer_is_appended() {
    let mut h = spoofed();
    forwarded_headers(
        &mut h,
        Some("api.example"),
        &ctx(Some("::ffff:10.1.2.3"), false),
        true,
    );
    assert_eq!(
        names(&h),
        [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-real-ip"
        ]
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.1, 10.0.0.1, 10.1.2.3");
    assert_eq!(h["x-real-ip"], "203.0.113.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    // The host is the one the gateway routed on, whoever says otherwise.
    assert_eq!(h["x-forwarded-host"], "api.example");
    // A trusted proxy that sent none: the gateway's own.
    let mut h = HeaderMap::new();
    forwarded_headers(
        &mut h,
        Some("a.example"),
        &ctx(Some("10.1.2.3"), true),
        true,
    );
    assert_eq!(h["x-forwarded-for"], "10.1.2.3");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "a.example");
    // A chain with bytes beyond ASCII keeps them, and gets the peer.
    let mut h = HeaderMap::new();
    h.insert(
        X_FORWARDED_FOR.clone(),
        HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
    );
    forwarded_headers(&mut h, None, &ctx(Some("10.1.2.3"), false), true);
    assert_eq!(
        h["x-forwarded-for"].as_bytes(),
        b"\xff, 203.0.113.9, 10.1.2.3"
    );
}

#[test]
fn trusted_ranges_match_addresses_and_mapped_ipv4() {
    let trusted = TrustedProxies::new(vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ]);
    assert!(trusted.contains(Some("10.200.0.1".parse().unwrap())));
    assert!(trusted.contains(Some("::ffff:10.0.0.9".parse().unwrap())));
    assert!(trusted.contains(Some("2001:db8::5".parse().unwrap())));
    assert!(!trusted.contains(Some("11.0.0.1".parse().unwrap())));
    assert!(!trusted.contains(Some("::ffff:11.0.0.1".parse().unwrap())));
    assert!(!trusted.contains(None));
    assert!(!TrustedProxies::default().contains(Some("10.0.0.1".parse().unwrap())));
}

#[test]
fn the_client_address_is_the_rightmost_untrusted_hop_and_only_behind_a_trusted_proxy() {
    let proxies = TrustedProxies::new(vec![
        "10.0.0.0/8".parse().unwrap(),
        "192.168.1.1/32".parse().unwrap(),
    ]);
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let chain = headers(&[
        ("x-forwarded-for", "198.51.100.7, 203.0.113.1"),
        ("x-forwarded-for", "10.1.1.1"),
    ]);
    // From an untrusted peer the header is the client's own word: the peer it is.
    assert_eq!(
        proxies.client_address(ip("203.0.113.50"), &chain),
        ip("203.0.113.50")
    );
    // From a trusted proxy: past the trusted hops, the first that is not one.
    assert_eq!(
        proxies.client_address(ip("192.168.1.1"), &chain),
        ip("203.0.113.1")
    );
    // A dual-stack listener's mapped address is the IPv4 peer.
    assert_eq!(
        proxies.client_address(ip("::ffff:10.0.0.2"), &chain),
        ip("203.0.113.1")
    );
    // No header: the proxy itself; every hop trusted: the leftmost.
    assert_eq!(
        proxies.client_address(ip("10.0.0.2"), &HeaderMap::new()),
        ip("10.0.0.2")
    );
    let all_trusted = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
    assert_eq!(
        proxies.client_address(ip("10.0.0.2"), &all_trusted),
        ip("10.9.9.9")
    );
    // Garbage stops the walk at the last trusted hop: a client cannot name another address.
    let garbage = headers(&[("x-forwarded-for", "198.51.100.7, not-an-ip, 10.1.1.1")]);
    assert_eq!(
        proxies.client_address(ip("10.0.0.2"), &garbage),
        ip("10.1.1.1")
    );
    // Nobody trusted (the default): always the peer.
    assert_eq!(
        TrustedProxies::default().client_address(ip("10.0.0.2"), &chain),
        ip("10.0.0.2")
    );
}

#[test]
fn forwarded_entries_with_ports_brackets_and_bad_bytes_are_read_one_by_one() {
    let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let peer = ip("10.0.0.2");
    for (header, client) in [
        ("198.51.100.7:5678", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::2]", "2001:db8::2"),
        (" 2001:db8::3 ", "2001:db8::3"),
        ("203.0.113.1, 10.1.1.1:80, 10.2.2.2", "203.0.113.1"),
        ("203.0.113.1,198.51.100.9", "198.51.100.9"),
    ] {
        let h = headers(&[("x-forwarded-for", header)]);
        assert_eq!(proxies.client_address(peer, &h), ip(client), "{header}");
    }
    // A client's non-UTF-8 bytes spoil only its own entry: the real address, appended by the
    // proxy on the same line, is still read.
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.4").unwrap(),
    );
    assert_eq!(proxies.client_address(peer, &h), ip("198.51.100.4"));
    // `unknown` stops the walk at the last trusted hop.
    let h = headers(&[("x-forwarded-for", "unknown, 10.3.3.3")]);
    assert_eq!(proxies.client_address(peer, &h), ip("10.3.3.3"));
}
