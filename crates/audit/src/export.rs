//! The export format: JSON lines, one per event or checkpoint, in log order (a checkpoint
//! of size `n` after the event of seq `n - 1`). `tokengate audit export` writes it, the
//! `[audit] sink` streams it, `tokengate audit verify FILE` reads it:
//!
//! ```text
//! {"type":"event","hash":"<leaf hash, base64>","event":{"seq":0,"time":…,"event":"token.issued",…}}
//! {"type":"checkpoint","size":1,"note":"<the signed note>"}
//! ```
//!
//! A pruned log starts with `{"type":"start","size":N,"frontier":[…]}` (the hashes that stand
//! for its first `N` events), and its checkpoints of the pruned part carry `"anchor"` (a
//! later checkpoint's size) and `"consistency"` (the proof from theirs to the anchor's).

use serde_json::{json, Value};

use crate::event::{decode_hash, encode_hash};
use crate::tree::Hash;
use crate::verify::Entry;

/// The line of an event (its JSON object with `seq`) and its stored hash.
pub fn event_line(event: &Value, hash: Option<&str>) -> String {
    json!({"type": "event", "hash": hash, "event": event}).to_string()
}

/// The line of a checkpoint.
pub fn checkpoint_line(size: u64, note: &str) -> String {
    json!({"type": "checkpoint", "size": size, "note": note}).to_string()
}

/// The first line of a pruned log.
pub fn start_line(size: u64, frontier: &[Hash]) -> String {
    let frontier: Vec<String> = frontier.iter().map(encode_hash).collect();
    json!({"type": "start", "size": size, "frontier": frontier}).to_string()
}

/// The line of a checkpoint of the pruned part, with its proof to the anchor.
pub fn pruned_checkpoint_line(size: u64, note: &str, anchor: u64, proof: &[Hash]) -> String {
    let proof: Vec<String> = proof.iter().map(encode_hash).collect();
    json!({"type": "checkpoint", "size": size, "note": note, "anchor": anchor, "consistency": proof})
        .to_string()
}

/// Reads a list of base64 hashes.
pub fn hashes(value: Option<&Value>) -> Option<Vec<Hash>> {
    value?
        .as_array()?
        .iter()
        .map(|h| decode_hash(h.as_str()?))
        .collect()
}

/// Reads one line (not its trailing newline).
pub fn parse_line(line: &str) -> Result<Entry, &'static str> {
    let value: Value = serde_json::from_str(line).map_err(|_| "not a JSON object")?;
    match value.get("type").and_then(Value::as_str) {
        Some("event") => {
            let event = value
                .get("event")
                .filter(|e| e.is_object())
                .ok_or("an event line without its event")?;
            let hash = match value.get("hash") {
                None | Some(Value::Null) => None,
                Some(Value::String(h)) => Some(h.clone()),
                Some(_) => return Err("an event line's hash is not a string"),
            };
            Ok(Entry::Event {
                event: event.clone(),
                hash,
            })
        }
        Some("checkpoint") => {
            let note = value
                .get("note")
                .and_then(Value::as_str)
                .ok_or("a checkpoint line without its note")?;
            match value.get("anchor") {
                None => Ok(Entry::Checkpoint(note.to_owned())),
                Some(anchor) => Ok(Entry::PrunedCheckpoint {
                    note: note.to_owned(),
                    anchor: anchor
                        .as_u64()
                        .ok_or("a checkpoint's anchor is not a size")?,
                    proof: hashes(value.get("consistency"))
                        .ok_or("a checkpoint's consistency proof is not a list of hashes")?,
                }),
            }
        }
        Some("start") => Ok(Entry::Start {
            size: value
                .get("size")
                .and_then(Value::as_u64)
                .ok_or("a start line without its size")?,
            frontier: hashes(value.get("frontier"))
                .ok_or("a start line's frontier is not a list of hashes")?,
        }),
        _ => Err("a line whose type is not event, checkpoint or start"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back() {
        let event = json!({"seq": 3, "event": "token.issued"});
        match parse_line(&event_line(&event, Some("aGFzaA=="))).unwrap() {
            Entry::Event { event: e, hash } => {
                assert_eq!(e, event);
                assert_eq!(hash.as_deref(), Some("aGFzaA=="));
            }
            other => panic!("{other:?}"),
        }
        match parse_line(&checkpoint_line(4, "o\n4\nx\n\n— o sig\n")).unwrap() {
            Entry::Checkpoint(note) => assert_eq!(note, "o\n4\nx\n\n— o sig\n"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "[]",
            "{\"type\":\"event\"}",
            "{\"type\":\"other\"}",
            "{\"type\":\"event\",\"event\":{},\"hash\":1}",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
