//! An audit event as a leaf: a JSON object with an integer `seq`, in its RFC 8785 canonical
//! form, hashed as an RFC 9162 leaf.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::tree::{leaf_hash, Hash};
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
