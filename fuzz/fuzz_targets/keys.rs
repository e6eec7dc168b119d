// The keys the JOSE targets verify and decrypt with. The symmetric ones are fixed, so that
// the seed tokens in fuzz/corpus (made with them) verify and the fuzzer reaches the code
// behind a valid signature or tag; the asymmetric ones are fresh per run (their parsing and
// selection are what is fuzzed).

use std::sync::LazyLock;

use jose::jwe::KeyManagement;
use jose::{Algorithm, Jwk, JwkSet};

/// `k` of the fixed HS256 key (32 bytes of 0x0b, base64url).
pub const HS256_K: &str = "CwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCws";
/// `k` of the fixed A128KW key (16 bytes of 0x0c).
pub const A128KW_K: &str = "DAwMDAwMDAwMDAwMDAwMDA";
/// `k` of the fixed `dir` A128GCM key (16 bytes of 0x0d).
pub const DIR_K: &str = "DQ0NDQ0NDQ0NDQ0NDQ0NDQ";

fn oct(k: &str, alg: &str, kid: &str) -> Jwk {
    let text = format!(r#"{{"kty":"oct","k":"{k}","alg":"{alg}","kid":"{kid}"}}"#);
    Jwk::from_json(text.as_bytes()).expect("a fixed key")
}

/// The symmetric keys (a set may not mix them with asymmetric ones).
pub static SYMMETRIC: LazyLock<JwkSet> = LazyLock::new(|| {
    JwkSet::new(vec![
        oct(HS256_K, "HS256", "hs"),
        oct(A128KW_K, "A128KW", "kw"),
        oct(DIR_K, "dir", "dir"),
    ])
    .expect("a set")
});

/// The asymmetric keys, private parts included.
pub static ASYMMETRIC: LazyLock<JwkSet> = LazyLock::new(|| {
    let mut keys = Vec::new();
    for (alg, kid) in [
        (Algorithm::ES256, "es"),
        (Algorithm::EdDSA, "ed"),
        (Algorithm::RS256, "rs"),
    ] {
        keys.push(Jwk::generate(alg, None, Some(kid.into())).expect("a key"));
    }
    keys.push(
        Jwk::generate_for_encryption(
            KeyManagement::ECDH_ES_A128KW,
            None,
            None,
            None,
            Some("ecdh".into()),
        )
        .expect("a key"),
    );
    JwkSet::new(keys).expect("a set")
});

/// Both sets.
pub fn sets() -> [&'static JwkSet; 2] {
    [&SYMMETRIC, &ASYMMETRIC]
}
