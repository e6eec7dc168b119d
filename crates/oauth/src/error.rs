//! The one error type of the crate.

use store::StoreError;

/// Everything that can go wrong in the token-service logic. [`Error::code`] gives a stable
/// code for each variant; wrapped JOSE and store errors keep their own codes, reachable
/// through [`Error::Jose`] and [`Error::Store`]. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JOSE operation failed (key generation, signing, encryption).
    #[error("JOSE: {0}")]
    Jose(#[from] jose::Error),

    /// The store failed, including [`StoreError::WrongMasterKey`] when the master key does
    /// not decrypt the stored keys.
    #[error("store: {0}")]
    Store(#[from] StoreError),

    /// The store holds no active key for this use (`sig` or `enc`): the ring was loaded
    /// before [`KeyRing::load_or_init`](crate::KeyRing::load_or_init) created one, or every
    /// key was retired.
    #[error("no active {0} key")]
    NoActiveKey(&'static str),

    /// A stored key cannot be used: its JWK does not parse, its kid does not match its row,
    /// or it has no usable algorithm.
    #[error("unusable stored key: {0}")]
    BadKey(&'static str),

    /// The grant cannot be minted: empty issuer or audience, a lifetime of zero or above
    /// the policy's maximum, a scope token that is empty or holds a space or quote.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),

    /// The random generator failed. Not expected to happen.
    #[error("random generator failed")]
    Random,

    /// A message from another node is not one this version reads
    /// ([`Service::apply_message`](crate::Service::apply_message)).
    #[error("invalid message: {0}")]
    Invalid(&'static str),

    /// A value cannot be sealed for a browser ([`Sealer::seal`](crate::sealed::Sealer::seal)):
    /// it does not serialize, or is too large for a cookie.
    #[error("cannot seal: {0}")]
    Sealed(&'static str),

    /// The audit log in the store is not what was written or signed: nothing more is
    /// signed over it. `tokengate audit verify` names the first bad event.
    #[error("audit log: {0}")]
    AuditLog(String),

    /// No node has started over this store: there is no audit log to read yet.
    #[error("no node has started over this store yet: there is no audit log")]
    NoAuditLog,
}

impl Error {
    /// A stable code for logs and callers to match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Jose(_) => "ERR_OAUTH_JOSE",
            Error::Store(_) => "ERR_OAUTH_STORE",
            Error::NoActiveKey(_) => "ERR_OAUTH_NO_ACTIVE_KEY",
            Error::BadKey(_) => "ERR_OAUTH_BAD_KEY",
            Error::InvalidGrant(_) => "ERR_OAUTH_INVALID_GRANT",
            Error::Random => "ERR_OAUTH_RANDOM",
            Error::Invalid(_) => "ERR_OAUTH_INVALID_MESSAGE",
            Error::Sealed(_) => "ERR_OAUTH_SEALED",
            Error::AuditLog(_) => "ERR_AUDIT_LOG_TAMPERED",
            Error::NoAuditLog => "ERR_AUDIT_LOG_MISSING",
        }
    }

    /// Whether the master key given does not decrypt the store's keys.
    pub fn is_wrong_master_key(&self) -> bool {
        matches!(self, Error::Store(StoreError::WrongMasterKey))
    }
}

/// Result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
