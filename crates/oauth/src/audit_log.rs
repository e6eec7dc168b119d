//! The node's copy of the audit log's Merkle tree, the checkpoints it signs, and inclusion
//! proofs.
//!
//! Every node reads the events the store has sequenced (its own and every other node's)
//! into a [`Tree`] and, every `[audit] checkpoint_every` and at shutdown, signs the tree's
//! size and root with the key ring's active audit key. The tree is the same on every node,
//! so two nodes signing the same size store the same checkpoint once. A node never signs
//! over events that do not match their stored hashes, nor a tree whose root differs from
//! the newest stored checkpoint's: it reports [`Error::AuditLog`] instead, and the log's
//! tampering stays visible to `tokengate audit verify`.

use audit::event::{decode_hash, encode_hash, leaf};
use audit::note::{Checkpoint, NoteSigner, VerifierKey};
use audit::tree::{Hash, Tree};
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
    tree: Mutex<Tree>,
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
    /// The checkpoint the path leads to.
    pub checkpoint: StoredCheckpoint,
}

impl AuditLog {
    /// The log of `store`, named as the store says (or `proposed` when no node has named
    /// it yet). The tree starts empty and fills on the first [`AuditLog::checkpoint`].
    pub async fn open(store: &Store, proposed: &str) -> Result<AuditLog> {
        Ok(AuditLog {
            origin: store.audit_origin(proposed).await?,
            tree: Mutex::new(Tree::new()),
        })
    }

    /// The log of `store` as a node named it, for reading (`None` if no node ever started
    /// over this store: there is no log yet).
    pub async fn read(store: &Store) -> Result<AuditLog> {
        let origin = store
            .stored_audit_origin()
            .await?
            .ok_or_else(|| Error::AuditLog("no node has started over this store yet".into()))?;
        Ok(AuditLog {
            origin,
            tree: Mutex::new(Tree::new()),
        })
    }

    /// The log's name: the origin line of its checkpoints and the name of its keys.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Reads what the store sequenced since the last call, checks it against the newest
    /// stored checkpoint, and signs a checkpoint when the tree grew past that one. Returns
    /// the checkpoint stored (by this node, or by another first), if any was due.
    pub async fn checkpoint(
        &self,
        store: &Store,
        ring: &KeyRing,
        now: i64,
    ) -> Result<Option<StoredCheckpoint>> {
        let mut tree = self.tree.lock().await;
        catch_up(store, &mut tree).await?;
        let newest = store.newest_checkpoint().await?;
        if let Some(newest) = &newest {
            check_against(&tree, newest)?;
        }
        let signed = newest.as_ref().map_or(0, |c| c.size);
        let size = tree.len();
        if size == 0 || i64::try_from(size).is_ok_and(|s| s <= signed) {
            return Ok(None);
        }
        let key = ring.active_audit().ok_or(Error::NoActiveKey("audit"))?;
        let root = tree
            .root(size)
            .ok_or(Error::AuditLog("the tree lost its root".into()))?;
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
        Ok(Some(checkpoint))
    }

    /// The inclusion proof of event `seq` in the newest checkpoint's tree; `None` when no
    /// checkpoint covers it yet.
    pub async fn prove(&self, store: &Store, seq: u64) -> Result<Option<InclusionProof>> {
        let mut tree = self.tree.lock().await;
        catch_up(store, &mut tree).await?;
        let Some(checkpoint) = store.newest_checkpoint().await? else {
            return Ok(None);
        };
        check_against(&tree, &checkpoint)?;
        let size = u64::try_from(checkpoint.size).unwrap_or(0);
        let (Some(path), Some(leaf)) = (tree.inclusion_proof(seq, size), tree.leaf(seq)) else {
            return Ok(None);
        };
        Ok(Some(InclusionProof {
            seq,
            leaf,
            path,
            checkpoint,
        }))
    }

    /// The public keys that verify this log's checkpoints: every audit key of the ring.
    pub fn verifier_keys(&self, ring: &KeyRing) -> Result<Vec<VerifierKey>> {
        ring.audit_keys()
            .map(|k| audit_verifier_key(&self.origin, &k.record.public_jwk))
            .collect()
    }
}

/// The audit keys document (`GET /.well-known/tokengate-audit-keys`, `tokengate audit
/// keys`): the log's origin, and for each audit key (`records` may hold others, skipped)
/// its kid, state, creation time, verifier key (`vkey`, C2SP note format, what `audit
/// verify --keys` reads) and public JWK.
pub fn audit_keys_document<'a>(
    origin: &str,
    records: impl Iterator<Item = &'a KeyRecord>,
) -> Result<serde_json::Value> {
    let mut keys = Vec::new();
    for key in records.filter(|r| r.key_use == KeyUse::Audit) {
        let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk)
            .map_err(|_| Error::BadKey("an audit key's public JWK is not JSON"))?;
        keys.push(serde_json::json!({
            "kid": key.kid,
            "state": key.state.as_str(),
            "created_at": key.created_at,
            "vkey": audit_verifier_key(origin, &key.public_jwk)?.to_string(),
            "jwk": jwk,
        }));
    }
    Ok(serde_json::json!({"origin": origin, "keys": keys}))
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

/// Appends the events sequenced after the tree's end, each checked against its stored hash;
/// an empty tree starts from the frontier of what was pruned.
async fn catch_up(store: &Store, tree: &mut Tree) -> Result<()> {
    if tree.is_empty() {
        if let Some(pruned) = pruned_tree(store).await? {
            *tree = pruned;
        }
    }
    loop {
        let from = i64::try_from(tree.len()).unwrap_or(i64::MAX);
        let page = store.audit_log(from, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for record in page {
            let expected = tree.len();
            let seq = record.seq.and_then(|s| u64::try_from(s).ok());
            if seq != Some(expected) {
                return Err(Error::AuditLog(format!(
                    "seq {expected} is missing from the store; run `tokengate audit verify`"
                )));
            }
            let computed = record
                .to_json()
                .and_then(|json| leaf(&json).ok())
                .ok_or_else(|| Error::AuditLog(format!("seq {expected} cannot be hashed")))?;
            if record.hash.as_deref().and_then(decode_hash) != Some(computed) {
                return Err(Error::AuditLog(format!(
                    "seq {expected} differs from what was written; run `tokengate audit verify`"
                )));
            }
            tree.push(computed);
        }
        if !full {
            return Ok(());
        }
    }
}

/// The tree of a pruned log's removed events, from their frontier (`None` if never pruned).
pub async fn pruned_tree(store: &Store) -> Result<Option<Tree>> {
    let pruned = store.audit_pruned().await?;
    if pruned.size == 0 {
        return Ok(None);
    }
    let frontier = pruned
        .frontier
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::AuditLog("the pruned log's frontier is not a list of hashes".into())
        })?;
    let size = u64::try_from(pruned.size).unwrap_or(0);
    Tree::from_frontier(size, &frontier)
        .map(Some)
        .ok_or_else(|| Error::AuditLog("the pruned log's frontier does not fit its size".into()))
}

/// The tree must have the newest checkpoint's root at its size: a node signs nothing over
/// a history that changed after it was signed.
fn check_against(tree: &Tree, checkpoint: &StoredCheckpoint) -> Result<()> {
    let size = u64::try_from(checkpoint.size).unwrap_or(u64::MAX);
    let root = tree.root(size).map(|r| encode_hash(&r));
    if root.as_deref() != Some(checkpoint.root.as_str()) {
        return Err(Error::AuditLog(format!(
            "the events up to the checkpoint of tree size {size} are not those it signed; \
             run `tokengate audit verify`"
        )));
    }
    Ok(())
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
