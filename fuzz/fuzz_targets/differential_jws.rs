//! Differential: a compact JWS accepted by tokengate must be accepted by josekit with the
//! same key, with the same payload, and the other way round, except for the deliberate
//! refusals listed in `deliberate` (docs/conformance.md, "Differential fuzzing").
//!
//! The fuzzer writes the protected header and the payload (the first byte says where one
//! ends); the token is signed here with HMAC-SHA-256 straight from aws-lc-rs, so every input
//! carries a valid signature and the two libraries are compared on everything else.
#![no_main]

use aws_lc_rs::hmac;
use jose::jws::VerifyOptions;
use jose::{ErrorCode, Jwk};
use libfuzzer_sys::fuzz_target;

/// 32 bytes of 0x0b.
const KEY: [u8; 32] = [0x0b; 32];

fn token(header: &[u8], payload: &[u8]) -> String {
    let mut signing_input = jose::b64::encode(header);
    signing_input.push('.');
    signing_input.push_str(&jose::b64::encode(payload));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &KEY),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", jose::b64::encode(tag.as_ref()))
}

/// Why tokengate refuses what josekit accepts, on purpose: the header is not strict JSON
/// (a duplicate member name, nesting deeper than 32, a lone surrogate escape; josekit reads it
/// with serde_json, where the last duplicate wins), or a header parameter tokengate
/// understands is malformed where josekit ignores it (`b64` not a boolean, or not listed in
/// `crit` as RFC 7797 requires; `crit` naming nothing, itself, a registered parameter or an
/// unknown extension; `kid`/`typ`/`cty` not strings).
fn tokengate_refuses_on_purpose(code: ErrorCode, header: &[u8]) -> bool {
    match code {
        ErrorCode::JsonInvalid => true,
        ErrorCode::JwsInvalid | ErrorCode::CritInvalid => {
            let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
                return false;
            };
            let mistyped = |name: &str, ok: fn(&serde_json::Value) -> bool| {
                map.get(name).is_some_and(|v| !ok(v))
            };
            mistyped("b64", serde_json::Value::is_boolean)
                || ["kid", "typ", "cty"]
                    .iter()
                    .any(|n| mistyped(n, serde_json::Value::is_string))
                || map.contains_key("crit")
                || map.contains_key("b64")
        }
        _ => false,
    }
}

/// Why josekit refuses what tokengate accepts: josekit type-checks header members that a
/// verification with a given key does not use (`jku`, `x5u`, `x5c`, `x5t`, `jwk`, `url`, ...)
/// where tokengate ignores them, and its default context does not implement RFC 7797
/// (`"b64": false` with `"crit": ["b64"]`), which tokengate does.
fn josekit_refuses_on_purpose(header: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
        return true;
    };
    let unencoded = map
        .get("crit")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|crit| crit.iter().any(|c| c == "b64"));
    unencoded || josekit::jws::JwsHeader::from_map(map).is_err()
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (header, payload) = rest.split_at(at);
    let token = token(header, payload);
    let key = Jwk::from_json(
        format!(
            r#"{{"kty":"oct","k":"{}","alg":"HS256"}}"#,
            jose::b64::encode(KEY)
        )
        .as_bytes(),
    )
    .expect("the key");
    let ours = jose::jws::compact::verify(&token, &key, &VerifyOptions::from_key());
    let verifier = josekit::jws::HS256
        .verifier_from_bytes(KEY)
        .expect("the key");
    let theirs = josekit::jws::deserialize_compact(&token, &verifier);
    match (ours, theirs) {
        (Ok(ours), Ok((payload_theirs, _))) => {
            assert_eq!(ours.payload, payload_theirs, "the payloads differ: {token}");
        }
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => assert!(
            tokengate_refuses_on_purpose(e.code(), header),
            "josekit accepts what tokengate refuses ({}: {e}): {token}",
            e.code().as_str()
        ),
        (Ok(_), Err(e)) => assert!(
            josekit_refuses_on_purpose(header),
            "tokengate accepts what josekit refuses ({e}): {token}"
        ),
    }
});
