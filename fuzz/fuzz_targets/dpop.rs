//! DPoP proofs (RFC 9449) from untrusted text, with and without a nonce and an access token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth::dpop::{check, Expect, Nonces};

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let nonces = Nonces::new(b"fuzz nonce key", 60);
    let expect = Expect {
        method: "POST",
        url: "https://auth.example/oauth2/token",
        now: 1_700_000_000,
        window: 60,
        access_token: None,
        nonces: None,
    };
    let _ = check(proof, &expect);
    let _ = check(
        proof,
        &Expect {
            access_token: Some("token"),
            nonces: Some(&nonces),
            ..expect
        },
    );
});
