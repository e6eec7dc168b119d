//! A node's lifecycle as a load balancer and Kubernetes see it: the probes, SIGTERM with
//! readiness failing first, one SQLite file refused to a second node; and the deployment
//! files of `deploy/` checked against the binary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::process::{http, json as parse, run, start, wait_for, MASTER};

#[cfg(unix)]
#[test]
fn probes_answer_and_sigterm_fails_readiness_before_the_listener_closes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.toml"),
        "[server]\ndata_dir = \"data\"\nshutdown_delay = \"5s\"\nshutdown_timeout = \"5s\"\n",
    )
    .unwrap();
    let mut server = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let (status, body) = http(&server.addr, "/healthz", None, None);
    assert_eq!(
        (status, parse(&body)["status"].clone()),
        (200, "ok".into()),
        "{body}"
    );
    let (status, body) = http(&server.addr, "/readyz", None, None);
    assert_eq!(status, 200, "{body}");
    let ready = parse(&body);
    assert_eq!(ready["status"], "ready", "{body}");
    assert_eq!(ready["checks"]["store"], "ok", "{body}");
    assert_eq!(ready["checks"]["keys"], "ok", "{body}");
    assert!(ready["checks"].get("redis").is_none(), "no [redis]: {body}");

    server.signal("TERM");
    let signalled = Instant::now();
    // Readiness fails at once, while the listener still accepts (the delay).
    let (status, body) = wait_for("/readyz to fail after SIGTERM", || {
        let (status, body) = http(&server.addr, "/readyz", None, None);
        (status == 503)
            .then_some((status, body.clone()))
            .ok_or(body)
    });
    assert_eq!(status, 503);
    assert!(
        parse(&body)["reason"]
            .as_str()
            .unwrap()
            .starts_with("shutting down"),
        "{body}"
    );
    assert_eq!(
        http(&server.addr, "/healthz", None, None).0,
        200,
        "alive while leaving"
    );
    wait_for(
        "the listener to close after the delay",
        || match std::net::TcpStream::connect(&server.addr) {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepting".to_owned()),
        },
    );
    let closed_after = signalled.elapsed();
    let status = server.exit_status();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    eprintln!("SIGTERM: listener closed after {closed_after:?} (shutdown_delay 5 s)");
}

/// Routes may not take the probes' paths.
#[test]
fn a_route_on_a_probe_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.toml"),
        "[[routes]]\nname = \"h\"\npath = \"/healthz\"\nupstreams = [\"http://127.0.0.1:9\"]\nauth = \"none\"\n",
    )
    .unwrap();
    let out = run(dir.path(), None, &["config", "check", "t.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/healthz"), "{err}");
    // A prefix serves its bare path too; a longer one is the upstream's.
    for (prefix, refused) in [("/readyz/", true), ("/healthz-ui/", false)] {
        std::fs::write(
            dir.path().join("t.toml"),
            format!("[[routes]]\nname = \"h\"\npath_prefix = \"{prefix}\"\nupstreams = [\"http://127.0.0.1:9\"]\nauth = \"none\"\n"),
        )
        .unwrap();
        let out = run(dir.path(), None, &["config", "check", "t.toml"]);
        assert_eq!(
            !out.status.success(),
            refused,
            "{prefix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A second node on the same SQLite file is refused at start, saying to use PostgreSQL;
/// the first keeps serving.
#[cfg(unix)]
#[test]
fn a_second_node_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.toml"), "[server]\ndata_dir = \"data\"\n").unwrap();
    let mut first = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    let out = run(
        d,
        Some(MASTER),
        &["serve", "--config", "t.toml", "--listen", "127.0.0.1:0"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERR_SQLITE_IN_USE") && err.contains("PostgreSQL"),
        "{err}"
    );
    assert_eq!(http(&first.addr, "/readyz", None, None).0, 200);
    // The CLI still works beside the running node.
    assert!(run(d, Some(MASTER), &["key", "list", "--config", "t.toml"])
        .status
        .success());
    first.stop();
    // Once the first is gone the file is free again.
    let mut again = start(d, Some(MASTER), &["serve", "--config", "t.toml"]);
    again.stop();
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// One YAML document from `deploy/kubernetes/<name>`.
fn manifest(name: &str) -> Yaml {
    let path = deploy_dir().join("kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

/// A container port by name or number.
fn port_of(container: &Yaml, port: &Yaml) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = port.as_str().unwrap();
    container["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// Every manifest parses; the ConfigMap's TOML passes `config check`; the probes' paths are
/// the binary's and their ports are the TOML's listeners; the binary serves those paths
/// with that configuration.
#[cfg(unix)]
#[test]
fn deployment_manifests_agree_with_the_binary() {
    for name in [
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    ] {
        let doc = manifest(name);
        assert!(doc["apiVersion"].as_str().is_some(), "{name}: apiVersion");
        assert!(doc["kind"].as_str().is_some(), "{name}: kind");
    }
    let toml_text = manifest("configmap.yaml")["data"]["tokengate.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tokengate.toml"), &toml_text).unwrap();
    let checked = run(d, None, &["config", "check", "tokengate.toml"]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let effective: Value = serde_json::from_slice(&checked.stdout).unwrap();
    let port = |key: &str| -> i64 {
        let addr = effective[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {effective}"));
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    let (main, admin) = (port("listen"), port("admin_listen"));

    let deployment = manifest("deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut probed = Vec::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        let path = get["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe}: path"));
        let at = port_of(container, &get["port"]);
        assert!(
            [main, admin].contains(&at),
            "{probe}: port {at} is not a listener"
        );
        assert!(["/healthz", "/readyz"].contains(&path), "{probe}: {path}");
        probed.push((probe, path.to_owned(), at));
    }
    assert!(probed
        .iter()
        .any(|(p, path, _)| *p == "readinessProbe" && path == "/readyz"));
    let service = manifest("service.yaml");
    for port in service["spec"]["ports"].as_vec().unwrap() {
        let target = port_of(container, &port["targetPort"]);
        assert!(
            [main, admin].contains(&target),
            "service targetPort {target}"
        );
    }
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    let seconds = |key: &str| effective[key].as_i64().unwrap();
    assert!(
        grace > seconds("shutdown_delay_seconds") + seconds("shutdown_timeout_seconds"),
        "terminationGracePeriodSeconds {grace} must outlast delay + timeout: {effective}"
    );

    // The binary serves the probes on both listeners with this configuration (on free
    // ports, over SQLite: the PostgreSQL and Redis of the manifests are not here).
    let local = toml_text
        .replace("0.0.0.0:8080", "127.0.0.1:0")
        .replace("0.0.0.0:9090", "127.0.0.1:0");
    let local: String = local
        .lines()
        .filter(|l| !l.starts_with("database_url") && !l.starts_with("password_env"))
        .map(|l| format!("{l}\n"))
        .collect();
    let local = local.replace(
        "url = \"redis://redis:6379\"",
        &format!("url = \"{}\"", store::testing::redis_url()),
    );
    std::fs::write(d.join("local.toml"), local).unwrap();
    let mut server = start(
        d,
        Some(MASTER),
        &["serve", "--config", "local.toml", "--data-dir", "data"],
    );
    let admin = crate::process::admin_address(&server);
    for listener in [&server.addr, &admin] {
        for path in ["/healthz", "/readyz"] {
            let (status, body) = http(listener, path, None, None);
            assert_eq!(status, 200, "{listener}{path}: {body}");
        }
    }
    server.stop();
}
