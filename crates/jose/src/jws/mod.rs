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

use std::sync::OnceLock;

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
    protected: Protected,
    unprotected: Map<String, Value>,
}

/// The protected members.
#[derive(Debug, Clone)]
enum Protected {
    Map(Map<String, Value>),
    /// The usual compact header, nothing but plain-string `alg`, `kid`, `typ` and `cty`: kept
    /// as text, with the map built only if asked for. Any other header takes the `Map` path.
    Simple {
        json: String,
        /// Where the values of the [`SIMPLE`] members lie in `json`, in that order.
        spans: Spans,
        /// Built from `spans` (not parsed again), so it holds exactly what was validated.
        map: OnceLock<Map<String, Value>>,
    },
}

/// The members a [`Protected::Simple`] header may have, `alg` first.
const SIMPLE: [&str; 4] = ["alg", "kid", "typ", "cty"];

impl Header {
    /// The signature algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Any member, protected or not.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.protected()
            .get(name)
            .or_else(|| self.unprotected.get(name))
    }

    fn get_str(&self, name: &str) -> Option<&str> {
        if let Protected::Simple { json, spans, .. } = &self.protected {
            // A simple header has no members but these (and no unprotected ones), so any
            // other name is absent here as it is in the map.
            let span = SIMPLE
                .iter()
                .zip(spans)
                .find_map(|(n, span)| (*n == name).then_some(*span))??;
            return Some(simple_value(json, span));
        }
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
        match &self.protected {
            Protected::Map(map) => map,
            // What `simple` validated is exactly these members with these unescaped string
            // values, so the map is built from them rather than by a second parse that could
            // disagree (members in text order, as a parse would insert them).
            Protected::Simple { json, spans, map } => map.get_or_init(|| {
                let mut members: Vec<(&str, (usize, usize))> = SIMPLE
                    .iter()
                    .zip(spans)
                    .filter_map(|(n, span)| Some((*n, (*span)?)))
                    .collect();
                members.sort_unstable_by_key(|(_, (start, _))| *start);
                members
                    .into_iter()
                    .map(|(n, span)| (n.to_owned(), Value::from(simple_value(json, span))))
                    .collect()
            }),
        }
    }

    /// Whether this header took the fast path (tests only).
    #[cfg(test)]
    pub(crate) fn is_simple(&self) -> bool {
        matches!(self.protected, Protected::Simple { .. })
    }

    /// The unprotected members (empty in the compact serialization).
    pub fn unprotected(&self) -> &Map<String, Value> {
        &self.unprotected
    }

    /// Validates a compact JWS's decoded protected header (no unprotected members).
    pub(crate) fn parse_compact(
        json: Vec<u8>,
        understood: &[String],
        allow_b64: bool,
    ) -> Result<Self> {
        let json = match String::from_utf8(json) {
            Ok(text) => match Self::simple(text) {
                Ok(header) => return Ok(header),
                Err(text) => text.into_bytes(),
            },
            Err(e) => e.into_bytes(),
        };
        let protected = crate::json::parse_object(&json, "JWS header")?;
        Self::parse(protected, Map::new(), understood, allow_b64)
    }

    /// The fast path for the usual header. Anything unusual (other members, escapes,
    /// duplicates, a refused `alg`) gives the text back to go through [`Self::parse`], which
    /// alone decides how to report it; `crit` and `b64` are never simple, so their rules
    /// stay in one place.
    fn simple(json: String) -> Result<Self, String> {
        let Some((spans, Some(alg))) = simple_members(&json) else {
            return Err(json);
        };
        Ok(Self {
            alg,
            b64: true,
            protected: Protected::Simple {
                json,
                spans,
                map: OnceLock::new(),
            },
            unprotected: Map::new(),
        })
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
            protected: Protected::Map(protected),
            unprotected,
        })
    }
}

/// Where each [`SIMPLE`] member's value lies in the header text.
type Spans = [Option<(usize, usize)>; 4];

/// A simple header member's value. Its span was checked against `json` by
/// [`crate::json::span`] when recorded and `json` never changes, so one that does not
/// resolve is a bug; answering "absent" could drop a `kid` or `typ` the signer set, so it
/// stops instead (see [`crate::json::reread_failed`]).
fn simple_value(json: &str, (start, end): (usize, usize)) -> &str {
    match json.get(start..end) {
        Some(s) => s,
        None => crate::json::reread_failed("JWS header"),
    }
}

/// The spans of [`SIMPLE`] members in `json` and the parsed `alg`, if `json` is simple.
fn simple_members(json: &str) -> Option<(Spans, Option<Algorithm>)> {
    let mut de = serde_json::Deserializer::from_str(json);
    let found = serde::Deserializer::deserialize_map(&mut de, SimpleVisitor).ok()?;
    de.end().ok()?;
    let mut spans = [None; 4];
    for (slot, value) in spans.iter_mut().zip(found) {
        if let Some(v) = value {
            *slot = Some(crate::json::span(json, v)?);
        }
    }
    let alg = found
        .first()
        .copied()
        .flatten()
        .and_then(|a| a.parse().ok());
    Some((spans, alg))
}

/// Reads a header object whose members are all in [`SIMPLE`], once each, as strings without
/// escapes; fails (without a useful message: the caller falls back) on anything else.
struct SimpleVisitor;

impl<'de> serde::de::Visitor<'de> for SimpleVisitor {
    type Value = [Option<&'de str>; 4];

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a simple header")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut found = [None; 4];
        while let Some(key) = map.next_key::<&'de str>()? {
            let slot = SIMPLE
                .iter()
                .position(|n| *n == key)
                .and_then(|i| found.get_mut(i))
                .filter(|slot| slot.is_none())
                .ok_or_else(|| A::Error::custom("not simple"))?;
            *slot = Some(map.next_value::<&'de str>()?);
        }
        Ok(found)
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
    let header = Header::parse(
        protected,
        params.unprotected.clone(),
        &understood,
        allow_b64,
    )?;
    let json = serde_json::to_vec(header.protected())
        .map_err(|e| err!(InvalidOptions, "the header cannot be serialized: {e}"))?;
    Ok((header, crate::b64::encode(json)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    /// The fast path must yield what the `Map` path yields, and refuse what it refuses.
    #[test]
    fn simple_headers_match_the_full_parse() {
        for text in [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","cty":"JWT"}"#,
            r#" { "typ" : "JWT" , "alg" : "RS256" } "#,
            // Not simple: escapes, other members, duplicates, refused or missing alg.
            r#"{"alg":"HS256","kid":"a\"b"}"#,
            r#"{"alg":"HS256","x5t":"abc"}"#,
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"HS256","\u0061lg":"HS384"}"#,
            r#"{"alg":"none"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":"HS256","kid":5}"#,
            r#"{"alg":"HS256"} x"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"["alg"]"#,
        ] {
            let fast = Header::parse_compact(text.as_bytes().to_vec(), &[], false);
            let full = crate::json::parse_object(text.as_bytes(), "JWS header")
                .and_then(|m| Header::parse(m, Map::new(), &[], false));
            match (fast, full) {
                (Ok(f), Ok(s)) => {
                    assert_eq!(f.alg(), s.alg(), "{text}");
                    assert_eq!(f.b64(), s.b64(), "{text}");
                    assert_eq!(f.kid(), s.kid(), "{text}");
                    assert_eq!(f.typ(), s.typ(), "{text}");
                    assert_eq!(f.cty(), s.cty(), "{text}");
                    assert_eq!(f.protected(), s.protected(), "{text}");
                    assert_eq!(f.get("kid"), s.get("kid"), "{text}");
                }
                (Err(f), Err(s)) => assert_eq!(f, s, "{text}"),
                (f, s) => panic!("{text}: fast {:?}, full {:?}", f.is_ok(), s.is_ok()),
            }
        }
    }

    /// The fast path's result and the full parse's, for the same text.
    fn both(
        text: &str,
        understood: &[String],
        allow_b64: bool,
    ) -> (Result<Header>, Result<Header>) {
        let fast = Header::parse_compact(text.as_bytes().to_vec(), understood, allow_b64);
        let full = crate::json::parse_object(text.as_bytes(), "JWS header")
            .and_then(|m| Header::parse(m, Map::new(), understood, allow_b64));
        (fast, full)
    }

    /// Every accessor, for member names in and out of the simple set.
    fn assert_same(f: &Header, s: &Header, text: &str) {
        assert_eq!(f.alg(), s.alg(), "{text}");
        assert_eq!(f.b64(), s.b64(), "{text}");
        assert_eq!(f.protected(), s.protected(), "{text}");
        assert_eq!(f.unprotected(), s.unprotected(), "{text}");
        for name in [
            "alg", "kid", "typ", "cty", "crit", "b64", "x5t", "jwk", "", "ALG", "kid ", "x",
        ] {
            assert_eq!(f.get_str(name), s.get_str(name), "{text} {name}");
            assert_eq!(
                f.get_str(name),
                f.get(name).and_then(Value::as_str),
                "{text} {name}"
            );
            assert_eq!(f.get(name), s.get(name), "{text} {name}");
        }
    }

    #[test]
    fn the_fast_path_is_taken_for_the_usual_header() {
        let text = r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#;
        let (fast, full) = both(text, &[], false);
        let (fast, full) = (fast.unwrap(), full.unwrap());
        assert!(fast.is_simple(), "{text} must take the fast path");
        assert!(!full.is_simple());
        assert_eq!(fast.get_str("alg"), Some("HS256"));
        assert_eq!(fast.kid(), Some("k"));
        assert_eq!(fast.typ(), Some("at+jwt"));
        assert_eq!(fast.cty(), None);
        assert_same(&fast, &full, text);
        // The map keeps the members in text order, as a parse does.
        let text = r#"{"typ":"JWT","cty":"c","alg":"ES256","kid":"k1"}"#;
        let (fast, full) = both(text, &[], false);
        let (fast, full) = (fast.unwrap(), full.unwrap());
        assert!(fast.is_simple());
        assert_same(&fast, &full, text);
        assert_eq!(
            serde_json::to_string(fast.protected()).unwrap(),
            serde_json::to_string(full.protected()).unwrap()
        );
        assert_eq!(
            Header::parse_compact(b"{\"alg\":\"HS256\"}".to_vec(), &[], false)
                .unwrap()
                .get_str("alg"),
            Some("HS256")
        );
    }

    /// Whatever the fast path does not take goes to `Header::parse`, which accepts or refuses
    /// it exactly as it would have without the fast path.
    #[test]
    fn unusual_headers_take_the_full_parse() {
        use crate::ErrorCode::{CritInvalid, JsonInvalid, JwsInvalid};
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
        let cases: [Case<'_>; 16] = [
            (
                r#"{"alg":"HS256","kid":"k","kid":"k"}"#,
                none,
                false,
                Err(JsonInvalid),
            ),
            (
                r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
                none,
                false,
                Err(JsonInvalid),
            ),
            (
                r#"{"alg":"HS256","alg":"HS256"}"#,
                none,
                false,
                Err(JsonInvalid),
            ),
            (r#"{"alg":"HS256","typ":1}"#, none, false, Err(JwsInvalid)),
            (
                r#"{"alg":"HS256","cty":null}"#,
                none,
                false,
                Err(JwsInvalid),
            ),
            (
                r#"{"alg":"HS256","kid":["k"]}"#,
                none,
                false,
                Err(JwsInvalid),
            ),
            ("{}", none, false, Err(JwsInvalid)),
            (
                r#"{"alg":"HS256","typ":"at\u002bjwt"}"#,
                none,
                false,
                Ok(()),
            ),
            (r#"{"\u0061lg":"HS256"}"#, none, false, Ok(())),
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
            (r#"{"alg":"HS256","foo":"bar"}"#, none, false, Ok(())),
            (
                r#"{"alg":"HS256","kid":"k","typ":"JWT","x5t":"abc"}"#,
                none,
                false,
                Ok(()),
            ),
        ];
        for (text, understood, allow_b64, expected) in cases {
            let (fast, full) = both(text, understood, allow_b64);
            match (fast, full) {
                (Ok(f), Ok(s)) => {
                    assert_eq!(expected, Ok(()), "{text} accepted");
                    assert!(!f.is_simple(), "{text} must not take the fast path");
                    assert_same(&f, &s, text);
                }
                (Err(f), Err(s)) => {
                    assert_eq!(Err(f.code()), expected, "{text}: {f}");
                    assert_eq!(f, s, "{text}");
                }
                (f, s) => panic!("{text}: fast {:?}, full {:?}", f.is_ok(), s.is_ok()),
            }
        }
        // The escaped forms read as their unescaped values.
        let h = both(r#"{"alg":"HS256","typ":"at\u002bjwt"}"#, none, false)
            .0
            .unwrap();
        assert_eq!(h.typ(), Some("at+jwt"));
        let h = both(r#"{"\u0061lg":"HS384"}"#, none, false).0.unwrap();
        assert_eq!(h.alg(), Algorithm::HS384);
        assert_eq!(h.get_str("alg"), Some("HS384"));
        let h = both(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, none, true)
            .0
            .unwrap();
        assert!(!h.b64());
    }

    /// A simple header's recorded spans that do not resolve (a bug) give no answer rather than
    /// an absent `kid` or `typ`.
    #[test]
    #[should_panic(expected = "did not read back as validated")]
    fn a_simple_span_that_does_not_resolve_is_no_answer() {
        let mut h =
            Header::parse_compact(br#"{"alg":"HS256","typ":"at+jwt"}"#.to_vec(), &[], false)
                .unwrap();
        assert!(h.is_simple());
        if let Protected::Simple { json, .. } = &mut h.protected {
            json.truncate(10);
        }
        let _ = h.typ();
    }
}
