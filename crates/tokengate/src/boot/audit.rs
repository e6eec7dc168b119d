//! The node's audit-log tasks: signing checkpoints every `[audit] checkpoint_every` (and
//! once at shutdown), and copying the log to `[audit] sink` as JSON lines for a SIEM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use audit::export::{checkpoint_line, event_line, pruned_checkpoint_line, start_line};
use oauth::Service;
use store::Store;

use crate::config::audit::Sink;

/// How long the checkpoint at shutdown may take: a store that does not answer must not
/// hold the exit.
pub const FINAL_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(5);

/// Signs a checkpoint every `every` when events were added; failures are logged and tried
/// again at the next tick.
pub async fn sign_checkpoints(service: Arc<Service>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        checkpoint_now(&service).await;
    }
}

/// One checkpoint, if events were added since the newest.
pub async fn checkpoint_now(service: &Service) {
    match service.checkpoint_audit(store::unix_now()).await {
        Ok(Some(c)) => tracing::debug!("audit checkpoint: {} events", c.size),
        Ok(None) => {}
        Err(e) => tracing::error!("audit checkpoint failed ({}): {e}", e.code()),
    }
}

/// A stored checkpoint as a line of the export format: with its anchor and consistency
/// proof when it belongs to a pruned part.
pub fn checkpoint_export_line(c: &store::StoredCheckpoint) -> Result<String, String> {
    let size = u64::try_from(c.size).unwrap_or(0);
    match c.pruned_proof().map_err(|e| e.to_string())? {
        Some((anchor, proof)) => Ok(pruned_checkpoint_line(size, &c.note, anchor, &proof)),
        None => Ok(checkpoint_line(size, &c.note)),
    }
}

/// How often the sink looks for new events.
const SINK_EVERY: Duration = Duration::from_secs(1);
/// Events read per query.
const PAGE: u32 = 1000;

/// Copies every event and checkpoint to the sink in log order (the export's format, so a
/// sink file verifies with `tokengate audit verify FILE`). A file sink resumes after the
/// last event it holds (from the start of the log when it is new) and is reopened on
/// SIGHUP, after a log rotation moved it; stdout starts with the events added after start.
pub async fn copy_to_sink(store: Store, sink: Sink) {
    let mut writer = match SinkWriter::open(&store, sink).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("audit sink: {e}; nothing is copied");
            return;
        }
    };
    let mut hangup = hangup_stream();
    let mut tick = tokio::time::interval(SINK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = next_hangup(&mut hangup) => writer.reopen(),
        }
        // Page after page while there is more: a busy node adds more than a page a second.
        loop {
            match writer.copy_new(&store).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("audit sink: {e}; trying again");
                    break;
                }
            }
        }
    }
}

struct SinkWriter {
    sink: Sink,
    out: Option<Box<dyn Write + Send>>,
    /// The next event to copy.
    next_seq: i64,
    /// The size of the last checkpoint copied.
    last_checkpoint: i64,
    /// Written before anything else: the start of a pruned log, for a new file.
    preamble: Option<String>,
}

impl SinkWriter {
    async fn open(store: &Store, sink: Sink) -> Result<SinkWriter, String> {
        let mut next_seq = match &sink {
            Sink::Stdout => store.audit_length().await.map_err(|e| e.to_string())?,
            Sink::File(path) => last_seq_in(path).map_or(0, |s| s + 1),
        };
        // Checkpoints before where copying starts are the reader's already (or cannot be
        // checked without the events before them), but the one completed by the last event
        // copied may have been signed after it (a repeat of one copied is harmless); a new
        // file of a pruned log starts with the frontier and every checkpoint from the first.
        let mut last_checkpoint = next_seq.saturating_sub(1);
        let mut preamble = None;
        let pruned = store.audit_pruned().await.map_err(|e| e.to_string())?;
        if next_seq < pruned.size {
            let frontier = pruned
                .hashes()
                .ok_or("the pruned log's frontier is not a list of hashes")?;
            preamble = Some(start_line(u64::try_from(pruned.size).unwrap_or(0), &frontier) + "\n");
            next_seq = pruned.size;
            last_checkpoint = 0;
        }
        let mut writer = SinkWriter {
            sink,
            out: None,
            next_seq,
            last_checkpoint,
            preamble,
        };
        writer.reopen();
        Ok(writer)
    }

    fn reopen(&mut self) {
        self.out = match &self.sink {
            Sink::Stdout => Some(Box::new(std::io::stdout())),
            Sink::File(path) => match open_append(path) {
                Ok(f) => Some(Box::new(f)),
                Err(e) => {
                    tracing::error!("audit sink {}: {e}", path.display());
                    None
                }
            },
        };
    }

    /// Copies what was added since the last call (a page of it), interleaving each
    /// checkpoint after the event that completes it; whether a whole page was copied (so
    /// there may be more).
    async fn copy_new(&mut self, store: &Store) -> Result<bool, String> {
        if self.out.is_none() {
            self.reopen();
        }
        let fail = |e: &dyn std::fmt::Display| e.to_string();
        let events = store
            .audit_log(self.next_seq, PAGE)
            .await
            .map_err(|e| fail(&e))?;
        let checkpoints = store
            .checkpoints(self.last_checkpoint, PAGE)
            .await
            .map_err(|e| fail(&e))?;
        let mut pending = checkpoints.iter().peekable();
        let mut text = self.preamble.clone().unwrap_or_default();
        let (mut next_seq, mut last_checkpoint) = (self.next_seq, self.last_checkpoint);
        // Checkpoints before the first event copied (of a pruned part, or signed late).
        signed_up_to(&mut pending, next_seq, &mut text, &mut last_checkpoint)?;
        for record in &events {
            let (Some(seq), Some(json)) = (record.seq, record.to_json()) else {
                continue;
            };
            text.push_str(&event_line(&json, record.hash.as_deref()));
            text.push('\n');
            next_seq = seq + 1;
            signed_up_to(&mut pending, next_seq, &mut text, &mut last_checkpoint)?;
        }
        let Some(out) = self.out.as_mut() else {
            return Err("the sink is not open".into());
        };
        out.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
        out.flush().map_err(|e| fail(&e))?;
        (self.next_seq, self.last_checkpoint, self.preamble) = (next_seq, last_checkpoint, None);
        Ok(events.len() == PAGE as usize)
    }
}

/// Appends the lines of the checkpoints that sign no more than `size` events.
fn signed_up_to<'a>(
    pending: &mut std::iter::Peekable<impl Iterator<Item = &'a store::StoredCheckpoint>>,
    size: i64,
    text: &mut String,
    last: &mut i64,
) -> Result<(), String> {
    while let Some(c) = pending.next_if(|c| c.size <= size) {
        text.push_str(&checkpoint_export_line(c)?);
        text.push('\n');
        *last = c.size;
    }
    Ok(())
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The sequence number of the last event line of a sink file (its last 64 KiB), if any.
fn last_seq_in(path: &PathBuf) -> Option<i64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(|line| match audit::export::parse_line(line).ok()? {
            audit::verify::Entry::Event { event, .. } => {
                audit::event::sequence_number(&event).and_then(|s| i64::try_from(s).ok())
            }
            _ => None,
        })
}

#[cfg(unix)]
fn hangup_stream() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_stream() -> Option<()> {
    None
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    let delivered = match signal {
        Some(s) => s.recv().await.is_some(),
        None => false,
    };
    if !delivered {
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending::<()>().await
}
