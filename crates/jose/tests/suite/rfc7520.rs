//! RFC 7520 §4 (JWS cookbook), RFC 8037 Appendix A (Ed25519) and RFC 7797 (`b64: false`).

use jose::jws::{self, SignaturePolicy, VerifyOptions};
use jose::{Algorithm, ErrorCode, Jwk};
use serde_json::Value;

use crate::common::{jwk, keys_of, load, obj, only};

/// A verification an example cannot have, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// No compact serialization: the example puts header members in an unprotected header,
    /// which only the JSON serializations can carry (RFC 7520 §4.6, §4.7).
    Compact,
    /// No verification with a public half: an HMAC key has none (to_public refuses it).
    PublicKey,
}

/// Each single-signature example and what it cannot be verified in. Every output form
/// (compact, general and flattened JSON) is verified with the private key and again with its
/// public half. A form or key missing without being listed here, a listed one that is
/// present, or an unknown output form, fails the test.
const JWS_EXAMPLES: [(&str, &[Skip]); 9] = [
    ("rfc7520/jws/4_1.rsa_v15_signature.json", &[]),
    ("rfc7520/jws/4_2.rsa-pss_signature.json", &[]),
    ("rfc7520/jws/4_3.ecdsa_signature.json", &[]),
    (
        "rfc7520/jws/4_4.hmac-sha2_integrity_protection.json",
        &[Skip::PublicKey],
    ),
    (
        "rfc7520/jws/4_5.signature_with_detached_content.json",
        &[Skip::PublicKey],
    ),
    (
        "rfc7520/jws/4_6.protecting_specific_header_fields.json",
        &[Skip::Compact, Skip::PublicKey],
    ),
    (
        "rfc7520/jws/4_7.protecting_content_only.json",
        &[Skip::Compact, Skip::PublicKey],
    ),
    ("rfc7520/curve25519/jws.json", &[]),
    (
        "rfc7520/rfc7797/hmac-sha2_b64_false.json",
        &[Skip::PublicKey],
    ),
];

const FORMS: [&str; 3] = ["compact", "json", "json_flat"];

fn alg_of(v: &Value) -> Algorithm {
    v.as_str().unwrap().parse().unwrap()
}

/// Verifies every output form of a single-signature example, with the private key and with
/// its public half, except what `skips` lists; returns the number of verifications.
fn check_example(file: &str, skips: &[Skip]) -> usize {
    let case = load(file);
    let input = &case["input"];
    let payload = input["payload"].as_str().unwrap().as_bytes();
    let alg = alg_of(&input["alg"]);
    let private = jwk(&input["key"]);
    let public = match private.to_public() {
        Ok(public) => {
            assert!(!skips.contains(&Skip::PublicKey), "{file} has a public key");
            Some(public)
        }
        Err(e) => {
            assert!(skips.contains(&Skip::PublicKey), "{file}: {e}");
            assert!(private.is_symmetric(), "{file}: {e}");
            assert_eq!(e.code(), ErrorCode::KeyUnsuitable, "{file}: {e}");
            None
        }
    };
    let output = obj(&case["output"]);
    for form in output.keys() {
        assert!(
            FORMS.contains(&form.as_str()),
            "{file}: unknown form {form}"
        );
    }
    assert_eq!(
        output.contains_key("compact"),
        !skips.contains(&Skip::Compact),
        "{file}: compact form"
    );
    let detached = file.contains("4_5");
    let mut checked = 0;
    for key in std::iter::once(&private).chain(public.as_ref()) {
        for form in FORMS {
            let verified = match (form, output.get(form)) {
                ("compact", None) => continue,
                ("compact", Some(Value::String(token))) if detached => {
                    jws::compact::verify_detached(token, payload, key, &only(alg))
                        .map(|v| v.payload)
                }
                ("compact", Some(Value::String(token))) => {
                    jws::compact::verify(token, key, &only(alg)).map(|v| v.payload)
                }
                (_, Some(doc @ Value::Object(_))) if detached => {
                    jws::json::verify_detached(&doc.to_string(), payload, key, &only(alg))
                        .map(|v| v.payload)
                }
                (_, Some(doc @ Value::Object(_))) => {
                    jws::json::verify(&doc.to_string(), key, &only(alg)).map(|v| v.payload)
                }
                (_, other) => panic!("{file}: {form} is {other:?}"),
            };
            let got = verified.unwrap_or_else(|e| panic!("{file} {form}: {e}"));
            assert_eq!(got, payload, "{file} {form} payload");
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_single_signature_example_verifies_in_every_form() {
    let total: usize = JWS_EXAMPLES
        .iter()
        .map(|(file, skips)| check_example(file, skips))
        .sum();
    // 4 asymmetric examples × 3 forms × 2 keys (24), 3 HMAC examples × 3 forms (9), and the
    // 2 HMAC examples without a compact form × 2 forms (4).
    assert_eq!(total, 37);
}

#[test]
fn deterministic_algorithms_reproduce_the_cookbook_bytes() {
    // RS256 (PKCS#1 v1.5), HMAC and Ed25519 are deterministic: signing the same input must
    // give the published token byte for byte.
    for file in [
        "rfc7520/jws/4_1.rsa_v15_signature.json",
        "rfc7520/jws/4_4.hmac-sha2_integrity_protection.json",
        "rfc7520/curve25519/jws.json",
    ] {
        let case = load(file);
        let input = &case["input"];
        let key = jwk(&input["key"]);
        let expected = case["output"]["compact"].as_str().unwrap();
        let header_b64 = expected.split('.').next().unwrap();
        let header =
            jose::json::parse_object(&jose::b64::decode(header_b64).unwrap(), "h").unwrap();
        // The cookbook's members in the cookbook's order, `alg` included (signing sets `alg`
        // in place), so that the protected header is the same bytes.
        let mut params = jws::HeaderParams::default();
        for (k, v) in &header {
            params.protected.insert(k.clone(), v.clone());
        }
        let token = jws::compact::sign(
            input["payload"].as_str().unwrap().as_bytes(),
            &key,
            alg_of(&input["alg"]),
            &params,
        )
        .unwrap();
        assert_eq!(token.split('.').next(), Some(header_b64), "{file} header");
        assert_eq!(token, expected, "{file}");
    }
}

#[test]
fn multiple_signatures_verify_per_policy() {
    let case = load("rfc7520/jws/4_8.multiple_signatures.json");
    let keys = keys_of(&case["input"]["key"]);
    assert_eq!(keys.len(), 3);
    let algs: Vec<Algorithm> = case["input"]["alg"]
        .as_array()
        .unwrap()
        .iter()
        .map(alg_of)
        .collect();
    let text = case["output"]["json"].to_string();
    let payload = case["input"]["payload"].as_str().unwrap().as_bytes();

    let mut any = VerifyOptions::new(algs.clone());
    any.policy = SignaturePolicy::Any;
    for key in &keys {
        let got = jws::json::verify(&text, key, &any).unwrap();
        assert_eq!(got.payload, payload);
        assert_eq!(
            got.verified.len(),
            1,
            "each key verifies exactly its own signature"
        );
    }
    // One key cannot satisfy "all": the other two signatures need other keys, and the RSA
    // key does not fit the next one (ES512).
    let all = VerifyOptions::new(algs);
    let e = jws::json::verify(&text, &keys[0], &all).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlgNotAllowed, "{e}");
    assert!(e.reason().contains("ES512"), "{e}");
}

#[test]
fn rfc7797_unencoded_payload() {
    let (file, skips) = JWS_EXAMPLES
        .iter()
        .find(|(f, _)| f.contains("rfc7797"))
        .unwrap();
    assert_eq!(check_example(file, skips), 3);

    // The real RFC 7797 §4.2 example: b64 false, listed in crit.
    let case = load("rfc7520/rfc7797/4.2.hmac-sha2_b64_false.json");
    let key = jwk(&case["input"]["key"]);
    let token = "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19..A5dxf2s96_n5FLueVuW1Z_vh161FwXZC4YLPff6dmDY";
    let got = jws::compact::verify_detached(token, b"$.02", &key, &only(Algorithm::HS256)).unwrap();
    assert!(!got.header.b64());

    // The vectors' "4.2" file omits crit: a strict RFC 7797 verifier must reject it.
    for form in ["json", "json_flat"] {
        let text = case["output"][form].to_string();
        let e = jws::json::verify(&text, &key, &only(Algorithm::HS256)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::CritInvalid, "{form}: {e}");
    }
}

#[test]
fn rfc7520_keys_parse_and_have_their_thumbprints() {
    // RFC 7638 §3.1 gives the thumbprint of the RFC 7517 Appendix A.1 RSA key.
    let rsa = Jwk::from_json(br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
    assert_eq!(
        rsa.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );

    for file in [
        "rfc7520/jwk/3_1.ec_public_key.json",
        "rfc7520/jwk/3_2.ec_private_key.json",
        "rfc7520/jwk/3_3.rsa_public_key.json",
        "rfc7520/jwk/3_4.rsa_private_key.json",
        "rfc7520/jwk/3_5.symmetric_key_mac_computation.json",
        "rfc7520/jwk/3_6.symmetric_key_encryption.json",
    ] {
        let key = jwk(&load(file));
        // Export and re-import lose nothing.
        let again = Jwk::from_json(key.to_json().as_bytes()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint(), "{file}");
        assert_eq!(again.is_private(), key.is_private(), "{file}");
    }
}
