//! The route phase without sockets: canonical paths, authorities, and the route table's
//! choice (host before none, exact before prefix, longest prefix, 405 with the methods).

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::*;
use crate::client::new_client;
use crate::upstream::{TargetUrl, Upstreams};

fn route(name: &str, host: Option<&str>, path: PathMatch, methods: Option<Vec<Method>>) -> Route {
    let client = new_client(Duration::from_secs(1), false).unwrap();
    let target = TargetUrl::parse("http://127.0.0.1:9").unwrap();
    Route {
        name: name.into(),
        host: host.map(String::from),
        path,
        methods,
        strip_prefix: Some("/api".into()),
        add_prefix: Some("/v1/".into()),
        request_headers: HeaderRewrite::default(),
        response_headers: HeaderRewrite::default(),
        auth: None,
        mcp: None,
        upstreams: Arc::new(
            Upstreams::new(vec![target], client, Duration::from_secs(1), None).unwrap(),
        ),
        max_body: 10,
    }
}

fn name(m: Matched<'_>) -> String {
    match m {
        Matched::Route(r) => r.name.clone(),
        Matched::MethodNotAllowed(allowed) => format!("405 {allowed:?}"),
        Matched::None => "404".into(),
    }
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let table = RouteTable::new(vec![
        route("api", None, PathMatch::Prefix("/api/".into()), None),
        route("admin", None, PathMatch::Prefix("/api/admin/".into()), None),
        route(
            "status",
            None,
            PathMatch::Exact("/api/status".into()),
            Some(vec![Method::GET]),
        ),
        route(
            "hosted",
            Some("a.example"),
            PathMatch::Prefix("/api/".into()),
            None,
        ),
    ])
    .unwrap();
    let get = Method::GET;
    assert_eq!(name(table.find(None, "/api/x", &get)), "api");
    assert_eq!(name(table.find(None, "/api/admin/x", &get)), "admin");
    assert_eq!(name(table.find(None, "/api/status", &get)), "status");
    assert_eq!(name(table.find(None, "/api/status/", &get)), "status");
    assert_eq!(
        name(table.find(Some("a.example"), "/api/admin/x", &get)),
        "hosted"
    );
    assert_eq!(
        name(table.find(Some("A.EXAMPLE"), "/api/x", &get)),
        "hosted"
    );
    assert_eq!(name(table.find(Some("b.example"), "/api/x", &get)), "api");
    assert_eq!(name(table.find(None, "/other", &get)), "404");
    // The exact route does not serve POST, but the prefix route under it does.
    assert_eq!(name(table.find(None, "/api/status", &Method::POST)), "api");
}

#[tokio::test]
async fn a_method_no_route_serves_is_405_with_the_allowed_ones() {
    let table = RouteTable::new(vec![route(
        "read",
        None,
        PathMatch::Prefix("/r/".into()),
        Some(vec![Method::GET, Method::HEAD]),
    )])
    .unwrap();
    assert_eq!(
        name(table.find(None, "/r/x", &Method::DELETE)),
        "405 [GET, HEAD]"
    );
}

#[tokio::test]
async fn overlapping_routes_are_refused() {
    let err = RouteTable::new(vec![
        route(
            "a",
            None,
            PathMatch::Prefix("/x/".into()),
            Some(vec![Method::GET]),
        ),
        route("b", None, PathMatch::Prefix("/x/".into()), None),
    ])
    .unwrap_err();
    assert_eq!(err, OverlappingRoutes("a".into(), "b".into()));
    assert_eq!(
        err.to_string(),
        "routes \"a\" and \"b\" overlap: same host, path and methods"
    );
}

#[tokio::test]
async fn the_upstream_path_swaps_the_prefixes() {
    let r = route("api", None, PathMatch::Prefix("/api/".into()), None);
    assert_eq!(r.upstream_path("/api/things"), "/v1/things");
    assert_eq!(r.upstream_path("/api"), "/v1/");
    assert_eq!(r.upstream_path("/elsewhere"), "/v1/elsewhere");
}

#[test]
fn only_the_canonical_spelling_of_a_path_passes() {
    for ok in [
        "/",
        "/api/x",
        "/a%20b",
        "/caf%C3%A9",
        "/x.y/z",
        "/...",
        "/a%2Bb",
    ] {
        assert_eq!(non_canonical_path(ok), None, "{ok}");
    }
    for (bad, why) in [
        ("/a/../b", "the path has dot segments"),
        ("/a/.", "the path has dot segments"),
        ("/a//b", "the path has an empty segment"),
        ("/a;b", "the path has a backslash or a semicolon"),
        ("/a\\b", "the path has a backslash or a semicolon"),
        (
            "/%2e%2E/x",
            "the path escapes a character that needs no escaping",
        ),
        (
            "/a%2fb",
            "the path escapes a character that needs no escaping",
        ),
        (
            "/%7e",
            "the path escapes a character that needs no escaping",
        ),
        ("/%zz", "the path has a malformed percent-escape"),
        ("/%4", "the path has a malformed percent-escape"),
    ] {
        assert_eq!(non_canonical_path(bad), Some(why), "{bad}");
    }
}

#[test]
fn hosts_lose_their_port_and_keep_ipv6_brackets_off() {
    assert_eq!(strip_port("api.example:8443"), "api.example");
    assert_eq!(strip_port("api.example"), "api.example");
    assert_eq!(strip_port("[::1]:8080"), "::1");
    assert_eq!(strip_port("[::1]"), "::1");
    let req = http::Request::get("/x")
        .header("host", "a.example:1")
        .body(())
        .unwrap();
    assert_eq!(
        authority(&req.into_parts().0).as_deref(),
        Some("a.example:1")
    );
    let h2 = http::Request::get("https://b.example/x").body(()).unwrap();
    assert_eq!(authority(&h2.into_parts().0).as_deref(), Some("b.example"));
}
