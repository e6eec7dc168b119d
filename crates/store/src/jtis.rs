//! Single-use identifiers: `private_key_jwt` assertion `jti`s, DPoP proof `jti`s.

use crate::{with_pool, Result, Store};

impl Store {
    /// Marks `jti` as used in `namespace` (e.g. `"client_assertion"`, `"dpop"`) until
    /// `expires_at`. `true` the first time, `false` if it was used before (a replay).
    ///
    /// One insert against a unique key: of two concurrent uses, on any number of connections
    /// or nodes, exactly one gets `true`. A used jti stays refused until
    /// [`Store::purge_used_jtis`] removes it after it expired; the caller rejects expired
    /// assertions and proofs by their own `exp`/`iat` before asking here.
    pub async fn use_jti(&self, namespace: &str, jti: &str, expires_at: i64) -> Result<bool> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO used_jtis (namespace, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, jti) DO NOTHING",
        )
        .bind(namespace)
        .bind(jti)
        .bind(expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// Forgets used jtis that expired before `before`; returns how many.
    pub async fn purge_used_jtis(&self, before: i64) -> Result<u64> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()),
        )
    }
}
