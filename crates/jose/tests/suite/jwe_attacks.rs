//! One test per JWE attack class, checking the exact error code.

use jose::jwe::{
    self, json::Form, ContentEncryption as Enc, DecryptOptions, EncryptParams, KeyManagement as Km,
};
use jose::{Algorithm, ErrorCode, Jwk};
use serde_json::{json, Map, Value};

use crate::common::b64;

fn code<T: std::fmt::Debug>(r: Result<T, jose::Error>) -> ErrorCode {
    r.expect_err("must be rejected").code()
}

fn key(alg: Km, enc: Option<Enc>) -> Jwk {
    Jwk::generate_for_encryption(alg, enc, None, None, None).unwrap()
}

fn encrypt(plaintext: &[u8], k: &Jwk, alg: Km, enc: Enc) -> String {
    jwe::compact::encrypt(plaintext, k, alg, enc, &EncryptParams::default()).unwrap()
}

/// Replaces segment `i` of a compact JWE.
fn with_segment(token: &str, i: usize, value: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = value;
    parts.join(".")
}

fn header_of(token: &str) -> Map<String, Value> {
    jwe::compact::decode_header_unverified(token).unwrap()
}

/// Re-signs nothing: rebuilding the header changes the AAD, which is what a tamperer does.
fn with_header(token: &str, header: &Map<String, Value>) -> String {
    with_segment(token, 0, &b64(Value::Object(header.clone()).to_string()))
}

#[test]
fn invalid_curve_and_off_curve_epk() {
    let k = key(Km::ECDH_ES_A128KW, None);
    let token = encrypt(b"secret", &k, Km::ECDH_ES_A128KW, Enc::A128GCM);
    let opts = DecryptOptions::new([Km::ECDH_ES_A128KW]);
    let mut h = header_of(&token);
    // A point on P-384 sent to a P-256 recipient.
    let other = Jwk::generate(Algorithm::ES384, None, None)
        .unwrap()
        .to_public()
        .unwrap()
        .to_map();
    let mut epk = Map::new();
    for m in ["kty", "crv", "x", "y"] {
        epk.insert(m.into(), other[m].clone());
    }
    h.insert("epk".into(), Value::Object(epk.clone()));
    assert_eq!(
        code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
        ErrorCode::JweInvalid
    );
    // Off the curve: the original x with a different y; and the "identity" (0, 0).
    let original = header_of(&token)["epk"].clone();
    for y in [b64([7u8; 32]), b64([0u8; 32])] {
        let mut e = original.as_object().unwrap().clone();
        if y == b64([0u8; 32]) {
            e.insert("x".into(), b64([0u8; 32]).into());
        }
        e.insert("y".into(), y.into());
        h.insert("epk".into(), Value::Object(e));
        assert_eq!(
            code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
            ErrorCode::JweInvalid
        );
    }
    // A private key as epk, and no epk at all.
    let mut e = original.as_object().unwrap().clone();
    e.insert("d".into(), b64([1u8; 32]).into());
    h.insert("epk".into(), Value::Object(e));
    assert_eq!(
        code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
        ErrorCode::JweInvalid
    );
    h.remove("epk");
    assert_eq!(
        code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
        ErrorCode::JweInvalid
    );
}

#[test]
fn low_order_x25519_epk() {
    let k = Jwk::generate_for_encryption(
        Km::ECDH_ES,
        None,
        Some(jose::jwk::Curve::X25519),
        None,
        None,
    )
    .unwrap();
    let token = encrypt(b"secret", &k, Km::ECDH_ES, Enc::A256GCM);
    let mut h = header_of(&token);
    // The all-zero point has order 1: the shared secret would be zero.
    h.insert(
        "epk".into(),
        json!({"kty": "OKP", "crv": "X25519", "x": b64([0u8; 32])}),
    );
    assert_eq!(
        code(jwe::compact::decrypt(
            &with_header(&token, &h),
            &k,
            &DecryptOptions::from_key()
        )),
        ErrorCode::DecryptionFailed
    );
}

#[test]
fn hostile_p2c_values_fail_before_any_pbkdf2_work() {
    let k =
        Jwk::from_json(br#"{"kty":"oct","k":"cGFzc3dvcmQ","alg":"PBES2-HS256+A128KW"}"#).unwrap();
    let token = encrypt(b"secret", &k, Km::PBES2_HS256_A128KW, Enc::A128GCM);
    let opts = DecryptOptions::from_key();
    assert_eq!(
        jwe::compact::decrypt(&token, &k, &opts).unwrap().plaintext,
        b"secret"
    );
    for p2c in [
        json!(4_000_000_000u64),
        json!(u64::MAX),
        json!(0),
        json!(-1),
        json!(1.5),
        json!("1000"),
        json!(null),
        json!(100_001),
    ] {
        let mut h = header_of(&token);
        h.insert("p2c".into(), p2c.clone());
        assert_eq!(
            code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
            ErrorCode::JweInvalid,
            "{p2c}"
        );
    }
    // The maximum is the caller's to set.
    let mut strict = DecryptOptions::from_key();
    strict.max_p2c = 1000;
    assert_eq!(
        code(jwe::compact::decrypt(&token, &k, &strict)),
        ErrorCode::JweInvalid
    );
    // A short salt input is refused too (RFC 7518 §4.8.1.1: at least 8 bytes).
    let mut h = header_of(&token);
    h.insert("p2s".into(), b64([1u8; 4]).into());
    assert_eq!(
        code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
        ErrorCode::JweInvalid
    );
}

#[test]
fn deflate_bomb_stops_at_the_cap() {
    let k = key(Km::Dir, Some(Enc::A256GCM));
    // 100 MB of zeros compresses to about 100 KB.
    let bomb = vec![0u8; 100 * 1024 * 1024];
    let params = EncryptParams {
        zip: true,
        ..Default::default()
    };
    let token = jwe::compact::encrypt(&bomb, &k, Km::Dir, Enc::A256GCM, &params);
    drop(bomb);
    // The compact token itself exceeds the default size limit, so lift that one only.
    let token = token.unwrap();
    let mut opts = DecryptOptions::from_key();
    opts.max_len = usize::MAX;
    assert_eq!(
        code(jwe::compact::decrypt(&token, &k, &opts)),
        ErrorCode::TooLarge
    );
    // Under the cap, compression round-trips.
    let small = jwe::compact::encrypt(&[b'a'; 1000], &k, Km::Dir, Enc::A256GCM, &params).unwrap();
    assert_eq!(
        jwe::compact::decrypt(&small, &k, &DecryptOptions::from_key())
            .unwrap()
            .plaintext,
        [b'a'; 1000]
    );
}

#[test]
fn zip_outside_the_protected_header() {
    let k = key(Km::A128KW, None);
    let params = EncryptParams {
        zip: true,
        ..Default::default()
    };
    let doc = jwe::json::encrypt(
        b"hello",
        &[jwe::json::Recipient {
            key: &k,
            alg: Km::A128KW,
        }],
        Enc::A128GCM,
        &params,
        None,
        Form::Flattened,
    )
    .unwrap();
    let opts = DecryptOptions::from_key();
    assert_eq!(
        jwe::json::decrypt(&doc, &k, &opts).unwrap().plaintext,
        b"hello"
    );
    let mut d: Map<String, Value> = serde_json::from_str(&doc).unwrap();
    d.insert("unprotected".into(), json!({"zip": "DEF"}));
    assert_eq!(
        code(jwe::json::decrypt(
            &Value::Object(d.clone()).to_string(),
            &k,
            &opts
        )),
        ErrorCode::JweInvalid
    );
    d.remove("unprotected");
    d.insert("header".into(), json!({"zip": "DEF"}));
    assert_eq!(
        code(jwe::json::decrypt(&Value::Object(d).to_string(), &k, &opts)),
        ErrorCode::JweInvalid
    );
}

#[test]
fn cbc_hmac_tampering_is_one_indistinguishable_error() {
    for enc in [Enc::A128CBC_HS256, Enc::A192CBC_HS384, Enc::A256CBC_HS512] {
        let k = key(Km::Dir, Some(enc));
        let token = encrypt(b"attack at dawn, bring snacks", &k, Km::Dir, enc);
        let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let opts = DecryptOptions::from_key();
        let tag = jose::b64::decode(&parts[4]).unwrap();
        let ct = jose::b64::decode(&parts[3]).unwrap();
        let iv = jose::b64::decode(&parts[2]).unwrap();
        let mut flipped_ct = ct.clone();
        *flipped_ct.last_mut().unwrap() ^= 1; // the padding block
        let mut flipped_iv = iv.clone();
        flipped_iv[0] ^= 1;
        let mut flipped_tag = tag.clone();
        flipped_tag[0] ^= 1;
        let cases = [
            with_segment(&token, 4, &b64(&tag[..tag.len() / 2])), // truncated tag
            with_segment(&token, 4, &b64(&tag[..tag.len() - 1])),
            with_segment(&token, 4, &b64(&flipped_tag)),
            with_segment(&token, 3, &b64(&flipped_ct)), // padding tampered
            with_segment(&token, 3, &b64(&ct[..ct.len() - 16])), // block removed
            with_segment(&token, 2, &b64(&flipped_iv)),
        ];
        for bad in cases {
            let e = jwe::compact::decrypt(&bad, &k, &opts).unwrap_err();
            assert_eq!(
                (e.code(), e.reason()),
                (ErrorCode::DecryptionFailed, "decryption failed"),
                "{enc}"
            );
        }
        // A changed header changes the AAD.
        let mut h = header_of(&token);
        h.insert("cty".into(), "x".into());
        assert_eq!(
            code(jwe::compact::decrypt(&with_header(&token, &h), &k, &opts)),
            ErrorCode::DecryptionFailed
        );
    }
}

#[test]
fn gcm_tag_truncation() {
    let k = key(Km::A256KW, None);
    let token = encrypt(b"hello", &k, Km::A256KW, Enc::A256GCM);
    let tag = jose::b64::decode(token.rsplit('.').next().unwrap()).unwrap();
    for len in [0, 4, 12, 15] {
        let bad = with_segment(&token, 4, &b64(&tag[..len]));
        assert_eq!(
            code(jwe::compact::decrypt(&bad, &k, &DecryptOptions::from_key())),
            ErrorCode::DecryptionFailed
        );
    }
}

#[test]
fn encrypted_key_shape() {
    let k = key(Km::A128KW, None);
    let token = encrypt(b"hello", &k, Km::A128KW, Enc::A128GCM);
    let opts = DecryptOptions::from_key();
    // Empty encrypted key with key wrap; a wrapped key of the wrong length.
    assert_eq!(
        code(jwe::compact::decrypt(
            &with_segment(&token, 1, ""),
            &k,
            &opts
        )),
        ErrorCode::JweInvalid
    );
    let ek = jose::b64::decode(token.split('.').nth(1).unwrap()).unwrap();
    assert_eq!(
        code(jwe::compact::decrypt(
            &with_segment(&token, 1, &b64(&ek[..16])),
            &k,
            &opts
        )),
        ErrorCode::JweInvalid
    );
    // A wrapped key that fails to unwrap surfaces only as the content failure.
    let mut bad = ek.clone();
    bad[3] ^= 1;
    assert_eq!(
        code(jwe::compact::decrypt(
            &with_segment(&token, 1, &b64(&bad)),
            &k,
            &opts
        )),
        ErrorCode::DecryptionFailed
    );
    // dir must have an empty encrypted key.
    let d = key(Km::Dir, Some(Enc::A128GCM));
    let t = encrypt(b"hello", &d, Km::Dir, Enc::A128GCM);
    assert_eq!(
        code(jwe::compact::decrypt(
            &with_segment(&t, 1, &b64([1u8; 24])),
            &d,
            &DecryptOptions::from_key()
        )),
        ErrorCode::JweInvalid
    );
}

#[test]
fn wrong_keys_fail_alike() {
    let opts = DecryptOptions::from_key();
    for alg in [Km::A128KW, Km::RSA_OAEP_256, Km::ECDH_ES_A256KW] {
        let right = key(alg, None);
        let wrong = key(alg, None);
        let public = if right.is_symmetric() {
            Jwk::from_json(right.to_json().as_bytes()).unwrap()
        } else {
            right.to_public().unwrap()
        };
        let token = encrypt(b"hello", &public, alg, Enc::A128CBC_HS256);
        assert_eq!(
            jwe::compact::decrypt(&token, &right, &opts)
                .unwrap()
                .plaintext,
            b"hello"
        );
        // kid differs, so pass keys that ignore it: a single key is used as given.
        assert_eq!(
            code(jwe::compact::decrypt(&token, &wrong, &opts)),
            ErrorCode::DecryptionFailed,
            "{alg}"
        );
        // A public key cannot decrypt.
        if !right.is_symmetric() {
            assert_eq!(
                code(jwe::compact::decrypt(&token, &public, &opts)),
                ErrorCode::AlgNotAllowed
            );
        }
    }
}

#[test]
fn dir_with_a_key_of_the_wrong_size() {
    let k16 = key(Km::Dir, Some(Enc::A128GCM));
    let token = encrypt(b"hello", &k16, Km::Dir, Enc::A128GCM);
    let mut h = header_of(&token);
    h.insert("enc".into(), "A256GCM".into());
    let e = jwe::compact::decrypt(
        &with_header(&token, &h),
        &k16,
        &DecryptOptions::new([Km::Dir]),
    );
    assert_eq!(code(e), ErrorCode::AlgNotAllowed);
    let k32 = Jwk::from_json(br#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#)
        .unwrap();
    assert_eq!(
        code(jwe::compact::encrypt(
            b"x",
            &k32,
            Km::Dir,
            Enc::A128GCM,
            &EncryptParams::default()
        )),
        ErrorCode::KeyUnsuitable
    );
}

#[test]
fn allow_lists_and_wrong_token_kinds() {
    let k = key(Km::RSA_OAEP_256, None);
    let token = encrypt(
        b"hello",
        &k.to_public().unwrap(),
        Km::RSA_OAEP_256,
        Enc::A256GCM,
    );
    assert_eq!(
        code(jwe::compact::decrypt(
            &token,
            &k,
            &DecryptOptions::new([Km::RSA_OAEP])
        )),
        ErrorCode::AlgNotAllowed
    );
    let only_cbc = DecryptOptions::from_key().encryptions([Enc::A256CBC_HS512]);
    assert_eq!(
        code(jwe::compact::decrypt(&token, &k, &only_cbc)),
        ErrorCode::AlgNotAllowed
    );
    // A JWS where a JWE is required.
    let signer = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let jws =
        jose::jws::compact::sign(b"x", &signer, Algorithm::ES256, &Default::default()).unwrap();
    assert_eq!(
        code(jwe::compact::decrypt(&jws, &k, &DecryptOptions::from_key())),
        ErrorCode::JweInvalid
    );
    // Garbage of every shape, each refused for what is wrong with it first.
    let dots = ".".repeat(1 << 20);
    for (bad, expected) in [
        ("", ErrorCode::JweInvalid),             // not five segments
        ("....", ErrorCode::JsonInvalid),        // an empty header is not JSON
        ("a.b.c.d.e", ErrorCode::Base64Invalid), // "a" is not base64url
        ("{}", ErrorCode::JweInvalid),           // JSON where compact is expected
        (dots.as_str(), ErrorCode::TooLarge),    // over the size limit, before parsing
    ] {
        assert_eq!(
            code(jwe::compact::decrypt(bad, &k, &DecryptOptions::from_key())),
            expected,
            "{:.20}",
            bad
        );
    }
    // A symmetric key without alg decides nothing.
    let bare = Jwk::from_json(br#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}"#).unwrap();
    let t = encrypt(b"x", &bare, Km::A128KW, Enc::A128GCM);
    assert_eq!(
        code(jwe::compact::decrypt(
            &t,
            &bare,
            &DecryptOptions::from_key()
        )),
        ErrorCode::InvalidOptions
    );
    assert_eq!(
        jwe::compact::decrypt(&t, &bare, &DecryptOptions::new([Km::A128KW]))
            .unwrap()
            .plaintext,
        b"x"
    );
}

#[test]
fn oversized_json_headers_are_refused_before_decoding() {
    let k = key(Km::A128KW, None);
    let big = b64(vec![b'a'; 9000]);
    let jwe_doc = json!({"protected": big, "encrypted_key": "AA", "iv": "AA", "ciphertext": "AA", "tag": "AA"});
    assert_eq!(
        code(jwe::json::decrypt(
            &jwe_doc.to_string(),
            &k,
            &DecryptOptions::from_key()
        )),
        ErrorCode::TooLarge
    );
    let jws_doc = json!({"protected": big, "payload": "", "signature": "AA"});
    let hs = Jwk::generate(Algorithm::HS256, None, None).unwrap();
    let opts = jose::jws::VerifyOptions::new([Algorithm::HS256]);
    assert_eq!(
        code(jose::jws::json::verify(&jws_doc.to_string(), &hs, &opts)),
        ErrorCode::TooLarge
    );
}

#[test]
fn pbes2_count_is_the_callers_within_bounds() {
    let k =
        Jwk::from_json(br#"{"kty":"oct","k":"cGFzc3dvcmQ","alg":"PBES2-HS512+A256KW"}"#).unwrap();
    let params = EncryptParams {
        pbes2_count: Some(4096),
        ..Default::default()
    };
    let token =
        jwe::compact::encrypt(b"x", &k, Km::PBES2_HS512_A256KW, Enc::A256GCM, &params).unwrap();
    assert_eq!(header_of(&token)["p2c"], json!(4096));
    assert_eq!(
        jwe::compact::decrypt(&token, &k, &DecryptOptions::from_key())
            .unwrap()
            .plaintext,
        b"x"
    );
    let default = jwe::compact::encrypt(
        b"x",
        &k,
        Km::PBES2_HS512_A256KW,
        Enc::A256GCM,
        &EncryptParams::default(),
    )
    .unwrap();
    // What panva/jose (10 000) and jwcrypto (16 384) accept with their default caps.
    assert_eq!(header_of(&default)["p2c"], json!(10_000));
    // Too weak, and more than decryption accepts by default (hours of work for a token
    // nobody opens): both refused before any PBKDF2 work.
    for count in [999, jose::jwe::DEFAULT_MAX_P2C + 1, u32::MAX] {
        let params = EncryptParams {
            pbes2_count: Some(count),
            ..Default::default()
        };
        assert_eq!(
            code(jwe::compact::encrypt(
                b"x",
                &k,
                Km::PBES2_HS512_A256KW,
                Enc::A256GCM,
                &params
            )),
            ErrorCode::InvalidOptions,
            "{count}"
        );
    }
}
