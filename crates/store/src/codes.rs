//! Authorization codes (RFC 6749 §4.1): stored by their hash, redeemed once.

use crate::{with_pool, Result, Store, StoreError};

/// An authorization code as stored: its SHA-256, never the code, and everything its
/// redemption is bound to and the access token will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI exactly as the authorization request named it.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// RFC 9449 §10: the DPoP key the token must be bound to.
    pub dpop_jkt: Option<String>,
    /// The signed-in user.
    pub subject: String,
    /// When the user signed in.
    pub auth_time: i64,
    /// The audience the token is for.
    pub audience: String,
    /// The scopes granted (space-separated).
    pub scope: String,
    /// Claims copied from the user's sign-in into the token (a JSON object).
    pub claims: String,
    /// When the code was issued.
    pub issued_at: i64,
    /// After this, the code is refused.
    pub expires_at: i64,
}

/// A stored code and whether it was redeemed already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCode {
    /// The code.
    pub code: AuthorizationCode,
    /// When it was redeemed, if it was.
    pub used_at: Option<i64>,
}

type CodeRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

const COLUMNS: &str = "code_hash, client_id, redirect_uri, code_challenge, dpop_jkt, subject, \
     auth_time, audience, scope, claims, issued_at, expires_at, used_at";

fn from_row(row: CodeRow) -> StoredCode {
    let (
        code_hash,
        client_id,
        redirect_uri,
        code_challenge,
        dpop_jkt,
        subject,
        auth_time,
        audience,
        scope,
        claims,
        issued_at,
        expires_at,
        used_at,
    ) = row;
    StoredCode {
        code: AuthorizationCode {
            code_hash,
            client_id,
            redirect_uri,
            code_challenge,
            dpop_jkt,
            subject,
            auth_time,
            audience,
            scope,
            claims,
            issued_at,
            expires_at,
        },
        used_at,
    }
}

impl Store {
    /// Stores a new code. [`StoreError::Conflict`] if its hash is stored already.
    pub async fn insert_code(&self, code: &AuthorizationCode) -> Result<()> {
        let sql = format!(
            "INSERT INTO authorization_codes ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(&code.code_hash)
            .bind(&code.client_id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.dpop_jkt)
            .bind(&code.subject)
            .bind(code.auth_time)
            .bind(&code.audience)
            .bind(&code.scope)
            .bind(&code.claims)
            .bind(code.issued_at)
            .bind(code.expires_at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(|e| StoreError::from(e).conflict_is("an authorization code with this hash exists"))
    }

    /// The code with this hash, used or not (until it is purged).
    pub async fn code(&self, code_hash: &str) -> Result<Option<StoredCode>> {
        let sql = format!("SELECT {COLUMNS} FROM authorization_codes WHERE code_hash = $1");
        let row: Option<CodeRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(code_hash)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(from_row))
    }

    /// Redeems a code at `now`: `true` for the one call that finds it unused and unexpired,
    /// on any connection or node; `false` for every other.
    pub async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE authorization_codes SET used_at = $2 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(code_hash)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated == 1)
    }

    /// Notes that a redeemed code was presented again, and returns the `jti` of the access
    /// token its redemption issued, if that was recorded already (else
    /// [`Store::code_issued`] will refuse to record it). `None` when no redeemed code has
    /// this hash.
    pub async fn code_replayed(&self, code_hash: &str, now: i64) -> Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = with_pool!(self, pool => sqlx::query_as(
            "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, $2) \
             WHERE code_hash = $1 AND used_at IS NOT NULL RETURNING access_jti",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(jti,)| jti))
    }

    /// Records the `jti` of the access token a redeemed code issued. `false` when the code
    /// was replayed meanwhile: the caller revokes that token (RFC 6749 §4.1.2).
    pub async fn code_issued(&self, code_hash: &str, jti: &str) -> Result<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE authorization_codes SET access_jti = $2 \
             WHERE code_hash = $1 AND used_at IS NOT NULL AND replayed_at IS NULL",
        )
        .bind(code_hash)
        .bind(jti)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated == 1)
    }

    /// Whether the code was presented again after its redemption.
    pub async fn code_was_replayed(&self, code_hash: &str) -> Result<bool> {
        let row: Option<(Option<i64>,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT replayed_at FROM authorization_codes WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(pool)
        .await?);
        Ok(row.is_some_and(|(replayed,)| replayed.is_some()))
    }

    /// Spends every unused code of a client or of a subject (whichever is `Some`), as their
    /// tokens are revoked; returns how many.
    pub async fn void_codes_of(
        &self,
        client_id: Option<&str>,
        subject: Option<&str>,
        now: i64,
    ) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE authorization_codes SET used_at = $3 WHERE used_at IS NULL \
             AND (client_id = $1 OR subject = $2)",
        )
        .bind(client_id)
        .bind(subject)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Deletes codes that expired before `before`; returns how many.
    pub async fn purge_codes(&self, before: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM authorization_codes WHERE expires_at < $1",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
