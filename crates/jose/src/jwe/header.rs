//! The JWE header: protected, shared unprotected and per-recipient members, disjoint, with
//! `zip` and `crit` allowed only where they are integrity protected.

use serde_json::{Map, Value};

use super::alg::{ContentEncryption, KeyManagement};
use crate::error::{err, Result};

/// A validated JWE header for one recipient.
#[derive(Debug, Clone)]
pub struct Header {
    alg: KeyManagement,
    enc: ContentEncryption,
    zip: bool,
    protected: Map<String, Value>,
    shared: Map<String, Value>,
    recipient: Map<String, Value>,
}

impl Header {
    /// The key-management algorithm.
    pub fn alg(&self) -> KeyManagement {
        self.alg
    }

    /// The content encryption.
    pub fn enc(&self) -> ContentEncryption {
        self.enc
    }

    /// Whether the plaintext was compressed (`zip: "DEF"`).
    pub fn zip(&self) -> bool {
        self.zip
    }

    /// Any member, wherever it was.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.protected
            .get(name)
            .or_else(|| self.shared.get(name))
            .or_else(|| self.recipient.get(name))
    }

    /// A string member.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.get_str("kid")
    }

    /// The `cty`.
    pub fn cty(&self) -> Option<&str> {
        self.get_str("cty")
    }

    /// The `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.get_str("typ")
    }

    /// The integrity-protected members.
    pub fn protected(&self) -> &Map<String, Value> {
        &self.protected
    }

    pub(crate) fn parse(
        protected: Map<String, Value>,
        shared: Map<String, Value>,
        recipient: Map<String, Value>,
        understood: &[String],
    ) -> Result<Self> {
        for (a, b) in [
            (&protected, &shared),
            (&protected, &recipient),
            (&shared, &recipient),
        ] {
            if let Some(dup) = a.keys().find(|k| b.contains_key(*k)) {
                return Err(err!(
                    JweInvalid,
                    "header member {dup:?} appears in more than one header"
                ));
            }
        }
        let get = |n: &str| {
            protected
                .get(n)
                .or_else(|| shared.get(n))
                .or_else(|| recipient.get(n))
        };
        for name in ["kid", "typ", "cty", "apu", "apv", "iv", "tag", "p2s"] {
            if get(name).is_some_and(|v| !v.is_string()) {
                return Err(err!(JweInvalid, "header member {name:?} must be a string"));
            }
        }
        let alg = match get("alg") {
            Some(Value::String(s)) => s.parse::<KeyManagement>()?,
            Some(_) => return Err(err!(JweInvalid, "\"alg\" must be a string")),
            None => return Err(err!(JweInvalid, "missing \"alg\"")),
        };
        let enc = match get("enc") {
            Some(Value::String(s)) => s.parse::<ContentEncryption>()?,
            Some(_) => return Err(err!(JweInvalid, "\"enc\" must be a string")),
            None => return Err(err!(JweInvalid, "missing \"enc\"")),
        };
        // RFC 7516 §4.1.3: zip must be integrity protected.
        if shared.contains_key("zip") || recipient.contains_key("zip") {
            return Err(err!(JweInvalid, "\"zip\" must be in the protected header"));
        }
        let zip = match protected.get("zip") {
            None => false,
            Some(Value::String(s)) if s == "DEF" => true,
            Some(_) => return Err(err!(NotSupported, "only \"zip\":\"DEF\" is supported")),
        };
        crate::crit::check(
            &protected,
            shared.contains_key("crit") || recipient.contains_key("crit"),
            understood,
            false,
        )?;
        Ok(Self {
            alg,
            enc,
            zip,
            protected,
            shared,
            recipient,
        })
    }
}
