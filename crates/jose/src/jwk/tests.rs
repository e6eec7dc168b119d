use super::*;
use crate::error::ErrorCode;

fn rsa_public_json(n: &str, e: &str) -> String {
    format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#)
}

#[test]
fn generated_keys_carry_alg_and_thumbprint_kid() {
    for alg in Algorithm::ALL {
        if matches!(alg.family(), Family::Rsa) && alg != Algorithm::RS256 {
            continue; // RSA generation is slow in debug builds; one is enough here.
        }
        let key = Jwk::generate(alg, None, None).unwrap();
        assert_eq!(key.alg(), Some(alg.name()));
        assert_eq!(key.kid(), Some(key.thumbprint().as_str()));
        assert!(key.is_private());
        assert_eq!(key.signing_algorithm(), Some(alg));
    }
    let named = Jwk::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
    assert_eq!(named.kid(), Some("k1"));
}

#[test]
fn public_half_drops_private_members_and_ops() {
    let mut map = Jwk::generate(Algorithm::ES384, None, None)
        .unwrap()
        .to_map();
    map.insert("key_ops".into(), serde_json::json!(["sign", "verify"]));
    let key = Jwk::from_map(&map).unwrap();
    let public = key.to_public().unwrap().to_map();
    assert!(!public.contains_key("d"));
    assert_eq!(public["key_ops"], serde_json::json!(["verify"]));
    assert_eq!(key.to_public().unwrap().thumbprint(), key.thumbprint());

    // A signing-only private key gives a public key that verifies.
    map.insert("key_ops".into(), serde_json::json!(["sign"]));
    let key = Jwk::from_map(&map).unwrap();
    let public = key.to_public().unwrap();
    assert_eq!(public.to_map()["key_ops"], serde_json::json!(["verify"]));
    let token =
        crate::jws::compact::sign(b"x", &key, Algorithm::ES384, &Default::default()).unwrap();
    let options = crate::jws::VerifyOptions::new([Algorithm::ES384]);
    crate::jws::compact::verify(&token, &public, &options).unwrap();
}

#[test]
fn bits_apply_only_to_rsa_and_hmac() {
    let code = |alg, bits| Jwk::generate(alg, Some(bits), None).unwrap_err().code();
    assert_eq!(code(Algorithm::ES256, 4096), ErrorCode::KeyUnsuitable);
    assert_eq!(code(Algorithm::EdDSA, 256), ErrorCode::KeyUnsuitable);
    assert_eq!(code(Algorithm::HS256, 100), ErrorCode::KeyUnsuitable);
    let k = Jwk::generate(Algorithm::HS256, Some(512), None).unwrap();
    assert_eq!(
        crate::b64::decode(k.to_map()["k"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn rsa_structure_rules() {
    let key = Jwk::generate(Algorithm::RS256, None, None).unwrap();
    let map = key.to_map();
    let n = map["n"].as_str().unwrap();
    // e = 1, even e, leading zeros.
    for (n2, e) in [
        (n.to_owned(), "AQ"),
        (n.to_owned(), "AQAA"),
        (n.to_owned(), "AAEAAQ"),
    ] {
        let e = Jwk::from_json(rsa_public_json(&n2, e).as_bytes()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::JwkInvalid);
    }
    let padded = crate::b64::encode([&[0u8][..], &crate::b64::decode(n).unwrap()].concat());
    assert_eq!(
        Jwk::from_json(rsa_public_json(&padded, "AQAB").as_bytes())
            .unwrap_err()
            .code(),
        ErrorCode::JwkInvalid
    );
    // Private members that do not belong to the modulus.
    let other = Jwk::generate(Algorithm::RS256, None, None)
        .unwrap()
        .to_map();
    let mut mixed = map.clone();
    mixed.insert("d".into(), other["d"].clone());
    assert_eq!(
        Jwk::from_map(&mixed).unwrap_err().code(),
        ErrorCode::JwkInvalid
    );
    // Multi-prime keys are refused explicitly.
    let mut oth = map;
    oth.insert("oth".into(), serde_json::json!([]));
    assert_eq!(
        Jwk::from_map(&oth).unwrap_err().code(),
        ErrorCode::NotSupported
    );
}

#[test]
fn ec_and_okp_structure_rules() {
    let key = Jwk::generate(Algorithm::ES256, None, None)
        .unwrap()
        .to_map();
    let mut wrong_len = key.clone();
    wrong_len.insert("x".into(), crate::b64::encode([1u8; 31]).into());
    assert_eq!(
        Jwk::from_map(&wrong_len).unwrap_err().code(),
        ErrorCode::JwkInvalid
    );
    let mut off_curve = key.clone();
    off_curve.insert("y".into(), crate::b64::encode([1u8; 32]).into());
    off_curve.remove("d");
    assert_eq!(
        Jwk::from_map(&off_curve).unwrap_err().code(),
        ErrorCode::JwkInvalid
    );
    let mut wrong_alg = key;
    wrong_alg.insert("alg".into(), "ES384".into());
    assert_eq!(
        Jwk::from_map(&wrong_alg).unwrap_err().code(),
        ErrorCode::KeyUnsuitable
    );
    for crv in ["Ed448", "X448", "secp256k1"] {
        let kty = if crv == "secp256k1" { "EC" } else { "OKP" };
        let json = format!(r#"{{"kty":"{kty}","crv":"{crv}","x":"AAAA","y":"AAAA"}}"#);
        assert_eq!(
            Jwk::from_json(json.as_bytes()).unwrap_err().code(),
            ErrorCode::NotSupported,
            "{crv}"
        );
    }
    // X25519 keys parse (for ECDH-ES) but cannot sign.
    let x = Jwk::from_json(
        br#"{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}"#,
    )
    .unwrap();
    assert_eq!(x.signing_algorithm(), None);
    assert_eq!(
        x.check(Algorithm::EdDSA, KeyOperation::Verify)
            .unwrap_err()
            .code(),
        ErrorCode::KeyUnsuitable
    );
}

#[test]
fn alg_member_must_be_registered() {
    let e = Jwk::from_json(br#"{"kty":"oct","k":"AAAA","alg":"HS257"}"#).unwrap_err();
    assert_eq!(e.code(), ErrorCode::JwkInvalid);
    // JWE names are registered: the key parses, and cannot sign.
    let k = Jwk::from_json(
        br#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","alg":"A256KW"}"#,
    )
    .unwrap();
    assert_eq!(
        k.check(Algorithm::HS256, KeyOperation::Sign)
            .unwrap_err()
            .code(),
        ErrorCode::KeyUnsuitable
    );
    assert_eq!(
        Jwk::from_json(br#"{"kty":"oct","k":""}"#).unwrap_err(),
        err!(JwkInvalid, "symmetric key \"k\" is empty")
    );
    assert_eq!(
        Jwk::from_json(br#"{"kty":"oct","k":"AA=="}"#).unwrap_err(),
        err!(JwkInvalid, "\"k\" is not strict base64url")
    );
    assert_eq!(
        Jwk::from_json(br#"{"k":"AAAA"}"#).unwrap_err(),
        err!(JwkInvalid, "missing \"kty\"")
    );
    assert_eq!(
        Jwk::from_json(br#"{"kty":"oct","k":"AAAA","kid":7}"#).unwrap_err(),
        err!(JsonInvalid, "JWK member \"kid\" must be a string")
    );
}

#[test]
fn debug_output_hides_key_material() {
    let key = Jwk::generate(Algorithm::HS256, None, None).unwrap();
    let k = key.to_map()["k"].as_str().unwrap().to_owned();
    assert!(!format!("{key:?}").contains(&k));
}

#[test]
fn encryption_keys_and_alg_names() {
    use crate::jwe::{ContentEncryption as Enc, KeyManagement as Km};
    // A generated dir key is bound to its content encryption.
    let dir = Jwk::generate_for_encryption(Km::Dir, Some(Enc::A256GCM), None, None, None).unwrap();
    assert_eq!(dir.alg(), Some("A256GCM"));
    assert_eq!(dir.check_encryption(Km::Dir, Enc::A256GCM, true), Ok(()));
    assert_eq!(
        dir.check_encryption(Km::Dir, Enc::A128CBC_HS256, true)
            .unwrap_err()
            .code(),
        ErrorCode::KeyUnsuitable
    );
    // set_alg_name takes JWS and JWE names, and checks the type.
    let mut m = Jwk::generate(Algorithm::ES256, None, None)
        .unwrap()
        .to_public()
        .unwrap()
        .to_map();
    m.remove("alg");
    let mut ec = Jwk::from_map(&m).unwrap();
    ec.set_alg_name("ECDH-ES+A128KW").unwrap();
    assert_eq!(ec.alg(), Some("ECDH-ES+A128KW"));
    assert_eq!(
        ec.set_alg_name("RSA-OAEP").unwrap_err().code(),
        ErrorCode::KeyUnsuitable
    );
    assert_eq!(
        ec.set_alg_name("RSA1_5").unwrap_err().code(),
        ErrorCode::NotSupported
    );
    ec.set_alg_name("ES256").unwrap();
    let mut oct = Jwk::from_json(br#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}"#).unwrap();
    oct.set_alg_name("A128GCM").unwrap();
    assert_eq!(
        oct.set_alg_name("A256GCM").unwrap_err().code(),
        ErrorCode::KeyUnsuitable
    );
    oct.set_alg_name("A128KW").unwrap();
}
