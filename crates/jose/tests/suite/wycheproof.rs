//! Project Wycheproof JWS and JWK cases. Each file's outcome must match the expected result
//! for every case, except the documented deviations listed per file (each with its reason).
//! Every refusal must also be for the reason the case calls for (its error code, see
//! [`refusal_for`]), and a key that does not load fails the test unless its group is a
//! documented key rejection (with the code and reason it is rejected for).

use jose::jws::{self, VerifyOptions};
use jose::{ErrorCode, Jwk};
use serde_json::Value;

use crate::common::{decode_compact, key_for, load, load_keys, obj, strict_b64, Tally};

/// One Wycheproof file and what is documented about it.
struct Spec {
    file: &'static str,
    /// Every case of every JWS group.
    count: usize,
    /// The tcIds whose outcome differs from the expected result (reasons at each constant).
    deviations: &'static [u64],
    /// Groups whose key must be refused when loaded, by the tcIds of their cases: the code
    /// and a fragment of the reason. Any other key that fails to load fails the test.
    key_rejections: &'static [(u64, ErrorCode, &'static str)],
}

/// The code a compact JWS must be refused with, from the token and the key alone (decoded
/// here, independently of the library): the first defect in the order a verifier meets them.
fn refusal_for(token: &Value, keys: &Value) -> ErrorCode {
    let header = match decode_compact(token, 3, ErrorCode::JwsInvalid) {
        Ok((header, _)) => header,
        Err(code) => return code,
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg.eq_ignore_ascii_case("none") {
        return ErrorCode::NotSupported;
    }
    let kid = header.get("kid").and_then(Value::as_str);
    if let Some(key) = key_for(keys, kid) {
        // The key's own alg, use and key_ops restrict it (RFC 7517 §4.2-4.4).
        let str_of = |m: &str| key.get(m).and_then(Value::as_str);
        let ops_forbid = key
            .get("key_ops")
            .and_then(Value::as_array)
            .is_some_and(|ops| !ops.iter().any(|o| o == "verify"));
        if str_of("alg").is_some_and(|a| a != alg)
            || str_of("use").is_some_and(|u| u != "sig")
            || ops_forbid
        {
            return ErrorCode::AlgNotAllowed;
        }
    }
    ErrorCode::SignatureInvalid
}

/// Runs every JWS case of the file; returns its tally.
fn run(spec: &Spec) -> Tally {
    let data = load(spec.file);
    let mut tally = Tally::default();
    let mut rejected_keys = Vec::new();
    for group in data["testGroups"].as_array().unwrap() {
        let tests = group["tests"].as_array().unwrap();
        if tests.iter().all(|t| t.get("jwe").is_some()) {
            // JWE groups (json_web_crypto_test.json) run in `jwe_vectors`.
            continue;
        }
        // Verify with the public key when the group gives one, as a verifier would.
        let key_json = group.get("public").unwrap_or(&group["private"]);
        let keys = load_keys(key_json);
        for t in tests {
            let tc = t["tcId"].as_u64().unwrap();
            let rejection = spec.key_rejections.iter().find(|r| r.0 == tc);
            let keys = match (&keys, rejection) {
                (Ok(k), None) => k,
                (Err(e), Some(&(_, code, why))) => {
                    assert_eq!(e.code(), code, "tc {tc}: {e}");
                    assert!(e.reason().contains(why), "tc {tc}: {e}, expected {why:?}");
                    rejected_keys.push(tc);
                    tally.record(t, false);
                    continue;
                }
                (Err(e), None) => panic!("{} tc {tc}: the key does not load: {e}", spec.file),
                (Ok(_), Some(r)) => panic!("{} tc {tc}: the key loads, expected {r:?}", spec.file),
            };
            // Cases in JSON form are flagged `JsonSerialization`: Wycheproof expects a
            // verifier of compact tokens to refuse them, so they go to the compact API as
            // text. (Our JSON API accepts the valid ones; see
            // `json_serialization_is_refused_where_compact_is_expected`.)
            let token = t
                .get("jws")
                .unwrap_or_else(|| panic!("{} tc {tc}: no jws", spec.file));
            let text = match token {
                Value::String(token) => token.clone(),
                doc => doc.to_string(),
            };
            match jws::compact::verify(&text, keys.keys(), &VerifyOptions::from_key()) {
                Ok(_) => tally.record(t, true),
                Err(e) => tally.refused(t, &e, Some(refusal_for(token, key_json))),
            }
        }
    }
    let documented: Vec<u64> = spec.key_rejections.iter().map(|r| r.0).collect();
    assert_eq!(rejected_keys, documented, "{}: key rejections", spec.file);
    tally
}

fn check(spec: &Spec) {
    let tally = run(spec);
    assert_eq!(tally.count, spec.count, "{}", spec.file);
    assert_eq!(tally.deviations, spec.deviations, "{}", spec.file);
    assert!(
        tally.wrong_refusals.is_empty(),
        "{}: refused for the wrong reason:\n{}",
        spec.file,
        tally.wrong_refusals.join("\n")
    );
}

/// The keys of `json_web_key_test.json` that must not load (key policy cases), all inside a
/// JWK Set, so the set reports them (`key 0: …`).
/// - 4 probes a duplicate `kid`, but its second key's `k` has non-zero unused trailing bits,
///   so strict base64url refuses the set before the `kid`s are compared; the duplicate
///   `kid` check itself is exercised by `duplicate_kid_is_refused_once_the_key_is_canonical`.
const KEY_REJECTIONS: [(u64, ErrorCode, &str); 16] = [
    (1, ErrorCode::JwksInvalid, "mixes symmetric and asymmetric"),
    (4, ErrorCode::JwksInvalid, "key 1: \"k\" is not strict"),
    (7, ErrorCode::JwksInvalid, "ROCA"),
    (8, ErrorCode::JwksInvalid, "1024 bits is below"),
    (9, ErrorCode::JwksInvalid, "public exponent"),
    (10, ErrorCode::JwksInvalid, "at least 32 bytes"),
    (11, ErrorCode::JwksInvalid, "at least 48 bytes"),
    (12, ErrorCode::JwksInvalid, "at least 64 bytes"),
    (16, ErrorCode::JwksInvalid, "\"k\" is empty"),
    (17, ErrorCode::JwksInvalid, "\"k\" is empty"),
    (18, ErrorCode::JwksInvalid, "\"k\" is empty"),
    (19, ErrorCode::JwksInvalid, "unknown algorithm \"ES521\""),
    (20, ErrorCode::JwksInvalid, "unknown algorithm \"ES224\""),
    (22, ErrorCode::JwksInvalid, "not on P-256"),
    (23, ErrorCode::JwksInvalid, "P-384 coordinates"),
    (24, ErrorCode::JwksInvalid, "missing \"n\""),
];

#[test]
fn json_web_key_cases() {
    check(&Spec {
        file: "wycheproof/json_web_key_test.json",
        count: 26,
        deviations: &[],
        key_rejections: &KEY_REJECTIONS,
    });
}

#[test]
fn json_web_crypto_jws_cases() {
    check(&Spec {
        file: "wycheproof/json_web_crypto_test.json",
        count: 49,
        deviations: &[],
        key_rejections: &[
            (46, ErrorCode::JwkInvalid, "ROCA"),
            (47, ErrorCode::JwksInvalid, "mixes symmetric and asymmetric"),
        ],
    });
}

/// Deliberate deviations in `json_web_signature_test.json` (see docs/conformance.md):
/// - 346, 350: the group's key says `"alg":"PS256"` but the token (RFC 7520 Figure 20) is
///   PS384. A key's `alg` restricts it (RFC 7517 §4.4), so we refuse (AlgNotAllowed).
/// - 347, 351: the key says `"alg":"ES521"`, which is not a registered algorithm; we refuse
///   keys with unknown `alg` values rather than guess (the key does not load: JwkInvalid).
/// - 367, 370: marked invalid but byte-identical to the valid tc 357; we accept all three.
/// - 372, 373: marked valid but hold a `?` inside a base64url segment; strict base64url
///   rejects them (Base64Invalid).
const SIGNATURE_DEVIATIONS: [u64; 8] = [346, 347, 350, 351, 367, 370, 372, 373];

#[test]
fn json_web_signature_cases() {
    check(&Spec {
        file: "wycheproof/json_web_signature_test.json",
        count: 401,
        deviations: &SIGNATURE_DEVIATIONS,
        key_rejections: &[
            (347, ErrorCode::JwkInvalid, "unknown algorithm \"ES521\""),
            (351, ErrorCode::JwkInvalid, "unknown algorithm \"ES521\""),
        ],
    });
}

#[test]
fn duplicate_kid_is_refused_once_the_key_is_canonical() {
    let data = load("wycheproof/json_web_key_test.json");
    let group = data["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "jws_duplicate_kid")
        .unwrap();
    let mut set = group["private"].clone();
    let k = set["keys"][1]["k"].as_str().unwrap().to_owned();
    assert_eq!(strict_b64(&k), None, "tc 4's second key is not canonical");
    // Clear the last character's unused low bits: 43 characters carry 32 bytes and 2 spare
    // bits, so the alphabet index must be a multiple of 4.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet.find(k.chars().last().unwrap()).unwrap();
    let canonical = format!("{}{}", &k[..k.len() - 1], &alphabet[last & !3..=last & !3]);
    assert!(strict_b64(&canonical).is_some());
    set["keys"][1]["k"] = canonical.into();
    let e = jose::JwkSet::from_map(obj(&set)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::JwksInvalid);
    assert!(e.reason().contains("share the kid"), "{e}");
}

#[test]
fn json_serialization_is_refused_where_compact_is_expected() {
    let data = load("wycheproof/json_web_crypto_test.json");
    let group = &data["testGroups"][0];
    let key = Jwk::from_map(obj(&group["private"])).unwrap();
    let case = group["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tcId"] == 17)
        .unwrap();
    let text = case["jws"].to_string();
    let options = VerifyOptions::from_key();
    let e = jws::compact::verify(&text, &key, &options).unwrap_err();
    assert_eq!(e.code(), ErrorCode::JwsInvalid);
    // The same document is a valid general-JSON JWS for the JSON API.
    assert_eq!(
        jws::json::verify(&text, &key, &options).unwrap().payload,
        b"foo"
    );
}

#[test]
fn roca_key_is_refused_for_its_fingerprint() {
    let data = load("wycheproof/json_web_key_test.json");
    let group = data["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "jws_rsa_roca_key")
        .unwrap();
    let key = &group["public"]["keys"][0];
    let e = Jwk::from_map(obj(key)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::JwkInvalid);
    assert!(e.reason().contains("ROCA"), "{e}");
}
