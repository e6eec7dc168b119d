//! Token-service logic for tokengate, over [`store::Store`] and [`jose`]; no HTTP.
//!
//! - [`Service`]: the token service the HTTP layer calls: [`Service::token`] (RFC 6749
//!   `client_credentials`, RFC 8693 token exchange, RFC 9449 DPoP binding),
//!   [`Service::introspect`] (RFC 7662, RFC 9701), [`Service::revoke`] (RFC 7009),
//!   [`Service::metadata`] (RFC 8414), [`Service::jwks`], the admin operations, and
//!   [`Service::maintain`], the periodic key-lifecycle step. Each takes a [`Request`] (the
//!   headers and body the protocol reads) and answers a value or an [`ErrorResponse`]
//!   (RFC 6749 §5.2).
//! - [`KeyRing`]: the signing and encryption keys, with their lifecycle
//!   (pending → active → retired → removed), private halves decrypted with the
//!   [`store::MasterKey`].
//! - [`mint`]: an RFC 9068 JWT access token from a [`Grant`], signed with the active key and,
//!   when asked, encrypted (nested JWT, RFC 7519 §11.2); [`record`] stores its `jti`.
//! - [`dpop`]: DPoP proof checks, shared with the gateway.
//!
//! ```no_run
//! # async fn demo(store: store::Store, master: store::MasterKey) -> Result<(), oauth::Error> {
//! use oauth::{mint, record, Grant, KeyRing, Policy};
//!
//! let now = store::unix_now();
//! let ring = KeyRing::load_or_init(&store, &master, &Policy::default(), now).await?;
//! let grant = Grant::new("https://issuer.example", "client-1", "client-1", "https://api.example")
//!     .scope(["read"])
//!     .lifetime(300);
//! let minted = mint(&ring, &grant, now)?;
//! record(&store, &minted, &grant).await?;
//! let _jwks = ring.jwks(); // publish at the jwks_uri
//! # Ok(()) }
//! ```

mod admin;
mod audit_log;
pub mod authorize;
pub mod changes;
mod client_auth;
pub mod client_document;
mod clients;
pub mod code;
pub mod dpop;
mod error;
pub mod form;
mod introspection;
mod keyring;
mod mint;
pub mod pkce;
mod protocol;
mod recorder;
pub mod redirect_uri;
pub mod refresh;
pub mod registration;
mod revocations;
pub mod sealed;
mod service;
pub mod sign_in;
mod token;
pub mod upstream;

pub use admin::{AdminError, Credentials, NewClient, RevokeBy};
pub use audit_log::{
    audit_keys_document, audit_verifier_key, origin_for, pruned_tree, signed_tree, AuditLog,
    InclusionProof,
};
pub use client_auth::{basic_credentials, claimed_client_id, JWT_BEARER};
pub use error::{Error, Result};
pub use introspection::{Introspection, INTROSPECTION_JWT};
pub use keyring::{KeyRing, Policy, RingKey};
pub use mint::{mint, random_b64, record, EncryptTo, Grant, Minted, AT_JWT};
pub use protocol::{ErrorKind, ErrorResponse, Request};
pub use revocations::Revocations;
pub use service::{
    paths, Audience, DpopSettings, Service, Settings, TrustedIssuer, INTERNAL_TOKEN_LIFETIME,
};
pub use token::{
    hash_prefix, token_hash_prefix, TokenResponse, AUTHORIZATION_CODE, TOKEN_EXCHANGE,
};
