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
        case_sensitive: true,
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
        max_tunnel_lifetime: Duration::from_secs(60),
        rate_limits: Vec::new(),
        max_in_flight: None,
        cors: None,
        cache: None,
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
        "/100%25",
        "/100%25off",
        "/%25zz",
        "/%E2%82%AC",
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
        (
            "/%252e%252e/x",
            "the path has a double-encoded percent-escape",
        ),
        (
            "/a%25%32%65",
            "the path escapes a character that needs no escaping",
        ),
        ("/a%00b", "the path escapes a control character"),
        ("/a%0d%0aX", "the path escapes a control character"),
        ("/a%7f", "the path escapes a control character"),
        (
            "/%c0%ae%c0%ae/x",
            "the path escapes bytes that are not UTF-8 (an overlong or broken sequence)",
        ),
        (
            "/%e0%80%ae",
            "the path escapes bytes that are not UTF-8 (an overlong or broken sequence)",
        ),
        (
            "/%ff",
            "the path escapes bytes that are not UTF-8 (an overlong or broken sequence)",
        ),
        (
            "/caf%C3",
            "the path escapes bytes that are not UTF-8 (an overlong or broken sequence)",
        ),
        (
            "/api/adm%C4%B1n/x",
            "the path has a character an upstream may read as an ASCII one",
        ),
        (
            "/api/%C5%BFecret",
            "the path has a character an upstream may read as an ASCII one",
        ),
        (
            "/a%EF%BC%8F..%EF%BC%8Fadmin",
            "the path has a character an upstream may read as an ASCII one",
        ),
        (
            "/a%3Fadmin=1",
            "the path escapes a character that would end it (? or #)",
        ),
        (
            "/a%23x",
            "the path escapes a character that would end it (? or #)",
        ),
    ] {
        assert_eq!(non_canonical_path(bad), Some(why), "{bad}");
    }
}

#[test]
fn hosts_lose_their_port_brackets_and_final_dot() {
    assert_eq!(strip_port("api.example:8443"), "api.example");
    assert_eq!(strip_port("api.example"), "api.example");
    assert_eq!(strip_port("[::1]:8080"), "::1");
    assert_eq!(strip_port("[::1]"), "::1");
    assert_eq!(route_host("API.Example.:8443"), "api.example");
    assert_eq!(route_host("api.example."), "api.example");
    assert_eq!(route_host("[::1]:1"), "::1");
    assert_eq!(route_host("[0:0::1]:1"), "::1");
    assert_eq!(route_host("[2001:DB8::0001]"), "2001:db8::1");
}

fn authority_of(
    version: http::Version,
    target: &str,
    hosts: &[&str],
) -> Result<Option<String>, &'static str> {
    let mut req = http::Request::get(target).version(version);
    for h in hosts {
        req = req.header("host", *h);
    }
    let (parts, ()) = req.body(()).unwrap().into_parts();
    request_authority(parts.version, &parts.uri, &parts.headers).map(|a| a.map(String::from))
}

#[test]
fn the_authority_follows_rfc_9112_and_9113() {
    use http::Version;
    let ok = |v, t, h: &[&str]| authority_of(v, t, h).unwrap();
    assert_eq!(
        ok(Version::HTTP_11, "/x", &["a.example:1"]).as_deref(),
        Some("a.example:1")
    );
    // The absolute form's authority wins over Host (RFC 9112 §3.2.2).
    assert_eq!(
        ok(Version::HTTP_11, "http://b.example/x", &["a.example"]).as_deref(),
        Some("b.example")
    );
    // h2: `:authority`, and a Host that agrees with it (in any case).
    assert_eq!(
        ok(Version::HTTP_2, "https://b.example/x", &[]).as_deref(),
        Some("b.example")
    );
    assert_eq!(
        ok(Version::HTTP_2, "https://b.example/x", &["B.example"]).as_deref(),
        Some("b.example")
    );
    assert_eq!(
        ok(Version::HTTP_2, "/x", &["c.example"]).as_deref(),
        Some("c.example")
    );
    // HTTP/1.0 may name no host.
    assert_eq!(ok(Version::HTTP_10, "/x", &[]), None);
    for (v, t, h, why) in [
        (Version::HTTP_11, "/x", &[][..], "the request has no Host"),
        (
            Version::HTTP_11,
            "http://b.example/x",
            &[][..],
            "the request has no Host",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["a.example", "a.example"][..],
            "the request has more than one Host",
        ),
        (
            Version::HTTP_2,
            "https://b.example/x",
            &["a.example"][..],
            "the Host differs from the request's :authority",
        ),
        (
            Version::HTTP_2,
            "/x",
            &[][..],
            "the request has no :authority or Host",
        ),
        (Version::HTTP_11, "/x", &[""][..], "the Host is malformed"),
        (
            Version::HTTP_11,
            "/x",
            &["a b"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["a.example:99999"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["a.example:"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["a..example"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &[".a.example"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["user@a.example"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["[::1"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["[zz::1]"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["[::1]x"][..],
            "the Host is malformed",
        ),
        (
            Version::HTTP_11,
            "/x",
            &["a.example/evil"][..],
            "the Host is malformed",
        ),
    ] {
        assert_eq!(authority_of(v, t, h), Err(why), "{v:?} {t} {h:?}");
    }
    for good in [
        "a.example.",
        "[::1]:8080",
        "[2001:db8::1]",
        "192.0.2.1:80",
        "under_score.example",
    ] {
        assert!(ok(Version::HTTP_11, "/x", &[good]).is_some(), "{good}");
    }
}

fn route_cs(name: &str, path: PathMatch, case_sensitive: bool) -> Route {
    let mut r = route(name, None, path, None);
    r.case_sensitive = case_sensitive;
    r.strip_prefix = None;
    r.add_prefix = None;
    r
}

#[tokio::test]
async fn a_case_insensitive_route_takes_every_spelling_of_its_path() {
    let table = RouteTable::new(vec![
        route_cs("api", PathMatch::Prefix("/api/".into()), true),
        route_cs("admin", PathMatch::Prefix("/api/admin/".into()), false),
        route_cs("health", PathMatch::Exact("/Health".into()), false),
    ])
    .unwrap();
    let get = Method::GET;
    assert_eq!(name(table.find(None, "/api/admin/users", &get)), "admin");
    assert_eq!(name(table.find(None, "/api/ADMIN/users", &get)), "admin");
    assert_eq!(name(table.find(None, "/api/Admin", &get)), "admin");
    assert_eq!(name(table.find(None, "/api/x", &get)), "api");
    // The case-sensitive route keeps its own spelling.
    assert_eq!(name(table.find(None, "/API/x", &get)), "404");
    assert_eq!(name(table.find(None, "/health", &get)), "health");
    assert_eq!(name(table.find(None, "/HEALTH/", &get)), "health");
    // Stripping follows the route's case rule.
    let mut r = route_cs("admin", PathMatch::Prefix("/api/admin/".into()), false);
    r.strip_prefix = Some("/api/admin".into());
    assert_eq!(r.upstream_path("/API/Admin/users"), "/users");
}

#[tokio::test]
async fn routes_equal_but_for_case_overlap_when_either_ignores_case() {
    let err = RouteTable::new(vec![
        route_cs("a", PathMatch::Prefix("/api/".into()), true),
        route_cs("b", PathMatch::Prefix("/API/".into()), false),
    ])
    .unwrap_err();
    assert_eq!(err, OverlappingRoutes("a".into(), "b".into()));
    // Both case-sensitive: two different paths.
    RouteTable::new(vec![
        route_cs("a", PathMatch::Prefix("/api/".into()), true),
        route_cs("b", PathMatch::Prefix("/API/".into()), true),
    ])
    .unwrap();
}

#[tokio::test]
async fn a_prefix_serves_its_own_path_without_the_slash() {
    let table = RouteTable::new(vec![route_cs(
        "mcp",
        PathMatch::Prefix("/mcp/".into()),
        true,
    )])
    .unwrap();
    let get = Method::GET;
    assert_eq!(name(table.find(None, "/mcp", &get)), "mcp");
    assert_eq!(name(table.find(None, "/mcp/x", &get)), "mcp");
    assert_eq!(name(table.find(None, "/mcpx", &get)), "404");
    let mut r = route_cs("mcp", PathMatch::Prefix("/mcp/".into()), true);
    r.strip_prefix = Some("/mcp/".into());
    assert_eq!(r.upstream_path("/mcp"), "/");
    assert_eq!(r.upstream_path("/mcp/x"), "/x");
}
