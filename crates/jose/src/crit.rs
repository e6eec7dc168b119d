//! The `crit` header parameter (RFC 7515 §4.1.11, RFC 7516 §4.1.13, RFC 7797 §6): one
//! implementation for JWS and JWE, since a hole here is a hole in both.

use serde_json::{Map, Value};

use crate::error::{err, Result};

/// Header parameter names registered by RFC 7515, 7516 and 7518; `crit` must not list them.
/// (`b64`, registered by RFC 7797, is the one name a JWS must list; see [`check`].)
const REGISTERED: &[&str] = &[
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

/// Validates `crit` and returns the names it lists.
///
/// `crit` must be integrity protected (`unprotected_has_crit` false), a non-empty array of
/// distinct strings, none of them registered, each understood by the caller and present in
/// the protected header. `b64` counts as understood only where `allow_b64` (a JWS that is not
/// a JWT).
pub(crate) fn check<'a>(
    protected: &'a Map<String, Value>,
    unprotected_has_crit: bool,
    understood: &[String],
    allow_b64: bool,
) -> Result<Vec<&'a str>> {
    if unprotected_has_crit {
        return Err(err!(CritInvalid, "\"crit\" must be integrity protected"));
    }
    let items = match protected.get("crit") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(err!(CritInvalid, "\"crit\" must be a non-empty array")),
    };
    let mut names: Vec<&str> = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| err!(CritInvalid, "\"crit\" must list strings"))?;
        if names.contains(&name) {
            return Err(err!(CritInvalid, "\"crit\" repeats {name:?}"));
        }
        let registered = REGISTERED.contains(&name) || (name == "b64" && !allow_b64);
        if registered {
            return Err(err!(
                CritInvalid,
                "\"crit\" must not list the registered name {name:?}"
            ));
        }
        if name != "b64" && !understood.iter().any(|u| u == name) {
            return Err(err!(CritInvalid, "unsupported critical extension {name:?}"));
        }
        if !protected.contains_key(name) {
            return Err(err!(
                CritInvalid,
                "critical extension {name:?} is not in the protected header"
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// The names a producer put in its own `crit` (a producer understands what it declares).
pub(crate) fn declared(protected: &Map<String, Value>) -> Vec<String> {
    match protected.get("crit") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Size and shape checks every compact token gets before any decoding: the length limit,
/// and a JSON serialization passed where a compact one is expected.
pub(crate) fn precheck_compact(
    token: &str,
    max_len: usize,
    json_given: crate::Error,
) -> Result<()> {
    if token.len() > max_len {
        return Err(err!(
            TooLarge,
            "token is {} bytes, the limit is {max_len}",
            token.len()
        ));
    }
    if token.starts_with('{') {
        return Err(json_given);
    }
    Ok(())
}
