//! Strict JOSE for tokengate: JWK (RFC 7517/7638/8037), JWS (RFC 7515/7797) and JWT
//! (RFC 7519, validated per RFC 8725), with every primitive from aws-lc-rs.
//!
//! # Verifying a JWT
//! ```
//! use jose::{Algorithm, Jwk, jwt};
//! # fn main() -> Result<(), jose::Error> {
//! let key = Jwk::generate(Algorithm::ES256, None, None)?;
//! let mut claims = serde_json::Map::new();
//! claims.insert("iss".into(), "https://issuer.example".into());
//! claims.insert("aud".into(), "https://api.example".into());
//! claims.insert("exp".into(), 4_102_444_800u64.into());
//! let token = jwt::sign(&claims, &key, Algorithm::ES256, Some("at+jwt"))?;
//!
//! let public = key.to_public()?;
//! let validation = jwt::Validation::new()
//!     .algorithms([Algorithm::ES256])
//!     .issuer("https://issuer.example")
//!     .audience("https://api.example")
//!     .typ("at+jwt");
//! let verified = jwt::verify(&token, &public, &validation)?;
//! assert_eq!(verified.claims.iss(), Some("https://issuer.example"));
//! # Ok(()) }
//! ```
//!
//! # What is refused, always
//! `alg: none` in any spelling; a key whose type does not fit the token's algorithm (an RSA
//! public key used as an HMAC secret); keys named by the token itself (`jwk`, `jku`, `x5u`,
//! `x5c`); duplicate JSON member names; unknown or misplaced `crit`; `b64` outside `crit` or
//! inside a JWT; non-canonical base64url; HMAC keys shorter than their hash; RSA keys under
//! 2048 bits; EC points off their curve; ECDSA signatures with r or s out of range.

pub mod b64;
mod crit;
mod error;
pub mod json;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod jwt;

pub mod alg;

pub use alg::Algorithm;
pub use error::{Error, ErrorCode, Result};
pub use jwk::{Jwk, JwkSet};
