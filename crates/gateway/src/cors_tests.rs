//! Preflights and actual responses for allowed, disallowed and `null` origins.

use super::*;

fn policy(origins: AllowOrigins, credentials: bool) -> Cors {
    Cors {
        allow_origins: origins,
        allow_methods: vec![Method::GET, Method::POST],
        allow_headers: vec![
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("dpop"),
        ],
        expose_headers: vec![
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("ratelimit"),
        ],
        max_age: Duration::from_secs(600),
        allow_credentials: credentials,
    }
}

fn app() -> Cors {
    policy(AllowOrigins::List(vec!["https://app.example".into()]), true)
}

fn preflight_headers(origin: &str, method: &str, requested: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
    h.insert(&REQUEST_METHOD, HeaderValue::from_str(method).unwrap());
    if !requested.is_empty() {
        h.insert(&REQUEST_HEADERS, HeaderValue::from_str(requested).unwrap());
    }
    h
}

#[test]
fn only_an_options_with_origin_and_a_requested_method_is_a_preflight() {
    let h = preflight_headers("https://app.example", "POST", "");
    assert_eq!(preflight_method(&Method::OPTIONS, &h), Some(Method::POST));
    assert_eq!(preflight_method(&Method::GET, &h), None);
    let mut no_origin = h.clone();
    no_origin.remove(header::ORIGIN);
    assert_eq!(preflight_method(&Method::OPTIONS, &no_origin), None);
    assert_eq!(preflight_method(&Method::OPTIONS, &HeaderMap::new()), None);
}

#[test]
fn an_allowed_preflight_gets_what_the_policy_allows() {
    let h = preflight_headers(
        "https://app.example",
        "POST",
        "Authorization, content-type,DPoP",
    );
    let r = app().preflight(&h, &Method::POST);
    assert_eq!(r.status(), 204);
    let got = |n: &HeaderName| r.headers().get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        got(&header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example"
    );
    assert_eq!(got(&header::ACCESS_CONTROL_ALLOW_METHODS), "GET, POST");
    assert_eq!(
        got(&header::ACCESS_CONTROL_ALLOW_HEADERS),
        "authorization, content-type, dpop"
    );
    assert_eq!(got(&header::ACCESS_CONTROL_MAX_AGE), "600");
    assert_eq!(got(&header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "true");
    assert!(got(&header::VARY).contains("origin"));
}

#[test]
fn a_disallowed_origin_method_or_header_gets_no_cors_field() {
    for (origin, method, requested) in [
        ("https://evil.example", "POST", ""),
        ("null", "GET", ""),
        ("https://app.example.evil", "GET", ""),
        ("HTTPS://APP.EXAMPLE", "GET", ""),
        ("https://app.example", "DELETE", ""),
        ("https://app.example", "PUT", ""),
        ("https://app.example", "GET", "x-secret"),
    ] {
        let h = preflight_headers(origin, method, requested);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = app().preflight(&h, &m);
        assert_eq!(r.status(), 403, "{origin} {method} {requested}");
        assert!(
            !r.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{origin} {method} {requested}"
        );
    }
}

#[test]
fn actual_responses_name_an_allowed_origin_only_and_drop_the_upstreams_fields() {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    let origin = HeaderValue::from_static("https://app.example");
    app().decorate(Some(&origin), &mut h);
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert_eq!(
        h[header::ACCESS_CONTROL_EXPOSE_HEADERS],
        "www-authenticate, ratelimit"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::VARY], "origin");

    let mut h = HeaderMap::new();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    app().decorate(
        Some(&HeaderValue::from_static("https://evil.example")),
        &mut h,
    );
    assert!(
        !h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "the upstream's `*` is not passed"
    );
    assert_eq!(h[header::VARY], "origin");

    let mut h = HeaderMap::new();
    app().decorate(None, &mut h);
    assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[test]
fn any_origin_is_a_static_star_without_credentials() {
    let any = policy(AllowOrigins::Any, false);
    for origin in [Some(HeaderValue::from_static("null")), None] {
        let mut h = HeaderMap::new();
        any.decorate(origin.as_ref(), &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{origin:?}");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(
            !h.contains_key(header::VARY),
            "the answer does not depend on the origin"
        );
    }
}

#[test]
fn safelisted_methods_are_always_allowed_in_a_preflight() {
    let only_post = Cors {
        allow_methods: vec![Method::POST],
        ..app()
    };
    for method in ["GET", "HEAD", "POST"] {
        let h = preflight_headers("https://app.example", method, "authorization");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(only_post.preflight(&h, &m).status(), 204, "{method}");
    }
}
