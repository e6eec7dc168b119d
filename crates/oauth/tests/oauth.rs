//! Key ring and minting against SQLite in a temporary directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use jose::jwe::DecryptOptions;
use jose::jwt::Validation;
use jose::{Algorithm, ErrorCode, Jwk};
use oauth::{mint, record, EncryptTo, Error, Grant, KeyRing, Policy};
use store::{KeyState, KeyUse, MasterKey, Store, StoreError};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://issuer.example";
const AUD: &str = "https://api.example";

struct Ctx {
    url: String,
    _dir: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("tg.db").to_string_lossy().into_owned();
        Ctx { url, _dir: dir }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

fn master() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

fn validation(at: i64) -> Validation {
    Validation::new()
        .algorithms([Algorithm::ES256])
        .issuer(ISS)
        .audience(AUD)
        .typ("at+jwt")
        .at_time(at)
}

fn states(ring: &KeyRing, key_use: KeyUse) -> Vec<(String, KeyState)> {
    let mut v: Vec<_> = ring
        .keys()
        .filter(|k| k.record.key_use == key_use)
        .map(|k| (k.record.kid.clone(), k.record.state))
        .collect();
    v.sort();
    v
}

fn kid(jwk: &Jwk) -> String {
    jwk.kid().unwrap().to_owned()
}

fn published(ring: &KeyRing) -> Vec<String> {
    ring.jwks().keys().iter().map(kid).collect()
}

/// The JOSE error of a refusal, which must be one: a refusal for another reason fails.
fn jose_refusal<T: std::fmt::Debug>(res: jose::Result<T>, code: ErrorCode) -> jose::Error {
    let err = res.unwrap_err();
    assert_eq!(err.code(), code, "{err:?}");
    err
}

#[tokio::test]
async fn first_boot_creates_keys_and_reload_keeps_them() {
    let ctx = Ctx::new();
    let policy = Policy::default();
    let store = ctx.open().await;
    let ring = KeyRing::load_or_init(&store, &master(), &policy, NOW)
        .await
        .unwrap();
    let records = store.list_keys().await.unwrap();
    assert_eq!(records.len(), 3);
    for (use_, alg) in [
        (KeyUse::Sig, "ES256"),
        (KeyUse::Enc, "ECDH-ES+A256KW"),
        (KeyUse::Audit, "EdDSA"),
    ] {
        let r: Vec<_> = records.iter().filter(|r| r.key_use == use_).collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].state, KeyState::Active);
        assert_eq!(r[0].alg, alg);
        assert_eq!(r[0].activate_at, NOW);
        // Private halves are sealed, public halves are public.
        assert!(!r[0].public_jwk.contains("\"d\""));
    }
    assert!(ring.active_signing().is_private());
    assert_eq!(ring.active_signing().key_use(), Some("sig"));
    assert_eq!(ring.encryption_key().key_use(), Some("enc"));
    let sig = kid(ring.active_signing());
    let enc = kid(ring.encryption_key());
    let mut jwks = published(&ring);
    jwks.sort();
    let mut both = vec![sig.clone(), enc.clone()];
    both.sort();
    assert_eq!(jwks, both);
    assert!(ring.jwks().keys().iter().all(|k| !k.is_private()));
    // The audit key signs checkpoints, not tokens: not in the JWKS.
    let audit = ring.active_audit().unwrap();
    assert!(!jwks.contains(&audit.record.kid));
    assert_eq!(ring.audit_keys().count(), 1);
    store.close().await;

    // Reopen: same keys, nothing new.
    let store = ctx.open().await;
    let again = KeyRing::load_or_init(&store, &master(), &policy, NOW + 10)
        .await
        .unwrap();
    assert_eq!(kid(again.active_signing()), sig);
    assert_eq!(kid(again.encryption_key()), enc);
    assert_eq!(store.list_keys().await.unwrap().len(), 3);
}

#[tokio::test]
async fn wrong_master_key_fails_to_load() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    KeyRing::load_or_init(&store, &master(), &Policy::default(), NOW)
        .await
        .unwrap();
    let other = MasterKey::from_bytes([8; 32]);
    let err = KeyRing::load_or_init(&store, &other, &Policy::default(), NOW)
        .await
        .unwrap_err();
    assert!(err.is_wrong_master_key(), "{err:?}");
    assert_eq!(err.code(), "ERR_OAUTH_STORE");
    // `load` (which skips the check value) fails on the ciphertexts too, and nothing was added.
    let err = KeyRing::load(&store, &other, &Policy::default())
        .await
        .unwrap_err();
    assert!(err.is_wrong_master_key(), "{err:?}");
    assert_eq!(store.list_keys().await.unwrap().len(), 3);
}

#[tokio::test]
async fn load_without_keys_is_no_active_key() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let err = KeyRing::load(&store, &master(), &Policy::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoActiveKey("sig")), "{err:?}");
    assert_eq!(err.code(), "ERR_OAUTH_NO_ACTIVE_KEY");
}

#[tokio::test]
async fn minted_token_verifies_with_every_rfc9068_claim_and_is_recorded() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let ring = KeyRing::load_or_init(&store, &master(), &Policy::default(), NOW)
        .await
        .unwrap();
    let grant = Grant::new(ISS, "client-1", "user-9", AUD)
        .scope(["read", "write"])
        .lifetime(600);
    let minted = mint(&ring, &grant, NOW).unwrap();
    assert_eq!(minted.token.split('.').count(), 3);
    assert_eq!(minted.expires_at, NOW + 600);

    let jwt = jose::jwt::verify(&minted.token, ring.jwks(), &validation(NOW + 1)).unwrap();
    assert_eq!(jwt.header.typ(), Some("at+jwt"));
    assert_eq!(jwt.header.kid(), Some(kid(ring.active_signing()).as_str()));
    assert_eq!(jwt.header.alg(), Algorithm::ES256);
    let c = &jwt.claims;
    assert_eq!(c.iss(), Some(ISS));
    assert_eq!(c.sub(), Some("user-9"));
    assert_eq!(c.aud(), [AUD.to_owned()]);
    assert_eq!(c.exp(), Some(NOW + 600));
    assert_eq!(c.iat(), Some(NOW));
    assert_eq!(c.jti(), Some(minted.jti.as_str()));
    assert_eq!(c.get("client_id").unwrap().unwrap(), "client-1");
    assert_eq!(c.get("scope").unwrap().unwrap(), "read write");
    // 128 random bits in base64url, unique per token.
    assert_eq!(jose::b64::decode(&minted.jti).unwrap().len(), 16);
    let second = mint(&ring, &grant, NOW).unwrap();
    assert_ne!(second.jti, minted.jti);
    // Expired at exp.
    jose_refusal(
        jose::jwt::verify(&minted.token, ring.jwks(), &validation(NOW + 601)),
        ErrorCode::JwtExpired,
    );

    record(&store, &minted, &grant).await.unwrap();
    let stored = store.token(&minted.jti).await.unwrap().unwrap();
    assert_eq!(stored.jti, minted.jti);
    assert_eq!(stored.client_id, "client-1");
    assert_eq!(stored.subject, "user-9");
    assert_eq!(stored.audience, AUD);
    assert_eq!(stored.scope, "read write");
    assert_eq!(stored.issued_at, NOW);
    assert_eq!(stored.expires_at, NOW + 600);
    assert_eq!(stored.revoked_at, None);
    // Recording the same jti twice is refused, as a conflict on the jti.
    let err = record(&store, &minted, &grant).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store(StoreError::Conflict("a token with this jti exists"))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn empty_scope_is_omitted_and_bad_grants_are_refused() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let ring = KeyRing::load_or_init(&store, &master(), &Policy::default(), NOW)
        .await
        .unwrap();
    let minted = mint(&ring, &Grant::new(ISS, "c", "c", AUD), NOW).unwrap();
    assert!(!minted.claims.contains_key("scope"));
    let jwt = jose::jwt::verify(&minted.token, ring.jwks(), &validation(NOW)).unwrap();
    assert!(jwt.claims.get("scope").unwrap().is_none());

    let lifetime = "lifetime must be between 1 second and the policy's max_token_lifetime";
    let scope = "a scope token is empty or has a bad character";
    for (grant, reason) in [
        (Grant::new("", "c", "c", AUD), "empty issuer"),
        (Grant::new(ISS, "c", "c", ""), "empty audience"),
        (Grant::new(ISS, "c", "", AUD), "empty subject"),
        (Grant::new(ISS, "", "c", AUD), "empty client_id"),
        (Grant::new(ISS, "c", "c", AUD).lifetime(0), lifetime),
        (Grant::new(ISS, "c", "c", AUD).lifetime(3601), lifetime),
        (Grant::new(ISS, "c", "c", AUD).scope(["a b"]), scope),
        (Grant::new(ISS, "c", "c", AUD).scope([""]), scope),
        (Grant::new(ISS, "c", "c", AUD).scope(["q\"uote"]), scope),
    ] {
        let err = mint(&ring, &grant, NOW).unwrap_err();
        assert_eq!(err.code(), "ERR_OAUTH_INVALID_GRANT", "{grant:?}");
        assert!(
            matches!(err, Error::InvalidGrant(r) if r == reason),
            "{grant:?}: {err:?}, expected {reason:?}"
        );
    }
}

#[tokio::test]
async fn encrypted_token_decrypts_with_the_ring_key() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let policy = Policy::default();
    let ring = KeyRing::load_or_init(&store, &master(), &policy, NOW)
        .await
        .unwrap();
    let grant = Grant::new(ISS, "client-1", "user-9", AUD)
        .scope(["read"])
        .encrypt(EncryptTo::Own);
    let minted = mint(&ring, &grant, NOW).unwrap();
    assert_eq!(minted.token.split('.').count(), 5);
    let header = jose::jwe::compact::decode_header_unverified(&minted.token).unwrap();
    assert_eq!(header["cty"], "JWT");
    assert_eq!(header["alg"], "ECDH-ES+A256KW");
    assert_eq!(header["enc"], "A256GCM");
    assert_eq!(header["kid"], kid(ring.encryption_key()).as_str());

    let jwt = jose::jwt::decrypt_and_verify(
        &minted.token,
        ring.encryption_key(),
        &DecryptOptions::new([policy.encryption_alg]),
        ring.jwks(),
        &validation(NOW + 1),
    )
    .unwrap();
    assert_eq!(jwt.claims.jti(), Some(minted.jti.as_str()));
    assert_eq!(jwt.claims.get("scope").unwrap().unwrap(), "read");
    // Not readable as a plain JWS: refused as the JWE it is.
    let err = jose_refusal(
        jose::jwt::verify(&minted.token, ring.jwks(), &validation(NOW)),
        ErrorCode::JwtInvalid,
    );
    assert!(err.reason().contains("a JWE (five segments)"), "{err:?}");

    // To an audience's own key (RSA-OAEP-256 from its `alg`).
    let audience_key = Jwk::generate_for_encryption(
        jose::jwe::KeyManagement::RSA_OAEP_256,
        None,
        None,
        None,
        None,
    )
    .unwrap();
    let grant = Grant::new(ISS, "client-1", "user-9", AUD).encrypt(EncryptTo::Key(
        std::sync::Arc::new(audience_key.to_public().unwrap()),
    ));
    let minted = mint(&ring, &grant, NOW).unwrap();
    let jwt = jose::jwt::decrypt_and_verify(
        &minted.token,
        &audience_key,
        &DecryptOptions::new([jose::jwe::KeyManagement::RSA_OAEP_256]),
        ring.jwks(),
        &validation(NOW),
    )
    .unwrap();
    assert_eq!(jwt.claims.sub(), Some("user-9"));
    // The ring's own key cannot open it: an EC key does not do RSA-OAEP-256.
    let err = jose_refusal(
        jose::jwt::decrypt_and_verify(
            &minted.token,
            ring.encryption_key(),
            &DecryptOptions::from_key(),
            ring.jwks(),
            &validation(NOW),
        ),
        ErrorCode::AlgNotAllowed,
    );
    assert!(
        err.reason()
            .starts_with("RSA-OAEP-256 does not fit the key"),
        "{err:?}"
    );
}

#[tokio::test]
async fn rotation_prepublishes_then_promotes_then_removes() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let m = master();
    let policy = Policy {
        max_token_lifetime: 600,
        ..Policy::default()
    };
    let mut ring = KeyRing::load_or_init(&store, &m, &policy, NOW)
        .await
        .unwrap();
    let old = kid(ring.active_signing());
    let enc = kid(ring.encryption_key());
    let before = mint(&ring, &Grant::new(ISS, "c", "c", AUD).lifetime(600), NOW).unwrap();

    // Pending: published, does not sign.
    let new = ring
        .rotate(&store, &m, KeyUse::Sig, NOW, 300)
        .await
        .unwrap();
    assert_ne!(new, old);
    assert!(published(&ring).contains(&new));
    assert_eq!(kid(ring.active_signing()), old);
    let rec = store.key(&new).await.unwrap().unwrap();
    assert_eq!(rec.state, KeyState::Pending);
    assert_eq!(rec.activate_at, NOW + 300);
    let t = mint(&ring, &Grant::new(ISS, "c", "c", AUD), NOW + 1).unwrap();
    assert_eq!(t.kid, old);

    // Not yet due: nothing changes.
    assert!(!ring.promote_due(&store, &m, NOW + 299).await.unwrap());
    assert_eq!(kid(ring.active_signing()), old);
    assert_eq!(
        store.key(&new).await.unwrap().unwrap().state,
        KeyState::Pending
    );

    // Due: the new key signs, the old one is retired and still published.
    let at = NOW + 300;
    assert!(ring.promote_due(&store, &m, at).await.unwrap());
    assert_eq!(kid(ring.active_signing()), new);
    let mut sig_states = states(&ring, KeyUse::Sig);
    let mut expect = vec![
        (old.clone(), KeyState::Retired),
        (new.clone(), KeyState::Active),
    ];
    sig_states.sort();
    expect.sort();
    assert_eq!(sig_states, expect);
    let old_rec = store.key(&old).await.unwrap().unwrap();
    assert_eq!(old_rec.retired_at, Some(at));
    assert_eq!(old_rec.remove_after, Some(at + 600));
    assert!(published(&ring).contains(&old));
    assert!(published(&ring).contains(&new));
    // The encryption key is untouched.
    assert_eq!(kid(ring.encryption_key()), enc);

    let after = mint(&ring, &Grant::new(ISS, "c", "c", AUD), at).unwrap();
    assert_eq!(after.kid, new);
    // Both the token signed before and the one after verify against the JWKS.
    jose::jwt::verify(&before.token, ring.jwks(), &validation(at)).unwrap();
    jose::jwt::verify(&after.token, ring.jwks(), &validation(at)).unwrap();

    // A reload (another node) sees the same.
    let other = KeyRing::load(&store, &m, &policy).await.unwrap();
    assert_eq!(kid(other.active_signing()), new);

    // Past remove_after: the retired key is removed and unpublished.
    assert!(!ring.promote_due(&store, &m, at + 599).await.unwrap());
    assert!(published(&ring).contains(&old));
    assert!(ring.promote_due(&store, &m, at + 600).await.unwrap());
    assert!(!published(&ring).contains(&old));
    assert_eq!(
        store.key(&old).await.unwrap().unwrap().state,
        KeyState::Removed
    );
    assert_eq!(kid(ring.active_signing()), new);
}

#[tokio::test]
async fn encryption_key_rotates_too() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let m = master();
    let mut ring = KeyRing::load_or_init(&store, &m, &Policy::default(), NOW)
        .await
        .unwrap();
    let old = kid(ring.encryption_key());
    let sig = kid(ring.active_signing());
    let new = ring.rotate(&store, &m, KeyUse::Enc, NOW, 0).await.unwrap();
    assert_eq!(kid(ring.encryption_key()), old);
    assert!(ring.promote_due(&store, &m, NOW).await.unwrap());
    assert_eq!(kid(ring.encryption_key()), new);
    assert_eq!(kid(ring.active_signing()), sig);
    assert_eq!(ring.key(&old).unwrap().record.state, KeyState::Retired);
}

/// An audit key rotates like the others, but a retired one is never removed: verifying an
/// old checkpoint needs the key that signed it.
#[tokio::test]
async fn retired_audit_keys_are_kept() {
    let ctx = Ctx::new();
    let store = ctx.open().await;
    let m = master();
    let mut ring = KeyRing::load_or_init(&store, &m, &Policy::default(), NOW)
        .await
        .unwrap();
    let old = ring.active_audit().unwrap().record.kid.clone();
    let new = ring
        .rotate(&store, &m, KeyUse::Audit, NOW, 0)
        .await
        .unwrap();
    ring.promote_due(&store, &m, NOW + 1).await.unwrap();
    assert_eq!(ring.active_audit().unwrap().record.kid, new);
    let forever = NOW + 100 * 365 * 86_400;
    ring.promote_due(&store, &m, forever).await.unwrap();
    let kept = store.list_keys().await.unwrap();
    let old = kept.iter().find(|k| k.kid == old).unwrap();
    assert_eq!((old.state, old.remove_after), (KeyState::Retired, None));
    assert_eq!(ring.audit_keys().count(), 2);
    // Neither is published with the token keys.
    assert!(!published(&ring).contains(&new));
}
