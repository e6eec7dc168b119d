//! JWE JSON serializations (RFC 7516 §7.2): flattened (one recipient) and general (several),
//! with shared unprotected and per-recipient headers and additional authenticated data.

use serde_json::{Map, Value};

use super::{
    check_key, content, keymgmt, open, prepare, select_key, ContentEncryption, DecryptOptions,
    Decrypted, EncryptParams, Header, KeyManagement,
};
use crate::error::{err, Error, ErrorCode, Result};
use crate::jwk::Jwk;
use crate::jws::Keys;
use crate::{b64, json};

pub use crate::jws::json::Form;

/// One recipient to encrypt to.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// The recipient's (public) key.
    pub key: &'a Jwk,
    /// Its key-management algorithm.
    pub alg: KeyManagement,
}

/// Encrypts `plaintext` once and protects the CEK for every recipient.
///
/// `enc`, `zip` and `params.protected` go into the protected header, `params.unprotected`
/// into the shared unprotected one. With the flattened
/// form (one recipient) `alg`, `kid` and the algorithm's parameters are protected too; with
/// the general form they go into each recipient's header. Direct modes (`dir`, `ECDH-ES`)
/// fix the CEK and so allow one recipient only.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[Recipient<'_>],
    enc: ContentEncryption,
    params: &EncryptParams,
    aad: Option<&[u8]>,
    form: Form,
) -> Result<String> {
    let Some(first) = recipients.first() else {
        return Err(err!(InvalidOptions, "at least one recipient is needed"));
    };
    if form == Form::Flattened && recipients.len() != 1 {
        return Err(err!(
            InvalidOptions,
            "the flattened serialization has exactly one recipient"
        ));
    }
    if recipients.len() > 1 && recipients.iter().any(|r| r.alg.is_direct()) {
        return Err(err!(
            InvalidOptions,
            "dir and ECDH-ES fix the CEK: they allow a single recipient"
        ));
    }
    for r in recipients {
        check_key(r.key, r.alg, enc, false)?;
    }
    let fixed = params.fixed();
    let apu = params.apu.clone().unwrap_or_default();
    let apv = params.apv.clone().unwrap_or_default();
    let mut protected = params.shared_protected(enc);
    let mut km_params = Map::new();
    let direct = keymgmt::direct_cek(
        first.alg,
        enc,
        first.key,
        &apu,
        &apv,
        &fixed,
        &mut km_params,
    )?;
    let sealing = prepare(enc, direct, plaintext, params, &fixed)?;

    let mut entries = Vec::with_capacity(recipients.len());
    for (i, r) in recipients.iter().enumerate() {
        let wrapped = keymgmt::protect(r.alg, enc, r.key, &sealing.cek, &apu, &apv, &fixed)?;
        let mut header = Map::new();
        header.insert("alg".into(), r.alg.name().into());
        if let Some(kid) = r.key.kid() {
            header.insert("kid".into(), kid.into());
        }
        if i == 0 {
            header.extend(std::mem::take(&mut km_params));
        }
        header.extend(wrapped.params);
        entries.push((header, wrapped.encrypted_key));
    }
    if form == Form::Flattened {
        if let Some((header, _)) = entries.first_mut() {
            protected.extend(std::mem::take(header));
        }
    }
    let understood = crate::crit::declared(&protected);
    for (header, _) in &entries {
        Header::parse(
            protected.clone(),
            params.unprotected.clone(),
            header.clone(),
            &understood,
        )?;
    }

    let protected_b64 = b64::encode(Value::Object(protected).to_string());
    let aad_b64 = aad.map(b64::encode);
    let full_aad = match &aad_b64 {
        Some(a) => format!("{protected_b64}.{a}"),
        None => protected_b64.clone(),
    };
    let (ciphertext, tag) = content::encrypt(
        enc,
        &sealing.cek,
        None,
        &sealing.iv,
        full_aad.as_bytes(),
        &sealing.plaintext,
    )?;

    let mut out = Map::new();
    out.insert("protected".into(), protected_b64.into());
    if !params.unprotected.is_empty() {
        out.insert(
            "unprotected".into(),
            Value::Object(params.unprotected.clone()),
        );
    }
    let recipient_json = |(header, ek): (Map<String, Value>, Vec<u8>)| {
        let mut r = Map::new();
        if !header.is_empty() {
            r.insert("header".into(), Value::Object(header));
        }
        if !ek.is_empty() {
            r.insert("encrypted_key".into(), b64::encode(ek).into());
        }
        r
    };
    match form {
        Form::Flattened => {
            if let Some(entry) = entries.into_iter().next() {
                out.extend(recipient_json(entry));
            }
        }
        Form::General => {
            let list = entries
                .into_iter()
                .map(|e| Value::Object(recipient_json(e)))
                .collect();
            out.insert("recipients".into(), Value::Array(list));
        }
    }
    if let Some(a) = aad_b64 {
        out.insert("aad".into(), a.into());
    }
    out.insert("iv".into(), b64::encode(&sealing.iv).into());
    out.insert("ciphertext".into(), b64::encode(ciphertext).into());
    out.insert("tag".into(), b64::encode(tag).into());
    Ok(Value::Object(out).to_string())
}

fn b64_member(doc: &Map<String, Value>, name: &str, required: bool) -> Result<Option<Vec<u8>>> {
    match doc.get(name) {
        None if required => Err(err!(JweInvalid, "missing {name:?}")),
        None => Ok(None),
        Some(Value::String(s)) => b64::decode(s).map(Some),
        Some(_) => Err(err!(JweInvalid, "{name:?} must be a string")),
    }
}

fn object_member(doc: &Map<String, Value>, name: &str) -> Result<Map<String, Value>> {
    match doc.get(name) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(err!(JweInvalid, "{name:?} must be an object")),
    }
}

/// Decrypts a flattened or general JSON JWE with whichever recipient the keys fit.
pub fn decrypt<'k>(
    text: &str,
    keys: impl Into<Keys<'k>>,
    options: &DecryptOptions,
) -> Result<Decrypted> {
    let keys = keys.into();
    if text.len() > options.max_len {
        return Err(err!(
            TooLarge,
            "JWE is {} bytes, the limit is {}",
            text.len(),
            options.max_len
        ));
    }
    let doc = json::parse_object(text.as_bytes(), "JWE")?;
    if doc.contains_key("signatures") || doc.contains_key("signature") {
        return Err(err!(JweInvalid, "a JWS was given where a JWE is expected"));
    }
    let protected_b64 = match doc.get("protected") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(err!(JweInvalid, "\"protected\" must be a string")),
    };
    if protected_b64.len() > crate::jws::MAX_HEADER_LEN {
        return Err(err!(
            TooLarge,
            "header is longer than {} bytes",
            crate::jws::MAX_HEADER_LEN
        ));
    }
    let protected = if protected_b64.is_empty() {
        Map::new()
    } else {
        json::parse_object(&b64::decode(protected_b64)?, "JWE protected header")?
    };
    let shared = object_member(&doc, "unprotected")?;
    let aad_b64 = match doc.get("aad") {
        None => None,
        Some(Value::String(s)) => {
            b64::decode(s)?;
            Some(s.as_str())
        }
        Some(_) => return Err(err!(JweInvalid, "\"aad\" must be a string")),
    };
    let iv = b64_member(&doc, "iv", true)?.unwrap_or_default();
    let ciphertext = b64_member(&doc, "ciphertext", true)?.unwrap_or_default();
    let tag = b64_member(&doc, "tag", true)?.unwrap_or_default();
    let full_aad = match aad_b64 {
        Some(a) => format!("{protected_b64}.{a}"),
        None => protected_b64.to_owned(),
    };

    let recipients: Vec<Map<String, Value>> = match doc.get("recipients") {
        Some(Value::Array(items)) => {
            if doc.contains_key("header") || doc.contains_key("encrypted_key") {
                return Err(err!(JweInvalid, "general and flattened members mixed"));
            }
            if items.is_empty() {
                return Err(err!(JweInvalid, "\"recipients\" is empty"));
            }
            items
                .iter()
                .map(|r| match r {
                    Value::Object(m) => Ok(m.clone()),
                    _ => Err(err!(JweInvalid, "each recipient must be an object")),
                })
                .collect::<Result<_>>()?
        }
        Some(_) => return Err(err!(JweInvalid, "\"recipients\" must be an array")),
        None => vec![doc.clone()],
    };

    let mut last: Option<Error> = None;
    for r in &recipients {
        let attempt = (|| -> Result<Decrypted> {
            let header = Header::parse(
                protected.clone(),
                shared.clone(),
                object_member(r, "header")?,
                &options.crit,
            )?;
            let key = select_key(keys, &header, options)?;
            let encrypted_key = b64_member(r, "encrypted_key", false)?.unwrap_or_default();
            let cek = keymgmt::recover(&header, key, &encrypted_key, options.max_p2c)?;
            let plaintext = open(
                &header,
                key,
                &cek,
                &iv,
                full_aad.as_bytes(),
                &ciphertext,
                &tag,
                options,
            )?;
            Ok(Decrypted { header, plaintext })
        })();
        match attempt {
            Ok(d) => return Ok(d),
            // Malformed documents and bad options fail at once; a recipient that is not ours
            // does not.
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::InvalidOptions | ErrorCode::JsonInvalid | ErrorCode::Base64Invalid
                ) =>
            {
                return Err(e)
            }
            Err(e) => {
                // Keep the most informative failure: a real decryption attempt beats "not my key".
                let keep = last.as_ref().is_none_or(|l| {
                    l.code() == ErrorCode::NoMatchingKey || e.code() == ErrorCode::DecryptionFailed
                });
                if keep {
                    last = Some(e);
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| err!(NoMatchingKey, "no recipient matches the key")))
}
