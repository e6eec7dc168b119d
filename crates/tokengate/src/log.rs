//! Logs: one JSON object per line on stderr, so they can be shipped as they are. Nothing
//! secret (tokens, secrets, keys) is ever passed here.
//!
//! Lines are appended to a buffer and written by a background thread, many per write: a
//! gateway under load would otherwise make one `write` system call per request, and a request
//! would wait whenever stderr (a pipe to a log shipper) is slow. A line waits at most about
//! [`GATHER`] before it is written. If the buffer reaches [`MAX_PENDING`] because stderr does
//! not keep up, further lines are dropped and counted, and a warning line with the count ends
//! the next batch written; requests never block on logging.
//! [`flush`] writes what is pending (at shutdown).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use serde::Serialize;
use serde_json::json;

static QUIET: AtomicBool = AtomicBool::new(false);

/// How long the writer lets lines gather before writing them: the most a line waits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Bytes of log lines waiting for the writer, at most.
const MAX_PENDING: usize = 8 << 20;

struct Pending {
    buf: Vec<u8>,
    dropped: u64,
}

struct Writer {
    pending: Mutex<Pending>,
    ready: Condvar,
    /// Serialises the actual writes, so a [`flush`] and the thread never interleave lines.
    out: Mutex<()>,
}

static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

fn writer() -> &'static Writer {
    static WRITER: OnceLock<&'static Writer> = OnceLock::new();
    WRITER.get_or_init(|| {
        let w: &'static Writer = Box::leak(Box::new(Writer {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                dropped: 0,
            }),
            ready: Condvar::new(),
            out: Mutex::new(()),
        }));
        // Without the thread, lines are written by `flush` only (at shutdown): still correct.
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || loop {
                {
                    let mut p = w.pending.lock().unwrap_or_else(|e| e.into_inner());
                    while p.buf.is_empty() {
                        p = w.ready.wait(p).unwrap_or_else(|e| e.into_inner());
                    }
                }
                // Let lines gather: waking this thread for every line would cost a pair of
                // context switches per request, more than the write it saves.
                std::thread::sleep(GATHER);
                write_pending(w);
            });
        w
    })
}

/// Takes what is pending and writes it. Taking under the output lock keeps batches in order.
fn write_pending(w: &Writer) {
    let _serial = w.out.lock().unwrap_or_else(|e| e.into_inner());
    let (mut batch, dropped) = {
        let mut p = w.pending.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = p.buf.capacity();
        let batch = std::mem::replace(&mut p.buf, Vec::with_capacity(capacity.min(1 << 20)));
        (batch, std::mem::take(&mut p.dropped))
    };
    if dropped > 0 {
        // Said after the lines that made it, so the gap shows where it happened.
        let note = json!({
            "time": store::unix_now(),
            "level": "warn",
            "message": format!("{dropped} log lines dropped: stderr did not keep up"),
        });
        if serde_json::to_writer(&mut batch, &note).is_ok() {
            batch.push(b'\n');
        }
    }
    if !batch.is_empty() {
        // A closed stderr is not an error worth dying for.
        let _ = std::io::stderr().lock().write_all(&batch);
    }
}

/// Turns logging off for this process (tests that drive many requests).
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Queues one log line: `value` serialised as one JSON object.
pub fn line(value: &impl Serialize) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    let mut text = Vec::with_capacity(256);
    if serde_json::to_writer(&mut text, value).is_err() {
        return;
    }
    text.push(b'\n');
    let w = writer();
    let mut p = w.pending.lock().unwrap_or_else(|e| e.into_inner());
    if p.buf.len() + text.len() > MAX_PENDING {
        p.dropped += 1;
        DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let wake = p.buf.is_empty();
    p.buf.extend_from_slice(&text);
    drop(p);
    if wake {
        w.ready.notify_one();
    }
}

/// Writes every queued line now.
pub fn flush() {
    write_pending(writer());
}

/// Lines dropped since the process started because stderr did not keep up.
pub fn dropped() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

/// A log event with a level and a message.
pub fn event(level: &str, message: &str) {
    line(&json!({ "time": store::unix_now(), "level": level, "message": message }));
}
