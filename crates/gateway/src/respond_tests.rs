//! Errors to responses without sockets: the challenges (RFC 6750 §3, RFC 9449 §7.1), and what
//! a client may be shown.

use super::*;

fn failure(denial: Denial, dpop_scheme: bool) -> Failure<'static> {
    Failure {
        error: ProxyError::Denied(denial),
        route: None,
        dpop_scheme,
    }
}

fn challenge_of(f: &Failure<'_>) -> Option<String> {
    let ProxyError::Denied(denial) = &f.error else {
        unreachable!()
    };
    challenge(denial, f)
}

#[test]
fn challenges_per_denial() {
    assert_eq!(
        challenge_of(&failure(Denial::MissingToken, false)).as_deref(),
        Some("Bearer realm=\"tokengate\"")
    );
    let expired = Denial::InvalidToken {
        code: "ERR_JWT_EXPIRED",
        description: "the token has expired".into(),
    };
    assert_eq!(
        challenge_of(&failure(expired, false)).as_deref(),
        Some("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token has expired\"")
    );
    let scope = Denial::InsufficientScope {
        scope: "read write".into(),
    };
    assert_eq!(
        challenge_of(&failure(scope, false)).as_deref(),
        Some("Bearer realm=\"tokengate\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"read write\"")
    );
    assert_eq!(
        challenge_of(&failure(Denial::KeysUnavailable("down".into()), false)),
        None,
        "a 503 is no challenge"
    );
}

#[test]
fn dpop_failures_get_a_dpop_challenge() {
    let proof = || Denial::InvalidDpop("the DPoP proof is missing".into());
    // With the DPoP scheme, the proof was at fault.
    let f = failure(proof(), true);
    assert_eq!(f.error_code(), "invalid_dpop_proof");
    let c = challenge_of(&f).unwrap();
    assert!(c.starts_with("DPoP realm=\"tokengate\", algs=\""), "{c}");
    assert!(c.contains("error=\"invalid_dpop_proof\""), "{c}");
    // A bound token presented as a bearer token: a DPoP challenge, invalid_token.
    let f = failure(proof(), false);
    assert_eq!(f.error_code(), "invalid_token");
    let c = challenge_of(&f).unwrap();
    assert!(c.starts_with("DPoP realm="), "{c}");
    assert!(c.contains("error=\"invalid_token\""), "{c}");
}

#[test]
fn challenge_text_is_quotable() {
    assert_eq!(quotable("a \"b\" \\ c\u{e9}\n"), "a 'b' ' c''");
}

#[test]
fn the_dpop_scheme_is_recognised_in_any_case() {
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        uses_dpop_scheme(&h)
    };
    assert!(with("DPoP abc"));
    assert!(with("dpop abc"));
    assert!(!with("Bearer abc"));
    assert!(!with("DPoP"));
    assert!(!uses_dpop_scheme(&HeaderMap::new()));
}
