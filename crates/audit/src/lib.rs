//! The formats of tokengate's tamper-evident audit log, with no I/O.
//!
//! Each audit event is a JSON object with a sequence number `seq` (0, 1, 2, … with no gaps,
//! one sequence for every node) serialised by the JSON Canonicalization Scheme (RFC 8785),
//! so that the same event always has the same bytes ([`event::canonical`]). Those bytes
//! are the leaves of an append-only Merkle tree hashed as RFC 9162 says ([`tree`]). Every
//! few seconds a node signs the tree's size and root as a C2SP `tlog-checkpoint` in a C2SP
//! `signed-note` with an Ed25519 key ([`note`]). An export of the events and checkpoints
//! plus the public keys is enough to prove that nothing was changed, removed, inserted or
//! reordered ([`verify`]), offline.
//!
//! ```
//! use audit::{event, note, tree::Tree};
//! let mut tree = Tree::new();
//! for seq in 0..3 {
//!     let event = serde_json::json!({"seq": seq, "event": "token.issued", "time": 1_700_000_000});
//!     tree.push(event::leaf(&event).unwrap());
//! }
//! let checkpoint = note::Checkpoint { origin: "auth.example.com/audit".into(), size: 3, root: tree.root(3).unwrap() };
//! let signer = note::NoteSigner::from_seed("auth.example.com/audit", &[7; 32]).unwrap();
//! let signed = signer.sign(&checkpoint.body()).unwrap();
//! let (text, _) = note::open(&signed, std::slice::from_ref(signer.verifier())).unwrap();
//! assert_eq!(note::Checkpoint::parse(&text).unwrap(), checkpoint);
//! ```
#![forbid(unsafe_code)]

pub mod event;
pub mod export;
pub mod note;
pub mod tree;
pub mod verify;

/// Why an input could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not what the format says (the reason names the rule).
    #[error("malformed: {0}")]
    Malformed(&'static str),
}
