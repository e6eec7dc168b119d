//! JWS algorithm identifiers (RFC 7518 §3, RFC 8037 §3.1) and the registry of names a key's
//! `alg` member may carry.

use std::fmt;
use std::str::FromStr;

use crate::error::{err, Error};

/// A JWS signature or MAC algorithm. `none` is deliberately absent: it cannot be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// EdDSA (RFC 8037); only Ed25519 is supported.
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm, in registry order.
    pub const ALL: [Algorithm; 13] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The registered name, as it appears in a header.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The curve this algorithm's keys are on (ECDSA and EdDSA); RSA and HMAC have none.
    pub const fn curve(self) -> Option<crate::jwk::Curve> {
        use crate::jwk::Curve;
        match self {
            Self::ES256 => Some(Curve::P256),
            Self::ES384 => Some(Curve::P384),
            Self::ES512 => Some(Curve::P521),
            Self::EdDSA => Some(Curve::Ed25519),
            _ => None,
        }
    }

    /// The family, which decides the key type.
    pub(crate) const fn family(self) -> Family {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 | Self::ES384 | Self::ES512 => Family::Ecdsa,
            Self::EdDSA => Family::EdDsa,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ecdsa,
    EdDsa,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Exact, case-sensitive match (RFC 7515 §4.1.1). `none` in any spelling is refused with
    /// its own message so logs show the attack for what it is.
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(alg) = Self::ALL.into_iter().find(|a| a.name() == s) {
            return Ok(alg);
        }
        if s.eq_ignore_ascii_case("none") {
            return Err(err!(
                NotSupported,
                "the \"none\" algorithm is never accepted"
            ));
        }
        Err(err!(NotSupported, "unsupported JWS algorithm {s:?}"))
    }
}

/// Key-management and content-encryption names (RFC 7518 §4-5) that a JWK's `alg` may name.
/// A key carrying one of these is an encryption key and never signs or verifies.
pub(crate) const JWE_ALGORITHM_NAMES: &[&str] = &[
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "A128KW",
    "A192KW",
    "A256KW",
    "dir",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A128GCM",
    "A192GCM",
    "A256GCM",
];

/// Whether `name` is a registered JWE key-management or content-encryption algorithm.
pub fn is_jwe_name(name: &str) -> bool {
    JWE_ALGORITHM_NAMES.contains(&name)
}

/// Whether `name` is a registered JOSE algorithm this crate knows of (signing or encryption).
pub(crate) fn is_registered(name: &str) -> bool {
    Algorithm::ALL.iter().any(|a| a.name() == name) || is_jwe_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>().unwrap(), alg);
        }
    }

    #[test]
    fn none_in_any_case_is_refused() {
        for s in ["none", "None", "NONE", "nOnE"] {
            let e = s.parse::<Algorithm>().unwrap_err();
            assert_eq!(e.code(), ErrorCode::NotSupported);
            assert!(e.reason().contains("none"));
        }
        assert!(
            "hs256".parse::<Algorithm>().is_err(),
            "names are case-sensitive"
        );
    }
}
