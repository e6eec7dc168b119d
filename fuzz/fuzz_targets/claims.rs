//! JWT claims: the one-pass reading of the registered claims agrees with the full parse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(claims) = jose::jwt::Claims::parse(text.to_owned()) else {
        return;
    };
    let map = claims.as_map().expect("claims that parse have a map");
    for name in [
        "iss",
        "sub",
        "jti",
        "aud",
        "exp",
        "nbf",
        "iat",
        "client_id",
        "scope",
        "cnf",
    ] {
        assert_eq!(
            claims.contains(name).expect("registered claims are known"),
            map.contains_key(name),
            "{name}"
        );
    }
    assert_eq!(claims.sub(), map.get("sub").and_then(|v| v.as_str()));
    assert_eq!(claims.jti(), map.get("jti").and_then(|v| v.as_str()));
    assert_eq!(
        claims.client_id(),
        map.get("client_id").and_then(|v| v.as_str())
    );
    assert_eq!(claims.scope(), map.get("scope").and_then(|v| v.as_str()));
});
