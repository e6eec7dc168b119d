use std::path::PathBuf;

use jose::jws::Keys;
use jose::jws::{self, VerifyOptions};
use jose::{Algorithm, ErrorCode, Jwk, JwkSet};
use serde_json::{Map, Value};

/// The shared vectors folder: `$TOKENGATE_VECTORS`, else `<project>/../shared/vectors`.
pub fn vectors() -> PathBuf {
    let dir = match std::env::var_os("TOKENGATE_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    assert!(
        dir.join("README.md").is_file(),
        "test vectors not found at {} (set TOKENGATE_VECTORS)",
        dir.display()
    );
    dir
}

pub fn load(rel: &str) -> Value {
    let path = vectors().join(rel);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap()
}

pub fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("a JSON object")
}

pub fn jwk(v: &Value) -> Jwk {
    Jwk::from_map(obj(v)).unwrap_or_else(|e| panic!("key {v}: {e}"))
}

pub fn only(alg: Algorithm) -> VerifyOptions {
    VerifyOptions::new([alg])
}

/// Signs `payload` compactly with a fresh key of `alg`, returning the key and token.
pub fn fresh_token(alg: Algorithm, payload: &[u8]) -> (Jwk, String) {
    let key = Jwk::generate(alg, None, None).unwrap();
    let token = jws::compact::sign(payload, &key, alg, &Default::default()).unwrap();
    (key, token)
}

pub fn b64(s: impl AsRef<[u8]>) -> String {
    jose::b64::encode(s)
}

/// A vector's key material: a JWK or a JWK Set.
pub enum Loaded {
    One(Jwk),
    Set(JwkSet),
}

impl Loaded {
    pub fn keys(&self) -> Keys<'_> {
        match self {
            Self::One(k) => Keys::One(k),
            Self::Set(s) => Keys::Set(s),
        }
    }
}

pub fn load_keys(v: &Value) -> Result<Loaded, jose::Error> {
    let map = obj(v);
    if map.contains_key("keys") {
        JwkSet::from_map(map).map(Loaded::Set)
    } else {
        Jwk::from_map(map).map(Loaded::One)
    }
}

/// The JWKs of a JSON array.
pub fn keys_of(v: &Value) -> Vec<Jwk> {
    v.as_array().unwrap().iter().map(jwk).collect()
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Strict unpadded base64url as RFC 7515 §2 has it (URL-safe alphabet, no padding or
/// whitespace, zero trailing bits), decoded here independently of the library under test, so
/// the test harnesses can tell why a token must be refused. `None` if `s` is not canonical.
pub fn strict_b64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sextets: Vec<u32> = s
        .bytes()
        .map(|c| ALPHABET.iter().position(|&a| a == c).map(|i| i as u32))
        .collect::<Option<_>>()?;
    if sextets.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let bits = chunk.iter().fold(0u32, |acc, &x| acc << 6 | x) << (6 * (4 - chunk.len()));
        let bytes = bits.to_be_bytes();
        let whole = chunk.len() * 6 / 8;
        // The bits after the last whole byte must be zero (canonical encoding).
        if bits & (0x00FF_FFFF >> (whole * 8)) != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[1..=whole]);
    }
    Some(out)
}

/// A compact serialization taken apart: the protected header and every decoded segment.
pub type Compact = (Map<String, Value>, Vec<Vec<u8>>);

/// Decodes a compact JWS (`n` = 3) or JWE (`n` = 5) as RFC 7515 §7.1 / RFC 7516 §7.1 define
/// it, independently of the library: its protected header and its decoded segments, or the
/// code of the first defect met in that order: `malformed` for a JSON serialization or a
/// wrong number of segments, `Base64Invalid` for a segment that is not strict base64url,
/// `JsonInvalid` for a header that is not a JSON object.
pub fn decode_compact(token: &Value, n: usize, malformed: ErrorCode) -> Result<Compact, ErrorCode> {
    let Value::String(token) = token else {
        return Err(malformed);
    };
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() != n {
        return Err(malformed);
    }
    let decoded = segments
        .iter()
        .map(|s| strict_b64(s))
        .collect::<Option<Vec<_>>>()
        .ok_or(ErrorCode::Base64Invalid)?;
    let header = serde_json::from_slice(&decoded[0]).map_err(|_| ErrorCode::JsonInvalid)?;
    Ok((header, decoded))
}

/// The key of a Wycheproof group a token is checked against: the group's JWK, or in a set
/// the one whose `kid` the token names (the first if it names none).
pub fn key_for<'a>(keys: &'a Value, kid: Option<&str>) -> Option<&'a Map<String, Value>> {
    match keys.get("keys") {
        Some(set) => set
            .as_array()
            .unwrap()
            .iter()
            .map(obj)
            .find(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid),
        None => Some(obj(keys)),
    }
}

/// Wycheproof bookkeeping: how many cases ran, the tcIds whose outcome differs from the
/// expected `result` (`acceptable` allows either outcome), and the refusals whose error code
/// is not the one the case calls for.
#[derive(Default)]
pub struct Tally {
    pub deviations: Vec<u64>,
    pub count: usize,
    /// One line per refusal with an unexpected code (or an unexpected refusal): tcId,
    /// expected and actual.
    pub wrong_refusals: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, case: &Value, accepted: bool) {
        self.count += 1;
        let ok = match case["result"].as_str().unwrap() {
            "valid" => accepted,
            "invalid" => !accepted,
            _ => true,
        };
        if !ok {
            self.deviations.push(case["tcId"].as_u64().unwrap());
        }
    }

    /// Records a refusal, which must carry the `expected` code (`None`: no refusal expected,
    /// e.g. a valid case the harness has no documented reason to refuse).
    pub fn refused(&mut self, case: &Value, error: &jose::Error, expected: Option<ErrorCode>) {
        self.record(case, false);
        if expected != Some(error.code()) {
            self.wrong_refusals.push(format!(
                "tc {} ({}, {}): expected {}, got {error}",
                case["tcId"],
                case["result"].as_str().unwrap(),
                case["comment"].as_str().unwrap_or(""),
                expected.map_or("no refusal".to_owned(), |c| format!("{c:?}")),
            ));
        }
    }
}

#[test]
fn strict_b64_agrees_with_rfc4648_and_refuses_non_canonical_forms() {
    assert_eq!(strict_b64("").unwrap(), b"");
    assert_eq!(strict_b64("Zg").unwrap(), b"f");
    assert_eq!(strict_b64("Zm8").unwrap(), b"fo");
    assert_eq!(strict_b64("Zm9v").unwrap(), b"foo");
    assert_eq!(strict_b64("Zm9vYg").unwrap(), b"foob");
    assert_eq!(strict_b64("-_8").unwrap(), [0xfb, 0xff]);
    for bad in ["Zh", "Zm9", "Zm9vY", "Zg==", "Zm 9v", "a+b/", "Zm9v\n"] {
        assert_eq!(strict_b64(bad), None, "{bad:?}");
    }
}
