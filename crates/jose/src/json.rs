//! Strict JSON for headers, claims and keys.
//!
//! `serde_json` keeps the last of two members with the same name, so
//! `{"alg":"HS256","alg":"none"}` would silently mean `none` to one parser and `HS256` to
//! another. RFC 7515 §5.2 lets a JWS parser reject such input; we always do, at every depth.
//! Nesting depth and input size are bounded before anything is allocated per member.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{err, Result};

/// Deepest nesting accepted in a header, claims set or key (objects and arrays count alike).
pub const MAX_DEPTH: usize = 32;

/// Parses `bytes` as one JSON value, rejecting duplicate member names and deep nesting.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| err!(JsonInvalid, "{}", describe(&e)))?;
    de.end()
        .map_err(|_| err!(JsonInvalid, "trailing characters after the JSON value"))?;
    Ok(value)
}

/// Parses `bytes` as a JSON object (the only top-level shape JOSE headers and claims take).
pub fn parse_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>> {
    match parse(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(err!(JsonInvalid, "{what} is not a JSON object")),
    }
}

// serde_json's messages include line/column, useful for keys and config files, and never the
// input itself.
fn describe(e: &serde_json::Error) -> String {
    e.to_string()
}

struct StrictSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: self.depth })
    }
}

struct StrictVisitor {
    depth: usize,
}

impl StrictVisitor {
    fn nested<E: serde::de::Error>(&self) -> Result<StrictSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH}")));
        }
        Ok(StrictSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.nested()?)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!(
                    "duplicate member name {key:?}"
                )));
            }
            let value = map.next_value_seed(self.nested()?)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Reads an optional string member; present with another type is an error, not "absent".
pub fn opt_str<'a>(map: &'a Map<String, Value>, name: &str, what: &str) -> Result<Option<&'a str>> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err!(JsonInvalid, "{what} member {name:?} must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicate_members_at_any_depth() {
        assert!(parse(br#"{"alg":"HS256","alg":"none"}"#).is_err());
        assert!(parse(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse(br#"[{"x":1,"x":1}]"#).is_err());
        assert!(parse(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn bounds_depth() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        let very_deep = "[".repeat(100_000);
        assert!(parse(very_deep.as_bytes()).is_err());
    }

    #[test]
    fn rejects_trailing_data_and_non_objects() {
        assert!(parse(br#"{"a":1} x"#).is_err());
        assert!(parse_object(b"[1]", "header").is_err());
        assert!(parse(b"").is_err());
    }
}
