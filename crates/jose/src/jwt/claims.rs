//! The claims set, with registered claims type-checked on parse.
//!
//! Verification reads the registered claims in one pass over the claims text, which at the
//! same time enforces every rule of [`json::parse`] (duplicate names at any depth, the depth
//! limit), so a token is refused or accepted at verify time exactly as a full parse would.
//! The text is kept, and the full `Map` is built only if a caller asks for it.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{err, Result};
use crate::json::{self, Key, Seen, SkipVisitor};

/// A JWT claims set whose registered claims have their RFC 7519 §4.1 types.
///
/// A wrongly typed registered claim (`"exp":"123"`, `"aud":5`) is an error, never read as
/// absent: a validator that skips what it cannot parse is a validator that can be skipped.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The claims JSON as verified (empty when built from a map).
    json: String,
    /// The registered claims; their strings may point into `json`.
    reg: Registered,
    /// All claims, parsed from `json` on first request.
    map: OnceLock<Map<String, Value>>,
    /// `aud` as owned strings, made on first request.
    aud_list: OnceLock<Vec<String>>,
}

/// A string claim: where it lies in the claims text, or its value when it had escapes.
#[derive(Debug, Clone)]
enum Text {
    Span(usize, usize),
    Owned(Box<str>),
}

#[derive(Debug, Clone, Default)]
enum Aud {
    #[default]
    Absent,
    One(Text),
    Many(Vec<Text>),
}

fn numeric_date(map: &Map<String, Value>, name: &str) -> Result<Option<i64>> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let secs = n
                .as_i64()
                .or_else(|| n.as_f64().and_then(whole_seconds))
                .ok_or_else(|| err!(JwtClaimInvalid, "{name:?} is out of range"))?;
            Ok(Some(secs))
        }
        Some(_) => Err(err!(
            JwtClaimInvalid,
            "{name:?} must be a NumericDate (a JSON number)"
        )),
    }
}

/// NumericDate may carry fractions (RFC 7519 §2); whole seconds are what we compare.
fn whole_seconds(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

impl Claims {
    /// Type-checks the registered claims of `map` without copying anything (for signing).
    pub(crate) fn check(map: &Map<String, Value>) -> Result<()> {
        for name in ["iss", "sub", "jti"] {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(err!(JwtClaimInvalid, "{name:?} must be a string"));
            }
        }
        let aud_ok = match map.get("aud") {
            None | Some(Value::String(_)) => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            Some(_) => false,
        };
        if !aud_ok {
            return Err(aud_error());
        }
        for name in ["exp", "nbf", "iat"] {
            numeric_date(map, name)?;
        }
        Ok(())
    }

    /// Type-checks the registered claims of `map`.
    pub fn from_map(map: Map<String, Value>) -> Result<Self> {
        Self::check(&map)?;
        let text = |name: &str| {
            map.get(name)
                .and_then(Value::as_str)
                .map(|s| Text::Owned(s.into()))
        };
        let aud = match map.get("aud") {
            Some(Value::String(s)) => Aud::One(Text::Owned(s.as_str().into())),
            Some(Value::Array(items)) => Aud::Many(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| Text::Owned(s.into()))
                    .collect(),
            ),
            _ => Aud::Absent,
        };
        Ok(Self {
            json: String::new(),
            reg: Registered {
                iss: text("iss"),
                sub: text("sub"),
                jti: text("jti"),
                aud,
                exp: numeric_date(&map, "exp")?,
                nbf: numeric_date(&map, "nbf")?,
                iat: numeric_date(&map, "iat")?,
                client_id: text("client_id"),
                scope: text("scope"),
                present: ["client_id", "scope", "cnf"].map(|n| map.contains_key(n)),
            },
            map: OnceLock::from(map),
            aud_list: OnceLock::new(),
        })
    }

    /// Parses a JWT payload: strict JSON, an object, registered claims well typed. Errors
    /// as `jwt::verify` reports them: `JwtInvalid` for the JSON, `JwtClaimInvalid` for types.
    pub(crate) fn parse(json: String) -> Result<Self> {
        let reg = {
            let mut de = serde_json::Deserializer::from_str(&json);
            let top = Top
                .deserialize(&mut de)
                .map_err(|e| err!(JwtInvalid, "the JWT payload is not JSON: {e}"))?;
            de.end().map_err(|_| {
                err!(
                    JwtInvalid,
                    "the JWT payload is not JSON: trailing characters after the JSON value"
                )
            })?;
            let slots =
                top.ok_or_else(|| err!(JwtInvalid, "the JWT payload is not a JSON object"))?;
            Registered::from_slots(&json, slots)?
        };
        // Debug builds check at once what `as_map` relies on later: the full strict parse
        // accepts what this pass accepted.
        debug_assert!(
            json::parse_object(json.as_bytes(), "JWT claims").is_ok(),
            "the one-pass claims parser accepted what json::parse refuses"
        );
        Ok(Self {
            reg,
            json,
            map: OnceLock::new(),
            aud_list: OnceLock::new(),
        })
    }

    /// A recorded string claim. Spans were checked against `json` when recorded and `json`
    /// never changes, so one that does not resolve is a bug: answering `None` would make the
    /// claim absent (no `jti` to check for revocation, no `sub`), so it stops instead (see
    /// [`json::reread_failed`]).
    fn resolve<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(a, b) => match self.json.get(*a..*b) {
                Some(s) => s,
                None => json::reread_failed("JWT claims"),
            },
            Text::Owned(s) => s,
        }
    }

    fn text<'a>(&'a self, t: &'a Option<Text>) -> Option<&'a str> {
        t.as_ref().map(|t| self.resolve(t))
    }

    fn aud_texts(&self) -> &[Text] {
        match &self.reg.aud {
            Aud::Absent => &[],
            Aud::One(t) => std::slice::from_ref(t),
            Aud::Many(v) => v,
        }
    }

    /// Each `aud` value, without copying.
    pub(crate) fn aud_iter(&self) -> impl Iterator<Item = &str> {
        self.aud_texts().iter().map(|t| self.resolve(t))
    }

    /// Whether the claim is present; registered claims, `client_id`, `scope` and `cnf` are
    /// answered without the full map.
    pub fn contains(&self, name: &str) -> bool {
        match name {
            "iss" => self.reg.iss.is_some(),
            "sub" => self.reg.sub.is_some(),
            "jti" => self.reg.jti.is_some(),
            "aud" => !matches!(self.reg.aud, Aud::Absent),
            "exp" => self.reg.exp.is_some(),
            "nbf" => self.reg.nbf.is_some(),
            "iat" => self.reg.iat.is_some(),
            "client_id" => self.reg.present[0],
            "scope" => self.reg.present[1],
            "cnf" => self.reg.present[2],
            _ => self.as_map().contains_key(name),
        }
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        // `parse` accepted this text under the same rules, so this parse cannot fail. If it
        // ever did, no map is a safe answer: an empty one would say "absent" for every claim
        // (a `cnf` binding the token to a key would be skipped), so it stops instead.
        self.map.get_or_init(
            || match json::parse_object(self.json.as_bytes(), "JWT claims") {
                Ok(map) => map,
                Err(_) => json::reread_failed("JWT claims"),
            },
        )
    }

    /// Any claim. An absent registered claim, `client_id`, `scope` or `cnf` is answered
    /// without building the full map.
    pub fn get(&self, name: &str) -> Option<&Value> {
        if !self.contains(name) {
            return None;
        }
        self.as_map().get(name)
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.text(&self.reg.iss)
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.text(&self.reg.sub)
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.text(&self.reg.jti)
    }

    /// `aud`, as a list whether it was a string or an array.
    pub fn aud(&self) -> &[String] {
        self.aud_list
            .get_or_init(|| self.aud_iter().map(str::to_owned).collect())
    }

    /// `exp` in whole seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        self.reg.exp
    }

    /// `nbf` in whole seconds since the epoch.
    pub fn nbf(&self) -> Option<i64> {
        self.reg.nbf
    }

    /// `iat` in whole seconds since the epoch.
    pub fn iat(&self) -> Option<i64> {
        self.reg.iat
    }

    /// `client_id` (RFC 8693 §4.3), when it is a string.
    pub fn client_id(&self) -> Option<&str> {
        self.text(&self.reg.client_id)
    }

    /// `scope` (RFC 8693 §4.2), when it is a string.
    pub fn scope(&self) -> Option<&str> {
        self.text(&self.reg.scope)
    }
}

fn aud_error() -> crate::Error {
    err!(
        JwtClaimInvalid,
        "\"aud\" must be a string or an array of strings"
    )
}

/// A registered claim's slot, in the order `from_map` checks them (so the first error is the
/// same whichever order the members come in).
fn registered_index(name: &str) -> Option<usize> {
    Some(match name {
        "iss" => 0,
        "sub" => 1,
        "jti" => 2,
        "aud" => 3,
        "exp" => 4,
        "nbf" => 5,
        "iat" => 6,
        // Not type-checked: read (`client_id`, `scope` when strings) or noted (`cnf`) for
        // callers such as an RFC 9068 resource server, so they need no map of the claims.
        "client_id" => 7,
        "scope" => 8,
        "cnf" => 9,
        _ => return None,
    })
}

/// A registered claim's value as found, before its type is judged.
enum Found<'de> {
    Str(Cow<'de, str>),
    /// A number, in whole seconds; `None` when out of range.
    Num(Option<i64>),
    /// An array; `None` unless every element is a string.
    List(Option<Vec<Cow<'de, str>>>),
    Other,
}

type Slots<'de> = [Option<Found<'de>>; 10];

#[derive(Debug, Clone)]
struct Registered {
    iss: Option<Text>,
    sub: Option<Text>,
    jti: Option<Text>,
    aud: Aud,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    /// `client_id` and `scope` (RFC 8693 §4.3, §4.2) when they are strings.
    client_id: Option<Text>,
    scope: Option<Text>,
    /// Whether `client_id`, `scope` and `cnf` are present, whatever their type.
    present: [bool; 3],
}

impl Registered {
    fn from_slots(json: &str, slots: Slots<'_>) -> Result<Self> {
        let [iss, sub, jti, aud, exp, nbf, iat, client_id, scope, cnf] = slots;
        let present = [client_id.is_some(), scope.is_some(), cnf.is_some()];
        let text = |s: Cow<'_, str>| match s {
            Cow::Borrowed(b) => match json::span(json, b) {
                Some((a, z)) => Text::Span(a, z),
                None => Text::Owned(b.into()),
            },
            Cow::Owned(o) => Text::Owned(o.into_boxed_str()),
        };
        let string = |found: Option<Found<'_>>, name: &str| match found {
            None => Ok(None),
            Some(Found::Str(s)) => Ok(Some(text(s))),
            Some(_) => Err(err!(JwtClaimInvalid, "{name:?} must be a string")),
        };
        let date = |found: Option<Found<'_>>, name: &str| match found {
            None => Ok(None),
            Some(Found::Num(Some(secs))) => Ok(Some(secs)),
            Some(Found::Num(None)) => Err(err!(JwtClaimInvalid, "{name:?} is out of range")),
            Some(_) => Err(err!(
                JwtClaimInvalid,
                "{name:?} must be a NumericDate (a JSON number)"
            )),
        };
        let lenient = |found: Option<Found<'_>>| match found {
            Some(Found::Str(s)) => Some(text(s)),
            _ => None,
        };
        let iss = string(iss, "iss")?;
        let sub = string(sub, "sub")?;
        let jti = string(jti, "jti")?;
        let aud = match aud {
            None => Aud::Absent,
            Some(Found::Str(s)) => Aud::One(text(s)),
            Some(Found::List(Some(items))) => Aud::Many(items.into_iter().map(text).collect()),
            Some(_) => return Err(aud_error()),
        };
        Ok(Self {
            iss,
            sub,
            jti,
            aud,
            exp: date(exp, "exp")?,
            nbf: date(nbf, "nbf")?,
            iat: date(iat, "iat")?,
            client_id: lenient(client_id),
            scope: lenient(scope),
            present,
        })
    }
}

/// The top-level value: `Some(slots)` for an object, `None` for any other valid JSON.
struct Top;

impl<'de> DeserializeSeed<'de> for Top {
    type Value = Option<Slots<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = Option<Slots<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        SkipVisitor { depth: 0 }.visit_f64(v).map(|()| None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor { depth: 0 }.visit_seq(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let top = SkipVisitor { depth: 0 };
        let mut seen = Seen::default();
        let mut slots: Slots<'de> = Default::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let index = registered_index(&key);
            seen.insert::<A::Error>(key)?;
            let child = top.nested::<A::Error>()?;
            match index.and_then(|i| slots.get_mut(i)) {
                Some(slot) => *slot = Some(map.next_value_seed(Claim { depth: child.depth })?),
                None => map.next_value_seed(child)?,
            }
        }
        Ok(Some(slots))
    }
}

/// A registered claim's value: recorded when it has a shape a registered claim may take,
/// otherwise walked like any other value.
struct Claim {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Claim {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Claim {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Found<'de>, E> {
        Ok(Found::Other)
    }
    fn visit_unit<E>(self) -> Result<Found<'de>, E> {
        Ok(Found::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Found<'de>, E> {
        Ok(Found::Num(Some(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Found<'de>, E> {
        // Above i64::MAX `as_f64` would be tried, and fail the 1e15 bound.
        Ok(Found::Num(i64::try_from(v).ok()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Found<'de>, E> {
        SkipVisitor { depth: self.depth }.visit_f64::<E>(v)?;
        Ok(Found::Num(whole_seconds(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Found<'de>, E> {
        Ok(Found::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Found<'de>, E> {
        Ok(Found::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Found<'de>, A::Error> {
        SkipVisitor { depth: self.depth }.visit_map(map)?;
        Ok(Found::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found<'de>, A::Error> {
        let here = SkipVisitor { depth: self.depth };
        let mut items = Some(Vec::new());
        loop {
            let child = here.nested::<A::Error>()?;
            match seq.next_element_seed(Item { depth: child.depth })? {
                None => break,
                Some(Some(s)) => {
                    if let Some(v) = &mut items {
                        v.push(s);
                    }
                }
                Some(None) => items = None,
            }
        }
        Ok(Found::List(items))
    }
}

/// An element of a registered claim's array: a string, or anything else walked and dropped.
struct Item {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Item {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Item {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        SkipVisitor { depth: self.depth }
            .visit_f64(v)
            .map(|()| None)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor { depth: self.depth }
            .visit_map(map)
            .map(|()| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor { depth: self.depth }
            .visit_seq(seq)
            .map(|()| None)
    }
}

#[cfg(test)]
mod tests;
