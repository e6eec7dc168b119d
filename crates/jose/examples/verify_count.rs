//! Verifies one HS256 or ES256 access token N times, for instruction counts under valgrind's
//! callgrind (docs/benchmarks.md, "One JWS header parser"): counts are deterministic where
//! wall-clock times on shared cores are not, and two runs with different N give the cost of
//! one verification without the setup.
//!
//! ```text
//! cargo build --release -p tokengate-jose --example verify_count
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/verify_count HS256 1000
//! ```
//!
//! The keys and tokens are fixed (an ECDSA signature is randomised), so every run verifies the
//! same bytes. `verify_count mint` prints a fresh key pair and tokens in the same shape.

use std::hint::black_box;

use jose::jwt::{self, Validation};
use jose::{Algorithm, Jwk, JwkSet};

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;
use fixtures::{claims, AUD, ISS};
/// Verification time: after `iat`, before `exp`.
const NOW: i64 = 1_767_225_700;

const HS256_KEY: &str =
    r#"{"k":"4SiO2douZ7AFP2Gxm7oW17qGR2nIwd9F4B2MhqByHkc","kty":"oct","kid":"hs-1","alg":"HS256"}"#;
const ES256_KEY: &str = r#"{"x":"FgczCC1Em1oUJ_E2o7Kklgy5gA5TZcHNEaPFeRl-9fo","y":"l7WBvS9UboOK79xwVtQwNGqq9QnUy2YVJk255m_WNNM","crv":"P-256","kty":"EC","kid":"es-1","alg":"ES256"}"#;
macro_rules! payload_b64 {
    () => {
        "eyJpc3MiOiJodHRwczovL2lzc3Vlci50b2tlbmdhdGUuZXhhbXBsZSIsInN1YiI6IjVmMWM4YTJlLTNiN2QtNGU5MS1hMGM0LTlkMmI2ZjdlOGExMyIsImF1ZCI6Imh0dHBzOi8vYXBpLnRva2VuZ2F0ZS5leGFtcGxlIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3NjcyMjU2MDAsImF1dGhfdGltZSI6MTc2NzIyNTU0MCwianRpIjoiYjNmMWUwYTItNmM0ZC00ZjhlLTlhN2ItMmQ1YzhlMWYzYTkwIiwiY2xpZW50X2lkIjoiczZCaGRSa3F0My1iZW5jaG1hcmstY2xpZW50Iiwic2NvcGUiOiJvcGVuaWQgcHJvZmlsZSBlbWFpbCBvcmRlcnM6cmVhZCBvcmRlcnM6d3JpdGUgaW52b2ljZXM6cmVhZCIsImFjciI6InVybjptYWNlOmluY29tbW9uOmlhcDpzaWx2ZXIiLCJhbXIiOlsicHdkIiwib3RwIl0sImdyb3VwcyI6WyJlbmdpbmVlcmluZyIsIm9uLWNhbGwiXSwicm9sZXMiOlsicmVhZGVyIiwid3JpdGVyIl0sImVtYWlsIjoiamFuZS5kb2VAZXhhbXBsZS5jb20iLCJ0ZW5hbnQiOiJhY21lLWV1LXdlc3QtMSJ9"
    };
}

const HS256_TOKEN: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzLTEiLCJ0eXAiOiJhdCtqd3QifQ.",
    payload_b64!(),
    ".XaZ4bTKevmfFGKrrRvhhXNTkxGWZOeGYprXmzql3Ce0"
);
const ES256_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVzLTEiLCJ0eXAiOiJhdCtqd3QifQ.",
    payload_b64!(),
    ".ySpTDDEKbHli4BSTeUj-Jjv9AaCozWs0RVeHdrx2jawJJ-ccgRzTHOXvmu9djZl3be4GQ30DshQvDpPH6MX3nA"
);

fn mint() -> jose::Result<()> {
    let hs = Jwk::generate(Algorithm::HS256, None, Some("hs-1".into()))?;
    let es = Jwk::generate(Algorithm::ES256, None, Some("es-1".into()))?;
    println!("{}\n{}", hs.to_json(), es.to_public()?.to_json());
    println!(
        "{}",
        jwt::sign(&claims(), &hs, Algorithm::HS256, Some("at+jwt"))?
    );
    println!(
        "{}",
        jwt::sign(&claims(), &es, Algorithm::ES256, Some("at+jwt"))?
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    if which == "mint" {
        return Ok(mint()?);
    }
    let n: u64 = args.next().as_deref().unwrap_or("1000").parse()?;
    let (key, token, alg) = match which.as_str() {
        "HS256" => (HS256_KEY, HS256_TOKEN, Algorithm::HS256),
        "ES256" => (ES256_KEY, ES256_TOKEN, Algorithm::ES256),
        other => {
            return Err(format!("usage: verify_count HS256|ES256 [N] | mint; not {other:?}").into())
        }
    };
    // As the gateway verifies: a key set (selection by `kid`), issuer, `typ`, a fixed clock.
    let keys = JwkSet::new(vec![Jwk::from_json(key.as_bytes())?])?;
    let validation = Validation::new()
        .algorithms([alg])
        .issuer(ISS)
        .audience(AUD)
        .typ("at+jwt")
        .at_time(NOW);
    let mut subjects = 0usize;
    for _ in 0..n {
        let verified = jwt::verify(black_box(token), &keys, &validation)?;
        subjects += verified.claims.sub().map_or(0, str::len);
    }
    println!("{which}: {n} verifications, {subjects} subject bytes");
    Ok(())
}
