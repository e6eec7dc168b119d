//! Content encryption (RFC 7518 §5): AES-GCM, and AES-CBC with HMAC-SHA-2 whose tag is checked
//! in constant time before any decryption, so padding never becomes an oracle.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::{constant_time, hmac};

use super::alg::ContentEncryption as Enc;
use crate::error::{crypto_err, err, Error, Result};

/// The one error every content-decryption failure becomes: wrong key, flipped bit, truncated
/// tag, bad padding. Distinguishing them would help an attacker.
pub(crate) fn decryption_failed() -> Error {
    err!(DecryptionFailed, "decryption failed")
}

fn gcm_alg(enc: Enc) -> Option<&'static aead::Algorithm> {
    match enc {
        Enc::A128GCM => Some(&aead::AES_128_GCM),
        Enc::A192GCM => Some(&aead::AES_192_GCM),
        Enc::A256GCM => Some(&aead::AES_256_GCM),
        _ => None,
    }
}

fn cbc_parts(enc: Enc) -> Option<(&'static cipher::Algorithm, hmac::Algorithm)> {
    match enc {
        Enc::A128CBC_HS256 => Some((&cipher::AES_128, hmac::HMAC_SHA256)),
        Enc::A192CBC_HS384 => Some((&cipher::AES_192, hmac::HMAC_SHA384)),
        Enc::A256CBC_HS512 => Some((&cipher::AES_256, hmac::HMAC_SHA512)),
        _ => None,
    }
}

/// RFC 7518 §5.2.2.1: HMAC over AAD ‖ IV ‖ ciphertext ‖ AL, truncated to half the hash.
fn cbc_tag(
    mac: hmac::Algorithm,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag_len: usize,
) -> Result<Vec<u8>> {
    let key = hmac::Key::new(mac, mac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    let al = u64::try_from(aad.len())
        .map_err(|_| err!(TooLarge, "AAD too long"))?
        .saturating_mul(8);
    ctx.update(&al.to_be_bytes());
    let tag = ctx.sign();
    tag.as_ref()
        .get(..tag_len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| err!(Crypto, "short HMAC"))
}

/// Encrypts; returns (ciphertext, tag). `gcm`, when given, is `cek` already made into an
/// AES-GCM key (a `dir` key keeps one).
pub(crate) fn encrypt(
    enc: Enc,
    cek: &[u8],
    gcm: Option<&LessSafeKey>,
    iv: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    if cek.len() != enc.key_len() || iv.len() != enc.iv_len() {
        return Err(err!(Crypto, "CEK or IV of the wrong length for {enc}"));
    }
    if let Some(alg) = gcm_alg(enc) {
        let built;
        let key = match gcm.filter(|k| k.algorithm() == alg) {
            Some(k) => k,
            None => {
                built = LessSafeKey::new(
                    UnboundKey::new(alg, cek).map_err(crypto_err!("content encryption failed"))?,
                );
                &built
            }
        };
        let nonce = Nonce::try_assume_unique_for_key(iv)
            .map_err(crypto_err!("content encryption failed"))?;
        let mut buf = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf)
            .map_err(crypto_err!("content encryption failed"))?;
        return Ok((buf, tag.as_ref().to_vec()));
    }
    let (aes, mac) = cbc_parts(enc).ok_or_else(|| err!(Crypto, "unknown content encryption"))?;
    let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
    let key = PaddedBlockEncryptingKey::cbc_pkcs7(
        UnboundCipherKey::new(aes, enc_key).map_err(crypto_err!("content encryption failed"))?,
    )
    .map_err(crypto_err!("content encryption failed"))?;
    let iv16: [u8; 16] = iv
        .try_into()
        .map_err(|_| err!(Crypto, "IV of the wrong length"))?;
    let mut buf = plaintext.to_vec();
    key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv16.into()))
        .map_err(crypto_err!("content encryption failed"))?;
    let tag = cbc_tag(mac, mac_key, aad, iv, &buf, enc.tag_len())?;
    Ok((buf, tag))
}

/// Decrypts and authenticates. Any failure is [`decryption_failed`]. `gcm`, when given, is
/// `cek` already made into an AES-GCM key (a `dir` key keeps one).
pub(crate) fn decrypt(
    enc: Enc,
    cek: &[u8],
    gcm: Option<&LessSafeKey>,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>> {
    if cek.len() != enc.key_len() || iv.len() != enc.iv_len() || tag.len() != enc.tag_len() {
        return Err(decryption_failed());
    }
    if let Some(alg) = gcm_alg(enc) {
        let built;
        let key = match gcm.filter(|k| k.algorithm() == alg) {
            Some(k) => k,
            None => {
                built =
                    LessSafeKey::new(UnboundKey::new(alg, cek).map_err(|_| decryption_failed())?);
                &built
            }
        };
        let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| decryption_failed())?;
        let mut buf = Vec::with_capacity(ciphertext.len() + tag.len());
        buf.extend_from_slice(ciphertext);
        buf.extend_from_slice(tag);
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| decryption_failed())?;
        let len = plain.len();
        buf.truncate(len);
        return Ok(buf);
    }
    let (aes, mac) = cbc_parts(enc).ok_or_else(decryption_failed)?;
    let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
    let expected = cbc_tag(mac, mac_key, aad, iv, ciphertext, enc.tag_len())?;
    constant_time::verify_slices_are_equal(&expected, tag).map_err(|_| decryption_failed())?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(
        UnboundCipherKey::new(aes, enc_key).map_err(|_| decryption_failed())?,
    )
    .map_err(|_| decryption_failed())?;
    let iv16: [u8; 16] = iv.try_into().map_err(|_| decryption_failed())?;
    let mut buf = ciphertext.to_vec();
    let plain = key
        .decrypt(&mut buf, DecryptionContext::Iv128(iv16.into()))
        .map_err(|_| decryption_failed())?;
    let len = plain.len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn gcm(alg: &'static aead::Algorithm, key: &[u8]) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(alg, key).unwrap())
    }

    /// A kept AES-GCM key is used only when it is for the token's `enc`; otherwise the key
    /// comes from the CEK, as without one.
    #[test]
    fn a_kept_gcm_key_serves_only_its_own_algorithm() {
        let cek: Vec<u8> = (0u8..32).collect();
        let (iv, aad, plaintext) = ([7u8; 12], b"aad", b"the plaintext");
        let (ct, tag) = encrypt(Enc::A256GCM, &cek, None, &iv, aad, plaintext).unwrap();
        let open =
            |kept: Option<&LessSafeKey>| decrypt(Enc::A256GCM, &cek, kept, &iv, aad, &ct, &tag);
        assert_eq!(open(None).unwrap(), plaintext);
        assert_eq!(
            open(Some(&gcm(&aead::AES_256_GCM, &cek))).unwrap(),
            plaintext
        );
        // A key for another algorithm (even from the same bytes) is not used.
        assert_eq!(
            open(Some(&gcm(&aead::AES_128_GCM, &cek[..16]))).unwrap(),
            plaintext
        );
        assert_eq!(
            open(Some(&gcm(&aead::AES_192_GCM, &cek[..24]))).unwrap(),
            plaintext
        );
        // One for the right algorithm is: the caller must pass only the CEK's own (`dir`).
        let other: Vec<u8> = (100u8..132).collect();
        assert_eq!(
            open(Some(&gcm(&aead::AES_256_GCM, &other))).unwrap_err(),
            decryption_failed()
        );
        // With a CEK of the wrong length for `enc`, no kept key rescues it.
        assert_eq!(
            decrypt(
                Enc::A256GCM,
                &cek[..16],
                Some(&gcm(&aead::AES_256_GCM, &cek)),
                &iv,
                aad,
                &ct,
                &tag
            )
            .unwrap_err(),
            decryption_failed()
        );
    }
}
