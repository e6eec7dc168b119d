//! Key generation from the aws-lc-rs RNG.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair};
use zeroize::Zeroizing;

use super::material::{ec_from_pair, ed25519_from_pair, Curve, KeyMaterial, OctKey, XKey};
use super::{min_hmac_key_len, pem};
use crate::alg::{Algorithm, Family};
use crate::error::{crypto_err, err, Result};
use crate::jwe::{ContentEncryption, KeyManagement, Mode};

pub(crate) fn generate(alg: Algorithm, bits: Option<usize>) -> Result<KeyMaterial> {
    if bits.is_some() && alg.curve().is_some() {
        return Err(err!(
            KeyUnsuitable,
            "{alg} keys are sized by their curve; bits apply to RSA and HMAC"
        ));
    }
    match alg.family() {
        Family::Hmac => {
            if bits.is_some_and(|b| b % 8 != 0 || b / 8 < min_hmac_key_len(alg)) {
                return Err(err!(
                    KeyUnsuitable,
                    "{alg} keys must be whole bytes, at least {} bits",
                    min_hmac_key_len(alg) * 8
                ));
            }
            let len = bits.map_or(min_hmac_key_len(alg), |b| b / 8);
            let mut k = Zeroizing::new(vec![0u8; len]);
            aws_lc_rs::rand::fill(&mut k).map_err(crypto_err!("key generation failed"))?;
            Ok(KeyMaterial::Oct(Box::new(OctKey::new(k)?)))
        }
        Family::Rsa => {
            let size = match bits.unwrap_or(2048) {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                8192 => KeySize::Rsa8192,
                other => {
                    return Err(err!(
                        KeyUnsuitable,
                        "RSA keys are 2048, 3072, 4096 or 8192 bits, not {other}"
                    ))
                }
            };
            let pair = RsaKeyPair::generate(size).map_err(crypto_err!("key generation failed"))?;
            let der = pair
                .as_der()
                .map_err(crypto_err!("key generation failed"))?;
            pem::rsa_from_pkcs8(der.as_ref())
        }
        Family::Ecdsa => {
            let (crv, signing) = match alg {
                Algorithm::ES384 => (
                    Curve::P384,
                    &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                ),
                Algorithm::ES512 => (
                    Curve::P521,
                    &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                ),
                _ => (
                    Curve::P256,
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                ),
            };
            let pair =
                EcdsaKeyPair::generate(signing).map_err(crypto_err!("key generation failed"))?;
            ec_from_pair(crv, &pair)
        }
        Family::EdDsa => {
            let pair = Ed25519KeyPair::generate().map_err(crypto_err!("key generation failed"))?;
            ed25519_from_pair(&pair)
        }
    }
}

/// Generates a private key for a JWE key-management algorithm: `dir` keys are sized by `enc`,
/// AES keys by the algorithm, PBES2 "passwords" are 32 random bytes, RSA-OAEP keys are RSA
/// (`bits`, default 2048), ECDH-ES keys are on `crv` (default P-256; X25519 allowed).
pub(crate) fn generate_for_encryption(
    alg: KeyManagement,
    enc: Option<ContentEncryption>,
    crv: Option<Curve>,
    bits: Option<usize>,
) -> Result<KeyMaterial> {
    let oct = |len: usize| -> Result<KeyMaterial> {
        let mut k = Zeroizing::new(vec![0u8; len]);
        aws_lc_rs::rand::fill(&mut k).map_err(crypto_err!("key generation failed"))?;
        Ok(KeyMaterial::Oct(Box::new(OctKey::new(k)?)))
    };
    let mode = alg.mode();
    if bits.is_some() && !matches!(mode, Mode::RsaOaep) {
        return Err(err!(
            KeyUnsuitable,
            "bits apply to RSA keys only; {alg} keys are sized by the algorithm"
        ));
    }
    if crv.is_some() && !matches!(mode, Mode::EcdhEs(_)) {
        return Err(err!(KeyUnsuitable, "a curve applies to ECDH-ES keys only"));
    }
    if enc.is_some() && !matches!(mode, Mode::Direct) {
        return Err(err!(
            KeyUnsuitable,
            "enc sizes dir keys only; {alg} keys are sized by the algorithm"
        ));
    }
    match mode {
        Mode::Direct => {
            let enc = enc.ok_or_else(|| {
                err!(
                    InvalidOptions,
                    "a dir key is sized by its content encryption: give enc"
                )
            })?;
            oct(enc.key_len())
        }
        Mode::AesKw(n) | Mode::AesGcmKw(n) => oct(n),
        Mode::Pbes2(_) => oct(32),
        Mode::RsaOaep => generate(Algorithm::RS256, bits),
        Mode::EcdhEs(_) => match crv.unwrap_or(Curve::P256) {
            Curve::X25519 => {
                use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
                let private =
                    aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::X25519)
                        .map_err(crypto_err!("key generation failed"))?;
                let d: Curve25519SeedBin<'_> = private
                    .as_be_bytes()
                    .map_err(crypto_err!("key generation failed"))?;
                let x = private
                    .compute_public_key()
                    .map_err(crypto_err!("key generation failed"))?;
                Ok(KeyMaterial::X25519(Box::new(XKey::new(
                    x.as_ref().to_vec(),
                    Some(Zeroizing::new(d.as_ref().to_vec())),
                )?)))
            }
            Curve::Ed25519 => Err(err!(
                KeyUnsuitable,
                "ECDH-ES needs P-256, P-384, P-521 or X25519"
            )),
            ec => {
                let alg = match ec {
                    Curve::P384 => Algorithm::ES384,
                    Curve::P521 => Algorithm::ES512,
                    _ => Algorithm::ES256,
                };
                generate(alg, None)
            }
        },
    }
}
