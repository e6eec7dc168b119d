//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and key sets.
//!
//! A [`Jwk`] is validated when it is parsed and holds its key already parsed by aws-lc-rs, so
//! verification never re-parses key material: RSA moduli under 2048 bits, `e = 1`, moduli with
//! the ROCA fingerprint, EC points off their curve and inconsistent private halves are refused
//! at the door rather than at first use.

mod generate;
pub(crate) mod material;
mod pem;
mod roca;
mod set;

use serde_json::{Map, Value};

use crate::alg::{self, Algorithm, Family};
use crate::error::{err, Result};
use crate::{b64, json};

pub use material::{Curve, KeyType};
pub(crate) use material::{KeyMaterial, Signer};
pub use set::JwkSet;

/// What a key is about to be used for; checked against `use` and `key_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOperation {
    /// Compute a signature or MAC.
    Sign,
    /// Verify a signature or MAC.
    Verify,
}

impl KeyOperation {
    fn name(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Verify => "verify",
        }
    }
}

/// Members every JWK may carry besides its key material (RFC 7517 §4).
const COMMON_MEMBERS: &[&str] = &["kty", "kid", "alg", "use", "key_ops"];

/// A validated JSON Web Key, public or private.
pub struct Jwk {
    pub(crate) material: KeyMaterial,
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    /// Members we do not interpret (x5c, x5t, …), kept so export loses nothing. Never used to
    /// find or trust a key.
    other: Map<String, Value>,
}

impl std::fmt::Debug for Jwk {
    // Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.key_type())
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.is_private())
            .finish_non_exhaustive()
    }
}

impl Jwk {
    /// Parses a JWK from JSON text.
    pub fn from_json(text: &[u8]) -> Result<Self> {
        let map = json::parse_object(text, "JWK")?;
        Self::from_map(&map)
    }

    /// Parses a JWK from an already-parsed JSON object.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let kty =
            json::opt_str(map, "kty", "JWK")?.ok_or_else(|| err!(JwkInvalid, "missing \"kty\""))?;
        let material = KeyMaterial::from_map(kty, map)?;

        let Common {
            kid,
            alg,
            key_use,
            key_ops,
        } = Common::from_map(map)?;
        // A signing alg must fit the key type (ES256 on a P-384 key is a broken key).
        if let Some(sig_alg) = alg.as_deref().and_then(|a| a.parse::<Algorithm>().ok()) {
            material.fits(sig_alg)?;
        }
        let other = map
            .iter()
            .filter(|(k, _)| {
                !COMMON_MEMBERS.contains(&k.as_str())
                    && !material.member_names().contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            material,
            kid,
            alg,
            key_use,
            key_ops,
            other,
        })
    }

    pub(crate) fn from_material(material: KeyMaterial) -> Self {
        Self {
            material,
            kid: None,
            alg: None,
            key_use: None,
            key_ops: None,
            other: Map::new(),
        }
    }

    /// Generates a new private key for `alg` (see [`generate`](Self::generate) options).
    ///
    /// RSA keys default to 2048 bits; `bits` may ask for 3072, 4096 or 8192. EC curves follow
    /// the algorithm. HMAC keys are as long as the hash. The `alg` and `kid` (the RFC 7638
    /// thumbprint unless `kid` is given) are set.
    pub fn generate(alg: Algorithm, bits: Option<usize>, kid: Option<String>) -> Result<Self> {
        let material = generate::generate(alg, bits)?;
        let mut jwk = Self::from_material(material);
        jwk.alg = Some(alg.name().to_owned());
        jwk.kid = Some(match kid {
            Some(k) => k,
            None => jwk.thumbprint(),
        });
        Ok(jwk)
    }

    /// Generates a new private key for a JWE key-management algorithm: `dir` keys are sized
    /// by `enc`, AES keys by the algorithm, PBES2 passwords are 32 random bytes, RSA-OAEP keys
    /// default to 2048 bits, ECDH-ES keys to P-256 (`crv` may pick P-384, P-521 or X25519).
    /// `alg`, `use: "enc"` and `kid` (the thumbprint unless given) are set.
    pub fn generate_for_encryption(
        alg: crate::jwe::KeyManagement,
        enc: Option<crate::jwe::ContentEncryption>,
        crv: Option<Curve>,
        bits: Option<usize>,
        kid: Option<String>,
    ) -> Result<Self> {
        let material = generate::generate_for_encryption(alg, enc, crv, bits)?;
        let mut jwk = Self::from_material(material);
        // A dir key is bound to its content encryption, so one key never serves two.
        jwk.alg = Some(match (alg, enc) {
            (crate::jwe::KeyManagement::Dir, Some(enc)) => enc.name().to_owned(),
            _ => alg.name().to_owned(),
        });
        jwk.key_use = Some("enc".to_owned());
        jwk.kid = Some(match kid {
            Some(k) => k,
            None => jwk.thumbprint(),
        });
        Ok(jwk)
    }

    /// Parses a PEM document: SPKI or PKCS#1 public keys, PKCS#8, PKCS#1 or SEC1 private keys.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        pem::from_pem(pem).map(Self::from_material)
    }

    /// Exports as PEM: SPKI (`PUBLIC KEY`) for public keys, PKCS#8 (`PRIVATE KEY`) for
    /// private ones. Symmetric keys have no PEM form.
    pub fn to_pem(&self) -> Result<String> {
        pem::to_pem(&self.material)
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.material.key_type()
    }

    /// The `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Sets the `kid`.
    pub fn set_kid(&mut self, kid: impl Into<String>) {
        self.kid = Some(kid.into());
    }

    /// The `alg` member as written, if any (may name a JWE algorithm).
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// Sets the `alg` member after checking the key can serve it.
    pub fn set_alg(&mut self, alg: Algorithm) -> Result<()> {
        self.material.fits(alg)?;
        self.alg = Some(alg.name().to_owned());
        Ok(())
    }

    /// The `key_ops` member, if any.
    pub fn key_ops(&self) -> Option<&[String]> {
        self.key_ops.as_deref()
    }

    /// The curve of EC and OKP keys.
    pub fn curve(&self) -> Option<Curve> {
        self.material.curve()
    }

    /// The `use` member, if any.
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// Whether this key holds private (or secret) material.
    pub fn is_private(&self) -> bool {
        self.material.is_private()
    }

    /// Whether the key is symmetric (`oct`).
    pub fn is_symmetric(&self) -> bool {
        matches!(self.key_type(), KeyType::Oct)
    }

    /// The one JWS algorithm this key is for: its `alg` if that names a JWS algorithm, else the
    /// algorithm its type implies when there is exactly one (EC P-256 → ES256, Ed25519 →
    /// EdDSA). RSA and `oct` keys without `alg` imply none.
    pub fn signing_algorithm(&self) -> Option<Algorithm> {
        match &self.alg {
            Some(a) => a.parse().ok(),
            None => self.material.implied_algorithm(),
        }
    }

    /// Checks that this key may encrypt to (or, with `decrypt`, decrypt) a JWE using `alg` and
    /// `enc`: its `alg`, `use` and `key_ops` allow it, and its type and size fit.
    pub fn check_encryption(
        &self,
        alg: crate::jwe::KeyManagement,
        enc: crate::jwe::ContentEncryption,
        decrypt: bool,
    ) -> Result<()> {
        crate::jwe::check_key(self, alg, enc, decrypt)
    }

    /// Sets the `alg` member to a JWE key-management algorithm after checking the key's type
    /// can serve it (for `dir`, name the content encryption instead: see [`Self::set_alg_name`]).
    pub fn set_alg_name(&mut self, name: &str) -> Result<()> {
        if let Ok(sig) = name.parse::<Algorithm>() {
            return self.set_alg(sig);
        }
        let (km, enc) = match (
            name.parse::<crate::jwe::KeyManagement>(),
            name.parse::<crate::jwe::ContentEncryption>(),
        ) {
            (Ok(km), _) => (km, None),
            (_, Ok(enc)) => (crate::jwe::KeyManagement::Dir, Some(enc)),
            (Err(e), _) => return Err(e),
        };
        if !crate::jwe::type_fits(self, km, enc) {
            return Err(err!(
                KeyUnsuitable,
                "{name} does not fit this {} key",
                self.key_type().name()
            ));
        }
        self.alg = Some(name.to_owned());
        Ok(())
    }

    /// Checks that this key may perform `op` with `alg`: its `alg`, `use` and `key_ops`
    /// allow it, its type and size fit, and it is private when signing.
    pub fn check(&self, alg: Algorithm, op: KeyOperation) -> Result<()> {
        if let Some(own) = &self.alg {
            if own != alg.name() {
                return Err(err!(KeyUnsuitable, "the key is for {own}, not {alg}"));
            }
        }
        if let Some(u) = &self.key_use {
            if u != "sig" {
                return Err(err!(
                    KeyUnsuitable,
                    "the key's \"use\" is {u:?}, not \"sig\""
                ));
            }
        }
        if let Some(ops) = &self.key_ops {
            if !ops.iter().any(|o| o == op.name()) {
                return Err(err!(
                    KeyUnsuitable,
                    "the key's \"key_ops\" do not allow {:?}",
                    op.name()
                ));
            }
        }
        self.material.fits(alg)?;
        if op == KeyOperation::Sign && !self.is_private() {
            return Err(err!(KeyUnsuitable, "signing needs a private key"));
        }
        Ok(())
    }

    pub(crate) fn signer(&self, alg: Algorithm) -> Result<Signer<'_>> {
        self.check(alg, KeyOperation::Sign)?;
        self.material.signer(alg)
    }

    /// The public half: the same key without private members (for `oct` keys, an error).
    pub fn to_public(&self) -> Result<Self> {
        Ok(Self {
            material: self.material.to_public()?,
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            key_use: self.key_use.clone(),
            key_ops: self.key_ops.as_ref().map(|ops| public_ops(ops)),
            other: self.other.clone(),
        })
    }

    /// The JWK as a JSON object (private members included when present).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.other.clone();
        self.material.write_members(&mut map, true);
        if let Some(kid) = &self.kid {
            map.insert("kid".into(), kid.clone().into());
        }
        if let Some(alg) = &self.alg {
            map.insert("alg".into(), alg.clone().into());
        }
        if let Some(u) = &self.key_use {
            map.insert("use".into(), u.clone().into());
        }
        if let Some(ops) = &self.key_ops {
            map.insert("key_ops".into(), ops.clone().into());
        }
        map
    }

    /// The JWK as JSON text.
    pub fn to_json(&self) -> String {
        Value::Object(self.to_map()).to_string()
    }

    /// The RFC 7638 thumbprint: base64url of SHA-256 over the required members, sorted.
    pub fn thumbprint(&self) -> String {
        let mut map = Map::new();
        self.material.write_members(&mut map, false);
        // RFC 7638 §3.2: members sorted by name, no whitespace. Sorted explicitly: serde_json's
        // Map keeps insertion order when any crate in the build enables `preserve_order`.
        let sorted: std::collections::BTreeMap<&String, &Value> = map.iter().collect();
        let canonical = serde_json::to_string(&sorted).unwrap_or_default();
        b64::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }
}

/// The operations a public half may perform, given the private key's: each private operation
/// becomes its public counterpart (`sign` → `verify`), so a signing-only private key still
/// yields a public key that verifies (RFC 7517 §4.3).
fn public_ops(ops: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ops.len());
    for op in ops {
        let public = match op.as_str() {
            "sign" | "verify" => "verify",
            "decrypt" | "encrypt" => "encrypt",
            "unwrapKey" | "wrapKey" => "wrapKey",
            // ECDH derivation needs the private key; the public half only lets peers derive.
            "deriveKey" | "deriveBits" => continue,
            other => other,
        };
        if !out.iter().any(|o| o == public) {
            out.push(public.to_owned());
        }
    }
    out
}

/// HMAC keys must be at least as long as the hash output (RFC 7518 §3.2).
pub(crate) fn min_hmac_key_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::Hmac => "oct",
        Family::Rsa => "RSA",
        Family::Ecdsa => "EC",
        Family::EdDsa => "OKP Ed25519",
    }
}

/// The members any JWK may have besides its key material (RFC 7517 §4), checked: strings
/// where strings are due, a registered `alg`, `key_ops` an array of distinct strings. Also
/// what an `epk` header is held to (`jwe::keymgmt`), which has no use for the rest of a `Jwk`.
pub(crate) struct Common {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) key_use: Option<String>,
    pub(crate) key_ops: Option<Vec<String>>,
}

impl Common {
    pub(crate) fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let kid = json::opt_str(map, "kid", "JWK")?.map(str::to_owned);
        let alg = json::opt_str(map, "alg", "JWK")?.map(str::to_owned);
        let key_use = json::opt_str(map, "use", "JWK")?.map(str::to_owned);
        let key_ops = match map.get("key_ops") {
            None => None,
            Some(Value::Array(items)) => {
                let mut ops = Vec::with_capacity(items.len());
                for item in items {
                    let op = item
                        .as_str()
                        .ok_or_else(|| err!(JwkInvalid, "\"key_ops\" must hold strings"))?;
                    if ops.iter().any(|o| o == op) {
                        return Err(err!(JwkInvalid, "\"key_ops\" repeats {op:?}"));
                    }
                    ops.push(op.to_owned());
                }
                Some(ops)
            }
            Some(_) => return Err(err!(JwkInvalid, "\"key_ops\" must be an array")),
        };
        if let Some(a) = &alg {
            if !alg::is_registered(a) {
                return Err(err!(JwkInvalid, "unknown algorithm {a:?} in \"alg\""));
            }
        }
        Ok(Self {
            kid,
            alg,
            key_use,
            key_ops,
        })
    }
}

#[cfg(test)]
mod tests;
