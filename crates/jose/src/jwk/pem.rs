//! PEM import and export: SPKI and PKCS#1 public keys; PKCS#8, PKCS#1 and SEC1 private keys.
//!
//! DER parsing uses RustCrypto's format crates (no cryptography); the keys they yield go
//! through the same validation as JWK input.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode};
use pem_rfc7468::LineEnding;
use zeroize::Zeroizing;

use super::material::{
    ec_from_pair, ed25519_from_pair, Curve, EcKey, EdKey, KeyMaterial, RsaKey, XKey,
};
use crate::error::{err, Result};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

fn bad(what: &str) -> crate::error::Error {
    err!(PemInvalid, "malformed {what}")
}

fn curve_of(oid: ObjectIdentifier) -> Result<Curve> {
    match oid {
        o if o == P256 => Ok(Curve::P256),
        o if o == P384 => Ok(Curve::P384),
        o if o == P521 => Ok(Curve::P521),
        other => Err(err!(PemInvalid, "unsupported EC curve OID {other}")),
    }
}

fn curve_oid(crv: Curve) -> ObjectIdentifier {
    match crv {
        Curve::P384 => P384,
        Curve::P521 => P521,
        _ => P256,
    }
}

fn ecdsa_signing(crv: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match crv {
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

pub(crate) fn from_pem(text: &[u8]) -> Result<KeyMaterial> {
    let text = trim_ascii(text);
    let (label, der) =
        pem_rfc7468::decode_vec(text).map_err(|_| err!(PemInvalid, "not a PEM document"))?;
    let der = Zeroizing::new(der);
    match label {
        "PUBLIC KEY" => from_spki(&der),
        "RSA PUBLIC KEY" => {
            let key = pkcs1::RsaPublicKey::from_der(&der).map_err(|_| bad("PKCS#1 public key"))?;
            rsa_public(key)
        }
        "PRIVATE KEY" => from_pkcs8(&der),
        "RSA PRIVATE KEY" => rsa_private(&der),
        "EC PRIVATE KEY" => {
            let key = sec1::EcPrivateKey::from_der(&der).map_err(|_| bad("SEC1 private key"))?;
            let oid = key
                .parameters
                .and_then(|p| p.named_curve())
                .ok_or_else(|| err!(PemInvalid, "SEC1 key without a named curve"))?;
            let crv = curve_of(oid)?;
            let pair = EcdsaKeyPair::from_private_key_der(ecdsa_signing(crv), &der)
                .map_err(|_| bad("SEC1 private key"))?;
            ec_from_pair(crv, &pair)
        }
        "ENCRYPTED PRIVATE KEY" => Err(err!(
            NotSupported,
            "encrypted PEM keys are not supported; decrypt it first"
        )),
        other => Err(err!(PemInvalid, "unsupported PEM label {other:?}")),
    }
}

fn trim_ascii(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    text.get(start..end).unwrap_or_default()
}

fn from_spki(der: &[u8]) -> Result<KeyMaterial> {
    let spki =
        spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| bad("SubjectPublicKeyInfo"))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("SubjectPublicKeyInfo bit string"))?;
    match spki.algorithm.oid {
        o if o == RSA_ENCRYPTION => {
            rsa_public(pkcs1::RsaPublicKey::from_der(key).map_err(|_| bad("RSA public key"))?)
        }
        o if o == EC_PUBLIC_KEY => {
            let crv = curve_of(
                spki.algorithm
                    .parameters_oid()
                    .map_err(|_| bad("EC parameters"))?,
            )?;
            let (x, y) = super::material::split_point(crv, key)?;
            Ok(KeyMaterial::Ec(Box::new(EcKey::new(crv, x, y, None)?)))
        }
        o if o == ED25519 => Ok(KeyMaterial::Ed25519(Box::new(EdKey::new(
            key.to_vec(),
            None,
        )?))),
        o if o == X25519 => Ok(KeyMaterial::X25519(Box::new(XKey::new(
            key.to_vec(),
            None,
        )?))),
        other => Err(err!(
            PemInvalid,
            "unsupported public key algorithm OID {other}"
        )),
    }
}

fn rsa_public(key: pkcs1::RsaPublicKey<'_>) -> Result<KeyMaterial> {
    Ok(KeyMaterial::Rsa(Box::new(RsaKey::new(
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
        None,
    )?)))
}

fn rsa_private(der: &[u8]) -> Result<KeyMaterial> {
    let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|_| bad("PKCS#1 private key"))?;
    if key.other_prime_infos.is_some() {
        return Err(err!(NotSupported, "multi-prime RSA keys are not supported"));
    }
    let s = |u: pkcs1::UintRef<'_>| Zeroizing::new(u.as_bytes().to_vec());
    Ok(KeyMaterial::Rsa(Box::new(RsaKey::new(
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
        Some([
            s(key.private_exponent),
            s(key.prime1),
            s(key.prime2),
            s(key.exponent1),
            s(key.exponent2),
            s(key.coefficient),
        ]),
    )?)))
}

/// Imports an RSA key from PKCS#8 DER (also how generated RSA keys reach JWK form).
pub(crate) fn rsa_from_pkcs8(der: &[u8]) -> Result<KeyMaterial> {
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| bad("PKCS#8 private key"))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(err!(PemInvalid, "not an RSA PKCS#8 key"));
    }
    rsa_private(info.private_key)
}

fn from_pkcs8(der: &[u8]) -> Result<KeyMaterial> {
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| bad("PKCS#8 private key"))?;
    match info.algorithm.oid {
        o if o == RSA_ENCRYPTION => rsa_private(info.private_key),
        o if o == EC_PUBLIC_KEY => {
            let crv = curve_of(
                info.algorithm
                    .parameters_oid()
                    .map_err(|_| bad("EC parameters"))?,
            )?;
            let pair = EcdsaKeyPair::from_pkcs8(ecdsa_signing(crv), der)
                .map_err(|_| bad("EC PKCS#8 key"))?;
            ec_from_pair(crv, &pair)
        }
        o if o == ED25519 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| bad("Ed25519 PKCS#8 key"))?;
            ed25519_from_pair(&pair)
        }
        o if o == X25519 => {
            let d =
                OctetStringRef::from_der(info.private_key).map_err(|_| bad("X25519 PKCS#8 key"))?;
            let d = Zeroizing::new(d.as_bytes().to_vec());
            let private = aws_lc_rs::agreement::PrivateKey::from_private_key(
                &aws_lc_rs::agreement::X25519,
                &d,
            )
            .map_err(|_| bad("X25519 PKCS#8 key"))?;
            let public = private
                .compute_public_key()
                .map_err(|_| bad("X25519 PKCS#8 key"))?;
            Ok(KeyMaterial::X25519(Box::new(XKey::new(
                public.as_ref().to_vec(),
                Some(d),
            )?)))
        }
        other => Err(err!(
            PemInvalid,
            "unsupported private key algorithm OID {other}"
        )),
    }
}

fn spki_der(oid: ObjectIdentifier, params: Option<AnyRef<'_>>, key: &[u8]) -> Result<Vec<u8>> {
    let spki = spki::SubjectPublicKeyInfoRef {
        algorithm: spki::AlgorithmIdentifierRef {
            oid,
            parameters: params,
        },
        subject_public_key: BitStringRef::from_bytes(key)
            .map_err(|_| err!(Crypto, "DER encoding failed"))?,
    };
    spki.to_der()
        .map_err(|_| err!(Crypto, "DER encoding failed"))
}

fn pem(label: &str, der: &[u8]) -> Result<String> {
    pem_rfc7468::encode_string(label, LineEnding::LF, der)
        .map_err(|_| err!(Crypto, "PEM encoding failed"))
}

pub(crate) fn to_pem(material: &KeyMaterial) -> Result<String> {
    fn failed<E>(_: E) -> crate::error::Error {
        err!(Crypto, "DER encoding failed")
    }
    match material {
        KeyMaterial::Rsa(k) => match k.private_pair() {
            Some(pair) => pem("PRIVATE KEY", pair.as_der().map_err(failed)?.as_ref()),
            None => {
                let (n, e) = k.public_components();
                let der = PublicKeyComponents { n, e }.as_der().map_err(failed)?;
                pem("PUBLIC KEY", der.as_ref())
            }
        },
        KeyMaterial::Ec(k) => match k.pair() {
            Some(pair) => pem("PRIVATE KEY", pair.to_pkcs8v1().map_err(failed)?.as_ref()),
            None => {
                let oid = curve_oid(k.crv);
                pem(
                    "PUBLIC KEY",
                    &spki_der(EC_PUBLIC_KEY, Some(AnyRef::from(&oid)), &k.point())?,
                )
            }
        },
        KeyMaterial::Ed25519(k) => match k.pair() {
            Some(pair) => pem("PRIVATE KEY", pair.to_pkcs8v1().map_err(failed)?.as_ref()),
            None => pem("PUBLIC KEY", &spki_der(ED25519, None, k.public_bytes())?),
        },
        KeyMaterial::X25519(k) => match &k.d {
            Some(d) => {
                let inner = OctetStringRef::new(d)
                    .and_then(|o| o.to_der())
                    .map_err(failed)?;
                let inner = Zeroizing::new(inner);
                let info = pkcs8::PrivateKeyInfo::new(
                    spki::AlgorithmIdentifierRef {
                        oid: X25519,
                        parameters: None,
                    },
                    &inner,
                );
                let der = Zeroizing::new(info.to_der().map_err(failed)?);
                pem("PRIVATE KEY", &der)
            }
            None => pem("PUBLIC KEY", &spki_der(X25519, None, &k.x)?),
        },
        KeyMaterial::Oct(_) => Err(err!(KeyUnsuitable, "symmetric keys have no PEM form")),
    }
}
