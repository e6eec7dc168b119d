//! The claims set, with registered claims type-checked on parse.
//!
//! Verification reads the registered claims in one pass over the claims text, which at the
//! same time enforces every rule of [`json::parse`] (duplicate names at any depth, the depth
//! limit), so a token is refused or accepted at verify time exactly as a full parse would.
//! The text is kept together with the registered claims, whose strings borrow from it (no
//! copy per claim), and the full `Map` is built only if a caller asks for it.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use self_cell::self_cell;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{err, Result};
use crate::json::{self, Key, Seen, SkipVisitor};

self_cell!(
    /// The claims text and the registered claims read from it. A string claim without
    /// escapes is a `&str` into the text itself (an escaped one is decoded, so owned): there
    /// is no offset to resolve later, so reading a claim cannot fail, and no copy is made.
    struct ClaimsText {
        owner: String,
        #[covariant]
        dependent: Registered,
    }

    impl {Debug}
);

/// A JWT claims set whose registered claims have their RFC 7519 §4.1 types.
///
/// A wrongly typed registered claim (`"exp":"123"`, `"aud":5`) is an error, never read as
/// absent: a validator that skips what it cannot parse is a validator that can be skipped.
#[derive(Debug)]
pub struct Claims {
    /// The claims JSON as verified (empty when built from a map), with the registered claims.
    text: ClaimsText,
    /// All claims, parsed from the text on first request.
    map: OnceLock<Map<String, Value>>,
    /// `aud` as owned strings, made on first request.
    aud_list: OnceLock<Vec<String>>,
}

impl Clone for Claims {
    /// The copy's registered strings are owned: they cannot borrow from the copied text
    /// without being located in it again, and clones are rare (verification makes none).
    fn clone(&self) -> Self {
        let reg = self.reg().to_owned_static();
        Self {
            text: ClaimsText::new(self.text.borrow_owner().clone(), |_| reg),
            map: self.map.clone(),
            aud_list: self.aud_list.clone(),
        }
    }
}

#[derive(Debug, Default)]
enum Aud<'a> {
    #[default]
    Absent,
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
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
    /// The length of the claims text in bytes (what a cache holding the claims weighs them
    /// by); 0 for claims built with [`Claims::from_map`], which have no text.
    pub fn text_len(&self) -> usize {
        self.text.borrow_owner().len()
    }

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
                .map(|s| Cow::Owned(s.to_owned()))
        };
        let aud = match map.get("aud") {
            Some(Value::String(s)) => Aud::One(Cow::Owned(s.clone())),
            Some(Value::Array(items)) => Aud::Many(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| Cow::Owned(s.to_owned()))
                    .collect(),
            ),
            _ => Aud::Absent,
        };
        let reg = Registered {
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
        };
        Ok(Self {
            // No text: the map is already there, so it is never parsed.
            text: ClaimsText::new(String::new(), |_| reg),
            map: OnceLock::from(map),
            aud_list: OnceLock::new(),
        })
    }

    /// Parses a JWT payload: strict JSON, an object, registered claims well typed. Errors
    /// as `jwt::verify` reports them: `JwtInvalid` for the JSON, `JwtClaimInvalid` for types.
    /// Verification calls it on a signature-checked payload; anything else that calls it
    /// holds claims nobody has vouched for.
    pub fn parse(json: String) -> Result<Self> {
        let text = ClaimsText::try_new(json, |json| Registered::read(json))?;
        // Debug builds check at once what `as_map` relies on later: the full strict parse
        // accepts what this pass accepted (tests and fuzzing find a divergence here).
        debug_assert!(
            json::parse_object(text.borrow_owner().as_bytes(), "JWT claims").is_ok(),
            "the one-pass claims parser accepted what json::parse refuses"
        );
        Ok(Self {
            text,
            map: OnceLock::new(),
            aud_list: OnceLock::new(),
        })
    }

    fn reg(&self) -> &Registered<'_> {
        self.text.borrow_dependent()
    }

    fn aud_texts(&self) -> &[Cow<'_, str>] {
        match &self.reg().aud {
            Aud::Absent => &[],
            Aud::One(t) => std::slice::from_ref(t),
            Aud::Many(v) => v,
        }
    }

    /// Each `aud` value, without copying.
    pub(crate) fn aud_iter(&self) -> impl Iterator<Item = &str> {
        self.aud_texts().iter().map(|t| &**t)
    }

    /// Whether the claim is present, when the verification pass recorded it (registered
    /// claims, `client_id`, `scope`, `cnf`); `None` for any other name.
    fn recorded(&self, name: &str) -> Option<bool> {
        let reg = self.reg();
        Some(match name {
            "iss" => reg.iss.is_some(),
            "sub" => reg.sub.is_some(),
            "jti" => reg.jti.is_some(),
            "aud" => !matches!(reg.aud, Aud::Absent),
            "exp" => reg.exp.is_some(),
            "nbf" => reg.nbf.is_some(),
            "iat" => reg.iat.is_some(),
            "client_id" => reg.present[0],
            "scope" => reg.present[1],
            "cnf" => reg.present[2],
            _ => return None,
        })
    }

    /// Whether the claim is present; registered claims, `client_id`, `scope` and `cnf` are
    /// answered without the full map.
    ///
    /// # Errors
    /// As [`Claims::as_map`], for any other name.
    pub fn contains(&self, name: &str) -> Result<bool> {
        match self.recorded(name) {
            Some(present) => Ok(present),
            None => Ok(self.as_map()?.contains_key(name)),
        }
    }

    /// All claims, parsed from the verified text on first request (building the map during
    /// verification costs about a fifth more per token, and most callers never ask).
    ///
    /// # Errors
    /// `JwtInvalid` if the text does not parse again as it did when verified. Verification
    /// read it under the same rules, so that would be a bug; it is an error, never an empty
    /// or partial map, so that a caller refuses the token rather than read claims as absent
    /// (a `cnf` binding the token to a key, say).
    pub fn as_map(&self) -> Result<&Map<String, Value>> {
        if let Some(map) = self.map.get() {
            return Ok(map);
        }
        let map =
            json::parse_object(self.text.borrow_owner().as_bytes(), "JWT claims").map_err(|e| {
                err!(
                    JwtInvalid,
                    "the JWT claims do not read back as verified: {}",
                    e.reason()
                )
            })?;
        // Two threads may both parse; both get the map that was stored first.
        Ok(self.map.get_or_init(|| map))
    }

    /// Any claim. An absent registered claim, `client_id`, `scope` or `cnf` is answered
    /// without building the full map.
    ///
    /// # Errors
    /// As [`Claims::as_map`].
    pub fn get(&self, name: &str) -> Result<Option<&Value>> {
        if self.recorded(name) == Some(false) {
            return Ok(None);
        }
        Ok(self.as_map()?.get(name))
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.reg().iss.as_deref()
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.reg().sub.as_deref()
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.reg().jti.as_deref()
    }

    /// `aud`, as a list whether it was a string or an array.
    pub fn aud(&self) -> &[String] {
        self.aud_list
            .get_or_init(|| self.aud_iter().map(str::to_owned).collect())
    }

    /// `exp` in whole seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        self.reg().exp
    }

    /// `nbf` in whole seconds since the epoch.
    pub fn nbf(&self) -> Option<i64> {
        self.reg().nbf
    }

    /// `iat` in whole seconds since the epoch.
    pub fn iat(&self) -> Option<i64> {
        self.reg().iat
    }

    /// `client_id` (RFC 8693 §4.3), when it is a string.
    pub fn client_id(&self) -> Option<&str> {
        self.reg().client_id.as_deref()
    }

    /// `scope` (RFC 8693 §4.2), when it is a string.
    pub fn scope(&self) -> Option<&str> {
        self.reg().scope.as_deref()
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

/// The registered claims as read; their strings borrow from the claims text (see
/// [`ClaimsText`]).
#[derive(Debug)]
struct Registered<'a> {
    iss: Option<Cow<'a, str>>,
    sub: Option<Cow<'a, str>>,
    jti: Option<Cow<'a, str>>,
    aud: Aud<'a>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    /// `client_id` and `scope` (RFC 8693 §4.3, §4.2) when they are strings.
    client_id: Option<Cow<'a, str>>,
    scope: Option<Cow<'a, str>>,
    /// Whether `client_id`, `scope` and `cnf` are present, whatever their type.
    present: [bool; 3],
}

impl<'a> Registered<'a> {
    /// Reads `json` in one pass: strict JSON, an object, registered claims well typed.
    fn read(json: &'a str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(json);
        let top = serde::Deserializer::deserialize_any(&mut de, json::TopObject(Top))
            .map_err(|e| err!(JwtInvalid, "the JWT payload is not JSON: {e}"))?;
        de.end().map_err(|_| {
            err!(
                JwtInvalid,
                "the JWT payload is not JSON: trailing characters after the JSON value"
            )
        })?;
        let slots = top.ok_or_else(|| err!(JwtInvalid, "the JWT payload is not a JSON object"))?;
        Self::from_slots(slots)
    }

    fn from_slots(slots: Slots<'a>) -> Result<Self> {
        let [iss, sub, jti, aud, exp, nbf, iat, client_id, scope, cnf] = slots;
        let present = [client_id.is_some(), scope.is_some(), cnf.is_some()];
        let string = |found: Option<Found<'a>>, name: &str| match found {
            None => Ok(None),
            Some(Found::Str(s)) => Ok(Some(s)),
            Some(_) => Err(err!(JwtClaimInvalid, "{name:?} must be a string")),
        };
        let date = |found: Option<Found<'a>>, name: &str| match found {
            None => Ok(None),
            Some(Found::Num(Some(secs))) => Ok(Some(secs)),
            Some(Found::Num(None)) => Err(err!(JwtClaimInvalid, "{name:?} is out of range")),
            Some(_) => Err(err!(
                JwtClaimInvalid,
                "{name:?} must be a NumericDate (a JSON number)"
            )),
        };
        let lenient = |found: Option<Found<'a>>| match found {
            Some(Found::Str(s)) => Some(s),
            _ => None,
        };
        let iss = string(iss, "iss")?;
        let sub = string(sub, "sub")?;
        let jti = string(jti, "jti")?;
        let aud = match aud {
            None => Aud::Absent,
            Some(Found::Str(s)) => Aud::One(s),
            Some(Found::List(Some(items))) => Aud::Many(items),
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

    /// A copy that borrows nothing.
    fn to_owned_static(&self) -> Registered<'static> {
        fn own(s: &str) -> Cow<'static, str> {
            Cow::Owned(s.to_owned())
        }
        let text = |t: &Option<Cow<'_, str>>| t.as_deref().map(own);
        Registered {
            iss: text(&self.iss),
            sub: text(&self.sub),
            jti: text(&self.jti),
            aud: match &self.aud {
                Aud::Absent => Aud::Absent,
                Aud::One(t) => Aud::One(own(t)),
                Aud::Many(v) => Aud::Many(v.iter().map(|t| own(t)).collect()),
            },
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            client_id: text(&self.client_id),
            scope: text(&self.scope),
            present: self.present,
        }
    }
}

/// The claims object's members ([`json::TopObject`] reads the rest of the text).
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Slots<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
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
        Ok(slots)
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
