//! PKCE (RFC 7636) with S256 only (RFC 9700 §2.1.1): the authorization request carries the
//! challenge, base64url(SHA-256(verifier)); the token request proves the code is its own by
//! sending the verifier. `plain` would hand the verifier to whoever reads the authorization
//! request, so it is not offered.

use aws_lc_rs::constant_time;

/// The shortest and longest verifier (RFC 7636 §4.1).
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=128;

/// Whether `text` is a SHA-256 digest in strict unpadded base64url: 43 characters that
/// decode to 32 bytes, with none of the spare low bits of the last character set (so one
/// digest has exactly one spelling).
pub fn is_sha256_b64(text: &str) -> bool {
    text.len() == 43 && jose::b64::decode(text).is_ok_and(|bytes| bytes.len() == 32)
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    crate::token::sha256_b64(verifier)
}

/// Checks a token request's `code_verifier` against the challenge the code was issued for
/// (compared in constant time). `Err` says what is wrong, for `error_description`.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), &'static str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !VERIFIER_LEN.contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~");
    }
    constant_time::verify_slices_are_equal(challenge_of(verifier).as_bytes(), challenge.as_bytes())
        .map_err(|_| "code_verifier does not match the code_challenge")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies() {
        assert_eq!(challenge_of(VERIFIER), CHALLENGE);
        assert!(is_sha256_b64(CHALLENGE));
        assert_eq!(verify(VERIFIER, CHALLENGE), Ok(()));
    }

    #[test]
    fn other_verifiers_and_malformed_ones_are_refused() {
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert!(verify(other, CHALLENGE)
            .unwrap_err()
            .contains("does not match"));
        // The challenge itself is not a verifier of itself (plain).
        assert!(verify(CHALLENGE, CHALLENGE).is_err());
        for bad in [
            "short".to_owned(),
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", &VERIFIER[1..]),
            format!("{} ", &VERIFIER[1..]),
            format!("{}é", &VERIFIER[2..]),
        ] {
            assert!(
                verify(&bad, CHALLENGE).unwrap_err().contains("43 to 128"),
                "{bad}"
            );
        }
        let longest = "~".repeat(128);
        assert_eq!(verify(&longest, &challenge_of(&longest)), Ok(()));
    }

    #[test]
    fn challenges_are_strict_base64url_digests() {
        for bad in [
            "",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMA",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            // Spare bits set in the last character.
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
        ] {
            assert!(!is_sha256_b64(bad), "{bad}");
        }
    }
}
