//! Refresh tokens (RFC 6749 §6): families started by an authorization code, each token
//! stored as its hash and used once.

use crate::{with_pool, Result, Store, StoreError};

/// Inserts one refresh token through `$executor`.
macro_rules! insert_token {
    ($token:expr, $executor:expr) => {{
        let t: &RefreshToken = $token;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, idle_expires_at, \
             used_at, access_jti) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&t.token_hash)
        .bind(&t.family_id)
        .bind(t.issued_at)
        .bind(t.idle_expires_at)
        .bind(t.used_at)
        .execute($executor)
        .await
        .map_err(|e| StoreError::from(e).conflict_is("this refresh token exists"))?;
    }};
}

/// What one authorization code started: every refresh token rotated from it shares this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Its id: the hash of the authorization code that started it.
    pub family_id: String,
    /// The client it belongs to.
    pub client_id: String,
    /// The user.
    pub subject: String,
    /// The audience of its access tokens.
    pub audience: String,
    /// The scopes granted (space-separated); a refresh may ask for fewer.
    pub scope: String,
    /// Claims copied into its access tokens (a JSON object).
    pub claims: String,
    /// The DPoP key its tokens are bound to, if any.
    pub dpop_jkt: Option<String>,
    /// When the code was redeemed.
    pub created_at: i64,
    /// No rotation lives past this.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// One refresh token of a family, by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Its family.
    pub family_id: String,
    /// When it was issued.
    pub issued_at: i64,
    /// Unused until this, it expires (the idle timeout).
    pub idle_expires_at: i64,
    /// When it was used (rotated out), if it was.
    pub used_at: Option<i64>,
}

type Row = (
    String,
    String,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

impl Store {
    /// Starts a family with its first token. [`StoreError::Conflict`] if the family exists
    /// (its code was redeemed before).
    pub async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshToken,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO refresh_families (family_id, client_id, subject, audience, scope, \
                 claims, dpop_jkt, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
            )
            .bind(&family.family_id)
            .bind(&family.client_id)
            .bind(&family.subject)
            .bind(&family.audience)
            .bind(&family.scope)
            .bind(&family.claims)
            .bind(&family.dpop_jkt)
            .bind(family.created_at)
            .bind(family.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::from(e).conflict_is("this refresh family exists"))?;
            insert_token!(first, &mut *tx);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Adds a rotated token to its family.
    pub async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        with_pool!(self, pool => insert_token!(token, pool));
        Ok(())
    }

    /// The token with this hash and its family.
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, RefreshFamily)>> {
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT t.token_hash, t.family_id, t.issued_at, t.idle_expires_at, t.used_at, \
             f.client_id, f.subject, f.audience, f.scope, f.claims, f.dpop_jkt, f.created_at, \
             f.expires_at, f.revoked_at \
             FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id \
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|r| {
            let (hash, family_id, issued_at, idle, used_at, client_id, subject, audience) =
                (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7);
            let (scope, claims, dpop_jkt, created_at, expires_at, revoked_at) =
                (r.8, r.9, r.10, r.11, r.12, r.13);
            (
                RefreshToken {
                    token_hash: hash,
                    family_id: family_id.clone(),
                    issued_at,
                    idle_expires_at: idle,
                    used_at,
                },
                RefreshFamily {
                    family_id,
                    client_id,
                    subject,
                    audience,
                    scope,
                    claims,
                    dpop_jkt,
                    created_at,
                    expires_at,
                    revoked_at,
                },
            )
        }))
    }

    /// Rotates a token out at `now`: `true` for the one call that finds it unused, on any
    /// connection or node.
    pub async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated == 1)
    }

    /// Makes a spent token usable again (its rotation issued nothing), unless its family was
    /// revoked meanwhile.
    pub async fn unuse_refresh_token(&self, token_hash: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE refresh_tokens SET used_at = NULL WHERE token_hash = $1 AND family_id IN \
             (SELECT family_id FROM refresh_families WHERE revoked_at IS NULL)",
        )
        .bind(token_hash)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Notes the access token issued with a refresh token, so revoking the family revokes
    /// it too.
    pub async fn refresh_issued(&self, token_hash: &str, access_jti: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE refresh_tokens SET access_jti = $2 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .bind(access_jti)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Whether the family is revoked (or gone).
    pub async fn refresh_family_revoked(&self, family_id: &str) -> Result<bool> {
        let row: Option<(Option<i64>,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT revoked_at FROM refresh_families WHERE family_id = $1",
        )
        .bind(family_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.is_none_or(|(revoked,)| revoked.is_some()))
    }

    /// Revokes a family (once: the first revocation's time stays) and returns the `jti`s of
    /// the access tokens issued with its refresh tokens that are still live and unrevoked at
    /// `now`, for the caller to revoke.
    pub async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<Vec<String>> {
        let jtis: Vec<(String,)> = with_pool!(self, pool => {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = COALESCE(revoked_at, $2) \
                 WHERE family_id = $1",
            )
            .bind(family_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())?;
            // The access tokens still live and not yet revoked: a family refreshed for weeks
            // holds thousands of long-expired ones, which need nothing done.
            sqlx::query_as(
                "SELECT r.access_jti FROM refresh_tokens r JOIN tokens t ON t.jti = r.access_jti \
                 WHERE r.family_id = $1 AND t.expires_at > $2 AND t.revoked_at IS NULL",
            )
            .bind(family_id)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(jtis.into_iter().map(|(j,)| j).collect())
    }

    /// Revokes every family of a client or of a subject (whichever is `Some`); returns how
    /// many. Their access tokens are revoked by the token revocation of the same name.
    pub async fn revoke_refresh_families_of(
        &self,
        client_id: Option<&str>,
        subject: Option<&str>,
        now: i64,
    ) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE refresh_families SET revoked_at = $3 WHERE revoked_at IS NULL \
             AND (client_id = $1 OR subject = $2)",
        )
        .bind(client_id)
        .bind(subject)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Deletes the families (and their tokens) that expired before `before`; returns how
    /// many.
    pub async fn purge_refresh_families(&self, before: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM refresh_families WHERE expires_at < $1",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
