//! Values a browser keeps for the service and gives back: the sign-in session between the
//! authorization request, the provider's sign-in and consent (issue #18), in a cookie.
//! Sealed (encrypted and authenticated: compact JWE, `dir` with A256GCM) under a key derived
//! from the master key for one purpose, with an expiry inside: a browser can neither read
//! nor alter one, one purpose's seal opens under no other, an expired one is refused, and any
//! node with the same master key opens what another sealed, with nothing stored.

use jose::jwe::{self, ContentEncryption, DecryptOptions, EncryptParams, KeyManagement};
use jose::Jwk;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use store::MasterKey;

use crate::error::{Error, Result};

/// The longest sealed value opened: a cookie is at most 4 KB.
pub const MAX_SEALED: usize = 4096;

/// Seals and opens values for one purpose.
pub struct Sealer {
    key: Jwk,
    purpose: &'static str,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// What is sealed: the value and when it stops opening.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    exp: i64,
    v: T,
}

impl Sealer {
    /// A sealer for `purpose` (also the sealed value's `typ`), keyed from the master key.
    pub fn new(master: &MasterKey, purpose: &'static str) -> Result<Sealer> {
        let secret = master.derive(&format!("sealed/{purpose}"));
        let mut map = Map::new();
        map.insert("kty".into(), "oct".into());
        map.insert("k".into(), jose::b64::encode(secret.as_slice()).into());
        Ok(Sealer {
            key: Jwk::from_map(&map)?,
            purpose,
        })
    }

    /// Seals `value`; it opens until `expires_at` (unix seconds). [`Error::Sealed`] when the
    /// result would be larger than [`MAX_SEALED`].
    pub fn seal<T: Serialize>(&self, value: &T, expires_at: i64) -> Result<String> {
        let plaintext = serde_json::to_vec(&Envelope {
            exp: expires_at,
            v: value,
        })
        .map_err(|_| Error::Sealed("the value does not serialize"))?;
        let mut params = EncryptParams::default();
        params.protected.insert("typ".into(), json!(self.purpose));
        let sealed = jwe::compact::encrypt(
            &plaintext,
            &self.key,
            KeyManagement::Dir,
            ContentEncryption::A256GCM,
            &params,
        )?;
        // Refused here rather than sealed and then never opened (a cookie a browser drops).
        if sealed.len() > MAX_SEALED {
            return Err(Error::Sealed("the sealed value is larger than 4096 bytes"));
        }
        Ok(sealed)
    }

    /// The value, if `sealed` was sealed by this purpose's key, unaltered, and has not
    /// expired at `now`. Anything else (a forged, altered, truncated, other-purpose or old
    /// value) is `None`: the caller starts over.
    pub fn open<T: DeserializeOwned>(&self, sealed: &str, now: i64) -> Option<T> {
        // max_len refuses a longer value before any of it is decoded.
        let mut options =
            DecryptOptions::new([KeyManagement::Dir]).encryptions([ContentEncryption::A256GCM]);
        options.max_len = MAX_SEALED;
        let opened = jwe::compact::decrypt(sealed, &self.key, &options).ok()?;
        if opened.header.typ() != Some(self.purpose) {
            return None;
        }
        let envelope: Envelope<Value> = serde_json::from_slice(&opened.plaintext).ok()?;
        if envelope.exp <= now {
            return None;
        }
        serde_json::from_value(envelope.v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pending {
        client_id: String,
        state: Option<String>,
    }

    fn pending() -> Pending {
        Pending {
            client_id: "app".into(),
            state: Some("xyz".into()),
        }
    }

    #[test]
    fn a_sealed_value_opens_until_it_expires_and_is_unreadable() {
        let sealer = Sealer::new(&MasterKey::from_bytes([7; 32]), "sign-in").unwrap();
        let sealed = sealer.seal(&pending(), 1000).unwrap();
        assert_eq!(sealed.split('.').count(), 5);
        assert!(!sealed.contains("app") && !sealed.contains("xyz"));
        assert_eq!(sealer.open::<Pending>(&sealed, 999), Some(pending()));
        assert_eq!(sealer.open::<Pending>(&sealed, 1000), None);
        // Another node with the same master key opens it.
        let other_node = Sealer::new(&MasterKey::from_bytes([7; 32]), "sign-in").unwrap();
        assert_eq!(other_node.open::<Pending>(&sealed, 0), Some(pending()));
        // Each seal is new (random IV).
        assert_ne!(sealer.seal(&pending(), 1000).unwrap(), sealed);
    }

    #[test]
    fn altered_foreign_and_other_purpose_values_do_not_open() {
        let master = MasterKey::from_bytes([7; 32]);
        let sealer = Sealer::new(&master, "sign-in").unwrap();
        let sealed = sealer.seal(&pending(), 1000).unwrap();
        let consent = Sealer::new(&master, "consent").unwrap();
        assert_eq!(consent.open::<Pending>(&sealed, 0), None);
        let foreign = Sealer::new(&MasterKey::from_bytes([8; 32]), "sign-in").unwrap();
        assert_eq!(foreign.open::<Pending>(&sealed, 0), None);
        // Every character of every part changed in turn (a sample: every 7th).
        for i in (0..sealed.len()).step_by(7) {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != sealed {
                assert_eq!(sealer.open::<Pending>(&altered, 0), None, "{i}");
            }
        }
        assert_eq!(sealer.open::<Pending>("", 0), None);
        assert_eq!(sealer.open::<Pending>(&"a.".repeat(3000), 0), None);
        // A different shape than the one sealed does not open as that one.
        let number = sealer.seal(&42, 1000).unwrap();
        assert_eq!(sealer.open::<Pending>(&number, 0), None);
        assert_eq!(sealer.open::<i64>(&number, 0), Some(42));
    }

    #[test]
    fn values_too_large_for_a_cookie_are_refused_when_sealed() {
        let sealer = Sealer::new(&MasterKey::from_bytes([7; 32]), "sign-in").unwrap();
        let fits = sealer.seal(&"s".repeat(2900), 1000).unwrap();
        assert!(fits.len() <= MAX_SEALED);
        assert_eq!(sealer.open::<String>(&fits, 0), Some("s".repeat(2900)));
        assert!(matches!(
            sealer.seal(&"s".repeat(3200), 1000),
            Err(Error::Sealed(_))
        ));
    }
}
