//! The one error type of this crate.
//!
//! Every failure carries a stable [`ErrorCode`] (the `ERR_…` string that logs, the CLI and
//! callers can match on, in the spirit of panva/jose) and a short human reason. Reasons never
//! contain key material or token contents beyond a header name or algorithm.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, as a stable code. New codes may be added in minor releases.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Input is not strict base64url (padding, whitespace, bad characters, non-canonical bits).
    Base64Invalid,
    /// Input is not acceptable JSON: syntax, duplicate member names, nesting or size limits.
    JsonInvalid,
    /// The token or object exceeds a configured size limit; checked before any decoding.
    TooLarge,
    /// A JWS is structurally malformed (segments, serialization, header members).
    JwsInvalid,
    /// A JWT is structurally malformed (not a compact JWS, payload not a JSON object, …).
    JwtInvalid,
    /// The signature did not verify.
    SignatureInvalid,
    /// A JWE is structurally malformed (segments, serialization, header members).
    JweInvalid,
    /// A JWE did not decrypt: wrong key, altered ciphertext, IV, tag or header. One code for
    /// all of them, so that failures cannot be told apart.
    DecryptionFailed,
    /// The algorithm is not in the caller's allow-list, or no allow-list could be determined.
    AlgNotAllowed,
    /// The algorithm, curve or feature is not implemented (or deliberately refused, e.g. `none`).
    NotSupported,
    /// `crit` names an extension that is not understood, or is malformed or misplaced.
    CritInvalid,
    /// A JWK is malformed, weak or inconsistent (short RSA modulus, point off its curve, …).
    JwkInvalid,
    /// A JWK Set is malformed or unsafe as a whole (duplicate `kid`, mixed key types).
    JwksInvalid,
    /// The key does not fit the operation: wrong `kty`/curve for the algorithm, `use`/`key_ops`
    /// forbid it, a public key given to sign, an HMAC key shorter than the hash.
    KeyUnsuitable,
    /// No key in the set matches the token.
    NoMatchingKey,
    /// More than one key in the set matches and the token does not say which.
    MultipleMatchingKeys,
    /// PEM or DER input could not be parsed, or holds a key type that is not supported.
    PemInvalid,
    /// `exp` is in the past (beyond the leeway).
    JwtExpired,
    /// `nbf` or `iat` is in the future (beyond the leeway), or the token is older than allowed.
    JwtNotYetValid,
    /// A claim failed validation: issuer, audience, type, required claim, wrong JSON type.
    JwtClaimInvalid,
    /// The `typ` header does not match what the caller expects.
    TypInvalid,
    /// The caller's options are incomplete or contradictory (e.g. no issuer and not waived).
    InvalidOptions,
    /// The underlying crypto library failed unexpectedly (not an input problem).
    Crypto,
}

impl ErrorCode {
    /// The stable string form, e.g. `ERR_JWT_EXPIRED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Base64Invalid => "ERR_JOSE_BASE64_INVALID",
            Self::JsonInvalid => "ERR_JOSE_JSON_INVALID",
            Self::TooLarge => "ERR_JOSE_TOO_LARGE",
            Self::JwsInvalid => "ERR_JWS_INVALID",
            Self::JwtInvalid => "ERR_JWT_INVALID",
            Self::SignatureInvalid => "ERR_JWS_SIGNATURE_INVALID",
            Self::JweInvalid => "ERR_JWE_INVALID",
            Self::DecryptionFailed => "ERR_JWE_DECRYPTION_FAILED",
            Self::AlgNotAllowed => "ERR_JOSE_ALG_NOT_ALLOWED",
            Self::NotSupported => "ERR_JOSE_NOT_SUPPORTED",
            Self::CritInvalid => "ERR_JOSE_CRIT_INVALID",
            Self::JwkInvalid => "ERR_JWK_INVALID",
            Self::JwksInvalid => "ERR_JWKS_INVALID",
            Self::KeyUnsuitable => "ERR_JOSE_KEY_UNSUITABLE",
            Self::NoMatchingKey => "ERR_JWKS_NO_MATCHING_KEY",
            Self::MultipleMatchingKeys => "ERR_JWKS_MULTIPLE_MATCHING_KEYS",
            Self::PemInvalid => "ERR_PEM_INVALID",
            Self::JwtExpired => "ERR_JWT_EXPIRED",
            Self::JwtNotYetValid => "ERR_JWT_NOT_YET_VALID",
            Self::JwtClaimInvalid => "ERR_JWT_CLAIM_VALIDATION_FAILED",
            Self::TypInvalid => "ERR_JOSE_TYP_INVALID",
            Self::InvalidOptions => "ERR_JOSE_INVALID_OPTIONS",
            Self::Crypto => "ERR_JOSE_CRYPTO",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JOSE failure: a stable [`ErrorCode`] and a short reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Error {
    code: ErrorCode,
    reason: Cow<'static, str>,
}

impl Error {
    pub(crate) fn new(code: ErrorCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// Static reasons stay borrowed; only formatted ones allocate.
    pub(crate) fn from_args(code: ErrorCode, args: std::fmt::Arguments<'_>) -> Self {
        match args.as_str() {
            Some(s) => Self::new(code, s),
            None => Self::new(code, args.to_string()),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The short reason, safe to log.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error`]: `err!(JwsInvalid, "…")` or `err!(JwsInvalid, "… {x}")`.
macro_rules! err {
    ($code:ident, $($fmt:tt)+) => {
        $crate::error::Error::from_args($crate::error::ErrorCode::$code, format_args!($($fmt)+))
    };
}
pub(crate) use err;

/// A `map_err` adapter for library failures whose detail is not worth keeping (a fresh
/// closure per use, so it fits any error type).
macro_rules! crypto_err {
    ($msg:literal) => {
        |_| $crate::error::Error::new($crate::error::ErrorCode::Crypto, $msg)
    };
}
pub(crate) use crypto_err;
