//! The JOSE conformance and attack suite: one test binary, one module per topic (ripgrep
//! style). Vector files are read from the shared `vectors/` folder beside the project root
//! (override with `TOKENGATE_VECTORS`); a missing folder fails loudly, never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attacks;
mod common;
mod jwe_attacks;
mod jwe_vectors;
mod rfc7520;
mod roundtrip;
mod wycheproof;
