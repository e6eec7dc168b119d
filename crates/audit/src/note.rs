//! Checkpoints as C2SP `tlog-checkpoint` bodies in C2SP `signed-note`s, signed with Ed25519.
//!
//! A checkpoint body is three lines: the log's origin, the tree size in decimal, the root
//! hash in standard base64. A signed note is that text, a blank line, and one line per
//! signature: `— <key name> <base64(key id ‖ signature)>`, where the key id is the first
//! four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`. Verifier keys are written
//! `<name>+<key id in hex>+<base64(0x01 ‖ public key)>`, as Go's `sumdb/note` and every
//! other implementation of the format read them.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::tree::Hash;
use crate::Error;

/// The signature type byte of Ed25519 keys in the signed-note format.
const ED25519_TYPE: u8 = 0x01;
/// Starts every signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A signed tree head: the log it belongs to, how many leaves, their root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (a schema-less URL, e.g. `auth.example.com/audit`).
    pub origin: String,
    /// How many leaves the tree has.
    pub size: u64,
    /// `MTH` of those leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Reads a checkpoint body (extension lines after the third are allowed and ignored).
    pub fn parse(body: &str) -> Result<Checkpoint, Error> {
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(Error::Malformed("a checkpoint has three lines"));
        };
        if origin.is_empty() {
            return Err(Error::Malformed("a checkpoint's origin is empty"));
        }
        let canonical_decimal = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = canonical_decimal
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(Error::Malformed(
                "a checkpoint's size is not a decimal number",
            ))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(Error::Malformed(
                "a checkpoint's root is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The public half of a note signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl VerifierKey {
    /// An Ed25519 public key (32 bytes) under `name`.
    pub fn new(name: &str, public: &[u8]) -> Result<VerifierKey, Error> {
        check_name(name)?;
        if public.len() != 32 {
            return Err(Error::Malformed("an Ed25519 public key is 32 bytes"));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            id: key_id(name, public),
            public: public.to_vec(),
        })
    }

    /// Reads `<name>+<hex key id>+<base64(0x01 ‖ public key)>`, checking the id.
    pub fn parse(text: &str) -> Result<VerifierKey, Error> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Malformed("a verifier key is name+id+key"));
        };
        let key = STANDARD
            .decode(key)
            .map_err(|_| Error::Malformed("a verifier key's key is not base64"))?;
        let Some((&ED25519_TYPE, public)) = key.split_first() else {
            return Err(Error::Malformed("a verifier key is not an Ed25519 key"));
        };
        let parsed = VerifierKey::new(name, public)?;
        if id.len() != 8 || !id.eq_ignore_ascii_case(&hex(&parsed.id)) {
            return Err(Error::Malformed(
                "a verifier key's id does not match its key",
            ));
        }
        Ok(parsed)
    }

    /// The key's name (the signer's, not necessarily the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, in hex.
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(text.as_bytes(), signature)
            .is_ok()
    }
}

impl std::fmt::Display for VerifierKey {
    /// `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(&self.public);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex(&self.id),
            STANDARD.encode(key)
        )
    }
}

/// A note signing key: an Ed25519 private key under a name.
pub struct NoteSigner {
    key: VerifierKey,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// The key whose 32-byte Ed25519 seed is `seed`, named `name`.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<NoteSigner, Error> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| Error::Malformed("not an Ed25519 private key"))?;
        let key = VerifierKey::new(name, pair.public_key().as_ref())?;
        Ok(NoteSigner { key, pair })
    }

    /// The public half.
    pub fn verifier(&self) -> &VerifierKey {
        &self.key
    }

    /// `text` (which must end with a newline) followed by a blank line and this key's
    /// signature line.
    pub fn sign(&self, text: &str) -> Result<String, Error> {
        check_text(text)?;
        let signature = self.pair.sign(text.as_bytes());
        let mut blob = self.key.id.to_vec();
        blob.extend_from_slice(signature.as_ref());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.key.name,
            STANDARD.encode(blob)
        ))
    }
}

/// Why a signed note was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteFault {
    /// Not a signed note at all.
    Malformed(&'static str),
    /// Signed, but by no key given.
    UnknownKey,
    /// A line names a known key, but its signature does not verify.
    BadSignature,
}

/// Checks a signed note against `keys`: at least one signature by one of them, and no
/// signature of theirs that fails. Returns the note's text and the key that signed it.
pub fn open<'k>(
    note: &str,
    keys: &'k [VerifierKey],
) -> Result<(String, &'k VerifierKey), NoteFault> {
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteFault::Malformed(
            "a signed note has a blank line before its signatures",
        ));
    };
    let (text, signatures) = note.split_at(split + 1);
    check_text(text).map_err(|_| NoteFault::Malformed("a note's text has control characters"))?;
    let Some(signatures) = signatures.strip_prefix('\n') else {
        return Err(NoteFault::Malformed(
            "a signed note has a blank line before its signatures",
        ));
    };
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteFault::Malformed(
            "a signed note ends with a signature line",
        ));
    }
    let mut signer = None;
    for line in signatures.trim_end_matches('\n').split('\n') {
        let (name, blob) = signature_line(line)?;
        let Some((id, signature)) = blob.split_first_chunk::<4>() else {
            return Err(NoteFault::Malformed(
                "a signature is shorter than its key id",
            ));
        };
        let Some(key) = keys.iter().find(|k| k.name == name && &k.id == id) else {
            continue;
        };
        if !key.verifies(text, signature) {
            return Err(NoteFault::BadSignature);
        }
        signer.get_or_insert(key);
    }
    signer
        .map(|key| (text.to_owned(), key))
        .ok_or(NoteFault::UnknownKey)
}

fn signature_line(line: &str) -> Result<(&str, Vec<u8>), NoteFault> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(NoteFault::Malformed(
            "a signature line starts with an em dash",
        ))?;
    let (name, blob) = rest.split_once(' ').ok_or(NoteFault::Malformed(
        "a signature line is a name and a signature",
    ))?;
    let blob = STANDARD
        .decode(blob)
        .map_err(|_| NoteFault::Malformed("a signature is not base64"))?;
    Ok((name, blob))
}

/// The first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public)`.
fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut input = name.as_bytes().to_vec();
    input.push(b'\n');
    input.push(ED25519_TYPE);
    input.extend_from_slice(public);
    let hash = digest(&SHA256, &input);
    let mut id = [0u8; 4];
    for (out, byte) in id.iter_mut().zip(hash.as_ref()) {
        *out = *byte;
    }
    id
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(Error::Malformed(
            "a key name is non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

/// A note's text: newline-terminated, no control characters but newlines.
fn check_text(text: &str) -> Result<(), Error> {
    if !text.ends_with('\n') || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::Malformed(
            "a note's text ends with a newline and has no control characters",
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "note_tests.rs"]
mod tests;
