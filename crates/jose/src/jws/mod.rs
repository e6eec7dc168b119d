//! JSON Web Signature (RFC 7515, RFC 7797 unencoded payloads).
//!
//! - [`compact`]: the `header.payload.signature` form (and detached content).
//! - [`json`]: flattened and general JSON serializations, one or several signatures.
//!
//! Verification always takes a [`VerifyOptions`] saying which algorithms are acceptable; the
//! key (or key set) is the caller's, never one named by the token (`jwk`, `jku`, `x5u`, `x5c`
//! are ignored, not fetched).

pub mod compact;
pub mod json;

use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::error::{err, Result};
use crate::jwk::{Jwk, JwkSet, KeyOperation};

/// Default upper bound on a serialized JWS, checked before any decoding.
pub const DEFAULT_MAX_LEN: usize = 64 * 1024;
/// Upper bound on one encoded header segment.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Which algorithms verification accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithms {
    /// Exactly these (the key's own `alg`, when it has one, must also agree).
    Only(Vec<Algorithm>),
    /// The one algorithm the selected key determines: its `alg`, or the single algorithm its
    /// type implies (EC curve, Ed25519). Keys determining none (RSA or oct without `alg`) are
    /// an options error, not a guess.
    FromKey,
}

/// With several signatures (general JSON serialization), which must verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePolicy {
    /// Every signature must verify with a key from the caller.
    All,
    /// At least one signature must verify.
    Any,
}

/// How to verify a JWS.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Acceptable algorithms.
    pub algorithms: Algorithms,
    /// `crit` extension names the caller understands and checks itself. `b64` (RFC 7797) is
    /// always understood except where a JWT is expected.
    pub crit: Vec<String>,
    /// Maximum serialized length, checked before decoding.
    pub max_len: usize,
    /// Which signatures of a multi-signature JWS must verify.
    pub policy: SignaturePolicy,
}

impl VerifyOptions {
    /// Options accepting exactly `algorithms`.
    pub fn new(algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        Self::with(Algorithms::Only(algorithms.into_iter().collect()))
    }

    /// Options accepting only the algorithm each key determines.
    pub fn from_key() -> Self {
        Self::with(Algorithms::FromKey)
    }

    fn with(algorithms: Algorithms) -> Self {
        Self {
            algorithms,
            crit: Vec::new(),
            max_len: DEFAULT_MAX_LEN,
            policy: SignaturePolicy::All,
        }
    }
}

/// The keys a verification may use: one key, or a set to select from by `kid`/`alg`.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// A single key.
    One(&'a Jwk),
    /// A set; the key is selected per signature.
    Set(&'a JwkSet),
}

impl<'a> From<&'a Jwk> for Keys<'a> {
    fn from(k: &'a Jwk) -> Self {
        Self::One(k)
    }
}

impl<'a> From<&'a JwkSet> for Keys<'a> {
    fn from(s: &'a JwkSet) -> Self {
        Self::Set(s)
    }
}

/// A validated JOSE header: the protected members and, in JSON serializations, the
/// unprotected ones (disjoint from the protected).
#[derive(Debug, Clone)]
pub struct Header {
    alg: Algorithm,
    b64: bool,
    protected: Map<String, Value>,
    unprotected: Map<String, Value>,
}

impl Header {
    /// The signature algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Any member, protected or not.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.protected
            .get(name)
            .or_else(|| self.unprotected.get(name))
    }

    fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.get_str("kid")
    }

    /// The `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.get_str("typ")
    }

    /// The `cty`.
    pub fn cty(&self) -> Option<&str> {
        self.get_str("cty")
    }

    /// False when the payload is unencoded (RFC 7797 `b64: false`).
    pub fn b64(&self) -> bool {
        self.b64
    }

    /// The integrity-protected members.
    pub fn protected(&self) -> &Map<String, Value> {
        &self.protected
    }

    /// The unprotected members (empty in the compact serialization).
    pub fn unprotected(&self) -> &Map<String, Value> {
        &self.unprotected
    }

    /// Validates a header per RFC 7515 §4-5 and RFC 7797 §3, §6.
    ///
    /// `understood` lists the `crit` names the caller processes; `b64` is accepted only when
    /// `allow_b64` (a JWT never allows it).
    pub(crate) fn parse(
        protected: Map<String, Value>,
        unprotected: Map<String, Value>,
        understood: &[String],
        allow_b64: bool,
    ) -> Result<Self> {
        if let Some(dup) = protected.keys().find(|k| unprotected.contains_key(*k)) {
            return Err(err!(
                JwsInvalid,
                "header member {dup:?} is both protected and unprotected"
            ));
        }
        for name in ["kid", "typ", "cty"] {
            if let Some(v) = protected.get(name).or_else(|| unprotected.get(name)) {
                if !v.is_string() {
                    return Err(err!(JwsInvalid, "header member {name:?} must be a string"));
                }
            }
        }
        let alg = match protected.get("alg").or_else(|| unprotected.get("alg")) {
            Some(Value::String(s)) => s.parse::<Algorithm>()?,
            Some(_) => return Err(err!(JwsInvalid, "\"alg\" must be a string")),
            None => return Err(err!(JwsInvalid, "missing \"alg\"")),
        };
        let crit = crate::crit::check(
            &protected,
            unprotected.contains_key("crit"),
            understood,
            allow_b64,
        )?;
        if unprotected.contains_key("b64") {
            return Err(err!(JwsInvalid, "\"b64\" must be integrity protected"));
        }
        let b64 = match protected.get("b64") {
            None => true,
            Some(_) if !allow_b64 => return Err(err!(JwsInvalid, "\"b64\" is not allowed here")),
            Some(Value::Bool(b)) => {
                // RFC 7797 §6: a verifier that does not know b64 must fail, so it must be critical.
                if !crit.contains(&"b64") {
                    return Err(err!(CritInvalid, "\"b64\" must be listed in \"crit\""));
                }
                *b
            }
            Some(_) => return Err(err!(JwsInvalid, "\"b64\" must be a boolean")),
        };
        Ok(Self {
            alg,
            b64,
            protected,
            unprotected,
        })
    }
}

/// Picks the key for one signature and enforces the algorithm policy.
pub(crate) fn select_key<'k>(
    keys: Keys<'k>,
    header: &Header,
    options: &VerifyOptions,
) -> Result<&'k Jwk> {
    let alg = header.alg();
    if let Algorithms::Only(list) = &options.algorithms {
        if !list.contains(&alg) {
            return Err(err!(AlgNotAllowed, "{alg} is not an allowed algorithm"));
        }
    }
    let key = match keys {
        Keys::One(key) => {
            key.check(alg, KeyOperation::Verify)
                .map_err(|e| match e.code() {
                    // The token asks for an algorithm this key cannot serve: a rejected token.
                    crate::ErrorCode::KeyUnsuitable => {
                        err!(AlgNotAllowed, "{alg} does not fit the key: {}", e.reason())
                    }
                    _ => e,
                })?;
            key
        }
        Keys::Set(set) => set
            .select(header.kid(), alg, KeyOperation::Verify)
            .map_err(|e| match e.code() {
                crate::ErrorCode::KeyUnsuitable => {
                    err!(AlgNotAllowed, "{alg} does not fit the key: {}", e.reason())
                }
                _ => e,
            })?,
    };
    if options.algorithms == Algorithms::FromKey {
        match key.signing_algorithm() {
            Some(own) if own == alg => {}
            Some(own) => return Err(err!(AlgNotAllowed, "the key is for {own}, the token uses {alg}")),
            None => {
                return Err(err!(
                    InvalidOptions,
                    "the key does not determine an algorithm: give it an \"alg\" or list the allowed algorithms"
                ))
            }
        }
    }
    Ok(key)
}

/// Builds `ASCII(protected) || '.' || payload-part` (RFC 7515 §5.1 step 5, RFC 7797 §3).
pub(crate) fn signing_input(protected_b64: &str, payload: &[u8], b64: bool) -> Vec<u8> {
    let payload_len = if b64 {
        payload.len().div_ceil(3) * 4
    } else {
        payload.len()
    };
    let mut input = Vec::with_capacity(protected_b64.len() + 1 + payload_len);
    input.extend_from_slice(protected_b64.as_bytes());
    input.push(b'.');
    if b64 {
        let mut s = String::with_capacity(payload_len);
        crate::b64::encode_into(payload, &mut s);
        input.extend_from_slice(s.as_bytes());
    } else {
        input.extend_from_slice(payload);
    }
    input
}

/// What a signer puts in the header besides `alg` (and `kid`, taken from the key when absent).
#[derive(Debug, Clone, Default)]
pub struct HeaderParams {
    /// Protected members.
    pub protected: Map<String, Value>,
    /// Unprotected members (JSON serializations only).
    pub unprotected: Map<String, Value>,
}

impl HeaderParams {
    /// Adds a protected member.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.protected.insert(name.to_owned(), value.into());
        self
    }
}

/// Produces the validated protected header for signing, and its encoded form.
pub(crate) fn prepare_header(
    key: &Jwk,
    alg: Algorithm,
    params: &HeaderParams,
    allow_b64: bool,
) -> Result<(Header, String)> {
    let mut protected = params.protected.clone();
    protected.insert("alg".into(), alg.name().into());
    if let Some(kid) = key.kid() {
        if !protected.contains_key("kid") && !params.unprotected.contains_key("kid") {
            protected.insert("kid".into(), kid.into());
        }
    }
    // Names the signer put in `crit` are by definition understood by the signer.
    let understood = crate::crit::declared(&protected);
    let encoded = crate::b64::encode(Value::Object(protected.clone()).to_string());
    let header = Header::parse(
        protected,
        params.unprotected.clone(),
        &understood,
        allow_b64,
    )?;
    Ok((header, encoded))
}
