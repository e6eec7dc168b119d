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
    /// Runs a shell pipeline in this directory with `$TG` set to the binary; it must succeed.
    #[cfg(unix)]
    fn shell(&self, script: &str) -> std::process::Output {
        let out = Command::new("sh")
            .args(["-c", script])
            .env("TG", BIN)
            .current_dir(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

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
    let out = dir.shell(script);
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

    // --enc and --crv that do not apply to a JWS algorithm are refused, naming the flag.
    for (flags, named) in [
        ("--alg ES256 --enc A256GCM", "--enc"),
        ("--alg ES256 --crv X25519", "--crv"),
        ("--alg ES256 --crv P-384", "--crv"),
        ("--alg RS256 --crv P-256", "--crv"),
    ] {
        let cmd = format!("jwk generate {flags}");
        let err = dir.fail(&cmd, 2, "ERR_JOSE_KEY_UNSUITABLE");
        assert!(err.stderr.contains(named), "{cmd}: {}", err.stderr);
    }
    dir.fail(
        "jwk generate --alg ES256 --crv P-999",
        2,
        "ERR_JOSE_NOT_SUPPORTED",
    );
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

// ---------------------------------------------------------------------------------------------
// JWE

const ENCS: [&str; 6] = [
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A128GCM",
    "A192GCM",
    "A256GCM",
];
const AES_KW_ALGS: [&str; 6] = [
    "A128KW",
    "A192KW",
    "A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
];
const PBES2_ALGS: [&str; 3] = [
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
];
const RSA_OAEP_ALGS: [&str; 4] = ["RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512"];
const ECDH_ALGS: [&str; 4] = [
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
];
const ECDH_CURVES: [&str; 4] = ["P-256", "P-384", "P-521", "X25519"];

/// Plaintexts are encrypted byte for byte: whitespace and non-UTF-8 bytes included.
const PLAINTEXT: &[u8] = b"  secret \x00\xff bytes\n\n";

/// `map` with its "alg" replaced, written to `name`.
fn write_with_alg(dir: &Dir, name: &str, map: &Map<String, Value>, alg: &str) {
    let mut map = map.clone();
    map.insert("alg".into(), alg.into());
    dir.write_json(name, &Value::Object(map));
}

/// Encrypts PLAINTEXT (file `plain.bin`) to `enc_key` with `alg`/`enc` in the compact and
/// flattened JSON forms and decrypts both with `dec_key` (plus `dec_flags`), from a file and
/// from stdin, JSON by --json and by detection. Returns the compact token.
fn jwe_round_trip(
    dir: &Dir,
    enc_key: &str,
    dec_key: &str,
    dec_flags: &str,
    alg: &str,
    enc: &str,
) -> String {
    let what = format!("{alg} {enc} ({enc_key} -> {dec_key})");
    let encrypt = format!("jwe encrypt --key {enc_key} --alg {alg} --enc {enc}");
    let decrypt = format!("jwe decrypt --key {dec_key} {dec_flags}");

    let run = dir.ok(&format!("{encrypt} plain.bin"));
    assert!(run.text().ends_with('\n'), "{what}: a trailing newline");
    let token = run.line();
    assert_eq!(token.split('.').count(), 5, "{what}: {token}");
    let header = segment(&token, 0);
    assert_eq!([&header["alg"], &header["enc"]], [alg, enc], "{what}");
    let encrypted_key = token.split('.').nth(1).unwrap();
    let direct = alg == "dir" || alg == "ECDH-ES";
    assert_eq!(encrypted_key.is_empty(), direct, "{what}: encrypted key");
    assert!(
        !token.contains(&jose::b64::encode(PLAINTEXT)),
        "{what}: the plaintext shows"
    );
    dir.write("t.jwe", &token);
    let out = dir.ok(&format!("{decrypt} t.jwe"));
    assert_eq!(out.stdout, PLAINTEXT, "{what}: compact");
    let out = dir.ok_in(&decrypt, format!("{token}\n"));
    assert_eq!(out.stdout, PLAINTEXT, "{what}: compact on stdin");

    let flat = dir.ok_in(&format!("{encrypt} --json"), PLAINTEXT);
    let doc = flat.object();
    for member in ["protected", "iv", "ciphertext", "tag"] {
        assert!(doc.contains_key(member), "{what}: JSON without {member}");
    }
    assert_eq!(doc.contains_key("encrypted_key"), !direct, "{what}: JSON");
    let protected: Value =
        serde_json::from_slice(&jose::b64::decode(doc["protected"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!([&protected["alg"], &protected["enc"]], [alg, enc], "{what}");
    dir.write("t.json", &flat.stdout);
    let out = dir.ok(&format!("{decrypt} t.json"));
    assert_eq!(out.stdout, PLAINTEXT, "{what}: JSON detected");
    let out = dir.ok(&format!("{decrypt} --json t.json"));
    assert_eq!(out.stdout, PLAINTEXT, "{what}: --json");
    token
}

/// The exact pipeline for JWE, through a real shell.
#[cfg(unix)]
#[test]
fn documented_jwe_pipeline_prints_the_plaintext() {
    let dir = Dir::new("jwe-pipeline");
    let script = concat!(
        r#""$TG" jwk generate --alg RSA-OAEP-256 >k.json && "#,
        r#"echo hi | "$TG" jwe encrypt --key k.json --alg RSA-OAEP-256 --enc A256GCM | "#,
        r#""$TG" jwe decrypt --key k.json"#,
    );
    let out = dir.shell(script);
    assert_eq!(out.stdout, b"hi\n");
}

#[test]
fn jwe_round_trips_cover_every_key_management_algorithm() {
    let mut covered: Vec<&str> = vec!["dir"];
    for list in [
        &AES_KW_ALGS[..],
        &PBES2_ALGS[..],
        &RSA_OAEP_ALGS[..],
        &ECDH_ALGS[..],
    ] {
        covered.extend_from_slice(list);
    }
    covered.sort_unstable();
    let mut all: Vec<&str> = jose::jwe::KeyManagement::ALL
        .iter()
        .map(|a| a.name())
        .collect();
    all.sort_unstable();
    assert_eq!(covered, all);
    let mut encs: Vec<&str> = jose::jwe::ContentEncryption::ALL
        .iter()
        .map(|e| e.name())
        .collect();
    encs.sort_unstable();
    let mut ours = ENCS.to_vec();
    ours.sort_unstable();
    assert_eq!(ours, encs);
}

#[test]
fn jwe_symmetric_algorithms_round_trip() {
    let dir = Dir::new("jwe-symmetric");
    dir.write("plain.bin", PLAINTEXT);

    // dir: the key is the CEK, sized by the content encryption it was generated for.
    for enc in ENCS {
        let key = dir
            .ok(&format!("jwk generate --alg dir --enc {enc}"))
            .object();
        dir.write_json("dir.json", &Value::Object(key.clone()));
        // A dir key is bound to the content encryption it was made for.
        assert_eq!([&key["kty"], &key["alg"], &key["use"]], ["oct", enc, "enc"]);
        let k = jose::b64::decode(key["k"].as_str().unwrap()).unwrap();
        let want = enc
            .parse::<jose::jwe::ContentEncryption>()
            .unwrap()
            .key_len();
        assert_eq!(k.len(), want, "dir key for {enc}");
        let token = jwe_round_trip(&dir, "dir.json", "dir.json", "", "dir", enc);
        assert_eq!(segment(&token, 0)["kid"], key["kid"]);
        // A content encryption with another key length does not fit ("alg" is "dir", so one of
        // the same length would).
        let other = if want == 16 { "A256GCM" } else { "A128GCM" };
        let cmd = format!("jwe encrypt --key dir.json --alg dir --enc {other} plain.bin");
        dir.fail(&cmd, 2, "ERR_JOSE_KEY_UNSUITABLE");
    }

    // AES key wrap and AES-GCM key wrap.
    for alg in AES_KW_ALGS {
        let key = dir.ok(&format!("jwk generate --alg {alg}")).object();
        dir.write_json("kw.json", &Value::Object(key));
        for enc in ["A128GCM", "A256CBC-HS512"] {
            let token = jwe_round_trip(&dir, "kw.json", "kw.json", "", alg, enc);
            let header = segment(&token, 0);
            let gcm = alg.ends_with("GCMKW");
            assert_eq!(header.contains_key("iv"), gcm, "{alg}: iv");
            assert_eq!(header.contains_key("tag"), gcm, "{alg}: tag");
        }
    }

    // PBES2: an oct key whose "k" is the password, however short.
    let password = json!({"kty": "oct", "k": jose::b64::encode("hunter2")});
    let password = password.as_object().unwrap();
    for alg in PBES2_ALGS {
        write_with_alg(&dir, "pw.json", password, alg);
        for enc in ["A128CBC-HS256", "A192GCM"] {
            let token = jwe_round_trip(&dir, "pw.json", "pw.json", "", alg, enc);
            let header = segment(&token, 0);
            assert!(header["p2c"].as_u64().unwrap() >= 1000, "{alg}: p2c");
            assert!(header["p2s"].is_string(), "{alg}: p2s");
        }
    }
    // Without "alg" the password key says nothing: --alg decides.
    dir.write_json("pw-noalg.json", &Value::Object(password.clone()));
    let alg = PBES2_ALGS[0];
    jwe_round_trip(
        &dir,
        "pw-noalg.json",
        "pw-noalg.json",
        &format!("--alg {alg}"),
        alg,
        "A256GCM",
    );
}

#[test]
fn jwe_rsa_oaep_round_trips() {
    let dir = Dir::new("jwe-rsa");
    dir.write("plain.bin", PLAINTEXT);
    // One key pair for every variant: only its "alg" changes.
    let key = dir.generate("RSA-OAEP-256", "generated.json");
    assert_eq!([&key["kty"], &key["use"]], ["RSA", "enc"]);
    let public = dir.public("generated.json", "generated.pub.json");
    assert!(!public.contains_key("d"));
    for alg in RSA_OAEP_ALGS {
        write_with_alg(&dir, "rsa.json", &key, alg);
        write_with_alg(&dir, "rsa.pub.json", &public, alg);
        for enc in ["A256GCM", "A128CBC-HS256"] {
            let token = jwe_round_trip(&dir, "rsa.pub.json", "rsa.json", "", alg, enc);
            assert_eq!(segment(&token, 0)["kid"], key["kid"]);
        }
    }
    // PEM keys carry no "alg": the RSA key type allows the RSA-OAEP family.
    dir.write("rsa.pem", dir.ok("jwk export rsa.json").stdout);
    dir.write("rsa.pub.pem", dir.ok("jwk export rsa.pub.json").stdout);
    let token = jwe_round_trip(
        &dir,
        "rsa.pub.pem",
        "rsa.pem",
        "",
        "RSA-OAEP-384",
        "A192GCM",
    );
    assert_eq!(
        segment(&token, 0)["kid"],
        key["kid"],
        "PEM keys get the thumbprint"
    );
    // ... and only that family.
    dir.fail(
        "jwe encrypt --key rsa.pub.pem --alg ECDH-ES --enc A128GCM plain.bin",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
}

#[test]
fn jwe_ecdh_es_round_trips_on_every_curve() {
    let dir = Dir::new("jwe-ecdh");
    dir.write("plain.bin", PLAINTEXT);
    for crv in ECDH_CURVES {
        let key = dir
            .ok(&format!("jwk generate --alg ECDH-ES --crv {crv}"))
            .object();
        let kty = if crv == "X25519" { "OKP" } else { "EC" };
        assert_eq!([&key["kty"], &key["crv"], &key["use"]], [kty, crv, "enc"]);
        dir.write_json("generated.json", &Value::Object(key.clone()));
        let public = dir.public("generated.json", "generated.pub.json");
        for alg in ECDH_ALGS {
            write_with_alg(&dir, "ec.json", &key, alg);
            write_with_alg(&dir, "ec.pub.json", &public, alg);
            for enc in ["A256GCM", "A192CBC-HS384"] {
                let token = jwe_round_trip(&dir, "ec.pub.json", "ec.json", "", alg, enc);
                let epk = &segment(&token, 0)["epk"];
                assert_eq!([&epk["kty"], &epk["crv"]], [kty, crv], "{alg} {crv}");
                assert!(epk.get("d").is_none(), "{alg} {crv}: epk is public");
            }
        }
        // Without "alg" (a PEM key), the curve allows the ECDH-ES family.
        dir.write("ec.pem", dir.ok("jwk export ec.json").stdout);
        dir.write("ec.pub.pem", dir.ok("jwk export ec.pub.json").stdout);
        jwe_round_trip(
            &dir,
            "ec.pub.pem",
            "ec.pem",
            "",
            "ECDH-ES+A128KW",
            "A128GCM",
        );
    }
    dir.fail(
        "jwk generate --alg ECDH-ES --crv Ed25519",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
}

#[test]
fn jwe_zip_cty_and_key_sets() {
    let dir = Dir::new("jwe-zip");
    dir.generate("A256KW", "kw.json");
    let plaintext = "compress me, ".repeat(200);
    let encrypt = "jwe encrypt --key kw.json --alg A256KW --enc A256GCM";
    let plain = dir.ok_in(encrypt, &plaintext).line();
    let zipped = dir
        .ok_in(&format!("{encrypt} --zip DEF --cty text/plain"), &plaintext)
        .line();
    let header = segment(&zipped, 0);
    assert_eq!([&header["zip"], &header["cty"]], ["DEF", "text/plain"]);
    assert!(!segment(&plain, 0).contains_key("zip"));
    let ciphertext_len = |t: &str| t.split('.').nth(3).unwrap().len();
    assert!(
        ciphertext_len(&zipped) * 10 < ciphertext_len(&plain),
        "DEF compresses"
    );
    let out = dir.ok_in("jwe decrypt --key kw.json", &zipped);
    assert_eq!(out.text(), plaintext);
    let flat = dir.ok_in(&format!("{encrypt} --zip DEF --json"), &plaintext);
    let out = dir.ok_in("jwe decrypt --key kw.json", &flat.stdout);
    assert_eq!(out.text(), plaintext, "DEF in the JSON serialization");
    // An empty plaintext is a plaintext too.
    let empty = dir.ok_in(encrypt, "").line();
    assert!(dir
        .ok_in("jwe decrypt --key kw.json", empty)
        .stdout
        .is_empty());
    dir.fail_in(&format!("{encrypt} --zip GZIP"), "x", 2, "ERR_USAGE");
    dir.fail_in(&format!("{encrypt} --zip def"), "x", 2, "ERR_USAGE");

    // A JWK Set: encryption needs exactly one key that fits; decryption selects by kid.
    let rsa = dir.generate("RSA-OAEP-256", "rsa.json");
    let ec = dir.generate("ECDH-ES+A128KW", "ec.json");
    let rsa_pub = dir.public("rsa.json", "rsa.pub.json");
    let ec_pub = dir.public("ec.json", "ec.pub.json");
    dir.write_json("public-set.json", &json!({"keys": [rsa_pub, ec_pub]}));
    dir.write_json("private-set.json", &json!({"keys": [rsa, ec.clone()]}));
    for (alg, kid) in [
        ("RSA-OAEP-256", &rsa["kid"]),
        ("ECDH-ES+A128KW", &ec["kid"]),
    ] {
        let cmd = format!("jwe encrypt --key public-set.json --alg {alg} --enc A128GCM");
        let token = dir.ok_in(&cmd, "to the set").line();
        assert_eq!(&segment(&token, 0)["kid"], kid, "{alg}");
        let out = dir.ok_in("jwe decrypt --key private-set.json", token);
        assert_eq!(out.stdout, b"to the set", "{alg}");
    }
    let none_fits = "jwe encrypt --key public-set.json --alg A128KW --enc A128GCM";
    dir.fail_in(none_fits, "x", 2, "ERR_JOSE_KEY_UNSUITABLE");
    let mut ec2 = dir.generate("ECDH-ES+A128KW", "ec2.json");
    ec2.remove("d");
    dir.write_json("two-ec.json", &json!({"keys": [ec_pub, ec2]}));
    let err = dir.fail_in(
        "jwe encrypt --key two-ec.json --alg ECDH-ES+A128KW --enc A128GCM",
        "x",
        2,
        "ERR_USAGE",
    );
    assert!(err.stderr.contains("several keys"), "{}", err.stderr);
}

#[test]
fn jwe_rejections_exit_1() {
    let dir = Dir::new("jwe-reject");
    dir.generate("RSA-OAEP-256", "rsa.json");
    dir.generate("RSA-OAEP-256", "other.json");
    dir.generate("ES256", "es.json");
    let token = dir
        .ok_in(
            "jwe encrypt --key rsa.json --alg RSA-OAEP-256 --enc A256GCM",
            "secret",
        )
        .line();
    let decrypt = "jwe decrypt --key rsa.json";
    assert_eq!(dir.ok_in(decrypt, &token).stdout, b"secret");
    let parts: Vec<&str> = token.split('.').collect();
    let failed = "ERR_JWE_DECRYPTION_FAILED";

    // A ciphertext character flipped; an added header member (the header is the AAD).
    let ciphertext = parts[3];
    let flipped = if ciphertext.starts_with('A') {
        "B"
    } else {
        "A"
    };
    let tampered = [
        parts[0],
        parts[1],
        parts[2],
        &format!("{flipped}{}", &ciphertext[1..]),
        parts[4],
    ];
    dir.fail_in(decrypt, tampered.join("."), 1, failed);
    let mut header = segment(&token, 0);
    header.insert("x".into(), 1.into());
    let header = jose::b64::encode(Value::Object(header).to_string());
    let reheaded = [&header, parts[1], parts[2], parts[3], parts[4]];
    dir.fail_in(decrypt, reheaded.join("."), 1, failed);
    // The JSON serialization, tampered likewise.
    let flat = dir
        .ok_in(
            "jwe encrypt --key rsa.json --alg RSA-OAEP-256 --enc A256GCM --json",
            "secret",
        )
        .object();
    let mut forged = flat.clone();
    forged.insert("tag".into(), jose::b64::encode([0u8; 16]).into());
    dir.fail_in(decrypt, Value::Object(forged).to_string(), 1, failed);

    // Another key of the same kind: the CEK does not unwrap, one indistinguishable failure.
    dir.fail_in("jwe decrypt --key other.json", &token, 1, failed);
    // Algorithms outside the allow-list.
    let not_allowed = "ERR_JOSE_ALG_NOT_ALLOWED";
    dir.fail_in(&format!("{decrypt} --alg A128KW"), &token, 1, not_allowed);
    dir.fail_in(&format!("{decrypt} --enc A128GCM"), &token, 1, not_allowed);
    let both = format!("{decrypt} --alg RSA-OAEP --alg RSA-OAEP-256 --enc A128GCM --enc A256GCM");
    assert_eq!(dir.ok_in(&both, &token).stdout, b"secret");
    // A key for another algorithm than the token's.
    dir.generate("A128KW", "kw.json");
    dir.fail_in("jwe decrypt --key kw.json", &token, 1, not_allowed);
    // RSA1_5 is refused as it arrives, not tried.
    let rsa1_5 = jose::b64::encode(r#"{"alg":"RSA1_5","enc":"A128GCM"}"#);
    let rsa1_5 = format!(
        "{rsa1_5}.{}.{}.{}.{}",
        parts[1], parts[2], parts[3], parts[4]
    );
    let err = dir.fail_in(decrypt, rsa1_5, 1, "ERR_JOSE_NOT_SUPPORTED");
    assert!(err.stderr.contains("RSA1_5"), "{}", err.stderr);

    // Not a JWE: a JWS (compact or JSON), nothing, a truncated token.
    let jws = dir.ok_in("jws sign --key es.json", "signed").line();
    dir.fail_in(decrypt, jws, 1, "ERR_JWE_INVALID");
    let jws_json = dir.ok_in("jws sign --key es.json --json", "signed");
    dir.fail_in(decrypt, &jws_json.stdout, 1, "ERR_JWE_INVALID");
    dir.fail_in(decrypt, "", 1, "ERR_JWE_INVALID");
    dir.fail_in(decrypt, parts[..4].join("."), 1, "ERR_JWE_INVALID");
    dir.fail_in(
        &format!("{decrypt} --json"),
        &token,
        1,
        "ERR_JOSE_JSON_INVALID",
    );
    dir.fail_in(decrypt, "A".repeat(100 * 1024), 1, "ERR_JOSE_TOO_LARGE");
}

#[test]
fn jwe_usage_key_and_io_errors_exit_2() {
    let dir = Dir::new("jwe-exit-2");
    // A symmetric key without "alg" does not say which algorithm: --alg must.
    let oct = json!({"kty": "oct", "k": jose::b64::encode([7u8; 16])});
    dir.write_json("oct.json", &oct);
    let token = dir
        .ok_in("jwe encrypt --key oct.json --alg A128KW --enc A128GCM", "x")
        .line();
    dir.write("t.jwe", &token);
    let err = dir.fail(
        "jwe decrypt --key oct.json t.jwe",
        2,
        "ERR_JOSE_INVALID_OPTIONS",
    );
    assert!(err.stderr.contains("--alg"), "{}", err.stderr);
    assert_eq!(
        dir.ok("jwe decrypt --key oct.json --alg A128KW t.jwe")
            .stdout,
        b"x"
    );

    // Missing files.
    let err = dir.fail("jwe decrypt --key missing.json t.jwe", 2, "ERR_IO");
    assert!(err.stderr.contains("missing.json"), "{}", err.stderr);
    dir.fail(
        "jwe decrypt --key oct.json --alg A128KW missing.jwe",
        2,
        "ERR_IO",
    );
    dir.fail_in(
        "jwe encrypt --key missing.json --alg A128KW --enc A128GCM",
        "x",
        2,
        "ERR_IO",
    );
    dir.fail(
        "jwe encrypt --key oct.json --alg A128KW --enc A128GCM missing.bin",
        2,
        "ERR_IO",
    );

    // Algorithm names: unknown, refused, or a key that does not fit them.
    let encrypt = |flags: &str| format!("jwe encrypt --key oct.json {flags}");
    let not_supported = "ERR_JOSE_NOT_SUPPORTED";
    let err = dir.fail_in(
        &encrypt("--alg RSA1_5 --enc A128GCM"),
        "x",
        2,
        not_supported,
    );
    assert!(err.stderr.contains("RSA1_5"), "{}", err.stderr);
    let err = dir.fail(
        "jwe decrypt --key oct.json --alg RSA1_5 t.jwe",
        2,
        not_supported,
    );
    assert!(err.stderr.contains("RSA1_5"), "{}", err.stderr);
    dir.fail_in(&encrypt("--alg A128KW --enc A128"), "x", 2, not_supported);
    dir.fail_in(
        &encrypt("--alg a128kw --enc A128GCM"),
        "x",
        2,
        not_supported,
    );
    dir.fail(
        "jwe decrypt --key oct.json --alg A128KW --enc nope t.jwe",
        2,
        not_supported,
    );
    let unsuitable = "ERR_JOSE_KEY_UNSUITABLE";
    dir.fail_in(&encrypt("--alg A256KW --enc A128GCM"), "x", 2, unsuitable);
    dir.fail_in(&encrypt("--alg RSA-OAEP --enc A128GCM"), "x", 2, unsuitable);
    dir.generate("ES256", "es.json");
    let err = dir.fail_in(
        "jwe encrypt --key es.json --alg ECDH-ES --enc A128GCM",
        "x",
        2,
        unsuitable,
    );
    assert!(err.stderr.contains("ES256"), "{}", err.stderr);
    // A public key cannot decrypt.
    dir.generate("ECDH-ES", "ec.json");
    dir.public("ec.json", "ec.pub.json");
    let token = dir
        .ok_in(
            "jwe encrypt --key ec.pub.json --alg ECDH-ES --enc A128GCM",
            "x",
        )
        .line();
    dir.fail_in("jwe decrypt --key ec.pub.json", &token, 2, unsuitable);
    assert_eq!(dir.ok_in("jwe decrypt --key ec.json", &token).stdout, b"x");

    // Flags: missing, unknown; two inputs on stdin.
    for cmd in [
        "jwe encrypt --key oct.json --alg A128KW",
        "jwe encrypt --key oct.json --enc A128GCM",
        "jwe encrypt --alg A128KW --enc A128GCM",
        "jwe decrypt t.jwe",
        "jwe decrypt --key oct.json --bogus t.jwe",
        "jwe",
    ] {
        dir.fail(cmd, 2, "ERR_USAGE");
    }
    dir.fail_in(
        "jwe encrypt --key - --alg A128KW --enc A128GCM",
        "{}",
        2,
        "ERR_USAGE",
    );
    dir.fail_in("jwe decrypt --key - --alg A128KW", "{}", 2, "ERR_USAGE");
}

#[test]
fn jwk_generate_for_jwe_algorithms() {
    let dir = Dir::new("generate-jwe");
    let oct_len =
        |key: &Map<String, Value>| jose::b64::decode(key["k"].as_str().unwrap()).unwrap().len();
    for (alg, len) in [
        ("A128KW", 16),
        ("A192KW", 24),
        ("A256KW", 32),
        ("A128GCMKW", 16),
        ("A256GCMKW", 32),
        ("PBES2-HS256+A128KW", 32),
    ] {
        let key = dir
            .ok(&format!("jwk generate --alg {alg} --kid k"))
            .object();
        assert_eq!([&key["kty"], &key["alg"], &key["use"]], ["oct", alg, "enc"]);
        assert_eq!(key["kid"], "k");
        assert_eq!(oct_len(&key), len, "{alg}");
    }
    let key = dir
        .ok("jwk generate --alg dir --enc A256CBC-HS512")
        .object();
    assert_eq!(oct_len(&key), 64);
    let rsa = dir.ok("jwk generate --alg RSA-OAEP").object();
    let n = jose::b64::decode(rsa["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "RSA defaults to 2048 bits");
    dir.write_json("rsa.json", &Value::Object(rsa.clone()));
    assert_eq!(rsa["kid"], dir.line("jwk thumbprint rsa.json").as_str());
    let ec = dir.ok("jwk generate --alg ECDH-ES+A256KW").object();
    assert_eq!(
        [&ec["kty"], &ec["crv"]],
        ["EC", "P-256"],
        "P-256 by default"
    );

    // Options that do not apply, or are missing; names that are not key management.
    let unsuitable = "ERR_JOSE_KEY_UNSUITABLE";
    for flags in [
        "--alg A128KW --enc A128GCM",
        "--alg RSA-OAEP-256 --enc A256GCM",
        "--alg ECDH-ES --enc A256GCM",
        "--alg A128KW --crv P-256",
        "--alg RSA-OAEP --crv P-256",
        "--alg ECDH-ES --crv Ed25519",
        "--alg A256KW --bits 256",
        "--alg RSA-OAEP --bits 1024",
    ] {
        dir.fail(&format!("jwk generate {flags}"), 2, unsuitable);
    }
    dir.fail("jwk generate --alg dir", 2, "ERR_JOSE_INVALID_OPTIONS");
    dir.fail(
        "jwk generate --alg dir --enc A256",
        2,
        "ERR_JOSE_NOT_SUPPORTED",
    );
    let err = dir.fail("jwk generate --alg RSA1_5", 2, "ERR_JOSE_NOT_SUPPORTED");
    assert!(
        err.stderr.contains("RSA1_5 is not supported"),
        "{}",
        err.stderr
    );
    let err = dir.fail("jwk generate --alg A256GCM", 2, "ERR_USAGE");
    assert!(
        err.stderr.contains("--alg dir --enc A256GCM"),
        "{}",
        err.stderr
    );
    // A JWE key never signs.
    dir.write_json("ec.json", &Value::Object(ec));
    dir.fail_in("jws sign --key ec.json", "x", 2, "ERR_USAGE");
}

#[test]
fn x25519_keys_export_import_and_thumbprint() {
    let dir = Dir::new("x25519");
    let key = dir.ok("jwk generate --alg ECDH-ES --crv X25519").object();
    dir.write_json("x.json", &Value::Object(key.clone()));
    let thumbprint = dir.line("jwk thumbprint x.json");
    assert_eq!(key["kid"], thumbprint.as_str());
    let public = dir.public("x.json", "x.pub.json");
    assert_eq!([&public["kty"], &public["crv"]], ["OKP", "X25519"]);
    assert_eq!(public["x"], key["x"]);
    assert!(!public.contains_key("d"));
    assert_eq!(dir.line("jwk thumbprint x.pub.json"), thumbprint);

    for (file, private) in [("x.json", true), ("x.pub.json", false)] {
        let label = if private { "PRIVATE KEY" } else { "PUBLIC KEY" };
        let pem = dir.ok(&format!("jwk export {file}")).text();
        assert!(
            pem.starts_with(&format!("-----BEGIN {label}-----\n")),
            "{pem}"
        );
        dir.write("x.pem", &pem);
        let imported = dir.ok("jwk import x.pem").object();
        assert_eq!(imported["kid"], thumbprint.as_str(), "{label}");
        assert_eq!([&imported["kty"], &imported["crv"]], ["OKP", "X25519"]);
        assert_eq!(imported["x"], key["x"], "{label}");
        assert_eq!(
            imported.get("d"),
            key.get("d").filter(|_| private),
            "{label}"
        );
        assert_eq!(dir.line("jwk thumbprint x.pem"), thumbprint);
        let pem_file = if private { "x.key.pem" } else { "x.pub.pem" };
        dir.write(pem_file, &pem);
    }
    // The PEM keys encrypt and decrypt as the JWKs do.
    let token = dir
        .ok_in(
            "jwe encrypt --key x.pub.pem --alg ECDH-ES --enc A128GCM",
            "x25519",
        )
        .line();
    assert_eq!(
        dir.ok_in("jwe decrypt --key x.key.pem", &token).stdout,
        b"x25519"
    );
    assert_eq!(
        dir.ok_in("jwe decrypt --key x.json", &token).stdout,
        b"x25519"
    );
    // X25519 is for key agreement only.
    dir.fail(
        "jwk import --alg EdDSA x.key.pem",
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
}

#[test]
fn nested_jwt_sign_and_verify() {
    let dir = Dir::new("nested");
    dir.generate("ES256", "es.json");
    dir.public("es.json", "es.pub.json");
    dir.generate("ES256", "stranger.json");
    let sign = |flags: &str| {
        dir.line(&format!(
            "jwt sign --key es.json --iss a --aud b --claim scope=read {flags}"
        ))
    };
    let verify = |flags: &str| format!("jwt verify --key es.pub.json --iss a --aud b {flags}");

    for alg in ["ECDH-ES+A256KW", "RSA-OAEP-256"] {
        dir.generate(alg, "enc.json");
        dir.public("enc.json", "enc.pub.json");
        let token = sign(&format!(
            "--encrypt-key enc.pub.json --encrypt-alg {alg} --enc A256GCM"
        ));
        assert_eq!(token.split('.').count(), 5, "{alg}: {token}");
        let header = segment(&token, 0);
        assert_eq!(
            [&header["alg"], &header["enc"], &header["cty"]],
            [alg, "A256GCM", "JWT"]
        );
        // The claims are hidden: inspect shows the JWE header only, and says so.
        let inspected = dir.ok_in("jwt inspect", &token).object();
        assert_eq!(inspected["unverified"], true);
        assert_eq!(inspected["header"], Value::Object(header));
        assert_eq!(inspected["claims"], Value::Null);
        assert!(inspected["note"].as_str().unwrap().contains("encrypted"));

        let claims = dir
            .ok_in(&verify("--decrypt-key enc.json"), &token)
            .object();
        assert_eq!(
            [&claims["iss"], &claims["aud"], &claims["scope"]],
            ["a", "b", "read"]
        );
        let explicit = format!("--decrypt-key enc.json --decrypt-alg {alg} --enc A256GCM");
        assert_eq!(dir.ok_in(&verify(&explicit), &token).object(), claims);
        // The inner JWT is visible after `jwe decrypt`, and is a JWT signed by es.json.
        let inner = dir.ok_in("jwe decrypt --key enc.json", &token).line();
        assert_eq!(segment(&inner, 1), claims);
        assert_eq!(dir.ok_in(&verify(""), &inner).object(), claims);

        // Rejections: each layer's allow-list, the inner signature, claims, encryption absent.
        let not_allowed = "ERR_JOSE_ALG_NOT_ALLOWED";
        let restricted = "--decrypt-key enc.json --enc A128GCM";
        dir.fail_in(&verify(restricted), &token, 1, not_allowed);
        let other = "--decrypt-key enc.json --decrypt-alg A256KW";
        dir.fail_in(&verify(other), &token, 1, not_allowed);
        dir.fail_in(
            &verify("--decrypt-key enc.json --alg ES384"),
            &token,
            1,
            not_allowed,
        );
        let wrong_signer = "jwt verify --key stranger.json --iss a --aud b --decrypt-key enc.json";
        dir.fail_in(wrong_signer, &token, 1, "ERR_JWS_SIGNATURE_INVALID");
        let wrong_aud = "jwt verify --key es.json --iss a --aud x --decrypt-key enc.json";
        dir.fail_in(wrong_aud, &token, 1, "ERR_JWT_CLAIM_VALIDATION_FAILED");
        dir.fail_in(&verify(""), &token, 1, "ERR_JWT_INVALID");
        let plain = sign("");
        dir.fail_in(
            &verify("--decrypt-key enc.json"),
            plain,
            1,
            "ERR_JWT_INVALID",
        );
        // Encrypted, but not marked as a JWT.
        let cmd = format!("jwe encrypt --key enc.pub.json --alg {alg} --enc A256GCM");
        let unmarked = dir.ok_in(&cmd, &inner).line();
        dir.fail_in(
            &verify("--decrypt-key enc.json"),
            unmarked,
            1,
            "ERR_JWT_INVALID",
        );
    }
    // The wrong decryption key of the right kind.
    dir.generate("RSA-OAEP-256", "rsa2.json");
    let token = sign("--encrypt-key enc.json --encrypt-alg RSA-OAEP-256 --enc A128CBC-HS256");
    let cmd = verify("--decrypt-key rsa2.json");
    dir.fail_in(&cmd, &token, 1, "ERR_JWE_DECRYPTION_FAILED");

    // A symmetric decryption key without "alg": --decrypt-alg must say.
    let oct = json!({"kty": "oct", "k": jose::b64::encode([9u8; 32])});
    dir.write_json("oct.json", &oct);
    let token = sign("--encrypt-key oct.json --encrypt-alg dir --enc A256GCM");
    let err = dir.fail_in(
        &verify("--decrypt-key oct.json"),
        &token,
        2,
        "ERR_JOSE_INVALID_OPTIONS",
    );
    assert!(err.stderr.contains("--decrypt-alg"), "{}", err.stderr);
    let claims = dir.ok_in(&verify("--decrypt-key oct.json --decrypt-alg dir"), &token);
    assert_eq!(claims.object()["scope"], "read");

    // The encryption flags come together; decryption flags need --decrypt-key.
    for flags in [
        "--encrypt-key enc.json",
        "--encrypt-key enc.json --encrypt-alg RSA-OAEP-256",
        "--encrypt-alg RSA-OAEP-256 --enc A256GCM",
        "--enc A256GCM",
    ] {
        let cmd = format!("jwt sign --key es.json {flags}");
        dir.fail(&cmd, 2, "ERR_USAGE");
    }
    dir.write("t.jwt", &token);
    dir.fail(&verify("--decrypt-alg dir t.jwt"), 2, "ERR_USAGE");
    dir.fail(&verify("--enc A256GCM t.jwt"), 2, "ERR_USAGE");
    // Key problems: a public decryption key, an encryption key that does not fit.
    dir.fail(
        &verify("--decrypt-key es.pub.json t.jwt"),
        2,
        "ERR_JOSE_KEY_UNSUITABLE",
    );
    let cmd = "jwt sign --key es.json --encrypt-key es.pub.json --encrypt-alg A128KW --enc A128GCM";
    dir.fail(cmd, 2, "ERR_JOSE_KEY_UNSUITABLE");
    dir.fail_in(
        "jwt sign --key es.json --claims - --encrypt-key - --encrypt-alg dir --enc A256GCM",
        "{}",
        2,
        "ERR_USAGE",
    );
}

#[test]
fn config_check_prints_effective_settings_or_the_located_error() {
    let dir = Dir::new("config");
    dir.write(
        "ok.toml",
        b"[token_service]\nissuer = \"https://auth.example\"\n\n[[audiences]]\nid = \"https://api.example\"\nscopes = [\"read\"]\nencrypt = true\n",
    );
    let shown = dir.ok("config check ok.toml").object();
    assert_eq!(shown["issuer"], "https://auth.example/");
    assert_eq!(shown["storage"]["backend"], "sqlite");
    assert_eq!(shown["audiences"][0]["encrypt"], true);

    dir.write("typo.toml", b"[server]\nlisen = \"127.0.0.1:1\"\n");
    let err = dir.fail("config check typo.toml", 2, "ERR_CONFIG");
    assert!(err.stderr.contains("typo.toml:2:1:"), "{}", err.stderr);
    assert!(err.stderr.contains("lisen"), "{}", err.stderr);
    dir.fail("config check missing.toml", 2, "ERR_CONFIG");
}

/// `config check` runs the conversion `serve` builds the gateway from: what a start or a
/// reload would refuse, it refuses, at the value's file, line and column.
#[test]
fn config_check_refuses_what_the_gateway_would_with_its_place() {
    let dir = Dir::new("config-routes");
    let up = "upstreams = [\"http://127.0.0.1:9000\"]\n";
    let rules = "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n";
    let route = |name: &str, extra: &str| {
        format!("[[routes]]\nname = \"{name}\"\npath_prefix = \"/api/\"\n{up}{extra}")
    };
    let cases = [
        (
            format!("{}{}", route("a", rules), route("b", rules)),
            "f.toml:9:8: routes \"a\" and \"b\" overlap: same host, path and methods",
        ),
        (
            route("a", "[routes.auth]\nissuers = [\"partner\"]\naudience = \"x\"\n"),
            "f.toml:6:12: routes \"a\": unknown issuer \"partner\" (declare it in [[issuers]], or use \"self\")",
        ),
        (
            route("a", "[routes.auth]\nissuers = [\"self\"]\n"),
            "f.toml:5:1: routes \"a\": auth.audience is required",
        ),
        (
            format!("[[routes]]\nname = \"a\"\npath = \"/x\"\nupstreams = []\n{rules}"),
            "f.toml:4:13: routes \"a\": at least one upstream",
        ),
        (
            format!("[[routes]]\nname = \"a\"\npath = \"/x\"\npath_prefix = \"/x\"\n{up}{rules}"),
            "f.toml:2:8: routes \"a\": give exactly one of path and path_prefix",
        ),
        (
            route("a", "[routes.mcp]\nresource = \"mcp\"\n[routes.auth]\nissuers = [\"self\"]\n"),
            "f.toml:6:12: routes \"a\": mcp.resource must be an http(s) URL without fragment",
        ),
        (
            route("a", &format!("timeout = 0\n{rules}")),
            "f.toml:5:11: routes \"a\": timeout must be at least 1s",
        ),
    ];
    for (text, expected) in cases {
        dir.write("f.toml", &text);
        let err = dir.fail("config check f.toml", 2, "ERR_CONFIG");
        assert_eq!(
            err.stderr.trim_end(),
            format!("error[ERR_CONFIG]: {expected}"),
            "{text}"
        );
    }

    // Key files the issuers name are read, and reported with their path and place.
    let issuer = |file: &str| {
        format!("[[issuers]]\nname = \"p\"\nissuer = \"https://p.example\"\njwks_file = \"{file}\"\nalgorithms = [\"ES256\"]\n")
    };
    dir.write("keys.toml", issuer("nope.json"));
    let err = dir.fail("config check keys.toml", 2, "ERR_CONFIG");
    assert!(
        err.stderr.starts_with(
            "error[ERR_CONFIG]: keys.toml:4:13: issuers \"p\": jwks_file: reading nope.json: "
        ),
        "{}",
        err.stderr
    );
    dir.write("bad.json", "{\"kty\":\"EC\"}");
    dir.write("keys.toml", issuer("bad.json"));
    let err = dir.fail("config check keys.toml", 2, "ERR_CONFIG");
    assert!(
        err.stderr
            .starts_with("error[ERR_CONFIG]: keys.toml:4:13: issuers \"p\": jwks_file: bad.json: "),
        "{}",
        err.stderr
    );

    // A good file: the routes are shown as the gateway gets them.
    dir.generate("ES256", "p.json");
    dir.public("p.json", "p.pub.json");
    let ok = format!(
        "{}[[routes]]\nname = \"mcp\"\nhost = \"MCP.example\"\npath_prefix = \"/mcp/\"\n{up}\
         [routes.mcp]\nresource = \"https://mcp.example/mcp\"\n[routes.auth]\nissuers = [\"p\", \"self\"]\n",
        issuer("p.pub.json")
    );
    dir.write("ok.toml", ok);
    let shown = dir.ok("config check ok.toml").object();
    assert_eq!(
        shown["routes"],
        json!([{
            "name": "mcp",
            "path": null,
            "path_prefix": "/mcp/",
            "case_sensitive": true,
            "host": "mcp.example",
            "methods": null,
            "upstreams": ["http://127.0.0.1:9000"],
            "public": false,
            "issuers": ["p", "self"],
            "audience": "https://mcp.example/mcp",
            "resource_metadata": "https://mcp.example/.well-known/oauth-protected-resource/mcp",
            "auth_rules": [],
            "rate_limits": [],
            "max_in_flight": null,
            "cors": null,
            "cache": null,
        }])
    );
    assert_eq!(shown["warnings"], json!([]));
    // Legal but risky: warned about on stderr and in the output, and still accepted.
    dir.write(
        "warn.toml",
        format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\n{up}auth = \"none\"\n\
             [[routes]]\nname = \"admin\"\npath_prefix = \"/api/admin/\"\n{up}auth = \"none\"\n"
        ),
    );
    let run = dir.ok("config check warn.toml");
    assert!(
        run.stderr
            .starts_with("warning: route \"admin\" (/api/admin/) lies under route \"api\" (/api/)"),
        "{}",
        run.stderr
    );
    let shown = run.object();
    assert_eq!(shown["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn jwe_encrypt_takes_a_pbes2_count() {
    let dir = Dir::new("p2c");
    dir.write(
        "pw.json",
        br#"{"kty":"oct","k":"cGFzc3dvcmQ","alg":"PBES2-HS256+A128KW"}"#,
    );
    let token = dir
        .ok_in(
            "jwe encrypt --key pw.json --alg PBES2-HS256+A128KW --enc A128GCM --p2c 4096",
            "hi",
        )
        .line();
    assert_eq!(segment(&token, 0)["p2c"], 4096);
    assert_eq!(dir.ok_in("jwe decrypt --key pw.json", token).stdout, b"hi");
    dir.fail_in(
        "jwe encrypt --key pw.json --alg PBES2-HS256+A128KW --enc A128GCM --p2c 10",
        "hi",
        2,
        "ERR_JOSE_INVALID_OPTIONS",
    );
}
