//! JSON-serialised JWS and JWE (flattened and general) from untrusted text.
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
        let _ = jose::jws::json::verify(text, keys, &VerifyOptions::from_key());
        let _ = jose::jwe::json::decrypt(text, keys, &DecryptOptions::from_key());
    }
});
