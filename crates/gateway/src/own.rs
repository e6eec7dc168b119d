//! The built-in issuer as the gateway sees it: a narrow handle on the token service, so the
//! gateway reaches its key ring, revocation list and internal-token minter, and nothing else
//! of it (no clients, grants or store).

use std::sync::Arc;

use oauth::{KeyRing, Revocations};
use serde_json::{Map, Value};

/// What the gateway needs of the built-in issuer.
pub trait OwnIssuer: std::fmt::Debug + Send + Sync {
    /// Its `iss`.
    fn issuer(&self) -> &str;
    /// Its current key ring (verification and decryption keys; replaced on rotation).
    fn ring(&self) -> Arc<KeyRing>;
    /// Its revocation list, kept current by the token service.
    fn revocations(&self) -> &Arc<Revocations>;
    /// A short-lived internal token carrying `claims` for `audience`, never outliving
    /// `not_after`; the token and its expiry.
    fn internal_token(
        &self,
        claims: &Map<String, Value>,
        audience: &str,
        now: i64,
        not_after: i64,
    ) -> oauth::Result<(String, i64)>;
}

impl OwnIssuer for oauth::Service {
    fn issuer(&self) -> &str {
        &self.settings().issuer
    }

    fn ring(&self) -> Arc<KeyRing> {
        oauth::Service::ring(self)
    }

    fn revocations(&self) -> &Arc<Revocations> {
        oauth::Service::revocations(self)
    }

    fn internal_token(
        &self,
        claims: &Map<String, Value>,
        audience: &str,
        now: i64,
        not_after: i64,
    ) -> oauth::Result<(String, i64)> {
        oauth::Service::internal_token(self, claims, audience, now, not_after)
    }
}
