//! Sign-then-verify for every algorithm and serialization, over random payloads and headers,
//! and key import/export round trips.

use std::sync::OnceLock;

use jose::jws::{self, json::Form, HeaderParams, VerifyOptions};
use jose::jwt::{self, Validation};
use jose::{Algorithm, ErrorCode, Jwk};
use proptest::prelude::*;

/// One key per algorithm, generated once (RSA generation is slow in debug builds).
fn key(alg: Algorithm) -> &'static Jwk {
    static KEYS: OnceLock<Vec<Jwk>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        Algorithm::ALL
            .iter()
            .map(|a| Jwk::generate(*a, None, None).unwrap())
            .collect()
    });
    let i = Algorithm::ALL.iter().position(|a| *a == alg).unwrap();
    &keys[i]
}

fn verifier(alg: Algorithm) -> Jwk {
    let k = key(alg);
    if k.is_symmetric() {
        Jwk::from_json(k.to_json().as_bytes()).unwrap()
    } else {
        k.to_public().unwrap()
    }
}

fn any_alg() -> impl Strategy<Value = Algorithm> {
    proptest::sample::select(Algorithm::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compact_round_trip(alg in any_alg(), payload in proptest::collection::vec(any::<u8>(), 0..512), cty in "[a-z]{0,8}") {
        let params = HeaderParams::default().with("cty", cty);
        let token = jws::compact::sign(&payload, key(alg), alg, &params).unwrap();
        let v = verifier(alg);
        let got = jws::compact::verify(&token, &v, &VerifyOptions::new([alg])).unwrap();
        prop_assert_eq!(&got.payload, &payload);
        prop_assert_eq!(got.header.alg(), alg);
        prop_assert_eq!(got.header.kid(), key(alg).kid());
        // Detached form, and the key's own algorithm as the only allowed one.
        let det = jws::compact::sign_detached(&payload, key(alg), alg, &params).unwrap();
        prop_assert!(det.contains(".."));
        let got = jws::compact::verify_detached(&det, &payload, &v, &VerifyOptions::from_key()).unwrap();
        prop_assert_eq!(got.payload, payload.clone());
        // Any other payload fails.
        let mut other = payload.clone();
        other.push(0);
        let e = jws::compact::verify_detached(&det, &other, &v, &VerifyOptions::new([alg])).unwrap_err();
        prop_assert_eq!(e.code(), ErrorCode::SignatureInvalid);
    }

    #[test]
    fn json_round_trip(alg in any_alg(), payload in proptest::collection::vec(any::<u8>(), 0..256), general in any::<bool>()) {
        let mut params = HeaderParams::default();
        params.unprotected.insert("note".into(), "unprotected".into());
        let sig = jws::json::Signature { key: key(alg), alg, params: &params };
        let form = if general { Form::General } else { Form::Flattened };
        let doc = jws::json::sign(&payload, &[sig], form, false).unwrap();
        let got = jws::json::verify(&doc, &verifier(alg), &VerifyOptions::new([alg])).unwrap();
        prop_assert_eq!(got.payload, payload);
        prop_assert_eq!(got.verified.len(), 1);
        prop_assert_eq!(got.verified[0].get("note").and_then(|v| v.as_str()), Some("unprotected"));
    }

    #[test]
    fn jwt_round_trip(alg in any_alg(), sub in "[ -~]{0,40}", scope in "[a-z:]{0,30}") {
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), "https://issuer.example".into());
        claims.insert("aud".into(), serde_json::json!(["https://api.example", "other"]));
        claims.insert("sub".into(), sub.clone().into());
        claims.insert("scope".into(), scope.into());
        claims.insert("exp".into(), 4_102_444_800u64.into());
        let token = jwt::sign(&claims, key(alg), alg, Some("at+jwt")).unwrap();
        let v = Validation::new().algorithms([alg]).issuer("https://issuer.example").audience("https://api.example").typ("at+jwt");
        let got = jwt::verify(&token, &verifier(alg), &v).unwrap();
        prop_assert_eq!(got.claims.sub(), Some(sub.as_str()));
        prop_assert_eq!(got.claims.as_map(), &claims);
    }
}

#[test]
fn multiple_signatures_with_mixed_algorithms() {
    let algs = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256];
    let params = HeaderParams::default();
    let sigs: Vec<_> = algs
        .iter()
        .map(|a| jws::json::Signature {
            key: key(*a),
            alg: *a,
            params: &params,
        })
        .collect();
    let doc = jws::json::sign(b"payload", &sigs, Form::General, false).unwrap();
    let set = jose::JwkSet::new(algs.iter().map(|a| verifier(*a)).collect()).unwrap();
    let got = jws::json::verify(&doc, &set, &VerifyOptions::new(algs)).unwrap();
    assert_eq!(got.verified.len(), 3);
    // Flattened refuses several signatures.
    assert!(jws::json::sign(b"payload", &sigs, Form::Flattened, false).is_err());
}

#[test]
fn unencoded_payload_round_trip() {
    let alg = Algorithm::HS256;
    let params = HeaderParams::default()
        .with("b64", false)
        .with("crit", serde_json::json!(["b64"]));
    let token = jws::compact::sign(b"$.02 and more", key(alg), alg, &params);
    assert_eq!(
        token.unwrap_err().code(),
        ErrorCode::InvalidOptions,
        "'.' cannot appear attached in compact form"
    );
    let token = jws::compact::sign_detached(b"$.02", key(alg), alg, &params).unwrap();
    let got = jws::compact::verify_detached(&token, b"$.02", key(alg), &VerifyOptions::new([alg]))
        .unwrap();
    assert!(!got.header.b64());
    let sig = jws::json::Signature {
        key: key(alg),
        alg,
        params: &params,
    };
    let doc = jws::json::sign(b"$.02", &[sig], Form::Flattened, false).unwrap();
    assert!(doc.contains("\"payload\":\"$.02\""));
    assert_eq!(
        jws::json::verify(&doc, key(alg), &VerifyOptions::new([alg]))
            .unwrap()
            .payload,
        b"$.02"
    );
}

#[test]
fn pem_round_trips_keep_the_thumbprint() {
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ] {
        let private = key(alg);
        for k in [
            Jwk::from_json(private.to_json().as_bytes()).unwrap(),
            private.to_public().unwrap(),
        ] {
            let pem = k.to_pem().unwrap();
            let back = Jwk::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(back.thumbprint(), k.thumbprint(), "{alg}");
            assert_eq!(back.is_private(), k.is_private(), "{alg}");
            if back.is_private() {
                // The re-imported private key signs tokens the original public key accepts.
                let token = jws::compact::sign(b"x", &back, alg, &HeaderParams::default()).unwrap();
                jws::compact::verify(
                    &token,
                    &private.to_public().unwrap(),
                    &VerifyOptions::new([alg]),
                )
                .unwrap();
            }
        }
    }
    assert_eq!(
        key(Algorithm::HS256).to_pem().unwrap_err().code(),
        ErrorCode::KeyUnsuitable
    );
}

#[test]
fn foreign_pem_formats_import() {
    // PKCS#1 and SEC1 documents from other tools (PyJWT's fixtures are JWK; make PKCS#1 and
    // SEC1 here from our own DER through the format crates).
    use der::Encode;
    fn uint(b: &[u8]) -> pkcs1::UintRef<'_> {
        pkcs1::UintRef::new(b).unwrap()
    }
    let rsa = key(Algorithm::RS256);
    let map = rsa.to_map();
    let get = |n: &str| jose::b64::decode(map[n].as_str().unwrap()).unwrap();
    let (n, e, d, p, q, dp, dq, qi) = (
        get("n"),
        get("e"),
        get("d"),
        get("p"),
        get("q"),
        get("dp"),
        get("dq"),
        get("qi"),
    );
    let pkcs1_private = pkcs1::RsaPrivateKey {
        modulus: uint(&n),
        public_exponent: uint(&e),
        private_exponent: uint(&d),
        prime1: uint(&p),
        prime2: uint(&q),
        exponent1: uint(&dp),
        exponent2: uint(&dq),
        coefficient: uint(&qi),
        other_prime_infos: None,
    }
    .to_der()
    .unwrap();
    let pem = pem_rfc7468::encode_string(
        "RSA PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &pkcs1_private,
    )
    .unwrap();
    assert_eq!(
        Jwk::from_pem(pem.as_bytes()).unwrap().thumbprint(),
        rsa.thumbprint()
    );
    let pkcs1_public = pkcs1::RsaPublicKey {
        modulus: uint(&n),
        public_exponent: uint(&e),
    }
    .to_der()
    .unwrap();
    let pem =
        pem_rfc7468::encode_string("RSA PUBLIC KEY", pem_rfc7468::LineEnding::LF, &pkcs1_public)
            .unwrap();
    let imported = Jwk::from_pem(pem.as_bytes()).unwrap();
    assert!(!imported.is_private());
    assert_eq!(imported.thumbprint(), rsa.thumbprint());

    // Garbage and unsupported labels are PEM errors, not panics.
    for bad in [
        "",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ] {
        assert!(Jwk::from_pem(bad.as_bytes()).is_err(), "{bad}");
    }
}

mod jwe_round_trips {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use jose::jwe::{
        self, json::Form, ContentEncryption as Enc, DecryptOptions, EncryptParams,
        KeyManagement as Km,
    };
    use jose::jwk::Curve;
    use jose::Jwk;
    use proptest::prelude::*;

    /// (algorithm, enc for dir keys, curve for ECDH keys), by name.
    type KeyId = (String, Option<String>, Option<String>);

    /// One recipient key per [`KeyId`], generated once.
    fn key(alg: Km, enc: Enc, crv: Option<Curve>) -> &'static Jwk {
        static KEYS: OnceLock<HashMap<KeyId, Jwk>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            let mut m = HashMap::new();
            for alg in Km::ALL {
                let encs: Vec<Option<Enc>> = if alg == Km::Dir {
                    Enc::ALL.iter().copied().map(Some).collect()
                } else {
                    vec![None]
                };
                let crvs: Vec<Option<Curve>> = if alg.name().starts_with("ECDH") {
                    vec![
                        Some(Curve::P256),
                        Some(Curve::P384),
                        Some(Curve::P521),
                        Some(Curve::X25519),
                    ]
                } else {
                    vec![None]
                };
                for e in &encs {
                    for c in &crvs {
                        let k = Jwk::generate_for_encryption(alg, *e, *c, None, None).unwrap();
                        m.insert(
                            (
                                alg.name().to_owned(),
                                e.map(|x| x.name().to_owned()),
                                c.map(|x| x.name().to_owned()),
                            ),
                            k,
                        );
                    }
                }
            }
            m
        });
        let dir_enc = (alg == Km::Dir).then(|| enc.name().to_owned());
        &keys[&(
            alg.name().to_owned(),
            dir_enc,
            crv.map(|c| c.name().to_owned()),
        )]
    }

    fn public(k: &Jwk) -> Jwk {
        if k.is_symmetric() {
            Jwk::from_json(k.to_json().as_bytes()).unwrap()
        } else {
            k.to_public().unwrap()
        }
    }

    fn curve_for(alg: Km, pick: usize) -> Option<Curve> {
        alg.name()
            .starts_with("ECDH")
            .then(|| [Curve::P256, Curve::P384, Curve::P521, Curve::X25519][pick % 4])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn every_alg_and_enc_round_trips(
            alg in proptest::sample::select(Km::ALL.to_vec()),
            enc in proptest::sample::select(Enc::ALL.to_vec()),
            pick in 0usize..4,
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
            zip in any::<bool>(),
            json in any::<bool>(),
        ) {
            let crv = curve_for(alg, pick);
            let private = key(alg, enc, crv);
            let recipient = public(private);
            let params = EncryptParams { zip, apu: Some(b"alice".to_vec()), apv: Some(b"bob".to_vec()), ..Default::default() };
            let opts = DecryptOptions::from_key();
            let got = if json {
                let r = jwe::json::Recipient { key: &recipient, alg };
                let doc = jwe::json::encrypt(&plaintext, &[r], enc, &params, Some(b"extra"), Form::Flattened).unwrap();
                jwe::json::decrypt(&doc, private, &opts).unwrap()
            } else {
                let token = jwe::compact::encrypt(&plaintext, &recipient, alg, enc, &params).unwrap();
                prop_assert_eq!(token.split('.').count(), 5);
                jwe::compact::decrypt(&token, private, &opts).unwrap()
            };
            prop_assert_eq!(got.plaintext, plaintext);
            prop_assert_eq!(got.header.alg(), alg);
            prop_assert_eq!(got.header.enc(), enc);
        }
    }

    #[test]
    fn general_json_to_several_recipients() {
        let algs = [
            Km::RSA_OAEP_256,
            Km::ECDH_ES_A128KW,
            Km::A256GCMKW,
            Km::PBES2_HS256_A128KW,
        ];
        let enc = Enc::A256CBC_HS512;
        let publics: Vec<Jwk> = algs
            .iter()
            .map(|a| public(key(*a, enc, curve_for(*a, 3))))
            .collect();
        let recipients: Vec<_> = algs
            .iter()
            .zip(&publics)
            .map(|(a, k)| jwe::json::Recipient { key: k, alg: *a })
            .collect();
        let mut params = EncryptParams::default();
        params.unprotected.insert("note".into(), "shared".into());
        let doc = jwe::json::encrypt(
            b"to all of you",
            &recipients,
            enc,
            &params,
            Some(b"aad"),
            Form::General,
        )
        .unwrap();
        for a in algs {
            let got = jwe::json::decrypt(
                &doc,
                key(a, enc, curve_for(a, 3)),
                &DecryptOptions::from_key(),
            )
            .unwrap();
            assert_eq!(got.plaintext, b"to all of you");
            assert_eq!(got.header.alg(), a);
            assert_eq!(got.header.get_str("note"), Some("shared"));
        }
        // The shared header may not repeat a protected member.
        let mut clash = EncryptParams::default();
        clash.unprotected.insert("enc".into(), "A128GCM".into());
        assert!(jwe::json::encrypt(b"x", &recipients, enc, &clash, None, Form::General).is_err());
        // Direct modes fix the CEK: only one recipient.
        let d = public(key(Km::Dir, enc, None));
        let two = [
            jwe::json::Recipient {
                key: &d,
                alg: Km::Dir,
            },
            recipients[0],
        ];
        assert!(jwe::json::encrypt(
            b"x",
            &two,
            enc,
            &EncryptParams::default(),
            None,
            Form::General
        )
        .is_err());
    }

    #[test]
    fn nested_jwt_round_trip() {
        let signer = Jwk::generate(jose::Algorithm::ES256, None, None).unwrap();
        let enc_key = key(Km::ECDH_ES_A256KW, Enc::A256GCM, Some(Curve::P256));
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), "https://issuer.example".into());
        claims.insert("aud".into(), "https://api.example".into());
        claims.insert("exp".into(), 4_102_444_800u64.into());
        let token = jose::jwt::sign_encrypted(
            &claims,
            &signer,
            jose::Algorithm::ES256,
            Some("at+jwt"),
            &public(enc_key),
            Km::ECDH_ES_A256KW,
            Enc::A256GCM,
        )
        .unwrap();
        let v = jose::jwt::Validation::new()
            .algorithms([jose::Algorithm::ES256])
            .issuer("https://issuer.example")
            .audience("https://api.example")
            .typ("at+jwt");
        let jwt = jose::jwt::decrypt_and_verify(
            &token,
            enc_key,
            &DecryptOptions::from_key(),
            &signer.to_public().unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(jwt.claims.as_map(), &claims);
        // The plain verifier refuses the encrypted form.
        assert_eq!(
            jose::jwt::verify(&token, &signer, &v).unwrap_err().code(),
            jose::ErrorCode::JwtInvalid
        );
    }
}

/// `jwt::unverified_issuer` reads `iss` as `jwt::verify` reads it, and refuses what verify
/// refuses for the claims, with the same code.
#[test]
fn unverified_issuer_agrees_with_verify() {
    let k = key(Algorithm::HS256);
    let v = verifier(Algorithm::HS256);
    // Signed as raw JWS payloads: jwt::sign would refuse the malformed claims.
    let sign = |claims: serde_json::Value| {
        jws::compact::sign(
            claims.to_string().as_bytes(),
            k,
            Algorithm::HS256,
            &HeaderParams::default(),
        )
        .unwrap()
    };
    let validation = || {
        Validation::new()
            .algorithms([Algorithm::HS256])
            .waive_issuer()
            .waive_audience()
            .allow_missing_exp()
    };
    let token = sign(serde_json::json!({"iss": "https://a.example", "sub": "s"}));
    assert_eq!(
        jwt::unverified_issuer(&token).unwrap().as_deref(),
        Some("https://a.example")
    );
    assert_eq!(
        jwt::verify(&token, &v, &validation()).unwrap().claims.iss(),
        Some("https://a.example")
    );
    let token = sign(serde_json::json!({"sub": "s"}));
    assert_eq!(jwt::unverified_issuer(&token).unwrap(), None);
    for bad in [
        serde_json::json!({"iss": 7}),
        serde_json::json!({"iss": ["https://a.example"]}),
        serde_json::json!({"exp": "soon"}),
    ] {
        let token = sign(bad.clone());
        let peeked = jwt::unverified_issuer(&token).unwrap_err().code();
        let verified = jwt::verify(&token, &v, &validation()).unwrap_err().code();
        assert_eq!(peeked, verified, "{bad}");
    }
    // Not a JWS at all: JWT errors, never a panic.
    for bad in ["", "a.b", "a.b.c.d.e", "e30.%%%.sig", "e30.WzFd.sig"] {
        assert!(jwt::unverified_issuer(bad).is_err(), "{bad}");
    }
}
