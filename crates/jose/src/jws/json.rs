//! JWS JSON serializations (RFC 7515 §7.2): flattened (one signature) and general (several).

use serde_json::{Map, Value};

use super::{
    prepare_header, select_key, signing_input, Header, HeaderParams, Keys, SignaturePolicy,
    VerifyOptions,
};
use crate::alg::Algorithm;
use crate::error::{err, Error, ErrorCode, Result};
use crate::jwk::Jwk;
use crate::{b64, json};

/// Which JSON serialization to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `{"payload","protected","header","signature"}`: exactly one signature.
    Flattened,
    /// `{"payload","signatures":[…]}`: one or more.
    General,
}

/// One signature to produce.
#[derive(Debug, Clone, Copy)]
pub struct Signature<'a> {
    /// The private key.
    pub key: &'a Jwk,
    /// The algorithm.
    pub alg: Algorithm,
    /// Extra header members.
    pub params: &'a HeaderParams,
}

/// The outcome of verifying a JSON-serialized JWS.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The headers of the signatures that verified, in document order.
    pub verified: Vec<Header>,
}

/// Signs `payload` with every signer and serializes as JSON. With `detached`, the `payload`
/// member is left out.
pub fn sign(
    payload: &[u8],
    signers: &[Signature<'_>],
    form: Form,
    detached: bool,
) -> Result<String> {
    if signers.is_empty() {
        return Err(err!(InvalidOptions, "at least one signature is needed"));
    }
    if form == Form::Flattened && signers.len() != 1 {
        return Err(err!(
            InvalidOptions,
            "the flattened serialization holds exactly one signature"
        ));
    }
    let mut b64_mode = None;
    let mut sigs = Vec::with_capacity(signers.len());
    for s in signers {
        let signer = s.key.signer(s.alg)?;
        let (header, protected) = prepare_header(s.key, s.alg, s.params, true)?;
        if *b64_mode.get_or_insert(header.b64()) != header.b64() {
            return Err(err!(
                InvalidOptions,
                "all signatures must agree on \"b64\" (RFC 7797 §3)"
            ));
        }
        let sig = signer.sign(&signing_input(&protected, payload, header.b64()))?;
        let mut obj = Map::new();
        obj.insert("protected".into(), protected.into());
        if !s.params.unprotected.is_empty() {
            obj.insert("header".into(), Value::Object(s.params.unprotected.clone()));
        }
        obj.insert("signature".into(), b64::encode(sig).into());
        sigs.push(Value::Object(obj));
    }
    let mut out = Map::new();
    if !detached {
        let payload_member = if b64_mode.unwrap_or(true) {
            b64::encode(payload)
        } else {
            String::from_utf8(payload.to_vec())
                .map_err(|_| err!(InvalidOptions, "an unencoded JSON payload must be UTF-8"))?
        };
        out.insert("payload".into(), payload_member.into());
    }
    match form {
        Form::General => {
            out.insert("signatures".into(), Value::Array(sigs));
        }
        Form::Flattened => {
            if let Some(Value::Object(obj)) = sigs.pop() {
                out.extend(obj);
            }
        }
    }
    Ok(Value::Object(out).to_string())
}

/// One signature as found in the document, not yet verified.
struct Entry<'a> {
    protected_b64: &'a str,
    header: Header,
    signature: &'a str,
}

fn parse_entry<'a>(obj: &'a Map<String, Value>, options: &VerifyOptions) -> Result<Entry<'a>> {
    let protected_b64 = match obj.get("protected") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(err!(JwsInvalid, "\"protected\" must be a string")),
    };
    if protected_b64.len() > super::MAX_HEADER_LEN {
        return Err(err!(
            TooLarge,
            "header is longer than {} bytes",
            super::MAX_HEADER_LEN
        ));
    }
    let protected = if protected_b64.is_empty() {
        Map::new()
    } else {
        json::parse_object(&b64::decode(protected_b64)?, "JWS protected header")?
    };
    let unprotected = match obj.get("header") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(err!(JwsInvalid, "\"header\" must be an object")),
    };
    let signature = match obj.get("signature") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(err!(JwsInvalid, "missing \"signature\" string")),
    };
    let header = Header::parse(protected, unprotected, &options.crit, true)?;
    Ok(Entry {
        protected_b64,
        header,
        signature,
    })
}

/// Verifies a flattened or general JSON JWS.
pub fn verify<'k>(
    text: &str,
    keys: impl Into<Keys<'k>>,
    options: &VerifyOptions,
) -> Result<Verified> {
    verify_inner(text, None, keys.into(), options)
}

/// Verifies a JSON JWS without a `payload` member against the detached `payload`.
pub fn verify_detached<'k>(
    text: &str,
    payload: &[u8],
    keys: impl Into<Keys<'k>>,
    options: &VerifyOptions,
) -> Result<Verified> {
    verify_inner(text, Some(payload), keys.into(), options)
}

fn verify_inner(
    text: &str,
    detached: Option<&[u8]>,
    keys: Keys<'_>,
    options: &VerifyOptions,
) -> Result<Verified> {
    if text.len() > options.max_len {
        return Err(err!(
            TooLarge,
            "JWS is {} bytes, the limit is {}",
            text.len(),
            options.max_len
        ));
    }
    let doc = json::parse_object(text.as_bytes(), "JWS")?;
    let entries: Vec<Entry<'_>> = match doc.get("signatures") {
        Some(Value::Array(items)) => {
            if ["protected", "header", "signature"]
                .iter()
                .any(|k| doc.contains_key(*k))
            {
                return Err(err!(JwsInvalid, "general and flattened members mixed"));
            }
            if items.is_empty() {
                return Err(err!(JwsInvalid, "\"signatures\" is empty"));
            }
            items
                .iter()
                .map(|item| match item {
                    Value::Object(obj) => parse_entry(obj, options),
                    _ => Err(err!(JwsInvalid, "each signature must be an object")),
                })
                .collect::<Result<_>>()?
        }
        Some(_) => return Err(err!(JwsInvalid, "\"signatures\" must be an array")),
        None => vec![parse_entry(&doc, options)?],
    };
    let b64_mode = entries.first().is_none_or(|e| e.header.b64());
    if entries.iter().any(|e| e.header.b64() != b64_mode) {
        return Err(err!(JwsInvalid, "signatures disagree on \"b64\""));
    }
    let payload_member = match (doc.get("payload"), detached) {
        (Some(Value::String(s)), None) => s.as_str(),
        (None, Some(_)) => "",
        (Some(_), Some(_)) => {
            return Err(err!(JwsInvalid, "a detached JWS must not carry a payload"))
        }
        (None, None) => return Err(err!(JwsInvalid, "missing \"payload\"")),
        (Some(_), None) => return Err(err!(JwsInvalid, "\"payload\" must be a string")),
    };
    let payload = match detached {
        Some(p) => p.to_vec(),
        None if b64_mode => b64::decode(payload_member)?,
        None => payload_member.as_bytes().to_vec(),
    };

    let mut verified = Vec::new();
    let mut first_error: Option<Error> = None;
    for entry in entries {
        let outcome = select_key(keys, &entry.header, &options.algorithms).and_then(|key| {
            let sig = b64::decode(entry.signature)?;
            let input = signing_input(entry.protected_b64, &payload, b64_mode);
            key.material.verify(entry.header.alg(), &input, &sig)
        });
        match outcome {
            Ok(()) => verified.push(entry.header),
            // An options error is the caller's to fix, whatever the policy.
            Err(e) if e.code() == ErrorCode::InvalidOptions => return Err(e),
            Err(e) if options.policy == SignaturePolicy::All => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if verified.is_empty() {
        return Err(first_error.unwrap_or_else(|| err!(SignatureInvalid, "no signature verified")));
    }
    Ok(Verified { payload, verified })
}
