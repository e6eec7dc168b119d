//! The store's behaviour, run as the same test functions against both backends.
//!
//! SQLite runs always, in a temporary directory. PostgreSQL runs against the server named by
//! `TOKENGATE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`; `scripts/test`
//! sets it); the PostgreSQL tests fail, never skip, when it is not set or the server cannot be
//! reached. Each PostgreSQL test works in a schema of its own (`t_<random>`, selected through
//! the connection's `search_path`) that is dropped at the end, so tests running in parallel,
//! and runs sharing one database, never see each other's rows.
// Helpers outside `#[test]` functions assert by panicking too (as in the jose suite).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// The test functions, each written once for both backends.
mod cases {
    use store::{
        hash_secret, verify_secret, AuditEvent, AuthMethod, Backend, Client, IssuedToken, KeyState,
        KeyUse, MasterKey, NewKey, Store, StoreError, TokensOf,
    };

    use store::testing::Ctx;

    const PEPPER: &[u8] = b"test pepper";
    /// The conflict a token whose jti is recorded already meets.
    const JTI_TAKEN: &str = "a token with this jti exists";

    fn new_key(master: &MasterKey, kid: &str, created_at: i64) -> NewKey {
        let mut key = NewKey::seal(
            master,
            kid,
            KeyUse::Sig,
            "ES256",
            format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
            format!(r#"{{"kty":"EC","kid":"{kid}","d":"secret-d-{kid}"}}"#).as_bytes(),
        )
        .unwrap();
        key.created_at = created_at;
        key.activate_at = created_at + 60;
        key
    }

    fn client(id: &str) -> Client {
        Client {
            client_id: id.to_string(),
            name: format!("Client {id}"),
            secret_hash: Some(hash_secret(PEPPER, format!("secret of {id}").as_bytes())),
            auth_method: AuthMethod::ClientSecretBasic,
            auth_method_pinned: false,
            redirect_uris: vec!["https://app.example/cb".into()],
            first_party: true,
            scopes: vec!["read".into(), "write:all".into()],
            audiences: vec!["https://api.example".into(), "urn:x".into()],
            jwks: None,
            disabled: false,
            created_at: 1_700_000_000,
        }
    }

    fn token(jti: &str, client_id: &str, subject: &str, expires_at: i64) -> IssuedToken {
        IssuedToken {
            jti: jti.to_string(),
            client_id: client_id.to_string(),
            subject: subject.to_string(),
            audience: "https://api.example".into(),
            scope: "read".into(),
            issued_at: expires_at - 300,
            expires_at,
            revoked_at: None,
        }
    }

    async fn migration_count(store: &Store) -> i64 {
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        match store {
            Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    async fn execute(store: &Store, sql: &str, a: &str, b: &str) {
        match store {
            Store::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Store::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    pub async fn migrations_idempotent_on_reopen(ctx: Ctx) {
        // Two nodes starting at once on a fresh database both come up.
        let (first, second) = tokio::join!(ctx.open(), ctx.open());
        assert_eq!(
            migration_count(&first).await,
            migration_count(&second).await
        );
        first.close().await;
        second.close().await;

        let store = ctx.open().await;
        let applied = migration_count(&store).await;
        assert!(applied >= 1);
        store.create_client(&client("c1")).await.unwrap();
        store.close().await;

        // Reopening runs the migrator again: nothing is applied twice, nothing is lost.
        let store = ctx.open().await;
        assert_eq!(migration_count(&store).await, applied);
        assert!(store.client("c1").await.unwrap().is_some());

        // And again, on a migrated database.
        let (a, b) = tokio::join!(ctx.open(), ctx.open());
        assert_eq!(migration_count(&a).await, applied);
        assert_eq!(migration_count(&b).await, applied);
    }

    pub async fn keys_lifecycle(ctx: Ctx) {
        let store = ctx.open().await;
        let master = MasterKey::generate().unwrap();
        assert!(store.list_keys().await.unwrap().is_empty());
        assert!(store.key("k1").await.unwrap().is_none());

        store
            .insert_key(&new_key(&master, "k2", 200))
            .await
            .unwrap();
        store
            .insert_key(&new_key(&master, "k1", 100))
            .await
            .unwrap();
        let dup = store.insert_key(&new_key(&master, "k1", 300)).await;
        assert!(
            matches!(dup, Err(StoreError::Conflict("a key with this kid exists"))),
            "{dup:?}"
        );

        let keys = store.list_keys().await.unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["k1", "k2"], "oldest first");
        let k1 = store.key("k1").await.unwrap().unwrap();
        assert_eq!(k1, keys[0]);
        assert_eq!(k1.key_use, KeyUse::Sig);
        assert_eq!(k1.alg, "ES256");
        assert_eq!(k1.state, KeyState::Pending);
        assert_eq!(k1.public_jwk, r#"{"kty":"EC","kid":"k1"}"#);
        assert_eq!(
            (k1.created_at, k1.activate_at, k1.state_changed_at),
            (100, 160, 100)
        );
        assert_eq!((k1.retired_at, k1.remove_after), (None, None));

        // Forward moves succeed once; staying or going back is a conflict.
        const LATER: &str = "the key is already in this state or a later one";
        store
            .set_key_state("k1", KeyState::Active, 160)
            .await
            .unwrap();
        for (state, at) in [(KeyState::Active, 161), (KeyState::Pending, 162)] {
            let res = store.set_key_state("k1", state, at).await;
            assert!(
                matches!(res, Err(StoreError::Conflict(LATER))),
                "{state}: {res:?}"
            );
        }
        let k1 = store.key("k1").await.unwrap().unwrap();
        assert_eq!(
            (k1.state, k1.state_changed_at, k1.retired_at),
            (KeyState::Active, 160, None)
        );

        store
            .set_key_state("k1", KeyState::Retired, 500)
            .await
            .unwrap();
        let k1 = store.key("k1").await.unwrap().unwrap();
        assert_eq!((k1.state, k1.retired_at), (KeyState::Retired, Some(500)));

        // remove_after only moves later.
        store.set_remove_after("k1", 900).await.unwrap();
        store.set_remove_after("k1", 800).await.unwrap();
        assert_eq!(
            store.key("k1").await.unwrap().unwrap().remove_after,
            Some(900)
        );
        store.set_remove_after("k1", 950).await.unwrap();
        assert_eq!(
            store.key("k1").await.unwrap().unwrap().remove_after,
            Some(950)
        );

        store
            .set_key_state("k1", KeyState::Removed, 1000)
            .await
            .unwrap();
        let k1 = store.key("k1").await.unwrap().unwrap();
        assert_eq!(k1.state, KeyState::Removed);
        assert_eq!(
            k1.retired_at,
            Some(500),
            "retired_at keeps the retirement time"
        );
        assert_eq!(k1.state_changed_at, 1000);

        // A pending key can be dropped directly; it gets a retired_at then.
        store
            .set_key_state("k2", KeyState::Removed, 700)
            .await
            .unwrap();
        let k2 = store.key("k2").await.unwrap().unwrap();
        assert_eq!((k2.state, k2.retired_at), (KeyState::Removed, Some(700)));

        for res in [
            store.set_key_state("nope", KeyState::Active, 1).await,
            store.set_remove_after("nope", 1).await,
        ] {
            assert!(matches!(res, Err(StoreError::NotFound("key"))), "{res:?}");
        }

        // Concurrent activation of one key: exactly one node wins, the other is told why.
        store
            .insert_key(&new_key(&master, "k3", 300))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            store.set_key_state("k3", KeyState::Active, 400),
            store.set_key_state("k3", KeyState::Active, 400),
        );
        assert!(
            matches!(
                (&a, &b),
                (Ok(()), Err(StoreError::Conflict(LATER)))
                    | (Err(StoreError::Conflict(LATER)), Ok(()))
            ),
            "{a:?} {b:?}"
        );

        // The store refuses a public JWK that is not JSON.
        let bad = NewKey::seal(&master, "k4", KeyUse::Enc, "ECDH-ES", "not json", b"{}");
        assert!(
            matches!(bad, Err(StoreError::Invalid("public JWK is not JSON"))),
            "{:?}",
            bad.err()
        );
    }

    pub async fn private_keys_encrypted_under_master_key(ctx: Ctx) {
        let store = ctx.open().await;
        let master = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();

        assert!(
            store.verify_master_key(&master).await.unwrap(),
            "first use stores the check"
        );
        assert!(!store.verify_master_key(&master).await.unwrap());
        let res = store.verify_master_key(&other).await;
        assert!(matches!(res, Err(StoreError::WrongMasterKey)), "{res:?}");

        store
            .insert_key(&new_key(&master, "k1", 100))
            .await
            .unwrap();
        store
            .insert_key(&new_key(&master, "k2", 100))
            .await
            .unwrap();
        let k1 = store.key("k1").await.unwrap().unwrap();
        assert_eq!(
            k1.private_jwk(&master).unwrap().as_slice(),
            br#"{"kty":"EC","kid":"k1","d":"secret-d-k1"}"#
        );
        let needle = b"secret-d";
        assert!(
            !k1.private_ciphertext
                .windows(needle.len())
                .any(|w| w == needle),
            "plaintext visible in the stored ciphertext"
        );
        assert!(matches!(
            k1.private_jwk(&other),
            Err(StoreError::WrongMasterKey)
        ));

        // Someone with write access to the database moves k1's ciphertext onto k2: the kid is
        // bound as AAD, so it does not decrypt there.
        execute(
            &store,
            "UPDATE keys SET private_ciphertext = \
             (SELECT private_ciphertext FROM keys WHERE kid = $1) WHERE kid = $2",
            "k1",
            "k2",
        )
        .await;
        let k2 = store.key("k2").await.unwrap().unwrap();
        assert_eq!(k2.private_ciphertext, k1.private_ciphertext);
        assert!(matches!(
            k2.private_jwk(&master),
            Err(StoreError::WrongMasterKey)
        ));

        // The check value survives a reopen, and still refuses the other key.
        store.close().await;
        let store = ctx.open().await;
        assert!(!store.verify_master_key(&master).await.unwrap());
        assert!(matches!(
            store.verify_master_key(&other).await,
            Err(StoreError::WrongMasterKey)
        ));
    }

    pub async fn clients_crud(ctx: Ctx) {
        let store = ctx.open().await;
        assert!(store.client("c1").await.unwrap().is_none());
        let c1 = client("c1");
        store.create_client(&c1).await.unwrap();
        let mut c0 = client("c0");
        c0.secret_hash = None;
        c0.auth_method = AuthMethod::PrivateKeyJwt;
        c0.jwks = Some(r#"{"keys":[]}"#.into());
        c0.scopes = vec![];
        c0.audiences = vec![];
        store.create_client(&c0).await.unwrap();

        assert_eq!(store.client("c1").await.unwrap(), Some(c1.clone()));
        assert_eq!(
            store.list_clients().await.unwrap(),
            [c0.clone(), c1.clone()]
        );

        let dup = store.create_client(&c1).await;
        assert!(
            matches!(
                dup,
                Err(StoreError::Conflict("a client with this client_id exists"))
            ),
            "{dup:?}"
        );
        let mut bad = client("c2");
        bad.scopes = vec!["two words".into()];
        let res = store.create_client(&bad).await;
        assert!(
            matches!(
                res,
                Err(StoreError::Invalid("scope is not an RFC 6749 scope token"))
            ),
            "{res:?}"
        );
        bad.scopes = vec![];
        bad.jwks = Some("{".into());
        let res = store.create_client(&bad).await;
        assert!(
            matches!(res, Err(StoreError::Invalid("client jwks is not JSON"))),
            "{res:?}"
        );
        bad.jwks = None;
        bad.client_id = String::new();
        let res = store.create_client(&bad).await;
        assert!(
            matches!(res, Err(StoreError::Invalid("empty client_id"))),
            "{res:?}"
        );
        // None of them was stored.
        assert_eq!(store.list_clients().await.unwrap().len(), 2);

        // Secret check against the stored hash.
        let stored = store
            .client("c1")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .unwrap();
        assert!(verify_secret(PEPPER, b"secret of c1", &stored));
        assert!(!verify_secret(PEPPER, b"secret of c2", &stored));
        assert!(!verify_secret(b"other pepper", b"secret of c1", &stored));

        let rotated = hash_secret(PEPPER, b"new secret");
        store
            .set_client_secret_hash("c1", Some(&rotated))
            .await
            .unwrap();
        let stored = store
            .client("c1")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .unwrap();
        assert!(verify_secret(PEPPER, b"new secret", &stored));
        assert!(!verify_secret(PEPPER, b"secret of c1", &stored));
        store.set_client_secret_hash("c1", None).await.unwrap();
        assert_eq!(store.client("c1").await.unwrap().unwrap().secret_hash, None);

        store.set_client_disabled("c1", true).await.unwrap();
        assert!(store.client("c1").await.unwrap().unwrap().disabled);
        store.set_client_disabled("c1", false).await.unwrap();
        assert!(!store.client("c1").await.unwrap().unwrap().disabled);

        store.delete_client("c1").await.unwrap();
        assert!(store.client("c1").await.unwrap().is_none());
        for res in [
            store.delete_client("c1").await,
            store.set_client_disabled("c1", true).await,
            store.set_client_secret_hash("c1", None).await,
        ] {
            assert!(
                matches!(res, Err(StoreError::NotFound("client"))),
                "{res:?}"
            );
        }
        assert_eq!(store.list_clients().await.unwrap(), [c0]);
    }

    /// Polls `call` once and drops it; whether it was still pending then.
    async fn poll_once<F: std::future::Future>(call: F) -> bool {
        let mut call = std::pin::pin!(call);
        std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx).is_pending())).await
    }

    /// A writer whose batch failed, or whose call was abandoned midway (its future dropped
    /// after the first hand-off), holds no lock afterwards: other writers go on at once, and
    /// the same writer records the next batch.
    pub async fn a_writer_recovers_from_a_failed_or_abandoned_batch(ctx: Ctx) {
        let store = ctx.open().await;
        let issued = |jti: &str| {
            let event = AuditEvent {
                time: 1,
                event: "token.issued".into(),
                jti: Some(jti.into()),
                outcome: "success".into(),
                ..AuditEvent::default()
            };
            (token(jti, "c1", "alice", 10_000), event.prepare().unwrap())
        };
        let other = || AuditEvent {
            time: 1,
            event: "other.writer".into(),
            outcome: "success".into(),
            ..AuditEvent::default()
        };
        let mut writer = store.writer().await.unwrap();
        writer.record_issued(&[issued("w1")]).await.unwrap();
        // A jti taken: refused, and the write lock is released at once.
        assert!(writer
            .record_issued(&[issued("w2"), issued("w1")])
            .await
            .is_err());
        let quick = std::time::Duration::from_secs(2);
        tokio::time::timeout(quick, store.append_audit(&other()))
            .await
            .expect("another writer is not held up")
            .unwrap();
        writer.record_issued(&[issued("w3")]).await.unwrap();
        // Polled once, then dropped: the batch may have begun, or even committed (a call
        // already handed to the database runs to its end); either way all of it or none.
        let gone1 = [issued("gone1")];
        assert!(poll_once(writer.record_issued(&gone1)).await, "left midway");
        writer.record_issued(&[issued("w4")]).await.unwrap();
        tokio::time::timeout(quick, store.append_audit(&other()))
            .await
            .expect("another writer is not held up")
            .unwrap();
        // Abandoned again, and the writer dropped with it.
        let gone2 = [issued("gone2")];
        assert!(poll_once(writer.record_issued(&gone2)).await, "left midway");
        drop(writer);
        tokio::time::timeout(quick, store.append_audit(&other()))
            .await
            .expect("another writer is not held up")
            .unwrap();
        store.record_issued(&[issued("w5")]).await.unwrap();
        for jti in ["w1", "w3", "w4", "w5"] {
            assert!(store.token(jti).await.unwrap().is_some(), "{jti}");
        }
        assert!(store.token("w2").await.unwrap().is_none());
        // Gapless: the tokens recorded and 3 other events, each token with its event.
        let log = store.audit_log(0, 100).await.unwrap();
        let mut recorded = 4;
        for jti in ["gone1", "gone2"] {
            let token = store.token(jti).await.unwrap().is_some();
            let event = log.iter().any(|r| r.event.jti.as_deref() == Some(jti));
            assert_eq!(token, event, "{jti}: its token and its event, or neither");
            recorded += usize::from(token);
        }
        let seqs: Vec<_> = log.iter().map(|r| r.seq).collect();
        let total = i64::try_from(recorded + 3).unwrap();
        assert_eq!(seqs, (0..total).map(Some).collect::<Vec<_>>());
    }

    pub async fn issuances_commit_together_or_not_at_all(ctx: Ctx) {
        let store = ctx.open().await;
        let event = |jti: &str| {
            AuditEvent {
                time: 1,
                event: "token.issued".into(),
                jti: Some(jti.into()),
                outcome: "success".into(),
                ..AuditEvent::default()
            }
            .prepare()
            .unwrap()
        };
        let batch: Vec<_> = ["b1", "b2", "b3"]
            .iter()
            .map(|j| (token(j, "c1", "alice", 10_000), event(j)))
            .collect();
        store.record_issued(&batch).await.unwrap();
        for j in ["b1", "b2", "b3"] {
            assert!(store.token(j).await.unwrap().is_some());
        }
        assert_eq!(store.audit_events(0, 100).await.unwrap().len(), 3);
        // A batch with a jti recorded before: nothing of it is kept.
        let bad = vec![
            (token("b4", "c1", "alice", 10_000), event("b4")),
            (token("b1", "c1", "alice", 10_000), event("b1")),
        ];
        let err = store.record_issued(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(JTI_TAKEN)), "{err:?}");
        assert!(store.token("b4").await.unwrap().is_none());
        assert_eq!(store.audit_events(0, 100).await.unwrap().len(), 3);
        // More rows than one multi-row statement takes: split, still one transaction.
        let big: Vec<_> = (0..1500)
            .map(|i| {
                let j = format!("big{i}");
                (token(&j, "c1", "alice", 10_000), event(&j))
            })
            .collect();
        store.record_issued(&big).await.unwrap();
        assert!(store.token("big0").await.unwrap().is_some());
        assert!(store.token("big1499").await.unwrap().is_some());
        let events = store.audit_events(3, 2000).await.unwrap();
        assert_eq!(events.len(), 1500);
        assert_eq!(events[1499].event.jti.as_deref(), Some("big1499"));
        assert_eq!(events[1499].seq, Some(1502));
        let mut late_dup = big[..2].to_vec();
        late_dup[0].0.jti = "fresh".into();
        late_dup[1].0.jti = "big1499".into();
        let mut dup_after_chunk: Vec<_> = (0..1100)
            .map(|i| {
                let j = format!("late{i}");
                (token(&j, "c1", "alice", 10_000), event(&j))
            })
            .collect();
        dup_after_chunk.extend(late_dup);
        let err = store.record_issued(&dup_after_chunk).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(JTI_TAKEN)), "{err:?}");
        assert!(store.token("late0").await.unwrap().is_none());
        assert_eq!(store.audit_events(0, 5000).await.unwrap().len(), 1503);
        // The head advanced by whole batches (the big one's 1500, the failed one's none):
        // the next event is numbered right after the last one stored.
        store
            .record_issued(&[(token("after", "c1", "alice", 10_000), event("after"))])
            .await
            .unwrap();
        let events = store.audit_events(0, 5000).await.unwrap();
        assert_eq!(events.len(), 1504);
        assert_eq!(events[1503].event.jti.as_deref(), Some("after"));
        assert_eq!(events[1503].seq, Some(1503));
    }

    pub async fn tokens_and_revocation(ctx: Ctx) {
        let store = ctx.open().await;
        let exp = 10_000;
        for t in [
            token("t1", "c1", "alice", exp),
            token("t2", "c1", "bob", exp),
            token("t3", "c2", "alice", exp),
            token("t4", "c2", "carol", exp),
            token("old", "c2", "carol", 500),
        ] {
            store.record_token(&t).await.unwrap();
        }
        let dup = store.record_token(&token("t1", "c9", "x", exp)).await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(JTI_TAKEN))),
            "{dup:?}"
        );
        assert_eq!(
            store.token("t1").await.unwrap(),
            Some(token("t1", "c1", "alice", exp))
        );
        assert_eq!(store.token("nope").await.unwrap(), None);
        // Looked up by jti, client or subject, newest first, at most the limit.
        let jtis = |found: Vec<IssuedToken>| found.into_iter().map(|t| t.jti).collect::<Vec<_>>();
        let find = |of| store.find_tokens(of, 10);
        assert_eq!(jtis(find(TokensOf::Jti("t3")).await.unwrap()), ["t3"]);
        assert_eq!(
            jtis(find(TokensOf::Client("c2")).await.unwrap()),
            ["t3", "t4", "old"]
        );
        assert_eq!(
            jtis(find(TokensOf::Subject("carol")).await.unwrap()),
            ["t4", "old"]
        );
        assert_eq!(
            jtis(store.find_tokens(TokensOf::Client("c2"), 1).await.unwrap()),
            ["t3"]
        );
        assert!(find(TokensOf::Subject("nobody")).await.unwrap().is_empty());
        // Values are bound, never spliced into the statement.
        assert!(find(TokensOf::Jti("t1' OR '1'='1"))
            .await
            .unwrap()
            .is_empty());

        assert!(store.revoke_token("t1", 1000).await.unwrap());
        assert!(
            !store.revoke_token("t1", 1001).await.unwrap(),
            "already revoked"
        );
        assert!(!store.revoke_token("nope", 1001).await.unwrap(), "unknown");
        assert_eq!(
            store.token("t1").await.unwrap().unwrap().revoked_at,
            Some(1000)
        );

        // t1 is revoked already: only t2 is new for c1.
        assert_eq!(store.revoke_by_client("c1", 2000).await.unwrap(), 1);
        assert_eq!(store.revoke_by_client("c1", 2001).await.unwrap(), 0);
        // alice: t1 (done), t3 (new).
        assert_eq!(store.revoke_by_subject("alice", 3000).await.unwrap(), 1);
        assert_eq!(store.revoke_by_subject("nobody", 3000).await.unwrap(), 0);
        assert_eq!(
            store.token("t1").await.unwrap().unwrap().revoked_at,
            Some(1000)
        );

        let all: Vec<_> = store.revoked_since(0, 0).await.unwrap();
        let jtis: Vec<_> = all.iter().map(|r| r.jti.as_str()).collect();
        assert_eq!(jtis, ["t1", "t2", "t3"], "in revocation order");
        assert_eq!((all[0].revoked_at, all[0].expires_at), (1000, exp));
        let recent: Vec<_> = store.revoked_since(2000, 0).await.unwrap();
        let jtis: Vec<_> = recent.iter().map(|r| r.jti.as_str()).collect();
        assert_eq!(jtis, ["t2", "t3"], "the bound is inclusive");
        assert!(store.revoked_since(3001, 0).await.unwrap().is_empty());
        assert!(
            store.revoked_since(0, exp + 1).await.unwrap().is_empty(),
            "expired tokens are not read"
        );
        assert_eq!(store.revoked_since(0, exp).await.unwrap().len(), 3);

        assert_eq!(
            store.purge_expired(500, 100).await.unwrap(),
            0,
            "exclusive bound"
        );
        assert_eq!(store.purge_expired(501, 100).await.unwrap(), 1);
        assert_eq!(store.token("old").await.unwrap(), None);
        // At most `limit` at a time.
        assert_eq!(store.purge_expired(exp + 1, 3).await.unwrap(), 3);
        assert_eq!(store.purge_expired(exp + 1, 3).await.unwrap(), 1);
        assert!(store.revoked_since(0, 0).await.unwrap().is_empty());
    }

    pub async fn jti_single_use(ctx: Ctx) {
        let store = ctx.open().await;
        assert!(store.use_jti("dpop", "j1", 100).await.unwrap());
        assert!(!store.use_jti("dpop", "j1", 100).await.unwrap());
        assert!(!store.use_jti("dpop", "j1", 999).await.unwrap());
        assert!(
            store.use_jti("client_assertion", "j1", 100).await.unwrap(),
            "namespaced"
        );

        // Two tasks racing for the same jti: exactly one wins, every time.
        for i in 0..25 {
            let jti = format!("race-{i}");
            let (a, b) = (store.clone(), store.clone());
            let (ja, jb) = (jti.clone(), jti.clone());
            let ta = tokio::spawn(async move { a.use_jti("dpop", &ja, 200).await.unwrap() });
            let tb = tokio::spawn(async move { b.use_jti("dpop", &jb, 200).await.unwrap() });
            let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
            assert!(ra ^ rb, "{jti}: {ra} {rb}");
        }

        assert_eq!(
            store.purge_used_jtis(100).await.unwrap(),
            0,
            "exclusive bound"
        );
        assert_eq!(store.purge_used_jtis(101).await.unwrap(), 2);
        assert!(
            store.use_jti("dpop", "j1", 300).await.unwrap(),
            "usable again once purged"
        );
        assert!(!store.use_jti("dpop", "race-0", 300).await.unwrap());
    }

    fn code(hash: &str, expires_at: i64) -> store::AuthorizationCode {
        store::AuthorizationCode {
            code_hash: hash.into(),
            client_id: "app".into(),
            redirect_uri: "http://127.0.0.1:5000/cb".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            dpop_jkt: None,
            subject: "alice".into(),
            auth_time: 90,
            audience: "https://api.example".into(),
            scope: "read".into(),
            claims: r#"{"email":"alice@example.com"}"#.into(),
            issued_at: 100,
            expires_at,
        }
    }

    pub async fn authorization_codes_are_redeemed_once(ctx: Ctx) {
        let store = ctx.open().await;
        let c = code("h1", 160);
        store.insert_code(&c).await.unwrap();
        assert!(matches!(
            store.insert_code(&c).await,
            Err(store::StoreError::Conflict(_))
        ));
        let stored = store.code("h1").await.unwrap().unwrap();
        assert_eq!((stored.code, stored.used_at), (c.clone(), None));
        assert_eq!(store.code("nope").await.unwrap(), None);
        assert_eq!(
            store.code_replayed("h1", 120).await.unwrap(),
            None,
            "an unused code is not a replay"
        );
        assert!(!store.redeem_code("h1", 160).await.unwrap(), "expired");

        // Two tasks racing to redeem: exactly one wins, every time.
        for i in 0..20 {
            let hash = format!("race-{i}");
            store.insert_code(&code(&hash, 160)).await.unwrap();
            let (a, b) = (store.clone(), store.clone());
            let (ha, hb) = (hash.clone(), hash.clone());
            let ta = tokio::spawn(async move { a.redeem_code(&ha, 120).await.unwrap() });
            let tb = tokio::spawn(async move { b.redeem_code(&hb, 120).await.unwrap() });
            let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
            assert!(ra ^ rb, "{hash}: {ra} {rb}");
        }

        // Redeemed, its token recorded, then replayed: the replay learns the token's jti.
        assert!(store.redeem_code("h1", 120).await.unwrap());
        assert!(!store.redeem_code("h1", 121).await.unwrap());
        assert_eq!(store.code("h1").await.unwrap().unwrap().used_at, Some(120));
        assert!(store.code_issued("h1", "jti-1").await.unwrap());
        assert_eq!(
            store.code_replayed("h1", 130).await.unwrap(),
            Some(Some("jti-1".into()))
        );

        // Replayed before its token was recorded: recording refuses, so the issuer revokes.
        store.insert_code(&code("h2", 160)).await.unwrap();
        assert!(store.redeem_code("h2", 120).await.unwrap());
        assert_eq!(store.code_replayed("h2", 121).await.unwrap(), Some(None));
        assert!(!store.code_issued("h2", "jti-2").await.unwrap());

        assert_eq!(store.purge_codes(160).await.unwrap(), 0, "exclusive bound");
        assert_eq!(store.purge_codes(161).await.unwrap(), 22);
        assert_eq!(store.code("h1").await.unwrap(), None);
    }

    pub async fn refresh_families_rotate_and_revoke(ctx: Ctx) {
        let store = ctx.open().await;
        let family = store::RefreshFamily {
            family_id: "f1".into(),
            client_id: "app".into(),
            subject: "alice".into(),
            audience: "https://api.example".into(),
            scope: "read write".into(),
            claims: "{}".into(),
            dpop_jkt: Some("jkt".into()),
            created_at: 100,
            expires_at: 1000,
            revoked_at: None,
        };
        let token = |hash: &str| store::RefreshToken {
            token_hash: hash.into(),
            family_id: "f1".into(),
            issued_at: 100,
            idle_expires_at: 500,
            used_at: None,
        };
        store
            .create_refresh_family(&family, &token("t1"))
            .await
            .unwrap();
        assert!(matches!(
            store.create_refresh_family(&family, &token("t9")).await,
            Err(store::StoreError::Conflict(_))
        ));
        assert_eq!(
            store.refresh_token("t9").await.unwrap(),
            None,
            "nothing of a refused family"
        );
        let (t, f) = store.refresh_token("t1").await.unwrap().unwrap();
        assert_eq!((t, f), (token("t1"), family.clone()));
        assert!(!store.refresh_family_revoked("f1").await.unwrap());
        assert!(
            store.refresh_family_revoked("nope").await.unwrap(),
            "gone is revoked"
        );

        assert!(store.use_refresh_token("t1", 200).await.unwrap());
        assert!(!store.use_refresh_token("t1", 201).await.unwrap(), "once");
        store.refresh_issued("t1", "jti-1").await.unwrap();
        store.insert_refresh_token(&token("t2")).await.unwrap();
        store.refresh_issued("t2", "jti-2").await.unwrap();
        assert_eq!(
            store.refresh_token("t1").await.unwrap().unwrap().0.used_at,
            Some(200)
        );

        // The access tokens issued with them: two live, one expired, one revoked already.
        for (jti, expires_at, revoked_at) in [
            ("jti-1", 1000, None),
            ("jti-2", 1000, None),
            ("jti-3", 250, None),
            ("jti-4", 1000, Some(150)),
        ] {
            store
                .record_token(&store::IssuedToken {
                    jti: jti.into(),
                    client_id: "app".into(),
                    subject: "alice".into(),
                    audience: "https://api.example".into(),
                    scope: "read".into(),
                    issued_at: 100,
                    expires_at,
                    revoked_at,
                })
                .await
                .unwrap();
        }
        for (hash, jti) in [("t3", "jti-3"), ("t4", "jti-4")] {
            store.insert_refresh_token(&token(hash)).await.unwrap();
            store.refresh_issued(hash, jti).await.unwrap();
        }
        let mut jtis = store.revoke_refresh_family("f1", 300).await.unwrap();
        jtis.sort();
        assert_eq!(jtis, ["jti-1", "jti-2"], "only what is live and unrevoked");
        store.revoke_refresh_family("f1", 400).await.unwrap();
        let (_, f) = store.refresh_token("t2").await.unwrap().unwrap();
        assert_eq!(f.revoked_at, Some(300), "the first revocation's time stays");

        let mut other = family.clone();
        other.family_id = "f2".into();
        other.subject = "bob".into();
        let mut first = token("u1");
        first.family_id = "f2".into();
        store.create_refresh_family(&other, &first).await.unwrap();
        assert_eq!(
            store
                .revoke_refresh_families_of(None, Some("bob"), 500)
                .await
                .unwrap(),
            1
        );
        assert!(store.refresh_family_revoked("f2").await.unwrap());
        assert_eq!(
            store
                .revoke_refresh_families_of(Some("app"), None, 500)
                .await
                .unwrap(),
            0
        );

        assert_eq!(
            store.purge_refresh_families(1000).await.unwrap(),
            0,
            "exclusive bound"
        );
        assert_eq!(store.purge_refresh_families(1001).await.unwrap(), 2);
        assert_eq!(
            store.refresh_token("t2").await.unwrap(),
            None,
            "tokens go with the family"
        );
    }

    pub async fn audit_in_order(ctx: Ctx) {
        let store = ctx.open().await;
        assert!(store.audit_events(0, 10).await.unwrap().is_empty());
        let full = AuditEvent {
            time: 1_700_000_000,
            event: "token.issued".into(),
            client_id: Some("c1".into()),
            subject: Some("alice".into()),
            jti: Some("t1".into()),
            audience: Some("https://api.example".into()),
            outcome: "success".into(),
            reason: Some("none".into()),
            request_id: Some("req-1".into()),
            detail: serde_json::json!({"admin": "env", "count": 3})
                .as_object()
                .cloned(),
        };
        let mut seqs = vec![store.append_audit(&full).await.unwrap()];
        for i in 0..4 {
            let event = AuditEvent {
                time: 1_700_000_001 + i,
                event: format!("event.{i}"),
                outcome: "failure".into(),
                ..AuditEvent::default()
            };
            seqs.push(store.append_audit(&event).await.unwrap());
        }
        assert_eq!(seqs, [0, 1, 2, 3, 4]);

        let all = store.audit_events(0, 100).await.unwrap();
        assert_eq!(all.iter().map(|r| r.seq.unwrap()).collect::<Vec<_>>(), seqs);
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(all[0].event, full);
        assert_eq!(all[3].event.event, "event.2");
        assert_eq!(all[3].event.client_id, None);

        // Paging: limit, then continue after the last id seen.
        let page = store.audit_events(0, 2).await.unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
        let rest = store.audit_events(page[1].id, 100).await.unwrap();
        assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), ids[2..]);
        assert!(store.audit_events(ids[4], 100).await.unwrap().is_empty());
        assert!(store.audit_events(0, 0).await.unwrap().is_empty());
    }

    /// One gapless sequence whatever writes: single events, batches of issuances, a batch
    /// that rolls back, many writers at once; each row's hash is its leaf's.
    pub async fn audit_log_is_gapless_and_hashed(ctx: Ctx) {
        let store = ctx.open().await;
        let event = |name: &str| AuditEvent {
            time: 1_700_000_000,
            event: name.into(),
            outcome: "success".into(),
            ..AuditEvent::default()
        };
        assert_eq!(store.append_audit(&event("first")).await.unwrap(), 0);
        let batch: Vec<_> = ["g1", "g2"]
            .iter()
            .map(|j| {
                let prepared = event("token.issued").prepare().unwrap();
                (token(j, "c1", "alice", 10_000), prepared)
            })
            .collect();
        store.record_issued(&batch).await.unwrap();
        // Rolled back (jti taken): its sequence numbers are not used up.
        assert!(store.record_issued(&batch).await.is_err());
        assert_eq!(store.audit_length().await.unwrap(), 3);
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    // Half the writers record issuances as the token service does, on a
                    // connection of their own, so both ways of taking numbers interleave.
                    let mut writer = if w % 2 == 1 {
                        Some(store.writer().await.unwrap())
                    } else {
                        None
                    };
                    for i in 0..10 {
                        let mut e = event(&format!("writer.{w}.{i}"));
                        e.client_id = Some(format!("w{w}"));
                        if let Some(writer) = writer.as_mut() {
                            let jti = format!("w{w}.{i}");
                            let issued = (token(&jti, "c1", "alice", 10_000), e.prepare().unwrap());
                            writer.record_issued(&[issued]).await.unwrap();
                        } else {
                            store.append_audit(&e).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let log = store.audit_log(0, 1000).await.unwrap();
        assert_eq!(log.len(), 83);
        for (i, record) in log.iter().enumerate() {
            assert_eq!(record.seq, Some(i as i64));
            let leaf = audit::event::leaf(&record.to_json().unwrap()).unwrap();
            assert_eq!(
                record.hash.as_deref(),
                Some(audit::event::encode_hash(&leaf).as_str())
            );
        }
        assert_eq!(store.audit_log(80, 10).await.unwrap().len(), 3);
        assert!(store.audit_unsequenced(10).await.unwrap().is_empty());

        // The first name given to the log stays.
        assert_eq!(store.stored_audit_origin().await.unwrap(), None);
        assert_eq!(
            store.audit_origin("a.example/audit").await.unwrap(),
            "a.example/audit"
        );
        assert_eq!(
            store.audit_origin("b.example/audit").await.unwrap(),
            "a.example/audit"
        );

        assert_eq!(store.newest_checkpoint().await.unwrap(), None);
        let checkpoint = |size: i64| store::StoredCheckpoint {
            size,
            root: format!("root {size}"),
            note: format!("note {size}"),
            created_at: 1_700_000_000 + size,
            anchor: None,
            consistency: None,
        };
        assert!(store.insert_checkpoint(&checkpoint(10)).await.unwrap());
        assert!(store.insert_checkpoint(&checkpoint(83)).await.unwrap());
        assert!(!store.insert_checkpoint(&checkpoint(10)).await.unwrap());
        assert_eq!(
            store.newest_checkpoint().await.unwrap(),
            Some(checkpoint(83))
        );
        assert_eq!(
            store.checkpoints(0, 10).await.unwrap(),
            [checkpoint(10), checkpoint(83)]
        );
        assert_eq!(store.checkpoints(10, 10).await.unwrap(), [checkpoint(83)]);

        // Pruning: the events before 40 go, the frontier and the older checkpoint's proof
        // stay; pruning again no further is refused.
        assert_eq!(
            store.audit_pruned().await.unwrap(),
            store::PrunedPrefix::default()
        );
        let prefix = store::PrunedPrefix {
            size: 40,
            frontier: vec!["a".into(), "b".into()],
        };
        let proof = store::CheckpointProof {
            size: 10,
            anchor: 40,
            consistency: "[\"p\"]".into(),
        };
        assert_eq!(store.prune_audit(&prefix, &[proof]).await.unwrap(), 40);
        assert_eq!(store.audit_pruned().await.unwrap(), prefix);
        assert_eq!(store.audit_log(0, 1).await.unwrap()[0].seq, Some(40));
        let old = &store.checkpoints(0, 1).await.unwrap()[0];
        assert_eq!(
            (old.anchor, old.consistency.as_deref()),
            (Some(40), Some("[\"p\"]"))
        );
        assert!(store.prune_audit(&prefix, &[]).await.is_err());
        assert_eq!(store.audit_length().await.unwrap(), 83);

        // Pruned to the end: the sequence goes on from where it was, by either writer.
        let all = store::PrunedPrefix {
            size: 83,
            frontier: vec!["c".into()],
        };
        assert_eq!(store.prune_audit(&all, &[]).await.unwrap(), 43);
        assert_eq!(store.audit_length().await.unwrap(), 83);
        let issued = (
            token("after", "c1", "alice", 10_000),
            event("late").prepare().unwrap(),
        );
        store.record_issued(&[issued]).await.unwrap();
        assert_eq!(store.append_audit(&event("later")).await.unwrap(), 84);
        assert_eq!(store.audit_length().await.unwrap(), 85);
    }

    /// Events recorded before the log existed are numbered and hashed once, at the first
    /// open of this version; a row without a number slipped in later stays unnumbered.
    pub async fn events_before_the_log_are_adopted_once(ctx: Ctx) {
        let store = ctx.open().await;
        for name in ["old.1", "old.2", "old.3"] {
            execute(
                &store,
                "INSERT INTO audit_events (time, event, outcome) VALUES (1, $1, $2)",
                name,
                "success",
            )
            .await;
        }
        store.close().await;
        let store = ctx.open().await;
        let log = store.audit_log(0, 10).await.unwrap();
        let names: Vec<_> = log
            .iter()
            .map(|r| (r.seq, r.event.event.as_str()))
            .collect();
        assert_eq!(
            names,
            [(Some(0), "old.1"), (Some(1), "old.2"), (Some(2), "old.3")]
        );
        for r in &log {
            let leaf = audit::event::leaf(&r.to_json().unwrap()).unwrap();
            assert_eq!(
                r.hash.as_deref(),
                Some(audit::event::encode_hash(&leaf).as_str())
            );
        }
        assert_eq!(store.audit_length().await.unwrap(), 3);
        execute(
            &store,
            "INSERT INTO audit_events (time, event, outcome) VALUES (1, $1, $2)",
            "slipped",
            "success",
        )
        .await;
        store.close().await;
        let store = ctx.open().await;
        assert_eq!(store.audit_unsequenced(10).await.unwrap().len(), 1);
        assert_eq!(store.audit_length().await.unwrap(), 3);
    }

    /// The JWK Set a client of [`previous_version_clients`] was written with.
    fn previous_jwks(id: &str) -> Option<String> {
        (id == "k").then(|| format!("{{\"keys\":[],\"x\":\"{id}\"}}"))
    }

    /// The schema of the version before migration 0004 (migrations 0001-0003, run by a
    /// migrator of their own) and three clients written as that version wrote them, every
    /// column distinct per client, so that a column the rebuild moves shows.
    async fn previous_version_clients(ctx: &Ctx) {
        let dir = tempfile::tempdir().unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(ctx.backend());
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "0004" {
                std::fs::copy(&path, dir.path().join(name)).unwrap();
            }
        }
        let previous = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
        let insert = "INSERT INTO clients (client_id, name, secret_hash, auth_method, scopes, \
                      audiences, jwks, disabled, created_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let methods = [
            ("b", "client_secret_basic"),
            ("p", "client_secret_post"),
            ("k", "private_key_jwt"),
        ];
        macro_rules! write_with {
            ($pool:expr) => {{
                let pool = $pool;
                previous.run(&pool).await.unwrap();
                for (n, (id, method)) in (0i64..).zip(methods) {
                    sqlx::query(insert)
                        .bind(id)
                        .bind(format!("name {id}"))
                        .bind((method != "private_key_jwt").then(|| id.as_bytes().to_vec()))
                        .bind(method)
                        .bind(format!("read {id}"))
                        .bind(format!("[\"https://{id}.example\"]"))
                        .bind(previous_jwks(id))
                        .bind(n == 1)
                        .bind(100 + n)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                pool.close().await;
            }};
        }
        if ctx.backend() == "sqlite" {
            let options: sqlx::sqlite::SqliteConnectOptions = ctx.url.parse().unwrap();
            if let Some(parent) = options.get_filename().parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            let options = options.create_if_missing(true);
            write_with!(sqlx::SqlitePool::connect_with(options).await.unwrap());
        } else {
            write_with!(sqlx::PgPool::connect(&ctx.url).await.unwrap());
        }
    }

    /// Clients registered by the version before migration 0004 (which rebuilds the SQLite
    /// table) are all kept, fields and all; those whose method was asked for are pinned.
    pub async fn clients_of_the_previous_version_are_kept(ctx: Ctx) {
        previous_version_clients(&ctx).await;
        let store = ctx.open().await;
        let clients = store.list_clients().await.unwrap();
        let seen: Vec<_> = clients
            .iter()
            .map(|c| {
                (
                    c.client_id.as_str(),
                    c.auth_method.as_str(),
                    c.auth_method_pinned,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("b", "client_secret_basic", false),
                ("k", "private_key_jwt", true),
                ("p", "client_secret_post", true),
            ]
        );
        for c in &clients {
            let id = c.client_id.as_str();
            let n = ["b", "p", "k"].iter().position(|x| *x == id).unwrap() as i64;
            assert_eq!(c.name, format!("name {id}"));
            let secret = (id != "k").then(|| id.as_bytes().to_vec());
            assert_eq!(c.secret_hash, secret, "{id}");
            assert_eq!(c.scopes, ["read".to_owned(), id.to_owned()]);
            assert_eq!(c.audiences, [format!("https://{id}.example")]);
            assert_eq!(c.jwks, previous_jwks(id));
            assert_eq!((c.disabled, c.created_at), (n == 1, 100 + n), "{id}");
            assert!(c.redirect_uris.is_empty());
        }
    }

    pub async fn data_survives_reopen(ctx: Ctx) {
        let master = MasterKey::generate().unwrap();
        let store = ctx.open().await;
        store.verify_master_key(&master).await.unwrap();
        store
            .insert_key(&new_key(&master, "k1", 100))
            .await
            .unwrap();
        store.create_client(&client("c1")).await.unwrap();
        store
            .record_token(&token("t1", "c1", "alice", 10_000))
            .await
            .unwrap();
        store.revoke_token("t1", 50).await.unwrap();
        store.use_jti("dpop", "j1", 10_000).await.unwrap();
        let audit_id = store
            .append_audit(&AuditEvent {
                time: 1,
                event: "e".into(),
                outcome: "success".into(),
                ..AuditEvent::default()
            })
            .await
            .unwrap();
        if let Store::Sqlite(pool) = &store {
            // The durability settings are in force on the pool's connections.
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(sync, 2, "synchronous = FULL");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
        }
        store.close().await;
        drop(store);

        let store = ctx.open().await;
        assert!(!store.verify_master_key(&master).await.unwrap());
        let key = store.key("k1").await.unwrap().unwrap();
        assert_eq!(
            key.private_jwk(&master).unwrap().as_slice(),
            br#"{"kty":"EC","kid":"k1","d":"secret-d-k1"}"#
        );
        assert_eq!(store.client("c1").await.unwrap(), Some(client("c1")));
        assert_eq!(
            store.token("t1").await.unwrap().unwrap().revoked_at,
            Some(50)
        );
        assert!(!store.use_jti("dpop", "j1", 10_000).await.unwrap());
        let audit = store.audit_events(0, 10).await.unwrap();
        assert_eq!(
            audit.iter().map(|r| r.seq.unwrap()).collect::<Vec<_>>(),
            [audit_id]
        );
        // The sequence goes on after the reopen.
        let next = store
            .append_audit(&AuditEvent {
                time: 2,
                event: "e".into(),
                outcome: "success".into(),
                ..AuditEvent::default()
            })
            .await
            .unwrap();
        assert_eq!(next, audit_id + 1);
    }

    pub async fn closed_store_is_unavailable(ctx: Ctx) {
        let store = ctx.open().await;
        let expected = if ctx.url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        assert_eq!(store.backend(), expected);
        store.close().await;
        let results = [
            store.list_keys().await.map(|_| ()),
            store.use_jti("dpop", "j", 1).await.map(|_| ()),
            store.append_audit(&AuditEvent::default()).await.map(|_| ()),
        ];
        for res in results {
            let err = res.unwrap_err();
            assert!(err.is_unavailable(), "{err:?}");
            assert_eq!(err.code(), "ERR_STORE_UNAVAILABLE");
            // Unavailable because the pool is closed, not for some other reason.
            let StoreError::Unavailable(source) = &err else {
                unreachable!()
            };
            assert!(
                matches!(
                    source.downcast_ref::<sqlx::Error>(),
                    Some(sqlx::Error::PoolClosed)
                ),
                "{err:?}"
            );
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` for each case.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    store::testing::run_sqlite(crate::cases::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    store::testing::run_postgres(crate::cases::$name).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_idempotent_on_reopen,
    keys_lifecycle,
    private_keys_encrypted_under_master_key,
    clients_crud,
    tokens_and_revocation,
    issuances_commit_together_or_not_at_all,
    a_writer_recovers_from_a_failed_or_abandoned_batch,
    jti_single_use,
    authorization_codes_are_redeemed_once,
    refresh_families_rotate_and_revoke,
    audit_in_order,
    audit_log_is_gapless_and_hashed,
    events_before_the_log_are_adopted_once,
    clients_of_the_previous_version_are_kept,
    data_survives_reopen,
    closed_store_is_unavailable,
);

/// `synchronous = NORMAL` is an explicit choice; the default stays FULL.
#[tokio::test]
async fn sqlite_durability_is_the_chosen_one() {
    use store::{SqliteDurability, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    for (name, durability, expected) in [
        ("full.db", SqliteDurability::Full, 2),
        ("normal.db", SqliteDurability::Normal, 1),
    ] {
        let path = dir.path().join(name);
        let options = StoreOptions::default().sqlite_durability(durability);
        let store = Store::open_with(path.to_str().unwrap(), &options)
            .await
            .unwrap();
        let Store::Sqlite(pool) = &store else {
            panic!("a file path opens SQLite")
        };
        // Every connection of the pool, not only the first, carries the setting.
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(sync, expected, "{durability:?}");
            conns.push(conn);
        }
        drop(conns);
        store.close().await;
    }
}

/// Failures to reach a database, which need no running server.
mod unavailable {
    use std::net::SocketAddr;
    use std::time::Duration;

    use store::{Store, StoreError, StoreOptions};

    /// Opens PostgreSQL at `addr`, which the calling test owns, with a password in the URL:
    /// the store is unavailable for the reason `expected` accepts (the driver error kept as
    /// the source), and the password shows nowhere in the error.
    async fn assert_postgres_unavailable(addr: SocketAddr, expected: fn(&sqlx::Error) -> bool) {
        let url = format!("postgres://postgres:hunter2@{addr}/test");
        let options = StoreOptions::default().acquire_timeout(Duration::from_millis(500));
        let err = Store::open_with(&url, &options).await.unwrap_err();
        assert_eq!(err.code(), "ERR_STORE_UNAVAILABLE", "{err:?}");
        let StoreError::Unavailable(source) = &err else {
            panic!("not Unavailable: {err:?}")
        };
        let driver = source.downcast_ref::<sqlx::Error>();
        assert!(
            driver.is_some_and(expected),
            "unavailable for another reason: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "password in error: {shown}");
    }

    // The address of each PostgreSQL case below stays bound by the test until it ends: a port
    // found free and let go could be taken by another process before the store connects.

    #[tokio::test]
    async fn postgres_on_a_port_that_refuses() {
        // A socket bound to the port but not listening: connections are refused, and nothing
        // else can bind the port meanwhile. The driver retries a refused connection until its
        // acquire timeout, then gives up.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        assert_postgres_unavailable(addr, |e| matches!(e, sqlx::Error::PoolTimedOut)).await;
        drop(socket);
    }

    #[tokio::test]
    async fn postgres_that_never_answers() {
        // Listening but never accepting: the kernel completes the TCP handshake, then the
        // driver waits for a server that never speaks, until its acquire timeout.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_postgres_unavailable(addr, |e| matches!(e, sqlx::Error::PoolTimedOut)).await;
        drop(listener);
    }

    #[tokio::test]
    async fn postgres_that_hangs_up() {
        // Accepts every connection and closes it before a byte of PostgreSQL's protocol: the
        // driver's handshake reads end of stream.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                drop(conn);
            }
        });
        assert_postgres_unavailable(addr, |e| {
            matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        })
        .await;
        server.abort();
    }

    #[tokio::test]
    async fn sqlite_under_a_file() {
        // The database's directory cannot be created: its would-be parent is a file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let path = file.join("sub").join("store.db");
        let err = Store::open(path.to_str().unwrap()).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        // The directory exists but the file cannot be opened as a database path.
        let err = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            file.join("store.db").display()
        ))
        .await
        .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }

    /// Set, for the child process of [`sqlite_in_a_read_only_directory`], to the directory to
    /// check.
    #[cfg(unix)]
    const READ_ONLY_DIR_ENV: &str = "TOKENGATE_TEST_READ_ONLY_DIR";

    /// The user and group id the check runs as where this process ignores permissions
    /// (`nobody` and `nogroup` on most systems; the ids need no account).
    #[cfg(unix)]
    const UNPRIVILEGED: u32 = 65534;

    /// A SQLite database in a directory the process may read but not write: unavailable.
    ///
    /// Root ignores a directory's mode (CAP_DAC_OVERRIDE), and CI runs as root, so there a
    /// mode of 0500 alone does not make the directory unwritable. The other ways to make a
    /// directory unwritable for root (a read-only mount, `chattr +i`) need privileges that a
    /// container usually lacks, and paths under /proc or /sys fail for reasons of their own,
    /// not as a read-only directory does. So when this process can write into the directory
    /// anyway, the check runs in a child process that has no such privilege: this same test
    /// binary, running only this test, as uid and gid 65534 (`Command::uid`, which drops
    /// root's capabilities), to whom the directory belongs. Either way the check runs and
    /// asserts; it is never skipped.
    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_in_a_read_only_directory() {
        use std::os::unix::fs::PermissionsExt;
        if let Some(ro) = std::env::var_os(READ_ONLY_DIR_ENV) {
            // The child process: its parent prepared the directory.
            assert_read_only_dir_unavailable(std::path::Path::new(&ro)).await;
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let probe = ro.join("probe");
        if std::fs::write(&probe, "x").is_err() {
            assert_read_only_dir_unavailable(&ro).await;
        } else {
            std::fs::remove_file(&probe).unwrap();
            check_as_unprivileged_user(dir.path(), &ro);
        }
        // So that the temporary directory can be removed by a user who is not root.
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// The check itself, in a directory this process can list but not write.
    #[cfg(unix)]
    async fn assert_read_only_dir_unavailable(ro: &std::path::Path) {
        // First that the premise holds, or the check would prove nothing: the directory can be
        // reached and listed, and not written.
        std::fs::read_dir(ro).unwrap_or_else(|e| panic!("{} cannot be listed: {e}", ro.display()));
        let probe = std::fs::write(ro.join("probe"), "x")
            .err()
            .unwrap_or_else(|| panic!("{} can be written", ro.display()));
        assert_eq!(
            probe.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{probe}"
        );
        let err = Store::open(ro.join("store.db").to_str().unwrap())
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        // And for that reason: the database file (created by the store, mode 0600, before
        // SQLite opens it) cannot be created.
        let StoreError::Unavailable(source) = &err else {
            unreachable!()
        };
        let kind = source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::PermissionDenied), "{err:?}");
    }

    /// Runs this test again, alone, in a child process as [`UNPRIVILEGED`], on `ro` (made its
    /// own, inside `parent`, which it may pass through), and asserts that the child ran it and
    /// passed.
    #[cfg(unix)]
    fn check_as_unprivileged_user(parent: &std::path::Path, ro: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::chown(ro, Some(UNPRIVILEGED), Some(UNPRIVILEGED)).unwrap_or_else(|e| {
            panic!(
                "cannot give {} to uid {UNPRIVILEGED} (this test, run as root, re-runs itself                  as that user, who must exist in this user namespace): {e}",
                ro.display()
            )
        });
        // A copy of this test binary inside `parent`, so the child needs no access to the
        // directories of the build (a clone under a private home directory, say).
        let exe = parent.join("store-test");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Its output goes to files opened here, which the child writes through the inherited
        // descriptors.
        let (out_path, err_path) = (parent.join("out.txt"), parent.join("err.txt"));
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "unavailable::sqlite_in_a_read_only_directory",
                "--test-threads=1",
            ])
            .env(READ_ONLY_DIR_ENV, ro)
            .current_dir(parent)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .uid(UNPRIVILEGED)
            .gid(UNPRIVILEGED)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} as uid {UNPRIVILEGED}: {e}", exe.display()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the check as uid {UNPRIVILEGED} did not end within 120 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let out = std::process::Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `--exact` with a name that no longer matches runs nothing, successfully: that must
        // fail too.
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "the check as uid {UNPRIVILEGED} did not pass ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn unknown_url_scheme_is_a_config_error() {
        for url in ["mysql://localhost/x", ""] {
            let err = Store::open(url).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::Config("expected postgres://…, sqlite://… or a file path", None)
                ),
                "{url}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_in_memory() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert!(store.use_jti("n", "j", 1).await.unwrap());
        assert!(!store.use_jti("n", "j", 1).await.unwrap());
    }
}
