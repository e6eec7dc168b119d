//! Key generation from the aws-lc-rs RNG.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair};
use zeroize::Zeroizing;

use super::material::{ec_from_pair, ed25519_from_pair, Curve, KeyMaterial, OctKey};
use super::{min_hmac_key_len, pem};
use crate::alg::{Algorithm, Family};
use crate::error::{crypto_err, err, Result};

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
