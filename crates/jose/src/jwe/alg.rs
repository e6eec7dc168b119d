//! JWE algorithm identifiers (RFC 7518 §4-5, RFC 8037 §3.2).

use std::fmt;
use std::str::FromStr;

use crate::error::{err, Error};

/// A key-management algorithm: how the content encryption key reaches the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum KeyManagement {
    /// The shared symmetric key is the CEK.
    Dir,
    /// AES-128 key wrap (RFC 3394).
    A128KW,
    /// AES-192 key wrap.
    A192KW,
    /// AES-256 key wrap.
    A256KW,
    /// AES-128-GCM key wrap.
    A128GCMKW,
    /// AES-192-GCM key wrap.
    A192GCMKW,
    /// AES-256-GCM key wrap.
    A256GCMKW,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
    RSA_OAEP,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    RSA_OAEP_256,
    /// RSAES-OAEP with SHA-384 and MGF1-SHA-384.
    RSA_OAEP_384,
    /// RSAES-OAEP with SHA-512 and MGF1-SHA-512.
    RSA_OAEP_512,
    /// ECDH-ES; the derived key is the CEK.
    ECDH_ES,
    /// ECDH-ES, derived key wraps the CEK with AES-128 KW.
    ECDH_ES_A128KW,
    /// ECDH-ES, derived key wraps the CEK with AES-192 KW.
    ECDH_ES_A192KW,
    /// ECDH-ES, derived key wraps the CEK with AES-256 KW.
    ECDH_ES_A256KW,
    /// PBES2 with HMAC-SHA-256 and AES-128 KW.
    PBES2_HS256_A128KW,
    /// PBES2 with HMAC-SHA-384 and AES-192 KW.
    PBES2_HS384_A192KW,
    /// PBES2 with HMAC-SHA-512 and AES-256 KW.
    PBES2_HS512_A256KW,
}

/// How the CEK is obtained; decides the key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Direct,
    AesKw(usize),
    AesGcmKw(usize),
    RsaOaep,
    EcdhEs(Option<usize>),
    Pbes2(usize),
}

impl KeyManagement {
    /// Every supported key-management algorithm. `RSA1_5` is deliberately absent (RFC 8725 §3.2).
    pub const ALL: [KeyManagement; 18] = [
        Self::Dir,
        Self::A128KW,
        Self::A192KW,
        Self::A256KW,
        Self::A128GCMKW,
        Self::A192GCMKW,
        Self::A256GCMKW,
        Self::RSA_OAEP,
        Self::RSA_OAEP_256,
        Self::RSA_OAEP_384,
        Self::RSA_OAEP_512,
        Self::ECDH_ES,
        Self::ECDH_ES_A128KW,
        Self::ECDH_ES_A192KW,
        Self::ECDH_ES_A256KW,
        Self::PBES2_HS256_A128KW,
        Self::PBES2_HS384_A192KW,
        Self::PBES2_HS512_A256KW,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::A128KW => "A128KW",
            Self::A192KW => "A192KW",
            Self::A256KW => "A256KW",
            Self::A128GCMKW => "A128GCMKW",
            Self::A192GCMKW => "A192GCMKW",
            Self::A256GCMKW => "A256GCMKW",
            Self::RSA_OAEP => "RSA-OAEP",
            Self::RSA_OAEP_256 => "RSA-OAEP-256",
            Self::RSA_OAEP_384 => "RSA-OAEP-384",
            Self::RSA_OAEP_512 => "RSA-OAEP-512",
            Self::ECDH_ES => "ECDH-ES",
            Self::ECDH_ES_A128KW => "ECDH-ES+A128KW",
            Self::ECDH_ES_A192KW => "ECDH-ES+A192KW",
            Self::ECDH_ES_A256KW => "ECDH-ES+A256KW",
            Self::PBES2_HS256_A128KW => "PBES2-HS256+A128KW",
            Self::PBES2_HS384_A192KW => "PBES2-HS384+A192KW",
            Self::PBES2_HS512_A256KW => "PBES2-HS512+A256KW",
        }
    }

    pub(crate) const fn mode(self) -> Mode {
        match self {
            Self::Dir => Mode::Direct,
            Self::A128KW => Mode::AesKw(16),
            Self::A192KW => Mode::AesKw(24),
            Self::A256KW => Mode::AesKw(32),
            Self::A128GCMKW => Mode::AesGcmKw(16),
            Self::A192GCMKW => Mode::AesGcmKw(24),
            Self::A256GCMKW => Mode::AesGcmKw(32),
            Self::RSA_OAEP | Self::RSA_OAEP_256 | Self::RSA_OAEP_384 | Self::RSA_OAEP_512 => {
                Mode::RsaOaep
            }
            Self::ECDH_ES => Mode::EcdhEs(None),
            Self::ECDH_ES_A128KW => Mode::EcdhEs(Some(16)),
            Self::ECDH_ES_A192KW => Mode::EcdhEs(Some(24)),
            Self::ECDH_ES_A256KW => Mode::EcdhEs(Some(32)),
            Self::PBES2_HS256_A128KW => Mode::Pbes2(16),
            Self::PBES2_HS384_A192KW => Mode::Pbes2(24),
            Self::PBES2_HS512_A256KW => Mode::Pbes2(32),
        }
    }

    /// Whether the key management yields the CEK itself (no `encrypted_key`).
    pub const fn is_direct(self) -> bool {
        matches!(self, Self::Dir | Self::ECDH_ES)
    }
}

impl fmt::Display for KeyManagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyManagement {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(a) = Self::ALL.into_iter().find(|a| a.name() == s) {
            return Ok(a);
        }
        if s == "RSA1_5" {
            return Err(err!(
                NotSupported,
                "RSA1_5 is not supported: it is open to padding-oracle attacks (RFC 8725 §3.2)"
            ));
        }
        Err(err!(
            NotSupported,
            "unsupported JWE key-management algorithm {s:?}"
        ))
    }
}

/// A content-encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum ContentEncryption {
    /// AES-128-CBC with HMAC-SHA-256 (RFC 7518 §5.2.3).
    A128CBC_HS256,
    /// AES-192-CBC with HMAC-SHA-384.
    A192CBC_HS384,
    /// AES-256-CBC with HMAC-SHA-512.
    A256CBC_HS512,
    /// AES-128-GCM.
    A128GCM,
    /// AES-192-GCM.
    A192GCM,
    /// AES-256-GCM.
    A256GCM,
}

impl ContentEncryption {
    /// Every supported content encryption.
    pub const ALL: [ContentEncryption; 6] = [
        Self::A128CBC_HS256,
        Self::A192CBC_HS384,
        Self::A256CBC_HS512,
        Self::A128GCM,
        Self::A192GCM,
        Self::A256GCM,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::A128CBC_HS256 => "A128CBC-HS256",
            Self::A192CBC_HS384 => "A192CBC-HS384",
            Self::A256CBC_HS512 => "A256CBC-HS512",
            Self::A128GCM => "A128GCM",
            Self::A192GCM => "A192GCM",
            Self::A256GCM => "A256GCM",
        }
    }

    /// CEK length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::A128GCM => 16,
            Self::A192GCM => 24,
            Self::A128CBC_HS256 | Self::A256GCM => 32,
            Self::A192CBC_HS384 => 48,
            Self::A256CBC_HS512 => 64,
        }
    }

    /// IV length in bytes.
    pub const fn iv_len(self) -> usize {
        match self {
            Self::A128GCM | Self::A192GCM | Self::A256GCM => 12,
            _ => 16,
        }
    }

    /// Authentication tag length in bytes.
    pub const fn tag_len(self) -> usize {
        match self {
            Self::A192CBC_HS384 => 24,
            Self::A256CBC_HS512 => 32,
            _ => 16,
        }
    }
}

impl fmt::Display for ContentEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ContentEncryption {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| err!(NotSupported, "unsupported JWE content encryption {s:?}"))
    }
}
