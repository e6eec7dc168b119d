//! The tamper-evident audit log through the binary: checkpoints signed while serving and at
//! shutdown, the keys and proof endpoints, `audit export|verify|prove|keys`, and each kind of
//! tampering done with `sqlite3` and `psql` on the database and as a text editor would on an
//! export, caught by `audit verify` at the right sequence number.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

use crate::process::{
    get_token, ok_json, request, run, start, svc_client, wait_for, Server, MASTER,
};

const ADMIN: &str = "audit-admin-token-0123456789abcdefghij";
const TOKENS: usize = 12;

fn config() -> String {
    format!(
        "[server]\nadmin_token = \"{ADMIN}\"\n\n[token_service]\nissuer = \"https://as.example\"\n\n\
         [audit]\ncheckpoint_every = \"1s\"\n"
    )
}

fn admin_get(server: &Server, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN}");
    let r = request(&server.addr, "GET", path, &[("Authorization", &auth)], None);
    let body = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

/// Sets its flag when dropped: a thread that loops until it is set ends even when the test
/// panics first.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Serves, issues tokens, waits for a checkpoint of every event, checks the endpoints
/// (`POST /admin/audit/verify` before and after `sql` changes an event behind the running
/// node's back, and once more after it is put back), and stops (which signs a last
/// checkpoint). The number of events.
fn make_log(dir: &Path, source: &[&str], sql: &dyn Fn(&str)) -> u64 {
    let mut args = vec!["serve", "--config", "t.toml"];
    args.extend_from_slice(source);
    let mut server = start(dir, Some(MASTER), &args);
    let mut client_source = vec!["--config", "t.toml"];
    client_source.extend_from_slice(source);
    let (_, auth) = svc_client(dir, &client_source, "read");
    for _ in 0..TOKENS {
        get_token(&server.addr, &auth);
    }
    let events = 1 + TOKENS as u64;
    let checkpoint = wait_for("a checkpoint of every event", || {
        let (status, body) = admin_get(&server, "/admin/audit/checkpoint");
        (status == 200 && body["size"] == events)
            .then(|| body.clone())
            .ok_or_else(|| format!("{status} {body}"))
    });
    let keys = request(
        &server.addr,
        "GET",
        "/.well-known/tokengate-audit-keys",
        &[],
        None,
    );
    assert_eq!(keys.status, 200, "{}", keys.body);
    std::fs::write(dir.join("keys.json"), &keys.body).unwrap();
    std::fs::write(dir.join("kept.json"), checkpoint.to_string()).unwrap();
    proofs_check(&server, &checkpoint, &keys.json());
    let verify = |server: &Server| {
        let auth = format!("Bearer {ADMIN}");
        let r = request(
            &server.addr,
            "POST",
            "/admin/audit/verify",
            &[("Authorization", &auth)],
            Some(""),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let passed = verify(&server);
    assert_eq!(passed["ok"], true, "{passed}");
    let summary = passed["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("ok: {events} events and ")),
        "{summary}"
    );
    sql("UPDATE audit_events SET client_id = client_id || '!' WHERE seq = 4");
    let failed = verify(&server);
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["fault"]["seq"], 4, "{failed}");
    assert_eq!(failed["fault"]["kind"], "changed", "{failed}");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .starts_with("seq 4: changed"),
        "{failed}"
    );
    sql("UPDATE audit_events SET client_id = substr(client_id, 1, length(client_id) - 1) WHERE seq = 4");
    assert_eq!(verify(&server)["ok"], true);
    // Paging by id goes on; events now carry their sequence number and hash.
    let (_, page) = admin_get(&server, "/admin/audit?limit=2");
    assert_eq!(page["events"][0]["seq"], 0);
    assert!(page["events"][1]["hash"].is_string(), "{page}");
    // Verified while tokens are being issued: what is appended meanwhile is no tampering.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (busy, issued_meanwhile) = std::thread::scope(|scope| {
        let issuing = scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                get_token(&server.addr, &auth);
                n += 1;
            }
            n
        });
        let stopping = StopOnDrop(&stop); // also when a check below panics
        let busy: Vec<Value> = (0..3).map(|_| verify(&server)).collect();
        drop(stopping);
        (busy, issuing.join().unwrap())
    });
    for verified in busy {
        assert_eq!(verified["ok"], true, "{verified}");
    }
    assert!(issued_meanwhile > 0);
    // Each verification is an admin action, audited like any other.
    let mut events = 0u64;
    let mut after = 0;
    loop {
        let (_, page) = admin_get(&server, &format!("/admin/audit?after={after}&limit=1000"));
        let page = page["events"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["id"].as_i64().unwrap();
        events += page.len() as u64;
    }
    assert_eq!(events, 1 + TOKENS as u64 + 6 + issued_meanwhile);
    server.stop();
    events
}

/// The newest checkpoint opens with the published keys, and an inclusion proof of every
/// event leads to its root.
fn proofs_check(server: &Server, checkpoint: &Value, keys: &Value) {
    let vkeys: Vec<audit::note::VerifierKey> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| audit::note::VerifierKey::parse(k["vkey"].as_str().unwrap()).unwrap())
        .collect();
    let (text, _) = audit::note::open(checkpoint["note"].as_str().unwrap(), &vkeys).unwrap();
    let signed = audit::note::Checkpoint::parse(&text).unwrap();
    assert_eq!(signed.origin, "as.example/audit");
    assert_eq!(checkpoint["origin"], "as.example/audit");
    let size = signed.size;
    for seq in 0..size {
        let (status, proof) = admin_get(server, &format!("/admin/audit/proof/{seq}"));
        assert_eq!(status, 200, "{proof}");
        let hash = |v: &Value| audit::event::decode_hash(v.as_str().unwrap()).unwrap();
        let path: Vec<_> = proof["inclusion_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        let leaf = hash(&proof["leaf_hash"]);
        assert!(
            audit::tree::verify_inclusion(seq, size, &leaf, &path, &signed.root),
            "{seq}"
        );
    }
    assert_eq!(
        admin_get(server, &format!("/admin/audit/proof/{size}")).0,
        404
    );
    assert_eq!(admin_get(server, "/admin/audit/proof/x").0, 400);
}

/// `audit verify` with `args` fails with exit 1 and names `expected` (`seq N: kind`).
fn verify_fails(dir: &Path, args: &[&str], expected: &str) {
    let out = run(dir, None, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} {expected}: {stderr}");
    assert!(
        stderr.starts_with(&format!("error[ERR_AUDIT_VERIFY]: {expected}")),
        "{args:?}: expected {expected}, got {stderr}"
    );
}

fn verify_passes(dir: &Path, args: &[&str], events: u64) {
    let out = run(dir, None, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("ok: {events} events and ")),
        "{stdout}"
    );
}

/// The newest checkpoint's note with one byte of its signature changed.
fn forged_note(note: &str) -> String {
    let (body, line) = note.trim_end().rsplit_once(' ').unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut sig = engine.decode(line).unwrap();
    sig[20] ^= 1;
    format!("{body} {}\n", engine.encode(sig))
}

/// The SQL of each tampering, what `audit verify` must say, run one after the other on a
/// log restored between them.
fn tamperings(events: u64, newest_note: &str) -> Vec<(String, String)> {
    let forged = forged_note(newest_note).replace('\'', "''");
    let last = events - 1;
    vec![
        (
            "UPDATE audit_events SET client_id = 'mallory' WHERE seq = 5".into(),
            "seq 5: changed".into(),
        ),
        ("DELETE FROM audit_events WHERE seq = 5".into(), "seq 5: missing".into()),
        (
            format!(
                "INSERT INTO audit_events (seq, time, event, outcome) \
                 VALUES ({events}, 1700000000, 'token.issued', 'success')"
            ),
            format!("seq {events}: inserted"),
        ),
        (
            "INSERT INTO audit_events (time, event, outcome) VALUES (1700000000, 'token.revoked', 'success')"
                .into(),
            format!("seq {events}: inserted"),
        ),
        (
            "UPDATE audit_events SET seq = -1 WHERE seq = 5; \
             UPDATE audit_events SET seq = 5 WHERE seq = 6; \
             UPDATE audit_events SET seq = 6 WHERE seq = -1"
                .into(),
            "seq 5: reordered".into(),
        ),
        (
            "DELETE FROM audit_events WHERE seq >= 10".into(),
            "seq 10: truncated".into(),
        ),
        // The head lowered to match: the checkpoints still sign more.
        (
            "DELETE FROM audit_events WHERE seq >= 10; UPDATE audit_head SET next = 10".into(),
            "seq 10: truncated".into(),
        ),
        (
            format!("UPDATE audit_checkpoints SET note = '{forged}' WHERE size = {events}"),
            format!("seq {last}: bad signature"),
        ),
    ]
}

const SAVE: &str = "CREATE TABLE saved_events AS SELECT * FROM audit_events; \
                    CREATE TABLE saved_checkpoints AS SELECT * FROM audit_checkpoints";

fn restore(overriding: &str) -> String {
    format!(
        "DELETE FROM audit_events; INSERT INTO audit_events {overriding} SELECT * FROM saved_events; \
         DELETE FROM audit_checkpoints; INSERT INTO audit_checkpoints SELECT * FROM saved_checkpoints; \
         UPDATE audit_head SET next = (SELECT COALESCE(MAX(seq), -1) + 1 FROM saved_events)"
    )
}

fn newest_note(dir: &Path, source: &[&str]) -> String {
    let mut args = vec!["audit", "export"];
    args.extend_from_slice(source);
    let out = run(dir, None, &args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains("\"checkpoint\""))
        .unwrap();
    serde_json::from_str::<Value>(last).unwrap()["note"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs `statements` with `sqlite3` on the test's database; its output.
fn sqlite(dir: &Path, statements: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(dir.join("data/tokengate.db"))
        .arg(statements)
        .output()
        .expect("sqlite3 (Debian package sqlite3) runs");
    assert!(
        out.status.success(),
        "{statements}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each tampering on a log restored before it (`sql` runs statements on the database,
/// `overriding` is what PostgreSQL needs to insert identity values back), named by `verify`.
fn tamper_each(dir: &Path, source: &[&str], events: u64, sql: &dyn Fn(&str), overriding: &str) {
    let mut verify = vec!["audit", "verify"];
    verify.extend_from_slice(source);
    verify_passes(dir, &verify, events);
    sql(SAVE);
    for (tamper, expected) in tamperings(events, &newest_note(dir, source)) {
        sql(&restore(overriding));
        verify_passes(dir, &verify, events);
        sql(&tamper);
        verify_fails(dir, &verify, &expected);
    }
    sql(&restore(overriding));
}

#[test]
fn tampering_with_sqlite_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("t.toml"), config()).unwrap();
    let source = ["--data-dir", "data"];
    let events = make_log(dir, &source, &|sql| drop(sqlite(dir, sql)));
    tamper_each(dir, &source, events, &|sql| drop(sqlite(dir, sql)), "");
    a_kept_checkpoint_shows_a_cut_log(dir, events);
    exports_edited(dir, &source, events);
    keys_and_prove(dir, &source);
    // Pruning refuses a log that does not verify, and removes nothing.
    sqlite(
        dir,
        "UPDATE audit_events SET subject = 'mallory' WHERE seq = 3",
    );
    let why = "nothing was pruned: the log does not verify: seq 3: changed";
    verify_fails(dir, &PRUNE, why);
    sqlite(dir, &restore(""));
    let total = pruned(dir, events);
    tampered_after_pruning(dir, events, total);
}

/// The newest checkpoint deleted with the events after the one before it: a valid shorter
/// log, which only a checkpoint kept apart shows.
fn a_kept_checkpoint_shows_a_cut_log(dir: &Path, events: u64) {
    sqlite(
        dir,
        &format!(
            "DELETE FROM audit_checkpoints WHERE size = {events}; \
             DELETE FROM audit_events WHERE seq >= 10; UPDATE audit_head SET next = 10"
        ),
    );
    let verify = ["audit", "verify", "--data-dir", "data"];
    if sqlite(dir, "SELECT size FROM audit_checkpoints WHERE size > 10")
        .trim()
        .is_empty()
    {
        verify_passes(dir, &verify, 10);
    }
    let kept = [
        "audit",
        "verify",
        "--data-dir",
        "data",
        "--checkpoint",
        "kept.json",
    ];
    verify_fails(dir, &kept, "seq 10: truncated");
    sqlite(dir, &restore(""));
    sqlite(dir, &format!("UPDATE audit_head SET next = {events}"));
    verify_passes(dir, &kept, events);
}

const PRUNE: [&str; 6] = [
    "audit",
    "prune",
    "--data-dir",
    "data",
    "--before",
    "2999-01-01",
];

/// Prunes every event signed (the newest checkpoint is older than the date), serves on
/// from the frontier, and checks what remains verifies, from the database and an export;
/// the number of events then.
fn pruned(dir: &Path, events: u64) -> u64 {
    let out = ok_json(dir, &PRUNE);
    assert_eq!(out["pruned_before_seq"], events, "{out}");
    assert_eq!(out["events_removed"], events, "{out}");
    let verify = ["audit", "verify", "--data-dir", "data"];
    verify_passes(dir, &verify, events);
    assert_eq!(
        ok_json(dir, &PRUNE)["events_removed"],
        0,
        "nothing more to prune"
    );
    // A node starts over the pruned log and signs on from its frontier.
    let mut server = start(
        dir,
        Some(MASTER),
        &["serve", "--config", "t.toml", "--data-dir", "data"],
    );
    let (_, auth) = svc_client(dir, &["--config", "t.toml", "--data-dir", "data"], "read");
    get_token(&server.addr, &auth);
    let total = events + 2;
    wait_for("a checkpoint after the pruned part", || {
        let (status, body) = admin_get(&server, "/admin/audit/checkpoint");
        (status == 200 && body["size"] == total)
            .then_some(())
            .ok_or_else(|| format!("{status} {body}"))
    });
    assert_eq!(
        admin_get(&server, &format!("/admin/audit/proof/{}", events + 1)).0,
        200
    );
    assert_eq!(admin_get(&server, "/admin/audit/proof/2").0, 404);
    server.stop();
    verify_passes(dir, &verify, total);
    let export = [
        "audit",
        "export",
        "--data-dir",
        "data",
        "--out",
        "pruned.jsonl",
    ];
    assert!(run(dir, None, &export).status.success());
    let text = std::fs::read_to_string(dir.join("pruned.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&first["type"], &first["size"]),
        (&Value::from("start"), &Value::from(events))
    );
    verify_passes(
        dir,
        &["audit", "verify", "pruned.jsonl", "--keys", "keys.json"],
        total,
    );
    total
}

/// After pruning: removed events have no proof; a row slipped into the pruned part and a
/// change after it are named.
fn tampered_after_pruning(dir: &Path, events: u64, total: u64) {
    let prove = |seq: u64| {
        run(
            dir,
            None,
            &["audit", "prove", &seq.to_string(), "--data-dir", "data"],
        )
    };
    assert_eq!(prove(2).status.code(), Some(1));
    assert!(prove(events).status.success());
    let verify = ["audit", "verify", "--data-dir", "data"];
    sqlite(dir, "INSERT INTO audit_events (seq, time, event, outcome) VALUES (2, 1700000000, 'token.issued', 'success')");
    verify_fails(dir, &verify, "seq 2: inserted");
    sqlite(dir, "DELETE FROM audit_events WHERE seq = 2");
    verify_passes(dir, &verify, total);
    sqlite(
        dir,
        &format!(
            "UPDATE audit_events SET client_id = 'mallory' WHERE seq = {}",
            events + 1
        ),
    );
    verify_fails(dir, &verify, &format!("seq {}: changed", events + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_postgres_is_named() {
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            std::fs::write(dir.join("t.toml"), config()).unwrap();
            let source = ["--database-url", url.as_str()];
            let psql = |statements: &str| {
                let out = std::process::Command::new("psql")
                    .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", statements])
                    .output()
                    .expect("psql runs");
                assert!(out.status.success(), "{statements}: {}", String::from_utf8_lossy(&out.stderr));
            };
            let events = make_log(dir, &source, &psql);
            tamper_each(dir, &source, events, &psql, "OVERRIDING SYSTEM VALUE");
            // A row out of the sequence (a negative number) is still counted.
            psql("INSERT INTO audit_events (seq, time, event, outcome) VALUES (-1, 1, 'x', 'success')");
            let verify = ["audit", "verify", "--database-url", url.as_str()];
            verify_fails(dir, &verify, &format!("seq {events}: inserted"));
        })
        .await
        .unwrap();
    })
    .await;
}

/// An export edited as a text editor would: each change named; the untouched export
/// verifies offline with only the published keys.
fn exports_edited(dir: &Path, source: &[&str], events: u64) {
    let mut args = vec!["audit", "export", "--out", "log.jsonl"];
    args.extend_from_slice(source);
    assert!(run(dir, None, &args).status.success());
    let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let verify = ["audit", "verify", "edited.jsonl", "--keys", "keys.json"];
    let check = |edited: &[String], expected: Option<&str>| {
        std::fs::write(dir.join("edited.jsonl"), edited.join("\n") + "\n").unwrap();
        match expected {
            None => verify_passes(dir, &verify, events),
            Some(expected) => verify_fails(dir, &verify, expected),
        }
    };
    let at = |seq: u64| {
        lines
            .iter()
            .position(|l| {
                l.contains(&format!("\"seq\":{seq},")) || l.contains(&format!("\"seq\":{seq}}}"))
            })
            .unwrap()
    };
    check(&lines, None);
    // Without --keys an export cannot be trusted: refused as a usage error.
    assert_eq!(
        run(dir, None, &["audit", "verify", "log.jsonl"])
            .status
            .code(),
        Some(2)
    );

    let mut changed = lines.clone();
    changed[at(5)] = changed[at(5)].replace("token.issued", "token.revoked");
    check(&changed, Some("seq 5: changed"));
    let mut deleted = lines.clone();
    deleted.remove(at(5));
    check(&deleted, Some("seq 5: missing"));
    let mut inserted = lines.clone();
    inserted.insert(
        at(5) + 1,
        lines[at(5)].replace("token.issued", "token.revoked"),
    );
    check(&inserted, Some("seq 5: inserted"));
    let mut swapped = lines.clone();
    swapped.swap(at(5), at(6));
    check(&swapped, Some("seq 5: reordered"));
    let truncated: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i < at(10) || l.contains("\"type\":\"checkpoint\""))
        .map(|(_, l)| l.clone())
        .collect();
    check(&truncated, Some("seq 10: truncated"));
    let mut forged = lines.clone();
    let last = forged.len() - 1;
    let note = serde_json::from_str::<Value>(&forged[last]).unwrap()["note"]
        .as_str()
        .unwrap()
        .to_owned();
    forged[last] = audit::export::checkpoint_line(events, &forged_note(&note));
    check(&forged, Some(&format!("seq {}: bad signature", events - 1)));
    let mut garbage = lines.clone();
    garbage.insert(3, "not json".into());
    let before = lines[..3]
        .iter()
        .filter(|l| l.contains("\"type\":\"event\""))
        .count();
    check(&garbage, Some(&format!("seq {before}: malformed")));
}

fn keys_and_prove(dir: &Path, source: &[&str]) {
    let mut args = vec!["audit", "keys"];
    args.extend_from_slice(source);
    let keys = ok_json(dir, &args);
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("keys.json")).unwrap()).unwrap();
    assert_eq!(keys, published);
    assert_eq!(keys["keys"][0]["state"], "active");
    let mut args = vec!["audit", "prove", "4"];
    args.extend_from_slice(source);
    let proof = ok_json(dir, &args);
    assert_eq!(proof["verified"], true, "{proof}");
    assert_eq!(proof["seq"], 4);
    let mut args = vec!["audit", "prove", "999"];
    args.extend_from_slice(source);
    assert_eq!(run(dir, None, &args).status.code(), Some(1));
    // No database there: refused, nothing created.
    let out = run(dir, None, &["audit", "verify", "--data-dir", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.join("nowhere").exists());
}
