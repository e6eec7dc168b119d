use std::path::PathBuf;

use jose::jws::Keys;
use jose::jws::{self, VerifyOptions};
use jose::{Algorithm, Jwk, JwkSet};
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

/// Wycheproof bookkeeping: how many cases ran, and the tcIds whose outcome differs from the
/// expected `result` (`acceptable` allows either outcome).
#[derive(Default)]
pub struct Tally {
    pub deviations: Vec<u64>,
    pub count: usize,
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
}
