//! The key material behind a [`Jwk`](super::Jwk): validated components plus the aws-lc-rs
//! objects built from them once, so signing and verifying never parse keys again.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeyPairComponents, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey};
use aws_lc_rs::{aead, agreement};
use aws_lc_rs::{constant_time, hmac};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{family_name, min_hmac_key_len, roca};
use crate::alg::{Algorithm, Family};
use crate::b64;
use crate::error::{crypto_err, err, Result};

/// The JWK `kty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA (RFC 7518 §6.3).
    Rsa,
    /// Elliptic curve (RFC 7518 §6.2).
    Ec,
    /// Octet key pair (RFC 8037).
    Okp,
    /// Symmetric octet sequence (RFC 7518 §6.4).
    Oct,
}

impl KeyType {
    /// The registered `kty` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Ec => "EC",
            Self::Okp => "OKP",
            Self::Oct => "oct",
        }
    }
}

/// The JWK `crv` of EC and OKP keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// Ed25519 (signing).
    Ed25519,
    /// X25519 (key agreement).
    X25519,
}

impl Curve {
    /// The registered `crv` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
            Self::Ed25519 => "Ed25519",
            Self::X25519 => "X25519",
        }
    }

    /// Length of one coordinate or scalar in bytes.
    pub(crate) fn field_len(self) -> usize {
        match self {
            Self::P256 | Self::Ed25519 | Self::X25519 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn ecdsa_algorithm(self) -> Option<Algorithm> {
        match self {
            Self::P256 => Some(Algorithm::ES256),
            Self::P384 => Some(Algorithm::ES384),
            Self::P521 => Some(Algorithm::ES512),
            Self::Ed25519 | Self::X25519 => None,
        }
    }

    fn ecdsa_params(
        self,
    ) -> Option<(
        &'static signature::EcdsaVerificationAlgorithm,
        &'static signature::EcdsaSigningAlgorithm,
    )> {
        match self {
            Self::P256 => Some((
                &signature::ECDSA_P256_SHA256_FIXED,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )),
            Self::P384 => Some((
                &signature::ECDSA_P384_SHA384_FIXED,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            )),
            Self::P521 => Some((
                &signature::ECDSA_P521_SHA512_FIXED,
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            )),
            Self::Ed25519 | Self::X25519 => None,
        }
    }
}

impl std::str::FromStr for Curve {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        [
            Self::P256,
            Self::P384,
            Self::P521,
            Self::Ed25519,
            Self::X25519,
        ]
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| err!(NotSupported, "unsupported curve {s:?}"))
    }
}

pub(crate) enum KeyMaterial {
    Rsa(Box<RsaKey>),
    Ec(Box<EcKey>),
    Ed25519(Box<EdKey>),
    X25519(Box<XKey>),
    Oct(Box<OctKey>),
}

pub(crate) struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
    /// One parsed key per RSA algorithm, built on first use (aws-lc-rs binds a parsed key to
    /// its padding and hash).
    verifiers: [OnceLock<ParsedPublicKey>; 6],
    private: Option<RsaPrivate>,
}

pub(crate) struct RsaPrivate {
    d: Zeroizing<Vec<u8>>,
    p: Zeroizing<Vec<u8>>,
    q: Zeroizing<Vec<u8>>,
    dp: Zeroizing<Vec<u8>>,
    dq: Zeroizing<Vec<u8>>,
    qi: Zeroizing<Vec<u8>>,
    pub(crate) pair: RsaKeyPair,
    /// The same key as an OAEP decryption key, built on first use.
    oaep: OnceLock<OaepPrivateDecryptingKey>,
}

pub(crate) struct EcKey {
    pub(crate) crv: Curve,
    x: Vec<u8>,
    y: Vec<u8>,
    verifier: ParsedPublicKey,
    private: Option<(Zeroizing<Vec<u8>>, EcdsaKeyPair)>,
    /// The private scalar as an ECDH key, made on first decryption and kept: building it costs
    /// more than the agreement itself.
    agreement: OnceLock<agreement::PrivateKey>,
}

pub(crate) struct EdKey {
    x: Vec<u8>,
    verifier: ParsedPublicKey,
    private: Option<(Zeroizing<Vec<u8>>, Ed25519KeyPair)>,
}

/// X25519 keys are parsed and validated here; the JWE layer uses them for ECDH-ES.
pub(crate) struct XKey {
    pub(crate) x: Vec<u8>,
    pub(crate) d: Option<Zeroizing<Vec<u8>>>,
    /// As for [`EcKey`]: the ECDH key, made once.
    agreement: OnceLock<agreement::PrivateKey>,
}

pub(crate) struct OctKey {
    pub(crate) k: Zeroizing<Vec<u8>>,
    /// HMAC key schedules per hash, computed on first use.
    hmac: [OnceLock<hmac::Key>; 3],
    /// The AES-GCM key schedule when this key is a `dir` CEK, computed on first use.
    gcm: OnceLock<aead::LessSafeKey>,
}

/// Computes a signature; the key was checked against the algorithm first.
pub(crate) enum Signer<'a> {
    Hmac(&'a hmac::Key),
    Rsa(&'a RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(&'a EcdsaKeyPair),
    Ed25519(&'a Ed25519KeyPair),
}

impl Signer<'_> {
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Self::Rsa(pair, padding) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(*padding, &SystemRandom::new(), message, &mut sig)
                    .map_err(crypto_err!("signing failed"))?;
                Ok(sig)
            }
            Self::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(crypto_err!("signing failed")),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Reads a required base64url member.
fn required(map: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
    optional(map, name)?.ok_or_else(|| err!(JwkInvalid, "missing {name:?}"))
}

fn optional(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => b64::decode(s)
            .map(Some)
            .map_err(|_| err!(JwkInvalid, "{name:?} is not strict base64url")),
        Some(_) => Err(err!(JwkInvalid, "{name:?} must be a string")),
    }
}

fn secret(map: &Map<String, Value>, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    required(map, name).map(Zeroizing::new)
}

fn rsa_algorithm_index(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::RS256 => Some(0),
        Algorithm::RS384 => Some(1),
        Algorithm::RS512 => Some(2),
        Algorithm::PS256 => Some(3),
        Algorithm::PS384 => Some(4),
        Algorithm::PS512 => Some(5),
        _ => None,
    }
}

fn rsa_verify_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn rsa_sign_padding(alg: Algorithm) -> Option<&'static dyn signature::RsaEncoding> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn hmac_index(alg: Algorithm) -> Option<(usize, hmac::Algorithm)> {
    match alg {
        Algorithm::HS256 => Some((0, hmac::HMAC_SHA256)),
        Algorithm::HS384 => Some((1, hmac::HMAC_SHA384)),
        Algorithm::HS512 => Some((2, hmac::HMAC_SHA512)),
        _ => None,
    }
}

/// RSA moduli we accept, in bits: RFC 8725 §3.5 / NIST minimum up to aws-lc-rs's maximum.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

impl RsaKey {
    pub(crate) fn new(
        n: Vec<u8>,
        e: Vec<u8>,
        private: Option<[Zeroizing<Vec<u8>>; 6]>,
    ) -> Result<Self> {
        // RFC 7518 §6.3.1: minimal big-endian; a leading zero would also change the thumbprint.
        if n.first() == Some(&0) || e.first() == Some(&0) {
            return Err(err!(
                JwkInvalid,
                "RSA \"n\" and \"e\" must not have leading zero octets"
            ));
        }
        let bits = bit_len(&n);
        if bits < RSA_MIN_BITS {
            return Err(err!(
                JwkInvalid,
                "RSA modulus of {bits} bits is below the 2048-bit minimum"
            ));
        }
        if bits > RSA_MAX_BITS {
            return Err(err!(
                JwkInvalid,
                "RSA modulus of {bits} bits is above the 8192-bit maximum"
            ));
        }
        if e.len() > 4 {
            return Err(err!(JwkInvalid, "RSA public exponent is too large"));
        }
        let e_value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if e_value < 3 || e_value % 2 == 0 {
            return Err(err!(
                JwkInvalid,
                "RSA public exponent must be odd and at least 3"
            ));
        }
        if roca::has_fingerprint(&n) {
            return Err(err!(
                JwkInvalid,
                "RSA modulus has the ROCA fingerprint (CVE-2017-15361)"
            ));
        }
        let components = PublicKeyComponents {
            n: &n[..],
            e: &e[..],
        };
        let first = components
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| err!(JwkInvalid, "RSA public key rejected"))?;
        let verifiers: [OnceLock<ParsedPublicKey>; 6] = Default::default();
        if let Some(slot) = verifiers.first() {
            let _ = slot.set(first);
        }
        let private = match private {
            None => None,
            Some([d, p, q, dp, dq, qi]) => {
                let pair = RsaKeyPair::from_components(&KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: &n[..],
                        e: &e[..],
                    },
                    d: &d[..],
                    p: &p[..],
                    q: &q[..],
                    dP: &dp[..],
                    dQ: &dq[..],
                    qInv: &qi[..],
                })
                .map_err(|_| err!(JwkInvalid, "RSA private key components are inconsistent"))?;
                Some(RsaPrivate {
                    d,
                    p,
                    q,
                    dp,
                    dq,
                    qi,
                    pair,
                    oaep: OnceLock::new(),
                })
            }
        };
        Ok(Self {
            n,
            e,
            verifiers,
            private,
        })
    }

    fn verifier(&self, alg: Algorithm) -> Result<&ParsedPublicKey> {
        let (Some(i), Some(params)) = (rsa_algorithm_index(alg), rsa_verify_params(alg)) else {
            return Err(err!(KeyUnsuitable, "{alg} does not use an RSA key"));
        };
        let slot = self
            .verifiers
            .get(i)
            .ok_or_else(|| err!(Crypto, "RSA verifier slot missing"))?;
        if let Some(v) = slot.get() {
            return Ok(v);
        }
        let parsed = PublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .to_parsed_public_key(params)
        .map_err(|_| err!(JwkInvalid, "RSA public key rejected"))?;
        Ok(slot.get_or_init(|| parsed))
    }
}

impl EcKey {
    pub(crate) fn new(
        crv: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
        d: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self> {
        let len = crv.field_len();
        if x.len() != len || y.len() != len {
            return Err(err!(
                JwkInvalid,
                "{} coordinates must be {len} bytes",
                crv.name()
            ));
        }
        let (verify_alg, sign_alg) = crv
            .ecdsa_params()
            .ok_or_else(|| err!(JwkInvalid, "{} is not an EC curve", crv.name()))?;
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        // aws-lc checks that the point is on the curve and not the identity.
        let verifier = ParsedPublicKey::new(verify_alg, &point)
            .map_err(|_| err!(JwkInvalid, "EC point is not on {}", crv.name()))?;
        let private = match d {
            None => None,
            Some(d) => {
                if d.len() != len {
                    return Err(err!(
                        JwkInvalid,
                        "{} private scalar must be {len} bytes",
                        crv.name()
                    ));
                }
                let pair = EcdsaKeyPair::from_private_key_and_public_key(sign_alg, &d, &point)
                    .map_err(|_| {
                        err!(JwkInvalid, "EC private key does not match its public point")
                    })?;
                Some((d, pair))
            }
        };
        Ok(Self {
            crv,
            x,
            y,
            verifier,
            private,
            agreement: OnceLock::new(),
        })
    }

    /// The uncompressed SEC1 point.
    pub(crate) fn point(&self) -> Vec<u8> {
        let mut point = Vec::with_capacity(1 + self.x.len() * 2);
        point.push(0x04);
        point.extend_from_slice(&self.x);
        point.extend_from_slice(&self.y);
        point
    }

    pub(crate) fn pair(&self) -> Option<&EcdsaKeyPair> {
        self.private.as_ref().map(|(_, p)| p)
    }

    /// The private scalar as an ECDH key, if this key is private.
    pub(crate) fn agreement_private(&self) -> Result<Option<&agreement::PrivateKey>> {
        let Some((d, _)) = &self.private else {
            return Ok(None);
        };
        cached_agreement(&self.agreement, || {
            agreement::PrivateKey::from_private_key(ecdh_algorithm(self.crv), d)
                .map_err(|_| err!(JwkInvalid, "EC private key rejected for ECDH"))
        })
        .map(Some)
    }
}

/// The cached key, made by `make` the first time. Two threads racing both make one; one is
/// kept.
fn cached_agreement(
    cell: &OnceLock<agreement::PrivateKey>,
    make: impl FnOnce() -> Result<agreement::PrivateKey>,
) -> Result<&agreement::PrivateKey> {
    if let Some(key) = cell.get() {
        return Ok(key);
    }
    let _ = cell.set(make()?);
    cell.get()
        .ok_or_else(|| err!(JwkInvalid, "ECDH key could not be kept"))
}

/// The aws-lc-rs ECDH algorithm for a curve.
pub(crate) fn ecdh_algorithm(crv: Curve) -> &'static agreement::Algorithm {
    match crv {
        Curve::P384 => &agreement::ECDH_P384,
        Curve::P521 => &agreement::ECDH_P521,
        Curve::X25519 => &agreement::X25519,
        _ => &agreement::ECDH_P256,
    }
}

impl EdKey {
    pub(crate) fn new(x: Vec<u8>, d: Option<Zeroizing<Vec<u8>>>) -> Result<Self> {
        if x.len() != 32 {
            return Err(err!(JwkInvalid, "Ed25519 \"x\" must be 32 bytes"));
        }
        let verifier = ParsedPublicKey::new(&signature::ED25519, &x)
            .map_err(|_| err!(JwkInvalid, "Ed25519 public key rejected"))?;
        let private = match d {
            None => None,
            Some(d) => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x).map_err(|_| {
                    err!(
                        JwkInvalid,
                        "Ed25519 private key does not match its public key"
                    )
                })?;
                Some((d, pair))
            }
        };
        Ok(Self {
            x,
            verifier,
            private,
        })
    }

    pub(crate) fn pair(&self) -> Option<&Ed25519KeyPair> {
        self.private.as_ref().map(|(_, p)| p)
    }

    pub(crate) fn public_bytes(&self) -> &[u8] {
        &self.x
    }
}

impl XKey {
    /// The private key as an ECDH key, if present.
    pub(crate) fn agreement_private(&self) -> Result<Option<&agreement::PrivateKey>> {
        let Some(d) = &self.d else {
            return Ok(None);
        };
        cached_agreement(&self.agreement, || {
            agreement::PrivateKey::from_private_key(&agreement::X25519, d)
                .map_err(|_| err!(JwkInvalid, "X25519 private key rejected"))
        })
        .map(Some)
    }

    pub(crate) fn new(x: Vec<u8>, d: Option<Zeroizing<Vec<u8>>>) -> Result<Self> {
        if x.len() != 32 || d.as_ref().is_some_and(|d| d.len() != 32) {
            return Err(err!(JwkInvalid, "X25519 keys are 32 bytes"));
        }
        if let Some(d) = &d {
            let public = agreement::PrivateKey::from_private_key(&agreement::X25519, d)
                .ok()
                .and_then(|k| k.compute_public_key().ok())
                .ok_or_else(|| err!(JwkInvalid, "X25519 private key rejected"))?;
            if public.as_ref() != x.as_slice() {
                return Err(err!(
                    JwkInvalid,
                    "X25519 private key does not match its public key"
                ));
            }
        }
        Ok(Self {
            x,
            d,
            agreement: OnceLock::new(),
        })
    }
}

impl OctKey {
    pub(crate) fn new(k: Zeroizing<Vec<u8>>) -> Result<Self> {
        if k.is_empty() {
            return Err(err!(JwkInvalid, "symmetric key \"k\" is empty"));
        }
        Ok(Self {
            k,
            hmac: Default::default(),
            gcm: OnceLock::new(),
        })
    }

    /// This key as an AES-GCM key of its own size (for `dir`), kept after first use.
    pub(crate) fn gcm_key(&self) -> Option<&aead::LessSafeKey> {
        if let Some(key) = self.gcm.get() {
            return Some(key);
        }
        let alg = match self.k.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return None,
        };
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &self.k).ok()?);
        Some(self.gcm.get_or_init(|| key))
    }

    fn hmac_key(&self, alg: Algorithm) -> Result<&hmac::Key> {
        let (i, hmac_alg) =
            hmac_index(alg).ok_or_else(|| err!(KeyUnsuitable, "{alg} is not an HMAC algorithm"))?;
        let slot = self
            .hmac
            .get(i)
            .ok_or_else(|| err!(Crypto, "HMAC slot missing"))?;
        Ok(slot.get_or_init(|| hmac::Key::new(hmac_alg, &self.k)))
    }
}

impl KeyMaterial {
    pub(crate) fn from_map(kty: &str, map: &Map<String, Value>) -> Result<Self> {
        match kty {
            "RSA" => {
                if map.contains_key("oth") {
                    return Err(err!(
                        NotSupported,
                        "multi-prime RSA keys (\"oth\") are not supported"
                    ));
                }
                let n = required(map, "n")?;
                let e = required(map, "e")?;
                let private = if map.contains_key("d") {
                    Some([
                        secret(map, "d")?,
                        secret(map, "p")?,
                        secret(map, "q")?,
                        secret(map, "dp")?,
                        secret(map, "dq")?,
                        secret(map, "qi")?,
                    ])
                } else {
                    None
                };
                Ok(Self::Rsa(Box::new(RsaKey::new(n, e, private)?)))
            }
            "EC" => {
                let crv = match map.get("crv").and_then(Value::as_str) {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    Some("P-521") => Curve::P521,
                    Some(other) => {
                        return Err(err!(NotSupported, "unsupported EC curve {other:?}"))
                    }
                    None => return Err(err!(JwkInvalid, "EC key without a string \"crv\"")),
                };
                let d = optional(map, "d")?.map(Zeroizing::new);
                Ok(Self::Ec(Box::new(EcKey::new(
                    crv,
                    required(map, "x")?,
                    required(map, "y")?,
                    d,
                )?)))
            }
            "OKP" => {
                let d = optional(map, "d")?.map(Zeroizing::new);
                match map.get("crv").and_then(Value::as_str) {
                    Some("Ed25519") => {
                        Ok(Self::Ed25519(Box::new(EdKey::new(required(map, "x")?, d)?)))
                    }
                    Some("X25519") => {
                        Ok(Self::X25519(Box::new(XKey::new(required(map, "x")?, d)?)))
                    }
                    Some(other) => Err(err!(NotSupported, "unsupported OKP curve {other:?}")),
                    None => Err(err!(JwkInvalid, "OKP key without a string \"crv\"")),
                }
            }
            "oct" => Ok(Self::Oct(Box::new(OctKey::new(secret(map, "k")?)?))),
            other => Err(err!(NotSupported, "unsupported key type {other:?}")),
        }
    }

    /// The key-material member names of this key type.
    pub(crate) fn member_names(&self) -> &'static [&'static str] {
        match self {
            Self::Rsa(_) => &["n", "e", "d", "p", "q", "dp", "dq", "qi", "oth"],
            Self::Ec(_) => &["crv", "x", "y", "d"],
            Self::Ed25519(_) | Self::X25519(_) => &["crv", "x", "d"],
            Self::Oct(_) => &["k"],
        }
    }

    pub(crate) fn key_type(&self) -> KeyType {
        match self {
            Self::Rsa(_) => KeyType::Rsa,
            Self::Ec(_) => KeyType::Ec,
            Self::Ed25519(_) | Self::X25519(_) => KeyType::Okp,
            Self::Oct(_) => KeyType::Oct,
        }
    }

    pub(crate) fn curve(&self) -> Option<Curve> {
        match self {
            Self::Ec(k) => Some(k.crv),
            Self::Ed25519(_) => Some(Curve::Ed25519),
            Self::X25519(_) => Some(Curve::X25519),
            Self::Rsa(_) | Self::Oct(_) => None,
        }
    }

    pub(crate) fn is_private(&self) -> bool {
        match self {
            Self::Rsa(k) => k.private.is_some(),
            Self::Ec(k) => k.private.is_some(),
            Self::Ed25519(k) => k.private.is_some(),
            Self::X25519(k) => k.d.is_some(),
            Self::Oct(_) => true,
        }
    }

    pub(crate) fn implied_algorithm(&self) -> Option<Algorithm> {
        match self {
            Self::Ec(k) => k.crv.ecdsa_algorithm(),
            Self::Ed25519(_) => Some(Algorithm::EdDSA),
            Self::Rsa(_) | Self::X25519(_) | Self::Oct(_) => None,
        }
    }

    /// Whether this material can serve `alg` at all (type, curve, size), regardless of
    /// `use`/`key_ops`. This is what stops an RSA public key being used as an HMAC secret.
    pub(crate) fn fits(&self, alg: Algorithm) -> Result<()> {
        let fits = match (alg.family(), self) {
            (Family::Hmac, Self::Oct(k)) => {
                let min = min_hmac_key_len(alg);
                if k.k.len() < min {
                    return Err(err!(
                        KeyUnsuitable,
                        "{alg} needs a key of at least {min} bytes"
                    ));
                }
                true
            }
            (Family::Rsa, Self::Rsa(_)) | (Family::EdDsa, Self::Ed25519(_)) => true,
            (Family::Ecdsa, Self::Ec(k)) => k.crv.ecdsa_algorithm() == Some(alg),
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            let what = match self.curve() {
                Some(c) => format!("{} {}", self.key_type().name(), c.name()),
                None => self.key_type().name().to_owned(),
            };
            Err(err!(
                KeyUnsuitable,
                "{alg} needs an {} key, not {what}",
                family_name(alg.family())
            ))
        }
    }

    pub(crate) fn signer(&self, alg: Algorithm) -> Result<Signer<'_>> {
        let missing = || err!(KeyUnsuitable, "signing needs a private key");
        match self {
            Self::Oct(k) => Ok(Signer::Hmac(k.hmac_key(alg)?)),
            Self::Rsa(k) => {
                let padding = rsa_sign_padding(alg)
                    .ok_or_else(|| err!(KeyUnsuitable, "{alg} is not an RSA algorithm"))?;
                let private = k.private.as_ref().ok_or_else(missing)?;
                Ok(Signer::Rsa(&private.pair, padding))
            }
            Self::Ec(k) => Ok(Signer::Ecdsa(k.pair().ok_or_else(missing)?)),
            Self::Ed25519(k) => Ok(Signer::Ed25519(k.pair().ok_or_else(missing)?)),
            Self::X25519(_) => Err(err!(KeyUnsuitable, "X25519 keys cannot sign")),
        }
    }

    /// Verifies `signature` over `message`. The caller has checked the key fits `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> Result<()> {
        let ok = match self {
            Self::Oct(k) => {
                let key = k.hmac_key(alg)?;
                let tag = hmac::sign(key, message);
                // Constant time, and a truncated tag never matches.
                constant_time::verify_slices_are_equal(tag.as_ref(), sig).is_ok()
            }
            Self::Rsa(k) => k.verifier(alg)?.verify_sig(message, sig).is_ok(),
            // aws-lc rejects r or s equal to 0 or ≥ n (CVE-2022-21449) and wrong lengths.
            Self::Ec(k) => k.verifier.verify_sig(message, sig).is_ok(),
            Self::Ed25519(k) => k.verifier.verify_sig(message, sig).is_ok(),
            Self::X25519(_) => return Err(err!(KeyUnsuitable, "X25519 keys cannot verify")),
        };
        if ok {
            Ok(())
        } else {
            Err(err!(SignatureInvalid, "signature verification failed"))
        }
    }

    pub(crate) fn to_public(&self) -> Result<Self> {
        Ok(match self {
            Self::Rsa(k) => Self::Rsa(Box::new(RsaKey::new(k.n.clone(), k.e.clone(), None)?)),
            Self::Ec(k) => Self::Ec(Box::new(EcKey::new(k.crv, k.x.clone(), k.y.clone(), None)?)),
            Self::Ed25519(k) => Self::Ed25519(Box::new(EdKey::new(k.x.clone(), None)?)),
            Self::X25519(k) => Self::X25519(Box::new(XKey::new(k.x.clone(), None)?)),
            Self::Oct(_) => return Err(err!(KeyUnsuitable, "a symmetric key has no public half")),
        })
    }

    /// Writes `kty` and the key-material members. With `private` false, only the members
    /// RFC 7638 requires (for `oct` that is `k` itself).
    pub(crate) fn write_members(&self, map: &mut Map<String, Value>, private: bool) {
        let mut put = |name: &str, bytes: &[u8]| {
            map.insert(name.to_owned(), Value::String(b64::encode(bytes)));
        };
        let kty = self.key_type().name();
        match self {
            Self::Rsa(k) => {
                put("n", &k.n);
                put("e", &k.e);
                if let (true, Some(p)) = (private, &k.private) {
                    put("d", &p.d);
                    put("p", &p.p);
                    put("q", &p.q);
                    put("dp", &p.dp);
                    put("dq", &p.dq);
                    put("qi", &p.qi);
                }
            }
            Self::Ec(k) => {
                put("x", &k.x);
                put("y", &k.y);
                if let (true, Some((d, _))) = (private, &k.private) {
                    put("d", d);
                }
            }
            Self::Ed25519(k) => {
                put("x", &k.x);
                if let (true, Some((d, _))) = (private, &k.private) {
                    put("d", d);
                }
            }
            Self::X25519(k) => {
                put("x", &k.x);
                if let (true, Some(d)) = (private, &k.d) {
                    put("d", d);
                }
            }
            Self::Oct(k) => put("k", &k.k),
        }
        if let Some(c) = self.curve() {
            map.insert("crv".into(), c.name().into());
        }
        map.insert("kty".into(), kty.into());
    }
}

impl RsaKey {
    /// An OAEP encryption key for this public key.
    pub(crate) fn oaep_encrypting(&self) -> Result<OaepPublicEncryptingKey> {
        let public: PublicEncryptingKey = PublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .try_into()
        .map_err(|_| err!(JwkInvalid, "RSA public key rejected"))?;
        OaepPublicEncryptingKey::new(public)
            .map_err(|_| err!(JwkInvalid, "RSA public key rejected"))
    }

    /// The OAEP decryption key, if this key is private.
    pub(crate) fn oaep_decrypting(&self) -> Result<Option<&OaepPrivateDecryptingKey>> {
        let Some(private) = &self.private else {
            return Ok(None);
        };
        if let Some(k) = private.oaep.get() {
            return Ok(Some(k));
        }
        let der = private
            .pair
            .as_der()
            .map_err(crypto_err!("RSA decryption key unavailable"))?;
        let key = PrivateDecryptingKey::from_pkcs8(der.as_ref())
            .map_err(crypto_err!("RSA decryption key unavailable"))?;
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(crypto_err!("RSA decryption key unavailable"))?;
        Ok(Some(private.oaep.get_or_init(|| key)))
    }

    pub(crate) fn public_components(&self) -> (&[u8], &[u8]) {
        (&self.n, &self.e)
    }

    pub(crate) fn private_pair(&self) -> Option<&RsaKeyPair> {
        self.private.as_ref().map(|p| &p.pair)
    }
}

/// Builds Ed25519 material from a key pair made by aws-lc-rs (generation, PKCS#8 import).
pub(crate) fn ed25519_from_pair(pair: &Ed25519KeyPair) -> Result<KeyMaterial> {
    use aws_lc_rs::encoding::AsBigEndian;
    let seed = pair
        .seed()
        .map_err(|_| err!(Crypto, "Ed25519 seed unavailable"))?;
    let seed = seed
        .as_be_bytes()
        .map_err(|_| err!(Crypto, "Ed25519 seed unavailable"))?;
    let x = pair.public_key().as_ref().to_vec();
    Ok(KeyMaterial::Ed25519(Box::new(EdKey::new(
        x,
        Some(Zeroizing::new(seed.as_ref().to_vec())),
    )?)))
}

/// Builds EC material from a key pair made by aws-lc-rs (generation, PKCS#8/SEC1 import).
pub(crate) fn ec_from_pair(crv: Curve, pair: &EcdsaKeyPair) -> Result<KeyMaterial> {
    use aws_lc_rs::encoding::AsBigEndian;
    let d = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| err!(Crypto, "EC private scalar unavailable"))?;
    let point = pair.public_key().as_ref();
    let (x, y) = split_point(crv, point)?;
    Ok(KeyMaterial::Ec(Box::new(EcKey::new(
        crv,
        x,
        y,
        Some(Zeroizing::new(d.as_ref().to_vec())),
    )?)))
}

/// Splits an uncompressed SEC1 point into its coordinates.
pub(crate) fn split_point(crv: Curve, point: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let len = crv.field_len();
    match point.split_first() {
        Some((0x04, rest)) if rest.len() == 2 * len => {
            let (x, y) = rest.split_at(len);
            Ok((x.to_vec(), y.to_vec()))
        }
        _ => Err(err!(
            JwkInvalid,
            "expected an uncompressed {} point",
            crv.name()
        )),
    }
}
