//! The claims set, with registered claims type-checked on parse.

use serde_json::{Map, Value};

use crate::error::{err, Result};

/// A JWT claims set whose registered claims have their RFC 7519 §4.1 types.
///
/// A wrongly typed registered claim (`"exp":"123"`, `"aud":5`) is an error, never read as
/// absent: a validator that skips what it cannot parse is a validator that can be skipped.
#[derive(Debug, Clone)]
pub struct Claims {
    map: Map<String, Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    aud: Vec<String>,
}

fn numeric_date(map: &Map<String, Value>, name: &str) -> Result<Option<i64>> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            // NumericDate may carry fractions (RFC 7519 §2); whole seconds are what we compare.
            let secs = n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && f.abs() < 1e15)
                        .map(|f| f.floor() as i64)
                })
                .ok_or_else(|| err!(JwtClaimInvalid, "{name:?} is out of range"))?;
            Ok(Some(secs))
        }
        Some(_) => Err(err!(
            JwtClaimInvalid,
            "{name:?} must be a NumericDate (a JSON number)"
        )),
    }
}

impl Claims {
    /// Type-checks the registered claims of `map` without copying anything (for signing).
    pub(crate) fn check(map: &Map<String, Value>) -> Result<()> {
        for name in ["iss", "sub", "jti"] {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(err!(JwtClaimInvalid, "{name:?} must be a string"));
            }
        }
        let aud_ok = match map.get("aud") {
            None | Some(Value::String(_)) => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            Some(_) => false,
        };
        if !aud_ok {
            return Err(err!(
                JwtClaimInvalid,
                "\"aud\" must be a string or an array of strings"
            ));
        }
        for name in ["exp", "nbf", "iat"] {
            numeric_date(map, name)?;
        }
        Ok(())
    }

    /// Type-checks the registered claims of `map`.
    pub fn from_map(map: Map<String, Value>) -> Result<Self> {
        for name in ["iss", "sub", "jti"] {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(err!(JwtClaimInvalid, "{name:?} must be a string"));
            }
        }
        let aud = match map.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    err!(
                        JwtClaimInvalid,
                        "\"aud\" must be a string or an array of strings"
                    )
                })?,
            Some(_) => {
                return Err(err!(
                    JwtClaimInvalid,
                    "\"aud\" must be a string or an array of strings"
                ))
            }
        };
        Ok(Self {
            exp: numeric_date(&map, "exp")?,
            nbf: numeric_date(&map, "nbf")?,
            iat: numeric_date(&map, "iat")?,
            aud,
            map,
        })
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// Any claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.map.get("iss").and_then(Value::as_str)
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.map.get("sub").and_then(Value::as_str)
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.map.get("jti").and_then(Value::as_str)
    }

    /// `aud`, as a list whether it was a string or an array.
    pub fn aud(&self) -> &[String] {
        &self.aud
    }

    /// `exp` in whole seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        self.exp
    }

    /// `nbf` in whole seconds since the epoch.
    pub fn nbf(&self) -> Option<i64> {
        self.nbf
    }

    /// `iat` in whole seconds since the epoch.
    pub fn iat(&self) -> Option<i64> {
        self.iat
    }
}
