use std::time::{Duration, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use super::*;

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn cc(value: &str) -> Result<ResponseDirectives, Malformed> {
    response_directives(&headers(&[("cache-control", value)]))
}

#[test]
fn directives_are_read_across_lines_case_and_quotes() {
    let d = response_directives(&headers(&[
        ("cache-control", "Public, MAX-AGE=\"60\""),
        ("cache-control", "s-maxage=30, no-cache=\"set-cookie, x-a\""),
    ]))
    .unwrap();
    assert!(d.public && d.no_cache && !d.private && !d.no_store);
    assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(30)));
    assert!(cc("private=\"x\"").unwrap().private);
    assert!(cc("no-store").unwrap().no_store);
    // Unknown directives are ignored, as RFC 9111 §5.2.3 requires.
    assert_eq!(
        cc("immutable, stale-while-revalidate=5, max-age=1")
            .unwrap()
            .max_age,
        Some(1)
    );
    // A huge max-age is read as 2^31 seconds.
    assert_eq!(
        cc("max-age=99999999999999999999999").unwrap().max_age,
        Some(2_147_483_648)
    );
}

#[test]
fn malformed_and_contradictory_directives_are_errors() {
    assert_eq!(cc("max-age"), Err(Malformed::Seconds));
    assert_eq!(cc("max-age=ten"), Err(Malformed::Seconds));
    assert_eq!(cc("max-age=-1"), Err(Malformed::Seconds));
    assert_eq!(cc("max-age=10, max-age=20"), Err(Malformed::Contradiction));
    assert_eq!(cc("public, private"), Err(Malformed::Contradiction));
    assert_eq!(cc("no-cache=\"unterminated"), Err(Malformed::Syntax));
    assert_eq!(cc("max-age=10 20"), Err(Malformed::Syntax));
    assert_eq!(cc("=10"), Err(Malformed::Syntax));
    assert_eq!(cc("a=b=c"), Err(Malformed::Syntax));
    // The same value twice is no contradiction.
    assert_eq!(cc("max-age=10, max-age=10").unwrap().max_age, Some(10));
    let mut bad = HeaderMap::new();
    bad.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_bytes(b"max-age=\xff").unwrap(),
    );
    assert_eq!(response_directives(&bad), Err(Malformed::Syntax));
}

#[test]
fn the_request_may_forbid_storing_only() {
    assert!(request_forbids_storing(&headers(&[(
        "cache-control",
        "max-age=0, no-store"
    )])));
    assert!(!request_forbids_storing(&headers(&[(
        "cache-control",
        "no-cache"
    )])));
    assert!(!request_forbids_storing(&HeaderMap::new()));
}

#[test]
fn freshness_prefers_s_maxage_then_max_age_then_expires_then_the_default() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let date = httpdate::fmt_http_date(now);
    let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
    let default = Duration::from_secs(30);
    let max = Duration::from_secs(600);
    let life = |fields: &[(&str, &str)]| {
        let h = headers(fields);
        let d = response_directives(&h).unwrap();
        freshness_lifetime(&d, &h, now, default, max).as_secs()
    };
    assert_eq!(life(&[("cache-control", "max-age=60, s-maxage=90")]), 90);
    assert_eq!(
        life(&[("cache-control", "max-age=60"), ("expires", &later)]),
        60
    );
    assert_eq!(life(&[("expires", &later), ("date", &date)]), 120);
    assert_eq!(life(&[("expires", "0")]), 0);
    assert_eq!(life(&[("expires", &date), ("date", &later)]), 0);
    assert_eq!(life(&[]), 30);
    // Never more than max_ttl.
    assert_eq!(life(&[("cache-control", "max-age=86400")]), 600);
}

#[test]
fn initial_age_is_the_larger_of_age_and_the_time_since_date() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let date = httpdate::fmt_http_date(now - Duration::from_secs(7));
    assert_eq!(
        initial_age(&headers(&[("age", "3"), ("date", &date)]), now).as_secs(),
        7
    );
    assert_eq!(
        initial_age(&headers(&[("age", "30"), ("date", &date)]), now).as_secs(),
        30
    );
    assert_eq!(initial_age(&headers(&[("age", "x")]), now).as_secs(), 0);
    // A Date in the future is no negative age.
    let ahead = httpdate::fmt_http_date(now + Duration::from_secs(100));
    assert_eq!(initial_age(&headers(&[("date", &ahead)]), now).as_secs(), 0);
}

#[test]
fn statuses_vary_and_validators() {
    assert!(storable_status(StatusCode::OK) && storable_status(StatusCode::NOT_FOUND));
    for s in [206, 302, 307, 401, 403, 500, 502, 503] {
        assert!(!storable_status(StatusCode::from_u16(s).unwrap()), "{s}");
    }
    let names = vary_names(&headers(&[
        ("vary", "Accept-Language, accept"),
        ("vary", "accept"),
    ]));
    let names: Vec<&str> = names.as_ref().unwrap().iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["accept", "accept-language"]);
    assert_eq!(vary_names(&headers(&[("vary", "accept, *")])), Err(VaryAll));
    assert!(has_validator(&headers(&[("etag", "\"a\"")])));
    assert!(!has_validator(&headers(&[("cache-control", "max-age=1")])));
}

#[test]
fn client_conditionals_match_weakly_and_by_date() {
    let stored = headers(&[
        ("etag", "W/\"v1\""),
        ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ]);
    assert!(not_modified(
        &headers(&[("if-none-match", "\"v1\"")]),
        &stored
    ));
    assert!(not_modified(
        &headers(&[("if-none-match", "\"x\", W/\"v1\"")]),
        &stored
    ));
    assert!(not_modified(&headers(&[("if-none-match", "*")]), &stored));
    assert!(!not_modified(
        &headers(&[("if-none-match", "\"v2\"")]),
        &stored
    ));
    // If-None-Match decides when present, even against a matching date.
    assert!(!not_modified(
        &headers(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")
        ]),
        &stored
    ));
    assert!(not_modified(
        &headers(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]),
        &stored
    ));
    assert!(!not_modified(
        &headers(&[("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]),
        &stored
    ));
    assert!(!not_modified(
        &headers(&[("if-modified-since", "yesterday")]),
        &stored
    ));
    assert!(!not_modified(&HeaderMap::new(), &stored));
}

#[test]
fn a_304_refreshes_all_but_the_body_fields() {
    let mut stored = headers(&[
        ("content-type", "application/json"),
        ("content-length", "10"),
        ("cache-control", "max-age=1"),
        ("etag", "\"v1\""),
    ]);
    let fresh = headers(&[
        ("cache-control", "max-age=60"),
        ("content-length", "0"),
        ("x-new", "1"),
    ]);
    refresh_headers(&mut stored, &fresh);
    assert_eq!(stored["cache-control"], "max-age=60");
    assert_eq!(stored["content-length"], "10");
    assert_eq!(stored["content-type"], "application/json");
    assert_eq!(stored["x-new"], "1");
    assert_eq!(stored["etag"], "\"v1\"");
}

#[test]
fn a_304_is_about_the_entry_when_their_tags_agree() {
    let tagged = |t: &str| headers(&[("etag", t)]);
    assert!(same_validator(&tagged("\"a\""), &tagged("W/\"a\"")));
    assert!(!same_validator(&tagged("\"a\""), &tagged("\"b\"")));
    // A 304 without a tag is about the entry; one naming a tag the entry never had is not.
    assert!(same_validator(&tagged("\"a\""), &HeaderMap::new()));
    assert!(same_validator(&HeaderMap::new(), &HeaderMap::new()));
    assert!(!same_validator(&HeaderMap::new(), &tagged("\"b\"")));
}
