use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;

use super::*;
use crate::cache_storage::MemoryStore;

fn cache(max_body: u64) -> Arc<ResponseCache> {
    Arc::new(ResponseCache::new(
        CacheSettings {
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(600),
            partition: Partition::Shared,
            methods: vec![Method::GET],
            max_body,
        },
        Storage::Memory(Arc::new(MemoryStore::new(1 << 20))),
        Duration::from_secs(5),
        ResponseCacheCounters::default(),
        Arc::default(),
    ))
}

fn request(headers: &HeaderMap) -> CacheRequest<'_> {
    CacheRequest {
        method: &Method::GET,
        path: "/p",
        target: "/p",
        headers,
        has_body: false,
        upgrade: false,
        verified: None,
    }
}

/// A streamed upstream answer: `chunks`, with `cache-control: public, max-age=60`.
fn upstream(chunks: &[&'static [u8]]) -> Response<ResponseBody> {
    let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c))))
        .collect();
    let body = Frames(frames.into_iter()).boxed_unsync();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    r
}

/// A body of ready frames, none of them the last as far as `is_end_stream` knows.
struct Frames(std::vec::IntoIter<Result<http_body::Frame<Bytes>, BoxError>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::task::Poll::Ready(self.0.next())
    }
}

async fn forwarded(cache: &Arc<ResponseCache>, headers: &HeaderMap) -> Pending {
    match cache.lookup("r", &request(headers)).await {
        Lookup::Forward(p) => *p,
        Lookup::Hit(_) => panic!("a hit"),
    }
}

#[tokio::test]
async fn a_streamed_answer_is_stored_when_it_ends_within_max_body() {
    let cache = cache(1024);
    let fields = HeaderMap::new();
    let pending = forwarded(&cache, &fields).await;
    let response = pending.finish(upstream(&[b"ab", b"cd"])).await;
    assert_eq!(
        response.headers()[&CACHE_STATUS],
        "tokengate; fwd=miss; stored"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "abcd");
    let Lookup::Hit(hit) = cache.lookup("r", &request(&fields)).await else {
        panic!("not stored");
    };
    assert_eq!(hit.status(), StatusCode::OK);
    assert!(hit.headers()[&CACHE_STATUS]
        .to_str()
        .unwrap()
        .starts_with("tokengate; hit; ttl="));
    assert_eq!(hit.headers()[header::AGE], "0");
    assert_eq!(hit.into_body().collect().await.unwrap().to_bytes(), "abcd");
}

#[tokio::test]
async fn a_larger_or_abandoned_answer_is_passed_on_whole_and_not_stored() {
    let cache = cache(3);
    let fields = HeaderMap::new();
    let pending = forwarded(&cache, &fields).await;
    let response = pending.finish(upstream(&[b"ab", b"cd"])).await;
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "abcd"
    );
    let pending = forwarded(&cache, &fields).await;
    // A client that goes away mid-body: nothing stored, and the flight is over.
    drop(pending.finish(upstream(&[b"a", b"b"])).await);
    assert!(cache.flights.by_key.lock().unwrap().is_empty());
    let Lookup::Forward(next) = cache.lookup("r", &request(&fields)).await else {
        panic!("a hit");
    };
    assert!(next.flight.is_some(), "the next request leads at once");
}

#[tokio::test]
async fn followers_wait_for_the_leader_and_read_what_it_stored() {
    let cache = cache(1024);
    let fields = HeaderMap::new();
    let leader = forwarded(&cache, &fields).await;
    let follower = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            let fields = HeaderMap::new();
            match cache.lookup("r", &request(&fields)).await {
                Lookup::Hit(r) => r.headers()[&CACHE_STATUS].to_str().unwrap().to_owned(),
                Lookup::Forward(_) => "forwarded".to_owned(),
            }
        })
    };
    // Until the follower holds a receiver of the leader's flight (the map holds the other).
    let flight = leader.flight.as_ref().unwrap();
    while flight.tx.receiver_count() < 2 {
        tokio::task::yield_now().await;
    }
    let response = leader.finish(upstream(&[b"x"])).await;
    response.into_body().collect().await.unwrap();
    let status = follower.await.unwrap();
    assert!(
        status.starts_with("tokengate; hit; collapsed; ttl="),
        "{status}"
    );
}

#[tokio::test]
async fn a_flight_older_than_the_wait_is_not_joined() {
    let cache = Arc::new(ResponseCache {
        wait: Duration::from_millis(1),
        ..Arc::try_unwrap(cache(1024)).unwrap()
    });
    let fields = HeaderMap::new();
    let leader = forwarded(&cache, &fields).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let Lookup::Forward(late) = cache.lookup("r", &request(&fields)).await else {
        panic!("a hit");
    };
    assert!(
        late.flight.is_none() && !late.collapsed,
        "neither led nor waited"
    );
    drop(leader);
}

#[test]
fn partitions_need_an_identity_but_shared() {
    assert_eq!(Partition::parse("subject"), Some(Partition::Subject));
    assert_eq!(Partition::parse("client"), Some(Partition::Client));
    assert_eq!(Partition::parse("shared"), Some(Partition::Shared));
    assert_eq!(Partition::parse("Subject"), None);
    for p in [Partition::Subject, Partition::Client, Partition::Shared] {
        assert_eq!(Partition::parse(p.as_str()), Some(p));
    }
    // Without a verified token there is no subject or client to key by.
    let cache = cache(1);
    let fields = HeaderMap::new();
    assert_eq!(
        cache.key_identity(&request(&fields)),
        Some(KeyInput::new().finish())
    );
    let subject = ResponseCache {
        partition: Partition::Subject,
        ..Arc::try_unwrap(cache).unwrap()
    };
    assert_eq!(subject.key_identity(&request(&fields)), None);
}
