//! The key ring: signing and encryption keys from the store, and their lifecycle.
//!
//! A key moves pending → active → retired → removed (DESIGN: "a new key is published in the
//! JWKS before it signs, and a retired one stays published until every token it signed has
//! expired"):
//!
//! - [`KeyRing::rotate`] adds a **pending** key, published at once, that starts signing at
//!   `now + prepublish`, so verifiers caching the JWKS learn it first;
//! - [`KeyRing::promote_due`] makes a due pending key **active** and **retires** the previous
//!   active one, which stays published with `remove_after = now + max_token_lifetime`;
//! - past `remove_after`, [`KeyRing::promote_due`] marks the retired key **removed** and it
//!   leaves the JWKS.
//!
//! Every change is made in the store first, then the ring is reloaded from it, so several
//! nodes sharing one store converge on the same keys. State changes are single conditional
//! updates in the store: a node that loses a race to make the same change ignores the
//! conflict.

use jose::jwe::{ContentEncryption, KeyManagement};
use jose::{Algorithm, Jwk, JwkSet};
use store::{KeyRecord, KeyState, KeyUse, MasterKey, NewKey, Store, StoreError};

use crate::error::{Error, Result};

/// What keys the ring makes, and how long tokens signed by them may live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Algorithm of new signing keys. Default: ES256.
    pub signing_alg: Algorithm,
    /// Key management of new encryption keys. Default: ECDH-ES+A256KW.
    pub encryption_alg: KeyManagement,
    /// Content encryption used when encrypting tokens. Default: A256GCM.
    pub encryption_enc: ContentEncryption,
    /// The longest lifetime of a token, in seconds: how long a retired key stays published.
    /// Default: 3600.
    pub max_token_lifetime: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            signing_alg: Algorithm::ES256,
            encryption_alg: KeyManagement::ECDH_ES_A256KW,
            encryption_enc: ContentEncryption::A256GCM,
            max_token_lifetime: 3600,
        }
    }
}

/// One key of the ring: its stored record (state, times; the private ciphertext stays in it,
/// sealed) and its decrypted private JWK.
#[derive(Debug)]
pub struct RingKey {
    /// The stored record.
    pub record: KeyRecord,
    /// The private JWK (zeroized when dropped, as jose keys are).
    pub jwk: Jwk,
}

/// The signing and encryption keys, loaded from the store.
///
/// A ring always has an active signing key and an active encryption key (loading fails
/// otherwise). When a race between nodes left two active keys of one use, the one activated
/// last (then created last, then the greatest kid) is used, the same on every node.
#[derive(Debug)]
pub struct KeyRing {
    policy: Policy,
    /// Keys other than the two below.
    others: Vec<RingKey>,
    signing: RingKey,
    encryption: RingKey,
    jwks: JwkSet,
    /// The private encryption keys of every state but removed: tokens encrypted to a key
    /// before it retired still decrypt.
    decryption: JwkSet,
}

impl KeyRing {
    /// Loads the ring, first creating an active signing key and an active encryption key
    /// when the store has none (a first boot: nothing can have cached a JWKS yet, so the keys
    /// sign at once). Refuses a master key other than the one the store first met
    /// ([`Store::verify_master_key`]) before creating anything.
    pub async fn load_or_init(
        store: &Store,
        master: &MasterKey,
        policy: &Policy,
        now: i64,
    ) -> Result<KeyRing> {
        store.verify_master_key(master).await?;
        let records = store.list_keys().await?;
        for key_use in [KeyUse::Sig, KeyUse::Enc, KeyUse::Audit] {
            let has_active = records
                .iter()
                .any(|r| r.key_use == key_use && r.state == KeyState::Active);
            if !has_active {
                let jwk = generate(policy, key_use)?;
                let mut new = seal(master, &jwk, key_use)?;
                new.state = KeyState::Active;
                new.created_at = now;
                new.activate_at = now;
                store.insert_key(&new).await?;
            }
        }
        KeyRing::load(store, master, policy).await
    }

    /// Loads the ring as the store holds it. [`Error::NoActiveKey`] if there is no active
    /// signing or encryption key; [`StoreError::WrongMasterKey`] (in [`Error::Store`]) if
    /// `master` does not decrypt the keys.
    pub async fn load(store: &Store, master: &MasterKey, policy: &Policy) -> Result<KeyRing> {
        let mut keys = Vec::new();
        for record in store.list_keys().await? {
            if record.state == KeyState::Removed {
                continue;
            }
            let private = record.private_jwk(master)?;
            let jwk = Jwk::from_json(&private).map_err(|_| Error::BadKey("private JWK"))?;
            if jwk.kid() != Some(record.kid.as_str()) {
                return Err(Error::BadKey("the JWK's kid differs from its row's"));
            }
            keys.push(RingKey { record, jwk });
        }
        let sig_kid = newest_active(&keys, KeyUse::Sig).ok_or(Error::NoActiveKey("sig"))?;
        let enc_kid = newest_active(&keys, KeyUse::Enc).ok_or(Error::NoActiveKey("enc"))?;
        // Symmetric keys have no public half to publish; audit keys verify checkpoints,
        // not tokens, and are published on their own.
        let public = keys
            .iter()
            .filter(|k| !k.jwk.is_symmetric() && k.record.key_use != KeyUse::Audit)
            .map(|k| k.jwk.to_public())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let jwks = JwkSet::new(public)?;
        let decryption = decryption_set(&keys)?;
        let (mut signing, mut encryption, mut others) = (None, None, Vec::new());
        for key in keys {
            if key.record.kid == sig_kid {
                signing = Some(key);
            } else if key.record.kid == enc_kid {
                encryption = Some(key);
            } else {
                others.push(key);
            }
        }
        let signing = signing.ok_or(Error::NoActiveKey("sig"))?;
        let encryption = encryption.ok_or(Error::NoActiveKey("enc"))?;
        if signing.jwk.signing_algorithm().is_none() {
            return Err(Error::BadKey(
                "the active signing key names no JWS algorithm",
            ));
        }
        Ok(KeyRing {
            policy: *policy,
            others,
            signing,
            encryption,
            jwks,
            decryption,
        })
    }

    /// The policy the ring was loaded with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Every key not removed: the active signing key, the active encryption key, then the
    /// others (pending, retired) oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &RingKey> {
        [&self.signing, &self.encryption]
            .into_iter()
            .chain(self.others.iter())
    }

    /// The key with this kid, if the ring holds it (in any state but removed).
    pub fn key(&self, kid: &str) -> Option<&RingKey> {
        self.keys().find(|k| k.record.kid == kid)
    }

    /// The newest active audit key, if the ring has one (a ring loaded before any node
    /// of this version started has none).
    pub fn active_audit(&self) -> Option<&RingKey> {
        let kid = newest_active_of(self.keys(), KeyUse::Audit)?;
        self.key(&kid)
    }

    /// Every audit key, whatever its state: each signed checkpoints once.
    pub fn audit_keys(&self) -> impl Iterator<Item = &RingKey> {
        self.keys().filter(|k| k.record.key_use == KeyUse::Audit)
    }

    /// The public halves of the pending, active and retired keys, signing and encryption:
    /// pending so caches learn a key before it signs, retired so tokens it signed still
    /// verify. Symmetric keys are never published.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The private encryption keys, to decrypt tokens encrypted to the service.
    pub fn decryption_keys(&self) -> &JwkSet {
        &self.decryption
    }

    /// The key that signs new tokens.
    pub fn active_signing(&self) -> &Jwk {
        &self.signing.jwk
    }

    /// The active encryption key (tokens encrypted to the service itself).
    pub fn encryption_key(&self) -> &Jwk {
        &self.encryption.jwk
    }

    /// The algorithm the active signing key signs with.
    pub fn signing_alg(&self) -> Algorithm {
        self.active_signing()
            .signing_algorithm()
            .unwrap_or(self.policy.signing_alg)
    }

    /// Adds a pending key for `key_use`, published now and due to become active at
    /// `now + prepublish` (seconds; choose at least the JWKS cache lifetime of verifiers),
    /// then reloads the ring. Returns the new kid. The key starts signing only when
    /// [`KeyRing::promote_due`] runs at or after that time.
    pub async fn rotate(
        &mut self,
        store: &Store,
        master: &MasterKey,
        key_use: KeyUse,
        now: i64,
        prepublish: u64,
    ) -> Result<String> {
        let jwk = generate(&self.policy, key_use)?;
        let mut new = seal(master, &jwk, key_use)?;
        new.state = KeyState::Pending;
        new.created_at = now;
        new.activate_at = now.saturating_add(secs(prepublish));
        let kid = new.kid().to_owned();
        store.insert_key(&new).await?;
        *self = KeyRing::load(store, master, &self.policy).await?;
        Ok(kid)
    }

    /// Moves the lifecycle forward at `now`, in the store, then reloads the ring:
    ///
    /// 1. each pending key whose `activate_at` has passed becomes active (oldest first), and
    ///    every other active key of its use becomes retired, with
    ///    `remove_after = now + max_token_lifetime`;
    /// 2. each retired key whose `remove_after` has passed becomes removed (unpublished).
    ///
    /// Returns whether anything changed. Changes another node made first are skipped.
    pub async fn promote_due(
        &mut self,
        store: &Store,
        master: &MasterKey,
        now: i64,
    ) -> Result<bool> {
        let mut changed = false;
        let records = store.list_keys().await?;
        let mut due: Vec<&KeyRecord> = records
            .iter()
            .filter(|r| r.state == KeyState::Pending && r.activate_at <= now)
            .collect();
        due.sort_by(|a, b| order(a).cmp(&order(b)));
        let remove_after = now.saturating_add(secs(self.policy.max_token_lifetime));
        for new in &due {
            // Activate first, retire after: there is an active key at every moment.
            changed |= lenient(store.set_key_state(&new.kid, KeyState::Active, now).await)?;
            let current = store.list_keys().await?;
            for old in current.iter().filter(|r| {
                r.key_use == new.key_use && r.state == KeyState::Active && r.kid != new.kid
            }) {
                changed |= lenient(store.set_key_state(&old.kid, KeyState::Retired, now).await)?;
                // A retired audit key stays: no `remove_after`, so it is never removed.
                if old.key_use != KeyUse::Audit {
                    store.set_remove_after(&old.kid, remove_after).await?;
                }
            }
        }
        for old in
            store.list_keys().await?.iter().filter(|r| {
                r.state == KeyState::Retired && r.remove_after.is_some_and(|t| t <= now)
            })
        {
            changed |= lenient(store.set_key_state(&old.kid, KeyState::Removed, now).await)?;
        }
        *self = KeyRing::load(store, master, &self.policy).await?;
        Ok(changed)
    }
}

/// The encryption keys as a set. A set cannot mix symmetric and asymmetric keys, so after a
/// policy change between the two, only keys of the active key's kind are kept.
fn decryption_set(keys: &[RingKey]) -> Result<JwkSet> {
    let symmetric = keys
        .iter()
        .filter(|k| k.record.key_use == KeyUse::Enc && k.record.state == KeyState::Active)
        .any(|k| k.jwk.is_symmetric());
    let copies = keys
        .iter()
        .filter(|k| k.record.key_use == KeyUse::Enc && k.jwk.is_symmetric() == symmetric)
        .map(|k| Jwk::from_map(&k.jwk.to_map()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(JwkSet::new(copies)?)
}

/// `Ok(true)` if the change was made, `Ok(false)` if another node made it first.
fn lenient(result: store::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// Lifecycle order of keys of one state: activated, then created, then kid.
fn order(r: &KeyRecord) -> (i64, i64, &str) {
    (r.activate_at, r.created_at, r.kid.as_str())
}

/// The kid of the active key of `key_use` activated last.
fn newest_active(keys: &[RingKey], key_use: KeyUse) -> Option<String> {
    newest_active_of(keys.iter(), key_use)
}

fn newest_active_of<'a>(
    keys: impl Iterator<Item = &'a RingKey>,
    key_use: KeyUse,
) -> Option<String> {
    keys.filter(|k| k.record.key_use == key_use && k.record.state == KeyState::Active)
        .max_by(|a, b| order(&a.record).cmp(&order(&b.record)))
        .map(|k| k.record.kid.clone())
}

fn generate(policy: &Policy, key_use: KeyUse) -> Result<Jwk> {
    Ok(match key_use {
        KeyUse::Sig => {
            let jwk = Jwk::generate(policy.signing_alg, None, None)?;
            let mut map = jwk.to_map();
            map.insert("use".into(), "sig".into());
            Jwk::from_map(&map)?
        }
        // Ed25519, as C2SP signed notes require.
        KeyUse::Audit => Jwk::generate(Algorithm::EdDSA, None, None)?,
        KeyUse::Enc => {
            // A `dir` key is sized by its content encryption; other algorithms ignore `enc`.
            let enc = policy
                .encryption_alg
                .is_direct()
                .then_some(policy.encryption_enc);
            Jwk::generate_for_encryption(policy.encryption_alg, enc, None, None, None)?
        }
    })
}

fn seal(master: &MasterKey, jwk: &Jwk, key_use: KeyUse) -> Result<NewKey> {
    let kid = jwk.kid().ok_or(Error::BadKey("generated key has no kid"))?;
    let alg = jwk.alg().ok_or(Error::BadKey("generated key has no alg"))?;
    let public = if jwk.is_symmetric() {
        // No public half: record the key's description only.
        let mut map = jwk.to_map();
        map.remove("k");
        serde_json::Value::Object(map).to_string()
    } else {
        jwk.to_public()?.to_json()
    };
    let private = zeroize::Zeroizing::new(jwk.to_json());
    Ok(NewKey::seal(
        master,
        kid,
        key_use,
        alg,
        public,
        private.as_bytes(),
    )?)
}
