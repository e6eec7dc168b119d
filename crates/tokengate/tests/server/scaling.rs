//! What each request and each issued token costs in PostgreSQL statements and Redis
//! commands, counted on one node with its own PostgreSQL (every statement logged) and its own
//! Redis (`INFO commandstats`), so that nothing else counts: the figures of docs/scaling.md.
//! Counts, never times. Run with `--nocapture` to see the table.

use std::collections::BTreeMap;
use std::time::Duration;

use store::redis::{cmd, Redis, RedisConfig};
use store::testing::{PostgresServer, RedisServer};

use crate::cluster::{call, client, dpop_call, node_dir, revoke, serve, DpopKey, API_HOST};
use crate::process::{get_token, request, Upstream};

/// Statements the server logged (`log_statement = all`), by their first word.
fn statements(log: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let sql = match (
            line.split_once("LOG:  statement: "),
            line.split_once("LOG:  execute "),
        ) {
            (Some((_, sql)), _) => sql,
            // `execute <name>: SQL` (the extended protocol sqlx uses).
            (None, Some((_, rest))) => rest.split_once(": ").map_or(rest, |(_, sql)| sql),
            (None, None) => continue,
        };
        let kind = sql.split_whitespace().next().unwrap_or("?").to_uppercase();
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Redis commands served so far, by name (`INFO commandstats`).
async fn commands(redis: &Redis) -> BTreeMap<String, u64> {
    let (info, _) = redis.query::<String>(cmd("INFO").arg("commandstats")).await;
    info.unwrap()
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_uppercase(), calls))
        })
        .collect()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Per operation, as `KIND n.nn` pairs.
fn per(counts: &BTreeMap<String, u64>, n: u64) -> String {
    let shown: Vec<String> = counts
        .iter()
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n as f64))
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

/// One measured workload: the statements and commands it caused, per operation.
struct Measured {
    what: &'static str,
    n: u64,
    sql: BTreeMap<String, u64>,
    redis: BTreeMap<String, u64>,
}

/// Runs `work` (`n` operations) and counts what it caused, less the node's background work
/// over the same time (its per-second polling, counted beforehand).
struct Meter<'a> {
    postgres: &'a PostgresServer,
    redis: &'a Redis,
    runtime: &'a tokio::runtime::Handle,
}

impl Meter<'_> {
    fn measure(&self, what: &'static str, n: u64, work: impl FnOnce()) -> Measured {
        let sql_before = statements(&self.postgres.log());
        let redis_before = self.runtime.block_on(commands(self.redis));
        work();
        // The INFO call itself is one command; the log is written as statements run.
        let mut redis = delta(&self.runtime.block_on(commands(self.redis)), &redis_before);
        if let Some(info) = redis.get_mut("INFO") {
            *info -= 1;
        }
        redis.retain(|_, v| *v > 0);
        Measured {
            what,
            n,
            sql: delta(&statements(&self.postgres.log()), &sql_before),
            redis,
        }
    }
}

#[cfg(unix)]
#[test]
fn postgres_and_redis_operations_per_request_and_per_token() {
    let postgres = PostgresServer::start_with(&["log_statement=all"]);
    let redis_server = RedisServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime.block_on(async {
        Redis::new(&RedisConfig {
            url: redis_server.url(),
            password: None,
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    });
    let upstream = Upstream::start(false);
    let config = format!(
        "[server]\n\n[redis]\nurl = \"{}\"\ntimeout = \"500ms\"\n\n\
         [token_service]\nissuer = \"https://as.example\"\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\n\
         [[routes]]\nname = \"limited\"\npath_prefix = \"/limited/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\
         [[routes.rate_limits]]\nname = \"per-client\"\nkey = \"client_id\"\nlimit = 1000000\nper = \"1m\"\nscope = \"cluster\"\n\n\
         [[routes]]\nname = \"cached\"\npath_prefix = \"/cached/\"\nmethods = [\"GET\"]\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\
         [routes.cache]\nstorage = \"redis\"\n",
        redis_server.url(),
        up = upstream.addr
    );
    let dir = node_dir(&config);
    let url = postgres.url();
    let (_, auth) = client(dir.path(), &url);
    let node = serve(dir.path(), &url);
    let meter = Meter {
        postgres: &postgres,
        redis: &redis,
        runtime: runtime.handle(),
    };
    let token = get_token(&node.addr, &auth);
    assert_eq!(call(&node, &token).status, 200);

    let idle = meter.measure("a node idle, per second", 5, || {
        std::thread::sleep(Duration::from_secs(5));
    });
    let tokens = std::cell::RefCell::new(Vec::new());
    let issued = meter.measure("a token issued (client_credentials)", 200, || {
        tokens.replace((0..200).map(|_| get_token(&node.addr, &auth)).collect());
    });
    let first_use = meter.measure("a gateway request, token seen first", 200, || {
        for t in tokens.borrow().iter() {
            assert_eq!(call(&node, t).status, 200);
        }
    });
    let bearer = meter.measure("a gateway request, bearer token", 1000, || {
        for _ in 0..1000 {
            assert_eq!(call(&node, &token).status, 200);
        }
    });
    let key = DpopKey::new();
    let bound = key.token(&node, &auth);
    let dpop = meter.measure("a gateway request, DPoP", 200, || {
        for _ in 0..200 {
            assert_eq!(dpop_call(&node, &bound, &key.api_proof(&bound)).status, 200);
        }
    });
    let bearer_header = format!("Bearer {token}");
    let at = |path: &str| {
        request(
            &node.addr,
            "GET",
            path,
            &[("Authorization", &bearer_header), ("Host", API_HOST)],
            None,
        )
    };
    let limited = meter.measure("a gateway request, cluster rate limit", 500, || {
        for _ in 0..500 {
            assert_eq!(at("/limited/x").status, 200);
        }
    });
    assert_eq!(at("/cached/x").status, 200);
    let cached = meter.measure("a gateway request, Redis cache hit", 500, || {
        for _ in 0..500 {
            let r = at("/cached/x");
            assert_eq!(r.status, 200);
            assert!(
                r.header("cache-status").is_some_and(|s| s.contains("hit")),
                "{:?}",
                r.header("cache-status")
            );
        }
    });
    let revoked = meter.measure("a revocation (RFC 7009)", 50, || {
        for t in tokens.borrow().iter().take(50) {
            revoke(&node, &auth, t);
        }
    });

    println!("\n| operation | PostgreSQL statements per operation | Redis commands per operation |\n|---|---|---|");
    for m in [
        &idle, &issued, &first_use, &bearer, &dpop, &limited, &cached, &revoked,
    ] {
        println!(
            "| {} | {} | {} |",
            m.what,
            per(&m.sql, m.n),
            per(&m.redis, m.n)
        );
    }
    // What the design promises, counted: the gateway's request path never asks the
    // database, and a DPoP request costs one Redis command.
    assert!(
        bearer.sql.values().sum::<u64>() < 1000 / 10,
        "{:?}",
        bearer.sql
    );
    assert_eq!(dpop.redis.get("SET"), Some(&200), "{:?}", dpop.redis);
    assert!(
        issued.sql.get("INSERT").is_some_and(|n| *n >= 200),
        "{:?}",
        issued.sql
    );
    assert_eq!(
        revoked.redis.get("PUBLISH"),
        Some(&50),
        "{:?}",
        revoked.redis
    );
    drop(node);
}
