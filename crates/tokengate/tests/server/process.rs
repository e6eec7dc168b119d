//! The binary: `serve` across restarts, the master key check, `dev`, and the `client` and
//! `key` commands, each a real process on a real socket (port 0) over SQLite.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const MASTER: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const OTHER_MASTER: &str = "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICA=";

fn tokengate(dir: &Path, master: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    cmd.current_dir(dir)
        .env_remove("TOKENGATE_MASTER_KEY")
        .env_remove("TOKENGATE_ADMIN_TOKEN");
    if let Some(m) = master {
        cmd.env("TOKENGATE_MASTER_KEY", m);
    }
    cmd
}

fn run(dir: &Path, master: Option<&str>, args: &[&str]) -> Output {
    tokengate(dir, master).args(args).output().unwrap()
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, Some(MASTER), args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A running server; killed on drop.
struct Server {
    child: Child,
    addr: String,
    stdout: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tokengate <args> --listen 127.0.0.1:0` and waits for its "listening" line.
// The returned guard kills and waits on the child when dropped.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, master: Option<&str>, args: &[&str]) -> Server {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut child = tokengate(dir, master)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!(
                "the server exited before listening: {stdout}{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        stdout.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("tokengate listening on http://") {
            let addr = addr.to_owned();
            return Server {
                child,
                addr,
                stdout,
            };
        }
    }
}

/// One HTTP/1.1 request; returns status and body.
fn http(addr: &str, path: &str, auth: Option<&str>, form: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let method = if form.is_some() { "POST" } else { "GET" };
    let body = form.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn get_token(addr: &str, auth: &str) -> String {
    let (status, body) = http(
        addr,
        "/oauth2/token",
        Some(auth),
        Some("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example"),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)["access_token"].as_str().unwrap().to_owned()
}

fn active(addr: &str, auth: &str, token: &str) -> bool {
    let (status, body) = http(
        addr,
        "/oauth2/introspect",
        Some(auth),
        Some(&format!("token={token}")),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)["active"].as_bool().unwrap()
}

fn kids(addr: &str) -> Vec<String> {
    let (_, body) = http(addr, "/oauth2/jwks", None, None);
    json(&body)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn restart_keeps_tokens_and_keys_and_a_wrong_master_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A fixed issuer: with port 0 the default one (the bound address) changes on restart.
    std::fs::write(
        d.join("t.toml"),
        "[server]\ndata_dir = \"data\"\n[token_service]\nissuer = \"http://127.0.0.1:8080\"\n",
    )
    .unwrap();
    let creds = ok_json(
        d,
        &[
            "client",
            "create",
            "--config",
            "t.toml",
            "--name",
            "svc",
            "--scope",
            "read",
            "--audience",
            "https://api.example",
        ],
    );
    let auth = crate::harness::basic(
        creds["client_id"].as_str().unwrap(),
        creds["client_secret"].as_str().unwrap(),
    );

    let server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let token = get_token(&server.addr, &auth);
    assert!(active(&server.addr, &auth, &token));
    let before = kids(&server.addr);
    drop(server); // killed, not shut down: what was answered must be on disk

    let server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    assert!(
        active(&server.addr, &auth, &token),
        "the token survives a restart"
    );
    assert_eq!(kids(&server.addr), before, "so do the keys");
    let (status, _) = http(
        &server.addr,
        "/oauth2/revoke",
        Some(&auth),
        Some(&format!("token={token}")),
    );
    assert_eq!(status, 200);
    drop(server);

    // Another master key: a clear error at start, nothing served, nothing changed.
    let snapshot = || {
        (
            ok_json(d, &["key", "list", "--config", "t.toml"]),
            ok_json(d, &["client", "list", "--config", "t.toml"]),
        )
    };
    let before = snapshot();
    let out = run(
        d,
        Some(OTHER_MASTER),
        &["serve", "--config", "t.toml", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master key") && stderr.contains("Nothing was changed"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    assert!(snapshot() == before, "keys and clients are untouched");
    let out = run(
        d,
        Some("not base64!"),
        &["client", "list", "--data-dir", "data"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKENGATE_MASTER_KEY"));

    let server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    assert!(
        !active(&server.addr, &auth, &token),
        "the revocation survives too"
    );
}

#[test]
fn dev_creates_a_key_file_and_a_working_demo_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, None, &["dev", "--data-dir", "data"]);
    let out = &server.stdout;
    let field = |name: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not printed: {out}"))
            .to_owned()
    };
    let (id, secret) = (field("client_id"), field("client_secret"));
    for expected in [
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "curl",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    let log = std::fs::read_to_string(d.join("server.log")).unwrap();
    assert!(log.contains("created the master key file"), "{log}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let auth = crate::harness::basic(&id, &secret);
    let token = get_token(&server.addr, &auth);
    assert!(active(&server.addr, &auth, &token));
    // The demo route: 401 without a token, 403 without the write scope, 200 with it.
    let (status, _) = http(&server.addr, "/api/transactions", None, Some("{}"));
    assert_eq!(status, 401);
    let (status, body) = http(
        &server.addr,
        "/oauth2/token",
        Some(&auth),
        Some("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&scope=transactions%3Aread"),
    );
    assert_eq!(status, 200, "{body}");
    let read = json(&body)["access_token"].as_str().unwrap().to_owned();
    let (status, _) = http(
        &server.addr,
        "/api/transactions",
        Some(&format!("Bearer {read}")),
        Some("{}"),
    );
    assert_eq!(status, 403);
    let (status, body) = http(
        &server.addr,
        "/oauth2/token",
        Some(&auth),
        Some("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&scope=transactions%3Awrite"),
    );
    assert_eq!(status, 200, "{body}");
    let write = json(&body)["access_token"].as_str().unwrap().to_owned();
    let (status, body) = http(
        &server.addr,
        "/api/transactions",
        Some(&format!("Bearer {write}")),
        Some("{}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["headers"]["x-client-id"], id.as_str());
}

#[cfg(unix)]
#[test]
fn sighup_reloads_routes_and_refuses_a_broken_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |prefix: &str| {
        format!("[server]\ndata_dir = \"data\"\n[[routes]]\nname = \"r\"\npath_prefix = \"{prefix}\"\nupstreams = [\"http://127.0.0.1:9\"]\nauth = \"none\"\n")
    };
    std::fs::write(d.join("g.toml"), config("/one/")).unwrap();
    let server = start(d, Some(MASTER), &["serve", "--config", "g.toml"]);
    let status = |path: &str| http(&server.addr, path, None, None).0;
    assert_eq!(status("/one/x"), 502, "routed to a dead upstream");
    assert_eq!(status("/two/x"), 404);
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    std::fs::write(d.join("g.toml"), config("/two/")).unwrap();
    hup();
    let mut reloaded = false;
    for _ in 0..100 {
        if status("/two/x") == 502 {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reloaded, "the new route serves after SIGHUP");
    assert_eq!(status("/one/x"), 404);
    // A broken file: refused, the running configuration stays.
    std::fs::write(d.join("g.toml"), "[[routes]]\nname = 1\n").unwrap();
    hup();
    let mut logged = false;
    for _ in 0..100 {
        if std::fs::read_to_string(d.join("server.log"))
            .unwrap_or_default()
            .contains("reload refused")
        {
            logged = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(logged, "the refusal is logged");
    assert_eq!(status("/two/x"), 502);
    assert_eq!(status("/oauth2/jwks"), 200);

    // The access log: one JSON line per request, gateway traffic (which bypasses the router)
    // and token-service requests alike.
    let line_for = |path: &str, status: u64| {
        for _ in 0..100 {
            let log = std::fs::read_to_string(d.join("server.log")).unwrap_or_default();
            let found = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["path"] == path && l["status"] == status);
            if let Some(line) = found {
                return line;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no access-log line for {path} {status}");
    };
    let upstream_down = line_for("/two/x", 502);
    assert_eq!(upstream_down["method"], "GET");
    assert_eq!(upstream_down["route"], "r");
    assert_eq!(upstream_down["denial"], "ERR_GATEWAY_UPSTREAM");
    assert!(upstream_down["detail"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1:9"));
    assert!(upstream_down["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(!upstream_down["request_id"].as_str().unwrap().is_empty());
    let unrouted = line_for("/one/x", 404);
    assert_eq!(unrouted["route"], Value::Null);
    let jwks = line_for("/oauth2/jwks", 200);
    assert!(jwks.get("route").is_none(), "not a gateway request: {jwks}");
}

#[test]
fn client_and_key_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--data-dir", "data"][..]].concat()
    }
    let basic = ok_json(
        d,
        &with(&["client", "create", "--name", "b", "--scope", "read write"]),
    );
    let id = basic["client_id"].as_str().unwrap();
    let key = run(d, None, &["jwk", "generate", "--alg", "ES256"]);
    std::fs::write(d.join("k.json"), &key.stdout).unwrap();
    let public = run(d, None, &["jwk", "public", "k.json"]);
    let jwks = format!("{{\"keys\":[{}]}}", String::from_utf8_lossy(&public.stdout));
    std::fs::write(d.join("jwks.json"), jwks).unwrap();
    let pk = ok_json(
        d,
        &with(&[
            "client",
            "create",
            "--name",
            "p",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            "jwks.json",
        ]),
    );
    assert!(pk.get("client_secret").is_none());

    let list = ok_json(d, &with(&["client", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let shown = ok_json(d, &with(&["client", "show", id]));
    assert_eq!(shown["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(
        ok_json(d, &with(&["client", "disable", id]))["disabled"],
        true
    );
    assert_eq!(
        ok_json(d, &with(&["client", "enable", id]))["disabled"],
        false
    );
    let rotated = ok_json(d, &with(&["client", "rotate-secret", id]));
    assert_ne!(rotated["client_secret"], basic["client_secret"]);
    let out = run(
        d,
        Some(MASTER),
        &with(&["client", "rotate-secret", pk["client_id"].as_str().unwrap()]),
    );
    assert_eq!(out.status.code(), Some(2));
    ok_json(d, &with(&["client", "delete", id]));
    let out = run(d, Some(MASTER), &with(&["client", "show", id]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = run(
        d,
        Some(MASTER),
        &with(&["client", "create", "--name", "x", "--auth-method", "magic"]),
    );
    assert_eq!(out.status.code(), Some(2));

    let keys = ok_json(d, &with(&["key", "list"]));
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let new = ok_json(d, &with(&["key", "rotate", "--use", "enc"]));
    assert_eq!(new["state"], "pending");
    let jwks = ok_json(d, &with(&["key", "jwks"]));
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("d").is_none()));
}

#[test]
fn bad_configuration_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let out = run(d, Some(MASTER), &["serve", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:3:1"), "{stderr}");
    std::fs::write(
        d.join("tls.toml"),
        "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n",
    )
    .unwrap();
    let out = run(
        d,
        Some(MASTER),
        &["serve", "--config", "tls.toml", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}
