//! JWE compact serialization (RFC 7516 §7.1):
//! `BASE64URL(header).BASE64URL(encrypted_key).BASE64URL(iv).BASE64URL(ciphertext).BASE64URL(tag)`.

use serde_json::{Map, Value};

use super::{
    check_key, content, keymgmt, open, prepare, select_key, ContentEncryption, DecryptOptions,
    Decrypted, EncryptParams, Header, KeyManagement,
};
use crate::error::{err, Result};
use crate::jwk::Jwk;
use crate::jws::{Keys, MAX_HEADER_LEN};
use crate::{b64, json};

/// Encrypts `plaintext` to `key` and returns the compact serialization. Every header member
/// is integrity protected.
pub fn encrypt(
    plaintext: &[u8],
    key: &Jwk,
    alg: KeyManagement,
    enc: ContentEncryption,
    params: &EncryptParams,
) -> Result<String> {
    check_key(key, alg, enc, false)?;
    if !params.unprotected.is_empty() {
        return Err(err!(
            InvalidOptions,
            "the compact serialization has no unprotected header"
        ));
    }
    let fixed = params.fixed();
    let apu = params.apu.clone().unwrap_or_default();
    let apv = params.apv.clone().unwrap_or_default();
    let mut protected = params.shared_protected(enc);
    protected.insert("alg".into(), alg.name().into());
    if let (Some(kid), false) = (key.kid(), protected.contains_key("kid")) {
        protected.insert("kid".into(), kid.into());
    }
    let mut km_params = Map::new();
    let direct = keymgmt::direct_cek(alg, enc, key, &apu, &apv, &fixed, &mut km_params)?;
    let sealing = prepare(enc, direct, plaintext, params, &fixed)?;
    let wrapped = keymgmt::protect(alg, enc, key, &sealing.cek, &apu, &apv, &fixed)?;
    protected.extend(km_params);
    protected.extend(wrapped.params);
    let understood = crate::crit::declared(&protected);
    let protected_b64 = match fixed.protected_b64 {
        Some(given) => {
            if json::parse_object(&b64::decode(&given)?, "injected header")? != protected {
                return Err(err!(
                    InvalidOptions,
                    "the injected protected header differs from the computed one"
                ));
            }
            given
        }
        None => b64::encode(
            serde_json::to_vec(&protected)
                .map_err(|e| err!(InvalidOptions, "the header cannot be serialized: {e}"))?,
        ),
    };
    // Validate what we produce with the same rules the recipient will apply.
    Header::parse(protected, Map::new(), Map::new(), &understood)?;
    // With `dir` the key is the CEK, and keeps its AES-GCM key schedule.
    let gcm = match (&key.material, alg) {
        (crate::jwk::KeyMaterial::Oct(k), KeyManagement::Dir) => k.gcm_key(),
        _ => None,
    };
    let (ciphertext, tag) = content::encrypt(
        enc,
        &sealing.cek,
        gcm,
        &sealing.iv,
        protected_b64.as_bytes(),
        &sealing.plaintext,
    )?;
    let mut out = protected_b64;
    for part in [&wrapped.encrypted_key, &sealing.iv, &ciphertext, &tag] {
        out.push('.');
        b64::encode_into(part, &mut out);
    }
    Ok(out)
}

/// Splits a compact JWE, refusing other shapes early.
pub(crate) fn split(token: &str, max_len: usize) -> Result<[&str; 5]> {
    crate::crit::precheck_compact(
        token,
        max_len,
        err!(
            JweInvalid,
            "a JSON-serialized JWE was given where a compact one is expected"
        ),
    )?;
    let mut it = token.split('.');
    let parts = [
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ];
    match parts {
        [Some(a), Some(b), Some(c), Some(d), Some(e), None] => {
            if a.len() > MAX_HEADER_LEN {
                return Err(err!(
                    TooLarge,
                    "header is longer than {MAX_HEADER_LEN} bytes"
                ));
            }
            Ok([a, b, c, d, e])
        }
        [Some(_), Some(_), Some(_), None, ..] => Err(err!(
            JweInvalid,
            "a JWS (three segments) was given where a JWE is expected"
        )),
        _ => Err(err!(JweInvalid, "a compact JWE has five segments")),
    }
}

/// Decrypts a compact JWE.
pub fn decrypt<'k>(
    token: &str,
    keys: impl Into<Keys<'k>>,
    options: &DecryptOptions,
) -> Result<Decrypted> {
    let [h, ek, iv, ct, tag] = split(token, options.max_len)?;
    let protected = json::parse_object(&b64::decode(h)?, "JWE header")?;
    let header = Header::parse(protected, Map::new(), Map::new(), &options.crit)?;
    let key = select_key(keys.into(), &header, options)?;
    let encrypted_key = b64::decode(ek)?;
    let (iv, ct, tag) = (b64::decode(iv)?, b64::decode(ct)?, b64::decode(tag)?);
    let cek = keymgmt::recover(&header, key, &encrypted_key, options.max_p2c)?;
    let plaintext = open(&header, key, &cek, &iv, h.as_bytes(), &ct, &tag, options)?;
    Ok(Decrypted { header, plaintext })
}

/// The protected header of a compact JWE, decoded but NOT authenticated (for display).
pub fn decode_header_unverified(token: &str) -> Result<Map<String, Value>> {
    let [h, ..] = split(token, super::DEFAULT_MAX_LEN)?;
    json::parse_object(&b64::decode(h)?, "JWE header")
}
