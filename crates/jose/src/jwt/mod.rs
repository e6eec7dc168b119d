//! JSON Web Tokens (RFC 7519) validated per the JWT BCP (RFC 8725).
//!
//! A JWT here is a compact JWS whose payload is a JSON object. [`verify`] checks the signature
//! with the caller's keys and then the claims against a [`Validation`], which insists that
//! the caller states the issuer, the audience and the algorithms, or waives each by name.

mod claims;
mod validation;

pub use claims::Claims;
pub use validation::{Validation, DEFAULT_MAX_AGE_NONE};

use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::error::{err, ErrorCode, Result};
use crate::jwk::Jwk;
use crate::jws::{self, Header, HeaderParams, Keys};
use crate::{b64, json};

/// A verified token.
#[derive(Debug, Clone)]
pub struct Jwt {
    /// The validated header.
    pub header: Header,
    /// The validated claims.
    pub claims: Claims,
}

/// Signs a claims set as a compact JWS. `typ`, when given, goes into the protected header.
pub fn sign(
    claims: &Map<String, Value>,
    key: &Jwk,
    alg: Algorithm,
    typ: Option<&str>,
) -> Result<String> {
    Claims::from_map(claims.clone())?;
    let mut params = HeaderParams::default();
    if let Some(t) = typ {
        params.protected.insert("typ".into(), t.into());
    }
    jws::compact::sign(
        Value::Object(claims.clone()).to_string().as_bytes(),
        key,
        alg,
        &params,
    )
}

/// Verifies a JWT: structure, signature, then claims.
pub fn verify<'k>(token: &str, keys: impl Into<Keys<'k>>, validation: &Validation) -> Result<Jwt> {
    let options = validation.verify_options()?;
    let verified =
        jws::compact::verify_inner(token, None, keys.into(), &options, false).map_err(|e| {
            if e.code() == ErrorCode::JwsInvalid {
                err!(JwtInvalid, "{}", e.reason())
            } else {
                e
            }
        })?;
    let claims = Claims::from_map(match json::parse(&verified.payload) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(err!(JwtInvalid, "the JWT payload is not a JSON object")),
        Err(e) => {
            return Err(err!(
                JwtInvalid,
                "the JWT payload is not JSON: {}",
                e.reason()
            ))
        }
    })?;
    validation.check(&verified.header, &claims)?;
    Ok(Jwt {
        header: verified.header,
        claims,
    })
}

/// Decodes header and claims WITHOUT verifying anything, for display (`jwt inspect`).
pub fn decode_unverified(token: &str) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let parts = jws::compact::split(token, jws::DEFAULT_MAX_LEN)?;
    let header = json::parse_object(&b64::decode(parts.header)?, "JWT header")?;
    let claims = json::parse_object(&b64::decode(parts.payload)?, "JWT claims")?;
    Ok((header, claims))
}
