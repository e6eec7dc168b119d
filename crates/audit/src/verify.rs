//! Verifying a log: its events in sequence order, its checkpoints in any order, and the
//! public keys. Only the checkpoints are trusted (they are signed); each event's stored hash
//! is a hint that locates a change precisely when the tamperer did not also rewrite it.
//!
//! The first fault stops verification and names the first sequence number found bad:
//! - **changed**: an event's fields hash to something other than what was stored when it was
//!   written;
//! - **missing**: a sequence number is skipped;
//! - **inserted**: a second event claims a sequence number, or an event has no stored hash
//!   (tokengate writes one with every event);
//! - **reordered**: two events appear in each other's place;
//! - **truncated**: a checkpoint signs more events than the log holds;
//! - **bad signature**: a checkpoint is signed by no known key, or its signature fails;
//! - **inconsistent**: every event matches its own hash, but a checkpoint's root is not the
//!   root of the events it counts (they were rewritten, hashes and all, after signing).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::event::{decode_hash, leaf, sequence_number};
use crate::note::{open, Checkpoint, NoteFault, VerifierKey};
use crate::tree::{verify_consistency, Frontier, Hash};

/// One item of a log, as read from an export or a database.
#[derive(Clone, Debug)]
pub enum Entry {
    /// An event and the hash stored beside it (base64), if any.
    Event {
        /// The event object (with its `seq`).
        event: Value,
        /// Its leaf hash as written when it was recorded.
        hash: Option<String>,
    },
    /// A signed checkpoint note.
    Checkpoint(String),
    /// The log was pruned: its first `size` events are gone and known by the frontier of
    /// their tree (the hashes of its complete subtrees, largest first). Comes first.
    Start {
        /// How many events were pruned.
        size: u64,
        /// [`Tree::frontier`](crate::tree::Tree::frontier) of those events.
        frontier: Vec<Hash>,
    },
    /// A checkpoint of the pruned part, with the consistency proof from its tree to the
    /// later checkpoint of size `anchor` (which is checked against the events, or is itself
    /// a pruned checkpoint with a proof of its own).
    PrunedCheckpoint {
        /// The signed note.
        note: String,
        /// The size of the checkpoint the proof leads to.
        anchor: u64,
        /// RFC 9162 consistency proof from this checkpoint's tree to the anchor's.
        proof: Vec<Hash>,
    },
}

/// What was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// An event's fields differ from those hashed when it was written.
    Changed,
    /// Events are missing.
    Missing,
    /// An event that tokengate did not write.
    Inserted,
    /// Events out of order.
    Reordered,
    /// The log ends before a checkpoint's size.
    Truncated,
    /// A checkpoint not signed by a known key.
    BadSignature,
    /// A checkpoint whose root is not the events'.
    Inconsistent,
    /// Not readable as a log.
    Malformed,
}

impl FaultKind {
    /// The word `audit verify` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Changed => "changed",
            FaultKind::Missing => "missing",
            FaultKind::Inserted => "inserted",
            FaultKind::Reordered => "reordered",
            FaultKind::Truncated => "truncated",
            FaultKind::BadSignature => "bad signature",
            FaultKind::Inconsistent => "inconsistent",
            FaultKind::Malformed => "malformed",
        }
    }
}

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The first bad sequence number.
    pub seq: u64,
    /// What was found.
    pub kind: FaultKind,
    /// In words.
    pub detail: String,
}

impl Fault {
    /// A fault at `seq`.
    pub fn new(seq: u64, kind: FaultKind, detail: impl Into<String>) -> Fault {
        Fault {
            seq,
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq {}: {}: {}",
            self.seq,
            self.kind.as_str(),
            self.detail
        )
    }
}

impl std::error::Error for Fault {}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// Checkpoints whose signature and root checked.
    pub checkpoints: u64,
    /// The checkpoint of the largest tree.
    pub newest: Option<Checkpoint>,
    /// The root of every event read (which a later checkpoint will sign).
    pub root: Hash,
    /// How many of the events were pruned: known by their frontier and checked through
    /// their checkpoints' proofs, not one by one.
    pub pruned: u64,
}

impl Verified {
    /// Events after the newest checkpoint: covered by no signature yet.
    pub fn unsigned(&self) -> u64 {
        self.events - self.newest.as_ref().map_or(0, |c| c.size)
    }
}

/// Verifies a log (see the module docs). Events must come in the order they were read
/// (sequence order from a database, file order from an export); checkpoints anywhere.
pub fn verify(
    entries: impl IntoIterator<Item = Result<Entry, Fault>>,
    keys: &[VerifierKey],
) -> Result<Verified, Fault> {
    let mut verifier = Verifier::new(keys);
    for entry in entries {
        verifier.push(entry?)?;
    }
    verifier.finish()
}

/// [`verify`] one entry at a time, for logs read in pages.
pub struct Verifier<'k> {
    state: State<'k>,
    /// The last event read, checked once the next one is known (which tells a swap or a
    /// gap from a change).
    held: Option<(Value, Option<String>)>,
}

impl<'k> Verifier<'k> {
    /// A verifier trusting `keys`.
    pub fn new(keys: &'k [VerifierKey]) -> Verifier<'k> {
        Verifier {
            state: State {
                keys,
                tree: Frontier::new(),
                start: 0,
                waiting: BTreeMap::new(),
                newest: None,
                checked: 0,
                roots: BTreeMap::new(),
                pruned: Vec::new(),
                trusted: BTreeMap::new(),
            },
            held: None,
        }
    }

    /// Takes the next entry; the first fault found ends verification.
    pub fn push(&mut self, entry: Entry) -> Result<(), Fault> {
        match entry {
            Entry::Checkpoint(note) => self.state.checkpoint(&note),
            Entry::Start { size, frontier } => {
                if self.held.is_some() || !self.state.tree.is_empty() {
                    return Err(Fault::new(
                        0,
                        FaultKind::Malformed,
                        "the start of a pruned log after events",
                    ));
                }
                // Sequence numbers are signed 64-bit in the store: a larger start is made up.
                if i64::try_from(size).is_err() {
                    return Err(Fault::new(
                        0,
                        FaultKind::Malformed,
                        "a pruned log's start is out of range",
                    ));
                }
                self.state.start = size;
                self.state.tree = Frontier::from_parts(size, frontier).ok_or_else(|| {
                    Fault::new(
                        size,
                        FaultKind::Malformed,
                        "a pruned log's frontier does not fit its size",
                    )
                })?;
                self.state.settle()
            }
            Entry::PrunedCheckpoint {
                note,
                anchor,
                proof,
            } => {
                let checkpoint = self.state.open_checkpoint(&note)?;
                if anchor <= checkpoint.size {
                    let detail = format!(
                        "the checkpoint of tree size {} is proven against a smaller one",
                        checkpoint.size
                    );
                    return Err(Fault::new(
                        checkpoint.size.saturating_sub(1),
                        FaultKind::Malformed,
                        detail,
                    ));
                }
                self.state.pruned.push((checkpoint, anchor, proof));
                Ok(())
            }
            Entry::Event { event, hash } => {
                if let Some((current, current_hash)) = self.held.take() {
                    let next = (&event, hash.as_deref());
                    self.state
                        .event(&current, current_hash.as_deref(), Some(&next))?;
                }
                self.held = Some((event, hash));
                Ok(())
            }
        }
    }

    /// Requires the log to hold the tree of a checkpoint kept apart from it (fetched from
    /// the service earlier, or copied by a sink): whoever can write the log can remove the
    /// newest checkpoints with the events after the last one kept, or rewrite them and have
    /// a restarted node sign them again, and only a checkpoint kept elsewhere shows it. Give
    /// them before the log's entries.
    pub fn trust(&mut self, note: &str) -> Result<(), Fault> {
        let checkpoint = self.state.open_checkpoint(note)?;
        self.state.trusted.insert(checkpoint.size, checkpoint.root);
        Ok(())
    }

    /// How many events were read so far (the sequence number expected next).
    pub fn position(&self) -> u64 {
        self.state.tree.len() + u64::from(self.held.is_some())
    }

    /// Checks what is left and says what was verified.
    pub fn finish(mut self) -> Result<Verified, Fault> {
        if let Some((current, hash)) = self.held.take() {
            self.state.event(&current, hash.as_deref(), None)?;
        }
        self.state.finish()
    }
}

struct State<'k> {
    keys: &'k [VerifierKey],
    /// The events read so far, as the right edge of their tree: a verifier needs the root at
    /// each checkpoint's size as the log reaches it, in O(log n) memory.
    tree: Frontier,
    /// How many events were pruned (their checkpoints are checked by proofs).
    start: u64,
    /// Checkpoints whose signature checked, by size, until the tree reaches them.
    waiting: BTreeMap<u64, Checkpoint>,
    /// The newest checkpoint whose root checked.
    newest: Option<Checkpoint>,
    checked: u64,
    /// The root of every checkpoint checked so far, by size: the anchors of pruned ones.
    roots: BTreeMap<u64, Hash>,
    /// Checkpoints of the pruned part, checked at the end against their anchors.
    pruned: Vec<(Checkpoint, u64, Vec<Hash>)>,
    /// Checkpoints the auditor kept apart from the log: the log must have their roots.
    trusted: BTreeMap<u64, Hash>,
}

type Next<'a> = Option<&'a (&'a Value, Option<&'a str>)>;

impl State<'_> {
    fn event(&mut self, event: &Value, hash: Option<&str>, next: Next<'_>) -> Result<(), Fault> {
        let e = self.tree.len();
        let Some(seq) = sequence_number(event) else {
            return Err(Fault::new(
                e,
                FaultKind::Inserted,
                "an event without a sequence number",
            ));
        };
        if seq > e {
            if next.and_then(|(n, _)| sequence_number(n)) == Some(e) {
                return Err(Fault::new(
                    e,
                    FaultKind::Reordered,
                    format!("seq {seq} comes before seq {e}"),
                ));
            }
            let detail = if seq == e + 1 {
                format!("seq {e} is missing")
            } else {
                format!("seqs {e} to {} are missing", seq - 1)
            };
            return Err(Fault::new(e, FaultKind::Missing, detail));
        }
        if seq < e {
            return Err(Fault::new(
                seq,
                FaultKind::Inserted,
                format!("a second event with seq {seq}"),
            ));
        }
        let computed =
            leaf(event).map_err(|err| Fault::new(e, FaultKind::Malformed, err.to_string()))?;
        let Some(stored) = hash else {
            return Err(Fault::new(
                e,
                FaultKind::Inserted,
                "the event has no hash: tokengate did not write it",
            ));
        };
        if decode_hash(stored) != Some(computed) {
            if swapped(event, stored, next, e) {
                return Err(Fault::new(
                    e,
                    FaultKind::Reordered,
                    format!(
                        "the events of seq {e} and {} are in each other's place",
                        e + 1
                    ),
                ));
            }
            return Err(Fault::new(
                e,
                FaultKind::Changed,
                "its fields differ from those hashed when it was written",
            ));
        }
        self.tree.push(computed);
        self.settle()
    }

    fn checkpoint(&mut self, note: &str) -> Result<(), Fault> {
        let checkpoint = self.open_checkpoint(note)?;
        if checkpoint.size < self.start {
            let detail = format!(
                "the checkpoint of tree size {} is in the pruned part but has no consistency proof",
                checkpoint.size
            );
            return Err(Fault::new(
                checkpoint.size.saturating_sub(1),
                FaultKind::Malformed,
                detail,
            ));
        }
        if checkpoint.size < self.tree.len() && !self.roots.contains_key(&checkpoint.size) {
            let detail = format!(
                "the checkpoint of tree size {} comes after events it does not sign (a log lists \
                 each checkpoint after the event that completes it)",
                checkpoint.size
            );
            return Err(Fault::new(
                checkpoint.size.saturating_sub(1),
                FaultKind::Malformed,
                detail,
            ));
        }
        let known = self.roots.get(&checkpoint.size).copied();
        let waiting = self.waiting.get(&checkpoint.size).map(|c| c.root);
        if let Some(other) = known.or(waiting) {
            if other != checkpoint.root {
                return Err(equivocation(checkpoint.size));
            }
            return Ok(());
        }
        if checkpoint.size > 0 {
            self.waiting.insert(checkpoint.size, checkpoint);
        }
        self.settle()
    }

    /// A checkpoint whose signature checks, of the same log as the others.
    fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, Fault> {
        let here = self.tree.len();
        let (text, _) = open(note, self.keys).map_err(|fault| {
            let size = size_of(note);
            let seq = size.map_or(here, |s| s.saturating_sub(1));
            let what = size.map_or("a checkpoint".to_owned(), |s| {
                format!("the checkpoint of tree size {s}")
            });
            match fault {
                NoteFault::Malformed(why) => {
                    Fault::new(seq, FaultKind::Malformed, format!("{what}: {why}"))
                }
                NoteFault::UnknownKey => Fault::new(
                    seq,
                    FaultKind::BadSignature,
                    format!("{what} is signed by no known key"),
                ),
                NoteFault::BadSignature => Fault::new(
                    seq,
                    FaultKind::BadSignature,
                    format!("{what} has a signature that does not verify"),
                ),
            }
        })?;
        let checkpoint = Checkpoint::parse(&text).map_err(|err| {
            Fault::new(here, FaultKind::Malformed, format!("a checkpoint: {err}"))
        })?;
        let origin = self
            .waiting
            .values()
            .chain(self.newest.as_ref())
            .next()
            .map(|c| c.origin.clone());
        if origin.is_some_and(|o| o != checkpoint.origin) {
            return Err(Fault::new(
                checkpoint.size.saturating_sub(1),
                FaultKind::Malformed,
                format!(
                    "the checkpoint of tree size {} names another log ({})",
                    checkpoint.size, checkpoint.origin
                ),
            ));
        }
        Ok(checkpoint)
    }

    /// Checks every waiting checkpoint the tree has reached: its root, and that it extends
    /// the previous one.
    fn settle(&mut self) -> Result<(), Fault> {
        let size = self.tree.len();
        if let Some(trusted) = self.trusted.get(&size) {
            if *trusted != self.tree.root() {
                let from = self.newest.as_ref().map_or(self.start, |c| c.size);
                let detail = format!(
                    "the checkpoint of tree size {size} kept apart signs another root: events \
                     {from} to {} are not those it signed",
                    size.saturating_sub(1)
                );
                return Err(Fault::new(
                    from.min(size.saturating_sub(1)),
                    FaultKind::Inconsistent,
                    detail,
                ));
            }
        }
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > self.tree.len() {
                return Ok(());
            }
            let checkpoint = entry.remove();
            let from = self.newest.as_ref().map_or(0, |c| c.size);
            if checkpoint.root != self.tree.root() {
                let detail = format!(
                    "the checkpoint of tree size {} signs another root: events {from} to {} are not those it signed",
                    checkpoint.size,
                    checkpoint.size - 1
                );
                return Err(Fault::new(
                    from.min(checkpoint.size - 1),
                    FaultKind::Inconsistent,
                    detail,
                ));
            }
            // Each checkpoint's root is the root of the same events up to its size, so each
            // extends the previous one: RFC 9162 consistency holds without a proof.
            self.checked += 1;
            self.roots.insert(checkpoint.size, checkpoint.root);
            if self
                .newest
                .as_ref()
                .is_none_or(|n| n.size <= checkpoint.size)
            {
                self.newest = Some(checkpoint);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Verified, Fault> {
        let events = self.tree.len();
        if let Some((size, _)) = self.waiting.first_key_value() {
            let detail = if events + 1 == *size {
                format!("the checkpoint of tree size {size} signs seq {events}, which is not in the log")
            } else {
                format!("the checkpoint of tree size {size} signs seqs {events} to {}, which are not in the log", size - 1)
            };
            return Err(Fault::new(events, FaultKind::Truncated, detail));
        }
        self.check_pruned()?;
        self.check_trusted(events)?;
        Ok(Verified {
            events,
            checkpoints: self.checked,
            root: self.tree.root(),
            pruned: self.start,
            newest: self.newest,
        })
    }
}

impl State<'_> {
    /// Every checkpoint kept apart is in the log: reached by its events (checked as they
    /// were read), or a pruned checkpoint with the same root.
    fn check_trusted(&self, events: u64) -> Result<(), Fault> {
        for (size, root) in &self.trusted {
            if *size > events {
                let detail = format!(
                    "the checkpoint of tree size {size} kept apart signs seqs {events} to {}, \
                     which are not in the log",
                    size - 1
                );
                return Err(Fault::new(events, FaultKind::Truncated, detail));
            }
            if *size < self.start && self.roots.get(size) != Some(root) {
                let detail = format!(
                    "the checkpoint of tree size {size} kept apart is not among the pruned \
                     log's checkpoints"
                );
                return Err(Fault::new(
                    size.saturating_sub(1),
                    FaultKind::Inconsistent,
                    detail,
                ));
            }
        }
        Ok(())
    }
}

/// Two checkpoints of one size with different roots: the log was forked.
fn equivocation(size: u64) -> Fault {
    Fault::new(
        size.saturating_sub(1),
        FaultKind::Inconsistent,
        format!("two checkpoints of tree size {size} sign different roots"),
    )
}

impl State<'_> {
    /// Each checkpoint of the pruned part against its anchor, largest first (an anchor is
    /// larger than what it proves, so it is checked first).
    fn check_pruned(&mut self) -> Result<(), Fault> {
        let mut pruned = std::mem::take(&mut self.pruned);
        pruned.sort_by_key(|p| std::cmp::Reverse(p.0.size));
        for (checkpoint, anchor, proof) in pruned {
            let size = checkpoint.size;
            let fault = |detail: String| {
                Fault::new(size.saturating_sub(1), FaultKind::Inconsistent, detail)
            };
            let Some(anchor_root) = self.roots.get(&anchor) else {
                return Err(fault(format!("the checkpoint of tree size {size} is proven against one of size {anchor}, which is not in the log")));
            };
            if self.roots.get(&size).is_some_and(|r| *r != checkpoint.root) {
                return Err(equivocation(size));
            }
            if !verify_consistency(size, anchor, &checkpoint.root, anchor_root, &proof) {
                return Err(fault(format!("the checkpoint of tree size {size} is not consistent with that of size {anchor}")));
            }
            self.roots.insert(size, checkpoint.root);
            self.checked += 1;
        }
        Ok(())
    }
}

/// Whether `event` (at `e`) and the next one hold each other's contents: each hashes to its
/// stored hash once given the other's sequence number.
fn swapped(event: &Value, stored: &str, next: Next<'_>, e: u64) -> bool {
    let Some((next, Some(next_stored))) = next else {
        return false;
    };
    if sequence_number(next) != Some(e + 1) {
        return false;
    }
    let renumbered = |v: &Value, seq: u64| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.insert("seq".into(), seq.into());
        }
        leaf(&v).ok()
    };
    renumbered(event, e + 1).is_some_and(|h| decode_hash(stored) == Some(h))
        && renumbered(next, e).is_some_and(|h| decode_hash(next_stored) == Some(h))
}

/// The tree size a note's text claims, read without trusting it (for naming a fault).
fn size_of(note: &str) -> Option<u64> {
    note.split('\n').nth(1)?.parse().ok()
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
