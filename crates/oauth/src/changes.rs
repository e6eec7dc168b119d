//! Changes one node makes that every other node must apply at once: revocations, client
//! changes and key-ring changes, published on a Redis channel after they are committed to the
//! store, and applied by every node that receives them.
//!
//! Best effort by design: the store stays the only truth. Every node also re-reads it
//! (revocations and the key list every second, each client after a second in its cache), so
//! a change whose message is lost (Redis down, a node reconnecting, a node started later)
//! still arrives, with the delay of polling. A message only brings forward what polling would
//! do, so a forged or replayed one can at most make a node re-read the store or refuse a
//! token early: never accept one.

use serde::{Deserialize, Serialize};
use store::redis::Redis;

use crate::error::Result;
use crate::service::Service;

/// Where the Redis channel's name starts; the issuer follows, so deployments sharing one
/// Redis server (channels are server-wide, whatever the database number) do not hear each
/// other: a subject revoked in one is not revoked in the other.
pub const CHANNEL_PREFIX: &str = "tokengate:changes:";

/// Longest message read; anything longer is not one of ours.
const MAX_MESSAGE: usize = 4096;

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
    #[serde(flatten)]
    change: Change,
}

/// Where this node publishes its changes.
#[derive(Debug)]
pub(crate) struct Publisher {
    redis: Redis,
    channel: String,
    node: String,
    /// Messages being sent, so a command that exits right after its change can wait for
    /// them ([`Service::flush_changes`]).
    sending: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Publisher {
    /// Publishes `change` from a task of its own: the request that made it does not wait on
    /// Redis, and a failure only delays the change to the next poll of the other nodes.
    fn publish(&self, change: Change) {
        let message = Message {
            node: self.node.clone(),
            change,
        };
        let Ok(payload) = serde_json::to_vec(&message) else {
            return;
        };
        let (redis, channel) = (self.redis.clone(), self.channel.clone());
        let sent = tokio::spawn(async move {
            let _ = redis.publish(&channel, &payload).await;
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
        });
    }

    /// Waits until the changes published so far are sent (or failed): for a command that
    /// exits right after making one.
    pub async fn flush_changes(&self) {
        let Some(publisher) = self.publisher.get() else {
            return;
        };
        let sending =
            std::mem::take(&mut *publisher.sending.lock().unwrap_or_else(|e| e.into_inner()));
        for sent in sending {
            let _ = sent.await;
        }
    }

    /// The Redis channel of this deployment's changes: [`CHANNEL_PREFIX`] and the issuer,
    /// which every node of a deployment shares.
    pub fn changes_channel(&self) -> String {
        format!("{CHANNEL_PREFIX}{}", self.settings.issuer)
    }

    /// Publishes `change` when [`Service::publish_changes`] was called.
    pub(crate) fn announce(&self, change: Change) {
        if let Some(publisher) = self.publisher.get() {
            publisher.publish(change);
        }
    }

    /// Applies a message received on [`Service::changes_channel`], unless this node sent it. Returns the
    /// change applied, `None` for this node's own messages; an error for a message that is
    /// not one of ours, or a key ring that cannot be read again.
    pub async fn apply_message(&self, payload: &[u8]) -> Result<Option<Change>> {
        if payload.len() > MAX_MESSAGE {
            return Err(crate::Error::Invalid("a change message is too long"));
        }
        let message: Message = serde_json::from_slice(payload)
            .map_err(|_| crate::Error::Invalid("not a change message"))?;
        if self.publisher.get().is_some_and(|p| p.node == message.node) {
            return Ok(None);
        }
        self.apply(&message.change).await?;
        Ok(Some(message.change))
    }

    /// Applies a change made by another node.
    pub async fn apply(&self, change: &Change) -> Result<()> {
        match change {
            Change::Revoked { jti, expires_at } => self.revocations.revoke_jti(jti, *expires_at),
            Change::ClientRevoked { client_id, at } => {
                self.revocations.revoke_client(client_id, *at);
                self.clients.forget(client_id);
            }
            Change::SubjectRevoked { subject, at } => self.revocations.revoke_subject(subject, *at),
            Change::Client { client_id } => self.clients.forget(client_id),
            Change::Keys => self.reload_ring().await?,
        }
        Ok(())
    }

    /// Re-reads everything other nodes may have changed: revocations, the key ring, and every
    /// client. For a node that was not listening (Redis down, subscription being made).
    pub async fn catch_up(&self, now: i64) -> Result<()> {
        self.refresh_revocations(now).await?;
        self.reload_ring().await?;
        self.clients.forget_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_are_flat_json_with_the_node_and_the_kind() {
        let message = Message {
            node: "n1".into(),
            change: Change::Revoked {
                jti: "j".into(),
                expires_at: 5,
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(
            text,
            r#"{"node":"n1","kind":"revoked","jti":"j","expires_at":5}"#
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change, message.change);
        let keys: Message = serde_json::from_str(r#"{"node":"n2","kind":"keys"}"#).unwrap();
        assert_eq!(keys.change, Change::Keys);
        assert!(serde_json::from_str::<Message>(r#"{"node":"n2","kind":"other"}"#).is_err());
    }
}
