//! JSON Web Encryption (RFC 7516, RFC 7518 §4-5, RFC 8037 X25519).
//!
//! - [`compact`]: five dot-separated segments, one recipient.
//! - [`json`]: flattened and general JSON, shared and per-recipient headers, AAD, several
//!   recipients.
//!
//! Decryption takes allow-lists of key-management and content-encryption algorithms, as
//! verification does. `RSA1_5` is not implemented at all (RFC 8725 §3.2). Every failure that
//! depends on secret data surfaces as the single [`ErrorCode::DecryptionFailed`](crate::ErrorCode).

mod alg;
pub mod compact;
mod content;
mod header;
pub mod json;
mod keymgmt;
mod zip;

pub use alg::{ContentEncryption, KeyManagement};
pub use header::Header;
pub use zip::DEFAULT_MAX_INFLATED;

use serde_json::{Map, Value};

use crate::error::{err, Result};
use crate::jwk::{Curve, Jwk, KeyType};
use crate::jws::Keys;
pub(crate) use alg::Mode;

/// Default upper bound on a serialized JWE, checked before any decoding.
pub const DEFAULT_MAX_LEN: usize = 64 * 1024;
/// Default upper bound on the PBES2 iteration count accepted when decrypting.
pub const DEFAULT_MAX_P2C: u32 = 100_000;

/// Which key-management algorithms decryption accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAlgorithms {
    /// Exactly these (a key's own `alg`, when present, must also agree).
    Only(Vec<KeyManagement>),
    /// What the key determines: its `alg`, else its type's family (RSA → RSA-OAEP*, EC and
    /// X25519 → ECDH-ES*). Symmetric keys without `alg` determine nothing: an options error.
    FromKey,
}

/// How to decrypt a JWE.
#[derive(Debug, Clone)]
pub struct DecryptOptions {
    /// Acceptable key-management algorithms.
    pub algorithms: KeyAlgorithms,
    /// Acceptable content encryptions (default: all six, none of which is weak).
    pub encryptions: Vec<ContentEncryption>,
    /// `crit` names the caller understands.
    pub crit: Vec<String>,
    /// Maximum serialized length (default 64 KiB).
    pub max_len: usize,
    /// Maximum inflated plaintext for `zip: "DEF"` (default 256 KiB).
    pub max_inflated: usize,
    /// Maximum PBES2 iteration count (default 100 000).
    pub max_p2c: u32,
}

impl DecryptOptions {
    /// Options accepting exactly these key-management algorithms and any content encryption.
    pub fn new(algorithms: impl IntoIterator<Item = KeyManagement>) -> Self {
        Self::with(KeyAlgorithms::Only(algorithms.into_iter().collect()))
    }

    /// Options accepting what each key determines.
    pub fn from_key() -> Self {
        Self::with(KeyAlgorithms::FromKey)
    }

    fn with(algorithms: KeyAlgorithms) -> Self {
        Self {
            algorithms,
            encryptions: ContentEncryption::ALL.to_vec(),
            crit: Vec::new(),
            max_len: DEFAULT_MAX_LEN,
            max_inflated: zip::DEFAULT_MAX_INFLATED,
            max_p2c: DEFAULT_MAX_P2C,
        }
    }

    /// Restricts the content encryptions.
    pub fn encryptions(mut self, encs: impl IntoIterator<Item = ContentEncryption>) -> Self {
        self.encryptions = encs.into_iter().collect();
        self
    }
}

/// What a sender adds to the header besides `alg`, `enc` and `kid`.
#[derive(Debug, Clone, Default)]
pub struct EncryptParams {
    /// Extra protected members (`cty`, `typ`, …).
    pub protected: Map<String, Value>,
    /// Shared unprotected members (JSON serializations only: `unprotected`).
    pub unprotected: Map<String, Value>,
    /// Compress the plaintext with DEFLATE before encrypting (`zip: "DEF"`).
    pub zip: bool,
    /// PBES2 iteration count: default 10 000, the most panva/jose (10 000) and jwcrypto
    /// (16 384) accept with their default caps; at least 1000 (RFC 7518 §4.8.1.2) and at most
    /// [`DEFAULT_MAX_P2C`] (what decryption here accepts by default). Raise it where the
    /// recipient accepts more: each doubling doubles a password guesser's work.
    pub pbes2_count: Option<u32>,
    /// Agreement PartyUInfo for ECDH-ES (`apu`).
    pub apu: Option<Vec<u8>>,
    /// Agreement PartyVInfo for ECDH-ES (`apv`).
    pub apv: Option<Vec<u8>>,
    /// Values normally drawn at random, fixed by tests only.
    #[cfg(feature = "danger-test-injection")]
    pub fixed: Fixed,
}

/// Values drawn at random during encryption; tests fix them to reproduce published vectors.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "danger-test-injection"), allow(dead_code))]
pub struct Fixed {
    /// The content encryption key.
    pub cek: Option<Vec<u8>>,
    /// The content IV.
    pub iv: Option<Vec<u8>>,
    /// The AES-GCM key-wrap IV.
    pub kw_iv: Option<Vec<u8>>,
    /// The ECDH-ES ephemeral private key (big-endian scalar, or X25519 bytes).
    pub epk_d: Option<Vec<u8>>,
    /// The PBES2 salt input.
    pub p2s: Option<Vec<u8>>,
    /// The PBES2 iteration count.
    pub p2c: Option<u32>,
    /// The exact encoded protected header (compact only). It must decode to the members the
    /// encryption would have produced; only their order and spacing may differ.
    pub protected_b64: Option<String>,
}

/// Test hooks, compiled only with the `danger-test-injection` feature.
#[cfg(feature = "danger-test-injection")]
pub mod danger {
    use serde_json::{Map, Value};

    use crate::error::Result;
    use crate::jwk::Jwk;

    /// The raw ECDH shared secret between `private` and a sender's `epk`, through the same
    /// `epk` validation and key agreement that ECDH-ES decryption uses.
    pub fn ecdh_es_shared_secret(private: &Jwk, epk: &Map<String, Value>) -> Result<Vec<u8>> {
        super::keymgmt::shared_secret(private, epk)
    }
}

impl EncryptParams {
    /// The protected members every recipient shares: the caller's, `enc`, `zip`, `apu`, `apv`.
    fn shared_protected(&self, enc: ContentEncryption) -> Map<String, Value> {
        let mut protected = self.protected.clone();
        protected.insert("enc".into(), enc.name().into());
        if self.zip {
            protected.insert("zip".into(), "DEF".into());
        }
        for (name, value) in [("apu", &self.apu), ("apv", &self.apv)] {
            if let Some(v) = value {
                protected.insert(name.into(), crate::b64::encode(v).into());
            }
        }
        protected
    }

    fn fixed(&self) -> Fixed {
        #[cfg(feature = "danger-test-injection")]
        let mut fixed = self.fixed.clone();
        #[cfg(not(feature = "danger-test-injection"))]
        let mut fixed = Fixed::default();
        fixed.p2c = fixed.p2c.or(self.pbes2_count);
        fixed
    }
}

/// Whether this key can be used for `alg`/`enc`: `alg`, `use`, `key_ops`, type and size.
pub(crate) fn check_key(
    key: &Jwk,
    alg: KeyManagement,
    enc: ContentEncryption,
    decrypt: bool,
) -> Result<()> {
    if let Some(own) = key.alg() {
        let matches = own == alg.name() || (alg == KeyManagement::Dir && own == enc.name());
        if !matches {
            return Err(err!(KeyUnsuitable, "the key is for {own}, not {alg}"));
        }
    }
    if let Some(u) = key.key_use() {
        if u != "enc" {
            return Err(err!(
                KeyUnsuitable,
                "the key's \"use\" is {u:?}, not \"enc\""
            ));
        }
    }
    if let Some(ops) = key.key_ops() {
        let wanted: &[&str] = if decrypt {
            &["decrypt", "unwrapKey", "deriveKey", "deriveBits"]
        } else {
            &["encrypt", "wrapKey", "deriveKey", "deriveBits"]
        };
        if !ops.iter().any(|o| wanted.contains(&o.as_str())) {
            return Err(err!(
                KeyUnsuitable,
                "the key's \"key_ops\" do not allow this"
            ));
        }
    }
    if !type_fits(key, alg, Some(enc)) {
        return Err(err!(
            KeyUnsuitable,
            "{alg} with {enc} does not fit this {} key",
            key.key_type().name()
        ));
    }
    if decrypt && !key.is_private() {
        return Err(err!(KeyUnsuitable, "decryption needs a private key"));
    }
    Ok(())
}

/// Whether the key's type and size can serve `alg` (and, for `dir`, `enc` when known).
pub(crate) fn type_fits(key: &Jwk, alg: KeyManagement, enc: Option<ContentEncryption>) -> bool {
    let oct_len = match &key.material {
        crate::jwk::KeyMaterial::Oct(k) => Some(k.k.len()),
        _ => None,
    };
    match alg.mode() {
        Mode::Direct => oct_len.is_some() && enc.is_none_or(|e| oct_len == Some(e.key_len())),
        Mode::AesKw(n) | Mode::AesGcmKw(n) => oct_len == Some(n),
        Mode::Pbes2(_) => oct_len.is_some(),
        Mode::RsaOaep => key.key_type() == KeyType::Rsa,
        Mode::EcdhEs(_) => matches!(
            key.curve(),
            Some(Curve::P256 | Curve::P384 | Curve::P521 | Curve::X25519)
        ),
    }
}

/// The key-management algorithms a key determines on its own (see [`KeyAlgorithms::FromKey`]).
fn key_family(key: &Jwk) -> Option<Vec<KeyManagement>> {
    if let Some(own) = key.alg() {
        if let Ok(a) = own.parse::<KeyManagement>() {
            return Some(vec![a]);
        }
        if own.parse::<ContentEncryption>().is_ok() {
            return Some(vec![KeyManagement::Dir]);
        }
        return None;
    }
    match key.key_type() {
        KeyType::Rsa => Some(vec![
            KeyManagement::RSA_OAEP,
            KeyManagement::RSA_OAEP_256,
            KeyManagement::RSA_OAEP_384,
            KeyManagement::RSA_OAEP_512,
        ]),
        KeyType::Ec | KeyType::Okp if key.curve() != Some(Curve::Ed25519) => Some(vec![
            KeyManagement::ECDH_ES,
            KeyManagement::ECDH_ES_A128KW,
            KeyManagement::ECDH_ES_A192KW,
            KeyManagement::ECDH_ES_A256KW,
        ]),
        _ => None,
    }
}

/// Enforces the allow-lists and picks the key for one recipient.
pub(crate) fn select_key<'k>(
    keys: Keys<'k>,
    header: &Header,
    options: &DecryptOptions,
) -> Result<&'k Jwk> {
    let (alg, enc) = (header.alg(), header.enc());
    if let KeyAlgorithms::Only(list) = &options.algorithms {
        if !list.contains(&alg) {
            return Err(err!(
                AlgNotAllowed,
                "{alg} is not an allowed key-management algorithm"
            ));
        }
    }
    if !options.encryptions.contains(&enc) {
        return Err(err!(
            AlgNotAllowed,
            "{enc} is not an allowed content encryption"
        ));
    }
    let unsuitable = |e: crate::Error| match e.code() {
        crate::ErrorCode::KeyUnsuitable => {
            err!(AlgNotAllowed, "{alg} does not fit the key: {}", e.reason())
        }
        _ => e,
    };
    let key = match keys {
        Keys::One(key) => {
            check_key(key, alg, enc, true).map_err(unsuitable)?;
            key
        }
        Keys::Set(set) => set
            .select_with(header.kid(), alg.name(), |k| check_key(k, alg, enc, true))
            .map_err(unsuitable)?,
    };
    if options.algorithms == KeyAlgorithms::FromKey {
        match key_family(key) {
            Some(family) if family.contains(&alg) => {}
            Some(_) => return Err(err!(AlgNotAllowed, "the key is not for {alg}")),
            None => {
                return Err(err!(
                    InvalidOptions,
                    "the key does not determine a key-management algorithm: give it an \"alg\" or list the allowed ones"
                ))
            }
        }
    }
    Ok(key)
}

/// A decrypted JWE.
#[derive(Debug, Clone)]
pub struct Decrypted {
    /// The header of the recipient that decrypted.
    pub header: Header,
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

/// Decrypts the content once the CEK is known; inflates when `zip` says so.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open(
    header: &Header,
    key: &Jwk,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    options: &DecryptOptions,
) -> Result<Vec<u8>> {
    // With `dir` the key is the CEK, and keeps its AES-GCM key schedule.
    let gcm = match (&key.material, header.alg()) {
        (crate::jwk::KeyMaterial::Oct(k), KeyManagement::Dir) => k.gcm_key(),
        _ => None,
    };
    let plaintext = content::decrypt(header.enc(), cek, gcm, iv, aad, ciphertext, tag)?;
    if header.zip() {
        zip::inflate(&plaintext, options.max_inflated)
    } else {
        Ok(plaintext)
    }
}

/// The shared part of encryption: the CEK (fixed by direct modes), the IV, the compressed
/// plaintext.
pub(crate) struct Sealing {
    pub(crate) cek: zeroize::Zeroizing<Vec<u8>>,
    pub(crate) iv: Vec<u8>,
    pub(crate) plaintext: Vec<u8>,
}

pub(crate) fn prepare(
    enc: ContentEncryption,
    direct_cek: Option<zeroize::Zeroizing<Vec<u8>>>,
    plaintext: &[u8],
    params: &EncryptParams,
    fixed: &Fixed,
) -> Result<Sealing> {
    let cek = match (direct_cek, &fixed.cek) {
        (Some(c), _) => c,
        (None, Some(c)) => zeroize::Zeroizing::new(c.clone()),
        (None, None) => keymgmt::random(enc.key_len())?,
    };
    let iv = match &fixed.iv {
        Some(iv) => iv.clone(),
        None => keymgmt::random(enc.iv_len())?.to_vec(),
    };
    let plaintext = if params.zip {
        zip::deflate(plaintext)?
    } else {
        plaintext.to_vec()
    };
    Ok(Sealing { cek, iv, plaintext })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::ErrorCode;

    fn oct(len: usize, seed: u8, alg: Option<&str>) -> Jwk {
        let k: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let mut map = Map::new();
        map.insert("kty".into(), "oct".into());
        map.insert("k".into(), crate::b64::encode(k).into());
        if let Some(a) = alg {
            map.insert("alg".into(), a.into());
        }
        Jwk::from_map(&map).unwrap()
    }

    fn seal(key: &Jwk, enc: ContentEncryption, plaintext: &[u8]) -> String {
        compact::encrypt(
            plaintext,
            key,
            KeyManagement::Dir,
            enc,
            &EncryptParams::default(),
        )
        .unwrap()
    }

    fn open(key: &Jwk, token: &str) -> std::result::Result<Vec<u8>, ErrorCode> {
        compact::decrypt(token, key, &DecryptOptions::new([KeyManagement::Dir]))
            .map(|d| d.plaintext)
            .map_err(|e| e.code())
    }

    /// Flips one bit of the ciphertext segment.
    fn tamper(token: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut ct = crate::b64::decode(&parts[3]).unwrap();
        ct[0] ^= 1;
        parts[3] = crate::b64::encode(ct);
        parts.join(".")
    }

    /// One `dir` key, its AES-GCM key schedule kept after the first use, opens every token
    /// made with it, and only those, before and after a failure.
    #[test]
    fn a_dir_key_opens_many_tokens() {
        for enc in [
            ContentEncryption::A128GCM,
            ContentEncryption::A192GCM,
            ContentEncryption::A256GCM,
        ] {
            for alg in [None, Some("dir"), Some(enc.name())] {
                let key = oct(enc.key_len(), 1, alg);
                let sender = oct(enc.key_len(), 1, None);
                let plaintexts: Vec<Vec<u8>> =
                    (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
                let tokens: Vec<String> =
                    plaintexts.iter().map(|p| seal(&sender, enc, p)).collect();
                for round in 0..2 {
                    for (token, plaintext) in tokens.iter().zip(&plaintexts) {
                        assert_eq!(open(&key, token).as_ref(), Ok(plaintext), "{enc} {round}");
                        assert_eq!(open(&key, &tamper(token)), Err(ErrorCode::DecryptionFailed));
                    }
                }
                // Another key of the same size, also with a kept schedule, opens none of them.
                let other = oct(enc.key_len(), 2, alg);
                assert!(open(&other, &seal(&other, enc, b"x")).is_ok());
                for token in &tokens {
                    assert_eq!(open(&other, token), Err(ErrorCode::DecryptionFailed));
                    assert!(open(&key, token).is_ok());
                }
            }
        }
    }

    /// A `dir` key used with another `enc` than its own is refused as before the kept key
    /// schedule, whether or not that schedule was made already; a key whose `alg` does not
    /// fix `enc` serves every `enc` of its size.
    #[test]
    fn a_dir_key_and_another_enc() {
        let a128 = ContentEncryption::A128GCM;
        let a256 = ContentEncryption::A256GCM;
        let cbc = ContentEncryption::A128CBC_HS256;
        for alg in [Some("A128GCM"), Some("dir"), None] {
            let key = oct(16, 3, alg);
            let mine = seal(&key, a128, b"mine");
            let big = oct(32, 3, None);
            let theirs = seal(&big, a256, b"theirs");
            // Before and after the key has opened a token of its own.
            assert_eq!(
                open(&key, &theirs),
                Err(ErrorCode::AlgNotAllowed),
                "{alg:?}"
            );
            assert_eq!(open(&key, &mine).unwrap(), b"mine");
            assert_eq!(
                open(&key, &theirs),
                Err(ErrorCode::AlgNotAllowed),
                "{alg:?}"
            );
            // The same 16 bytes claimed as A256GCM (a header naming another `enc`): refused.
            let relabelled = relabel(&mine, "A256GCM");
            assert_eq!(open(&key, &relabelled), Err(ErrorCode::AlgNotAllowed));
        }
        // A 32-byte key without an `enc` of its own: A256GCM and A128CBC-HS256, in any order,
        // and its kept AES-256-GCM schedule is never used for the other.
        for alg in [None, Some("dir")] {
            for gcm_first in [true, false] {
                let key = oct(32, 4, alg);
                let gcm = seal(&key, a256, b"gcm");
                let cbc_token = seal(&key, cbc, b"cbc");
                let order = if gcm_first {
                    [&gcm, &cbc_token]
                } else {
                    [&cbc_token, &gcm]
                };
                for _ in 0..2 {
                    for token in order {
                        let want: &[u8] = if token == &gcm { b"gcm" } else { b"cbc" };
                        assert_eq!(open(&key, token).unwrap(), want);
                    }
                }
                // A128GCM needs 16 bytes: refused as before.
                let small = seal(&oct(16, 4, None), a128, b"small");
                assert_eq!(open(&key, &small), Err(ErrorCode::AlgNotAllowed));
            }
        }
        // A key pinned to A256GCM refuses A128CBC-HS256 though its size would fit.
        let pinned = oct(32, 5, Some("A256GCM"));
        let cbc_token = seal(&oct(32, 5, None), cbc, b"cbc");
        assert_eq!(open(&pinned, &seal(&pinned, a256, b"p")).unwrap(), b"p");
        assert_eq!(open(&pinned, &cbc_token), Err(ErrorCode::AlgNotAllowed));
    }

    /// The token with its header's `enc` replaced (so the tag no longer matches, if the
    /// recipient ever got that far).
    fn relabel(token: &str, enc: &str) -> String {
        let (header, rest) = token.split_once('.').unwrap();
        let mut map = crate::json::parse_object(&crate::b64::decode(header).unwrap(), "h").unwrap();
        map.insert("enc".into(), enc.into());
        format!(
            "{}.{rest}",
            crate::b64::encode(Value::Object(map).to_string())
        )
    }
}
