use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

use super::*;

fn key(route: &str, path: &str, n: u8) -> EntryKey {
    EntryKey {
        digest: [n; 32],
        route: Arc::from(route),
        path: Arc::from(path),
    }
}

fn response(body: &'static [u8]) -> Stored {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.append("x-many", HeaderValue::from_static("1"));
    headers.append("x-many", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    Stored::Response(Arc::new(CachedResponse {
        status: StatusCode::NOT_FOUND,
        headers,
        body: Bytes::from_static(body),
        received: 1_700_000_000,
        initial_age: 3,
        lifetime: 60,
        revalidate: true,
    }))
}

#[test]
fn entries_survive_their_encoding_and_nothing_else_decodes() {
    let Some(Stored::Response(back)) = decode(&encode(&response(b"body")).unwrap()) else {
        panic!("not a response");
    };
    let Stored::Response(original) = response(b"body") else {
        unreachable!()
    };
    assert_eq!(back.status, original.status);
    assert_eq!(back.headers, original.headers);
    assert_eq!(back.body, original.body);
    assert_eq!(
        (
            back.received,
            back.initial_age,
            back.lifetime,
            back.revalidate
        ),
        (1_700_000_000, 3, 60, true)
    );
    let marker = VaryMarker {
        names: vec![HeaderName::from_static("accept")],
        generation: u64::MAX - 1,
    };
    let Some(Stored::Vary(back)) =
        decode(&encode(&Stored::Vary(Arc::new(marker.clone()))).unwrap())
    else {
        panic!("not a field list");
    };
    assert_eq!(*back, marker);
    let good = encode(&response(b"x")).unwrap();
    for bad in [
        &b""[..],
        b"TGC1",
        b"TGC2\0\0\0\x02{}",
        &good[..10],
        b"TGC1\0\0\0\x02{}",
    ] {
        assert!(decode(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn redis_keys_start_with_route_and_path_so_prefixes_select() {
    let k = key("api", "/a/b", 1).redis_key();
    assert!(
        k.starts_with(&format!("{REDIS_PREFIX}617069:2f612f62:")),
        "{k}"
    );
    // Hex keeps a path prefix a key prefix.
    assert!(k.starts_with(&format!("{REDIS_PREFIX}617069:{}", hex(b"/a/"))));
}

#[test]
fn memory_purges_by_route_and_prefix_and_accounts_bytes() {
    let store = MemoryStore::new(1 << 20);
    let account = Arc::new(RouteAccount::default());
    let other = Arc::new(RouteAccount::default());
    let keep = Duration::from_secs(60);
    store.put(&key("a", "/x/1", 1), response(b"1"), keep, &account);
    store.put(&key("a", "/x/2", 2), response(b"2"), keep, &account);
    store.put(&key("a", "/y/1", 3), response(b"3"), keep, &account);
    store.put(&key("b", "/x/1", 4), response(b"4"), keep, &other);
    let one = i64::from(response(b"1").weight());
    store.settle();
    assert_eq!(account.bytes(), 3 * one);
    assert_eq!(store.purge("a", Some("/x/")), 2);
    store.settle();
    assert_eq!(account.bytes(), one);
    assert!(store.get(&key("a", "/y/1", 3)).is_some());
    assert!(store.get(&key("b", "/x/1", 4)).is_some());
    assert_eq!(store.purge("a", None) + store.purge("b", None), 2);
    store.settle();
    assert_eq!((account.bytes(), other.bytes()), (0, 0));
}

#[test]
fn memory_evicts_the_least_recently_used_past_its_bound() {
    let weight = u64::from(response(b"x").weight());
    let store = MemoryStore::new(weight * 3);
    let account = Arc::new(RouteAccount::default());
    for n in 0..3 {
        store.put(
            &key("a", "/", n),
            response(b"x"),
            Duration::from_secs(60),
            &account,
        );
    }
    store.settle();
    // Entry 0 is used, so 1 is the least recently used when 3 comes.
    assert!(store.get(&key("a", "/", 0)).is_some());
    store.put(
        &key("a", "/", 3),
        response(b"x"),
        Duration::from_secs(60),
        &account,
    );
    store.settle();
    assert!(store.get(&key("a", "/", 1)).is_none());
    assert!(store.get(&key("a", "/", 0)).is_some() && store.get(&key("a", "/", 3)).is_some());
    assert_eq!(account.evictions.get(), 1);
    assert_eq!(account.bytes(), i64::try_from(weight * 3).unwrap());
}
