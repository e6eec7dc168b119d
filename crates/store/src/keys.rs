//! Signing and encryption keys and their lifecycle.

use std::fmt;

use zeroize::Zeroizing;

use crate::{unix_now, with_pool, MasterKey, Result, Store, StoreError};

/// What a key is for (JWK `use`, RFC 7517 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// Signing (`sig`).
    Sig,
    /// Encryption (`enc`).
    Enc,
    /// Signing the audit log's checkpoints (`audit`): never published in the JWKS, never
    /// removed (verifying an old checkpoint needs the key that signed it).
    Audit,
}

impl KeyUse {
    /// The stored (and JWK) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Sig => "sig",
            KeyUse::Enc => "enc",
            KeyUse::Audit => "audit",
        }
    }

    fn parse(text: &str) -> Result<KeyUse> {
        match text {
            "sig" => Ok(KeyUse::Sig),
            "enc" => Ok(KeyUse::Enc),
            "audit" => Ok(KeyUse::Audit),
            _ => Err(StoreError::Corrupt("unknown key use", None)),
        }
    }
}

/// Where a key is in its lifecycle. States only move forward, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Published in the JWKS, not yet signing (verifiers learn it first).
    Pending,
    /// Signing new tokens.
    Active,
    /// No longer signing; still published until every token it signed has expired.
    Retired,
    /// No longer published.
    Removed,
}

impl KeyState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }

    fn parse(text: &str) -> Result<KeyState> {
        match text {
            "pending" => Ok(KeyState::Pending),
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            "removed" => Ok(KeyState::Removed),
            _ => Err(StoreError::Corrupt("unknown key state", None)),
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key to insert. Built by [`NewKey::seal`], which encrypts the private JWK for its kid, so
/// a ciphertext can only be inserted under the kid it was sealed for.
#[derive(Clone, Debug)]
pub struct NewKey {
    kid: String,
    private_ciphertext: Vec<u8>,
    /// `sig` or `enc`.
    pub key_use: KeyUse,
    /// The JWA algorithm (`ES256`, `RSA-OAEP-256`, …).
    pub alg: String,
    /// The public JWK, as JSON.
    pub public_jwk: String,
    /// Initial state. Default: [`KeyState::Pending`].
    pub state: KeyState,
    /// Default: now.
    pub created_at: i64,
    /// When the key may start signing. Default: now.
    pub activate_at: i64,
}

impl NewKey {
    /// Encrypts `private_jwk` (the private JWK's JSON bytes) under `master` with `kid` as
    /// associated data. The public JWK must be JSON.
    pub fn seal(
        master: &MasterKey,
        kid: impl Into<String>,
        key_use: KeyUse,
        alg: impl Into<String>,
        public_jwk: impl Into<String>,
        private_jwk: &[u8],
    ) -> Result<NewKey> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(StoreError::Invalid("empty kid"));
        }
        let public_jwk = public_jwk.into();
        if serde_json::from_str::<serde_json::Value>(&public_jwk).is_err() {
            return Err(StoreError::Invalid("public JWK is not JSON"));
        }
        let private_ciphertext = master.seal_private_key(&kid, private_jwk)?;
        let now = unix_now();
        Ok(NewKey {
            kid,
            private_ciphertext,
            key_use,
            alg: alg.into(),
            public_jwk,
            state: KeyState::Pending,
            created_at: now,
            activate_at: now,
        })
    }

    /// The key id the private key was sealed for.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// A stored key. The private key stays encrypted until [`KeyRecord::private_jwk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id.
    pub kid: String,
    /// `sig` or `enc`.
    pub key_use: KeyUse,
    /// The JWA algorithm.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// The public JWK, as JSON.
    pub public_jwk: String,
    /// The sealed private JWK (format byte, nonce, ciphertext, tag).
    pub private_ciphertext: Vec<u8>,
    /// When the key was made.
    pub created_at: i64,
    /// When it may start signing.
    pub activate_at: i64,
    /// When its state last changed (its creation, until the first change).
    pub state_changed_at: i64,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
    /// When the longest-lived token it signed expires: it may be removed after this.
    pub remove_after: Option<i64>,
}

impl KeyRecord {
    /// Decrypts the private JWK (JSON bytes). [`StoreError::WrongMasterKey`] if `master` is not
    /// the key it was sealed with, or the ciphertext was altered or moved to another kid.
    pub fn private_jwk(&self, master: &MasterKey) -> Result<Zeroizing<Vec<u8>>> {
        master.open_private_key(&self.kid, &self.private_ciphertext)
    }
}

type KeyRow = (
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

const KEY_COLUMNS: &str = "kid, use, alg, state, public_jwk, private_ciphertext, created_at, \
     activate_at, state_changed_at, retired_at, remove_after";

fn key_from_row(row: KeyRow) -> Result<KeyRecord> {
    let (
        kid,
        key_use,
        alg,
        state,
        public_jwk,
        private_ciphertext,
        created_at,
        activate_at,
        state_changed_at,
        retired_at,
        remove_after,
    ) = row;
    Ok(KeyRecord {
        kid,
        key_use: KeyUse::parse(&key_use)?,
        alg,
        state: KeyState::parse(&state)?,
        public_jwk,
        private_ciphertext,
        created_at,
        activate_at,
        state_changed_at,
        retired_at,
        remove_after,
    })
}

impl Store {
    /// Inserts a key. [`StoreError::Conflict`] if the kid exists.
    pub async fn insert_key(&self, key: &NewKey) -> Result<()> {
        let retired_at = (key.state >= KeyState::Retired).then_some(key.created_at);
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO keys (kid, use, alg, state, public_jwk, private_ciphertext, created_at, \
             activate_at, state_changed_at, retired_at, remove_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9, NULL)",
        )
        .bind(&key.kid)
        .bind(key.key_use.as_str())
        .bind(&key.alg)
        .bind(key.state.as_str())
        .bind(&key.public_jwk)
        .bind(&key.private_ciphertext)
        .bind(key.created_at)
        .bind(key.activate_at)
        .bind(retired_at)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| StoreError::from(e).conflict_is("a key with this kid exists"))?;
        Ok(())
    }

    /// All keys (in every state), oldest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, kid");
        let rows: Vec<KeyRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        rows.into_iter().map(key_from_row).collect()
    }

    /// One key, if it exists.
    pub async fn key(&self, kid: &str) -> Result<Option<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE kid = $1");
        let row: Option<KeyRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).bind(kid).fetch_optional(pool).await?);
        row.map(key_from_row).transpose()
    }

    /// Moves a key forward in its lifecycle (pending → active → retired → removed; steps may
    /// be skipped, never reversed) and records `at` as the time of the change, and as
    /// `retired_at` when the key stops signing (retired, or removed without being retired).
    ///
    /// The change is a single conditional update, so when several nodes race to make the
    /// same change, one succeeds and the others get [`StoreError::Conflict`], as does any
    /// attempt to stay in or go back to an earlier state. [`StoreError::NotFound`] if there is
    /// no such key.
    pub async fn set_key_state(&self, kid: &str, state: KeyState, at: i64) -> Result<()> {
        // The states this one may be reached from: all earlier ones. Padded to three
        // parameters by repetition; none for `Pending`.
        let from: &[KeyState] = match state {
            KeyState::Pending => &[],
            KeyState::Active => &[KeyState::Pending],
            KeyState::Retired => &[KeyState::Pending, KeyState::Active],
            KeyState::Removed => &[KeyState::Pending, KeyState::Active, KeyState::Retired],
        };
        let updated = match from {
            [] => 0,
            [first, ..] => {
                let nth = |i: usize| from.get(i).unwrap_or(first).as_str();
                let retired_at = (state >= KeyState::Retired).then_some(at);
                with_pool!(self, pool => sqlx::query(
                    "UPDATE keys SET state = $2, state_changed_at = $3, \
                     retired_at = COALESCE(retired_at, $4) \
                     WHERE kid = $1 AND state IN ($5, $6, $7)",
                )
                .bind(kid)
                .bind(state.as_str())
                .bind(at)
                .bind(retired_at)
                .bind(nth(0))
                .bind(nth(1))
                .bind(nth(2))
                .execute(pool)
                .await?
                .rows_affected())
            }
        };
        if updated == 1 {
            return Ok(());
        }
        match self.key(kid).await? {
            None => Err(StoreError::NotFound("key")),
            Some(_) => Err(StoreError::Conflict(
                "the key is already in this state or a later one",
            )),
        }
    }

    /// Records when the longest-lived token signed by `kid` expires, after which the key may be
    /// removed. Never moves the time earlier: with several nodes signing, each reports its own
    /// longest token and the latest one wins. [`StoreError::NotFound`] if there is no such key.
    pub async fn set_remove_after(&self, kid: &str, ts: i64) -> Result<()> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE keys SET remove_after = CASE \
             WHEN remove_after IS NULL OR remove_after < $2 THEN $2 ELSE remove_after END \
             WHERE kid = $1",
        )
        .bind(kid)
        .bind(ts)
        .execute(pool)
        .await?
        .rows_affected());
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound("key"))
        }
    }
}
