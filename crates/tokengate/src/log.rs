//! Logs: one JSON object per line on stderr, so they can be shipped as they are. Nothing
//! secret (tokens, secrets, keys) is ever passed here.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns logging off for this process (tests that drive many requests).
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Writes one log line. A closed stderr is not an error worth dying for.
pub fn line(value: &Value) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    let mut text = value.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A log event with a level and a message.
pub fn event(level: &str, message: &str) {
    line(&json!({ "time": store::unix_now(), "level": level, "message": message }));
}
