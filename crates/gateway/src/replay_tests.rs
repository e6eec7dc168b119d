#![allow(clippy::unwrap_used)]

use std::time::Duration;

use store::redis::{Redis, RedisConfig};
use store::testing::{random_hex, redis_url, RedisServer};

use super::*;

fn redis(url: String) -> Redis {
    Redis::new(&RedisConfig {
        url,
        password: None,
        timeout: Duration::from_millis(200),
    })
    .unwrap()
}

fn node(redis: &Redis, on_unavailable: OnUnavailable) -> ReplayCache {
    ReplayCache::shared(redis.clone(), on_unavailable, RedisCounters::default())
}

#[tokio::test]
async fn in_memory_a_proof_is_used_once_until_it_expires() {
    let cache = ReplayCache::local();
    assert_eq!(cache.first_use("k:1", 110, 0, 100).await, FirstUse::Fresh);
    assert_eq!(
        cache.first_use("k:1", 110, 0, 105).await,
        FirstUse::Replayed
    );
    assert_eq!(cache.first_use("k:2", 110, 0, 105).await, FirstUse::Fresh);
    // Past its expiry the proof's own iat check refuses it; the entry may go.
    assert_eq!(cache.first_use("k:1", 130, 0, 120).await, FirstUse::Fresh);
}

#[tokio::test]
async fn a_proof_used_at_one_node_is_refused_at_another_through_redis() {
    let shared = redis(redis_url());
    let (a, b) = (
        node(&shared, OnUnavailable::Deny),
        node(&redis(redis_url()), OnUnavailable::Deny),
    );
    let key = format!("jkt:{}", random_hex(8));
    let now = store::unix_now();
    assert_eq!(a.first_use(&key, now + 60, 0, now).await, FirstUse::Fresh);
    assert_eq!(
        b.first_use(&key, now + 60, 0, now).await,
        FirstUse::Replayed
    );
    assert_eq!(
        a.first_use(&key, now + 60, 0, now).await,
        FirstUse::Replayed
    );
    let (ttl, _) = shared
        .query::<i64>(cmd("TTL").arg(format!("{REDIS_PREFIX}{key}")))
        .await;
    let ttl = ttl.unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "kept for the proof's lifetime: {ttl}"
    );
}

#[tokio::test]
async fn without_redis_deny_refuses_and_local_remembers_here_and_both_recover() {
    let mut server = RedisServer::start();
    let redis = redis(server.url());
    let (deny, local) = (
        node(&redis, OnUnavailable::Deny),
        node(&redis, OnUnavailable::Local),
    );
    let now = store::unix_now();
    assert_eq!(
        deny.first_use("k:up", now + 60, 0, now).await,
        FirstUse::Fresh
    );
    server.stop();
    assert_eq!(
        deny.first_use("k:a", now + 60, 0, now).await,
        FirstUse::Unavailable
    );
    assert_eq!(
        local.first_use("k:b", now + 60, 0, now).await,
        FirstUse::Fresh
    );
    assert_eq!(
        local.first_use("k:b", now + 60, 0, now).await,
        FirstUse::Replayed,
        "the local fallback still refuses a replay at this node"
    );
    server.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match deny.first_use("k:c", now + 60, 0, now).await {
            FirstUse::Fresh => break,
            FirstUse::Unavailable if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after Redis came back: {other:?}"),
        }
    }
}

/// Two nodes on one PostgreSQL without Redis share the store's single-use table.
#[tokio::test]
async fn without_redis_nodes_on_one_store_share_the_proofs_seen() {
    store::testing::run_postgres(|ctx| async move {
        let (a, b) = (
            ReplayCache::in_store(ctx.open().await),
            ReplayCache::in_store(ctx.open().await),
        );
        let now = store::unix_now();
        assert_eq!(
            a.first_use("jkt:1", now + 60, 0, now).await,
            FirstUse::Fresh
        );
        assert_eq!(
            b.first_use("jkt:1", now + 60, 0, now).await,
            FirstUse::Replayed
        );
        assert_eq!(
            b.first_use("jkt:2", now + 60, 0, now).await,
            FirstUse::Fresh
        );
        let store = ctx.open().await;
        store.close().await;
        assert_eq!(
            ReplayCache::in_store(store)
                .first_use("jkt:3", now + 60, 0, now)
                .await,
            FirstUse::Unavailable,
            "a store that does not answer refuses"
        );
    })
    .await;
}

/// With the local fallback, a proof used while Redis answered is refused at this node once
/// Redis stops answering.
#[tokio::test]
async fn the_local_fallback_remembers_what_redis_saw_here() {
    let mut server = RedisServer::start();
    let local = node(&redis(server.url()), OnUnavailable::Local);
    let now = store::unix_now();
    assert_eq!(
        local.first_use("k:seen", now + 60, 0, now).await,
        FirstUse::Fresh
    );
    server.stop();
    assert_eq!(
        local.first_use("k:seen", now + 60, 0, now).await,
        FirstUse::Replayed
    );
}
