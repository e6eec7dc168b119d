//! JWK Sets (RFC 7517 §5) and key selection.

use serde_json::{Map, Value};

use super::{Jwk, KeyOperation};
use crate::alg::Algorithm;
use crate::error::{err, Result};
use crate::json;

/// A validated set of keys.
///
/// Parsing refuses sets that cannot be used safely: two keys with the same `kid` (which one
/// would a token mean?) and sets mixing symmetric and asymmetric keys (a published set with a
/// secret in it, or a confusion waiting to happen).
#[derive(Debug, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses `{"keys":[…]}`.
    pub fn from_json(text: &[u8]) -> Result<Self> {
        let map = json::parse_object(text, "JWK Set")?;
        Self::from_map(&map)
    }

    /// Parses an already-parsed JWK Set object.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let Some(Value::Array(items)) = map.get("keys") else {
            return Err(err!(JwksInvalid, "a JWK Set needs a \"keys\" array"));
        };
        let mut keys = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(err!(JwksInvalid, "key {i} is not an object"));
            };
            let key =
                Jwk::from_map(obj).map_err(|e| err!(JwksInvalid, "key {i}: {}", e.reason()))?;
            keys.push(key);
        }
        Self::new(keys)
    }

    /// Builds a set from keys, with the same checks as parsing.
    pub fn new(keys: Vec<Jwk>) -> Result<Self> {
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = key.kid() {
                if keys.iter().skip(i + 1).any(|k| k.kid() == Some(kid)) {
                    return Err(err!(JwksInvalid, "two keys share the kid {kid:?}"));
                }
            }
        }
        let symmetric = keys.iter().filter(|k| k.is_symmetric()).count();
        if symmetric != 0 && symmetric != keys.len() {
            return Err(err!(
                JwksInvalid,
                "the set mixes symmetric and asymmetric keys"
            ));
        }
        Ok(Self { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The set as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        let keys = self
            .keys
            .iter()
            .map(|k| Value::Object(k.to_map()))
            .collect();
        let mut map = Map::new();
        map.insert("keys".into(), Value::Array(keys));
        map
    }

    /// The public set: every key's public half (fails on symmetric keys).
    pub fn to_public(&self) -> Result<Self> {
        Ok(Self {
            keys: self
                .keys
                .iter()
                .map(Jwk::to_public)
                .collect::<Result<_>>()?,
        })
    }

    /// Selects the key for a token: by `kid` when the token has one (the key must then fit
    /// `alg`), else the single key that fits `alg`. Several fitting keys and no `kid` is an
    /// error rather than a guess.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm, op: KeyOperation) -> Result<&Jwk> {
        self.select_with(kid, alg.name(), |k| k.check(alg, op))
    }

    /// Selection with a caller-supplied fitness check (shared by JWS and JWE).
    pub(crate) fn select_with(
        &self,
        kid: Option<&str>,
        alg: &str,
        fits: impl Fn(&Jwk) -> Result<()>,
    ) -> Result<&Jwk> {
        if let Some(kid) = kid {
            let key = self
                .keys
                .iter()
                .find(|k| k.kid() == Some(kid))
                .ok_or_else(|| err!(NoMatchingKey, "no key with kid {kid:?}"))?;
            fits(key)?;
            return Ok(key);
        }
        let mut fitting = self.keys.iter().filter(|k| fits(k).is_ok());
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Ok(key),
            (None, _) => Err(err!(NoMatchingKey, "no key in the set fits {alg}")),
            (Some(_), Some(_)) => Err(err!(
                MultipleMatchingKeys,
                "several keys fit {alg} and the token names no kid"
            )),
        }
    }
}
