//! Compact JWS and JWE, and JWT decoding, from untrusted text.
#![no_main]

use jose::jwe::DecryptOptions;
use jose::jws::VerifyOptions;
use libfuzzer_sys::fuzz_target;

#[path = "keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for keys in keys::sets() {
        let _ = jose::jws::compact::verify(text, keys, &VerifyOptions::from_key());
        let _ = jose::jwe::compact::decrypt(text, keys, &DecryptOptions::from_key());
    }
    let _ = jose::jwe::compact::decode_header_unverified(text);
    let _ = jose::jwt::decode_unverified(text);
    let _ = jose::jwt::unverified_issuer(text);
});
