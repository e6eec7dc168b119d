//! Changes one node makes that every other node must apply at once: revocations, client
//! changes and key-ring changes, published on a Redis channel after they are committed to the
//! store, and applied by every node that receives them.
//!
//! Best effort by design: the store stays the only truth. Every node also re-reads it
//! (revocations and the key list every second, each client after a second in its cache), so
//! a change whose message is lost (Redis down, a node reconnecting, a node started later)
//! still arrives, with the delay of polling.
//!
//! A message is authenticated with an HMAC under a key derived from the master key, which
//! every node and the CLI hold and Redis does not: whoever can publish on the Redis server
//! cannot forge one. Even an authentic message only adds to what is refused (revocation
//! entries only grow, bounded in time) or makes a node re-read the store: applying one never
//! makes a node accept anything.

use aws_lc_rs::{constant_time, hmac};
use serde::{Deserialize, Serialize};
use store::redis::Redis;

use crate::error::Result;
use crate::keyring::secs;
use crate::service::Service;

/// Where the Redis channel's name starts; the issuer follows, so deployments sharing one
/// Redis server (channels are server-wide, whatever the database number) do not hear each
/// other: a subject revoked in one is not revoked in the other.
pub const CHANNEL_PREFIX: &str = "tokengate:changes:";

/// Longest message read; anything longer is not one of ours.
const MAX_MESSAGE: usize = 4096;

/// How far in the future a bulk revocation's time may lie (clocks of nodes differ a little);
/// a message saying more is clamped to it.
const FUTURE_SLACK: i64 = 5;

/// The key that authenticates messages: derived from the master key.
pub(crate) fn message_key(master: &store::MasterKey) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, master.derive("changes").as_slice())
}

/// How old (or how far ahead) a message may be: an authentic message captured from Redis
/// cannot be replayed later than this.
const MESSAGE_LIFETIME: i64 = 30;

/// The HMAC input: the channel, then the JSON, so a message is good on its own channel only.
fn mac(key: &hmac::Key, channel: &str, json: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(channel.as_bytes());
    context.update(&[0]);
    context.update(json);
    context.sign()
}

/// `<base64url HMAC-SHA-256>.<JSON>`.
fn seal(key: &hmac::Key, channel: &str, json: &[u8]) -> Vec<u8> {
    let tag = mac(key, channel, json);
    let mut out = jose::b64::encode(tag.as_ref()).into_bytes();
    out.push(b'.');
    out.extend_from_slice(json);
    out
}

/// The JSON of a message whose HMAC is good.
fn open<'a>(key: &hmac::Key, channel: &str, payload: &'a [u8]) -> Option<&'a [u8]> {
    let dot = payload.iter().position(|b| *b == b'.')?;
    let (tag, json) = (payload.get(..dot)?, payload.get(dot + 1..)?);
    let tag = jose::b64::decode(std::str::from_utf8(tag).ok()?).ok()?;
    let want = mac(key, channel, json);
    constant_time::verify_slices_are_equal(want.as_ref(), &tag).ok()?;
    Some(json)
}

/// One change, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// One token revoked.
    Revoked {
        /// Its `jti`.
        jti: String,
        /// Its expiry, after which the revocation need not be remembered.
        expires_at: i64,
    },
    /// Every token of a client issued at or before `at` revoked.
    ClientRevoked {
        /// The client.
        client_id: String,
        /// When.
        at: i64,
    },
    /// Every token of a subject issued at or before `at` revoked.
    SubjectRevoked {
        /// The subject.
        subject: String,
        /// When.
        at: i64,
    },
    /// A client created, changed, disabled or deleted: read it again.
    Client {
        /// The client.
        client_id: String,
    },
    /// The key ring changed (rotation, promotion, retirement, removal): read it again.
    Keys,
}

/// A change with the node that made it (which ignores its own messages).
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    node: String,
    /// When it was sent (unix seconds): older messages are not applied.
    at: i64,
    #[serde(flatten)]
    change: Change,
}

/// Where this node publishes its changes.
pub(crate) struct Publisher {
    redis: Redis,
    channel: String,
    node: String,
    /// Messages being sent, so a command that exits right after its change can wait for
    /// them ([`Service::flush_changes`]); each task says whether Redis took its message.
    sending: std::sync::Mutex<Vec<tokio::task::JoinHandle<bool>>>,
    /// Messages Redis did not take (other nodes then learn of those changes by polling).
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Publishes `change` from a task of its own: the request that made it does not wait on
    /// Redis, and a failure only delays the change to the next poll of the other nodes.
    fn publish(&self, key: &hmac::Key, change: Change) {
        let message = Message {
            node: self.node.clone(),
            at: store::unix_now(),
            change,
        };
        let Ok(json) = serde_json::to_vec(&message) else {
            return;
        };
        let payload = seal(key, &self.channel, &json);
        let (redis, channel) = (self.redis.clone(), self.channel.clone());
        let failed = std::sync::Arc::clone(&self.failed);
        let sent = tokio::spawn(async move {
            let taken = redis.publish(&channel, &payload).await.is_ok();
            if !taken {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            taken
        });
        let mut sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        sending.retain(|s| !s.is_finished());
        sending.push(sent);
    }
}

impl Service {
    /// Publishes this node's changes on Redis from now on, as node `node` (a name unique to
    /// this process). Once: a second call is ignored.
    pub fn publish_changes(&self, redis: Redis, node: String) {
        let _ = self.publisher.set(Publisher {
            redis,
            channel: self.changes_channel(),
            node,
            sending: std::sync::Mutex::default(),
            failed: std::sync::Arc::default(),
        });
    }

    /// Change messages Redis did not take since the start (other nodes learn of those
    /// changes by polling the store, within about a second).
    pub fn changes_not_published(&self) -> u64 {
        self.publisher
            .get()
            .map_or(0, |p| p.failed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Waits until the changes published so far are sent (or failed): for a command that
    /// exits right after making one. Returns how many Redis did not take.
    pub async fn flush_changes(&self) -> u64 {
        let Some(publisher) = self.publisher.get() else {
            return 0;
        };
        let sending =
            std::mem::take(&mut *publisher.sending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failed = 0;
        for sent in sending {
            if !sent.await.unwrap_or(false) {
                failed += 1;
            }
        }
        failed
    }

    /// The Redis channel of this deployment's changes: [`CHANNEL_PREFIX`] and the issuer,
    /// which every node of a deployment shares.
    pub fn changes_channel(&self) -> String {
        format!("{CHANNEL_PREFIX}{}", self.settings.issuer)
    }

    /// Publishes `change` when [`Service::publish_changes`] was called.
    pub(crate) fn announce(&self, change: Change) {
        if let Some(publisher) = self.publisher.get() {
            publisher.publish(&self.message_key, change);
        }
    }

    /// Applies a message received on [`Service::changes_channel`], unless this node sent it.
    /// Returns the change applied, `None` for this node's own messages; an error for a
    /// message that is not one of ours (too long, a bad HMAC, an unknown shape, too old).
    pub fn apply_message(&self, payload: &[u8], now: i64) -> Result<Option<Change>> {
        if payload.len() > MAX_MESSAGE {
            return Err(crate::Error::Invalid("a change message is too long"));
        }
        let json = open(&self.message_key, &self.changes_channel(), payload).ok_or(
            crate::Error::Invalid("a change message without a good HMAC"),
        )?;
        let message: Message = serde_json::from_slice(json)
            .map_err(|_| crate::Error::Invalid("not a change message"))?;
        if message.at.abs_diff(now) > MESSAGE_LIFETIME.unsigned_abs() {
            return Err(crate::Error::Invalid(
                "a change message too old (or from the future)",
            ));
        }
        if self.publisher.get().is_some_and(|p| p.node == message.node) {
            return Ok(None);
        }
        self.apply(&message.change, now);
        Ok(Some(message.change))
    }

    /// Applies a change made by another node. Times are bounded: a revocation is kept no
    /// longer than the longest token lives, and a bulk revocation's time lies at most a few
    /// seconds ahead.
    pub fn apply(&self, change: &Change, now: i64) {
        let longest = now.saturating_add(secs(self.settings.policy.max_token_lifetime));
        let soon = now.saturating_add(FUTURE_SLACK);
        match change {
            Change::Revoked { jti, expires_at } => {
                self.revocations.revoke_jti(jti, (*expires_at).min(longest))
            }
            Change::ClientRevoked { client_id, at } => {
                self.revocations.revoke_client(client_id, (*at).min(soon));
                self.clients.forget(client_id);
            }
            Change::SubjectRevoked { subject, at } => {
                self.revocations.revoke_subject(subject, (*at).min(soon))
            }
            Change::Client { client_id } => self.clients.forget(client_id),
            Change::Keys => self.keys_changed.notify_one(),
        }
    }

    /// Re-reads everything other nodes may have changed: every revocation of a live token,
    /// the key ring, and every client. For a node that was not listening (Redis down,
    /// subscription being made).
    pub async fn catch_up(&self, now: i64) -> Result<()> {
        // Each step whatever the others did: a failed read of revocations must not keep
        // stale clients or keys.
        self.clients.forget_all();
        let revocations = self.resync_revocations(now).await;
        let keys = self.refresh_ring().await.map(|_| ());
        revocations.and(keys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_are_flat_json_with_the_node_the_time_and_the_kind() {
        let message = Message {
            node: "n1".into(),
            at: 7,
            change: Change::Revoked {
                jti: "j".into(),
                expires_at: 5,
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(
            text,
            r#"{"node":"n1","at":7,"kind":"revoked","jti":"j","expires_at":5}"#
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change, message.change);
        let keys: Message = serde_json::from_str(r#"{"node":"n2","at":1,"kind":"keys"}"#).unwrap();
        assert_eq!(keys.change, Change::Keys);
        let other = r#"{"node":"n2","at":1,"kind":"other"}"#;
        assert!(serde_json::from_str::<Message>(other).is_err());
    }

    #[test]
    fn only_messages_sealed_with_the_key_for_the_channel_open() {
        let key = message_key(&store::MasterKey::from_bytes([1; store::MASTER_KEY_LEN]));
        let other = message_key(&store::MasterKey::from_bytes([2; store::MASTER_KEY_LEN]));
        let json = br#"{"node":"n","at":1,"kind":"keys"}"#;
        let sealed = seal(&key, "c", json);
        assert_eq!(open(&key, "c", &sealed), Some(&json[..]));
        assert_eq!(open(&other, "c", &sealed), None, "another master key");
        assert_eq!(open(&key, "d", &sealed), None, "another channel");
        let mut changed = sealed.clone();
        if let Some(last) = changed.last_mut() {
            *last = b' ';
        }
        assert_eq!(open(&key, "c", &changed), None, "a changed message");
        assert_eq!(open(&key, "c", json), None, "no HMAC");
    }
}
