//! DPoP proofs (RFC 9449): checked at the token endpoint (to bind a token to a key) and,
//! with `ath`, by the gateway (to check that the presenter holds that key).
//!
//! This module is pure: the caller enforces single use of the proof's `jti` (through the store
//! or the shared replay cache), because only it knows where replays are remembered.

use aws_lc_rs::{constant_time, hmac};
use jose::jws::{self, VerifyOptions};
use jose::{b64, json, Algorithm, Jwk};
use serde_json::Value;

/// The signature algorithms accepted in proofs (`dpop_signing_alg_values_supported`):
/// asymmetric only, as RFC 9449 §4.3 requires.
pub const ALGORITHMS: [Algorithm; 10] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// Longest proof read (an RSA-8192 `jwk` plus claims fits well within it).
const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted: the replay cache stores it.
const MAX_JTI_LEN: usize = 256;

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The request method (`htm`).
    pub method: &'a str,
    /// The request URL as the client addressed it (`htu`; query and fragment ignored).
    pub url: &'a str,
    /// Now, unix seconds.
    pub now: i64,
    /// How far `iat` may lie from now, either way, in seconds.
    pub window: u64,
    /// The access token presented with the proof: its hash must be the proof's `ath`.
    pub access_token: Option<&'a str>,
    /// The server's nonces, when it requires one in every proof.
    pub nonces: Option<&'a Nonces>,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key (`cnf.jkt`).
    pub jkt: String,
    /// The proof's `jti`, to be used once.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Malformed, badly signed or not matching the request (`invalid_dpop_proof`).
    Invalid(String),
    /// No nonce or a stale one: the client must retry with the current `DPoP-Nonce`
    /// (`use_dpop_nonce`).
    NonceRequired,
}

fn invalid(reason: impl Into<String>) -> ProofError {
    ProofError::Invalid(reason.into())
}

/// Checks a proof against the request (RFC 9449 §4.3): `typ: dpop+jwt`, an asymmetric `alg`,
/// a public `jwk` that verifies the signature, `jti`, `htm`, `htu`, `iat` within the window,
/// the nonce when required, and `ath` when an access token is presented.
pub fn check(proof: &str, expect: &Expect<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("the proof is too long"));
    }
    let (header, _) =
        jose::jwt::decode_unverified(proof).map_err(|e| invalid(e.reason().to_owned()))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .filter(|a| ALGORITHMS.contains(a))
        .ok_or_else(|| invalid("alg must be an asymmetric signature algorithm"))?;
    let jwk = match header.get("jwk") {
        Some(Value::Object(map)) => {
            Jwk::from_map(map).map_err(|e| invalid(e.reason().to_owned()))?
        }
        _ => return Err(invalid("the header has no jwk")),
    };
    if jwk.is_private() || jwk.is_symmetric() {
        return Err(invalid("the jwk must be a public key"));
    }
    let verified = jws::compact::verify(proof, &jwk, &VerifyOptions::new([alg]))
        .map_err(|e| invalid(e.reason().to_owned()))?;
    let claims = json::parse_object(&verified.payload, "DPoP claims")
        .map_err(|e| invalid(e.reason().to_owned()))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);

    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| invalid("jti is missing or too long"))?;
    if text("htm") != Some(expect.method) {
        return Err(invalid("htm does not match the request method"));
    }
    if !same_target(text("htu").unwrap_or_default(), expect.url) {
        return Err(invalid("htu does not match the request URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("iat is missing"))?;
    let window = i64::try_from(expect.window).unwrap_or(i64::MAX);
    if iat.abs_diff(expect.now) > window.unsigned_abs() {
        return Err(invalid("iat is outside the accepted window"));
    }
    if let Some(nonces) = expect.nonces {
        if !text("nonce").is_some_and(|n| nonces.is_valid(n, expect.now)) {
            return Err(ProofError::NonceRequired);
        }
    }
    if let Some(token) = expect.access_token {
        let want = access_token_hash(token);
        let got = text("ath").unwrap_or_default();
        if constant_time::verify_slices_are_equal(want.as_bytes(), got.as_bytes()).is_err() {
            return Err(invalid("ath does not match the access token"));
        }
    } else if claims.contains_key("ath") {
        return Err(invalid("ath is present but no access token is"));
    }
    Ok(Proof {
        jkt: jwk.thumbprint(),
        jti: jti.to_owned(),
        iat,
    })
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    crate::token::sha256_b64(token)
}

/// Compares `htu` with the request URL after RFC 3986 normalisation (scheme and host case,
/// default port), ignoring query and fragment (RFC 9449 §4.3).
fn same_target(htu: &str, url: &str) -> bool {
    let strip = |u: &str| {
        url::Url::parse(u).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(htu), strip(url)), (Some(a), Some(b)) if a == b)
}

/// Server-provided nonces (RFC 9449 §8), without state: a nonce is an HMAC of the current
/// time period, so every node sharing the key issues and accepts the same ones. A nonce is
/// accepted during its period and the next.
pub struct Nonces {
    key: hmac::Key,
    period: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces under `key` that change every `period` seconds (at least 1).
    pub fn new(key: &[u8], period: u64) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            period: i64::try_from(period.max(1)).unwrap_or(i64::MAX),
        }
    }

    fn for_bucket(&self, bucket: i64) -> String {
        let tag = hmac::sign(&self.key, &bucket.to_be_bytes());
        b64::encode(tag.as_ref().get(..16).unwrap_or_default())
    }

    /// The nonce to hand out now.
    pub fn current(&self, now: i64) -> String {
        self.for_bucket(now.div_euclid(self.period))
    }

    /// Whether `nonce` is the current one or the previous period's.
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let bucket = now.div_euclid(self.period);
        [bucket, bucket.saturating_sub(1)].into_iter().any(|b| {
            constant_time::verify_slices_are_equal(self.for_bucket(b).as_bytes(), nonce.as_bytes())
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jose::jws::HeaderParams;
    use serde_json::json;

    fn proof(key: &Jwk, claims: Value, typ: &str) -> String {
        let mut params = HeaderParams::default();
        params.protected.insert("typ".into(), typ.into());
        params.protected.insert(
            "jwk".into(),
            Value::Object(key.to_public().unwrap().to_map()),
        );
        jws::compact::sign(
            claims.to_string().as_bytes(),
            key,
            Algorithm::ES256,
            &params,
        )
        .unwrap()
    }

    /// The reason `check` refuses `proof` for, which must be [`ProofError::Invalid`].
    fn refusal(proof: &str, expect: &Expect<'_>) -> String {
        match check(proof, expect) {
            Err(ProofError::Invalid(reason)) => reason,
            other => panic!("expected ProofError::Invalid, got {other:?}"),
        }
    }

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            method: "POST",
            url: "https://as.example/oauth2/token",
            now,
            window: 60,
            access_token: None,
            nonces: None,
        }
    }

    #[test]
    fn accepts_a_good_proof_and_refuses_mismatches() {
        let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
        let good = json!({"jti": "j1", "htm": "POST", "htu": "HTTPS://AS.example:443/oauth2/token?x=1", "iat": 1000});
        let p = check(&proof(&key, good.clone(), "dpop+jwt"), &expect(1010)).unwrap();
        assert_eq!(p.jkt, key.thumbprint());
        assert_eq!(p.jti, "j1");

        assert_eq!(
            refusal(&proof(&key, good.clone(), "JWT"), &expect(1010)),
            "typ must be dpop+jwt"
        );
        assert_eq!(
            refusal(&proof(&key, good.clone(), "dpop+jwt"), &expect(1100)),
            "iat is outside the accepted window"
        );
        let mut e = expect(1000);
        e.method = "GET";
        assert_eq!(
            refusal(&proof(&key, good.clone(), "dpop+jwt"), &e),
            "htm does not match the request method"
        );
        let mut e = expect(1000);
        e.url = "https://as.example/other";
        assert_eq!(
            refusal(&proof(&key, good.clone(), "dpop+jwt"), &e),
            "htu does not match the request URL"
        );
        let mut e = expect(1000);
        e.access_token = Some("tok");
        assert_eq!(
            refusal(&proof(&key, good, "dpop+jwt"), &e),
            "ath does not match the access token"
        );
    }

    #[test]
    fn ath_and_nonce() {
        let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
        let nonces = Nonces::new(&[7; 32], 300);
        let nonce = nonces.current(1000);
        let claims = json!({"jti": "j", "htm": "POST", "htu": "https://as.example/oauth2/token",
            "iat": 1000, "ath": access_token_hash("tok"), "nonce": nonce});
        let mut e = expect(1000);
        e.access_token = Some("tok");
        e.nonces = Some(&nonces);
        let p = check(&proof(&key, claims.clone(), "dpop+jwt"), &e).unwrap();
        assert_eq!(
            (p.jkt, p.jti, p.iat),
            (key.thumbprint(), "j".to_owned(), 1000)
        );
        e.access_token = Some("other");
        assert_eq!(
            refusal(&proof(&key, claims.clone(), "dpop+jwt"), &e),
            "ath does not match the access token"
        );
        e.access_token = None;
        assert_eq!(
            refusal(&proof(&key, claims.clone(), "dpop+jwt"), &e),
            "ath is present but no access token is"
        );
        let mut e = expect(1000);
        e.access_token = Some("tok");
        let later = Nonces::new(&[7; 32], 300);
        e.nonces = Some(&later);
        e.now = 1000 + 900;
        e.window = 10_000;
        assert_eq!(
            check(&proof(&key, claims, "dpop+jwt"), &e),
            Err(ProofError::NonceRequired)
        );
        assert!(nonces.is_valid(&nonce, 1000 + 300));
        assert!(!nonces.is_valid(&nonce, 1000 + 600));
    }
}
