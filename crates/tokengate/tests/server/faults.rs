//! Faults of a deployment, each with real processes: Redis stopped, PostgreSQL stopped, a
//! node killed with SIGKILL. Redis and PostgreSQL are the tests' own (`redis-server`,
//! `initdb` and `pg_ctl` on free ports), so that they can be stopped and started again.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use store::testing::{PostgresServer, RedisServer};

use crate::cluster::{
    call, client, dpop_call, node_config, node_dir, revoke, serve, until_refused, DpopKey,
};
use crate::process::{get_token, http, json as parse, wait_for, Upstream, WAIT};

/// `/readyz` of a node: its status and body.
fn readyz(addr: &str) -> (u16, Value) {
    let (status, body) = http(addr, "/readyz", None, None);
    (status, parse(&body))
}

/// `/readyz` once it says 503 (it answers from checks at most a second old); its body.
fn not_ready(addr: &str) -> Value {
    wait_for("readiness to fail", || match readyz(addr) {
        (503, body) => Ok(body),
        (_, body) => Err(body.to_string()),
    })
}

/// Redis stops: the gateway keeps validating, a revocation still reaches the other node (by
/// polling the store), the DPoP replay check refuses (the default `deny`) and readiness says
/// why; Redis returns: all of it recovers, without a restart.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_validation_goes_on_revocations_poll_dpop_is_refused_then_all_recovers() {
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut redis = RedisServer::start();
            let upstream = Upstream::start(false);
            let config = node_config(&upstream.addr, Some(&redis.url()), "");
            let dirs = [node_dir(&config), node_dir(&config)];
            let (_, auth) = client(dirs[0].path(), &url);
            let [a, b] = [0, 1].map(|i| serve(dirs[i].path(), &url));
            let token = get_token(&a.addr, &auth);
            let key = DpopKey::new();
            let bound = key.token(&a, &auth);
            assert_eq!(call(&b, &token).status, 200);
            assert_eq!(readyz(&b.addr).0, 200);

            redis.stop();
            assert_eq!(
                call(&b, &token).status,
                200,
                "validation goes on without Redis"
            );
            let other = get_token(&a.addr, &auth);
            assert_eq!(call(&b, &other).status, 200);
            revoke(&a, &auth, &other);
            let polled = until_refused(&b, &other, Instant::now());
            eprintln!("Redis down: a revocation at A refused at B after {polled:?} (polling)");
            let r = dpop_call(&b, &bound, &key.api_proof(&bound));
            assert_eq!(r.status, 503, "{}", r.body);
            assert_eq!(r.json()["error"], "temporarily_unavailable", "{}", r.body);
            // Readiness answers from checks at most a second old.
            let body = not_ready(&b.addr);
            assert!(body["reason"].as_str().unwrap().contains("redis"), "{body}");
            assert_eq!(body["checks"]["store"], "ok", "{body}");

            redis.resume();
            wait_for("the DPoP check to use Redis again", || {
                let r = dpop_call(&b, &bound, &key.api_proof(&bound));
                match r.status {
                    200 => Ok(()),
                    503 => Err(r.body),
                    other => panic!("{other}: {}", r.body),
                }
            });
            wait_for("readiness to come back", || match readyz(&b.addr) {
                (200, _) => Ok(()),
                (_, body) => Err(body.to_string()),
            });
            // The replay check is shared again: a proof used at B is refused at A (once A
            // uses Redis again too).
            wait_for("node A's readiness to come back", || {
                match readyz(&a.addr) {
                    (200, _) => Ok(()),
                    (_, body) => Err(body.to_string()),
                }
            });
            let proof = key.api_proof(&bound);
            assert_eq!(dpop_call(&b, &bound, &proof).status, 200);
            assert_eq!(dpop_call(&a, &bound, &proof).status, 401);
        })
        .await
        .unwrap();
    })
    .await;
}

/// PostgreSQL stops: the token endpoint answers 503 and hands out nothing; the gateway
/// accepts the node's own tokens until `max_revocation_staleness` after the last read of
/// revocations, then refuses them with 503; PostgreSQL returns: both work again, without a
/// restart.
#[cfg(unix)]
#[test]
fn postgres_down_token_endpoint_503_gateway_until_staleness_then_503_then_recovers() {
    let mut postgres = PostgresServer::start();
    let url = postgres.url();
    let upstream = Upstream::start(false);
    let config = node_config(&upstream.addr, None, "max_revocation_staleness = \"5s\"");
    let dir = node_dir(&config);
    let (_, auth) = client(dir.path(), &url);
    let node = serve(dir.path(), &url);
    let token = get_token(&node.addr, &auth);
    assert_eq!(call(&node, &token).status, 200);

    postgres.stop();
    let stopped = Instant::now();
    assert_eq!(
        call(&node, &token).status,
        200,
        "within the staleness bound the token is still accepted"
    );
    let form = "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example";
    let (status, body) = http(&node.addr, "/oauth2/token", Some(&auth), Some(form));
    assert_eq!(status, 503, "{body}");
    assert_eq!(parse(&body)["error"], "temporarily_unavailable", "{body}");
    assert!(parse(&body).get("access_token").is_none(), "{body}");
    let refused = wait_for("the gateway to refuse our tokens past the bound", || {
        let r = call(&node, &token);
        match r.status {
            503 => Ok(r),
            200 => Err("still accepted".into()),
            other => panic!("{other}: {}", r.body),
        }
    });
    eprintln!(
        "PostgreSQL down: own tokens refused after {:?} (bound 5 s)",
        stopped.elapsed()
    );
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    let body = not_ready(&node.addr);
    assert!(body["reason"].as_str().unwrap().contains("store"), "{body}");

    postgres.resume();
    wait_for("the gateway to accept the token again", || {
        match call(&node, &token).status {
            200 => Ok(()),
            other => Err(other.to_string()),
        }
    });
    wait_for("the token endpoint to issue again", || {
        match http(&node.addr, "/oauth2/token", Some(&auth), Some(form)) {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status}: {body}")),
        }
    });
    wait_for("readiness to come back", || match readyz(&node.addr) {
        (200, _) => Ok(()),
        (_, body) => Err(body.to_string()),
    });
}

/// A token request on its own connection; the access token, or `None` when the node is
/// gone (connection refused or cut) or refused.
fn try_token(addr: &str, auth: &str) -> Option<String> {
    let form = "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example";
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let json: Value = serde_json::from_str(body).ok()?;
    json["access_token"].as_str().map(String::from)
}

/// The `jti` of a signed token.
pub(crate) fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Clients request tokens from three nodes at once; one node is killed with SIGKILL in the
/// middle. Every token any client received is recorded and audited, the other nodes keep
/// serving, and the node started again rejoins.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_loses_no_token_it_gave_out_and_rejoins() {
    store::testing::run_postgres(|ctx| async move {
        let url = ctx.url.clone();
        let received = tokio::task::spawn_blocking({
            let url = url.clone();
            move || killed_node_run(&url)
        })
        .await
        .unwrap();
        let store = ctx.open().await;
        let mut audited = HashSet::new();
        let mut since = 0;
        loop {
            let page = store.audit_events(since, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            since = last.id;
            audited.extend(
                page.iter()
                    .filter(|r| r.event.event == "token.issued")
                    .filter_map(|r| r.event.jti.clone()),
            );
        }
        for token in &received {
            let jti = jti(token);
            assert!(
                store.token(&jti).await.unwrap().is_some(),
                "{jti} not recorded"
            );
            assert!(audited.contains(&jti), "{jti} not audited");
        }
        eprintln!(
            "{} tokens received, each recorded and audited",
            received.len()
        );
        // Three nodes wrote one sequence; a node was killed in the middle of it: no gap,
        // and the log verifies, checkpoints of every node included.
        let log = store.audit_log(0, 100_000).await.unwrap();
        assert!(log.iter().enumerate().all(|(i, r)| r.seq == Some(i as i64)));
        let checkpoints = store.checkpoints(0, 1000).await.unwrap();
        assert!(!checkpoints.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let out = crate::process::run(
            dir.path(),
            None,
            &["audit", "verify", "--database-url", &url],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with(&format!(
                "ok: {} events and {} checkpoints",
                log.len(),
                checkpoints.len()
            )),
            "{stdout}"
        );
        eprintln!("{stdout}");
    })
    .await;
}

/// Runs the three nodes and their clients, kills one, starts it again; every token the
/// clients received.
fn killed_node_run(url: &str) -> Vec<String> {
    let upstream = Upstream::start(false);
    let config = node_config(&upstream.addr, Some(&store::testing::redis_url()), "");
    let dirs = [node_dir(&config), node_dir(&config), node_dir(&config)];
    let (_, auth) = client(dirs[0].path(), url);
    let mut nodes = [0, 1, 2].map(|i| serve(dirs[i].path(), url));
    let received = Arc::new(Mutex::new(Vec::new()));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let (addr, auth) = (nodes[i].addr.clone(), auth.clone());
            let (received, counts, stop) = (received.clone(), counts.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(token) = try_token(&addr, &auth) {
                        received.lock().unwrap().push(token);
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let issued = |i: usize| counts[i].load(Ordering::Relaxed);
    wait_for("every node to issue", || {
        ((0..3).all(|i| issued(i) >= 20))
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    });
    nodes[1].signal("KILL");
    nodes[1].exit_status();
    let (a, c) = (issued(0), issued(2));
    wait_for("the other nodes to keep serving", || {
        (issued(0) >= a + 20 && issued(2) >= c + 20)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    nodes[1] = serve(dirs[1].path(), url);
    let token = get_token(&nodes[1].addr, &auth);
    assert_eq!(
        call(&nodes[0], &token).status,
        200,
        "a token of the node restarted"
    );
    let took = Instant::now();
    revoke(&nodes[1], &auth, &token);
    let refused = until_refused(&nodes[2], &token, took);
    assert!(refused < Duration::from_secs(1), "{refused:?}");
    // The nodes sign checkpoints of the one log they wrote (every second here).
    let admin = format!("Bearer {}", crate::cluster::ADMIN);
    wait_for("a checkpoint", || {
        let r = crate::process::request(
            &nodes[2].addr,
            "GET",
            "/admin/audit/checkpoint",
            &[("Authorization", &admin)],
            None,
        );
        (r.status == 200).then_some(()).ok_or(r.body)
    });
    let mut all = received.lock().unwrap().clone();
    all.push(token);
    all
}
