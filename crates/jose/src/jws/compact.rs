//! JWS compact serialization (RFC 7515 §7.1): `BASE64URL(header).BASE64URL(payload).BASE64URL(sig)`.

use super::{
    prepare_header, select_key, signing_input, Algorithms, Header, HeaderParams, Keys,
    VerifyOptions, MAX_HEADER_LEN,
};
use crate::alg::Algorithm;
use crate::b64;
use crate::error::{err, Result};
use crate::jwk::{Jwk, Signer};

/// A verified JWS: its header and payload.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The validated header.
    pub header: Header,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Signs `payload` and returns the compact serialization.
pub fn sign(payload: &[u8], key: &Jwk, alg: Algorithm, params: &HeaderParams) -> Result<String> {
    sign_inner(payload, key, alg, params, false)
}

/// Signs `payload` and returns the compact serialization with the payload left out
/// (RFC 7515 Appendix F): `header..signature`.
pub fn sign_detached(
    payload: &[u8],
    key: &Jwk,
    alg: Algorithm,
    params: &HeaderParams,
) -> Result<String> {
    sign_inner(payload, key, alg, params, true)
}

fn sign_inner(
    payload: &[u8],
    key: &Jwk,
    alg: Algorithm,
    params: &HeaderParams,
    detached: bool,
) -> Result<String> {
    if !params.unprotected.is_empty() {
        return Err(err!(
            InvalidOptions,
            "the compact serialization has no unprotected header"
        ));
    }
    let signer = key.signer(alg)?;
    let (header, protected) = prepare_header(key, alg, params, true)?;
    if !header.b64() && !detached && payload.contains(&b'.') {
        return Err(err!(
            InvalidOptions,
            "an unencoded compact payload must not contain '.' (RFC 7797 §5.2)"
        ));
    }
    if header.b64() && !detached {
        return sign_encoded(&signer, &protected, payload);
    }
    let input = signing_input(&protected, payload, header.b64());
    let sig = signer.sign(&input)?;
    let mut out = String::with_capacity(input.len() + 1 + sig.len().div_ceil(3) * 4);
    if detached {
        out.push_str(&protected);
        out.push_str("..");
    } else {
        // The signing input is exactly the first two segments.
        out.push_str(
            std::str::from_utf8(&input)
                .map_err(|_| err!(InvalidOptions, "an unencoded compact payload must be UTF-8"))?,
        );
        out.push('.');
    }
    b64::encode_into(&sig, &mut out);
    Ok(out)
}

/// Room reserved for an encoded signature so appending it rarely reallocates (an HMAC or
/// ECDSA signature fits; an RSA one may grow the buffer once).
const SIG_B64_RESERVE: usize = 176;

/// `protected_b64.BASE64URL(payload).BASE64URL(signature)`: the usual compact JWS, whose
/// signing input (its first two segments) is built in the output buffer itself.
pub(crate) fn sign_encoded(
    signer: &Signer<'_>,
    protected_b64: &str,
    payload: &[u8],
) -> Result<String> {
    let mut out = String::with_capacity(
        protected_b64.len() + 2 + payload.len().div_ceil(3) * 4 + SIG_B64_RESERVE,
    );
    out.push_str(protected_b64);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let sig = signer.sign(out.as_bytes())?;
    out.push('.');
    b64::encode_into(&sig, &mut out);
    Ok(out)
}

/// The three segments of a compact JWS, split and size-checked but not yet decoded.
pub(crate) struct Parts<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
}

/// Splits a compact JWS into its three segments, refusing anything else early and cheaply.
pub(crate) fn split(token: &str, max_len: usize) -> Result<Parts<'_>> {
    crate::crit::precheck_compact(
        token,
        max_len,
        err!(
            JwsInvalid,
            "a JSON-serialized JWS was given where a compact one is expected"
        ),
    )?;
    let mut it = token.splitn(4, '.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(header), Some(payload), Some(signature), None) => {
            if header.len() > MAX_HEADER_LEN {
                return Err(err!(
                    TooLarge,
                    "header is longer than {MAX_HEADER_LEN} bytes"
                ));
            }
            Ok(Parts {
                header,
                payload,
                signature,
            })
        }
        _ => {
            let dots = token.bytes().filter(|b| *b == b'.').count();
            if dots == 4 {
                Err(err!(
                    JwsInvalid,
                    "a JWE (five segments) was given where a JWS is expected"
                ))
            } else {
                Err(err!(
                    JwsInvalid,
                    "a compact JWS has three segments, this has {}",
                    dots + 1
                ))
            }
        }
    }
}

/// Verifies a compact JWS and returns its header and payload.
pub fn verify<'k>(
    token: &str,
    keys: impl Into<Keys<'k>>,
    options: &VerifyOptions,
) -> Result<Verified> {
    verify_inner(token, None, keys.into(), &Policy::of(options), true)
}

/// Verifies a compact JWS whose payload segment is empty against the detached `payload`.
pub fn verify_detached<'k>(
    token: &str,
    payload: &[u8],
    keys: impl Into<Keys<'k>>,
    options: &VerifyOptions,
) -> Result<Verified> {
    verify_inner(
        token,
        Some(payload),
        keys.into(),
        &Policy::of(options),
        true,
    )
}

/// The parts of [`VerifyOptions`] a compact verification reads, borrowed so that callers
/// holding them elsewhere (a JWT `Validation`) need not build options per token.
pub(crate) struct Policy<'a> {
    pub(crate) algorithms: &'a Algorithms,
    pub(crate) crit: &'a [String],
    pub(crate) max_len: usize,
}

impl<'a> Policy<'a> {
    fn of(options: &'a VerifyOptions) -> Self {
        Self {
            algorithms: &options.algorithms,
            crit: &options.crit,
            max_len: options.max_len,
        }
    }
}

pub(crate) fn verify_inner(
    token: &str,
    detached: Option<&[u8]>,
    keys: Keys<'_>,
    policy: &Policy<'_>,
    allow_b64: bool,
) -> Result<Verified> {
    let parts = split(token, policy.max_len)?;
    let header = Header::parse_compact(b64::decode(parts.header)?, policy.crit, allow_b64)?;
    let key = select_key(keys, &header, policy.algorithms)?;
    // Large enough for RSA-8192 signatures.
    let mut sig_buf = [0u8; 1040];
    let sig = b64::decode_buf(parts.signature, &mut sig_buf)?;

    let payload = match detached {
        Some(p) => {
            if !parts.payload.is_empty() {
                return Err(err!(
                    JwsInvalid,
                    "a detached JWS must have an empty payload segment"
                ));
            }
            p.to_vec()
        }
        None if header.b64() => b64::decode(parts.payload)?,
        None => parts.payload.as_bytes().to_vec(),
    };
    if detached.is_some() || !header.b64() {
        let input = signing_input(parts.header, &payload, header.b64());
        key.material.verify(header.alg(), &input, &sig)?;
    } else {
        // Attached and encoded: the signing input is the token's own first two segments.
        let end = parts.header.len() + 1 + parts.payload.len();
        let input = token
            .as_bytes()
            .get(..end)
            .ok_or_else(|| err!(JwsInvalid, "truncated token"))?;
        key.material.verify(header.alg(), input, &sig)?;
    }
    Ok(Verified { header, payload })
}
