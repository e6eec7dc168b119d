//! Strict JSON for headers, claims and keys.
//!
//! `serde_json` keeps the last of two members with the same name, so
//! `{"alg":"HS256","alg":"none"}` would silently mean `none` to one parser and `HS256` to
//! another. RFC 7515 §5.2 lets a JWS parser reject such input; we always do, at every depth.
//! Nesting depth and input size are bounded before anything is allocated per member.

use std::borrow::Cow;
use std::collections::BTreeSet;
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

/// [`parse`]'s reading of one value at `depth`, for a caller that walks the levels above.
pub(crate) struct StrictSeed {
    pub(crate) depth: usize,
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

/// Walks one JSON value under exactly the rules of [`parse`] (duplicate member names at every
/// depth, the same depth limit, finite numbers) without building it, so a caller can read the
/// few members it needs in the same pass and still refuse everything `parse` refuses.
pub(crate) struct Skip {
    pub(crate) depth: usize,
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(SkipVisitor { depth: self.depth })
    }
}

/// A top-level JSON value read in one pass under the strict rules: an object's members by
/// `M` (its `visit_map`), `None` for any other valid value (walked by [`SkipVisitor`]).
pub(crate) struct TopObject<M>(pub(crate) M);

impl<'de, M: Visitor<'de>> Visitor<'de> for TopObject<M> {
    type Value = Option<M::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        SkipVisitor { depth: 0 }.visit_f64(v).map(|()| None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor { depth: 0 }.visit_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map).map(Some)
    }
}

/// [`StrictVisitor`]'s checks, with nothing kept.
pub(crate) struct SkipVisitor {
    pub(crate) depth: usize,
}

impl SkipVisitor {
    /// The seed for a child value; errors where [`StrictVisitor::nested`] does.
    pub(crate) fn nested<E: serde::de::Error>(&self) -> Result<Skip, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH}")));
        }
        Ok(Skip {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // As in `StrictVisitor`, the depth is checked before each element, the end included.
        while seq.next_element_seed(self.nested()?)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(Key)? {
            seen.insert::<A::Error>(key)?;
            map.next_value_seed(self.nested()?)?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the input unless it had escapes (which must be decoded so
/// that `"a"` and `"\u0061"` count as the same name).
pub(crate) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Member names seen in one object. Objects in tokens are small, so the first names live on
/// the stack and are compared linearly; a large object moves to a tree, so that a hostile
/// payload with thousands of members costs n log n, not n².
pub(crate) struct Seen<'de> {
    small: [Cow<'de, str>; SMALL],
    /// A cheap fingerprint of each name in `small`, compared before the names themselves.
    prints: [u64; SMALL],
    len: usize,
    large: Option<BTreeSet<Cow<'de, str>>>,
}

/// FNV-1a: equal names have equal prints; unequal ones rarely do.
fn fingerprint(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const SMALL: usize = 16;
const EMPTY: Cow<'static, str> = Cow::Borrowed("");

impl Default for Seen<'_> {
    fn default() -> Self {
        Self {
            small: [EMPTY; SMALL],
            prints: [0; SMALL],
            len: 0,
            large: None,
        }
    }
}

impl<'de> Seen<'de> {
    /// Records `key`, failing with `parse`'s message if it was already there.
    pub(crate) fn insert<E: serde::de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        let duplicate = |key: &str| E::custom(format_args!("duplicate member name {key:?}"));
        if let Some(large) = &mut self.large {
            if large.contains(&key) {
                return Err(duplicate(&key));
            }
            large.insert(key);
            return Ok(());
        }
        let print = fingerprint(&key);
        let same = |(p, k): (&u64, &Cow<'de, str>)| *p == print && *k == key;
        if self.prints.iter().zip(&self.small).take(self.len).any(same) {
            return Err(duplicate(&key));
        }
        if let (Some(slot), Some(p)) = (self.small.get_mut(self.len), self.prints.get_mut(self.len))
        {
            *slot = key;
            *p = print;
            self.len += 1;
        } else {
            let mut large: BTreeSet<Cow<'de, str>> =
                self.small.iter_mut().map(std::mem::take).collect();
            large.insert(key);
            self.large = Some(large);
        }
        Ok(())
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
    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    /// `parse` refuses `input` as invalid JSON, for a reason starting with `reason` (serde's
    /// messages end with a line and column).
    fn refused(input: &[u8], reason: &str) {
        let e = parse(input).unwrap_err();
        assert_eq!(e.code(), ErrorCode::JsonInvalid, "{e}");
        assert!(e.reason().starts_with(reason), "{e}");
    }

    #[test]
    fn rejects_duplicate_members_at_any_depth() {
        refused(
            br#"{"alg":"HS256","alg":"none"}"#,
            r#"duplicate member name "alg""#,
        );
        refused(br#"{"a":{"b":1,"b":2}}"#, r#"duplicate member name "b""#);
        refused(br#"[{"x":1,"x":1}]"#, r#"duplicate member name "x""#);
        assert_eq!(
            parse(br#"{"a":1,"b":{"a":2}}"#).unwrap(),
            json!({"a":1,"b":{"a":2}})
        );
    }

    #[test]
    fn bounds_depth() {
        let nesting = format!("nesting deeper than {MAX_DEPTH}");
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        refused(deep.as_bytes(), &nesting);
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let expected: Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(parse(ok.as_bytes()).unwrap(), expected);
        let very_deep = "[".repeat(100_000);
        refused(very_deep.as_bytes(), &nesting);
    }

    #[test]
    fn rejects_trailing_data_and_non_objects() {
        assert_eq!(
            parse(br#"{"a":1} x"#).unwrap_err(),
            err!(JsonInvalid, "trailing characters after the JSON value")
        );
        assert_eq!(
            parse_object(b"[1]", "header").unwrap_err(),
            err!(JsonInvalid, "header is not a JSON object")
        );
        refused(b"", "EOF while parsing a value");
    }
}
