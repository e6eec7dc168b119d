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

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::error::{err, Result};
use crate::json::{Key, SkipVisitor, StrictSeed};
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
    protected: Members,
    unprotected: Members,
}

/// One part of a validated header (protected or unprotected). The members a verification
/// reads are typed fields, so the usual header (`alg`, `kid`, `typ`) builds no map; all other
/// members are kept as JSON. The map of the whole part is assembled from these fields on first
/// request, never by parsing again, so it holds exactly what was validated.
#[derive(Debug, Clone)]
struct Members {
    /// Whether `alg` is in this part. Its value is [`Header::alg`]'s name, which is exactly
    /// the text that named it: algorithm names are matched exactly.
    alg: bool,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    /// The members other than `alg`, `kid`, `typ` and `cty`.
    rest: Map<String, Value>,
    map: OnceLock<Map<String, Value>>,
}

impl Members {
    /// The whole part: `alg`, `kid`, `typ`, `cty`, then the others as read (an order only a
    /// `preserve_order` build can see; signing serializes the signer's own map).
    fn map(&self, alg: Algorithm) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            let typed = [("kid", &self.kid), ("typ", &self.typ), ("cty", &self.cty)];
            let alg = self
                .alg
                .then(|| ("alg".to_owned(), Value::from(alg.name())));
            alg.into_iter()
                .chain(typed.into_iter().filter_map(|(name, value)| {
                    Some((name.to_owned(), Value::from(value.as_deref()?)))
                }))
                .chain(self.rest.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect()
        })
    }
}

/// The value of `alg`, `kid`, `typ` or `cty` as read, before the rules judge it.
#[derive(Debug)]
enum Member<'a> {
    Str(Cow<'a, str>),
    /// Present, and not a string.
    Other,
}

impl<'a> Member<'a> {
    fn from_value(value: Value) -> Self {
        match value {
            Value::String(s) => Self::Str(Cow::Owned(s)),
            _ => Self::Other,
        }
    }
}

/// One header part as read from text or taken from a map, before the rules judge it.
#[derive(Debug, Default)]
struct Read<'a> {
    alg: Option<Member<'a>>,
    kid: Option<Member<'a>>,
    typ: Option<Member<'a>>,
    cty: Option<Member<'a>>,
    /// Every other member.
    rest: Map<String, Value>,
}

impl<'a> Read<'a> {
    fn from_map(mut map: Map<String, Value>) -> Self {
        let mut take = |name: &str| map.remove(name).map(Member::from_value);
        let (alg, kid, typ, cty) = (take("alg"), take("kid"), take("typ"), take("cty"));
        Self {
            alg,
            kid,
            typ,
            cty,
            rest: map,
        }
    }

    /// Where the member `name` goes when it is one of the typed ones.
    fn slot(&mut self, name: &str) -> Option<&mut Option<Member<'a>>> {
        match name {
            "alg" => Some(&mut self.alg),
            "kid" => Some(&mut self.kid),
            "typ" => Some(&mut self.typ),
            "cty" => Some(&mut self.cty),
            _ => None,
        }
    }
}

/// A `kid`, `typ` or `cty` member, which must be a string.
fn string(member: Option<Member<'_>>, name: &str) -> Result<Option<String>> {
    match member {
        None => Ok(None),
        Some(Member::Str(s)) => Ok(Some(s.into_owned())),
        Some(Member::Other) => Err(err!(JwsInvalid, "header member {name:?} must be a string")),
    }
}

impl Header {
    /// The signature algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Any member, protected or not.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.protected()
            .get(name)
            .or_else(|| self.unprotected().get(name))
    }

    /// The `kid`.
    pub fn kid(&self) -> Option<&str> {
        (self.protected.kid.as_deref()).or(self.unprotected.kid.as_deref())
    }

    /// The `typ`.
    pub fn typ(&self) -> Option<&str> {
        (self.protected.typ.as_deref()).or(self.unprotected.typ.as_deref())
    }

    /// The `cty`.
    pub fn cty(&self) -> Option<&str> {
        (self.protected.cty.as_deref()).or(self.unprotected.cty.as_deref())
    }

    /// False when the payload is unencoded (RFC 7797 `b64: false`).
    pub fn b64(&self) -> bool {
        self.b64
    }

    /// The integrity-protected members.
    pub fn protected(&self) -> &Map<String, Value> {
        self.protected.map(self.alg)
    }

    /// The unprotected members (empty in the compact serialization).
    pub fn unprotected(&self) -> &Map<String, Value> {
        self.unprotected.map(self.alg)
    }

    /// Validates a compact JWS's decoded protected header (no unprotected members), read in
    /// one strict pass over the text.
    pub(crate) fn parse_compact(
        json: Vec<u8>,
        understood: &[String],
        allow_b64: bool,
    ) -> Result<Self> {
        let protected = read_text(&json)?;
        Self::judge(protected, Read::default(), understood, allow_b64)
    }

    /// Validates a header given as maps (JSON serializations, signing) under the rules of
    /// [`Self::judge`], as [`Self::parse_compact`] does for text.
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
        Self::judge(
            Read::from_map(protected),
            Read::from_map(unprotected),
            understood,
            allow_b64,
        )
    }

    /// The header rules (RFC 7515 §4-5, RFC 7797 §3, §6), however the header was read. The
    /// parts are disjoint: a compact header has no unprotected part, and `parse` checks maps.
    fn judge(
        protected: Read<'_>,
        unprotected: Read<'_>,
        understood: &[String],
        allow_b64: bool,
    ) -> Result<Self> {
        let kid = (
            string(protected.kid, "kid")?,
            string(unprotected.kid, "kid")?,
        );
        let typ = (
            string(protected.typ, "typ")?,
            string(unprotected.typ, "typ")?,
        );
        let cty = (
            string(protected.cty, "cty")?,
            string(unprotected.cty, "cty")?,
        );
        let alg_protected = protected.alg.is_some();
        let alg = match protected.alg.or(unprotected.alg) {
            Some(Member::Str(s)) => s.parse::<Algorithm>()?,
            Some(Member::Other) => return Err(err!(JwsInvalid, "\"alg\" must be a string")),
            None => return Err(err!(JwsInvalid, "missing \"alg\"")),
        };
        // `crit` may list no registered name, so the members it may list are all in `rest`.
        let crit = crate::crit::check(
            &protected.rest,
            unprotected.rest.contains_key("crit"),
            understood,
            allow_b64,
        )?;
        if unprotected.rest.contains_key("b64") {
            return Err(err!(JwsInvalid, "\"b64\" must be integrity protected"));
        }
        let b64 = match protected.rest.get("b64") {
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
        let part = |alg, kid, typ, cty, rest| Members {
            alg,
            kid,
            typ,
            cty,
            rest,
            map: OnceLock::new(),
        };
        // `alg` is in exactly one part: the protected one if there, else the unprotected.
        Ok(Self {
            alg,
            b64,
            protected: part(alg_protected, kid.0, typ.0, cty.0, protected.rest),
            unprotected: part(!alg_protected, kid.1, typ.1, cty.1, unprotected.rest),
        })
    }
}

/// Reads a header's text under exactly the rules of [`crate::json::parse_object`], with the
/// same error for the same input (syntax, duplicate names also when spelled with escapes,
/// nesting depth, not an object), keeping `alg`, `kid`, `typ` and `cty` as strings borrowed
/// from `json` (unless they have escapes) and every other member as JSON.
fn read_text(json: &[u8]) -> Result<Read<'_>> {
    // serde_json reads valid UTF-8 the same from a `str` or a slice; from a `str` it need not
    // check each string again. Invalid UTF-8 is read from the slice, as `json::parse` does,
    // to be refused with its message.
    match std::str::from_utf8(json) {
        Ok(text) => read_with(serde_json::Deserializer::from_str(text)),
        Err(_) => read_with(serde_json::Deserializer::from_slice(json)),
    }
}

fn read_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<Read<'de>> {
    let read = serde::Deserializer::deserialize_any(&mut de, crate::json::TopObject(TextVisitor))
        .map_err(|e| err!(JsonInvalid, "{e}"))?;
    de.end()
        .map_err(|_| err!(JsonInvalid, "trailing characters after the JSON value"))?;
    read.ok_or_else(|| err!(JsonInvalid, "JWS header is not a JSON object"))
}

/// The header object's members ([`crate::json::TopObject`] reads the rest of the text).
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Read<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // `StrictVisitor::visit_map`'s checks in its order (the name, then the depth), with
        // its message. A name is either a typed slot or a key of `rest`, so a slot already
        // filled or a key already there is exactly a repeated name, however it was spelled.
        let top = SkipVisitor { depth: 0 };
        let mut read = Read::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = || A::Error::custom(format_args!("duplicate member name {key:?}"));
            if let Some(slot) = read.slot(&key) {
                if slot.is_some() {
                    return Err(repeated());
                }
                let depth = top.nested::<A::Error>()?.depth;
                *slot = Some(map.next_value_seed(MemberSeed { depth })?);
            } else {
                if read.rest.contains_key(&*key) {
                    return Err(repeated());
                }
                let depth = top.nested::<A::Error>()?.depth;
                let value = map.next_value_seed(StrictSeed { depth })?;
                read.rest.insert(key.into_owned(), value);
            }
        }
        Ok(read)
    }
}

/// The value of `alg`, `kid`, `typ` or `cty`: a string kept, anything else walked under the
/// strict rules and recorded as [`Member::Other`].
struct MemberSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Member<'de>, E> {
        SkipVisitor { depth: self.depth }.visit_f64(v)?;
        Ok(Member::Other)
    }
    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        SkipVisitor { depth: self.depth }.visit_seq(seq)?;
        Ok(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        SkipVisitor { depth: self.depth }.visit_map(map)?;
        Ok(Member::Other)
    }
}

/// Picks the key for one signature and enforces the algorithm policy.
pub(crate) fn select_key<'k>(
    keys: Keys<'k>,
    header: &Header,
    algorithms: &Algorithms,
) -> Result<&'k Jwk> {
    let alg = header.alg();
    if let Algorithms::Only(list) = algorithms {
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
    if *algorithms == Algorithms::FromKey {
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
    if b64 {
        let mut input = String::with_capacity(protected_b64.len() + 1 + payload_len);
        input.push_str(protected_b64);
        input.push('.');
        crate::b64::encode_into(payload, &mut input);
        return input.into_bytes();
    }
    let mut input = Vec::with_capacity(protected_b64.len() + 1 + payload_len);
    input.extend_from_slice(protected_b64.as_bytes());
    input.push(b'.');
    input.extend_from_slice(payload);
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
    // The signed bytes are the members in the order the signer gave them (with
    // `preserve_order`); the header keeps them by kind. Serializing a map of string keys cannot
    // fail, so doing it first changes no error.
    let json = serde_json::to_vec(&protected)
        .map_err(|e| err!(InvalidOptions, "the header cannot be serialized: {e}"))?;
    let header = Header::parse(
        protected,
        params.unprotected.clone(),
        &understood,
        allow_b64,
    )?;
    Ok((header, crate::b64::encode(json)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::ErrorCode::{CritInvalid, JsonInvalid, JwsInvalid, NotSupported};

    /// The compact reading of `text`, and the reading of the same header as a map (the JSON
    /// serializations' way, after `json::parse_object`).
    fn both(
        text: &str,
        understood: &[String],
        allow_b64: bool,
    ) -> (Result<Header>, Result<Header>) {
        let compact = Header::parse_compact(text.as_bytes().to_vec(), understood, allow_b64);
        let map = crate::json::parse_object(text.as_bytes(), "JWS header")
            .and_then(|m| Header::parse(m, Map::new(), understood, allow_b64));
        (compact, map)
    }

    /// Every accessor agrees, for member names in and out of the typed set.
    fn assert_same(c: &Header, m: &Header, text: &str) {
        assert_eq!(c.alg(), m.alg(), "{text}");
        assert_eq!(c.b64(), m.b64(), "{text}");
        assert_eq!(c.kid(), m.kid(), "{text}");
        assert_eq!(c.typ(), m.typ(), "{text}");
        assert_eq!(c.cty(), m.cty(), "{text}");
        assert_eq!(c.protected(), m.protected(), "{text}");
        assert_eq!(c.unprotected(), m.unprotected(), "{text}");
        for name in [
            "alg", "kid", "typ", "cty", "crit", "b64", "x5t", "jwk", "", "ALG", "kid ", "x",
        ] {
            assert_eq!(c.get(name), m.get(name), "{text} {name}");
        }
    }

    /// The protected map holds exactly what the text says, member for member.
    fn assert_protected_is(h: &Header, text: &str) {
        let expected = crate::json::parse_object(text.as_bytes(), "JWS header").unwrap();
        assert_eq!(h.protected(), &expected, "{text}");
        assert!(h.unprotected().is_empty(), "{text}");
    }

    #[test]
    fn the_usual_header_is_read_into_typed_members() {
        let text = r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","cty":"JWT"}"#;
        let h = Header::parse_compact(text.as_bytes().to_vec(), &[], false).unwrap();
        assert_eq!(h.alg(), Algorithm::ES256);
        assert_eq!(h.kid(), Some("k1"));
        assert_eq!(h.typ(), Some("at+jwt"));
        assert_eq!(h.cty(), Some("JWT"));
        assert!(h.b64());
        assert_eq!(h.get("alg"), Some(&Value::from("ES256")));
        assert_eq!(h.get("x5t"), None);
        assert_protected_is(&h, text);
        // Only what is there: no member appears absent or present by accident.
        let h = Header::parse_compact(br#" { "alg" : "HS256" } "#.to_vec(), &[], false).unwrap();
        assert_eq!((h.kid(), h.typ(), h.cty()), (None, None, None));
        assert_eq!(h.get("kid"), None);
        assert_eq!(h.protected().len(), 1);
    }

    #[test]
    fn escapes_in_names_and_values_read_as_their_unescaped_text() {
        let text = r#"{"\u0061lg":"HS384","k\u0069d":"a\"b\\c","typ":"at\u002bjwt"}"#;
        let h = Header::parse_compact(text.as_bytes().to_vec(), &[], false).unwrap();
        assert_eq!(h.alg(), Algorithm::HS384);
        assert_eq!(h.kid(), Some("a\"b\\c"));
        assert_eq!(h.typ(), Some("at+jwt"));
        assert_protected_is(&h, text);
        // An escaped algorithm name is still matched exactly.
        let e = Header::parse_compact(br#"{"alg":"\u0068s256"}"#.to_vec(), &[], false).unwrap_err();
        assert_eq!(e, err!(NotSupported, "unsupported JWS algorithm \"hs256\""));
    }

    #[test]
    fn duplicate_members_are_refused_however_spelled() {
        for (text, name) in [
            (r#"{"alg":"HS256","alg":"none"}"#, "alg"),
            (r#"{"alg":"HS256","\u0061lg":"HS384"}"#, "alg"),
            (r#"{"\u0061lg":"HS256","alg":"HS256"}"#, "alg"),
            (r#"{"alg":"HS256","kid":"k","ki\u0064":"k"}"#, "kid"),
            (r#"{"alg":"HS256","typ":"JWT","typ":5}"#, "typ"),
            (r#"{"alg":"HS256","x":1,"\u0078":1}"#, "x"),
            (r#"{"alg":"HS256","x":{"a":1,"a":2}}"#, "a"),
            // Inside a common member that is not a string, before its type is judged.
            (r#"{"alg":"HS256","kid":{"a":1,"\u0061":2}}"#, "a"),
        ] {
            let e = Header::parse_compact(text.as_bytes().to_vec(), &[], false).unwrap_err();
            assert_eq!(e.code(), JsonInvalid, "{text}: {e}");
            let expected = format!("duplicate member name {name:?}");
            assert!(e.reason().starts_with(&expected), "{text}: {e}");
        }
    }

    #[test]
    fn common_members_of_other_types_are_refused_by_name() {
        for (text, reason) in [
            (
                r#"{"alg":"HS256","kid":5}"#,
                r#"header member "kid" must be a string"#,
            ),
            (
                r#"{"alg":"HS256","kid":null}"#,
                r#"header member "kid" must be a string"#,
            ),
            (
                r#"{"alg":"HS256","typ":["JWT"]}"#,
                r#"header member "typ" must be a string"#,
            ),
            (
                r#"{"alg":"HS256","cty":{"a":1}}"#,
                r#"header member "cty" must be a string"#,
            ),
            (
                r#"{"alg":"HS256","cty":1.5}"#,
                r#"header member "cty" must be a string"#,
            ),
            // `kid`, `typ`, `cty` are judged before `alg`, whatever the order in the text.
            (
                r#"{"alg":1,"typ":true}"#,
                r#"header member "typ" must be a string"#,
            ),
            (r#"{"alg":["HS256"]}"#, r#""alg" must be a string"#),
            (r#"{"kid":"k"}"#, r#"missing "alg""#),
        ] {
            let e = Header::parse_compact(text.as_bytes().to_vec(), &[], false).unwrap_err();
            assert_eq!(e, err!(JwsInvalid, "{reason}"), "{text}");
        }
    }

    #[test]
    fn json_errors_come_before_header_rules() {
        let deep = format!(
            r#"{{"alg":"HS256","kid":{}{}}}"#,
            "[".repeat(crate::json::MAX_DEPTH),
            "]".repeat(crate::json::MAX_DEPTH)
        );
        for (text, reason) in [
            (
                &br#"{"alg":"HS256"} x"#[..],
                "trailing characters after the JSON value",
            ),
            (br#"["alg"]"#, "JWS header is not a JSON object"),
            (br#""alg""#, "JWS header is not a JSON object"),
            (br#"{"alg":"none","kid":5"#, "EOF while parsing an object"),
            (deep.as_bytes(), "nesting deeper than 32"),
            (
                b"{\"alg\":\"HS256\",\"kid\":\"\xff\"}",
                "invalid unicode code point",
            ),
            (b"{\"alg\":\"HS256\",\xff}", "key must be a string"),
        ] {
            let e = Header::parse_compact(text.to_vec(), &[], false).unwrap_err();
            assert_eq!(e.code(), JsonInvalid, "{text:?}: {e}");
            assert!(e.reason().starts_with(reason), "{text:?}: {e}");
            // Word for word what the strict parser says, position included.
            let strict = crate::json::parse_object(text, "JWS header").unwrap_err();
            assert_eq!(e, strict, "{text:?}");
        }
    }

    /// A signed header is the signer's members in the signer's order, and verifies to a
    /// header holding exactly them.
    #[test]
    fn signing_serializes_the_signers_members() {
        let key = Jwk::generate(Algorithm::HS256, None, Some("k1".into())).unwrap();
        let params = HeaderParams::default().with("typ", "JWT").with("x", 1);
        let token = compact::sign(b"hi", &key, Algorithm::HS256, &params).unwrap();
        let mut expected = Map::new();
        for (name, value) in [
            ("typ", "JWT".into()),
            ("x", 1.into()),
            ("alg", "HS256".into()),
        ] {
            expected.insert(name.to_owned(), value);
        }
        expected.insert("kid".to_owned(), "k1".into());
        let (header_b64, _) = token.split_once('.').unwrap();
        assert_eq!(
            crate::b64::decode(header_b64).unwrap(),
            serde_json::to_vec(&expected).unwrap()
        );
        let verified =
            compact::verify(&token, &key, &VerifyOptions::new([Algorithm::HS256])).unwrap();
        assert_eq!(verified.header.protected(), &expected);
        assert_eq!(verified.header.kid(), Some("k1"));
        assert_eq!(verified.payload, b"hi");
    }

    /// The compact reading and the map reading give the same header, or the same error, for
    /// every header: the rules are one function and the text reader keeps `json::parse`'s.
    #[test]
    fn text_and_map_readings_agree() {
        let exp = ["exp".to_owned()];
        let none: &[String] = &[];
        /// The header, the `crit` names understood, whether `b64` is allowed, and the
        /// expected outcome: `Ok(())` or the error code.
        type Case<'a> = (
            &'a str,
            &'a [String],
            bool,
            std::result::Result<(), crate::ErrorCode>,
        );
        let cases: [Case<'_>; 24] = [
            (r#"{"alg":"HS256"}"#, none, false, Ok(())),
            (
                r#"{"typ":"JWT","cty":"c","alg":"ES256","kid":"k1"}"#,
                none,
                false,
                Ok(()),
            ),
            (r#"{"alg":"HS256","kid":"a\"b"}"#, none, false, Ok(())),
            (
                r#"{"alg":"HS256","typ":"at\u002bjwt"}"#,
                none,
                false,
                Ok(()),
            ),
            (r#"{"\u0061lg":"HS256"}"#, none, false, Ok(())),
            (
                r#"{"alg":"HS256","foo":"bar","x5t":"abc"}"#,
                none,
                false,
                Ok(()),
            ),
            (
                r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AA"}}"#,
                none,
                false,
                Ok(()),
            ),
            (
                r#"{"alg":"HS256","kid":"k","kid":"k"}"#,
                none,
                false,
                Err(JsonInvalid),
            ),
            (
                r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
                none,
                false,
                Err(JsonInvalid),
            ),
            (r#"{"alg":"HS256"} x"#, none, false, Err(JsonInvalid)),
            (r#"["alg"]"#, none, false, Err(JsonInvalid)),
            (r#"{"alg":"HS256","typ":1}"#, none, false, Err(JwsInvalid)),
            (
                r#"{"alg":"HS256","kid":["k"]}"#,
                none,
                false,
                Err(JwsInvalid),
            ),
            ("{}", none, false, Err(JwsInvalid)),
            (r#"{"alg":"none"}"#, none, false, Err(NotSupported)),
            (r#"{"alg":"XS256"}"#, none, false, Err(NotSupported)),
            (
                r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                none,
                false,
                Err(CritInvalid),
            ),
            (
                r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                &exp,
                false,
                Ok(()),
            ),
            (
                r#"{"alg":"HS256","crit":["exp"]}"#,
                &exp,
                false,
                Err(CritInvalid),
            ),
            (
                r#"{"alg":"HS256","crit":["kid"],"kid":"k"}"#,
                none,
                false,
                Err(CritInvalid),
            ),
            (
                r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                none,
                true,
                Ok(()),
            ),
            (
                r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                none,
                false,
                Err(CritInvalid),
            ),
            (
                r#"{"alg":"HS256","b64":false}"#,
                none,
                true,
                Err(CritInvalid),
            ),
            (
                r#"{"alg":"HS256","crit":["b64"],"b64":0}"#,
                none,
                true,
                Err(JwsInvalid),
            ),
        ];
        for (text, understood, allow_b64, expected) in cases {
            match both(text, understood, allow_b64) {
                (Ok(c), Ok(m)) => {
                    assert_eq!(expected, Ok(()), "{text} accepted");
                    assert_same(&c, &m, text);
                    assert_protected_is(&c, text);
                }
                (Err(c), Err(m)) => {
                    assert_eq!(Err(c.code()), expected, "{text}: {c}");
                    assert_eq!(c, m, "{text}");
                }
                (c, m) => panic!("{text}: compact {c:?}, map {m:?}"),
            }
        }
        let h = both(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, none, true)
            .0
            .unwrap();
        assert!(!h.b64());
    }

    /// In the JSON serializations the typed members may be unprotected; each part's map keeps
    /// its own members.
    #[test]
    fn unprotected_members_are_kept_apart() {
        let map = |text: &str| crate::json::parse_object(text.as_bytes(), "h").unwrap();
        let h = Header::parse(
            map(r#"{"typ":"JWT","x":1}"#),
            map(r#"{"alg":"ES256","kid":"k","y":2}"#),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(h.alg(), Algorithm::ES256);
        assert_eq!((h.kid(), h.typ()), (Some("k"), Some("JWT")));
        assert_eq!(h.protected(), &map(r#"{"typ":"JWT","x":1}"#));
        assert_eq!(h.unprotected(), &map(r#"{"alg":"ES256","kid":"k","y":2}"#));
        assert_eq!(h.get("y"), Some(&Value::from(2)));
        let e =
            Header::parse(map(r#"{"alg":"ES256"}"#), map(r#"{"kid":5}"#), &[], true).unwrap_err();
        assert_eq!(
            e,
            err!(JwsInvalid, "header member \"kid\" must be a string")
        );
        let e = Header::parse(
            map(r#"{"alg":"ES256","kid":"k"}"#),
            map(r#"{"kid":"k"}"#),
            &[],
            true,
        )
        .unwrap_err();
        assert_eq!(
            e,
            err!(
                JwsInvalid,
                "header member \"kid\" is both protected and unprotected"
            )
        );
        let e = Header::parse(map(r#"{"alg":"ES256"}"#), map(r#"{"b64":true}"#), &[], true)
            .unwrap_err();
        assert_eq!(e, err!(JwsInvalid, "\"b64\" must be integrity protected"));
        let e = Header::parse(
            map(r#"{"alg":"ES256"}"#),
            map(r#"{"crit":["x"]}"#),
            &[],
            true,
        )
        .unwrap_err();
        assert_eq!(e, err!(CritInvalid, "\"crit\" must be integrity protected"));
    }
}
