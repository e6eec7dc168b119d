//! The node's view of the audit log: the right edge of its Merkle tree, the checkpoints it
//! signs, and inclusion proofs.
//!
//! Every node reads the leaf hashes the store has sequenced (its own events and every other
//! node's) into a [`Frontier`] (O(log n) memory) and, every `[audit] checkpoint_every` and
//! at shutdown, signs the tree's size and root with the key ring's active audit key. The
//! tree is the same on every node, so two nodes signing the same size store the same
//! checkpoint once. Before signing, a node checks the newest stored checkpoint's *signature*
//! with the ring's audit keys and its signed root against the events, and it never signs a
//! tree that does not extend the last one it checked or signed: a log changed under it, or a
//! forged checkpoint, is [`Error::AuditLog`] (`ERR_AUDIT_LOG_TAMPERED`), and nothing more is
//! signed until the log is restored.

use audit::event::{decode_hash, encode_hash};
use audit::note::{open, Checkpoint, NoteSigner, VerifierKey};
use audit::tree::{Frontier, Hash, Tree};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use store::{KeyRecord, KeyUse, Store, StoredCheckpoint};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::keyring::{KeyRing, RingKey};

/// Events read per query while catching up.
const PAGE: u32 = 1000;

/// The node's view of the log.
#[derive(Debug)]
pub struct AuditLog {
    origin: String,
    state: Mutex<Signed>,
}

/// What a node has read and checked.
#[derive(Debug, Default)]
struct Signed {
    frontier: Frontier,
    /// The last checkpoint this node checked or signed: every later one must extend it.
    checked: Option<(u64, Hash)>,
}

/// An inclusion proof of one event in the tree of the newest checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's sequence number (its leaf index).
    pub seq: u64,
    /// The event's leaf hash.
    pub leaf: Hash,
    /// The audit path, leaf side first (RFC 9162 §2.1.3.1).
    pub path: Vec<Hash>,
    /// The tree size and root the checkpoint's signature covers.
    pub size: u64,
    /// See `size`.
    pub root: Hash,
    /// The checkpoint the path leads to.
    pub checkpoint: StoredCheckpoint,
}

impl AuditLog {
    /// The log of `store`, named as the store says (or `proposed` when no node has named
    /// it yet). Its tree is read on the first [`AuditLog::checkpoint`].
    pub async fn open(store: &Store, proposed: &str) -> Result<AuditLog> {
        Ok(AuditLog {
            origin: store.audit_origin(proposed).await?,
            state: Mutex::new(Signed::default()),
        })
    }

    /// The log of `store` as a node named it, for reading ([`Error::NoAuditLog`] if no node
    /// ever started over this store).
    pub async fn read(store: &Store) -> Result<AuditLog> {
        let origin = store
            .stored_audit_origin()
            .await?
            .ok_or(Error::NoAuditLog)?;
        Ok(AuditLog {
            origin,
            state: Mutex::new(Signed::default()),
        })
    }

    /// The log's name: the origin line of its checkpoints and the name of its keys.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Reads what the store sequenced since the last call, checks the newest stored
    /// checkpoint (its signature, and its root against the events), and signs a checkpoint
    /// when the tree grew past it. Returns the checkpoint this node signed, if one was due
    /// (another node may have stored the same one first).
    pub async fn checkpoint(
        &self,
        store: &Store,
        ring: &KeyRing,
        now: i64,
    ) -> Result<Option<StoredCheckpoint>> {
        let keys = self.verifier_keys(ring)?;
        let mut state = self.state.lock().await;
        // The newest checkpoint first, then the events: another node may sign more between
        // the two reads, never fewer.
        let newest = store.newest_checkpoint().await?;
        let signed = newest.as_ref().map(|c| signed_by(c, &keys)).transpose()?;
        if let Some((size, root)) = signed {
            catch_up(store, &mut state.frontier, Some(size)).await?;
            state.check(size, root)?;
        }
        catch_up(store, &mut state.frontier, None).await?;
        let size = state.frontier.len();
        if size == 0 || signed.is_some_and(|(s, _)| size <= s) {
            return Ok(None);
        }
        let root = state.frontier.root();
        let key = ring.active_audit().ok_or(Error::NoActiveKey("audit"))?;
        let body = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        }
        .body();
        let note = signer(key, &self.origin)?
            .sign(&body)
            .map_err(|e| Error::AuditLog(e.to_string()))?;
        let checkpoint = StoredCheckpoint {
            size: i64::try_from(size).unwrap_or(i64::MAX),
            root: encode_hash(&root),
            note,
            created_at: now,
            anchor: None,
            consistency: None,
        };
        store.insert_checkpoint(&checkpoint).await?;
        state.checked = Some((size, root));
        Ok(Some(checkpoint))
    }

    /// The inclusion proof of event `seq` in the tree of the newest checkpoint that opens
    /// with `keys`; `None` when no checkpoint covers it (or it was pruned). Reads the leaf
    /// hashes since the last prune into a whole tree for the call (64 bytes per event).
    pub async fn prove(
        &self,
        store: &Store,
        keys: &[VerifierKey],
        seq: u64,
    ) -> Result<Option<InclusionProof>> {
        let Some(checkpoint) = store.newest_checkpoint().await? else {
            return Ok(None);
        };
        let (tree, size, root) = signed_tree(store, &checkpoint, keys).await?;
        let (Some(path), Some(leaf)) = (tree.inclusion_proof(seq, size), tree.leaf(seq)) else {
            return Ok(None);
        };
        Ok(Some(InclusionProof {
            seq,
            leaf,
            path,
            size,
            root,
            checkpoint,
        }))
    }

    /// The newest stored checkpoint and the size and root its note signs (checked with
    /// `keys`; the columns beside the note are not authenticated).
    pub async fn newest(
        &self,
        store: &Store,
        keys: &[VerifierKey],
    ) -> Result<Option<(StoredCheckpoint, u64, Hash)>> {
        let Some(checkpoint) = store.newest_checkpoint().await? else {
            return Ok(None);
        };
        let (size, root) = signed_by(&checkpoint, keys)?;
        Ok(Some((checkpoint, size, root)))
    }

    /// The public keys that verify this log's checkpoints: every audit key of the ring,
    /// from its decrypted key (the public JWK column is not authenticated).
    pub fn verifier_keys(&self, ring: &KeyRing) -> Result<Vec<VerifierKey>> {
        ring.audit_keys()
            .map(|k| {
                let public = k.jwk.to_public()?.to_json();
                audit_verifier_key(&self.origin, &public)
            })
            .collect()
    }
}

impl Signed {
    /// The checkpoint of `size` signed `root`: the events read up to it must have that
    /// root, and it must extend the last checkpoint checked.
    fn check(&mut self, size: u64, root: Hash) -> Result<()> {
        if self.frontier.len() == size {
            if self.frontier.root() != root {
                return Err(rewritten(size));
            }
            self.checked = Some((size, root));
            return Ok(());
        }
        match self.checked {
            // Checked before (this node read past it since): the same one, or a fork.
            Some((checked, at)) if checked == size && at != root => Err(rewritten(size)),
            Some((checked, _)) if checked > size => Err(Error::AuditLog(format!(
                "the newest checkpoint signs {size} events, fewer than the {checked} this node \
                 checked: checkpoints were removed; run `tokengate audit verify`"
            ))),
            _ => Ok(()),
        }
    }
}

/// The size and root a stored checkpoint's note signs, opened with `keys` (the `root` column
/// beside it is not authenticated).
/// The tree of the stored events (their stored leaf hashes, after what was pruned) up to
/// the size `checkpoint`'s note signs, with that size and root, once the tree is found to
/// have the root the note signs: what a proof is cut from, and what pruning keeps the
/// frontier of. An error names the first event missing or the checkpoint not matched.
pub async fn signed_tree(
    store: &Store,
    checkpoint: &StoredCheckpoint,
    keys: &[VerifierKey],
) -> Result<(Tree, u64, Hash)> {
    let (size, root) = signed_by(checkpoint, keys)?;
    let mut tree = pruned_tree(store).await?.unwrap_or_default();
    while tree.len() < size {
        let from = i64::try_from(tree.len()).unwrap_or(i64::MAX);
        let page = store.audit_hashes(from, PAGE).await?;
        if page.is_empty() {
            return Err(missing(tree.len()));
        }
        for (seq, hash) in page
            .into_iter()
            .take_while(|(s, _)| *s < i64::try_from(size).unwrap_or(i64::MAX))
        {
            tree.push(stored_leaf(tree.len(), seq, hash)?);
        }
    }
    if tree.root(size) != Some(root) {
        return Err(rewritten(size));
    }
    Ok((tree, size, root))
}

fn signed_by(checkpoint: &StoredCheckpoint, keys: &[VerifierKey]) -> Result<(u64, Hash)> {
    let (text, _) = open(&checkpoint.note, keys).map_err(|fault| {
        Error::AuditLog(format!(
            "the stored checkpoint of tree size {} is not signed by an audit key ({fault:?}); run \
             `tokengate audit verify`",
            checkpoint.size
        ))
    })?;
    let signed = Checkpoint::parse(&text).map_err(|e| Error::AuditLog(e.to_string()))?;
    Ok((signed.size, signed.root))
}

fn rewritten(size: u64) -> Error {
    Error::AuditLog(format!(
        "the events up to the checkpoint of tree size {size} are not those it signed; run \
         `tokengate audit verify`"
    ))
}

fn missing(seq: u64) -> Error {
    Error::AuditLog(format!(
        "seq {seq} is missing from the store; run `tokengate audit verify`"
    ))
}

/// A stored leaf hash, which must be the one of `expected`.
fn stored_leaf(expected: u64, seq: i64, hash: Option<String>) -> Result<Hash> {
    if u64::try_from(seq).ok() != Some(expected) {
        return Err(missing(expected));
    }
    hash.as_deref().and_then(decode_hash).ok_or_else(|| {
        Error::AuditLog(format!(
            "seq {expected} has no hash: tokengate did not write it; run `tokengate audit verify`"
        ))
    })
}

/// Appends the leaf hashes stored for the events after the frontier's end, up to `upto`
/// events when given. A frontier behind what was pruned starts from the pruned frontier
/// (a node that started before a prune, still reading). The stored hashes, not hashes of
/// the events' fields: recomputing each event every interval would cost the token service's
/// core about as much as writing them, and signs nothing safer. Whoever can change an event
/// before it is signed can change its stored hash too; an event changed without its hash is
/// signed with the hash it was written with, so `audit verify` still names it.
async fn catch_up(store: &Store, frontier: &mut Frontier, upto: Option<u64>) -> Result<()> {
    let pruned = store.audit_pruned().await?;
    if u64::try_from(pruned.size).is_ok_and(|p| p > frontier.len()) {
        *frontier = pruned_frontier(&pruned)?;
    }
    loop {
        let end = upto.unwrap_or(u64::MAX);
        if frontier.len() >= end {
            return Ok(());
        }
        let from = i64::try_from(frontier.len()).unwrap_or(i64::MAX);
        let page = store.audit_hashes(from, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for (seq, hash) in page {
            if frontier.len() >= end {
                return Ok(());
            }
            frontier.push(stored_leaf(frontier.len(), seq, hash)?);
        }
        if !full {
            return match upto {
                Some(end) if frontier.len() < end => Err(missing(frontier.len())),
                _ => Ok(()),
            };
        }
    }
}

fn pruned_hashes(pruned: &store::PrunedPrefix) -> Result<Vec<Hash>> {
    pruned
        .hashes()
        .ok_or_else(|| Error::AuditLog("the pruned log's frontier is not a list of hashes".into()))
}

fn pruned_frontier(pruned: &store::PrunedPrefix) -> Result<Frontier> {
    let size = u64::try_from(pruned.size).unwrap_or(0);
    Frontier::from_parts(size, pruned_hashes(pruned)?)
        .ok_or_else(|| Error::AuditLog("the pruned log's frontier does not fit its size".into()))
}

/// The whole tree of a pruned log's removed events, from their frontier (`None` if never
/// pruned), for proofs and pruning.
pub async fn pruned_tree(store: &Store) -> Result<Option<Tree>> {
    let pruned = store.audit_pruned().await?;
    if pruned.size == 0 {
        return Ok(None);
    }
    let size = u64::try_from(pruned.size).unwrap_or(0);
    Tree::from_frontier(size, &pruned_hashes(&pruned)?)
        .map(Some)
        .ok_or_else(|| Error::AuditLog("the pruned log's frontier does not fit its size".into()))
}

/// The audit keys document (`GET /.well-known/tokengate-audit-keys`, `tokengate audit
/// keys`): the log's origin, and for each audit key (`keys` may hold others, skipped) its
/// kid, state, creation time, verifier key (`vkey`, C2SP note format, what `audit verify
/// --keys` reads) and public JWK, given beside each record (the service's from the
/// decrypted key: the record's `public_jwk` column is not authenticated).
pub fn audit_keys_document<'a>(
    origin: &str,
    keys: impl Iterator<Item = (&'a KeyRecord, String)>,
) -> Result<serde_json::Value> {
    let mut out = Vec::new();
    for (key, public_jwk) in keys.filter(|(r, _)| r.key_use == KeyUse::Audit) {
        let jwk: serde_json::Value = serde_json::from_str(&public_jwk)
            .map_err(|_| Error::BadKey("an audit key's public JWK is not JSON"))?;
        out.push(serde_json::json!({
            "kid": key.kid,
            "state": key.state.as_str(),
            "created_at": key.created_at,
            "vkey": audit_verifier_key(origin, &public_jwk)?.to_string(),
            "jwk": jwk,
        }));
    }
    Ok(serde_json::json!({"origin": origin, "keys": out}))
}

/// The verifier key of an audit key's public JWK, under the log's name.
pub fn audit_verifier_key(origin: &str, public_jwk: &str) -> Result<VerifierKey> {
    let jwk = jose::Jwk::from_json(public_jwk.as_bytes())
        .map_err(|_| Error::BadKey("an audit key's public JWK"))?;
    let public = jwk
        .to_map()
        .get("x")
        .and_then(|x| x.as_str())
        .and_then(|x| URL_SAFE_NO_PAD.decode(x).ok())
        .ok_or(Error::BadKey("an audit key without its Ed25519 public key"))?;
    VerifierKey::new(origin, &public).map_err(|_| Error::BadKey("an audit key is not Ed25519"))
}

fn signer(key: &RingKey, origin: &str) -> Result<NoteSigner> {
    let seed = key
        .jwk
        .to_map()
        .get("d")
        .and_then(|d| d.as_str())
        .and_then(|d| URL_SAFE_NO_PAD.decode(d).ok())
        .map(zeroize::Zeroizing::new)
        .ok_or(Error::BadKey(
            "an audit key without its Ed25519 private key",
        ))?;
    NoteSigner::from_seed(origin, &seed).map_err(|_| Error::BadKey("an audit key is not Ed25519"))
}

/// The log's default name for an issuer: its host and path without the scheme, then
/// `/audit` (`https://auth.example.com` → `auth.example.com/audit`), a schema-less URL as
/// C2SP checkpoints name their log.
pub fn origin_for(issuer: &str) -> String {
    let bare = issuer
        .split_once("://")
        .map_or(issuer, |(_, rest)| rest)
        .trim_end_matches('/');
    format!("{bare}/audit")
}

#[cfg(test)]
mod tests {
    use super::origin_for;

    #[test]
    fn origins_drop_the_scheme() {
        assert_eq!(
            origin_for("https://auth.example.com"),
            "auth.example.com/audit"
        );
        assert_eq!(
            origin_for("http://localhost:8080/realm/"),
            "localhost:8080/realm/audit"
        );
    }
}
