//! The binary: `serve` across restarts, the master key check, `dev` and the curl lines it
//! prints, SIGHUP and SIGTERM, PostgreSQL, what the logs hold, and the `client` and `key`
//! commands. Each server is a real process that binds the port itself (`--listen
//! 127.0.0.1:0`) and says on stdout which one; over SQLite unless said otherwise.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const MASTER: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const OTHER_MASTER: &str = "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICA=";

/// The longest a test waits for a process or for something it does: a stall fails the test,
/// with what was seen, instead of hanging the suite.
pub(crate) const WAIT: Duration = Duration::from_secs(60);
/// How often a condition being waited for is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Checks `check` until it answers `Ok`, for at most [`WAIT`]; fails with `what` and the last
/// answer.
pub(crate) fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("gave up after {WAIT:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

pub(crate) fn tokengate(dir: &Path, master: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    cmd.current_dir(dir)
        .env_remove("TOKENGATE_MASTER_KEY")
        .env_remove("TOKENGATE_ADMIN_TOKEN");
    if let Some(m) = master {
        cmd.env("TOKENGATE_MASTER_KEY", m);
    }
    cmd
}

pub(crate) fn run(dir: &Path, master: Option<&str>, args: &[&str]) -> Output {
    tokengate(dir, master).args(args).output().unwrap()
}

/// Creates a `client_secret_basic` client named `svc` for `https://api.example` with
/// `scope`, in the store `source` names (`["--config", "t.toml"]` or `["--database-url",
/// url]`); its id and its Basic credentials.
pub(crate) fn svc_client(dir: &Path, source: &[&str], scope: &str) -> (String, String) {
    let mut args = vec!["client", "create"];
    args.extend_from_slice(source);
    args.extend([
        "--name",
        "svc",
        "--scope",
        scope,
        "--audience",
        "https://api.example",
    ]);
    let creds = ok_json(dir, &args);
    let id = creds["client_id"].as_str().unwrap().to_owned();
    let auth = crate::harness::basic(&id, creds["client_secret"].as_str().unwrap());
    (id, auth)
}

pub(crate) fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, Some(MASTER), args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs a command that must fail with exit status 2 and the CLI error `code`; its stderr and
/// stdout.
fn refused(dir: &Path, master: Option<&str>, args: &[&str], code: &str) -> (String, String) {
    let out = run(dir, master, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.starts_with(&format!("error[{code}]: ")),
        "{args:?}: expected {code}: {stderr}"
    );
    (stderr, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running server; killed on drop (unless it was stopped).
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    /// What it printed on stdout up to and including its "listening" line.
    stdout: String,
    /// Lines it printed on stdout after that.
    later: Receiver<String>,
    /// Its stderr (the log), in a file.
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything it printed on stdout so far.
    fn printed(&mut self) -> String {
        while let Ok(line) = self.later.try_recv() {
            self.stdout.push_str(&line);
        }
        self.stdout.clone()
    }

    /// Everything it printed on stdout, once it has exited: its reader ends with its stdout.
    fn printed_to_the_end(&mut self) -> String {
        loop {
            match self.later.recv_timeout(WAIT) {
                Ok(line) => self.stdout.push_str(&line),
                Err(RecvTimeoutError::Disconnected) => return self.stdout.clone(),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("its stdout is still open {WAIT:?} after it was asked to stop")
                }
            }
        }
    }

    #[cfg(unix)]
    pub(crate) fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits for the process to exit.
    pub(crate) fn exit_status(&mut self) -> ExitStatus {
        let child = &mut self.child;
        wait_for("the server to exit", || {
            child
                .try_wait()
                .unwrap()
                .ok_or_else(|| "still running".to_owned())
        })
    }

    /// Stops it with SIGTERM and asserts it exits 0; its whole log, flushed at exit.
    #[cfg(unix)]
    pub(crate) fn stop(&mut self) -> String {
        self.signal("TERM");
        let status = self.exit_status();
        let log = self.log();
        assert_eq!(status.code(), Some(0), "{status}: {log}");
        log
    }
}

/// Starts `tokengate <args> --listen 127.0.0.1:0` and waits (at most [`WAIT`]) for the line
/// saying where it listens.
// The returned guard kills and waits on the child when dropped; so do the failure paths.
#[allow(clippy::zombie_processes)]
pub(crate) fn start(dir: &Path, master: Option<&str>, args: &[&str]) -> Server {
    let log = dir.join("server.log");
    let mut child = tokengate(dir, master)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, later) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if lines.send(line).is_err() => break,
                Ok(_) => {}
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut printed = String::new();
    loop {
        let failure = match later.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                printed.push_str(&line);
                if let Some(addr) = line.trim().strip_prefix("tokengate listening on http://") {
                    return Server {
                        addr: addr.to_owned(),
                        child,
                        stdout: printed,
                        later,
                        log,
                    };
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => format!("did not say it listens within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => "closed its stdout before listening".to_owned(),
        };
        let _ = child.kill();
        let status = child.wait();
        panic!(
            "tokengate {args:?} {failure} ({status:?}).\nstdout:\n{printed}\nstderr:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// An HTTP response.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// The status line and headers.
    head: String,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    pub(crate) fn json(&self) -> Value {
        json(&self.body)
    }

    /// Asserts a refusal: the status, and the `error` of the JSON body.
    fn refused(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}{}", self.head, self.body);
        assert_eq!(self.json()["error"], error, "{}", self.body);
    }
}

/// Decodes a chunked body.
fn unchunk(mut raw: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&rest[..size]);
        raw = &rest[size + 2..];
    }
}

/// One HTTP/1.1 request on a connection of its own.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let body = form.unwrap_or("");
    // The test's own Host when it gives one (the name clients use behind a load balancer).
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or(addr, |(_, v)| *v);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
    {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{method} {path}: no complete response: {e}: {response}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP response: {response:?}"));
    let mut response = Response {
        status: head.get(9..12).and_then(|s| s.parse().ok()).unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        response.body = unchunk(&response.body);
    }
    response
}

/// One request (a GET, or a POST of a form); status and body.
pub(crate) fn http(
    addr: &str,
    path: &str,
    auth: Option<&str>,
    form: Option<&str>,
) -> (u16, String) {
    let method = if form.is_some() { "POST" } else { "GET" };
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let response = request(addr, method, path, &headers, form);
    (response.status, response.body)
}

pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub(crate) fn get_token(addr: &str, auth: &str) -> String {
    token_for(addr, auth, "resource=https%3A%2F%2Fapi.example")
}

/// A client_credentials token for `form`.
pub(crate) fn token_for(addr: &str, auth: &str, form: &str) -> String {
    let (status, body) = http(
        addr,
        "/oauth2/token",
        Some(auth),
        Some(&format!("grant_type=client_credentials&{form}")),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)["access_token"].as_str().unwrap().to_owned()
}

pub(crate) fn active(addr: &str, auth: &str, token: &str) -> bool {
    let (status, body) = http(
        addr,
        "/oauth2/introspect",
        Some(auth),
        Some(&format!("token={token}")),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)["active"].as_bool().unwrap()
}

pub(crate) fn kids(addr: &str) -> Vec<String> {
    let (status, body) = http(addr, "/oauth2/jwks", None, None);
    assert_eq!(status, 200, "{body}");
    json(&body)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-12-06T02:40:00.123456Z`),
/// the form tracing-subscriber writes; days from the civil date as in Howard Hinnant's
/// `days_from_civil`.
fn unix_seconds(timestamp: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        timestamp[range]
            .parse()
            .unwrap_or_else(|e| panic!("{timestamp}: {e}"))
    };
    assert!(
        timestamp.ends_with('Z') && &timestamp[10..11] == "T",
        "{timestamp}"
    );
    let (y, m, d) = (field(0..4), field(5..7), field(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + field(17..19)
}

/// The JSON lines of a log.
pub(crate) fn log_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// The access-log line of the request `request_id`.
pub(crate) fn access_line(log: &str, request_id: &str) -> Value {
    let mut found = log_lines(log)
        .into_iter()
        .filter(|l| l["request_id"] == request_id);
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no access-log line for request {request_id}: {log}"));
    assert!(found.next().is_none(), "two lines for {request_id}: {log}");
    line
}

/// An upstream on a listener the test bound (and keeps, on its thread, for the test's life).
/// Each request's head is handed over, with its connection when the test is to answer it.
pub(crate) struct Upstream {
    pub(crate) addr: String,
    requests: Receiver<(String, Option<TcpStream>)>,
}

impl Upstream {
    /// `hold`: hand each connection to the test to answer; else answer 200 `ok` at once.
    pub(crate) fn start(hold: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let stream = if hold {
                    Some(stream)
                } else {
                    answer(stream, "ok");
                    None
                };
                if tx.send((head, stream)).is_err() {
                    break;
                }
            }
        });
        Upstream { addr, requests }
    }

    /// The next request to reach it.
    pub(crate) fn next(&self) -> (String, Option<TcpStream>) {
        self.requests
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no request reached the upstream within {WAIT:?}: {e}"))
    }
}

/// An address this test owns on which nothing listens: a socket bound to it but never put
/// in the listening state, so connecting is refused and no one else can take the port while
/// the returned socket lives.
pub(crate) fn refused_address() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Answers an upstream request 200 with `body`, and closes the connection.
fn answer(mut stream: TcpStream, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).unwrap();
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
    let (_, auth) = svc_client(d, &["--config", "t.toml"], "read");

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
    let args = ["serve", "--config", "t.toml", "--listen", "127.0.0.1:0"];
    let (stderr, stdout) = refused(d, Some(OTHER_MASTER), &args, "ERR_STORE_WRONG_MASTER_KEY");
    assert!(
        stderr.contains("master key") && stderr.contains("Nothing was changed"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(snapshot() == before, "keys and clients are untouched");
    let (stderr, _) = refused(
        d,
        Some("not base64!"),
        &["client", "list", "--data-dir", "data"],
        "ERR_STORE_MASTER_KEY_FORMAT",
    );
    assert!(stderr.contains("TOKENGATE_MASTER_KEY"), "{stderr}");
    // A master key file that others may read is refused, with the command that fixes it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = d.join("open.key");
        std::fs::write(&key, format!("{MASTER}\n")).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(
            d.join("open.toml"),
            "[server]\ndata_dir = \"data\"\nmaster_key_file = \"open.key\"\n",
        )
        .unwrap();
        let (stderr, _) = refused(
            d,
            None,
            &["client", "list", "--config", "open.toml"],
            "ERR_STORE_MASTER_KEY_EXPOSED",
        );
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }

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
    // The web console it names opens, and the admin token it prints signs in there.
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {out}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let console = line("web console: ");
    let path = console.split_once(&server.addr).unwrap().1;
    let page = request(&server.addr, "GET", path, &[], None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("content-security-policy").is_some());
    let admin = line("admin token: ");
    let body = serde_json::json!({ "token": admin }).to_string();
    let session = request(&server.addr, "POST", "/console/session", &[], Some(&body));
    assert_eq!(session.status, 200, "{}", session.body);
    // Logged before the listening line, but written by the log's own thread: waited for.
    wait_for("the note that the master key file was created", || {
        let log = server.log();
        if log.contains("created the master key file") {
            Ok(())
        } else {
            Err(log)
        }
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The data directory and everything in it are the owner's alone (#13 finding 10).
        let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("data/master.key"), 0o600);
        assert_eq!(mode("data"), 0o700);
        assert_eq!(mode("data/tokengate.db"), 0o600);
    }
    let auth = crate::harness::basic(&id, &secret);
    let token = get_token(&server.addr, &auth);
    assert!(active(&server.addr, &auth, &token));
    // The demo route: 401 without a token, 403 without the write scope, 200 with it.
    request(&server.addr, "POST", "/api/transactions", &[], Some("{}"))
        .refused(401, "missing_token");
    let (status, body) = http(
        &server.addr,
        "/oauth2/token",
        Some(&auth),
        Some("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&scope=transactions%3Aread"),
    );
    assert_eq!(status, 200, "{body}");
    let read = json(&body)["access_token"].as_str().unwrap().to_owned();
    request(
        &server.addr,
        "POST",
        "/api/transactions",
        &[("Authorization", &format!("Bearer {read}"))],
        Some("{}"),
    )
    .refused(403, "insufficient_scope");
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
    // An upstream address this test holds, on which nothing listens.
    let (_dead_socket, dead) = refused_address();
    let config = |prefix: &str| {
        format!("[server]\ndata_dir = \"data\"\n[[routes]]\nname = \"r\"\npath_prefix = \"{prefix}\"\nupstreams = [\"http://{dead}\"]\nauth = \"none\"\n")
    };
    std::fs::write(d.join("g.toml"), config("/one/")).unwrap();
    let server = start(d, Some(MASTER), &["serve", "--config", "g.toml"]);
    let get = |path: &str| request(&server.addr, "GET", path, &[], None);
    get("/one/x").refused(502, "bad_gateway");
    get("/two/x").refused(404, "not_found");
    std::fs::write(d.join("g.toml"), config("/two/")).unwrap();
    server.signal("HUP");
    wait_for("the new route to serve after SIGHUP", || {
        let r = get("/two/x");
        if r.status == 502 {
            Ok(r)
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    })
    .refused(502, "bad_gateway");
    get("/one/x").refused(404, "not_found");
    // A broken file: refused, the running configuration stays.
    std::fs::write(d.join("g.toml"), "[[routes]]\nname = 1\n").unwrap();
    server.signal("HUP");
    let refusal = wait_for("the refusal to be logged", || {
        log_lines(&server.log())
            .into_iter()
            .find(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("reload refused"))
            })
            .ok_or_else(|| server.log())
    });
    assert_eq!(refusal["level"], "WARN", "{refusal}");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains("g.toml"), "names the file: {message}");
    get("/two/x").refused(502, "bad_gateway");
    assert_eq!(get("/oauth2/jwks").status, 200);

    // The access log: one JSON line per request, gateway traffic (which bypasses the router)
    // and token-service requests alike. The request the test timed itself: the latency the
    // server logs lies within the time the test saw the request take (not a timing
    // assertion: it cannot fail however slow the machine is, only if the field is wrong).
    let before = store::unix_now();
    let sent = Instant::now();
    request(
        &server.addr,
        "GET",
        "/two/x",
        &[("X-Request-Id", "upstream-down")],
        None,
    )
    .refused(502, "bad_gateway");
    let round_trip_ms = sent.elapsed().as_secs_f64() * 1000.0;
    let after = store::unix_now();
    request(
        &server.addr,
        "GET",
        "/one/x",
        &[("X-Request-Id", "unrouted")],
        None,
    )
    .refused(404, "not_found");
    assert_eq!(
        request(
            &server.addr,
            "GET",
            "/oauth2/jwks",
            &[("X-Request-Id", "jwks")],
            None
        )
        .status,
        200
    );
    let line_of = |id: &str| {
        wait_for(&format!("the access-log line of {id}"), || {
            let log = server.log();
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["request_id"] == id)
                .ok_or(log)
        })
    };
    let upstream_down = line_of("upstream-down");
    let mut fields: Vec<&str> = upstream_down
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    // tracing's JSON lines: its own three fields, then ours; a field without a value (no
    // token here, and no upstream answered) is left out rather than written as null.
    assert_eq!(
        fields,
        [
            "denial",
            "detail",
            "latency_ms",
            "level",
            "method",
            "path",
            "request_id",
            "route",
            "status",
            "target",
            "timestamp",
            "trace_id"
        ],
        "{upstream_down}"
    );
    assert_eq!(upstream_down["level"], "INFO");
    assert_eq!(upstream_down["target"], "tokengate::access");
    assert_eq!(upstream_down["method"], "GET");
    assert_eq!(upstream_down["path"], "/two/x");
    assert_eq!(upstream_down["status"], 502);
    assert_eq!(upstream_down["route"], "r");
    assert_eq!(upstream_down["denial"], "ERR_GATEWAY_UPSTREAM");
    let trace_id = upstream_down["trace_id"].as_str().unwrap();
    assert!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace_id}"
    );
    // The target that failed is named in the detail (`upstream` names the one that answered).
    let detail = upstream_down["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("upstream failed: ") && detail.contains(&dead.to_string()),
        "{detail}"
    );
    let time = unix_seconds(upstream_down["timestamp"].as_str().unwrap());
    assert!(
        (before..=after).contains(&time),
        "{time} not in {before}..={after}"
    );
    let latency = upstream_down["latency_ms"].as_f64().unwrap();
    assert!(
        latency.is_finite() && latency > 0.0 && latency <= round_trip_ms,
        "latency_ms {latency} outside (0, {round_trip_ms}]"
    );
    let unrouted = line_of("unrouted");
    assert_eq!(unrouted["status"], 404);
    assert_eq!(unrouted["route"], Value::Null);
    assert_eq!(
        unrouted["denial"],
        Value::Null,
        "no check refused it: {unrouted}"
    );
    let jwks = line_of("jwks");
    assert_eq!(jwks["status"], 200);
    assert_eq!(jwks["path"], "/oauth2/jwks");
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
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &with(&["client", "rotate-secret", pk["client_id"].as_str().unwrap()]),
        "ERR_CLIENT_CONFLICT",
    );
    assert!(stderr.contains("has no secret"), "{stderr}");
    ok_json(d, &with(&["client", "delete", id]));
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &with(&["client", "show", id]),
        "ERR_CLIENT_NOT_FOUND",
    );
    assert!(stderr.contains("not found"), "{stderr}");
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &with(&["client", "create", "--name", "x", "--auth-method", "magic"]),
        "ERR_USAGE",
    );
    assert!(stderr.contains("--auth-method must be "), "{stderr}");
    // A public client with its redirect URIs; none refused for lacking them or for a
    // redirect URI that is not allowed.
    let app = ok_json(
        d,
        &with(&[
            "client",
            "create",
            "--name",
            "app",
            "--public",
            "--redirect-uri",
            "http://localhost:6274/oauth/callback",
            "--redirect-uri",
            "https://app.example/cb",
        ]),
    );
    assert!(app.get("client_secret").is_none(), "{app}");
    let shown = ok_json(
        d,
        &with(&["client", "show", app["client_id"].as_str().unwrap()]),
    );
    assert_eq!(shown["auth_method"], "none");
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!([
            "http://localhost:6274/oauth/callback",
            "https://app.example/cb"
        ])
    );
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &with(&["client", "create", "--name", "x", "--public"]),
        "ERR_CLIENT_INVALID_REQUEST",
    );
    assert!(stderr.contains("needs a redirect URI"), "{stderr}");
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &with(&[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "http://app.example/cb",
        ]),
        "ERR_CLIENT_INVALID_REQUEST",
    );
    assert!(stderr.contains("loopback"), "{stderr}");

    let keys = ok_json(d, &with(&["key", "list"]));
    // Signing, encryption, and the audit log's.
    assert_eq!(keys.as_array().unwrap().len(), 3);
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
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &["serve", "--config", "bad.toml"],
        "ERR_CONFIG",
    );
    assert!(stderr.contains("bad.toml:3:1"), "{stderr}");
    std::fs::write(
        d.join("tls.toml"),
        "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n",
    )
    .unwrap();
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &["serve", "--config", "tls.toml", "--listen", "127.0.0.1:0"],
        "ERR_TLS",
    );
    assert!(
        stderr.contains("c.pem"),
        "names the file it cannot read: {stderr}"
    );
    // The development sign-in lets anyone be anyone: `serve` refuses it.
    std::fs::write(
        d.join("dev-login.toml"),
        "[token_service.login]\nprovider = \"dev\"\n",
    )
    .unwrap();
    let (stderr, _) = refused(
        d,
        Some(MASTER),
        &[
            "serve",
            "--config",
            "dev-login.toml",
            "--listen",
            "127.0.0.1:0",
        ],
        "ERR_USAGE",
    );
    assert!(stderr.contains("tokengate dev"), "{stderr}");
}

/// The variable a printed line assigns (`NAME=$(curl …)`), if it is an assignment.
fn assigned(line: &str) -> Option<&str> {
    let (name, value) = line.split_once('=')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()) && value.starts_with("$("))
        .then_some(name)
}

/// Runs `script` (printed lines, as a reader would paste them) with `sh` in `dir`, the
/// variables earlier lines set in its environment. curl reads `.curlrc` in `$CURL_HOME`,
/// where the test has it also write the status of each request to stderr, so the lines run
/// as printed. Returns stdout, and the status of the one request the script makes.
fn run_lines(dir: &Path, script: &str, vars: &[(String, String)]) -> (String, u16) {
    let out = sh(dir, script, vars);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    let statuses: Vec<u16> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("curl-status "))
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let [status] = statuses[..] else {
        panic!("{script}: expected one request, saw {statuses:?}: {stderr}")
    };
    (stdout, status)
}

/// `sh -c script` in `dir` with `vars`, curl reading its `.curlrc` there.
fn sh(dir: &Path, script: &str, vars: &[(String, String)]) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("CURL_HOME", dir)
        // Straight to the server, whatever proxy the environment names.
        .env("no_proxy", "127.0.0.1")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("running sh: {e}"))
}

/// Runs the printed loop that spends the demo route's per-client limit: the one call before
/// it spent a request, so `RateLimit` counts down from 8 to 0 over nine 200s, and the tenth
/// is a 429 with `Retry-After`.
fn rate_limit_loop(dir: &Path, line: &str, vars: &[(String, String)]) {
    let out = sh(dir, line, vars);
    let stdout = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let statuses: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("http/1.1 "))
        .map(|l| l.get(..3).unwrap_or(l))
        .collect();
    assert_eq!(
        statuses,
        [["200"; 9].as_slice(), &["429"]].concat(),
        "{stdout}"
    );
    let left: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ratelimit: \"per-client\";r="))
        .map(|l| l.split(';').next().unwrap())
        .collect();
    assert_eq!(
        left,
        ["8", "7", "6", "5", "4", "3", "2", "1", "0", "0"],
        "{stdout}"
    );
    assert!(stdout.contains("retry-after: "), "{stdout}");
}

/// The printed cache loop: two reads of the cached route, a miss that is stored, then a hit
/// with its age.
fn cache_loop(dir: &Path, line: &str, vars: &[(String, String)]) {
    let out = sh(dir, line, vars);
    let stdout = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let statuses: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cache-status: "))
        .collect();
    assert_eq!(statuses.len(), 2, "{stdout}");
    assert_eq!(statuses[0], "tokengate; fwd=miss; stored", "{stdout}");
    assert!(statuses[1].starts_with("tokengate; hit; ttl="), "{stdout}");
    assert_eq!(stdout.matches("http/1.1 200").count(), 2, "{stdout}");
    assert!(stdout.contains("\nage: "), "{stdout}");
}

/// What `curl -i` printed, as a response.
fn included(text: &str) -> Response {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {text}"));
    Response {
        status: head.get(9..12).and_then(|s| s.parse().ok()).unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[cfg(unix)]
#[test]
fn dev_prints_curl_lines_that_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join(".curlrc"),
        "write-out = \"%{stderr}curl-status %{http_code}\\n\"\n",
    )
    .unwrap();
    assert!(
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test runs the curl lines tokengate dev prints: install curl"
    );
    let mut server = start(d, None, &["dev", "--data-dir", "data"]);
    let printed = server.printed();
    let issuer = format!("http://{}", server.addr);
    let client_id = printed
        .split_whitespace()
        .find_map(|w| w.strip_prefix("client_id="))
        .unwrap_or_else(|| panic!("no client_id: {printed}"))
        .to_owned();
    let lines: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("curl "))
        .collect();
    assert_eq!(lines.len(), 17, "{printed}");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut promised = Vec::new();
    // Request ids of the refusals, to find their access-log lines.
    let mut refusals = Vec::new();
    for line in lines {
        assert!(line.contains(&format!("{issuer}/")), "{line}");
        if let Some(var) = assigned(line) {
            let (value, status) = run_lines(d, &format!("{line}\nprintf %s \"${var}\""), &vars);
            assert_eq!(status, 200, "{line}");
            let parts = if var == "ENC" { 5 } else { 3 };
            assert_eq!(value.split('.').count(), parts, "{var}={value}");
            vars.push((var.to_owned(), value));
            continue;
        }
        if line.starts_with("for ") && line.contains("/api/rates") {
            cache_loop(d, line, &vars);
            continue;
        }
        if line.starts_with("for ") {
            rate_limit_loop(d, line, &vars);
            continue;
        }
        assert!(line.starts_with("curl "), "{line}");
        let promise = line.rsplit_once(" # ").map(|(_, p)| p.trim());
        let expected: u16 = promise.map_or(200, |p| p[..3].parse().unwrap());
        let (stdout, status) = run_lines(d, line, &vars);
        assert_eq!(status, expected, "{line}\n{stdout}");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with(&issuer))
            .unwrap();
        let path = &url[issuer.len()..];
        let upstream = |stdout: &str, scopes: &str| {
            let seen = json(stdout);
            assert_eq!(seen["upstream"], "tokengate dev demo", "{seen}");
            assert_eq!(seen["headers"]["x-user-id"], client_id.as_str(), "{seen}");
            assert_eq!(seen["headers"]["x-scopes"], scopes, "{seen}");
            assert_eq!(seen["saw_client_token"], false, "{seen}");
            seen
        };
        match (promise, path) {
            (Some("401: no token"), "/api/transactions") => {
                let r = included(&stdout);
                r.refused(401, "missing_token");
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Bearer realm=\"tokengate\"")
                );
                refusals.push((r, "ERR_GATEWAY_NO_TOKEN"));
            }
            (Some("200: the upstream sees the caller"), "/api/transactions") => {
                let seen = upstream(&stdout, "transactions:write");
                assert_eq!(seen["headers"]["x-client-id"], client_id.as_str());
                assert_eq!(seen["body"], "{\"amount\":5}");
            }
            (Some("403: insufficient_scope"), "/api/transactions") => {
                let r = included(&stdout);
                r.refused(403, "insufficient_scope");
                let challenge = r.header("www-authenticate").unwrap();
                assert!(
                    challenge.contains("error=\"insufficient_scope\"")
                        && challenge.contains("scope=\"transactions:write\""),
                    "{challenge}"
                );
                refusals.push((r, "ERR_GATEWAY_INSUFFICIENT_SCOPE"));
            }
            (Some("200: an encrypted (JWE) token"), "/secure/balance") => {
                upstream(&stdout, "transactions:read");
            }
            (Some("401: revoked"), "/api/transactions") => {
                let r = included(&stdout);
                r.refused(401, "invalid_token");
                let challenge = r.header("www-authenticate").unwrap();
                assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
                refusals.push((r, "ERR_GATEWAY_REVOKED"));
            }
            (None, "/oauth2/introspect") => {
                let seen = json(&stdout);
                assert_eq!(seen["active"], true, "{seen}");
                assert_eq!(seen["client_id"], client_id.as_str());
                assert_eq!(seen["scope"], "transactions:write");
            }
            (None, "/oauth2/revoke") => assert_eq!(stdout, ""),
            (None, "/.well-known/oauth-authorization-server") => {
                assert_eq!(json(&stdout)["issuer"], issuer.as_str());
            }
            (None, "/oauth2/jwks") => {
                assert!(!json(&stdout)["keys"].as_array().unwrap().is_empty());
            }
            (None, "/admin/audit") => {
                let events = json(&stdout)["events"].as_array().unwrap().clone();
                assert!(
                    events
                        .iter()
                        .any(|e| e["event"] == "token.revoked" && e["outcome"] == "success"),
                    "the revocation the line before made: {events:?}"
                );
            }
            (None, "/.well-known/tokengate-audit-keys") => {
                let keys = std::fs::read_to_string(d.join("audit-keys.json")).unwrap();
                assert_eq!(json(&keys)["keys"][0]["state"], "active", "{keys}");
            }
            (None, "/metrics") => {
                assert!(
                    stdout.contains("\ntokengate_log_lines_dropped_total 0\n"),
                    "{stdout}"
                );
            }
            _ => panic!("a printed line this test does not know what to expect of: {line}"),
        }
        if let Some(p) = promise {
            promised.push(p.to_owned());
        }
    }
    assert_eq!(promised.len(), 5, "{promised:?}");
    // The audit commands it prints verify the log, from the database and from an export
    // with the keys fetched by the line above.
    let audit: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tokengate audit "))
        .collect();
    assert_eq!(audit.len(), 2, "{printed}");
    let bin = Path::new(env!("CARGO_BIN_EXE_tokengate")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in audit {
        let out = Command::new("sh")
            .args(["-c", line])
            .current_dir(d)
            .env("PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("ok: "), "{line}: {stdout}");
    }
    // Each refusal's stable code is in the access log.
    let log = server.stop();
    for (response, code) in refusals {
        let id = response.header("x-request-id").unwrap();
        let line = access_line(&log, id);
        assert_eq!(line["denial"], code, "{line}");
        assert_eq!(line["status"], response.status, "{line}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let upstream = Upstream::start(true);
    std::fs::write(
        d.join("t.toml"),
        format!(
            "[server]\ndata_dir = \"data\"\n[[routes]]\nname = \"slow\"\npath_prefix = \"/slow/\"\nupstreams = [\"http://{}\"]\nauth = \"none\"\n",
            upstream.addr
        ),
    )
    .unwrap();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    assert_eq!(http(&server.addr, "/oauth2/jwks", None, None).0, 200);
    let addr = server.addr.clone();
    let client = std::thread::spawn(move || {
        request(
            &addr,
            "GET",
            "/slow/x",
            &[("X-Request-Id", "in-flight")],
            None,
        )
    });
    // The request has reached the upstream: it is in flight.
    let (head, held) = upstream.next();
    assert!(head.starts_with("GET /slow/x HTTP/1.1\r\n"), "{head}");
    server.signal("TERM");
    // The server stops accepting (its listener is closed) but keeps running.
    wait_for(
        "the listener to close after SIGTERM",
        || match TcpStream::connect(&server.addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok(_) => Err("still accepting connections".to_owned()),
        },
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited with a request in flight: {}",
        server.log()
    );
    // The upstream answers now; the client gets that answer.
    answer(held.unwrap(), "drained");
    let response = client.join().unwrap();
    assert_eq!(response.status, 200, "{}{}", response.head, response.body);
    assert_eq!(response.body, "drained");
    let status = server.exit_status();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "{status}: {log}");
    let line = access_line(&log, "in-flight");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["denial"], Value::Null, "{line}");
    let last = log_lines(&log).pop().unwrap();
    assert_eq!(last["message"], "stopped", "{log}");
}

/// The signal handlers exist before the "listening" line: a SIGTERM sent on seeing it stops
/// the server cleanly instead of killing it (the default action of an unhandled SIGTERM).
/// A weak guard: the window before the handlers existed was short, and spawning `kill` often
/// took longer, so the old code also passed most runs.
#[cfg(unix)]
#[test]
fn sigterm_right_after_the_listening_line_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.toml"), "[server]\ndata_dir = \"data\"\n").unwrap();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    server.signal("TERM");
    let status = server.exit_status();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "{status}: {log}");
    let last = log_lines(&log).pop().unwrap();
    assert_eq!(last["message"], "stopped", "{log}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_postgresql_database_url() {
    // A schema of its own (t_<random>, chosen with `?options=-c search_path=…`), dropped at
    // the end; without TOKENGATE_TEST_POSTGRES_URL, run_postgres fails saying how to set it.
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        assert!(url.contains("options=-c%20search_path%3Dt_"), "{url}");
        let (client_id, jti) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let (id, auth) = svc_client(d, &["--database-url", &url], "read");
            let mut server = start(d, Some(MASTER), &["serve", "--database-url", &url]);
            let token = get_token(&server.addr, &auth);
            assert!(active(&server.addr, &auth, &token));
            // A resource server's check: the JWKS it serves verifies the token.
            let (status, jwks) = http(&server.addr, "/oauth2/jwks", None, None);
            assert_eq!(status, 200, "{jwks}");
            let jwks = jose::JwkSet::from_json(jwks.as_bytes()).unwrap();
            let validation = jose::jwt::Validation::new()
                .algorithms([jose::Algorithm::ES256])
                .issuer(format!("http://{}", server.addr))
                .audience("https://api.example")
                .typ("at+jwt");
            let claims = jose::jwt::verify(&token, &jwks, &validation)
                .unwrap()
                .claims;
            assert_eq!(claims.get("client_id").unwrap().unwrap(), id.as_str());
            assert_eq!(claims.get("scope").unwrap().unwrap(), "read");
            let jti = claims.jti().unwrap().to_owned();
            // Stopped cleanly, so no connection of it is left when the schema is dropped.
            server.stop();
            let entries: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(entries, ["server.log"], "no SQLite database beside it");
            (id, jti)
        })
        .await
        .unwrap();
        // The token was recorded in that schema.
        let store = ctx.open().await;
        assert_eq!(store.backend(), store::Backend::Postgres);
        let row = store
            .token(&jti)
            .await
            .unwrap()
            .expect("the issued token's row");
        assert_eq!(row.client_id, client_id);
        assert!(row.revoked_at.is_none());
        store.close().await;
    })
    .await;
}

/// A request of [`the_logs_never_hold_a_token`]: its request id, path and Authorization, and
/// the status, error and denial code it gets.
type Case = (
    &'static str,
    String,
    Option<String>,
    u16,
    Option<&'static str>,
    Option<&'static str>,
);

#[cfg(unix)]
#[test]
fn the_logs_never_hold_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let upstream = Upstream::start(false);
    std::fs::write(
        d.join("t.toml"),
        format!(
            "[server]\ndata_dir = \"data\"\n\
             [[audiences]]\nid = \"https://api.example\"\nscopes = [\"read\", \"write\"]\n\
             [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{}\"]\n\
             [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\
             required_scopes = [\"write\"]\n",
            upstream.addr
        ),
    )
    .unwrap();
    let (id, auth) = svc_client(d, &["--config", "t.toml"], "read write");
    let id = id.as_str();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let addr = server.addr.clone();
    let write = token_for(&addr, &auth, "scope=write");
    let read = token_for(&addr, &auth, "scope=read");
    let revoked = token_for(&addr, &auth, "scope=write");
    let (status, body) = http(
        &addr,
        "/oauth2/revoke",
        Some(&auth),
        Some(&format!("token={revoked}")),
    );
    assert_eq!(status, 200, "{body}");
    // The valid token with its signature altered.
    let (signed, signature) = write.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<Case> = vec![
        (
            "valid",
            "/api/x".into(),
            Some(bearer(&write)),
            200,
            None,
            None,
        ),
        (
            "no-scope",
            "/api/x".into(),
            Some(bearer(&read)),
            403,
            Some("insufficient_scope"),
            Some("ERR_GATEWAY_INSUFFICIENT_SCOPE"),
        ),
        (
            "revoked",
            "/api/x".into(),
            Some(bearer(&revoked)),
            401,
            Some("invalid_token"),
            Some("ERR_GATEWAY_REVOKED"),
        ),
        (
            "forged",
            "/api/x".into(),
            Some(bearer(&forged)),
            401,
            Some("invalid_token"),
            Some("ERR_JWS_SIGNATURE_INVALID"),
        ),
        (
            "garbage",
            "/api/x".into(),
            Some(bearer("not-a-token")),
            401,
            Some("invalid_token"),
            Some("ERR_JWT_INVALID"),
        ),
        (
            "dpop-without-proof",
            "/api/x".into(),
            Some(format!("DPoP {write}")),
            401,
            Some("invalid_dpop_proof"),
            Some("ERR_GATEWAY_DPOP"),
        ),
        // In the query string: not a way to present a token here, and the access log never
        // records the query.
        (
            "in-query",
            format!("/api/x?access_token={write}"),
            None,
            401,
            Some("missing_token"),
            Some("ERR_GATEWAY_NO_TOKEN"),
        ),
        (
            "unrouted",
            "/nowhere".into(),
            Some(bearer(&write)),
            404,
            Some("not_found"),
            None,
        ),
    ];
    for (rid, path, authorization, status, error, _) in &cases {
        let mut headers = vec![("X-Request-Id", *rid)];
        if let Some(a) = authorization {
            headers.push(("Authorization", a.as_str()));
        }
        let response = request(&addr, "GET", path, &headers, None);
        match error {
            Some(e) => response.refused(*status, e),
            None => assert_eq!(response.status, *status, "{rid}: {}", response.body),
        }
    }
    // The one request let through reached the upstream without the client's token.
    let (head, _) = upstream.next();
    assert!(head.starts_with("GET /api/x HTTP/1.1\r\n"), "{head}");
    assert!(!head.contains(&write), "{head}");
    // Introspection, and the token endpoint's answers, hold tokens too.
    assert!(active(&addr, &auth, &write));

    let log = server.stop();
    let printed = server.printed_to_the_end();
    for (rid, path, _, status, _, denial) in &cases {
        let line = access_line(&log, rid);
        assert_eq!(line["status"], *status, "{line}");
        assert_eq!(
            line["path"],
            path.split('?').next().unwrap(),
            "the path without the query: {line}"
        );
        assert_eq!(
            line["denial"],
            denial.map_or(Value::Null, Value::from),
            "{line}"
        );
    }
    // What the access log records of the token let through: who, and a hash prefix.
    let valid = access_line(&log, "valid");
    assert_eq!(valid["client_id"], id);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, write.as_bytes());
    let prefix: String = hash.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(valid["token_hash"], prefix.as_str());
    for token in [&write, &read, &revoked, &forged] {
        let (_, payload_and_signature) = token.split_once('.').unwrap();
        let (payload, signature) = payload_and_signature.split_once('.').unwrap();
        for (what, text) in [("stderr", &log), ("stdout", &printed)] {
            for (part, secret) in [
                ("token", token.as_str()),
                ("payload", payload),
                ("signature", signature),
            ] {
                assert!(
                    !text.contains(secret),
                    "the {part} of {token} is in {what}: {text}"
                );
            }
        }
    }
}

/// Two nodes on one PostgreSQL database: a token revoked at one is refused by the other's
/// gateway, which had already accepted (and cached) it, with no restart: the other node reads
/// revocations from the database every second.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_at_one_node_is_refused_at_the_other() {
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        tokio::task::spawn_blocking(move || {
            let upstream = Upstream::start(false);
            let config = format!(
                "[token_service]\nissuer = \"https://as.example\"\n\
                 [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{}\"]\n\
                 [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n",
                upstream.addr
            );
            let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            for dir in [&one, &two] {
                std::fs::write(dir.path().join("t.toml"), &config).unwrap();
            }
            let (_, auth) = svc_client(one.path(), &["--database-url", &url], "read");
            let args = ["serve", "--config", "t.toml", "--database-url", &url];
            let mut a = start(one.path(), Some(MASTER), &args);
            let mut b = start(two.path(), Some(MASTER), &args);
            let token = get_token(&a.addr, &auth);
            let bearer = format!("Bearer {token}");
            let at_b = |request_id: &str| {
                request(
                    &b.addr,
                    "GET",
                    "/api/x",
                    &[("Authorization", &bearer), ("X-Request-Id", request_id)],
                    None,
                )
            };
            let r = at_b("before");
            assert_eq!(r.status, 200, "{}{}", r.head, r.body);
            let (status, body) = http(
                &a.addr,
                "/oauth2/revoke",
                Some(&auth),
                Some(&format!("token={token}")),
            );
            assert_eq!(status, 200, "{body}");
            let mut attempt = 0;
            let refused = wait_for("node b to refuse the token revoked at node a", || {
                attempt += 1;
                let id = format!("after-{attempt}");
                let r = at_b(&id);
                match r.status {
                    401 => Ok(id),
                    200 => Err("still accepted".to_owned()),
                    other => panic!("unexpected {other}: {}{}", r.head, r.body),
                }
            });
            let log = b.stop();
            let line = access_line(&log, &refused);
            assert_eq!(line["denial"], "ERR_GATEWAY_REVOKED", "{line}");
            a.stop();
        })
        .await
        .unwrap();
    })
    .await;
}

/// `admin_listen` moves the admin API and `/metrics` to their own listener, `metrics_token`
/// guards `/metrics`, and failed admin authentications reach the audit trail, counted per
/// source (#13 finding 12).
#[cfg(unix)]
#[test]
fn admin_listen_moves_the_admin_api_and_metrics_off_the_main_listener() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (admin, metrics) = ("a".repeat(32), "m".repeat(32));
    // A catch-all public route: the admin paths must still not reach it.
    let upstream = Upstream::start(false);
    std::fs::write(
        d.join("t.toml"),
        format!("[server]\ndata_dir = \"data\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"{admin}\"\nmetrics_token = \"{metrics}\"\n\
                 [[routes]]\nname = \"all\"\npath_prefix = \"/\"\nupstreams = [\"http://{}\"]\nauth = \"none\"\n", upstream.addr),
    )
    .unwrap();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let admin_addr = admin_address(&server);
    let (admin_auth, metrics_auth) = (format!("Bearer {admin}"), format!("Bearer {metrics}"));
    let main = &server.addr;
    // The main listener: the token service, no admin API, no metrics.
    assert_eq!(http(main, "/oauth2/jwks", None, None).0, 200);
    for path in [
        "/metrics",
        "/metrics/",
        "/admin",
        "/admin/",
        "/admin/clients",
        "/admin/x/y",
    ] {
        assert_eq!(http(main, path, Some(&admin_auth), None).0, 404, "{path}");
    }
    // Other paths are the catch-all route's.
    assert_eq!(http(main, "/anything", None, None).0, 200);
    // The admin listener: both, behind their tokens, and nothing else.
    assert_eq!(http(&admin_addr, "/oauth2/jwks", None, None).0, 404);
    let (status, _) = http(&admin_addr, "/metrics", None, None);
    assert_eq!(status, 401);
    let (status, text) = http(&admin_addr, "/metrics", Some(&metrics_auth), None);
    assert_eq!(status, 200);
    assert!(text.contains("tokengate_"), "{text}");
    assert_eq!(
        http(&admin_addr, "/admin/clients", Some(&admin_auth), None).0,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            http(&admin_addr, "/admin/clients", Some("Bearer wrong"), None).0,
            401
        );
    }
    // Counted, and written at the latest when the server stops.
    server.stop();
    let server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let admin_addr = admin_address(&server);
    let (status, body) = http(
        &admin_addr,
        "/admin/audit?limit=100",
        Some(&admin_auth),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let events = json(&body);
    let failed: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "admin.auth_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{body}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("3 failed admin authentication(s) from 127.0.0.1"),
        "{body}"
    );
}

/// The admin listener's address, as the server printed it before its main one.
pub(crate) fn admin_address(server: &Server) -> String {
    server
        .stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tokengate admin API and metrics on http://")
        })
        .unwrap_or_else(|| panic!("no admin address: {}", server.stdout))
        .to_owned()
}

/// Two nodes on one PostgreSQL and one Redis, a route limited to 50 a minute per client on
/// the cluster: 150 requests alternating between them as fast as they go get exactly 50,
/// plus one for each 1.2 s the run took; a second client gets its own 50.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_exact_budget_through_redis() {
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let upstream = Upstream::start(false);
            // A route name of its own: other runs may share this Redis.
            let route = format!("shared-{}", store::testing::random_hex(4));
            let config = format!(
                "[token_service]\nissuer = \"http://127.0.0.1:9\"\n\n\
                 [redis]\nurl = \"{}\"\ntimeout = \"1s\"\n\n\
                 [[routes]]\nname = \"{route}\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{}\"]\n\
                 [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\
                 [[routes.rate_limits]]\nname = \"per-client\"\nkey = \"client_id\"\nlimit = 50\nper = \"1m\"\nscope = \"cluster\"\n",
                store::testing::redis_url(),
                upstream.addr
            );
            std::fs::write(d.join("t.toml"), config).unwrap();
            let source = ["--config", "t.toml", "--database-url", url.as_str()];
            let (_, first_auth) = svc_client(d, &source, "read");
            let (_, second_auth) = svc_client(d, &source, "read");
            let args = ["serve", "--config", "t.toml", "--database-url", url.as_str()];
            let a = start(d, Some(MASTER), &args);
            let b = start(d, Some(MASTER), &args);
            let first = format!("Bearer {}", get_token(&a.addr, &first_auth));
            let second = format!("Bearer {}", get_token(&b.addr, &second_auth));
            let nodes = [a.addr.as_str(), b.addr.as_str()];
            let call = |i: usize, bearer: &str| {
                request(nodes[i % 2], "GET", "/api/x", &[("Authorization", bearer)], None)
            };
            let began = Instant::now();
            let mut first_answered = None;
            let mut last_sent = began;
            let mut allowed = 0;
            let mut refusal = None;
            for i in 0..150 {
                last_sent = Instant::now();
                let r = call(i, &first);
                first_answered.get_or_insert_with(Instant::now);
                match r.status {
                    200 => allowed += 1,
                    429 => refusal = Some(r),
                    other => panic!("request {i}: {other}: {}{}", r.head, r.body),
                }
            }
            let ended = Instant::now();
            // Cells come back one per 1.2 s, on Redis's clock, from the first request (seen by
            // Redis between `began` and `first_answered`) to the last (between `last_sent`
            // and `ended`).
            let cells = |from: Instant, to: Instant| {
                (to.saturating_duration_since(from).as_secs_f64() / 1.2).floor() as usize
            };
            let least = 50 + cells(first_answered.unwrap(), last_sent);
            let most = 50 + cells(began, ended);
            assert!(
                (least..=most).contains(&allowed),
                "{allowed} allowed in {:?}; expected {least} to {most}",
                ended - began
            );
            eprintln!("{allowed} of 150 allowed in {:?} on two nodes", ended - began);
            let refusal = refusal.expect("past 50 some are refused");
            assert_eq!(refusal.json()["error"], "rate_limited");
            assert_eq!(refusal.json()["limit"], "per-client");
            assert!(refusal.json()["request_id"].as_str().is_some());
            assert!(refusal.header("retry-after").is_some(), "{}", refusal.head);
            assert!(
                refusal.header("ratelimit").is_some_and(|v| v.starts_with("\"per-client\";r=0;t=")),
                "{}",
                refusal.head
            );
            assert_eq!(refusal.header("ratelimit-policy"), Some("\"per-client\";q=50;w=60"));
            // The second client: its own 50, whichever node it asks.
            let second_allowed = (0..60).filter(|i| call(*i, &second).status == 200).count();
            assert!((50..=52).contains(&second_allowed), "{second_allowed}");
            drop(a);
            drop(b);
        })
        .await
        .unwrap();
    })
    .await;
}

/// curl as a browser: keeps cookies in `jar`, answers headers and body.
fn browse(jar: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location: {head}"))
        .trim()
        .to_owned()
}

fn form_csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    body[at..].split('"').next().unwrap().to_owned()
}

#[test]
fn dev_prints_a_url_that_signs_a_user_in_and_shows_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = start(d, None, &["dev", "--data-dir", "data"]);
    let printed = server.printed();
    let issuer = format!("http://{}", server.addr);
    let url = format!("{issuer}/oauth2/dev/start");
    assert!(printed.contains(&url), "{printed}");
    let jar = d.join("cookies");

    let (head, _) = browse(&jar, &[&url]);
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let (head, page) = browse(&jar, &[&location(&head)]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(page.contains("Development sign-in"), "{page}");
    let csrf = form_csrf(&page);
    let sign_in = format!("{issuer}/oauth2/authorize/sign-in");
    let (_, page) = browse(
        &jar,
        &["-d", &format!("csrf={csrf}&username=ada"), &sign_in],
    );
    assert!(
        page.contains("Allow access?") && page.contains("dev-browser"),
        "{page}"
    );
    let consent = format!("{issuer}/oauth2/authorize/consent");
    let (head, _) = browse(&jar, &["-d", &format!("csrf={csrf}&approve=yes"), &consent]);
    let callback = location(&head);
    assert!(
        callback.starts_with(&format!("{issuer}/oauth2/dev/callback?code=")),
        "{head}"
    );
    let (head, page) = browse(&jar, &[&callback]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{page}");
    assert!(page.contains("\"sub\": \"ada\""), "{page}");
    assert!(page.contains("auth_time"), "{page}");

    // The token works at the gateway's read route.
    let token = page
        .split("<code>")
        .filter_map(|s| s.split("</code>").next())
        .find(|s| s.starts_with("eyJ") && s.split('.').count() == 3)
        .unwrap_or_else(|| panic!("no token on the page: {page}"))
        .to_owned();
    let reply = request(
        &server.addr,
        "GET",
        "/api/rates",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The same callback again: the code was used; the page says so and nothing is shown.
    let (head, page) = browse(&jar, &[&callback]);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}\n{page}");
    server.stop();
}
