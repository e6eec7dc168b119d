//! `tokengate audit …`: export the tamper-evident log, verify it (from the database or from
//! an export, offline, with only the public keys), prove one event's inclusion, print the
//! keys. None of these needs the master key: they read the store, never decrypt anything.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

use audit::export::{event_line, parse_line, start_line};
use audit::note::VerifierKey;
use audit::tree::Hash;
use audit::verify::{Entry, Fault, FaultKind, Verified, Verifier};
use serde_json::{json, Value};
use store::{KeyUse, Store, StoredCheckpoint};

use super::{block_on, print_json, print_line, storage};
use crate::boot;
use crate::cli::{
    AuditCommand, AuditExportArgs, AuditProveArgs, AuditPruneArgs, AuditVerifyArgs, StorageArgs,
};
use crate::error::{CliError, EXIT_REJECTED, EXIT_USAGE};

/// Events read per query.
const PAGE: u32 = 1000;

pub fn run(cmd: AuditCommand) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Export(args) => export(&args),
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Prove(args) => prove(&args),
        AuditCommand::Keys(args) => keys(&args),
        AuditCommand::Prune(args) => prune(&args),
    }
}

async fn open(args: &StorageArgs) -> Result<Store, CliError> {
    let (config, flags) = storage(args)?;
    boot::open_existing_store(&config, &flags).await
}

fn store_failed(e: impl std::fmt::Display) -> CliError {
    CliError::new("ERR_STORE", e.to_string(), EXIT_USAGE)
}

fn export(args: &AuditExportArgs) -> Result<(), CliError> {
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CliError::io("creating the export file", &e))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = block_on(async {
        let store = open(&args.storage).await?;
        write_export(&store, args.since, args.until, &mut out).await
    })?;
    out.flush()
        .map_err(|e| CliError::io("writing the export", &e))?;
    if args.out.is_some() {
        eprintln!(
            "exported {} events and {} checkpoints",
            written.0, written.1
        );
    }
    Ok(())
}

/// Writes events `since..=until` and the checkpoints after them in log order; without
/// `until`, also the checkpoints past the last event (a truncated log stays visibly so). A
/// pruned log's export starts with the frontier of what was removed and the checkpoints of
/// the removed part, each with its proof.
async fn write_export(
    store: &Store,
    since: u64,
    until: Option<u64>,
    out: &mut dyn Write,
) -> Result<(u64, u64), CliError> {
    let mut checkpoints = all_checkpoints(store).await?;
    let mut line = |text: String| -> Result<(), CliError> {
        writeln!(out, "{text}").map_err(|e| CliError::io("writing the export", &e))
    };
    let (mut events, mut signed) = (0u64, 0u64);
    let start = pruned_start(store).await?;
    if let Some((size, frontier)) = start.as_ref().filter(|(size, _)| since <= *size) {
        line(start_line(*size, frontier))?;
        let pruned: Vec<u64> = checkpoints.range(..=*size).map(|(s, _)| *s).collect();
        for size in pruned {
            if let Some(c) = checkpoints.remove(&size) {
                line(checkpoint_text(&c)?)?;
                signed += 1;
            }
        }
    }
    let first = since.max(start.as_ref().map_or(0, |(size, _)| *size));
    let mut from = i64::try_from(first).unwrap_or(i64::MAX);
    'pages: loop {
        let page = store.audit_log(from, PAGE).await.map_err(store_failed)?;
        let full = page.len() == PAGE as usize;
        for record in page {
            let (Some(seq), Some(json)) = (record.seq, record.to_json()) else {
                continue;
            };
            if until.is_some_and(|u| i64::try_from(u).is_ok_and(|u| seq > u)) {
                break 'pages;
            }
            line(event_line(&json, record.hash.as_deref()))?;
            events += 1;
            from = seq + 1;
            if let Some(c) = checkpoints.remove(&u64::try_from(from).unwrap_or(0)) {
                line(checkpoint_text(&c)?)?;
                signed += 1;
            }
        }
        if !full {
            break;
        }
    }
    if until.is_none() {
        let first = u64::try_from(from).unwrap_or(0);
        for c in checkpoints.range(first..).map(|(_, c)| c) {
            line(checkpoint_text(c)?)?;
            signed += 1;
        }
    }
    Ok((events, signed))
}

async fn all_checkpoints(store: &Store) -> Result<BTreeMap<u64, StoredCheckpoint>, CliError> {
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.checkpoints(after, PAGE).await.map_err(store_failed)?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.size;
        for c in page {
            out.insert(u64::try_from(c.size).unwrap_or(0), c);
        }
    }
}

/// The size and frontier of what was pruned, if the log was.
async fn pruned_start(store: &Store) -> Result<Option<(u64, Vec<Hash>)>, CliError> {
    let pruned = store.audit_pruned().await.map_err(store_failed)?;
    if pruned.size == 0 {
        return Ok(None);
    }
    let frontier = pruned
        .hashes()
        .ok_or_else(|| store_failed("the pruned log's frontier is not a list of hashes"))?;
    Ok(Some((u64::try_from(pruned.size).unwrap_or(0), frontier)))
}

/// A stored checkpoint as the verifier takes it (with its proof, in a pruned part).
fn checkpoint_entry(c: &StoredCheckpoint) -> Result<Entry, CliError> {
    match c.pruned_proof().map_err(store_failed)? {
        Some((anchor, proof)) => Ok(Entry::PrunedCheckpoint {
            note: c.note.clone(),
            anchor,
            proof,
        }),
        None => Ok(Entry::Checkpoint(c.note.clone())),
    }
}

/// A stored checkpoint as an export line.
fn checkpoint_text(c: &StoredCheckpoint) -> Result<String, CliError> {
    boot::audit::checkpoint_export_line(c).map_err(store_failed)
}

fn verify(args: &AuditVerifyArgs) -> Result<(), CliError> {
    let given_keys = args.keys.as_deref().map(read_keys).transpose()?;
    let trusted = args
        .checkpoints
        .iter()
        .map(|p| read_checkpoint(p))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = match &args.file {
        Some(path) => {
            let keys = given_keys.ok_or_else(|| {
                CliError::usage(
                    "verifying an export needs --keys FILE (the JSON of \
                     /.well-known/tokengate-audit-keys or of `tokengate audit keys`)",
                )
            })?;
            verify_file(path, &keys, &trusted)?
        }
        None => block_on(async {
            let store = open(&args.storage).await?;
            let keys = match given_keys {
                Some(keys) => keys,
                None => store_keys(&store).await?,
            };
            verify_store(&store, &keys, &trusted).await
        })?,
    };
    match outcome {
        Ok(verified) => print_line(&summary(&verified)),
        Err(fault) => Err(CliError::new(
            "ERR_AUDIT_VERIFY",
            fault.to_string(),
            EXIT_REJECTED,
        )),
    }
}

/// What `audit verify` prints for a log that verified.
pub(crate) fn summary(v: &Verified) -> String {
    let newest = match &v.newest {
        Some(c) => format!(
            "; the newest checkpoint signs {} events (root {})",
            c.size,
            audit::event::encode_hash(&c.root)
        ),
        None => "; no checkpoint yet".into(),
    };
    let unsigned = match v.unsigned() {
        0 => String::new(),
        n => format!("; {n} newer events are not signed by a checkpoint yet"),
    };
    let pruned = match v.pruned {
        0 => String::new(),
        n => format!(
            "; seqs 0 to {} were pruned: checked through their checkpoints' proofs, not one by one",
            n - 1
        ),
    };
    format!(
        "ok: {} events and {} checkpoints verified{newest}{unsigned}{pruned}",
        v.events, v.checkpoints
    )
}

/// A checkpoint kept apart: a signed note, or the JSON of `GET /admin/audit/checkpoint`.
fn read_checkpoint(path: &std::path::Path) -> Result<String, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::io("reading --checkpoint", &e))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(doc) => doc
            .get("note")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| CliError::usage("--checkpoint: a JSON document with a note")),
        Err(_) => Ok(text),
    }
}

fn verify_file(
    path: &std::path::Path,
    keys: &[VerifierKey],
    trusted: &[String],
) -> Result<Result<Verified, Fault>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io("opening the export", &e))?;
    let mut verifier = verifier_with(keys, trusted)?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::io("reading the export", &e))?;
        if read == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let entry = match read_line(&line) {
            Ok(entry) => entry,
            Err(why) => {
                let detail = format!("line {number}: {why}");
                return Ok(Err(Fault::new(
                    verifier.position(),
                    FaultKind::Malformed,
                    detail,
                )));
            }
        };
        if let Err(fault) = verifier.push(entry) {
            return Ok(Err(fault));
        }
    }
    Ok(verifier.finish())
}

/// The longest export line read (an event is a few kilobytes at most).
const MAX_LINE: u64 = 1 << 20;

/// One export line: bounded, strict JSON (a member named twice would let two readers see
/// two events), then the format's rules.
fn read_line(line: &[u8]) -> Result<Entry, &'static str> {
    if line.len() as u64 > MAX_LINE {
        return Err("longer than 1 MiB");
    }
    let text = std::str::from_utf8(line)
        .map_err(|_| "not UTF-8")?
        .trim_end();
    if jose::json::parse(text.as_bytes()).is_err() {
        return Err("not strict JSON (a member named twice, or too deep)");
    }
    parse_line(text)
}

/// A verifier for `keys` that requires the checkpoints kept apart in `trusted`.
fn verifier_with<'k>(
    keys: &'k [VerifierKey],
    trusted: &[String],
) -> Result<Verifier<'k>, CliError> {
    let mut verifier = Verifier::new(keys);
    for note in trusted {
        verifier.trust(note).map_err(|f| {
            CliError::new(
                "ERR_AUDIT_CHECKPOINT",
                format!("--checkpoint: {f}"),
                EXIT_USAGE,
            )
        })?;
    }
    Ok(verifier)
}

/// Verifies the log in `store` against `keys` (and the checkpoints kept apart in `trusted`):
/// what `audit verify` does with a data directory or a database URL, and the admin API's
/// `POST /admin/audit/verify`. The outer error is a failure to read; the inner one the first
/// fault found.
pub(crate) async fn verify_store(
    store: &Store,
    keys: &[VerifierKey],
    trusted: &[String],
) -> Result<Result<Verified, Fault>, CliError> {
    let mut verifier = verifier_with(keys, trusted)?;
    // The log as far as it was committed when the verification began: a running node keeps
    // appending (every token it issues), and what it appends meanwhile is checked below
    // only for being no more than the head's advance. Every checkpoint stored counts (it
    // signs events committed before it), and so does the head: a log cut short, with its
    // head lowered to match, is still shorter than what was signed.
    let checkpoints = all_checkpoints(store).await?;
    let head = store.audit_length().await.map_err(store_failed)?;
    let signed = checkpoints
        .keys()
        .last()
        .map_or(0, |s| i64::try_from(*s).unwrap_or(i64::MAX));
    let bound = head.max(signed);
    // Read from 0 even when pruned: a row slipped into the pruned part shows as inserted.
    let mut from = 0;
    if let Some((size, frontier)) = pruned_start(store).await? {
        if let Err(fault) = verifier.push(Entry::Start { size, frontier }) {
            return Ok(Err(fault));
        }
    }
    for c in checkpoints.values() {
        if let Err(fault) = verifier.push(checkpoint_entry(c)?) {
            return Ok(Err(fault));
        }
    }
    'pages: loop {
        let page = store.audit_log(from, PAGE).await.map_err(store_failed)?;
        let full = page.len() == PAGE as usize;
        for record in page {
            if record.seq.is_some_and(|s| s >= bound) {
                break 'pages;
            }
            from = record.seq.map_or(from, |s| s + 1);
            let Some(event) = record.to_json() else {
                continue;
            };
            if let Err(fault) = verifier.push(Entry::Event {
                event,
                hash: record.hash,
            }) {
                return Ok(Err(fault));
            }
        }
        if !full {
            break;
        }
    }
    let verified = match verifier.finish() {
        Ok(verified) => verified,
        Err(fault) => return Ok(Err(fault)),
    };
    // The head says how many events were written: fewer read means the last were removed.
    if i64::try_from(verified.events).unwrap_or(i64::MAX) < bound {
        let detail = format!(
            "the log ends at {} events, but {bound} were written (the audit head)",
            verified.events
        );
        return Ok(Err(Fault::new(
            verified.events,
            FaultKind::Truncated,
            detail,
        )));
    }
    // Rows without a sequence number were not written by tokengate (it numbers every
    // event in the transaction that writes it).
    if let Some(row) = store
        .audit_unsequenced(1)
        .await
        .map_err(store_failed)?
        .first()
    {
        let detail = format!(
            "row id {} has no sequence number: tokengate did not write it",
            row.id
        );
        return Ok(Err(Fault::new(
            verified.events,
            FaultKind::Inserted,
            detail,
        )));
    }
    // Every row is one of the events verified (none with a negative or repeated number),
    // or was appended since the verification began, within the head's advance.
    let (rows, since) = store.audit_rows_split(bound).await.map_err(store_failed)?;
    let advanced = store.audit_length().await.map_err(store_failed)? - head;
    let read = verified.events - verified.pruned;
    if u64::try_from(rows).ok() != Some(read) || since > advanced {
        let detail = format!(
            "the table holds {} rows, the sequence {} events",
            rows + since,
            read + u64::try_from(advanced).unwrap_or(0)
        );
        return Ok(Err(Fault::new(
            verified.events,
            FaultKind::Inserted,
            detail,
        )));
    }
    Ok(Ok(verified))
}

/// Keys from a file: the JSON of `/.well-known/tokengate-audit-keys` (its `keys[].vkey`),
/// or verifier keys one per line.
fn read_keys(path: &std::path::Path) -> Result<Vec<VerifierKey>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io("reading --keys", &e))?;
    let bad = |why: String| CliError::new("ERR_AUDIT_KEYS", format!("--keys: {why}"), EXIT_USAGE);
    let texts: Vec<String> = match serde_json::from_str::<Value>(&text) {
        Ok(doc) => doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("a JSON document with a keys array".into()))?
            .iter()
            .map(|k| k.get("vkey").and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("every key has a vkey".into()))?,
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let keys = texts
        .iter()
        .map(|t| VerifierKey::parse(t).map_err(|e| bad(format!("{t}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(bad("no key".into()));
    }
    Ok(keys)
}

/// The audit keys the store holds, named by the log's origin. Trusting them trusts whoever
/// can write the database: an auditor passes `--keys` with keys obtained apart from it.
pub(crate) async fn store_keys(store: &Store) -> Result<Vec<VerifierKey>, CliError> {
    let Some(origin) = store.stored_audit_origin().await.map_err(store_failed)? else {
        return Ok(Vec::new());
    };
    let records = store.list_keys().await.map_err(store_failed)?;
    records
        .iter()
        .filter(|k| k.key_use == KeyUse::Audit)
        .map(|k| oauth::audit_verifier_key(&origin, &k.public_jwk).map_err(store_failed))
        .collect()
}

fn prove(args: &AuditProveArgs) -> Result<(), CliError> {
    let proof = block_on(async {
        let store = open(&args.storage).await?;
        let keys = store_keys(&store).await?;
        let log = oauth::AuditLog::read(&store).await.map_err(store_failed)?;
        log.prove(&store, &keys, args.seq)
            .await
            .map_err(store_failed)
    })?;
    let Some(p) = proof else {
        return Err(CliError::new(
            "ERR_AUDIT_NOT_SIGNED",
            format!(
                "seq {} is not signed by a checkpoint yet (or does not exist)",
                args.seq
            ),
            EXIT_REJECTED,
        ));
    };
    // The size and root the note's signature covers (not the columns beside it).
    if !audit::tree::verify_inclusion(p.seq, p.size, &p.leaf, &p.path, &p.root) {
        return Err(CliError::new(
            "ERR_AUDIT_VERIFY",
            format!("the inclusion proof of seq {} does not check", p.seq),
            EXIT_REJECTED,
        ));
    }
    print_json(&json!({
        "seq": p.seq,
        "leaf_hash": audit::event::encode_hash(&p.leaf),
        "inclusion_path": p.path.iter().map(audit::event::encode_hash).collect::<Vec<_>>(),
        "tree_size": p.size,
        "root": audit::event::encode_hash(&p.root),
        "checkpoint": p.checkpoint.note,
        "verified": true,
    }))
}

fn prune(args: &AuditPruneArgs) -> Result<(), CliError> {
    let before = unix_time(&args.before)?;
    let given_keys = args.keys.as_deref().map(read_keys).transpose()?;
    let outcome = block_on(async {
        let store = open(&args.storage).await?;
        let keys = match given_keys {
            Some(keys) => keys,
            None => store_keys(&store).await?,
        };
        // Never prune a log that does not verify: that would remove the evidence.
        if let Err(fault) = verify_store(&store, &keys, &[]).await? {
            let why = format!("nothing was pruned: the log does not verify: {fault}");
            return Err(CliError::new("ERR_AUDIT_VERIFY", why, EXIT_REJECTED));
        }
        prune_before(&store, &keys, before).await
    })?;
    print_json(&outcome)
}

/// Prunes the events signed by the newest checkpoint made before `before` (unix seconds).
async fn prune_before(store: &Store, keys: &[VerifierKey], before: i64) -> Result<Value, CliError> {
    let checkpoints = all_checkpoints(store).await?;
    let done = store.audit_pruned().await.map_err(store_failed)?.size;
    let Some(anchor) = checkpoints
        .values()
        .filter(|c| c.created_at < before && c.size > done)
        .max_by_key(|c| c.size)
    else {
        return Ok(json!({"events_removed": 0, "pruned_before_seq": done,
            "why": "no checkpoint made before that date signs events not pruned yet"}));
    };
    // The log verified a moment ago; a tree that no longer has the root the anchor's note
    // signs means it changed since: nothing is pruned.
    let (tree, size, _root) = oauth::signed_tree(store, anchor, keys).await.map_err(|e| {
        store_failed(format!(
            "the log changed while pruning: nothing was pruned: {e}"
        ))
    })?;
    if i64::try_from(size).ok() != Some(anchor.size) {
        return Err(store_failed(
            "the anchor checkpoint's note signs another size: nothing was pruned",
        ));
    }
    let frontier = tree
        .frontier(size)
        .ok_or_else(|| store_failed("no frontier"))?;
    let mut proofs = Vec::new();
    for c in checkpoints
        .values()
        .filter(|c| c.size < anchor.size && c.anchor.is_none())
    {
        let proof = tree
            .consistency_proof(u64::try_from(c.size).unwrap_or(0), size)
            .ok_or_else(|| store_failed("no consistency proof for an older checkpoint"))?;
        let proof: Vec<String> = proof.iter().map(audit::event::encode_hash).collect();
        proofs.push(store::CheckpointProof {
            size: c.size,
            anchor: anchor.size,
            consistency: Value::from(proof).to_string(),
        });
    }
    let prefix = store::PrunedPrefix {
        size: anchor.size,
        frontier: frontier.iter().map(audit::event::encode_hash).collect(),
    };
    let removed = store
        .prune_audit(&prefix, &proofs)
        .await
        .map_err(store_failed)?;
    Ok(
        json!({"events_removed": removed, "pruned_before_seq": anchor.size,
        "checkpoint": {"size": anchor.size, "created_at": anchor.created_at}}),
    )
}

/// `2026-11-01` (midnight UTC), an RFC 3339 time, or unix seconds.
fn unix_time(text: &str) -> Result<i64, CliError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    time::OffsetDateTime::parse(&full, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            CliError::usage(format!(
                "--before {text}: expected 2026-11-01, an RFC 3339 time or unix seconds"
            ))
        })
}

fn keys(args: &StorageArgs) -> Result<(), CliError> {
    let doc = block_on(async {
        let store = open(args).await?;
        keys_document(&store).await
    })?;
    print_json(&doc)
}

/// The document `/.well-known/tokengate-audit-keys` serves, from the store.
async fn keys_document(store: &Store) -> Result<Value, CliError> {
    let origin = store
        .stored_audit_origin()
        .await
        .map_err(store_failed)?
        .ok_or_else(|| store_failed("no node has started over this store yet: no audit log"))?;
    let records = store.list_keys().await.map_err(store_failed)?;
    // From the records' public_jwk column: whoever can write the database can change it (a
    // node's /.well-known/tokengate-audit-keys takes them from the decrypted keys).
    let keys = records.iter().map(|r| (r, r.public_jwk.clone()));
    oauth::audit_keys_document(&origin, keys).map_err(store_failed)
}
