//! Refresh tokens (RFC 6749 §6; RFC 9700 §4.14; RFC 9449 §5): opaque, stored as their
//! SHA-256, rotated on every use. Every refresh token descends from one authorization code
//! (its family); a token used a second time (stolen, or replayed by an attacker racing the
//! client) revokes the whole family and the access tokens issued with it. A family bound to
//! a DPoP key is refreshed only with a proof by that key. No rotation outlives the family's
//! absolute lifetime; a token unused for the idle time expires.

use serde_json::{Map, Value};
use store::{Client, RefreshFamily, RefreshToken};

use crate::form::Params;
use crate::mint::random_b64;
use crate::protocol::{ErrorKind, ErrorResponse};
use crate::service::Service;
use crate::token::{sha256_hex, Target};

/// `[token_service.refresh]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSettings {
    /// A family's absolute lifetime from the code's redemption (seconds; default 30 days).
    pub lifetime: u64,
    /// A refresh token unused this long expires (seconds; default 7 days).
    pub idle: u64,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        RefreshSettings {
            lifetime: 30 * 86_400,
            idle: 7 * 86_400,
        }
    }
}

/// A refresh token to store once the access token beside it is recorded.
#[derive(Debug)]
pub(crate) enum NewRefresh {
    /// The first of a family (the code's redemption).
    First(RefreshFamily, RefreshToken),
    /// A rotation: the new token, and the hash of the one it replaces (spent at `now`).
    Rotated(RefreshToken, String),
}

impl NewRefresh {
    fn token(&self) -> &RefreshToken {
        match self {
            NewRefresh::First(_, t) | NewRefresh::Rotated(t, _) => t,
        }
    }

    /// The hash of the token a rotation spent.
    pub(crate) fn previous(&self) -> Option<&str> {
        match self {
            NewRefresh::First(..) => None,
            NewRefresh::Rotated(_, previous) => Some(previous),
        }
    }
}

/// What a refresh grant found: the family's user and grant, and the scopes asked for.
pub(crate) struct Refreshed<'s> {
    pub family: RefreshFamily,
    pub scope: Vec<String>,
    pub user_claims: Map<String, Value>,
    pub next: NewRefresh,
    /// The family's audience as the token service serves it now.
    pub target: Target<'s>,
}

fn invalid_grant(why: &str) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidGrant, why.to_owned())
}

fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Service {
    /// A fresh refresh token of `family_id` at `now`, expiring when idle or with the family.
    /// Returns the token and what is stored of it.
    pub(crate) fn new_refresh_token(
        &self,
        family_id: &str,
        family_expires_at: i64,
        now: i64,
    ) -> Result<(String, RefreshToken), ErrorResponse> {
        let token = random_b64(32)?;
        let idle = now.saturating_add(seconds(self.settings.refresh.idle));
        let stored = RefreshToken {
            token_hash: sha256_hex(&token),
            family_id: family_id.to_owned(),
            issued_at: now,
            idle_expires_at: idle.min(family_expires_at),
            used_at: None,
        };
        Ok((token, stored))
    }

    /// The family a redeemed code starts, with its first token.
    pub(crate) fn first_refresh(
        &self,
        family: FamilyOf<'_>,
        now: i64,
    ) -> Result<(String, NewRefresh), ErrorResponse> {
        let expires_at = now.saturating_add(seconds(self.settings.refresh.lifetime));
        let (token, first) = self.new_refresh_token(family.code_hash, expires_at, now)?;
        let family = RefreshFamily {
            family_id: family.code_hash.to_owned(),
            client_id: family.client_id.to_owned(),
            subject: family.subject.to_owned(),
            audience: family.audience.to_owned(),
            scope: family.scope.join(" "),
            claims: Value::Object(family.claims.clone()).to_string(),
            dpop_jkt: family.jkt.map(str::to_owned),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        Ok((token, NewRefresh::First(family, first)))
    }

    /// RFC 6749 §6: rotates the presented refresh token of `client` for a new one; `jkt` is
    /// the DPoP key the request proved (checked by the caller). Returns the new token and
    /// what the access token carries.
    pub(crate) async fn refresh(
        &self,
        params: &Params,
        client: &Client,
        jkt: Option<&str>,
        now: i64,
    ) -> Result<(String, Refreshed<'_>), ErrorResponse> {
        let presented = params.require("refresh_token")?;
        let token_hash = sha256_hex(presented);
        let (token, family) = self
            .store
            .refresh_token(&token_hash)
            .await?
            .ok_or_else(|| invalid_grant("the refresh token is unknown or expired"))?;
        if family.client_id != client.client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if family.revoked_at.is_some() {
            return Err(invalid_grant("the refresh token is revoked"));
        }
        if token.used_at.is_some() {
            return Err(self.refresh_reused(&family.family_id, now).await);
        }
        if family.expires_at <= now || token.idle_expires_at <= now {
            return Err(invalid_grant("the refresh token is unknown or expired"));
        }
        if let Some(bound) = &family.dpop_jkt {
            if jkt != Some(bound.as_str()) {
                return Err(ErrorResponse::new(
                    ErrorKind::InvalidDpopProof,
                    "the refresh token is bound to a DPoP key: prove possession of it",
                ));
            }
        }
        // Still for this client: its audiences and scopes may have changed since sign-in.
        let target = self.target_named(client, &family.audience)?;
        let scope = narrowed_scope(params.get("scope"), &family.scope, &client.scopes)?;
        let named = params
            .all("resource")
            .into_iter()
            .chain(params.all("audience"));
        if let Some(other) = named.into_iter().find(|r| *r != family.audience) {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidTarget,
                format!("the refresh token is for {}, not {other}", family.audience),
            ));
        }
        if !self.store.use_refresh_token(&token_hash, now).await? {
            // Used at the same moment by someone else: one of the two is not the client.
            return Err(self.refresh_reused(&family.family_id, now).await);
        }
        let (fresh, next) = self.new_refresh_token(&family.family_id, family.expires_at, now)?;
        let user_claims = match serde_json::from_str(&family.claims) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Ok((
            fresh,
            Refreshed {
                family,
                target,
                scope,
                user_claims,
                next: NewRefresh::Rotated(next, token_hash),
            },
        ))
    }

    /// A rotated-out refresh token came back: revoke its family (RFC 9700 §4.14.2) and
    /// refuse.
    async fn refresh_reused(&self, family_id: &str, now: i64) -> ErrorResponse {
        if let Err(e) = self
            .revoke_family(family_id, "refresh token reused", now)
            .await
        {
            return e;
        }
        invalid_grant("the refresh token was used before; its grant is revoked")
    }

    /// Revokes a family and every access token issued with its refresh tokens.
    pub(crate) async fn revoke_family(
        &self,
        family_id: &str,
        why: &str,
        now: i64,
    ) -> Result<(), ErrorResponse> {
        for jti in self.store.revoke_refresh_family(family_id, now).await? {
            self.revoke_issued(&jti, why, now).await?;
        }
        Ok(())
    }

    /// After the access token beside a new refresh token is recorded: stores the refresh
    /// token, noting that access token on it; if the family was revoked meanwhile (a reuse
    /// raced this rotation), revokes the access token and refuses.
    pub(crate) async fn store_refresh(
        &self,
        next: NewRefresh,
        jti: &str,
        now: i64,
    ) -> Result<(), ErrorResponse> {
        let token = next.token().clone();
        let first = matches!(next, NewRefresh::First(..));
        match next {
            NewRefresh::First(family, first) => {
                self.store.create_refresh_family(&family, &first).await?
            }
            NewRefresh::Rotated(rotated, _) => self.store.insert_refresh_token(&rotated).await?,
        }
        self.store.refresh_issued(&token.token_hash, jti).await?;
        // A reuse (or, for a new family, a replay of its code) that raced this issuance
        // revoked the family before it held this token, or marked the code before the
        // family existed: revoke now what was just made.
        let raced = self.store.refresh_family_revoked(&token.family_id).await?
            || (first && self.store.code_was_replayed(&token.family_id).await?);
        if raced {
            self.revoke_family(
                &token.family_id,
                "grant revoked while a token was issued",
                now,
            )
            .await?;
            self.revoke_issued(jti, "grant revoked while a token was issued", now)
                .await?;
            return Err(invalid_grant("the grant was revoked meanwhile"));
        }
        Ok(())
    }

    /// Undoes the spending of the refresh token a rotation replaced, when the rotation
    /// issued nothing (its access token could not be minted or recorded, or its successor
    /// stored), so the client's retry is not taken for a reuse. Best effort: on failure the
    /// client signs in again. A revoked family stays revoked.
    pub(crate) async fn unspend_refresh(&self, previous: Option<&str>) {
        if let Some(previous) = previous {
            // The request already fails with its own error; this one adds nothing to it.
            let _ = self.store.unuse_refresh_token(previous).await;
        }
    }

    /// RFC 7009 for a refresh token: revokes its family, if `client` holds it. `false` when
    /// the token is not one of our refresh tokens.
    pub(crate) async fn revoke_refresh_token(
        &self,
        token: &str,
        client: &Client,
        now: i64,
    ) -> Result<bool, ErrorResponse> {
        let Some((_, family)) = self.store.refresh_token(&sha256_hex(token)).await? else {
            return Ok(false);
        };
        if family.client_id != client.client_id {
            return Err(ErrorResponse::new(
                ErrorKind::UnauthorizedClient,
                "the token was issued to another client",
            ));
        }
        self.revoke_family(
            &family.family_id,
            "refresh token revoked by its client",
            now,
        )
        .await?;
        Ok(true)
    }
}

/// What a family starts from: the redeemed code's grant.
pub(crate) struct FamilyOf<'a> {
    pub code_hash: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub audience: &'a str,
    pub scope: &'a [String],
    pub claims: &'a Map<String, Value>,
    pub jkt: Option<&'a str>,
}

/// RFC 6749 §6: the scopes asked for, each granted to the family and still allowed to the
/// client; all of those when none is asked for.
fn narrowed_scope(
    requested: Option<&str>,
    granted: &str,
    allowed: &[String],
) -> Result<Vec<String>, ErrorResponse> {
    let granted: Vec<&str> = granted
        .split(' ')
        .filter(|s| !s.is_empty() && allowed.iter().any(|a| a == s))
        .collect();
    let Some(requested) = requested else {
        return Ok(granted.into_iter().map(String::from).collect());
    };
    let mut scope: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.contains(&s) {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidScope,
                format!("the scope {s} was not granted"),
            ));
        }
        if !scope.iter().any(|x| x == s) {
            scope.push(s.to_owned());
        }
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_never_widen_it() {
        let all = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(narrowed_scope(None, "a b", &all).unwrap(), ["a", "b"]);
        assert_eq!(narrowed_scope(Some("b b"), "a b", &all).unwrap(), ["b"]);
        assert_eq!(
            narrowed_scope(Some("a c"), "a b", &all).unwrap_err().kind,
            ErrorKind::InvalidScope
        );
        assert!(narrowed_scope(Some(""), "a", &all).unwrap().is_empty());
        // A scope taken from the client since sign-in is no longer issued.
        let fewer = ["a".to_owned()];
        assert_eq!(narrowed_scope(None, "a b", &fewer).unwrap(), ["a"]);
        assert!(narrowed_scope(Some("b"), "a b", &fewer).is_err());
    }
}
