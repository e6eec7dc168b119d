//! `Cache-Control` of a JWKS response (its `max-age`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gateway::keys::cache_max_age(text);
    }
});
