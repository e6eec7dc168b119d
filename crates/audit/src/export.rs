//! The export format: JSON lines, one per event or checkpoint, in log order (a checkpoint
//! of size `n` after the event of seq `n - 1`). `tokengate audit export` writes it, the
//! `[audit] sink` streams it, `tokengate audit verify FILE` reads it:
//!
//! ```text
//! {"type":"event","hash":"<leaf hash, base64>","event":{"seq":0,"time":…,"event":"token.issued",…}}
//! {"type":"checkpoint","size":1,"note":"<the signed note>"}
//! ```

use serde_json::{json, Value};

use crate::verify::Entry;

/// The line of an event (its JSON object with `seq`) and its stored hash.
pub fn event_line(event: &Value, hash: Option<&str>) -> String {
    json!({"type": "event", "hash": hash, "event": event}).to_string()
}

/// The line of a checkpoint.
pub fn checkpoint_line(size: u64, note: &str) -> String {
    json!({"type": "checkpoint", "size": size, "note": note}).to_string()
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
            Ok(Entry::Checkpoint(note.to_owned()))
        }
        _ => Err("a line whose type is neither event nor checkpoint"),
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
