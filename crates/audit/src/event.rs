//! An audit event as a leaf: a JSON object with an integer `seq`, in its RFC 8785 canonical
//! form, hashed as an RFC 9162 leaf.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::tree::{leaf_hash, leaf_hash_of_parts, Hash};
use crate::Error;

/// The event's RFC 8785 (JCS) bytes: members sorted by their UTF-16 code units, no
/// insignificant whitespace, numbers and strings written as ECMAScript writes them.
pub fn canonical(event: &Value) -> Result<Vec<u8>, Error> {
    if sequence_number(event).is_none() {
        return Err(Error::Malformed(
            "an audit event is an object with an integer seq",
        ));
    }
    serde_json_canonicalizer::to_vec(event)
        .map_err(|_| Error::Malformed("an audit event has no canonical form"))
}

/// The event's leaf hash: `SHA-256(0x00 ‖ canonical(event))`.
pub fn leaf(event: &Value) -> Result<Hash, Error> {
    Ok(leaf_hash(&canonical(event)?))
}

/// An event's canonical form before its sequence number is known, cut where `seq` goes:
/// writing it then costs the number and one SHA-256, so the canonicalisation can run in the
/// task that records the event instead of the one writer every event waits for.
///
/// JCS writes an object's members in the order of their names' UTF-16 code units, one after
/// another, so the canonical form of `{seq, …rest}` is the members named before `seq`, then
/// `seq`, then the members named after it, each part as JCS writes it alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unnumbered {
    /// `{` and the members before `seq`, each followed by `,`.
    before: Vec<u8>,
    /// `,` and the members after `seq` when there are any, then `}`.
    after: Vec<u8>,
}

impl Unnumbered {
    /// Cuts the canonical form of `members` (which must not hold `seq`) where `seq` goes.
    pub fn new(members: Map<String, Value>) -> Result<Unnumbered, Error> {
        if members.contains_key("seq") {
            return Err(Error::Malformed("an unnumbered event has no seq"));
        }
        let (low, high): (Map<String, Value>, Map<String, Value>) = members
            .into_iter()
            .partition(|(name, _)| name.encode_utf16().lt("seq".encode_utf16()));
        let mut before = object_body(low)?;
        before.insert(0, b'{');
        if before.len() > 1 {
            before.push(b',');
        }
        let mut after = object_body(high)?;
        if !after.is_empty() {
            after.insert(0, b',');
        }
        after.push(b'}');
        Ok(Unnumbered { before, after })
    }

    /// The canonical bytes of the event numbered `seq` ([`canonical`] of it).
    pub fn canonical(&self, seq: u64) -> Result<Vec<u8>, Error> {
        let number = seq_member(seq)?;
        Ok([self.before.as_slice(), number.as_bytes(), &self.after].concat())
    }

    /// The leaf hash of the event numbered `seq` ([`leaf`] of it).
    pub fn leaf(&self, seq: u64) -> Result<Hash, Error> {
        let number = seq_member(seq)?;
        Ok(leaf_hash_of_parts(&[
            &self.before,
            number.as_bytes(),
            &self.after,
        ]))
    }
}

/// The largest sequence number JCS writes exactly: it writes numbers as IEEE 754 doubles,
/// so above 2^53 - 1 two numbers could share one form (and one leaf).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// `"seq":N`, as JCS writes the number.
fn seq_member(seq: u64) -> Result<String, Error> {
    if seq > MAX_SEQ {
        return Err(Error::Malformed("a sequence number above 2^53 - 1"));
    }
    Ok(format!("\"seq\":{seq}"))
}

/// The canonical form of an object of `members` without its braces.
fn object_body(members: Map<String, Value>) -> Result<Vec<u8>, Error> {
    let bytes = serde_json_canonicalizer::to_vec(&Value::Object(members))
        .map_err(|_| Error::Malformed("an audit event has no canonical form"))?;
    bytes
        .strip_prefix(b"{")
        .and_then(|b| b.strip_suffix(b"}"))
        .map(<[u8]>::to_vec)
        .ok_or(Error::Malformed("an object's canonical form is not braced"))
}

/// The event's `seq`, if it is an object with a non-negative integer `seq`.
pub fn sequence_number(event: &Value) -> Option<u64> {
    event.as_object()?.get("seq")?.as_u64()
}

/// A hash as the log writes it everywhere: standard base64 (as checkpoints write roots).
pub fn encode_hash(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

/// Reads [`encode_hash`]'s form.
pub fn decode_hash(text: &str) -> Option<Hash> {
    Hash::try_from(STANDARD.decode(text).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_members_and_drops_whitespace() {
        let a = json!({"seq": 1, "event": "token.issued", "client_id": "é\u{1}", "n": 1e21});
        let b: Value =
            serde_json::from_str("{ \"n\": 1000000000000000000000, \"client_id\": \"\\u00e9\\u0001\", \"event\": \"token.issued\", \"seq\": 1 }")
                .unwrap();
        let bytes = canonical(&a).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\"client_id\":\"é\\u0001\",\"event\":\"token.issued\",\"n\":1e+21,\"seq\":1}"
        );
        assert_eq!(canonical(&b).unwrap(), bytes);
        assert_eq!(leaf(&a).unwrap(), leaf_hash(&bytes));
    }

    #[test]
    fn an_unnumbered_event_is_canonical_once_numbered() {
        // Names before and after `seq` in UTF-16 order (`é` and a surrogate pair sort
        // after every ASCII name), none on one side, none at all.
        let events = [
            json!({"time": 1, "event": "token.issued", "client_id": "a", "detail": {"z": 1, "b": [1.5, "x"]}}),
            json!({"a": 1, "b": 2}),
            json!({"t": 1, "u": 2}),
            json!({"sequel": 1, "se": 2, "é": "\u{1F600}", "\u{1F600}": 3, "\u{FFFF}": 4}),
            json!({}),
        ];
        for event in events {
            let Value::Object(members) = event else {
                unreachable!()
            };
            let unnumbered = Unnumbered::new(members.clone()).unwrap();
            assert!(unnumbered.leaf(MAX_SEQ + 1).is_err());
            for seq in [0, 7, 1 << 40, MAX_SEQ] {
                let mut whole = members.clone();
                whole.insert("seq".into(), seq.into());
                let whole = Value::Object(whole);
                let bytes = unnumbered.canonical(seq).unwrap();
                assert_eq!(bytes, canonical(&whole).unwrap());
                assert_eq!(
                    unnumbered.leaf(seq).unwrap(),
                    leaf(&whole).unwrap(),
                    "{whole}"
                );
                assert_eq!(unnumbered.leaf(seq).unwrap(), leaf_hash(&bytes));
            }
        }
        let mut numbered = Map::new();
        numbered.insert("seq".into(), 1.into());
        assert!(Unnumbered::new(numbered).is_err());
    }

    #[test]
    fn an_event_needs_a_sequence_number() {
        for bad in [
            json!([]),
            json!({"event": "x"}),
            json!({"seq": -1}),
            json!({"seq": "1"}),
        ] {
            assert!(canonical(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_read_back() {
        let h = leaf_hash(b"x");
        assert_eq!(decode_hash(&encode_hash(&h)), Some(h));
        assert_eq!(decode_hash("AAAA"), None);
        assert_eq!(decode_hash("not base64"), None);
    }
}
