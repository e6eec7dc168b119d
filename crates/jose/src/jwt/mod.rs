//! JSON Web Tokens (RFC 7519) validated per the JWT BCP (RFC 8725).
//!
//! A JWT here is a compact JWS whose payload is a JSON object. [`verify`] checks the signature
//! with the caller's keys and then the claims against a [`Validation`], which insists that
//! the caller states the issuer, the audience and the algorithms, or waives each by name.

mod claims;
mod validation;

pub use claims::Claims;
pub use validation::Validation;

use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::error::{err, ErrorCode, Result};
use crate::jwe;
use crate::jwk::Jwk;
use crate::jws::{self, Header, Keys};
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
    Claims::check(claims)?;
    let signer = key.signer(alg)?;
    // The header holds only `alg`, `kid` (from the key) and `typ`, all strings, so it is
    // written directly: it has nothing that `jws::Header::parse` could refuse.
    let mut header = Vec::with_capacity(96);
    header.extend_from_slice(b"{\"alg\":");
    let mut member = |name: &[u8], value: &str| -> Result<()> {
        header.extend_from_slice(name);
        serde_json::to_writer(&mut header, value)
            .map_err(|e| err!(InvalidOptions, "the header cannot be serialized: {e}"))
    };
    member(b"", alg.name())?;
    if let Some(kid) = key.kid() {
        member(b",\"kid\":", kid)?;
    }
    if let Some(t) = typ {
        member(b",\"typ\":", t)?;
    }
    header.push(b'}');
    let payload = serde_json::to_vec(claims)
        .map_err(|e| err!(JwtInvalid, "the claims cannot be serialized: {e}"))?;
    jws::compact::sign_encoded(&signer, &b64::encode(header), &payload)
}

/// A malformed JWS is, here, a malformed JWT: the caller asked for a JWT.
fn jws_to_jwt(e: crate::Error) -> crate::Error {
    if e.code() == ErrorCode::JwsInvalid {
        err!(JwtInvalid, "{}", e.reason())
    } else {
        e
    }
}

/// Verifies a JWT: structure, signature, then claims.
pub fn verify<'k>(token: &str, keys: impl Into<Keys<'k>>, validation: &Validation) -> Result<Jwt> {
    let policy = validation.policy()?;
    let verified =
        jws::compact::verify_inner(token, None, keys.into(), &policy, false).map_err(jws_to_jwt)?;
    let text = String::from_utf8(verified.payload)
        .map_err(|_| err!(JwtInvalid, "the JWT payload is not JSON: not UTF-8"))?;
    let claims = Claims::parse(text)?;
    validation.check(&verified.header, &claims)?;
    Ok(Jwt {
        header: verified.header,
        claims,
    })
}

/// Signs a claims set, then encrypts the resulting JWS to `encrypt_key` (a nested JWT,
/// RFC 7519 §11.2, with `cty: "JWT"`): the claims are hidden from the client and any
/// intermediary, and cannot be altered.
pub fn sign_encrypted(
    claims: &Map<String, Value>,
    sign_key: &Jwk,
    sign_alg: Algorithm,
    typ: Option<&str>,
    encrypt_key: &Jwk,
    km: jwe::KeyManagement,
    enc: jwe::ContentEncryption,
) -> Result<String> {
    let inner = sign(claims, sign_key, sign_alg, typ)?;
    let mut params = jwe::EncryptParams::default();
    params.protected.insert("cty".into(), "JWT".into());
    jwe::compact::encrypt(inner.as_bytes(), encrypt_key, km, enc, &params)
}

/// Decrypts a nested JWT with `decrypt_keys`, then verifies the inner JWS with
/// `verify_keys` and validates its claims; each step with its own allow-list. A token that
/// is not encrypted is refused: use [`verify`] where encryption is optional.
pub fn decrypt_and_verify<'d, 'v>(
    token: &str,
    decrypt_keys: impl Into<Keys<'d>>,
    decrypt_options: &jwe::DecryptOptions,
    verify_keys: impl Into<Keys<'v>>,
    validation: &Validation,
) -> Result<Jwt> {
    if token.len() <= decrypt_options.max_len
        && !token.starts_with('{')
        && token.bytes().filter(|b| *b == b'.').count() == 2
    {
        return Err(err!(
            JwtInvalid,
            "the token is not encrypted, and encryption is required"
        ));
    }
    let decrypted = jwe::compact::decrypt(token, decrypt_keys, decrypt_options)?;
    match decrypted.header.cty() {
        Some(cty)
            if cty.eq_ignore_ascii_case("JWT") || cty.eq_ignore_ascii_case("application/JWT") => {}
        _ => {
            return Err(err!(
                JwtInvalid,
                "the encrypted payload is not marked as a JWT (cty)"
            ))
        }
    }
    let inner = std::str::from_utf8(&decrypted.plaintext)
        .map_err(|_| err!(JwtInvalid, "the nested JWT is not text"))?;
    verify(inner, verify_keys, validation)
}

/// The `iss` of a compact JWS JWT, read WITHOUT verifying anything, to choose whose keys and
/// rules [`verify`] it with. The claims get the same strict reading `verify` gives them, so a
/// token this refuses, `verify` would refuse too, for the same reason; and no map of the
/// claims is built.
pub fn unverified_issuer(token: &str) -> Result<Option<String>> {
    let parts = jws::compact::split(token, jws::DEFAULT_MAX_LEN).map_err(jws_to_jwt)?;
    let text = String::from_utf8(b64::decode(parts.payload)?)
        .map_err(|_| err!(JwtInvalid, "the JWT payload is not JSON: not UTF-8"))?;
    Ok(Claims::parse(text)?.iss().map(String::from))
}

/// Decodes header and claims WITHOUT verifying anything, for display (`jwt inspect`).
pub fn decode_unverified(token: &str) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let parts = jws::compact::split(token, jws::DEFAULT_MAX_LEN)?;
    let header = json::parse_object(&b64::decode(parts.header)?, "JWT header")?;
    let claims = json::parse_object(&b64::decode(parts.payload)?, "JWT claims")?;
    Ok((header, claims))
}
