//! The gateway's path canonicalisation and Host checks. A path it accepts has no dot
//! segment, empty segment, backslash or semicolon in any spelling an upstream might decode;
//! an authority it accepts has no user info, path or whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if gateway::route::non_canonical_path(text).is_none() {
        let lower = text.to_ascii_lowercase();
        for bad in ["//", "\\", ";", "%2e", "%2f", "%5c", "%00"] {
            assert!(!lower.contains(bad), "{bad} in an accepted path {text:?}");
        }
        assert!(
            !text.split('/').any(|s| s == "." || s == ".."),
            "dot segment in {text:?}"
        );
    }
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, value);
    let uri = http::Uri::from_static("/");
    if let Ok(Some(authority)) =
        gateway::route::request_authority(http::Version::HTTP_11, &uri, &headers)
    {
        assert!(
            !authority.contains(['@', '/', ' ', '\t', '?', '#']),
            "accepted authority {authority:?}"
        );
        let _ = gateway::route::route_host(authority);
    }
});
