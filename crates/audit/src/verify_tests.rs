//! Each kind of tampering on a small log: caught, and named at the right sequence number.

use super::*;
use crate::event::encode_hash;
use crate::note::NoteSigner;
use crate::tree::{Frontier, Tree};
use serde_json::json;

const ORIGIN: &str = "auth.example.com/audit";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[3u8; 32]).unwrap()
}

/// 20 events with checkpoints after 5, 12 and 20 of them, in export order.
fn log() -> Vec<Entry> {
    let signer = signer();
    let mut tree = Tree::new();
    let mut out = Vec::new();
    for seq in 0..20u64 {
        let event = json!({"seq": seq, "event": "token.issued", "time": 1_700_000_000 + seq, "client_id": format!("c{seq}")});
        let hash = leaf(&event).unwrap();
        tree.push(hash);
        out.push(Entry::Event {
            event,
            hash: Some(encode_hash(&hash)),
        });
        if [5, 12, 20].contains(&(seq + 1)) {
            let size = seq + 1;
            let body = Checkpoint {
                origin: ORIGIN.into(),
                size,
                root: tree.root(size).unwrap(),
            }
            .body();
            out.push(Entry::Checkpoint(signer.sign(&body).unwrap()));
        }
    }
    out
}

fn run(entries: Vec<Entry>) -> Result<Verified, Fault> {
    verify(
        entries.into_iter().map(Ok),
        std::slice::from_ref(signer().verifier()),
    )
}

fn fault(entries: Vec<Entry>) -> (u64, FaultKind) {
    let f = run(entries).unwrap_err();
    (f.seq, f.kind)
}

/// The position in `log()` of the event with this seq.
fn at(log: &[Entry], seq: u64) -> usize {
    log.iter()
        .position(
            |e| matches!(e, Entry::Event { event, .. } if sequence_number(event) == Some(seq)),
        )
        .unwrap()
}

fn event_mut(entry: &mut Entry) -> &mut Value {
    match entry {
        Entry::Event { event, .. } => event,
        _ => panic!("not an event"),
    }
}

#[test]
fn an_untouched_log_verifies() {
    let v = run(log()).unwrap();
    assert_eq!((v.events, v.checkpoints, v.unsigned()), (20, 3, 0));
    assert_eq!(v.newest.unwrap().size, 20);
    // Checkpoints may come in any order, and a log may end after its newest checkpoint.
    let mut shuffled = log();
    let last = shuffled.pop().unwrap();
    shuffled.insert(0, last);
    assert_eq!(run(shuffled).unwrap().checkpoints, 3);
}

#[test]
fn a_changed_field_is_named() {
    let mut l = log();
    let i = at(&l, 7);
    event_mut(&mut l[i])["client_id"] = json!("mallory");
    assert_eq!(fault(l), (7, FaultKind::Changed));
}

#[test]
fn a_changed_field_with_its_hash_rewritten_breaks_the_checkpoint() {
    let mut l = log();
    let i = at(&l, 7);
    let mut event = event_mut(&mut l[i]).clone();
    event["client_id"] = json!("mallory");
    let hash = encode_hash(&leaf(&event).unwrap());
    l[i] = Entry::Event {
        event,
        hash: Some(hash),
    };
    // Known good up to the checkpoint of size 5; events 5..11 are not what size 12 signed.
    assert_eq!(fault(l), (5, FaultKind::Inconsistent));
}

#[test]
fn a_deleted_event_is_missing() {
    let mut l = log();
    l.remove(at(&l, 9));
    assert_eq!(fault(l), (9, FaultKind::Missing));
}

#[test]
fn an_inserted_event_is_named() {
    let mut l = log();
    let i = at(&l, 9);
    let mut copy = l[i].clone();
    event_mut(&mut copy)["event"] = json!("token.revoked");
    l.insert(i + 1, copy);
    assert_eq!(fault(l), (9, FaultKind::Inserted));
    // One with a sequence number of its own but no hash (not written by tokengate).
    let mut l = log();
    l.push(Entry::Event {
        event: json!({"seq": 20, "event": "x"}),
        hash: None,
    });
    assert_eq!(fault(l), (20, FaultKind::Inserted));
}

#[test]
fn swapped_events_are_reordered() {
    let mut l = log();
    let (i, j) = (at(&l, 13), at(&l, 14));
    l.swap(i, j);
    assert_eq!(fault(l), (13, FaultKind::Reordered));
    // As a database shows a swap of two rows' sequence numbers.
    let mut l = log();
    let (i, j) = (at(&l, 13), at(&l, 14));
    let (a, b) = (event_mut(&mut l[i]).clone(), event_mut(&mut l[j]).clone());
    let (Entry::Event { hash: ha, .. }, Entry::Event { hash: hb, .. }) =
        (l[i].clone(), l[j].clone())
    else {
        unreachable!()
    };
    let mut b_at_13 = b.clone();
    b_at_13["seq"] = json!(13);
    let mut a_at_14 = a.clone();
    a_at_14["seq"] = json!(14);
    l[i] = Entry::Event {
        event: b_at_13,
        hash: hb,
    };
    l[j] = Entry::Event {
        event: a_at_14,
        hash: ha,
    };
    assert_eq!(fault(l), (13, FaultKind::Reordered));
}

#[test]
fn a_truncated_tail_is_named() {
    let mut l = log();
    // Events 17, 18, 19 removed; the checkpoint of size 20 remains.
    for seq in [19, 18, 17] {
        l.remove(at(&l, seq));
    }
    assert_eq!(fault(l), (17, FaultKind::Truncated));
}

#[test]
fn a_replaced_signature_is_named() {
    let mut l = log();
    let i = l
        .iter()
        .position(|e| matches!(e, Entry::Checkpoint(n) if n.contains("\n12\n")))
        .unwrap();
    let Entry::Checkpoint(note) = &l[i] else {
        unreachable!()
    };
    let other = NoteSigner::from_seed(ORIGIN, &[4u8; 32]).unwrap();
    let text = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
    l[i] = Entry::Checkpoint(other.sign(&text).unwrap());
    assert_eq!(fault(l), (11, FaultKind::BadSignature));
    // A signature line of the known key with other bytes.
    let mut l = log();
    let Entry::Checkpoint(note) = &l[i] else {
        unreachable!()
    };
    let (text, sig) = note.split_once("\n\n").unwrap();
    let blob = sig.rsplit_once(' ').unwrap().1.trim_end();
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob).unwrap();
    bytes[20] ^= 1;
    let forged = format!(
        "{text}\n\n\u{2014} {ORIGIN} {}\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    );
    l[i] = Entry::Checkpoint(forged);
    assert_eq!(fault(l), (11, FaultKind::BadSignature));
}

#[test]
fn a_checkpoint_of_another_log_is_refused() {
    let signer = signer();
    let mut l = log();
    let mut tree = Tree::new();
    for seq in 0..5 {
        if let Entry::Event { event, .. } = &l[at(&l, seq)] {
            tree.push(leaf(event).unwrap());
        }
    }
    let body = Checkpoint {
        origin: "elsewhere/audit".into(),
        size: 5,
        root: tree.root(5).unwrap(),
    }
    .body();
    l.push(Entry::Checkpoint(signer.sign(&body).unwrap()));
    assert_eq!(fault(l).1, FaultKind::Malformed);
}

/// `log()` pruned before seq 12 (the checkpoint of size 12): its frontier, the checkpoint
/// of size 5 with its proof to 12, then the rest.
fn pruned_log() -> Vec<Entry> {
    let full = log();
    let mut tree = Tree::new();
    for entry in &full {
        if let Entry::Event { event, .. } = entry {
            tree.push(leaf(event).unwrap());
        }
    }
    let mut out = vec![Entry::Start {
        size: 12,
        frontier: tree.frontier(12).unwrap(),
    }];
    for entry in full {
        match entry {
            Entry::Event { ref event, .. } if sequence_number(event).unwrap() < 12 => {}
            Entry::Checkpoint(note) if note.contains("\n5\n") => {
                out.push(Entry::PrunedCheckpoint {
                    note,
                    anchor: 12,
                    proof: tree.consistency_proof(5, 12).unwrap(),
                })
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn a_pruned_log_verifies_and_tampering_is_still_named() {
    let v = run(pruned_log()).unwrap();
    assert_eq!((v.events, v.checkpoints, v.unsigned()), (20, 3, 0));
    // A changed event after the pruned part.
    let mut l = pruned_log();
    let i = at(&l, 15);
    event_mut(&mut l[i])["client_id"] = json!("mallory");
    assert_eq!(fault(l), (15, FaultKind::Changed));
    // A wrong proof for the pruned checkpoint.
    let mut l = pruned_log();
    if let Entry::PrunedCheckpoint { proof, .. } = &mut l[1] {
        proof[0][0] ^= 1;
    }
    assert_eq!(fault(l), (4, FaultKind::Inconsistent));
    // Its anchor gone.
    let mut l = pruned_log();
    l.retain(|e| !matches!(e, Entry::Checkpoint(n) if n.contains("\n12\n")));
    assert_eq!(fault(l), (4, FaultKind::Inconsistent));
    // A frontier that does not hold: the checkpoint of size 12 fails.
    let mut l = pruned_log();
    if let Entry::Start { frontier, .. } = &mut l[0] {
        frontier[0][0] ^= 1;
    }
    assert_eq!(fault(l).1, FaultKind::Inconsistent);
    // A pruned checkpoint without its proof, or a start after events: malformed.
    let mut l = pruned_log();
    let Entry::PrunedCheckpoint { note, .. } = l[1].clone() else {
        unreachable!()
    };
    l[1] = Entry::Checkpoint(note);
    assert_eq!(fault(l), (4, FaultKind::Malformed));
    let mut l = pruned_log();
    let start = l.remove(0);
    l.insert(3, start);
    assert_eq!(fault(l).1, FaultKind::Malformed);
}

/// The newest checkpoints deleted with the events after the last one kept leave a valid
/// shorter log; a checkpoint kept apart shows it, and a rewritten, re-signed tail too.
#[test]
fn a_checkpoint_kept_apart_shows_a_truncated_or_rewritten_log() {
    let full = log();
    let kept = full
        .iter()
        .find_map(|e| match e {
            Entry::Checkpoint(n) if n.contains("\n20\n") => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    let keys = [signer().verifier().clone()];
    let with_trusted = |entries: Vec<Entry>| {
        let mut v = Verifier::new(&keys);
        v.trust(&kept)?;
        for e in entries {
            v.push(e)?;
        }
        v.finish()
    };
    assert_eq!(with_trusted(log()).unwrap().events, 20);
    // Cut after the checkpoint of 12: alone it verifies; against the kept one it is truncated.
    let cut: Vec<Entry> = log()
        .into_iter()
        .take_while(
            |e| !matches!(e, Entry::Event { event, .. } if sequence_number(event) == Some(12)),
        )
        .collect();
    assert!(run(cut.clone()).is_ok());
    assert_eq!(
        with_trusted(cut).map_err(|f| (f.seq, f.kind)),
        Err((12, FaultKind::Truncated))
    );
    // Events 15.. rewritten with their hashes and re-signed by the same key.
    let signer = signer();
    let mut tree = Frontier::new();
    let mut forged = Vec::new();
    for e in log() {
        match e {
            Entry::Event { mut event, .. } => {
                if sequence_number(&event).unwrap() >= 15 {
                    event["client_id"] = json!("mallory");
                }
                let h = leaf(&event).unwrap();
                tree.push(h);
                forged.push(Entry::Event {
                    event,
                    hash: Some(encode_hash(&h)),
                });
                if tree.len() == 20 {
                    let body = Checkpoint {
                        origin: ORIGIN.into(),
                        size: 20,
                        root: tree.root(),
                    }
                    .body();
                    forged.push(Entry::Checkpoint(signer.sign(&body).unwrap()));
                }
            }
            Entry::Checkpoint(n) if !n.contains("\n20\n") => forged.push(Entry::Checkpoint(n)),
            _ => {}
        }
    }
    assert!(run(forged.clone()).is_ok());
    let f = with_trusted(forged).unwrap_err();
    assert_eq!(f.kind, FaultKind::Inconsistent, "{f}");
}

#[test]
fn two_checkpoints_of_one_size_with_different_roots_are_a_fork() {
    let mut l = log();
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 5,
        root: [9; 32],
    }
    .body();
    l.push(Entry::Checkpoint(signer().sign(&body).unwrap()));
    assert_eq!(fault(l), (4, FaultKind::Inconsistent));
    // A checkpoint listed after events it does not sign: out of order.
    let mut l = log();
    let first = l
        .iter()
        .position(|e| matches!(e, Entry::Checkpoint(_)))
        .unwrap();
    let cp = l.remove(first);
    l.push(cp);
    assert_eq!(fault(l).1, FaultKind::Malformed);
}
