//! Token-service logic for tokengate, over [`store::Store`] and [`jose`]; no HTTP.
//!
//! - [`KeyRing`]: the signing and encryption keys, with their lifecycle
//!   (pending → active → retired → removed), private halves decrypted with the
//!   [`store::MasterKey`].
//! - [`mint`]: an RFC 9068 JWT access token from a [`Grant`], signed with the active key and,
//!   when asked, encrypted (nested JWT, RFC 7519 §11.2); [`record`] stores its `jti`.
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
//! let _jwks = ring.jwks(); // publish at /.well-known/jwks.json
//! # Ok(()) }
//! ```

mod error;
mod keyring;
mod mint;

pub use error::{Error, Result};
pub use keyring::{KeyRing, Policy, RingKey};
pub use mint::{mint, record, EncryptTo, Grant, Minted, AT_JWT};
