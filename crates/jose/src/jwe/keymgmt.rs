//! Key management (RFC 7518 §4): obtaining the CEK for a recipient, and protecting it.
//!
//! On decryption, a CEK that fails to unwrap or has the wrong length is replaced by a random
//! one of the right length (RFC 7516 §11.5), so that the failure surfaces only as the content's
//! authentication failure: one error, one code path, no padding or unwrap oracle.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::kdf::{get_sskdf_digest_algorithm, sskdf_digest, SskdfDigestAlgorithmId};
use aws_lc_rs::key_wrap::{self, KeyEncryptionKey, KeyWrap as _};
use aws_lc_rs::{pbkdf2, rand, rsa};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::alg::{ContentEncryption, KeyManagement, Mode};
use super::header::Header;
use super::Fixed;
use crate::error::{crypto_err, err, Result};
use crate::jwk::material::{ecdh_algorithm, split_point, Curve, KeyMaterial};
use crate::jwk::Jwk;
use crate::{b64, json};

/// PBES2 iteration count used when encrypting, unless one is given: the most that the
/// libraries people decrypt with accept by default (panva/jose caps `p2c` at 10 000,
/// jwcrypto at 16 384), so a default token opens everywhere. Where only tokengate decrypts,
/// a larger count (up to [`super::DEFAULT_MAX_P2C`]) costs a guesser more.
pub(crate) const PBES2_ENCRYPT_COUNT: u32 = 10_000;
/// The smallest PBES2 iteration count we encrypt with.
const PBES2_MIN_COUNT: u32 = 1000;

pub(crate) fn random(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut buf).map_err(|_| err!(Crypto, "random generator failed"))?;
    Ok(buf)
}

fn oaep(alg: KeyManagement) -> &'static rsa::OaepAlgorithm {
    match alg {
        KeyManagement::RSA_OAEP_256 => &rsa::OAEP_SHA256_MGF1SHA256,
        KeyManagement::RSA_OAEP_384 => &rsa::OAEP_SHA384_MGF1SHA384,
        KeyManagement::RSA_OAEP_512 => &rsa::OAEP_SHA512_MGF1SHA512,
        _ => &rsa::OAEP_SHA1_MGF1SHA1,
    }
}

/// AES key wrap (RFC 3394). AES-192 comes from RustCrypto, aws-lc-rs having no AES-192 KW.
fn aes_kw_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>> {
    if kek.len() == 24 {
        let kek: [u8; 24] = kek.try_into().map_err(crypto_err!("key wrap failed"))?;
        return aes_kw::KekAes192::from(kek)
            .wrap_vec(cek)
            .map_err(crypto_err!("key wrap failed"));
    }
    let cipher = if kek.len() == 16 {
        &key_wrap::AES_128
    } else {
        &key_wrap::AES_256
    };
    let kek = KeyEncryptionKey::new(cipher, kek).map_err(crypto_err!("key wrap failed"))?;
    let mut out = vec![0u8; cek.len() + 8];
    let len = kek
        .wrap(cek, &mut out)
        .map_err(crypto_err!("key wrap failed"))?
        .len();
    out.truncate(len);
    Ok(out)
}

fn aes_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if kek.len() == 24 {
        let kek: [u8; 24] = kek.try_into().ok()?;
        return aes_kw::KekAes192::from(kek)
            .unwrap_vec(wrapped)
            .ok()
            .map(Zeroizing::new);
    }
    let cipher = if kek.len() == 16 {
        &key_wrap::AES_128
    } else {
        &key_wrap::AES_256
    };
    let kek = KeyEncryptionKey::new(cipher, kek).ok()?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = kek.unwrap(wrapped, &mut out).ok()?.len();
    out.truncate(len);
    Some(out)
}

fn gcm_alg(len: usize) -> &'static aead::Algorithm {
    match len {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    }
}

/// RFC 7518 §4.6.2: Concat KDF (NIST SP 800-56C single-step KDF with SHA-256) over Z.
fn concat_kdf(
    z: &[u8],
    alg_id: &str,
    apu: &[u8],
    apv: &[u8],
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let len32 = |b: &[u8]| {
        u32::try_from(b.len())
            .map(u32::to_be_bytes)
            .map_err(|_| err!(JweInvalid, "apu/apv too long"))
    };
    let mut info = Vec::with_capacity(16 + alg_id.len() + apu.len() + apv.len());
    info.extend_from_slice(&len32(alg_id.as_bytes())?);
    info.extend_from_slice(alg_id.as_bytes());
    info.extend_from_slice(&len32(apu)?);
    info.extend_from_slice(apu);
    info.extend_from_slice(&len32(apv)?);
    info.extend_from_slice(apv);
    let bits = u32::try_from(key_len * 8).map_err(|_| err!(Crypto, "key too long"))?;
    info.extend_from_slice(&bits.to_be_bytes());
    let alg = get_sskdf_digest_algorithm(SskdfDigestAlgorithmId::Sha256)
        .ok_or_else(|| err!(Crypto, "SSKDF unavailable"))?;
    let mut out = Zeroizing::new(vec![0u8; key_len]);
    sskdf_digest(alg, z, &info, &mut out).map_err(|_| err!(Crypto, "key derivation failed"))?;
    Ok(out)
}

/// The ECDH-ES key length and AlgorithmID (RFC 7518 §4.6.2).
fn ecdh_params(alg: KeyManagement, enc: ContentEncryption) -> (usize, &'static str) {
    match alg.mode() {
        Mode::EcdhEs(Some(kw)) => (kw, alg.name()),
        _ => (enc.key_len(), enc.name()),
    }
}

fn opt_b64(header: &Header, name: &str) -> Result<Vec<u8>> {
    match header.get_str(name) {
        None => Ok(Vec::new()),
        Some(s) => b64::decode(s).map_err(|_| err!(JweInvalid, "{name:?} is not base64url")),
    }
}

/// The recipient's curve and public point, or X25519 public key.
fn recipient_curve(key: &Jwk) -> Result<Curve> {
    key.material
        .curve()
        .filter(|c| !matches!(c, Curve::Ed25519))
        .ok_or_else(|| err!(KeyUnsuitable, "ECDH-ES needs an EC or X25519 key"))
}

fn public_point(material: &KeyMaterial) -> Result<Vec<u8>> {
    match material {
        KeyMaterial::Ec(k) => Ok(k.point()),
        KeyMaterial::X25519(k) => Ok(k.x.clone()),
        _ => Err(err!(KeyUnsuitable, "ECDH-ES needs an EC or X25519 key")),
    }
}

fn agree(private: &agreement::PrivateKey, crv: Curve, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    agreement::agree(
        private,
        UnparsedPublicKey::new(ecdh_algorithm(crv), peer),
        err!(DecryptionFailed, "key agreement failed"),
        |z| Ok(Zeroizing::new(z.to_vec())),
    )
}

/// What encryption produced for one recipient.
pub(crate) struct Protected {
    pub(crate) encrypted_key: Vec<u8>,
    /// Header members the algorithm adds (`epk`, `iv`, `tag`, `p2s`, `p2c`).
    pub(crate) params: Map<String, Value>,
}

/// For direct modes, the CEK the key management fixes; else `None` (the caller picks one).
pub(crate) fn direct_cek(
    alg: KeyManagement,
    enc: ContentEncryption,
    key: &Jwk,
    apu: &[u8],
    apv: &[u8],
    fixed: &Fixed,
    params: &mut Map<String, Value>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match alg.mode() {
        Mode::Direct => match &key.material {
            KeyMaterial::Oct(k) if k.k.len() == enc.key_len() => {
                Ok(Some(Zeroizing::new(k.k.to_vec())))
            }
            _ => Err(err!(
                KeyUnsuitable,
                "dir with {enc} needs a {}-byte symmetric key",
                enc.key_len()
            )),
        },
        Mode::EcdhEs(None) => ecdh_sender(alg, enc, key, apu, apv, fixed, params).map(Some),
        _ => Ok(None),
    }
}

/// ECDH-ES on the sender's side: a fresh ephemeral key, `epk` in the header, the derived key.
fn ecdh_sender(
    alg: KeyManagement,
    enc: ContentEncryption,
    key: &Jwk,
    apu: &[u8],
    apv: &[u8],
    fixed: &Fixed,
    params: &mut Map<String, Value>,
) -> Result<Zeroizing<Vec<u8>>> {
    let crv = recipient_curve(key)?;
    let ephemeral = match &fixed.epk_d {
        Some(d) => agreement::PrivateKey::from_private_key(ecdh_algorithm(crv), d)
            .map_err(crypto_err!("ephemeral key generation failed"))?,
        None => agreement::PrivateKey::generate(ecdh_algorithm(crv))
            .map_err(crypto_err!("ephemeral key generation failed"))?,
    };
    let public = ephemeral
        .compute_public_key()
        .map_err(crypto_err!("ephemeral key generation failed"))?;
    let mut epk = Map::new();
    if crv == Curve::X25519 {
        epk.insert("kty".into(), "OKP".into());
        epk.insert("crv".into(), crv.name().into());
        epk.insert("x".into(), b64::encode(public.as_ref()).into());
    } else {
        let (x, y) = split_point(crv, public.as_ref())?;
        epk.insert("kty".into(), "EC".into());
        epk.insert("crv".into(), crv.name().into());
        epk.insert("x".into(), b64::encode(x).into());
        epk.insert("y".into(), b64::encode(y).into());
    }
    params.insert("epk".into(), Value::Object(epk));
    let z = agree(&ephemeral, crv, &public_point(&key.material)?)?;
    let (len, alg_id) = ecdh_params(alg, enc);
    concat_kdf(&z, alg_id, apu, apv, len)
}

/// Protects `cek` for a recipient whose key management wraps or encrypts it.
pub(crate) fn protect(
    alg: KeyManagement,
    enc: ContentEncryption,
    key: &Jwk,
    cek: &[u8],
    apu: &[u8],
    apv: &[u8],
    fixed: &Fixed,
) -> Result<Protected> {
    let mut params = Map::new();
    let encrypted_key = match (alg.mode(), &key.material) {
        (Mode::Direct | Mode::EcdhEs(None), _) => Vec::new(),
        (Mode::AesKw(n), KeyMaterial::Oct(k)) if k.k.len() == n => aes_kw_wrap(&k.k, cek)?,
        (Mode::AesGcmKw(n), KeyMaterial::Oct(k)) if k.k.len() == n => {
            let iv = match &fixed.kw_iv {
                Some(iv) => Zeroizing::new(iv.clone()),
                None => random(12)?,
            };
            let gcm = LessSafeKey::new(
                UnboundKey::new(gcm_alg(n), &k.k).map_err(crypto_err!("key wrap failed"))?,
            );
            let mut buf = cek.to_vec();
            let nonce =
                Nonce::try_assume_unique_for_key(&iv).map_err(crypto_err!("key wrap failed"))?;
            let tag = gcm
                .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
                .map_err(crypto_err!("key wrap failed"))?;
            params.insert("iv".into(), b64::encode(&*iv).into());
            params.insert("tag".into(), b64::encode(tag.as_ref()).into());
            buf
        }
        (Mode::RsaOaep, KeyMaterial::Rsa(k)) => {
            let public = k.oaep_encrypting()?;
            let mut out = vec![0u8; public.ciphertext_size()];
            let len = public
                .encrypt(oaep(alg), cek, &mut out, None)
                .map_err(|_| err!(Crypto, "RSA-OAEP encryption failed"))?
                .len();
            out.truncate(len);
            out
        }
        (Mode::EcdhEs(Some(_)), _) => {
            let kek = ecdh_sender(alg, enc, key, apu, apv, fixed, &mut params)?;
            aes_kw_wrap(&kek, cek)?
        }
        (Mode::Pbes2(n), KeyMaterial::Oct(k)) => {
            let salt_input = match &fixed.p2s {
                Some(s) => Zeroizing::new(s.clone()),
                None => random(16)?,
            };
            let count = fixed.p2c.unwrap_or(PBES2_ENCRYPT_COUNT);
            if count < PBES2_MIN_COUNT {
                return Err(err!(InvalidOptions, "a PBES2 iteration count below {PBES2_MIN_COUNT} is too weak (RFC 7518 §4.8.1.2)"));
            }
            if count > super::DEFAULT_MAX_P2C {
                return Err(err!(InvalidOptions, "a PBES2 iteration count above {} is refused by default when decrypting, here and elsewhere", super::DEFAULT_MAX_P2C));
            }
            let kek = pbes2_key(alg, n, &k.k, &salt_input, count)?;
            params.insert("p2s".into(), b64::encode(&*salt_input).into());
            params.insert("p2c".into(), count.into());
            aes_kw_wrap(&kek, cek)?
        }
        _ => {
            return Err(err!(
                KeyUnsuitable,
                "{alg} does not fit this {} key",
                key.key_type().name()
            ))
        }
    };
    Ok(Protected {
        encrypted_key,
        params,
    })
}

fn pbes2_key(
    alg: KeyManagement,
    len: usize,
    password: &[u8],
    salt_input: &[u8],
    count: u32,
) -> Result<Zeroizing<Vec<u8>>> {
    let prf = match len {
        16 => pbkdf2::PBKDF2_HMAC_SHA256,
        24 => pbkdf2::PBKDF2_HMAC_SHA384,
        _ => pbkdf2::PBKDF2_HMAC_SHA512,
    };
    // RFC 7518 §4.8.1.1: salt = UTF8(alg) || 0x00 || p2s.
    let mut salt = Vec::with_capacity(alg.name().len() + 1 + salt_input.len());
    salt.extend_from_slice(alg.name().as_bytes());
    salt.push(0);
    salt.extend_from_slice(salt_input);
    let count =
        NonZeroU32::new(count).ok_or_else(|| err!(JweInvalid, "\"p2c\" must be positive"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    pbkdf2::derive(prf, count, &salt, password, &mut out);
    Ok(out)
}

/// Reads and bounds `p2c` before any PBKDF2 work: a positive integer no larger than `max`.
fn p2c(header: &Header, max: u32) -> Result<u32> {
    let value = header
        .get("p2c")
        .ok_or_else(|| err!(JweInvalid, "missing \"p2c\""))?;
    let count = value
        .as_u64()
        .ok_or_else(|| err!(JweInvalid, "\"p2c\" must be a positive integer"))?;
    if count == 0 {
        return Err(err!(JweInvalid, "\"p2c\" must be a positive integer"));
    }
    if count > u64::from(max) {
        return Err(err!(
            JweInvalid,
            "\"p2c\" of {count} exceeds the limit of {max}"
        ));
    }
    u32::try_from(count).map_err(|_| err!(JweInvalid, "\"p2c\" too large"))
}

/// Recovers the CEK for `header`'s recipient. Failures that depend on secret data return a
/// random CEK instead (see the module note); structural problems are errors.
pub(crate) fn recover(
    header: &Header,
    key: &Jwk,
    encrypted_key: &[u8],
    max_p2c: u32,
) -> Result<Zeroizing<Vec<u8>>> {
    let alg = header.alg();
    let enc = header.enc();
    let len = enc.key_len();
    let or_random = |cek: Option<Zeroizing<Vec<u8>>>| -> Result<Zeroizing<Vec<u8>>> {
        match cek {
            Some(c) if c.len() == len => Ok(c),
            _ => random(len),
        }
    };
    let direct = alg.is_direct();
    if direct && !encrypted_key.is_empty() {
        return Err(err!(JweInvalid, "{alg} must have an empty encrypted key"));
    }
    if !direct && encrypted_key.is_empty() {
        return Err(err!(JweInvalid, "{alg} needs an encrypted key"));
    }
    match (alg.mode(), &key.material) {
        (Mode::Direct, KeyMaterial::Oct(k)) => {
            if k.k.len() != len {
                return Err(err!(KeyUnsuitable, "dir with {enc} needs a {len}-byte key"));
            }
            Ok(Zeroizing::new(k.k.to_vec()))
        }
        (Mode::AesKw(n), KeyMaterial::Oct(k)) if k.k.len() == n => {
            if encrypted_key.len() != len + 8 {
                return Err(err!(
                    JweInvalid,
                    "the wrapped key has the wrong length for {enc}"
                ));
            }
            or_random(aes_kw_unwrap(&k.k, encrypted_key))
        }
        (Mode::AesGcmKw(n), KeyMaterial::Oct(k)) if k.k.len() == n => {
            let iv = opt_b64(header, "iv")?;
            let tag = opt_b64(header, "tag")?;
            if iv.len() != 12 || tag.len() != 16 {
                return Err(err!(
                    JweInvalid,
                    "{alg} needs a 96-bit \"iv\" and a 128-bit \"tag\""
                ));
            }
            if encrypted_key.len() != len {
                return Err(err!(
                    JweInvalid,
                    "the wrapped key has the wrong length for {enc}"
                ));
            }
            let opened = (|| {
                let gcm = LessSafeKey::new(UnboundKey::new(gcm_alg(n), &k.k).ok()?);
                let nonce = Nonce::try_assume_unique_for_key(&iv).ok()?;
                let mut buf = Zeroizing::new([encrypted_key, &tag[..]].concat());
                let plain_len = gcm.open_in_place(nonce, Aad::empty(), &mut buf).ok()?.len();
                buf.truncate(plain_len);
                Some(buf)
            })();
            or_random(opened)
        }
        (Mode::RsaOaep, KeyMaterial::Rsa(k)) => {
            let private = k
                .oaep_decrypting()?
                .ok_or_else(|| err!(KeyUnsuitable, "decryption needs a private key"))?;
            let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
            let cek = private
                .decrypt(oaep(alg), encrypted_key, &mut out, None)
                .ok()
                .map(|p| Zeroizing::new(p.to_vec()));
            or_random(cek)
        }
        (Mode::EcdhEs(kw), KeyMaterial::Ec(_) | KeyMaterial::X25519(_)) => {
            let Some(Value::Object(epk)) = header.get("epk") else {
                return Err(err!(JweInvalid, "ECDH-ES needs an \"epk\" object"));
            };
            let z = recipient_agreement(key, epk)?;
            let (klen, alg_id) = ecdh_params(alg, enc);
            let derived = concat_kdf(
                &z,
                alg_id,
                &opt_b64(header, "apu")?,
                &opt_b64(header, "apv")?,
                klen,
            )?;
            match kw {
                None => Ok(derived),
                Some(_) => {
                    if encrypted_key.len() != len + 8 {
                        return Err(err!(
                            JweInvalid,
                            "the wrapped key has the wrong length for {enc}"
                        ));
                    }
                    or_random(aes_kw_unwrap(&derived, encrypted_key))
                }
            }
        }
        (Mode::Pbes2(n), KeyMaterial::Oct(k)) => {
            let count = p2c(header, max_p2c)?;
            let salt_input = opt_b64(header, "p2s")?;
            if salt_input.len() < 8 {
                return Err(err!(JweInvalid, "\"p2s\" must be at least 8 bytes"));
            }
            if encrypted_key.len() != len + 8 {
                return Err(err!(
                    JweInvalid,
                    "the wrapped key has the wrong length for {enc}"
                ));
            }
            let kek = pbes2_key(alg, n, &k.k, &salt_input, count)?;
            or_random(aes_kw_unwrap(&kek, encrypted_key))
        }
        _ => Err(err!(
            KeyUnsuitable,
            "{alg} does not fit this {} key",
            key.key_type().name()
        )),
    }
}

/// The raw shared secret for a recipient key and a sender's `epk` (test hook): the very
/// path ECDH-ES decryption takes.
#[cfg(feature = "danger-test-injection")]
pub(crate) fn shared_secret(key: &Jwk, epk: &Map<String, Value>) -> Result<Vec<u8>> {
    recipient_agreement(key, epk).map(|z| z.to_vec())
}

/// The recipient's side of ECDH-ES: its private key, the sender's `epk` validated, Z.
/// The recipient's curve and private agreement key.
fn recipient_private(key: &Jwk) -> Result<(Curve, &agreement::PrivateKey)> {
    let crv = recipient_curve(key)?;
    let private = match &key.material {
        KeyMaterial::Ec(k) => k.agreement_private()?,
        KeyMaterial::X25519(k) => k.agreement_private()?,
        _ => None,
    }
    .ok_or_else(|| err!(KeyUnsuitable, "decryption needs a private key"))?;
    Ok((crv, private))
}

fn recipient_agreement(key: &Jwk, epk: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>> {
    let (crv, private) = recipient_private(key)?;
    let point = epk_map_point(epk, crv)?;
    agree(private, crv, &point).map_err(|e| {
        if crv == Curve::X25519 {
            // A low-order X25519 point: the secret would be all zeros.
            e
        } else {
            // On a prime-order curve agreement fails only for a point aws-lc refuses: off
            // the curve, or the identity.
            err!(JweInvalid, "\"epk\" is not a point on {}", crv.name())
        }
    })
}

/// The sender's ephemeral public key, checked to be a public key on the recipient's curve
/// (invalid-curve attacks) before any derivation. Only the point is read; aws-lc's agreement
/// then refuses points off the curve, so no signature-verification key is built to check it.
fn epk_map_point(map: &Map<String, Value>, crv: Curve) -> Result<Vec<u8>> {
    let invalid = |why: &str| err!(JweInvalid, "\"epk\": {why}");
    if map.contains_key("d") {
        return Err(err!(JweInvalid, "\"epk\" must be a public key"));
    }
    let text = |name: &str| json::opt_str(map, name, "JWK").map_err(|e| invalid(e.reason()));
    // The members every JWK must get right, held to the same rules as any JWK.
    let common = crate::jwk::Common::from_map(map).map_err(|e| invalid(e.reason()))?;
    if common
        .alg
        .and_then(|a| a.parse::<crate::Algorithm>().ok())
        .is_some_and(|a| a.curve() != Some(crv))
    {
        return Err(invalid("\"alg\" does not fit the key"));
    }
    let kty = if crv == Curve::X25519 { "OKP" } else { "EC" };
    if text("kty")? != Some(kty) || text("crv")? != Some(crv.name()) {
        return Err(err!(
            JweInvalid,
            "\"epk\" is not on the recipient's curve {}",
            crv.name()
        ));
    }
    let len = crv.field_len();
    let coordinate = |name: &str| -> Result<Vec<u8>> {
        let bytes = b64::decode(text(name)?.ok_or_else(|| invalid("missing coordinate"))?)
            .map_err(|_| invalid("not strict base64url"))?;
        if bytes.len() != len {
            return Err(invalid("coordinate of the wrong length"));
        }
        Ok(bytes)
    };
    let x = coordinate("x")?;
    if crv == Curve::X25519 {
        return Ok(x);
    }
    let y = coordinate("y")?;
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    /// `epk_map_point` before it read only the point: the whole `epk` through `Jwk::from_map`.
    fn old_point(map: &Map<String, Value>, crv: Curve) -> Result<Vec<u8>> {
        if map.contains_key("d") {
            return Err(err!(JweInvalid, "\"epk\" must be a public key"));
        }
        let epk = Jwk::from_map(map).map_err(|e| err!(JweInvalid, "\"epk\": {}", e.reason()))?;
        if epk.material.curve() != Some(crv) {
            return Err(err!(JweInvalid, "\"epk\" is not on the recipient's curve"));
        }
        public_point(&epk.material)
    }

    /// `recipient_agreement` before the change.
    fn old_agreement(key: &Jwk, epk: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>> {
        let (crv, private) = recipient_private(key)?;
        agree(private, crv, &old_point(epk, crv)?)
    }

    fn key(crv: Curve) -> Jwk {
        Jwk::generate_for_encryption(KeyManagement::ECDH_ES, None, Some(crv), None, None).unwrap()
    }

    /// A sender's ephemeral public key as a sender writes it: `kty`, `crv` and the point.
    fn epk(crv: Curve) -> Map<String, Value> {
        key(crv)
            .to_public()
            .unwrap()
            .to_map()
            .into_iter()
            .filter(|(k, _)| ["kty", "crv", "x", "y"].contains(&k.as_str()))
            .collect()
    }

    fn with(mut map: Map<String, Value>, name: &str, value: Value) -> Map<String, Value> {
        map.insert(name.into(), value);
        map
    }

    fn without(mut map: Map<String, Value>, name: &str) -> Map<String, Value> {
        map.remove(name);
        map
    }

    /// A coordinate re-encoded after `change`.
    fn coordinate(map: &Map<String, Value>, name: &str, change: impl Fn(&mut Vec<u8>)) -> Value {
        let mut bytes = b64::decode(map[name].as_str().unwrap()).unwrap();
        change(&mut bytes);
        b64::encode(&bytes).into()
    }

    /// The outcome now and before, which must be the same: the shared secret, or the code.
    fn outcome(
        recipient: &Jwk,
        epk: &Map<String, Value>,
    ) -> std::result::Result<Vec<u8>, ErrorCode> {
        let new = recipient_agreement(recipient, epk).map(|z| z.to_vec());
        let old = old_agreement(recipient, epk).map(|z| z.to_vec());
        assert_eq!(
            new.as_ref().map_err(crate::Error::code),
            old.as_ref().map_err(crate::Error::code),
            "{}",
            Value::Object(epk.clone())
        );
        new.map_err(|e| e.code())
    }

    #[test]
    fn epk_rules_are_as_before() {
        use ErrorCode::JweInvalid;
        for crv in [Curve::P256, Curve::P384, Curve::P521, Curve::X25519] {
            let recipient = key(crv);
            let good = epk(crv);
            let ec = crv != Curve::X25519;
            assert!(outcome(&recipient, &good).is_ok(), "{crv:?}");
            // Members a sender may add, well formed.
            for (name, value) in [
                ("kid", json!("e")),
                ("use", json!("enc")),
                ("key_ops", json!(["deriveKey", "deriveBits"])),
                ("alg", json!("ECDH-ES")),
                ("x5t", json!("whatever")),
            ] {
                assert!(outcome(&recipient, &with(good.clone(), name, value)).is_ok());
            }
            let wrong_alg = if ec {
                if crv == Curve::P256 {
                    "ES384"
                } else {
                    "ES256"
                }
            } else {
                "EdDSA"
            };
            let other_curve = if crv == Curve::P256 {
                Curve::P384
            } else {
                Curve::P256
            };
            let mut refused = vec![
                // The epk's `alg`: a signature algorithm of another curve, or unknown.
                with(good.clone(), "alg", json!(wrong_alg)),
                with(good.clone(), "alg", json!("HS256")),
                with(good.clone(), "alg", json!("ECDH-XX")),
                with(good.clone(), "alg", json!(1)),
                // `key_ops`: not an array, not strings, repeated.
                with(good.clone(), "key_ops", json!("deriveKey")),
                with(good.clone(), "key_ops", json!([1])),
                with(good.clone(), "key_ops", json!(["deriveKey", "deriveKey"])),
                // `kid` and `use` must be strings.
                with(good.clone(), "kid", json!(5)),
                with(good.clone(), "kid", json!(null)),
                with(good.clone(), "use", json!(["enc"])),
                // Another curve or key type than the recipient's.
                epk(other_curve),
                with(good.clone(), "crv", json!(other_curve.name())),
                with(good.clone(), "kty", json!(if ec { "OKP" } else { "EC" })),
                with(good.clone(), "kty", json!("oct")),
                without(good.clone(), "kty"),
                without(good.clone(), "crv"),
                // Coordinates: missing, short, long, not base64url.
                without(good.clone(), "x"),
                with(
                    good.clone(),
                    "x",
                    coordinate(&good, "x", |b| {
                        b.pop();
                    }),
                ),
                with(
                    good.clone(),
                    "x",
                    coordinate(&good, "x", |b| b.insert(0, 0)),
                ),
                with(good.clone(), "x", json!("not base64!")),
                // A private key.
                with(good.clone(), "d", json!("AAAA")),
                with(good.clone(), "d", json!(5)),
            ];
            if ec {
                refused.extend([
                    without(good.clone(), "y"),
                    with(
                        good.clone(),
                        "y",
                        coordinate(&good, "y", |b| {
                            b.pop();
                        }),
                    ),
                    with(good.clone(), "y", coordinate(&good, "y", |b| b.push(0))),
                    // Off the curve.
                    with(
                        good.clone(),
                        "y",
                        coordinate(&good, "y", |b| {
                            let last = b.last_mut().unwrap();
                            *last ^= 1;
                        }),
                    ),
                    // (0, 0) is not a point either.
                    with(
                        with(good.clone(), "x", coordinate(&good, "x", |b| b.fill(0))),
                        "y",
                        coordinate(&good, "y", |b| b.fill(0)),
                    ),
                ]);
            }
            for bad in &refused {
                let got = outcome(&recipient, bad);
                assert_eq!(
                    got.err(),
                    Some(JweInvalid),
                    "{crv:?} {}",
                    Value::Object(bad.clone())
                );
            }
        }
        // A low-order X25519 point: the agreement itself refuses it, as before.
        let recipient = key(Curve::X25519);
        let zero = with(epk(Curve::X25519), "x", b64::encode([0u8; 32]).into());
        assert_eq!(
            outcome(&recipient, &zero).err(),
            Some(ErrorCode::DecryptionFailed)
        );
    }
}
