//! One test per attack class. Each forges the token an attacker would send and checks the
//! exact error code, so a rejection for the wrong reason does not pass.

use jose::jws::{self, HeaderParams, VerifyOptions};
use jose::jwt::{self, Validation};
use jose::{Algorithm, ErrorCode, Jwk, JwkSet};
use serde_json::{json, Map, Value};

use crate::common::{b64, fresh_token, hex, jwk, load, only};

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, msg).as_ref().to_vec()
}

/// A compact token with an arbitrary header and payload, HMAC-signed with `secret`.
fn forge_hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = hmac(secret, input.as_bytes());
    format!("{input}.{}", b64(sig))
}

fn code<T: std::fmt::Debug>(r: Result<T, jose::Error>) -> ErrorCode {
    r.expect_err("must be rejected").code()
}

/// The RFC 7520 §3.5 HMAC key, which forged tokens below are signed with.
const HS_SECRET_B64: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

fn hs_secret() -> Vec<u8> {
    jose::b64::decode(HS_SECRET_B64).unwrap()
}

fn hs_key() -> Jwk {
    let json = format!(r#"{{"kty":"oct","k":"{HS_SECRET_B64}","alg":"HS256"}}"#);
    Jwk::from_json(json.as_bytes()).unwrap()
}

fn validation() -> Validation {
    Validation::new()
        .algorithms([Algorithm::HS256])
        .issuer("iss")
        .audience("aud")
}

#[test]
fn alg_none_in_any_spelling() {
    let key = hs_key();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{alg}"}}"#);
        for sig in ["", "AAAA"] {
            let token = format!("{}.{}.{sig}", b64(&header), b64("{}"));
            // Even with every algorithm allowed, `none` cannot be named.
            let all = VerifyOptions::new(Algorithm::ALL);
            assert_eq!(
                code(jws::compact::verify(&token, &key, &all)),
                ErrorCode::NotSupported,
                "{alg}"
            );
            assert_eq!(
                code(jwt::verify(&token, &key, &validation())),
                ErrorCode::NotSupported
            );
        }
    }
}

#[test]
fn rsa_public_key_as_hmac_secret() {
    // The classic confusion: the attacker signs HS256 with the verifier's RSA public key,
    // in each form a careless library might feed to HMAC.
    let case = load("rfc7520/jws/4_1.rsa_v15_signature.json");
    let private = jwk(&case["input"]["key"]);
    let public = private.to_public().unwrap();
    let pem = public.to_pem().unwrap();
    let der = {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_std_decode(&body)
    };
    let jwk_json = public.to_json();
    let from_pem = Jwk::from_pem(pem.as_bytes()).unwrap();
    for secret in [pem.as_bytes(), &der[..], jwk_json.as_bytes()] {
        let token = forge_hs256(r#"{"alg":"HS256"}"#, r#"{"sub":"admin"}"#, secret);
        for key in [&public, &from_pem] {
            // With the key's own algorithm, with a list naming both, and with the key alone.
            assert_eq!(
                code(jws::compact::verify(&token, key, &only(Algorithm::RS256))),
                ErrorCode::AlgNotAllowed
            );
            let both = VerifyOptions::new([Algorithm::RS256, Algorithm::HS256]);
            assert_eq!(
                code(jws::compact::verify(&token, key, &both)),
                ErrorCode::AlgNotAllowed
            );
            assert_eq!(
                code(jws::compact::verify(
                    &token,
                    key,
                    &VerifyOptions::from_key()
                )),
                ErrorCode::AlgNotAllowed
            );
        }
    }
    // And the PEM text can never become a symmetric key: it is not JSON.
    assert_eq!(code(Jwk::from_json(pem.as_bytes())), ErrorCode::JsonInvalid);
}

fn base64_std_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn embedded_jwk_is_never_trusted() {
    let case = load("other/node-jose/jws.embedded_jwk.json");
    let token = case["output"]["compact"].as_str().unwrap();
    // The header carries a key; a verifier holding a different key must not use it.
    let other = Jwk::generate(Algorithm::PS256, None, None).unwrap();
    assert_eq!(
        code(jws::compact::verify(token, &other, &only(Algorithm::PS256))),
        ErrorCode::SignatureInvalid
    );
    let empty = JwkSet::new(Vec::new()).unwrap();
    assert_eq!(
        code(jws::compact::verify(token, &empty, &only(Algorithm::PS256))),
        ErrorCode::NoMatchingKey
    );

    // Forge one ourselves: attacker key in `jwk`, signed by the attacker.
    let attacker = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let params =
        HeaderParams::default().with("jwk", Value::Object(attacker.to_public().unwrap().to_map()));
    let forged = jws::compact::sign(b"{}", &attacker, Algorithm::ES256, &params).unwrap();
    let victim = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    assert_eq!(
        code(jws::compact::verify(
            &forged,
            &victim,
            &only(Algorithm::ES256)
        )),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn psychic_signatures() {
    // CVE-2022-21449: r = s = 0 must never verify, nor r or s equal to the group order.
    let (key, token) = fresh_token(Algorithm::ES256, b"{}");
    let prefix = token.rsplit_once('.').unwrap().0;
    let n = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut forged = vec![
        vec![0u8; 64],
        [n.clone(), n.clone()].concat(),
        [vec![0; 32], n.clone()].concat(),
    ];
    let mut one = vec![0u8; 32];
    one[31] = 1;
    forged.push([n, one].concat());
    for sig in forged {
        let t = format!("{prefix}.{}", b64(&sig));
        assert_eq!(
            code(jws::compact::verify(&t, &key, &only(Algorithm::ES256))),
            ErrorCode::SignatureInvalid
        );
    }
    // Wrong lengths too (DER instead of r||s, truncated).
    for len in [0, 63, 65, 72] {
        let t = format!("{prefix}.{}", b64(vec![1u8; len]));
        assert_eq!(
            code(jws::compact::verify(&t, &key, &only(Algorithm::ES256))),
            ErrorCode::SignatureInvalid
        );
    }
}

#[test]
fn duplicate_member_names() {
    let key = hs_key();
    let secret = hs_secret();
    let dup_header = forge_hs256(
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800}"#,
        &secret,
    );
    assert_eq!(
        code(jwt::verify(&dup_header, &key, &validation())),
        ErrorCode::JsonInvalid
    );
    let dup_claims = forge_hs256(
        r#"{"alg":"HS256"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800,"iss":"evil"}"#,
        &secret,
    );
    assert_eq!(
        code(jwt::verify(&dup_claims, &key, &validation())),
        ErrorCode::JwtInvalid
    );
    let nested = forge_hs256(
        r#"{"alg":"HS256"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800,"cnf":{"jkt":"a","jkt":"b"}}"#,
        &secret,
    );
    assert_eq!(
        code(jwt::verify(&nested, &key, &validation())),
        ErrorCode::JwtInvalid
    );
    // Sanity: the same tokens without duplicates pass.
    let fine = forge_hs256(
        r#"{"alg":"HS256"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800}"#,
        &secret,
    );
    jwt::verify(&fine, &key, &validation()).unwrap();
    // Keys too.
    assert_eq!(
        code(Jwk::from_json(br#"{"kty":"oct","k":"AAAA","k":"BBBB"}"#)),
        ErrorCode::JsonInvalid
    );
}

#[test]
fn bad_crit() {
    let key = hs_key();
    let secret = hs_secret();
    for header in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, // not understood
        r#"{"alg":"HS256","crit":[]}"#,              // empty
        r#"{"alg":"HS256","crit":["alg"]}"#,         // registered name
        r#"{"alg":"HS256","crit":["kid"],"kid":"x"}"#, // registered name
        r#"{"alg":"HS256","crit":["foo"]}"#,         // unknown and absent
        r#"{"alg":"HS256","crit":"b64","b64":false}"#, // not an array
        r#"{"alg":"HS256","crit":["b64","b64"],"b64":true}"#, // repeated
    ] {
        let token = forge_hs256(header, "{}", &secret);
        assert_eq!(
            code(jws::compact::verify(&token, &key, &only(Algorithm::HS256))),
            ErrorCode::CritInvalid,
            "{header}"
        );
    }
    // Understood by the caller, but it must still be present and protected.
    let mut opts = only(Algorithm::HS256);
    opts.crit = vec!["exp".into()];
    let absent = forge_hs256(r#"{"alg":"HS256","crit":["exp"]}"#, "{}", &secret);
    assert_eq!(
        code(jws::compact::verify(&absent, &key, &opts)),
        ErrorCode::CritInvalid
    );
    let present = forge_hs256(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, "{}", &secret);
    jws::compact::verify(&present, &key, &opts).unwrap();

    // `crit` in an unprotected header (JSON serialization).
    let protected = b64(r#"{"alg":"HS256"}"#);
    let payload = b64("{}");
    let sig = b64(hmac(&secret, format!("{protected}.{payload}").as_bytes()));
    let doc = json!({"payload": payload, "protected": protected, "header": {"crit": ["exp"], "exp": 1}, "signature": sig});
    assert_eq!(
        code(jws::json::verify(&doc.to_string(), &key, &opts)),
        ErrorCode::CritInvalid
    );
}

#[test]
fn b64_misuse() {
    let key = hs_key();
    let secret = hs_secret();
    // b64:false without crit: the RFC 7797 §4.2 header minus crit.
    let header = b64(r#"{"alg":"HS256","b64":false}"#);
    let sig = b64(hmac(&secret, format!("{header}.$.02").as_bytes()));
    let token = format!("{header}..{sig}");
    assert_eq!(
        code(jws::compact::verify_detached(
            &token,
            b"$.02",
            &key,
            &only(Algorithm::HS256)
        )),
        ErrorCode::CritInvalid
    );
    // Not a boolean.
    let token = forge_hs256(
        r#"{"alg":"HS256","b64":"false","crit":["b64"]}"#,
        "{}",
        &secret,
    );
    assert_eq!(
        code(jws::compact::verify(&token, &key, &only(Algorithm::HS256))),
        ErrorCode::JwsInvalid
    );
    // Inside a JWT, never, even when correctly marked critical.
    let claims = r#"{"iss":"iss","aud":"aud","exp":4102444800}"#;
    let header = b64(r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#);
    let dotted = r#"{"iss":"https://a.example"}"#;
    let sig = b64(hmac(&secret, format!("{header}.{dotted}").as_bytes()));
    let token = format!("{header}.{dotted}.{sig}");
    assert_eq!(
        code(jws::compact::verify(&token, &key, &only(Algorithm::HS256))),
        ErrorCode::JwsInvalid,
        "'.' inside an unencoded compact payload"
    );
    let token = forge_hs256(
        r#"{"alg":"HS256","b64":true,"crit":["b64"]}"#,
        claims,
        &secret,
    );
    jws::compact::verify(&token, &key, &only(Algorithm::HS256)).unwrap();
    assert_eq!(
        code(jwt::verify(&token, &key, &validation())),
        ErrorCode::CritInvalid
    );
    // b64 in an unprotected header.
    let protected = b64(r#"{"alg":"HS256"}"#);
    let sig = b64(hmac(&secret, format!("{protected}.hi").as_bytes()));
    let doc = json!({"payload": "hi", "protected": protected, "header": {"b64": false}, "signature": sig});
    assert_eq!(
        code(jws::json::verify(
            &doc.to_string(),
            &key,
            &only(Algorithm::HS256)
        )),
        ErrorCode::JwsInvalid
    );
}

fn claims(extra: Value) -> Map<String, Value> {
    let mut m = json!({"iss":"iss","aud":"aud","exp":4102444800u64})
        .as_object()
        .unwrap()
        .clone();
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    m
}

#[test]
fn wrong_typ() {
    let key = hs_key();
    let token = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, Some("JWT")).unwrap();
    assert_eq!(
        code(jwt::verify(&token, &key, &validation().typ("at+jwt"))),
        ErrorCode::TypInvalid
    );
    let untyped = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, None).unwrap();
    assert_eq!(
        code(jwt::verify(&untyped, &key, &validation().typ("at+jwt"))),
        ErrorCode::TypInvalid
    );
    let typed = jwt::sign(
        &claims(json!({})),
        &key,
        Algorithm::HS256,
        Some("application/at+jwt"),
    )
    .unwrap();
    jwt::verify(&typed, &key, &validation().typ("at+jwt")).unwrap();
}

#[test]
fn wrongly_typed_registered_claims() {
    let key = hs_key();
    let secret = hs_secret();
    for payload in [
        r#"{"iss":"iss","aud":"aud","exp":"4102444800"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800,"nbf":"0"}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800,"iat":null}"#,
        r#"{"iss":"iss","aud":5,"exp":4102444800}"#,
        r#"{"iss":"iss","aud":["aud",5],"exp":4102444800}"#,
        r#"{"iss":["iss"],"aud":"aud","exp":4102444800}"#,
        r#"{"iss":"iss","aud":"aud","exp":4102444800,"sub":1}"#,
    ] {
        let token = forge_hs256(r#"{"alg":"HS256"}"#, payload, &secret);
        assert_eq!(
            code(jwt::verify(&token, &key, &validation())),
            ErrorCode::JwtClaimInvalid,
            "{payload}"
        );
    }
    // A payload that is not an object is not a JWT.
    for payload in ["[]", "\"x\"", "1", "not json"] {
        let token = forge_hs256(r#"{"alg":"HS256"}"#, payload, &secret);
        assert_eq!(
            code(jwt::verify(&token, &key, &validation())),
            ErrorCode::JwtInvalid,
            "{payload}"
        );
    }
}

#[test]
fn jwe_and_json_where_a_compact_jws_is_expected() {
    let key = hs_key();
    let jwe =
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        code(jws::compact::verify(jwe, &key, &only(Algorithm::HS256))),
        ErrorCode::JwsInvalid
    );
    assert_eq!(
        code(jwt::verify(jwe, &key, &validation())),
        ErrorCode::JwtInvalid
    );
    let token = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, None).unwrap();
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let doc = json!({"protected": h, "payload": p, "signature": s}).to_string();
    jws::json::verify(&doc, &key, &only(Algorithm::HS256)).unwrap();
    assert_eq!(
        code(jwt::verify(&doc, &key, &validation())),
        ErrorCode::JwtInvalid
    );
}

#[test]
fn a_megabyte_of_dots_is_refused_before_any_work() {
    let key = hs_key();
    let dots = ".".repeat(1 << 20);
    assert_eq!(
        code(jws::compact::verify(&dots, &key, &only(Algorithm::HS256))),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(jwt::verify(&dots, &key, &validation())),
        ErrorCode::TooLarge
    );
    let mut small = VerifyOptions::new([Algorithm::HS256]);
    small.max_len = usize::MAX;
    assert_eq!(
        code(jws::compact::verify(&dots, &key, &small)),
        ErrorCode::JwsInvalid
    );
    // A huge header segment is refused by the header limit too.
    let big = format!("{}.e30.AA", "A".repeat(9000));
    assert_eq!(
        code(jws::compact::verify(&big, &key, &small)),
        ErrorCode::TooLarge
    );
}

#[test]
fn truncated_and_extra_segments() {
    let key = hs_key();
    let token = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, None).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    for bad in [
        parts[0].to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}."),
        format!("{token}.{}", parts[2]),
        format!(".{token}"),
        String::new(),
    ] {
        assert_eq!(
            code(jws::compact::verify(&bad, &key, &only(Algorithm::HS256))),
            ErrorCode::JwsInvalid,
            "{bad}"
        );
    }
    // Truncated signatures: a MAC compared in constant time never matches a prefix.
    let tag = jose::b64::decode(parts[2]).unwrap();
    for len in [0, 1, 16, 31] {
        let cut = format!("{}.{}.{}", parts[0], parts[1], b64(&tag[..len]));
        assert_eq!(
            code(jws::compact::verify(&cut, &key, &only(Algorithm::HS256))),
            ErrorCode::SignatureInvalid
        );
    }
}

#[test]
fn non_canonical_base64() {
    let key = hs_key();
    let token = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, None).unwrap();
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    for i in 0..3 {
        for mutate in [
            |s: &str| format!("{s}="),
            |s: &str| format!("{s} "),
            |s: &str| s.replace('_', "/").replace('-', "+") + "+",
            |s: &str| format!("{}\n{}", &s[..4], &s[4..]),
        ] {
            let mut p = parts.clone();
            p[i] = mutate(&p[i]);
            let t = p.join(".");
            assert_eq!(
                code(jws::compact::verify(&t, &key, &only(Algorithm::HS256))),
                ErrorCode::Base64Invalid,
                "segment {i}: {t}"
            );
        }
    }
    // A signature whose last character carries stray low bits decodes to the same bytes in a
    // lax decoder; strictly it is a different, invalid encoding.
    let sig = &parts[2];
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    // 32-byte HS256 tags encode to 43 chars: the last carries 2 unused bits.
    let tweaked = alphabet.chars().nth(idx | 1).unwrap();
    assert_ne!(tweaked, last);
    let t = format!(
        "{}.{}.{}{}",
        parts[0],
        parts[1],
        &sig[..sig.len() - 1],
        tweaked
    );
    assert_eq!(
        code(jws::compact::verify(&t, &key, &only(Algorithm::HS256))),
        ErrorCode::Base64Invalid
    );
}

#[test]
fn weak_and_mismatched_keys() {
    // HMAC key shorter than the hash.
    let short =
        Jwk::from_json(br#"{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg"}"#)
            .unwrap();
    let e =
        jws::compact::sign(b"x", &short, Algorithm::HS256, &HeaderParams::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyUnsuitable);
    // A public key cannot sign.
    let (key, _) = fresh_token(Algorithm::ES256, b"x");
    let e = jws::compact::sign(
        b"x",
        &key.to_public().unwrap(),
        Algorithm::ES256,
        &HeaderParams::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyUnsuitable);
    // ES384 with a P-256 key.
    let e = jws::compact::sign(b"x", &key, Algorithm::ES384, &HeaderParams::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyUnsuitable);
    // `use: enc` and key_ops without verify.
    let mut m = key.to_public().unwrap().to_map();
    m.insert("use".into(), "enc".into());
    let enc_key = Jwk::from_map(&m).unwrap();
    let (_, token) = fresh_token(Algorithm::ES256, b"x");
    assert_eq!(
        code(jws::compact::verify(
            &token,
            &enc_key,
            &only(Algorithm::ES256)
        )),
        ErrorCode::AlgNotAllowed
    );
    m.remove("use");
    m.insert("key_ops".into(), json!(["sign"]));
    let sign_only = Jwk::from_map(&m).unwrap();
    assert_eq!(
        code(jws::compact::verify(
            &token,
            &sign_only,
            &only(Algorithm::ES256)
        )),
        ErrorCode::AlgNotAllowed
    );
    // RSA and oct keys without alg, verified without an allow-list: an options error.
    let rsa = jwk(&load("rfc7520/jwk/3_3.rsa_public_key.json"));
    let case = load("rfc7520/jws/4_1.rsa_v15_signature.json");
    let token = case["output"]["compact"].as_str().unwrap();
    assert_eq!(
        code(jws::compact::verify(
            token,
            &rsa,
            &VerifyOptions::from_key()
        )),
        ErrorCode::InvalidOptions
    );
    jws::compact::verify(token, &rsa, &only(Algorithm::RS256)).unwrap();
}

#[test]
fn key_sets_refuse_ambiguity() {
    let a = Jwk::generate(Algorithm::ES256, None, Some("a".into())).unwrap();
    let b = Jwk::generate(Algorithm::ES256, None, Some("b".into())).unwrap();
    let set = JwkSet::new(vec![a.to_public().unwrap(), b.to_public().unwrap()]).unwrap();
    // No kid in the token and two candidates: refuse rather than try both.
    let token = jws::compact::sign(
        b"x",
        &a,
        Algorithm::ES256,
        &HeaderParams::default().with("kid", "zzz"),
    )
    .unwrap();
    assert_eq!(
        code(jws::compact::verify(&token, &set, &only(Algorithm::ES256))),
        ErrorCode::NoMatchingKey
    );
    let mut nokid = Jwk::generate(Algorithm::ES256, None, None)
        .unwrap()
        .to_map();
    nokid.remove("kid");
    let signer = Jwk::from_map(&nokid).unwrap();
    let token =
        jws::compact::sign(b"x", &signer, Algorithm::ES256, &HeaderParams::default()).unwrap();
    assert_eq!(
        code(jws::compact::verify(&token, &set, &only(Algorithm::ES256))),
        ErrorCode::MultipleMatchingKeys
    );
    // By kid, fine.
    let token = jws::compact::sign(b"x", &b, Algorithm::ES256, &HeaderParams::default()).unwrap();
    assert_eq!(
        jws::compact::verify(&token, &set, &only(Algorithm::ES256))
            .unwrap()
            .payload,
        b"x"
    );
    // Duplicate kid in a set.
    let dup = JwkSet::new(vec![a.to_public().unwrap(), {
        let mut k = b.to_public().unwrap();
        k.set_kid("a");
        k
    }]);
    assert_eq!(dup.unwrap_err().code(), ErrorCode::JwksInvalid);
}

#[test]
fn claims_time_checks() {
    let key = hs_key();
    let now = 1_700_000_000i64;
    let v = || validation().at_time(now);
    let sign = |extra: Value| jwt::sign(&claims(extra), &key, Algorithm::HS256, None).unwrap();
    assert_eq!(
        code(jwt::verify(&sign(json!({"exp": now})), &key, &v())),
        ErrorCode::JwtExpired
    );
    jwt::verify(&sign(json!({"exp": now})), &key, &v().leeway(30)).unwrap();
    assert_eq!(
        code(jwt::verify(&sign(json!({"nbf": now + 60})), &key, &v())),
        ErrorCode::JwtNotYetValid
    );
    jwt::verify(&sign(json!({"nbf": now + 20})), &key, &v().leeway(30)).unwrap();
    assert_eq!(
        code(jwt::verify(
            &sign(json!({"iat": now - 600})),
            &key,
            &v().max_age(300)
        )),
        ErrorCode::JwtExpired
    );
    assert_eq!(
        code(jwt::verify(&sign(json!({})), &key, &v().max_age(300))),
        ErrorCode::JwtClaimInvalid
    );
    jwt::verify(&sign(json!({"iat": now - 60})), &key, &v().max_age(300)).unwrap();
    // exp is required unless waived.
    let mut no_exp = claims(json!({}));
    no_exp.remove("exp");
    let token = jwt::sign(&no_exp, &key, Algorithm::HS256, None).unwrap();
    assert_eq!(
        code(jwt::verify(&token, &key, &v())),
        ErrorCode::JwtClaimInvalid
    );
    jwt::verify(&token, &key, &v().allow_missing_exp()).unwrap();
}

#[test]
fn issuer_audience_and_algorithms_must_be_stated() {
    let key = hs_key();
    let token = jwt::sign(&claims(json!({})), &key, Algorithm::HS256, None).unwrap();
    let partial = [
        Validation::new().issuer("iss").audience("aud"),
        Validation::new()
            .algorithms([Algorithm::HS256])
            .audience("aud"),
        Validation::new()
            .algorithms([Algorithm::HS256])
            .issuer("iss"),
    ];
    for v in partial {
        assert_eq!(
            code(jwt::verify(&token, &key, &v)),
            ErrorCode::InvalidOptions
        );
    }
    let waived = Validation::new()
        .algorithms_from_key()
        .waive_issuer()
        .waive_audience();
    jwt::verify(&token, &key, &waived).unwrap();
    assert_eq!(
        code(jwt::verify(&token, &key, &validation().issuer("other"))),
        ErrorCode::JwtClaimInvalid
    );
    assert_eq!(
        code(jwt::verify(&token, &key, &validation().audience("other"))),
        ErrorCode::JwtClaimInvalid
    );
    let mut no_aud = claims(json!({}));
    no_aud.remove("aud");
    let token = jwt::sign(&no_aud, &key, Algorithm::HS256, None).unwrap();
    assert_eq!(
        code(jwt::verify(&token, &key, &validation())),
        ErrorCode::JwtClaimInvalid,
        "aud is checked even when absent"
    );
}
