//! JWK and JWK Set documents (a remote JWKS is one): parsed, and what a parsed key offers
//! (its public form, its thumbprint) never fails on it.
#![no_main]

use jose::{Jwk, JwkSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = Jwk::from_json(data) {
        let _ = key.thumbprint();
        if let Ok(public) = key.to_public() {
            assert!(!public.is_private(), "to_public kept a private part");
            let again =
                Jwk::from_json(public.to_json().as_bytes()).expect("a public key reads back");
            assert_eq!(again.thumbprint(), key.thumbprint());
        }
    }
    if let Ok(set) = JwkSet::from_json(data) {
        let _ = set.to_public();
    }
});
