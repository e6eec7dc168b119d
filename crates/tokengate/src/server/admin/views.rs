//! The admin API's request and response bodies. Each handler serialises (or parses) these
//! types, and the OpenAPI document's schemas are derived from them, so the two cannot differ.
//! Types of the `store` and `oauth` crates are not shown as they are: these views choose what
//! leaves the server (never a secret hash or a private key) and keep `utoipa` out of the
//! library crates.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{AuditRecord, Client, KeyRecord};
use utoipa::{IntoParams, ToSchema};

/// How a client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AuthMethod)]
pub(crate) enum AuthMethodName {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with one of the client's keys (RFC 7523).
    PrivateKeyJwt,
    /// None, a public client: no secret; it signs users in with PKCE.
    #[serde(rename = "none")]
    Public,
}

impl From<store::AuthMethod> for AuthMethodName {
    fn from(method: store::AuthMethod) -> Self {
        match method {
            store::AuthMethod::ClientSecretBasic => AuthMethodName::ClientSecretBasic,
            store::AuthMethod::ClientSecretPost => AuthMethodName::ClientSecretPost,
            store::AuthMethod::PrivateKeyJwt => AuthMethodName::PrivateKeyJwt,
            store::AuthMethod::Public => AuthMethodName::Public,
        }
    }
}

/// What a key is for (JWK `use`, RFC 7517 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = KeyUse)]
pub(crate) enum KeyUseName {
    /// Signing access tokens.
    Sig,
    /// Encrypting access tokens to an audience.
    Enc,
    /// Signing the audit log's checkpoints.
    Audit,
}

impl From<store::KeyUse> for KeyUseName {
    fn from(key_use: store::KeyUse) -> Self {
        match key_use {
            store::KeyUse::Sig => KeyUseName::Sig,
            store::KeyUse::Enc => KeyUseName::Enc,
            store::KeyUse::Audit => KeyUseName::Audit,
        }
    }
}

/// Where a key is in its lifecycle; states only move forward, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = KeyState)]
pub(crate) enum KeyStateName {
    /// Published in the JWKS, not yet in use, so that verifiers learn it first.
    Pending,
    /// In use for new tokens.
    Active,
    /// No longer used; still published until every token it signed has expired.
    Retired,
    /// No longer published.
    Removed,
}

impl From<store::KeyState> for KeyStateName {
    fn from(state: store::KeyState) -> Self {
        match state {
            store::KeyState::Pending => KeyStateName::Pending,
            store::KeyState::Active => KeyStateName::Active,
            store::KeyState::Retired => KeyStateName::Retired,
            store::KeyState::Removed => KeyStateName::Removed,
        }
    }
}

/// A JSON Web Key Set (RFC 7517 §5) holding public keys only.
// Only describes a JSON shape for the document: the set itself is kept as JSON and checked by
// the token service.
#[allow(dead_code)]
#[derive(ToSchema)]
pub(super) struct JwkSet {
    /// The keys, each a JWK (RFC 7517 §4).
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

/// An OAuth client as the admin API shows it: never its secret nor the secret's hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Client)]
pub(crate) struct ClientView {
    /// The client's identifier, chosen by the server.
    client_id: String,
    /// A human-readable name.
    name: String,
    auth_method: AuthMethodName,
    /// Whether `auth_method` is the only way the client may authenticate. When false, a
    /// client with a secret may present it with HTTP Basic or in the form.
    auth_method_pinned: bool,
    /// Scopes the client may ask for (RFC 6749 §3.3 scope tokens).
    scopes: Vec<String>,
    /// Audiences (RFC 8707 resource indicators) the client may ask for; empty means any
    /// audience the server declares.
    audiences: Vec<String>,
    /// The client's public keys, used with `private_key_jwt`; null otherwise.
    #[schema(value_type = Option<JwkSet>, required = true)]
    jwks: Option<Value>,
    /// A disabled client cannot obtain, introspect or revoke tokens.
    disabled: bool,
    /// Registration time, Unix seconds.
    created_at: i64,
    /// The redirect URIs the client may use to sign users in, matched exactly.
    redirect_uris: Vec<String>,
    /// Registered by an operator (the CLI or this API); false for a client that registered
    /// itself (RFC 7591).
    first_party: bool,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        ClientView {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            auth_method: c.auth_method.into(),
            auth_method_pinned: c.auth_method_pinned,
            scopes: c.scopes.clone(),
            audiences: c.audiences.clone(),
            jwks: c
                .jwks
                .as_deref()
                .and_then(|j| serde_json::from_str::<Value>(j).ok()),
            disabled: c.disabled,
            redirect_uris: c.redirect_uris.clone(),
            created_at: c.created_at,
            first_party: c.first_party,
        }
    }
}

/// A signing or encryption key as the admin API shows it: never its private half.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Key)]
pub(crate) struct KeyView {
    /// The key id (JWK `kid`).
    kid: String,
    #[serde(rename = "use")]
    key_use: KeyUseName,
    /// The JWA algorithm (RFC 7518) the key is for.
    alg: String,
    state: KeyStateName,
    /// Creation time, Unix seconds.
    created_at: i64,
    /// When the key becomes (or became) active, Unix seconds.
    activate_at: i64,
    /// When the key was retired, Unix seconds.
    #[schema(required = true)]
    retired_at: Option<i64>,
    /// After this time (Unix seconds) every token the key signed has expired, and the key
    /// leaves the JWKS.
    #[schema(required = true)]
    remove_after: Option<i64>,
    /// The public half as a JWK; null for a symmetric key, which has none to show.
    #[schema(value_type = Option<Object>, required = true)]
    public_jwk: Option<Value>,
}

impl From<&KeyRecord> for KeyView {
    fn from(k: &KeyRecord) -> Self {
        // A symmetric key's "public" JWK would be the secret itself.
        let public = serde_json::from_str::<Value>(&k.public_jwk)
            .ok()
            .filter(|v| {
                v.get("k").is_none() && v.get("kty").and_then(Value::as_str) != Some("oct")
            });
        KeyView {
            kid: k.kid.clone(),
            key_use: k.key_use.into(),
            alg: k.alg.clone(),
            state: k.state.into(),
            created_at: k.created_at,
            activate_at: k.activate_at,
            retired_at: k.retired_at,
            remove_after: k.remove_after,
            public_jwk: public,
        }
    }
}

/// An issued access token, as recorded (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = IssuedToken)]
pub(super) struct TokenView {
    /// Its `jti`.
    jti: String,
    /// The client it was issued to.
    client_id: String,
    /// Its `sub`.
    subject: String,
    /// Its `aud`.
    audience: String,
    /// Its `scope` (space-separated).
    scope: String,
    /// `iat`, Unix seconds.
    issued_at: i64,
    /// `exp`, Unix seconds.
    expires_at: i64,
    /// When it was revoked, Unix seconds.
    #[schema(required = true)]
    revoked_at: Option<i64>,
    /// `revoked`, `expired` or `active`, as of the response.
    #[schema(examples("active", "expired", "revoked"))]
    state: &'static str,
}

impl TokenView {
    pub(super) fn at(t: &store::IssuedToken, now: i64) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        TokenView {
            jti: t.jti.clone(),
            client_id: t.client_id.clone(),
            subject: t.subject.clone(),
            audience: t.audience.clone(),
            scope: t.scope.clone(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            state,
        }
    }
}

/// One event of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEvent)]
pub(super) struct AuditEventView {
    /// The event's id: ever increasing, never reused.
    id: i64,
    /// The event's place in the tamper-evident log: 0, 1, 2, … with no gaps.
    #[schema(required = true)]
    seq: Option<i64>,
    /// The event's leaf hash in the log's Merkle tree (standard base64).
    #[schema(required = true)]
    hash: Option<String>,
    /// When it happened, Unix seconds.
    time: i64,
    /// What happened.
    #[schema(examples("token.issued", "token.revoked", "key.rotated", "client.created"))]
    event: String,
    /// The client involved.
    #[schema(required = true)]
    client_id: Option<String>,
    /// The subject involved.
    #[schema(required = true)]
    subject: Option<String>,
    /// The token involved (its `jti`).
    #[schema(required = true)]
    jti: Option<String>,
    /// The audience involved.
    #[schema(required = true)]
    audience: Option<String>,
    /// How it ended: `success` or `failure`.
    #[schema(examples("success", "failure"))]
    outcome: String,
    /// Why it failed: an error code.
    #[schema(required = true)]
    reason: Option<String>,
    /// The request that caused it (the `X-Request-Id` of its response).
    #[schema(required = true)]
    request_id: Option<String>,
    /// What else the event names (an admin credential, a source address, a count…).
    #[schema(required = true, value_type = Option<Object>)]
    detail: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<&AuditRecord> for AuditEventView {
    fn from(r: &AuditRecord) -> Self {
        let e = &r.event;
        AuditEventView {
            id: r.id,
            seq: r.seq,
            hash: r.hash.clone(),
            detail: e.detail.clone(),
            time: e.time,
            event: e.event.clone(),
            client_id: e.client_id.clone(),
            subject: e.subject.clone(),
            jti: e.jti.clone(),
            audience: e.audience.clone(),
            outcome: e.outcome.clone(),
            reason: e.reason.clone(),
            request_id: e.request_id.clone(),
        }
    }
}

/// Every registered client, disabled ones included.
#[derive(Serialize, ToSchema)]
pub(super) struct ClientList {
    pub(super) clients: Vec<ClientView>,
}

/// Every key the server knows, removed ones included.
#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    pub(super) keys: Vec<KeyView>,
}

/// A signed checkpoint of the audit log: a C2SP `tlog-checkpoint` in a `signed-note`.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditCheckpoint)]
pub(super) struct CheckpointView {
    /// The log's name: the note's origin line.
    pub(super) origin: String,
    /// How many events the checkpoint signs (sequence numbers 0 to size - 1).
    pub(super) size: i64,
    /// The Merkle tree's root hash (RFC 9162; standard base64).
    pub(super) root: String,
    /// The signed note, verifiable with the keys at `/.well-known/tokengate-audit-keys`.
    pub(super) note: String,
    /// When it was signed, Unix seconds.
    pub(super) created_at: i64,
}

impl CheckpointView {
    /// A stored checkpoint with the size and root its note's signature covers.
    pub(super) fn signed(
        c: &store::StoredCheckpoint,
        origin: &str,
        size: u64,
        root: &audit::tree::Hash,
    ) -> Self {
        CheckpointView {
            origin: origin.to_owned(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            root: audit::event::encode_hash(root),
            note: c.note.clone(),
            created_at: c.created_at,
        }
    }
}

/// An inclusion proof (RFC 9162 §2.1.3): the audit path from one event's leaf to the root
/// of the newest checkpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditInclusionProof)]
pub(super) struct ProofView {
    /// The event's sequence number (its leaf index).
    pub(super) seq: u64,
    /// The event's leaf hash (standard base64).
    pub(super) leaf_hash: String,
    /// The sibling hashes from the leaf up (standard base64).
    pub(super) inclusion_path: Vec<String>,
    /// The checkpoint whose tree the path leads to.
    pub(super) checkpoint: CheckpointView,
}

/// The configuration in effect.
#[derive(Serialize, ToSchema)]
pub(super) struct ConfigurationView {
    /// The effective settings, defaults filled in, as `tokengate config check` prints them
    /// (no secret: tokens, passwords and URLs' user information, query and fragment are never
    /// shown). The routes are the last successful reload's; every other setting is shown as
    /// the node started (a reload also applies issuers, rate limits and cache settings to
    /// the gateway: docs/gateway.md).
    #[schema(value_type = Object)]
    pub(super) configuration: serde_json::Value,
    /// Whether `POST /admin/reload` can reload it (the server was started with `--config`).
    pub(super) reloadable: bool,
    /// When the routes were last reloaded, Unix seconds.
    #[schema(required = true)]
    pub(super) reloaded_at: Option<i64>,
    /// The keyed fingerprint of the file's text at that reload (as in `config.reloaded`).
    #[schema(required = true)]
    pub(super) fingerprint: Option<String>,
}

/// The outcome of verifying the whole audit log.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditVerification {
    /// Whether every event and checkpoint verified.
    pub(super) ok: bool,
    /// What `tokengate audit verify` prints: the counts, or the first fault.
    pub(super) summary: String,
    /// The first fault found, when `ok` is false.
    #[schema(required = true)]
    pub(super) fault: Option<AuditFault>,
}

/// The first thing found wrong in the audit log.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditFault {
    /// The first bad sequence number.
    pub(super) seq: u64,
    /// What was found.
    #[schema(examples(
        "changed",
        "missing",
        "inserted",
        "reordered",
        "truncated",
        "bad signature"
    ))]
    pub(super) kind: &'static str,
    /// In words.
    pub(super) detail: String,
}

/// Recorded tokens, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    pub(super) tokens: Vec<TokenView>,
}

/// Which tokens `GET /admin/tokens` looks up: exactly one of `jti`, `client_id`, `subject`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct TokenQuery {
    /// The token with this `jti`.
    pub(super) jti: Option<String>,
    /// A client's tokens.
    pub(super) client_id: Option<String>,
    /// A subject's tokens.
    pub(super) subject: Option<String>,
    /// At most this many, newest first.
    #[serde(default = "default_token_limit")]
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub(super) limit: u32,
}

fn default_token_limit() -> u32 {
    50
}

/// A page of audit events in ascending id order.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    pub(super) events: Vec<AuditEventView>,
}

/// A client's credentials: shown once, in this response only.
#[derive(Serialize, ToSchema)]
#[schema(as = Credentials)]
pub(super) struct CredentialsView<'a> {
    /// The client's identifier.
    pub(super) client_id: &'a str,
    /// Only for `client_secret_basic` and `client_secret_post`: 256 random bits, base64url.
    /// The server keeps only a keyed hash of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(super) client_secret: Option<&'a str>,
}

impl<'a> From<&'a oauth::Credentials> for CredentialsView<'a> {
    fn from(c: &'a oauth::Credentials) -> Self {
        CredentialsView {
            client_id: &c.client_id,
            client_secret: c.client_secret.as_ref().map(|s| s.as_str()),
        }
    }
}

/// The key a rotation created.
#[derive(Serialize, ToSchema)]
pub(super) struct KeyRotation {
    /// The new key's id.
    pub(super) kid: String,
    #[serde(rename = "use")]
    pub(super) key_use: KeyUseName,
    /// When the new key becomes active, Unix seconds.
    pub(super) activate_at: i64,
}

/// The outcome of a revocation.
#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    /// How many tokens this request revoked that were not revoked before.
    pub(super) revoked: u64,
}

/// Which stored responses to purge.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PurgeQuery {
    /// Only this route's (default: every route that caches).
    pub(super) route: Option<String>,
    /// Only responses to paths starting with this (default: every path).
    pub(super) path_prefix: Option<String>,
}

/// The outcome of a purge.
#[derive(Serialize, ToSchema)]
pub(super) struct Purged {
    /// How many stored entries were removed (in Redis, a varying response's field list
    /// counts as one).
    pub(super) purged: u64,
}

/// The outcome of a reload.
#[derive(Serialize, ToSchema)]
pub(super) struct Reloaded {
    /// Always true: a reload that fails answers 409.
    pub(super) reloaded: bool,
    /// How many gateway routes are now served.
    pub(super) routes: usize,
}

/// A client to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewClient)]
pub(super) struct NewClientBody {
    /// A human-readable name.
    #[schema(min_length = 1)]
    pub(super) name: String,
    /// Scopes the client may ask for (RFC 6749 §3.3 scope tokens).
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    /// Audiences (RFC 8707 resource indicators) the client may ask for.
    #[serde(default)]
    pub(super) audiences: Vec<String>,
    /// The only way the client may authenticate. When absent, the client gets a secret it
    /// may present with HTTP Basic or in the form (`client_secret_basic` or
    /// `client_secret_post`), as client libraries differ in their default.
    // Parsed by the handler, which names the accepted values when it refuses one.
    #[serde(default)]
    #[schema(value_type = Option<AuthMethodName>)]
    pub(super) auth_method: Option<String>,
    /// Required with `private_key_jwt`, refused with the other methods.
    #[serde(default)]
    #[schema(value_type = Option<JwkSet>)]
    pub(super) jwks: Option<Value>,
    /// The redirect URIs the client may use to sign users in (https, http on loopback, or
    /// a private-use scheme such as `com.example.app:/cb`); at least one for a public
    /// client (`auth_method` `none`). At most 10.
    #[serde(default)]
    pub(super) redirect_uris: Vec<String>,
}

/// Which key to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KeyRotationRequest)]
pub(super) struct RotateBody {
    /// `sig` when absent.
    // Parsed by the handler, which names the accepted values when it refuses one.
    #[serde(rename = "use", default)]
    #[schema(value_type = Option<KeyUseName>)]
    pub(super) key_use: Option<String>,
}

/// The tokens to revoke: exactly one of `jti`, `client_id` or `subject`, not empty.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RevocationRequest, min_properties = 1, max_properties = 1)]
pub(super) struct RevokeBody {
    /// Revoke the token with this `jti`.
    #[schema(min_length = 1, nullable = false)]
    pub(super) jti: Option<String>,
    /// Revoke every token issued to this client.
    #[schema(min_length = 1, nullable = false)]
    pub(super) client_id: Option<String>,
    /// Revoke every token issued for this subject.
    #[schema(min_length = 1, nullable = false)]
    pub(super) subject: Option<String>,
}

/// A page of the audit trail.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only events whose id is greater than this.
    #[serde(default)]
    #[param(default = 0)]
    pub(super) after: i64,
    /// At most this many events.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub(super) limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// The body of every error response.
// The bodies are written by `server::error_json`; this type describes them for the document,
// and a test holds the two together.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub(super) struct ErrorBody {
    /// A stable, machine-readable code.
    #[schema(examples(
        "invalid_request",
        "unauthorized",
        "not_found",
        "conflict",
        "invalid_config",
        "server_error",
        "temporarily_unavailable"
    ))]
    pub(super) error: String,
    /// What went wrong, for people.
    pub(super) error_description: String,
    /// The `X-Request-Id` of the response, also in the log and the audit trail.
    pub(super) request_id: String,
}

/// A client as the API and the CLI show it, as JSON.
pub(crate) fn client_view(c: &Client) -> Value {
    to_json(&ClientView::from(c))
}

/// A key as the API and the CLI show it, as JSON.
pub(crate) fn key_view(k: &KeyRecord) -> Value {
    to_json(&KeyView::from(k))
}

/// These views hold strings, numbers, booleans and JSON values only, which always serialise:
/// the `Null` fallback is never taken.
fn to_json<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The views spell every variant as the store does.
    #[test]
    fn enum_names_match_the_store() {
        use store::{AuthMethod, KeyState, KeyUse};
        for m in [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
            AuthMethod::Public,
        ] {
            assert_eq!(to_json(&AuthMethodName::from(m)), m.as_str());
        }
        for u in [KeyUse::Sig, KeyUse::Enc, KeyUse::Audit] {
            assert_eq!(to_json(&KeyUseName::from(u)), u.as_str());
        }
        for s in [
            KeyState::Pending,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Removed,
        ] {
            assert_eq!(to_json(&KeyStateName::from(s)), s.as_str());
        }
    }
}
