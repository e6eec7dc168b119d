//! End-to-end tests of the `tokengate` binary: outputs, exit statuses and error format.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

const JWS_ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];

/// A scratch directory under target/, removed afterwards; one per test. Commands run in it.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = tmp.join(format!("cli-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        fs::write(self.0.join(name), bytes).unwrap();
    }

    fn write_json(&self, name: &str, value: &Value) {
        self.write(name, serde_json::to_vec_pretty(value).unwrap());
    }

    /// Runs `tokengate` with `cmd` split on whitespace, stdin empty.
    fn tg(&self, cmd: &str) -> Run {
        self.exec(&cmd.split_whitespace().collect::<Vec<_>>(), None)
    }

    /// Runs `tokengate` with `cmd` split on whitespace, feeding `stdin`.
    fn tg_in(&self, cmd: &str, stdin: impl AsRef<[u8]>) -> Run {
        let args = cmd.split_whitespace().collect::<Vec<_>>();
        self.exec(&args, Some(stdin.as_ref()))
    }

    /// Runs `tokengate` with arguments that may contain spaces.
    fn tg_args(&self, args: &[&str]) -> Run {
        self.exec(args, None)
    }

    /// Runs `cmd`, asserts success and returns it.
    fn ok(&self, cmd: &str) -> Run {
        self.tg(cmd).ok()
    }

    /// Runs `cmd` with `stdin`, asserts success and returns it.
    fn ok_in(&self, cmd: &str, stdin: impl AsRef<[u8]>) -> Run {
        self.tg_in(cmd, stdin).ok()
    }

    /// Runs `cmd`, asserts success and returns stdout trimmed (a token, a thumbprint).
    fn line(&self, cmd: &str) -> String {
        self.ok(cmd).line()
    }

    /// Runs `cmd` and asserts it fails with `exit` and `error[code]: …`.
    fn fail(&self, cmd: &str, exit: i32, code: &str) -> Run {
        self.tg(cmd).fails(exit, code)
    }

    /// Runs `cmd` with `stdin` and asserts it fails with `exit` and `error[code]: …`.
    fn fail_in(&self, cmd: &str, stdin: impl AsRef<[u8]>, exit: i32, code: &str) -> Run {
        self.tg_in(cmd, stdin).fails(exit, code)
    }

    fn exec(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(&self.0)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            // A thread, so a child that writes before reading everything cannot deadlock us.
            std::thread::spawn(move || pipe.write_all(&bytes));
        }
        let out = child.wait_with_output().unwrap();
        Run {
            cmd: args.join(" "),
            code: out.status.code().expect("killed by a signal"),
            stdout: out.stdout,
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Generates a key for `alg` into `name` and returns its JSON.
    fn generate(&self, alg: &str, name: &str) -> Map<String, Value> {
        let run = self.tg(&format!("jwk generate --alg {alg}")).ok();
        self.write(name, &run.stdout);
        run.object()
    }

    /// Writes the public half of key file `from` into `to`.
    fn public(&self, from: &str, to: &str) -> Map<String, Value> {
        let run = self.tg(&format!("jwk public {from}")).ok();
        self.write(to, &run.stdout);
        run.object()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Run {
    cmd: String,
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "`tokengate {}` failed: {}",
            self.cmd, self.stderr
        );
        self
    }

    /// Asserts a failure with `exit`, reported on stderr as `error[code]: …`, nothing on stdout.
    fn fails(self, exit: i32, code: &str) -> Self {
        let cmd = &self.cmd;
        assert_eq!(
            self.code, exit,
            "`tokengate {cmd}`: stderr {:?}",
            self.stderr
        );
        let prefix = format!("error[{code}]: ");
        assert!(
            self.stderr.starts_with(&prefix) && self.stderr.len() > prefix.len() + 3,
            "`tokengate {cmd}`: expected {prefix:?}…, got {:?}",
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "`tokengate {cmd}` printed {:?}",
            self.text()
        );
        self
    }

    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// stdout, trimmed: a token, a thumbprint.
    fn line(&self) -> String {
        self.text().trim().to_owned()
    }

    fn object(&self) -> Map<String, Value> {
        match serde_json::from_slice(&self.stdout) {
            Ok(Value::Object(map)) => map,
            other => panic!("`tokengate {}` printed no JSON object: {other:?}", self.cmd),
        }
    }
}

/// Decodes a base64url JSON segment (header or claims) of a token.
fn segment(token: &str, index: usize) -> Map<String, Value> {
    let part = token.split('.').nth(index).unwrap();
    match serde_json::from_slice(&jose::b64::decode(part).unwrap()).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn lifetime(claims: &Map<String, Value>) -> i64 {
    claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
}

/// The exact pipeline from the documentation, through a real shell.
#[cfg(unix)]
#[test]
fn documented_pipeline_prints_the_claims() {
    let dir = Dir::new("pipeline");
    let script = concat!(
        r#""$TG" jwk generate --alg ES256 >k.json && "#,
        r#""$TG" jwt sign --key k.json --iss a --aud b --exp 5m | "#,
        r#""$TG" jwt verify --key k.json --iss a --aud b"#,
    );
    let out = Command::new("sh")
        .args(["-c", script])
        .env("TG", BIN)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["iss"], "a");
    assert_eq!(claims["aud"], "b");
    assert_eq!(lifetime(&claims), 300);
}

#[test]
fn every_jws_algorithm_round_trips_compact_json_and_detached() {
    let dir = Dir::new("jws-round-trips");
    // Payloads are signed byte for byte: surrounding whitespace and non-UTF-8 bytes included.
    let payload: &[u8] = b"  payload with \x00\xff bytes\n\n";
    dir.write("payload.bin", payload);
    dir.write("other.bin", b"other payload");
    for alg in JWS_ALGS {
        let jwk = dir.generate(alg, "key.json");
        assert_eq!(jwk["alg"], alg);
        let thumbprint = dir.line("jwk thumbprint key.json");
        assert_eq!(
            jwk["kid"],
            thumbprint.as_str(),
            "{alg}: kid defaults to the thumbprint"
        );

        // Asymmetric keys verify with their public half too; HMAC keys only with themselves.
        let vkey = if alg.starts_with("HS") {
            dir.fail("jwk public key.json", 2, "ERR_JOSE_KEY_UNSUITABLE");
            "key.json"
        } else {
            let public = dir.public("key.json", "pub.json");
            assert!(!public.contains_key("d"), "{alg}: the public key leaks d");
            "pub.json"
        };
        let verify = |flags: &str| dir.ok(&format!("jws verify --key {vkey} {flags}")).stdout;
        let rejected = |flags: &str| {
            let cmd = format!("jws verify --key {vkey} {flags}");
            dir.fail(&cmd, 1, "ERR_JWS_SIGNATURE_INVALID");
        };

        // Compact, the payload from a file or from stdin.
        let token = dir.line("jws sign --key key.json payload.bin");
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(segment(&token, 0)["alg"], alg);
        assert_eq!(segment(&token, 0)["kid"], thumbprint.as_str());
        dir.write("compact.jws", &token);
        let from_stdin = dir.ok_in("jws sign --key key.json", payload).line();
        dir.write("stdin.jws", &from_stdin);
        assert_eq!(verify("compact.jws"), payload, "{alg}");
        assert_eq!(verify("stdin.jws"), payload, "{alg}: payload from stdin");
        let cmd = format!("jws verify --key {vkey} --alg {alg}");
        let out = dir.ok_in(&cmd, format!("{token}\n"));
        assert_eq!(out.stdout, payload, "{alg}: token on stdin");

        // Flattened JSON, verified with --json and by auto-detection.
        let flat = dir.ok("jws sign --key key.json --json payload.bin");
        let doc = flat.object();
        assert!(["payload", "protected", "signature"]
            .iter()
            .all(|m| doc.contains_key(*m)));
        dir.write("flat.json", &flat.stdout);
        assert_eq!(verify("--json flat.json"), payload, "{alg}: --json");
        assert_eq!(verify("flat.json"), payload, "{alg}: JSON detected");

        // Detached compact: `header..signature`, verified against the payload file.
        let detached = dir.line("jws sign --key key.json --detached payload.bin");
        assert!(detached.contains(".."), "{alg}: {detached}");
        dir.write("detached.jws", &detached);
        assert_eq!(verify("--payload payload.bin detached.jws"), payload);
        rejected("--payload other.bin detached.jws");
        // Without the detached payload there is nothing to verify.
        rejected("detached.jws");

        // Detached flattened JSON: no payload member.
        let flat = dir.ok("jws sign --key key.json --json --detached payload.bin");
        assert!(!flat.object().contains_key("payload"));
        dir.write("flat-detached.json", &flat.stdout);
        assert_eq!(
            verify("--json --payload payload.bin flat-detached.json"),
            payload
        );
        rejected("--payload other.bin flat-detached.json");
    }
}

#[test]
fn jws_tampering_and_algorithm_confusion_are_rejected() {
    let dir = Dir::new("jws-reject");
    dir.generate("ES256", "es.json");
    dir.generate("HS256", "hs.json");
    dir.write("payload.txt", "amount=10");
    let token = dir.line("jws sign --key es.json payload.txt");
    let parts: Vec<&str> = token.split('.').collect();
    dir.write("es.jws", &token);
    let verify = "jws verify --key es.json";

    let forged = format!(
        "{}.{}.{}",
        parts[0],
        jose::b64::encode("amount=99999"),
        parts[2]
    );
    dir.fail_in(verify, forged, 1, "ERR_JWS_SIGNATURE_INVALID");
    // An ES256 token offered to an HS256 key, or with only ES384 allowed.
    dir.fail(
        "jws verify --key hs.json es.jws",
        1,
        "ERR_JOSE_ALG_NOT_ALLOWED",
    );
    dir.fail(
        "jws verify --key es.json --alg ES384 es.jws",
        1,
        "ERR_JOSE_ALG_NOT_ALLOWED",
    );
    // `alg: none` is refused however it is spelt.
    let none = format!("{}.{}.", jose::b64::encode(r#"{"alg":"nOnE"}"#), parts[1]);
    dir.fail_in(verify, none, 1, "ERR_JOSE_NOT_SUPPORTED");

    // Not a JWS at all: a JWE, nothing, not text, compact input where JSON was promised.
    for garbage in [&b"a.b.c.d.e"[..], b"", b"\xff.\xfe.\xfd"] {
        dir.fail_in(verify, garbage, 1, "ERR_JWS_INVALID");
    }
    dir.fail(
        "jws verify --key es.json --json es.jws",
        1,
        "ERR_JOSE_JSON_INVALID",
    );
    // Oversized input is refused before any decoding, whether jose or the reader sees it.
    for len in [100 * 1024, 2 * 1024 * 1024] {
        dir.fail_in(verify, "A".repeat(len), 1, "ERR_JOSE_TOO_LARGE");
    }
}

#[test]
fn jws_sign_header_options() {
    let dir = Dir::new("jws-header");
    dir.generate("EdDSA", "ed.json");
    dir.write("p.txt", "hello");
    let sign = |flags: &[&str]| {
        let mut args = vec!["jws", "sign", "--key", "ed.json"];
        args.extend_from_slice(flags);
        args.push("p.txt");
        dir.tg_args(&args)
    };

    let token = sign(&["--header", r#"{"cty":"text/plain","x-note":[1,2]}"#])
        .ok()
        .line();
    let header = segment(&token, 0);
    assert_eq!(header["cty"], "text/plain");
    assert_eq!(header["x-note"], json!([1, 2]));
    assert_eq!(header["alg"], "EdDSA");

    // RFC 7797 unencoded payload, in the JSON serialization.
    let unencoded = sign(&["--json", "--header", r#"{"b64":false,"crit":["b64"]}"#]).ok();
    assert_eq!(unencoded.object()["payload"], "hello");
    let out = dir.ok_in("jws verify --key ed.json", &unencoded.stdout);
    assert_eq!(out.stdout, b"hello");

    sign(&["--header", r#"{"alg":"HS256"}"#]).fails(2, "ERR_USAGE");
    sign(&["--header", r#"{"a":1,"a":2}"#]).fails(2, "ERR_JOSE_JSON_INVALID");
    sign(&["--header", "[1]"]).fails(2, "ERR_JOSE_JSON_INVALID");
    sign(&["--header", r#"{"crit":["exp"]}"#]).fails(2, "ERR_JOSE_CRIT_INVALID");
}

#[test]
fn jwk_pem_export_import_keeps_the_thumbprint() {
    let dir = Dir::new("pem");
    for alg in ["RS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"] {
        let jwk = dir.generate(alg, "key.json");
        let thumbprint = jwk["kid"].as_str().unwrap().to_owned();
        dir.public("key.json", "pub.json");

        for (file, private) in [("key.json", true), ("pub.json", false)] {
            let label = if private { "PRIVATE KEY" } else { "PUBLIC KEY" };
            let pem = dir.ok(&format!("jwk export {file}")).text();
            assert!(
                pem.starts_with(&format!("-----BEGIN {label}-----\n")),
                "{alg}: {pem}"
            );
            assert!(
                pem.ends_with(&format!("-----END {label}-----\n")),
                "{alg}: {pem}"
            );
            dir.write("key.pem", &pem);

            let imported = dir.ok("jwk import key.pem").object();
            assert_eq!(imported["kid"], thumbprint.as_str(), "{alg} {label}");
            assert!(!imported.contains_key("alg"), "{alg}: no alg unless asked");
            for member in ["kty", "crv", "x", "y", "n", "e", "d"] {
                let want = jwk.get(member).filter(|_| private || member != "d");
                assert_eq!(imported.get(member), want, "{alg} {label} {member}");
            }
            let with_alg = dir.ok(&format!("jwk import --alg {alg} key.pem")).object();
            assert_eq!(with_alg["alg"], alg);
            assert_eq!(dir.line("jwk thumbprint key.pem"), thumbprint);
            // PEM on stdin, via "-".
            let from_stdin = dir.ok_in("jwk import -", &pem).object();
            assert_eq!(from_stdin["kid"], thumbprint.as_str());
        }
    }

    // A key type that cannot serve the requested algorithm; input that is not PEM.
    dir.generate("ES256", "es.json");
    dir.write("es.pem", dir.ok("jwk export es.json").stdout);
    dir.fail(
        "jwk import --alg ES384 es.pem",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    dir.fail(
        "jwk import --alg RS256 es.pem",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    dir.fail("jwk import es.json", 2, "ERR_PEM_INVALID");
    dir.fail("jwk import", 2, "ERR_USAGE");
    // Symmetric keys have no PEM form.
    dir.generate("HS256", "hs.json");
    dir.fail("jwk export hs.json", 2, "ERR_JOSE_KEY_UNSUITABLE");
}

#[test]
fn pem_keys_sign_and_verify() {
    let dir = Dir::new("pem-keys");
    dir.generate("ES256", "es.json");
    dir.public("es.json", "es.pub.json");
    dir.write("es.pem", dir.ok("jwk export es.json").stdout);
    dir.write("es.pub.pem", dir.ok("jwk export es.pub.json").stdout);
    let token = dir.line("jwt sign --key es.pem --iss i --aud a");
    let header = segment(&token, 0);
    assert_eq!(header["alg"], "ES256", "a P-256 key implies ES256");
    let thumbprint = dir.line("jwk thumbprint es.json");
    assert_eq!(
        header["kid"],
        thumbprint.as_str(),
        "PEM keys are named by their thumbprint"
    );
    let claims = dir.ok_in("jwt verify --key es.pub.pem --iss i --aud a", &token);
    assert_eq!(claims.object()["iss"], "i");

    // RSA PEM keys carry no algorithm: --alg is needed to sign and to verify.
    let rsa = dir.generate("RS256", "rsa.json");
    dir.write("rsa.pem", dir.ok("jwk export rsa.json").stdout);
    let err = dir.fail("jwt sign --key rsa.pem --iss i --aud a", 2, "ERR_USAGE");
    assert!(err.stderr.contains("--alg"), "{}", err.stderr);
    let token = dir.line("jwt sign --key rsa.pem --alg PS256 --iss i --aud a");
    dir.fail_in(
        "jwt verify --key rsa.pem --iss i --aud a",
        &token,
        2,
        "ERR_USAGE",
    );
    dir.ok_in(
        "jwt verify --key rsa.pem --alg PS256 --iss i --aud a",
        &token,
    );
    // The JWK says RS256; a PS256 token does not fit it.
    assert_eq!(rsa["alg"], "RS256");
    let cmd = "jwt verify --key rsa.json --iss i --aud a";
    dir.fail_in(cmd, &token, 1, "ERR_JOSE_ALG_NOT_ALLOWED");
}

#[test]
fn jwk_generate_options() {
    let dir = Dir::new("generate");
    let key = dir
        .ok("jwk generate --alg ES256 --crv P-256 --kid k1")
        .object();
    assert_eq!(
        [&key["kid"], &key["crv"], &key["kty"]],
        ["k1", "P-256", "EC"]
    );
    assert!(key.contains_key("d"), "generate prints the private key");
    let ed = dir.ok("jwk generate --alg EdDSA --crv Ed25519").object();
    assert_eq!([&ed["kty"], &ed["crv"]], ["OKP", "Ed25519"]);
    let hs = dir.ok("jwk generate --alg HS256 --bits 512").object();
    assert_eq!(
        jose::b64::decode(hs["k"].as_str().unwrap()).unwrap().len(),
        64
    );
    let rsa = dir.ok("jwk generate --alg PS256").object();
    let n = jose::b64::decode(rsa["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "RSA defaults to 2048 bits");

    // JWE key generation is not there yet: a clear "not implemented", exit 2.
    for flags in [
        "--alg ES256 --enc A256GCM",
        "--alg ES256 --crv X25519",
        "--alg ES256 --crv P-384",
        "--alg RS256 --crv P-256",
        "--alg ECDH-ES",
        "--alg RSA-OAEP-256",
    ] {
        let cmd = format!("jwk generate {flags}");
        let err = dir.fail(&cmd, 2, "ERR_JOSE_NOT_SUPPORTED");
        let said = err
            .stderr
            .contains("JWE key generation is not implemented yet");
        assert!(said, "{cmd}: {}", err.stderr);
    }
    dir.fail("jwk generate --alg none", 2, "ERR_JOSE_NOT_SUPPORTED");
    dir.fail("jwk generate --alg es256", 2, "ERR_JOSE_NOT_SUPPORTED");
    dir.fail(
        "jwk generate --alg RS256 --bits 1024",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    dir.fail(
        "jwk generate --alg HS512 --bits 256",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    dir.fail(
        "jwk generate --alg ES256 --bits 256",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    dir.fail("jwk generate --alg ES256 --bits many", 2, "ERR_USAGE");
    dir.fail("jwk generate", 2, "ERR_USAGE");
}

#[test]
fn jwk_sets() {
    let dir = Dir::new("sets");
    let es256 = dir.generate("ES256", "es256.json");
    let es384 = dir.generate("ES384", "es384.json");
    let set = json!({"keys": [dir.public("es256.json", "p1"), dir.public("es384.json", "p2")]});
    dir.write_json("set.json", &set);
    dir.write_json("private-set.json", &json!({"keys": [es256, es384]}));

    // `jwk public` of a set is the public set; single-key commands refuse sets.
    let public_set = dir.ok("jwk public private-set.json").object();
    assert_eq!(Value::Object(public_set), set);
    dir.fail("jwk thumbprint set.json", 2, "ERR_USAGE");
    dir.fail("jwk export set.json", 2, "ERR_USAGE");

    // Verification selects by kid, and each key determines its own algorithm.
    let verify = |flags: &str| format!("jwt verify --key set.json --iss i --aud a {flags}");
    for key in ["es256.json", "es384.json"] {
        let token = dir.line(&format!("jwt sign --key {key} --iss i --aud a"));
        dir.ok_in(&verify(""), &token);
    }
    let token = dir.line("jwt sign --key es256.json --iss i --aud a");
    dir.fail_in(
        &verify("--alg ES384"),
        &token,
        1,
        "ERR_JOSE_ALG_NOT_ALLOWED",
    );
    dir.ok_in(&verify("--alg ES384 --alg ES256"), &token);

    // A kid the set does not have.
    dir.generate("ES256", "stranger.json");
    let token = dir.line("jwt sign --key stranger.json --iss i --aud a");
    dir.fail_in(&verify(""), &token, 1, "ERR_JWKS_NO_MATCHING_KEY");

    // A set key without "alg" whose type allows several: the options are incomplete (exit 2).
    let mut rsa = dir.generate("RS256", "rsa.json");
    rsa.remove("alg");
    dir.write_json("rsa-noalg.json", &Value::Object(rsa.clone()));
    dir.write_json("rsa-set.json", &json!({"keys": [rsa]}));
    let token = dir.line("jwt sign --key rsa-noalg.json --alg RS256 --iss i --aud a");
    let verify = |flags: &str| format!("jwt verify --key rsa-set.json --iss i --aud a {flags}");
    dir.fail_in(&verify(""), &token, 2, "ERR_JOSE_INVALID_OPTIONS");
    dir.ok_in(&verify("--alg RS256"), &token);

    // Signing: a set is usable only with exactly one private key in it.
    let ed = dir.generate("EdDSA", "ed.json");
    dir.write_json("one-private.json", &json!({"keys": [ed, set["keys"][0]]}));
    let token = dir.line("jwt sign --key one-private.json --iss i --aud a");
    dir.ok_in("jwt verify --key ed.json --iss i --aud a", &token);
    dir.fail("jwt sign --key private-set.json --iss i", 2, "ERR_USAGE");
    dir.fail_in("jws sign --key set.json", "x", 2, "ERR_USAGE");
}

#[test]
fn jwt_sign_builds_the_claims() {
    let dir = Dir::new("jwt-claims");
    dir.generate("ES256", "k.json");
    dir.write_json(
        "base.json",
        &json!({"scope": "read", "iss": "file", "n": 1}),
    );
    let mut args = "jwt sign --key k.json --claims base.json --iss flag --sub alice --aud x \
                    --aud y --jti id-1 --nbf 0s --exp 2h --typ at+jwt --claim n=2"
        .split_whitespace()
        .collect::<Vec<_>>();
    let claim_flags = [r#"roles=["admin"]"#, "note=plain text", r#"scope="write""#];
    args.extend(claim_flags.iter().flat_map(|c| ["--claim", c]));
    let token = dir.tg_args(&args).ok().line();
    assert_eq!(segment(&token, 0)["typ"], "at+jwt");
    let claims = segment(&token, 1);
    assert_eq!(claims["iss"], "flag", "flags override the claims file");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["aud"],
        json!(["x", "y"]),
        "several --aud give an array"
    );
    assert_eq!(claims["jti"], "id-1");
    assert_eq!(claims["n"], 2, "--claim overrides the claims file");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["note"], "plain text", "non-JSON values are strings");
    assert_eq!(claims["scope"], "write");
    assert_eq!(lifetime(&claims), 7_200);
    assert_eq!(claims["nbf"], claims["iat"]);

    // Verify prints exactly the token's claims; --typ is compared as a media type.
    dir.write("t.jwt", &token);
    let verify = |flags: &str| format!("jwt verify --key k.json --iss flag --aud y {flags} t.jwt");
    assert_eq!(dir.ok(&verify("--typ application/at+jwt")).object(), claims);
    dir.fail(&verify("--typ JWT"), 1, "ERR_JOSE_TYP_INVALID");

    // Defaults: typ JWT, exp one hour after iat, no nbf; a single --aud is a string.
    let token = dir.line("jwt sign --key k.json");
    assert_eq!(segment(&token, 0)["typ"], "JWT");
    let claims = segment(&token, 1);
    assert_eq!(lifetime(&claims), 3_600);
    assert!(["nbf", "aud", "iss", "sub", "jti"]
        .iter()
        .all(|c| !claims.contains_key(*c)));
    let claims = segment(&dir.line("jwt sign --key k.json --aud solo --exp 90"), 1);
    assert_eq!(claims["aud"], "solo");
    assert_eq!(lifetime(&claims), 90);
    // An exp from the claims file is kept when --exp is not given.
    dir.write_json("exp.json", &json!({"exp": 4_102_444_800u64}));
    let token = dir.line("jwt sign --key k.json --claims exp.json");
    assert_eq!(segment(&token, 1)["exp"], 4_102_444_800u64);

    // Bad input to sign is a usage, claims or key error (exit 2), never a token.
    dir.fail("jwt sign --key k.json --exp 5w", 2, "ERR_USAGE");
    dir.fail("jwt sign --key k.json --claim noequals", 2, "ERR_USAGE");
    let bad_exp = r#"jwt sign --key k.json --claim exp="soon""#;
    dir.fail(bad_exp, 2, "ERR_JWT_CLAIM_VALIDATION_FAILED");
    dir.write("list.json", "[1]");
    dir.fail(
        "jwt sign --key k.json --claims list.json",
        2,
        "ERR_JOSE_JSON_INVALID",
    );
    dir.fail("jwt sign --key k.json --claims missing.json", 2, "ERR_IO");
    dir.fail_in("jwt sign --key - --claims -", "{}", 2, "ERR_USAGE");
    dir.public("k.json", "pub.json");
    dir.fail("jwt sign --key pub.json", 2, "ERR_JOSE_KEY_UNSUITABLE");
}

#[test]
fn jwt_verify_rejections_exit_1() {
    let dir = Dir::new("jwt-reject");
    dir.generate("ES256", "k.json");
    dir.generate("ES256", "other.json");
    let sign = |flags: &str| dir.line(&format!("jwt sign --key k.json --iss a --aud b {flags}"));
    let verify = |flags: &str| format!("jwt verify --key k.json --iss a --aud b {flags}");
    let good = sign("");
    assert_eq!(dir.ok_in(&verify(""), &good).object()["iss"], "a");

    // Tampered claims under the old signature; a valid signature by another key.
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = segment(&good, 1);
    claims.insert("aud".into(), "admin".into());
    let claims = jose::b64::encode(Value::Object(claims).to_string());
    let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
    dir.fail_in(&verify(""), forged, 1, "ERR_JWS_SIGNATURE_INVALID");
    let other = dir.line("jwt sign --key other.json --iss a --aud b");
    dir.fail_in(&verify(""), other, 1, "ERR_JWS_SIGNATURE_INVALID");

    // Wrong issuer or audience.
    let claim_invalid = "ERR_JWT_CLAIM_VALIDATION_FAILED";
    dir.fail_in(
        "jwt verify --key k.json --iss x --aud b",
        &good,
        1,
        claim_invalid,
    );
    dir.fail_in(
        "jwt verify --key k.json --iss a --aud x",
        &good,
        1,
        claim_invalid,
    );
    // Expired; a day of leeway forgives a token that expired a moment ago.
    dir.fail_in(&verify(""), sign("--claim exp=1"), 1, "ERR_JWT_EXPIRED");
    dir.fail_in(&verify(""), sign("--exp 0s"), 1, "ERR_JWT_EXPIRED");
    dir.ok_in(&verify("--leeway 1d"), sign("--exp 0s"));
    // Not yet valid.
    let future = sign("--nbf 1h");
    dir.fail_in(&verify(""), &future, 1, "ERR_JWT_NOT_YET_VALID");
    dir.ok_in(&verify("--leeway 2h"), &future);
    // Algorithm and type policy.
    dir.fail_in(&verify("--alg ES384"), &good, 1, "ERR_JOSE_ALG_NOT_ALLOWED");
    dir.ok_in(&verify("--alg ES384 --alg ES256"), &good);
    dir.fail_in(&verify("--typ at+jwt"), &good, 1, "ERR_JOSE_TYP_INVALID");
    // Not a JWT: garbage, or a JWS whose payload is not a claims set.
    dir.fail_in(&verify(""), "not.a.jwt", 1, "ERR_JOSE_BASE64_INVALID");
    dir.fail_in(&verify(""), "garbage", 1, "ERR_JWT_INVALID");
    let jws = dir.ok_in("jws sign --key k.json", "just text").line();
    dir.fail_in(&verify(""), jws, 1, "ERR_JWT_INVALID");
}

#[test]
fn usage_key_and_io_errors_exit_2() {
    let dir = Dir::new("exit-2");
    dir.generate("ES256", "k.json");
    let token = dir.line("jwt sign --key k.json --iss a --aud b");
    dir.write("t.jwt", &token);
    let verify = |key: &str| format!("jwt verify --key {key} --iss a --aud b t.jwt");

    let err = dir.fail(&verify("missing.json"), 2, "ERR_IO");
    assert!(err.stderr.contains("missing.json"), "{}", err.stderr);
    dir.fail(
        "jwt verify --key k.json --iss a --aud b missing.jwt",
        2,
        "ERR_IO",
    );
    // Malformed keys.
    let oct = json!({"kty": "oct", "k": "AAAA", "kid": "1"});
    let off_curve = json!({"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"});
    let bad_keys = [
        (
            "garbage.json",
            json!("this is not a key"),
            "ERR_JOSE_JSON_INVALID",
        ),
        ("no-kty.json", json!({"x": "y"}), "ERR_JWK_INVALID"),
        ("off-curve.json", off_curve, "ERR_JWK_INVALID"),
        (
            "dup-kid.json",
            json!({"keys": [oct.clone(), oct]}),
            "ERR_JWKS_INVALID",
        ),
    ];
    for (file, key, code) in bad_keys {
        dir.write_json(file, &key);
        dir.fail(&verify(file), 2, code);
    }
    dir.write("empty.json", "");
    dir.fail(&verify("empty.json"), 2, "ERR_JOSE_JSON_INVALID");
    dir.write(
        "bad.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    dir.fail(&verify("bad.pem"), 2, "ERR_PEM_INVALID");
    dir.write("huge.json", " ".repeat(2 * 1024 * 1024));
    dir.fail(&verify("huge.json"), 2, "ERR_JOSE_TOO_LARGE");

    // RSA and oct keys without "alg": the key does not say which algorithm, --alg must.
    for alg in ["RS256", "HS256"] {
        let mut key = dir.generate(alg, "key.json");
        key.remove("alg");
        dir.write_json("noalg.json", &Value::Object(key));
        let err = dir.fail_in("jws sign --key noalg.json", "x", 2, "ERR_USAGE");
        assert!(err.stderr.contains("--alg"), "{}", err.stderr);
        let err = dir.fail(&verify("noalg.json"), 2, "ERR_USAGE");
        assert!(err.stderr.contains("--alg"), "{}", err.stderr);
        dir.fail("jws verify --key noalg.json t.jwt", 2, "ERR_USAGE");
        let signed = dir
            .ok_in(&format!("jws sign --key noalg.json --alg {alg}"), "x")
            .line();
        let out = dir.ok_in(&format!("jws verify --key noalg.json --alg {alg}"), signed);
        assert_eq!(out.stdout, b"x");
    }

    // Flags: unknown, missing, malformed; clap's messages in our format.
    for cmd in [
        "jwt verify --key k.json --iss a --aud b --bogus t.jwt",
        "jwt verify --key k.json --aud b t.jwt",
        "jwt verify --key k.json --iss a t.jwt",
        "jwt verify --iss a --aud b t.jwt",
        "jwt verify --key k.json --iss a --aud b --leeway soon t.jwt",
        "jwt frobnicate",
        "",
    ] {
        dir.fail(cmd, 2, "ERR_USAGE");
    }
    dir.fail(
        &format!("{} --alg none", verify("k.json")),
        2,
        "ERR_JOSE_NOT_SUPPORTED",
    );
    // Key and token cannot both come from stdin.
    dir.fail_in("jwt verify --key - --iss a --aud b", "{}", 2, "ERR_USAGE");

    // Help and version are successes, on stdout.
    let help = dir.ok("jwt sign --help");
    assert!(help.text().contains("--claim <NAME=JSON>") && help.stderr.is_empty());
    assert!(dir.ok("--version").text().starts_with("tokengate "));
}

#[test]
fn jwt_inspect_is_labelled_unverified() {
    let dir = Dir::new("inspect");
    dir.generate("ES256", "k.json");
    let token = dir.line("jwt sign --key k.json --iss a --claim exp=1");
    // Expired, and with a broken signature: inspect shows it anyway, labelled.
    let broken = format!("{}AAAA", token.trim_end_matches(|c| c != '.'));
    for input in [&token, &broken] {
        let out = dir.ok_in("jwt inspect", input).object();
        assert_eq!(out["unverified"], true);
        assert_eq!(out["header"]["alg"], "ES256");
        assert_eq!(out["header"]["typ"], "JWT");
        assert_eq!(out["claims"]["iss"], "a");
        assert_eq!(out["claims"]["exp"], 1);
    }
    dir.write("t.jwt", format!("\n  {token}  \n"));
    assert_eq!(dir.ok("jwt inspect t.jwt").object()["claims"]["iss"], "a");

    let jwe_header = jose::b64::encode(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}"#);
    let jwe = format!("{jwe_header}.AAAA.AAAA.AAAA.AAAA");
    let out = dir.ok_in("jwt inspect", jwe).object();
    assert_eq!(out["unverified"], true);
    assert_eq!(out["header"]["enc"], "A256GCM");
    assert_eq!(out["claims"], Value::Null);
    assert!(out["note"].as_str().unwrap().contains("JWE"));

    dir.fail_in("jwt inspect", "garbage", 2, "ERR_JWS_INVALID");
    dir.fail_in("jwt inspect", "a.b.c", 2, "ERR_JOSE_BASE64_INVALID");
    dir.fail_in("jwt inspect", "", 2, "ERR_JWS_INVALID");
    dir.fail("jwt inspect missing.jwt", 2, "ERR_IO");
}
