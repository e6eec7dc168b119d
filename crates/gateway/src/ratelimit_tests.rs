//! GCRA's arithmetic, local cells under concurrency, what a request is counted by, and the
//! response fields. The Redis script's answers are compared with [`gcra`]'s against a real
//! Redis in the binary's integration tests (`tests/server/ratelimit.rs`).

use std::sync::Mutex;

use super::*;

fn rate(limit: u64, per_secs: u64, burst: u64) -> Rate {
    Rate {
        limit,
        per: Duration::from_secs(per_secs),
        burst,
    }
}

/// Runs `n` requests at `now` against one key's TAT; how many were allowed, and the TAT.
fn spend(tat: &mut u64, now: u64, rate: &Rate, n: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..n {
        let (verdict, next) = gcra(*tat, now, rate);
        if let Some(next) = next {
            *tat = next;
            allowed += 1;
        }
        assert_eq!(verdict.allowed, next.is_some());
    }
    allowed
}

#[test]
fn an_idle_key_spends_its_whole_limit_at_once_then_one_per_interval() {
    // 50 per minute: one cell every 1.2 s.
    let r = rate(50, 60, 0);
    assert_eq!(r.interval_micros(), 1_200_000);
    let mut tat = 0;
    let start = 1_000_000_000;
    assert_eq!(
        spend(&mut tat, start, &r, 80),
        50,
        "exactly the limit at once"
    );
    let (refused, _) = gcra(tat, start, &r);
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after, Duration::from_micros(1_200_000));
    assert_eq!(
        refused.reset,
        Duration::from_secs(60),
        "whole again a period later"
    );
    // Just before the interval: still refused; at it: one more, and only one.
    assert_eq!(spend(&mut tat, start + 1_199_999, &r, 1), 0);
    assert_eq!(spend(&mut tat, start + 1_200_000, &r, 5), 1);
    // After 12 s: ten more.
    assert_eq!(spend(&mut tat, start + 13_200_000, &r, 20), 10);
}

#[test]
fn burst_adds_to_what_an_idle_key_may_spend_but_not_to_the_rate() {
    let r = rate(10, 10, 5);
    let mut tat = 0;
    assert_eq!(spend(&mut tat, 1, &r, 100), 15);
    // One a second after that, like the limit alone.
    assert_eq!(spend(&mut tat, 1 + 3_000_000, &r, 100), 3);
}

#[test]
fn remaining_counts_down_to_zero_and_reset_grows() {
    let r = rate(3, 3, 0);
    let mut tat = 0;
    let now = 10;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (v, next) = gcra(tat, now, &r);
        tat = next.unwrap();
        seen.push((v.remaining, v.reset.as_secs()));
    }
    assert_eq!(seen, vec![(2, 1), (1, 2), (0, 3)]);
}

#[test]
fn a_key_idle_for_a_refill_is_whole_again() {
    let r = rate(5, 5, 0);
    let mut tat = 0;
    assert_eq!(spend(&mut tat, 1, &r, 5), 5);
    assert_eq!(spend(&mut tat, 1 + 5_000_000, &r, 10), 5);
}

#[test]
fn local_cells_give_exactly_the_capacity_to_concurrent_requests() {
    let r = rate(100, 3600, 0);
    let cells = Arc::new(LocalCells::new(&r));
    let allowed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cells, allowed) = (Arc::clone(&cells), Arc::clone(&allowed));
            std::thread::spawn(move || {
                for _ in 0..50 {
                    if cells.check(b"k", &r, true).allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
    // Another key has its own budget; asking without spending spends nothing.
    assert!(cells.check(b"other", &r, false).allowed);
    assert_eq!(cells.check(b"other", &r, true).remaining, 99);
}

fn verified(claims: serde_json::Value) -> Verified {
    Verified {
        issuer: "idp".into(),
        own: false,
        claims: jose::jwt::Claims::parse(claims.to_string()).unwrap(),
        expires_at: 2_000_000_000,
        not_before: None,
        issued_at: 1,
        scopes: Vec::new(),
        jkt: None,
        internal: Mutex::new(None),
    }
}

#[test]
fn keys_are_read_from_the_token_headers_or_address_and_never_collide_across_kinds() {
    let token = verified(serde_json::json!({
        "client_id": "c1", "sub": "10.0.0.1", "plan": "free", "tier": 3, "groups": ["a"]
    }));
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("10.0.0.1"));
    let subject = Subject {
        verified: Some(&token),
        headers: &headers,
        client: "10.0.0.1".parse().ok(),
    };
    let key = |k: &str| subject.key(&LimitKey::parse(k).unwrap());
    assert_eq!(key("client_id"), b"tidp\0c1");
    assert_eq!(key("sub"), b"tidp\x0010.0.0.1");
    assert_eq!(key("ip"), b"a10.0.0.1");
    assert_eq!(key("route"), b"r");
    let hashed = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"10.0.0.1");
    assert_eq!(
        key("header:x-api-key"),
        [b"h".as_slice(), hashed.as_ref()].concat()
    );
    assert_eq!(key("claim:plan"), b"tidp\0free");
    assert_eq!(key("claim:tier"), b"tidp\x003");
    // The same text from the token, a header and the address: three different keys.
    let distinct: std::collections::HashSet<_> =
        [key("sub"), key("ip"), key("header:x-api-key")].into();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn a_missing_key_falls_back_to_the_client_address_never_to_a_shared_bucket() {
    let token = verified(serde_json::json!({"sub": "u1", "groups": ["a"]}));
    let headers = HeaderMap::new();
    let subject = |client: &str| Subject {
        verified: Some(&token),
        headers: &headers,
        client: client.parse().ok(),
    };
    for missing in [
        "client_id",
        "header:x-api-key",
        "claim:plan",
        "claim:groups",
    ] {
        let key = LimitKey::parse(missing).unwrap();
        assert_eq!(subject("192.0.2.1").key(&key), b"a192.0.2.1", "{missing}");
        assert_ne!(
            subject("192.0.2.1").key(&key),
            subject("192.0.2.2").key(&key),
            "{missing}"
        );
    }
    let public = Subject {
        verified: None,
        headers: &headers,
        client: "192.0.2.9".parse().ok(),
    };
    assert_eq!(public.key(&LimitKey::Sub), b"a192.0.2.9");
}

#[test]
fn long_key_values_are_kept_as_their_hash() {
    let mut headers = HeaderMap::new();
    let long = "k".repeat(5000);
    headers.insert("x-api-key", HeaderValue::from_str(&long).unwrap());
    let subject = Subject {
        verified: None,
        headers: &headers,
        client: None,
    };
    let key = subject.key(&LimitKey::Claim("plan".into()));
    assert_eq!(key, b"a?", "no token: the address");
    let token = verified(serde_json::json!({"plan": long}));
    let subject = Subject {
        verified: Some(&token),
        headers: &headers,
        client: None,
    };
    let key = subject.key(&LimitKey::Claim("plan".into()));
    assert_eq!(key.len(), 33);
    assert_eq!(key[0], b'#');
}

#[test]
fn key_spellings_parse_and_print_back() {
    for text in [
        "client_id",
        "sub",
        "ip",
        "route",
        "header:x-api-key",
        "claim:plan",
    ] {
        assert_eq!(LimitKey::parse(text).unwrap().to_string(), text);
    }
    for bad in ["", "client", "header:", "header:bad name", "claim:", "IP"] {
        assert!(LimitKey::parse(bad).is_none(), "{bad}");
    }
    assert!(LimitKey::Sub.needs_token() && !LimitKey::Ip.needs_token());
}

fn limit(name: &str, when_claim: Vec<(String, Value)>) -> RateLimit {
    let rate = rate(2, 60, 0);
    RateLimit {
        name: name.into(),
        key: LimitKey::ClientId,
        rate,
        when_claim,
        on_unavailable: OnUnavailable::Allow,
        cells: Cells::Local(Arc::new(LocalCells::new(&rate))),
        counters: LimitCounters::default(),
    }
}

#[test]
fn when_claim_matches_equal_values_and_array_members() {
    let free = limit("free", vec![("plan".into(), Value::from("free"))]);
    let admins = limit("admins", vec![("groups".into(), Value::from("admin"))]);
    let anyone = limit("all", Vec::new());
    let on_free = verified(serde_json::json!({"plan": "free", "groups": ["admin", "x"]}));
    let on_paid = verified(serde_json::json!({"plan": "paid", "groups": "admin"}));
    assert!(free.applies(Some(&on_free)) && !free.applies(Some(&on_paid)));
    assert!(admins.applies(Some(&on_free)) && admins.applies(Some(&on_paid)));
    assert!(!free.applies(None), "a condition on a claim needs a token");
    assert!(anyone.applies(None));
}

#[tokio::test]
async fn a_limit_counts_what_it_decided() {
    let l = limit("per-client", Vec::new());
    let headers = HeaderMap::new();
    let subject = Subject {
        verified: None,
        headers: &headers,
        client: None,
    };
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        match l.check(&subject).await.unwrap() {
            Outcome::Checked(v) => outcomes.push(v.allowed),
            Outcome::Unavailable => panic!("a local limit is always available"),
        }
    }
    assert_eq!(outcomes, vec![true, true, false]);
    assert_eq!(l.counters.values(), (2, 1, 0));
}

#[test]
fn the_fields_name_the_limit_nearest_to_running_out_and_never_the_key() {
    let a = limit("per-client", Vec::new());
    let b = limit("per-\"route\"", Vec::new());
    let v = |remaining, allowed| Verdict {
        allowed,
        remaining,
        reset: Duration::from_millis(1500),
        retry_after: Duration::ZERO,
    };
    let nearest = Nearest::closer(None, &a, v(5, true));
    let nearest = Nearest::closer(Some(nearest), &b, v(7, true));
    assert_eq!(nearest.name(), "per-client", "fewer left wins");
    let nearest = Nearest::closer(Some(nearest), &b, v(0, false));
    assert_eq!(nearest.name(), "per-\"route\"", "a refusal wins");
    let mut headers = HeaderMap::new();
    nearest.set_fields(&mut headers);
    assert_eq!(headers[&RATELIMIT_POLICY], r#""per-\"route\"";q=2;w=60"#);
    assert_eq!(headers[&RATELIMIT], r#""per-\"route\"";r=0;t=2"#);
}

#[test]
fn script_answers_of_another_shape_are_no_answer() {
    assert_eq!(
        verdict_of(&[1, 4, 1_500_000, 0]),
        Some(Verdict {
            allowed: true,
            remaining: 4,
            reset: Duration::from_micros(1_500_000),
            retry_after: Duration::ZERO,
        })
    );
    assert_eq!(verdict_of(&[1, 2, 3]), None);
    assert_eq!(verdict_of(&[]), None);
    assert_eq!(verdict_of(&[0, -1, -1, 5]).map(|v| v.remaining), Some(0));
}

#[test]
fn whole_seconds_round_up() {
    assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
    assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
    assert_eq!(ceil_seconds(Duration::ZERO), 0);
}

#[test]
fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
    let key = |s: &str| address_key(s.parse().ok());
    assert_eq!(key("2001:db8:1:2:aaaa::1"), b"a2001:db8:1:2::/64");
    assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2:aaaa::1"));
    assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    assert_eq!(key("::ffff:192.0.2.1"), b"a192.0.2.1");
    assert_eq!(key("192.0.2.1"), b"a192.0.2.1");
    assert_eq!(address_key(None), b"a?");
}

#[test]
fn header_values_are_kept_as_their_hash_never_as_they_are() {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("sk_live_secret"));
    let subject = Subject {
        verified: None,
        headers: &headers,
        client: None,
    };
    let key = subject.key(&LimitKey::Header(HeaderName::from_static("x-api-key")));
    assert_eq!(key.len(), 33);
    assert!(!key.windows(6).any(|w| w == b"secret"));
}

#[test]
fn asking_without_spending_makes_no_cell() {
    let r = rate(3, 3600, 0);
    let cells = LocalCells::new(&r);
    assert!(cells.check(b"asked", &r, false).allowed);
    assert!(cells.is_empty());
    assert!(cells.check(b"spent", &r, true).allowed);
    assert_eq!(cells.len(), 1);
}
