//! The token service: settings, the shared key ring, and the work that is not one endpoint
//! (metadata, reading our own tokens, the periodic lifecycle step).

use std::sync::{Arc, RwLock};

use jose::jwe::DecryptOptions;
use jose::jwt::{self, Claims, Validation};
use jose::{Algorithm, JwkSet};
use serde_json::{json, Value};
use store::{AuditEvent, KeyState, KeyUse, MasterKey, Store};
use zeroize::Zeroizing;

use crate::clients::ClientCache;
use crate::dpop::{self, Nonces};
use crate::error::Result;
use crate::keyring::secs;
use crate::keyring::{KeyRing, Policy};
use crate::mint::{EncryptTo, AT_JWT};
use crate::recorder::Recorder;
use crate::revocations::Revocations;

/// Lifetime of [`Service::internal_token`]s, seconds.
pub const INTERNAL_TOKEN_LIFETIME: i64 = 60;

/// How long a token's record is kept after it expired (seconds): a day, far past any
/// gateway's leeway, so a revocation is never forgotten while some gateway could still
/// accept the token.
const KEEP_EXPIRED_TOKENS: i64 = 24 * 3600;

/// Expired token records deleted per maintenance step (every few seconds): a backlog is
/// worked off in short statements.
const PURGE_BATCH: u32 = 10_000;

/// Paths of the endpoints, below the issuer URL.
pub mod paths {
    /// RFC 6749 token endpoint.
    pub const TOKEN: &str = "/oauth2/token";
    /// RFC 7662 introspection endpoint.
    pub const INTROSPECT: &str = "/oauth2/introspect";
    /// RFC 7009 revocation endpoint.
    pub const REVOKE: &str = "/oauth2/revoke";
    /// The JWKS (`jwks_uri`).
    pub const JWKS: &str = "/oauth2/jwks";
    /// RFC 6749 authorization endpoint.
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    /// RFC 7591 registration endpoint.
    pub const REGISTER: &str = "/oauth2/register";
}

/// A resource server tokens are issued for.
#[derive(Debug)]
pub struct Audience {
    /// Its identifier (`aud`, RFC 8707 `resource`).
    pub id: String,
    /// The scopes it accepts.
    pub scopes: Vec<String>,
    /// Whether and to whom its tokens are encrypted.
    pub encrypt: Option<EncryptTo>,
    /// Token lifetime in seconds, instead of the service's.
    pub token_lifetime: Option<u64>,
}

/// Another issuer whose access tokens may be exchanged for ours (RFC 8693).
#[derive(Debug)]
pub struct TrustedIssuer {
    /// Its `iss`.
    pub issuer: String,
    /// Its public keys.
    pub keys: JwkSet,
    /// The algorithms its tokens may use.
    pub algorithms: Vec<Algorithm>,
    /// The `aud` its tokens must carry to be exchanged here; default: our issuer.
    pub audience: Option<String>,
}

/// DPoP settings.
#[derive(Debug, Clone, Copy)]
pub struct DpopSettings {
    /// How far a proof's `iat` may lie from now, in seconds. Default 60.
    pub window: u64,
    /// Whether every proof must carry a server nonce (RFC 9449 §8). Default false.
    pub require_nonce: bool,
}

impl Default for DpopSettings {
    fn default() -> Self {
        DpopSettings {
            window: 60,
            require_nonce: false,
        }
    }
}

/// What the service does; built by the binary from its configuration.
#[derive(Debug)]
pub struct Settings {
    /// The issuer identifier (`iss`) and base of every endpoint URL.
    pub issuer: String,
    /// Key algorithms and the longest token lifetime.
    pub policy: Policy,
    /// Default token lifetime in seconds.
    pub token_lifetime: u64,
    /// `Cache-Control: max-age` of the JWKS; also the pre-publication time of a new key.
    pub jwks_max_age: u64,
    /// Rotate the active keys this often (seconds), if set.
    pub rotate_every: Option<u64>,
    /// The declared audiences. When empty, a client may ask for any audience it is
    /// registered for, with the default policy (not encrypted, default lifetime).
    pub audiences: Vec<Audience>,
    /// Issuers whose tokens may be exchanged.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// DPoP.
    pub dpop: DpopSettings,
    /// The name a new audit log is given (its checkpoints' origin line); by default
    /// [`origin_for`](crate::origin_for) the issuer. A log keeps the name it was first given.
    pub audit_origin: Option<String>,
    /// User sign-in (the authorization endpoint); `None`: machines only.
    pub login: Option<crate::sign_in::Login>,
    /// Refresh tokens of signed-in users.
    pub refresh: crate::refresh::RefreshSettings,
    /// RFC 7591 dynamic client registration.
    pub registration: crate::registration::DynamicRegistration,
}

impl Settings {
    /// Settings for `issuer` with every default.
    pub fn new(issuer: impl Into<String>) -> Settings {
        Settings {
            issuer: issuer.into(),
            policy: Policy::default(),
            token_lifetime: 300,
            jwks_max_age: 600,
            rotate_every: None,
            audiences: Vec::new(),
            trusted_issuers: Vec::new(),
            dpop: DpopSettings::default(),
            audit_origin: None,
            login: None,
            refresh: crate::refresh::RefreshSettings::default(),
            registration: crate::registration::DynamicRegistration::default(),
        }
    }
}

/// The token service, shared by every request handler.
pub struct Service {
    pub(crate) store: Store,
    master: MasterKey,
    pub(crate) pepper: Zeroizing<[u8; 32]>,
    pub(crate) nonces: Option<Nonces>,
    pub(crate) settings: Settings,
    /// The ring in use, with the ticket of the load that made it.
    ring: RwLock<(u64, Arc<KeyRing>)>,
    /// Tickets of ring loads, taken before each load reads the store: a ring is installed
    /// only over one loaded earlier, so a slow load (the lifecycle step's, a rotation's)
    /// never puts back keys a later load (on a change message or the poll) replaced.
    ring_tickets: std::sync::atomic::AtomicU64,
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) recorder: Recorder,
    pub(crate) clients: ClientCache,
    /// Denials are audited through a bounded queue: failing requests cost no synchronous
    /// database write.
    pub(crate) denials: store::AuditQueue,
    /// Where changes are published to the other nodes, when Redis is configured.
    pub(crate) publisher: std::sync::OnceLock<crate::changes::Publisher>,
    /// Authenticates change messages (derived from the master key).
    pub(crate) message_key: aws_lc_rs::hmac::Key,
    /// Woken by a change message about keys: the node's ring task compares and reloads, so
    /// the message loop never waits on the store.
    pub(crate) keys_changed: tokio::sync::Notify,
    /// This node's copy of the audit log's tree.
    audit_log: crate::audit_log::AuditLog,
    /// Seal the sign-in flow's cookies.
    pub(crate) sealers: crate::sign_in::Sealers,
    /// Clients known by their metadata documents.
    pub(crate) documents: crate::client_document::ClientDocuments,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the service over a store: checks the master key against it (refusing a wrong
    /// one before anything is written), then loads the key ring, creating the first keys on
    /// a first boot.
    pub async fn start(
        store: Store,
        master: MasterKey,
        settings: Settings,
        now: i64,
    ) -> Result<Service> {
        let ring = KeyRing::load_or_init(&store, &master, &settings.policy, now).await?;
        let pepper = master.derive("client-secret-pepper");
        let nonces = settings
            .dpop
            .require_nonce
            .then(|| Nonces::new(master.derive("dpop-nonce").as_slice(), 300));
        let revocations = Arc::new(Revocations::default());
        revocations
            .refresh(&store, now, secs(settings.policy.max_token_lifetime))
            .await?;
        let recorder = Recorder::spawn(store.clone());
        let message_key = crate::changes::message_key(&master);
        let origin = match &settings.audit_origin {
            Some(origin) => origin.clone(),
            None => crate::audit_log::origin_for(&settings.issuer),
        };
        let audit_log = crate::audit_log::AuditLog::open(&store, &origin).await?;
        Ok(Service {
            sealers: crate::sign_in::Sealers::new(&master)?,
            documents: crate::client_document::ClientDocuments::default(),
            audit_log,
            denials: store::AuditQueue::spawn(store.clone()),
            clients: ClientCache::default(),
            recorder,
            store,
            master,
            pepper,
            nonces,
            settings,
            ring: RwLock::new((0, Arc::new(ring))),
            ring_tickets: std::sync::atomic::AtomicU64::new(0),
            revocations,
            publisher: std::sync::OnceLock::new(),
            message_key,
            keys_changed: tokio::sync::Notify::new(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The revocation list of our tokens (for the gateway's per-request check).
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Reads revocations made elsewhere (other nodes, the CLI) into [`Service::revocations`].
    pub async fn refresh_revocations(&self, now: i64) -> Result<()> {
        self.revocations
            .refresh(
                &self.store,
                now,
                secs(self.settings.policy.max_token_lifetime),
            )
            .await
    }

    /// Reads again every revocation of a token that may still be live
    /// ([`Revocations::resync`]).
    pub async fn resync_revocations(&self, now: i64) -> Result<()> {
        self.revocations
            .resync(
                &self.store,
                now,
                secs(self.settings.policy.max_token_lifetime),
            )
            .await
    }

    /// Reads the key ring again from the store (changed by another node or the CLI).
    pub async fn reload_ring(&self) -> Result<()> {
        let ticket = self
            .ring_tickets
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            .saturating_add(1);
        let ring = KeyRing::load(&self.store, &self.master, &self.settings.policy).await?;
        let mut guard = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if ticket > guard.0 {
            *guard = (ticket, Arc::new(ring));
        }
        Ok(())
    }

    /// Waits until another node says the key ring changed
    /// ([`Change::Keys`](crate::changes::Change::Keys)); then [`Service::refresh_ring`].
    pub async fn keys_changed(&self) {
        self.keys_changed.notified().await;
    }

    /// Reloads the key ring when the store's keys differ from the ring's (one cheap query
    /// when nothing changed): how a change made elsewhere reaches this node within a
    /// second without Redis, or when its message was lost.
    pub async fn refresh_ring(&self) -> Result<bool> {
        let mut stored = self.store.list_keys().await?;
        stored.retain(|k| k.state != KeyState::Removed);
        stored.sort_by(|a, b| a.kid.cmp(&b.kid));
        let ring = self.ring();
        let mut held: Vec<&store::KeyRecord> = ring.keys().map(|k| &k.record).collect();
        held.sort_by(|a, b| a.kid.cmp(&b.kid));
        if stored.iter().eq(held) {
            return Ok(false);
        }
        self.reload_ring().await?;
        Ok(true)
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        let guard = self.ring.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard.1)
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The absolute URL of an endpoint path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.issuer.trim_end_matches('/'))
    }

    /// The current DPoP nonce, when nonces are required.
    pub fn dpop_nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(now))
    }

    /// The public JWKS document.
    pub fn jwks(&self) -> Value {
        Value::Object(self.ring().jwks().to_map())
    }

    /// The authorization server metadata (RFC 8414), also served as the OpenID
    /// configuration.
    pub fn metadata(&self) -> Value {
        let signing: Vec<&str> = dpop::ALGORITHMS.iter().map(|a| a.name()).collect();
        let auth_methods = [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ];
        let mut token_auth_methods = auth_methods.to_vec();
        let mut grant_types = vec!["client_credentials", crate::token::TOKEN_EXCHANGE];
        let mut scopes: Vec<&str> = self
            .settings
            .audiences
            .iter()
            .flat_map(|a| a.scopes.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let metadata = json!({
            "issuer": self.settings.issuer,
            "token_endpoint": self.url(paths::TOKEN),
            "jwks_uri": self.url(paths::JWKS),
            "introspection_endpoint": self.url(paths::INTROSPECT),
            "revocation_endpoint": self.url(paths::REVOKE),
            "response_types_supported": [],
            "token_endpoint_auth_signing_alg_values_supported": signing,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_signing_alg_values_supported": signing,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": signing,
            "introspection_signing_alg_values_supported": [self.ring().signing_alg().name()],
            "dpop_signing_alg_values_supported": signing,
            "scopes_supported": scopes,
        });
        let Value::Object(mut metadata) = metadata else {
            return metadata;
        };
        if self.settings.login.is_some() {
            // RFC 8414 §2 with RFC 9207 and RFC 7636: users sign in here.
            grant_types.push(crate::token::AUTHORIZATION_CODE);
            grant_types.push(crate::token::REFRESH_TOKEN);
            token_auth_methods.push("none");
            for (name, value) in [
                ("authorization_endpoint", self.url(paths::AUTHORIZE).into()),
                ("response_types_supported", json!(["code"])),
                ("response_modes_supported", json!(["query"])),
                ("code_challenge_methods_supported", json!(["S256"])),
                (
                    "authorization_response_iss_parameter_supported",
                    true.into(),
                ),
            ] {
                metadata.insert(name.into(), value);
            }
        }
        if self.metadata_documents() != crate::client_document::MetadataDocuments::Off {
            metadata.insert("client_id_metadata_document_supported".into(), true.into());
        }
        if self.registration_enabled() {
            metadata.insert(
                "registration_endpoint".into(),
                self.url(paths::REGISTER).into(),
            );
        }
        metadata.insert("grant_types_supported".into(), json!(grant_types));
        metadata.insert(
            "token_endpoint_auth_methods_supported".into(),
            json!(token_auth_methods),
        );
        Value::Object(metadata)
    }

    /// Verifies a token the service issued (signed, or nested in a JWE to our key) and
    /// returns its claims; the store decides whether it is still active.
    pub(crate) fn read_own(&self, token: &str, now: i64) -> Option<Claims> {
        let ring = self.ring();
        let validation = Validation::new()
            .algorithms_from_key()
            .issuer(self.settings.issuer.clone())
            .waive_audience()
            .typ(AT_JWT)
            .at_time(now);
        let verified = if token.bytes().filter(|b| *b == b'.').count() == 4 {
            jwt::decrypt_and_verify(
                token,
                ring.decryption_keys(),
                &DecryptOptions::from_key(),
                ring.jwks(),
                &validation,
            )
        } else {
            jwt::verify(token, ring.jwks(), &validation)
        };
        verified.ok().map(|jwt| jwt.claims)
    }

    /// The stored record of one of our tokens, if it is recorded and not revoked.
    pub(crate) async fn active(&self, claims: &Claims) -> Result<Option<store::IssuedToken>> {
        let Some(jti) = claims.jti() else {
            return Ok(None);
        };
        Ok(self
            .store
            .token(jti)
            .await?
            .filter(|t| t.revoked_at.is_none()))
    }

    /// A short-lived token (60 s) for an upstream, signed with the active key, carrying
    /// `claims` (a token the gateway verified) re-issued by us: `iss` ours, `aud` the route's
    /// audience, fresh `iat`, `exp` and `jti`, no `cnf`. Upstreams verify it with our JWKS and
    /// never see the client's token (the phantom-token pattern). It never outlives the
    /// verified token (`not_after`, its `exp`). Returns it and its `exp`.
    pub fn internal_token(
        &self,
        claims: &serde_json::Map<String, Value>,
        audience: &str,
        now: i64,
        not_after: i64,
    ) -> Result<(String, i64)> {
        let mut out = claims.clone();
        for name in ["iss", "aud", "exp", "iat", "nbf", "jti", "cnf"] {
            out.remove(name);
        }
        let exp = now.saturating_add(INTERNAL_TOKEN_LIFETIME).min(not_after);
        out.insert("iss".into(), self.settings.issuer.clone().into());
        out.insert("aud".into(), audience.into());
        out.insert("iat".into(), now.into());
        out.insert("exp".into(), exp.into());
        out.insert("jti".into(), crate::mint::random_jti()?.into());
        let ring = self.ring();
        let token = jwt::sign(&out, ring.active_signing(), ring.signing_alg(), Some("JWT"))?;
        Ok((token, exp))
    }

    /// Signs a checkpoint of the audit log when events were added since the newest one
    /// (see [`AuditLog`](crate::AuditLog)); returns it, or `None` when none was due.
    pub async fn checkpoint_audit(&self, now: i64) -> Result<Option<store::StoredCheckpoint>> {
        let ring = self.ring();
        self.audit_log.checkpoint(&self.store, &ring, now).await
    }

    /// The inclusion proof of audit event `seq` in the newest checkpoint's tree.
    pub async fn prove_audit(&self, seq: u64) -> Result<Option<crate::InclusionProof>> {
        let keys = self.audit_keys()?;
        self.audit_log.prove(&self.store, &keys, seq).await
    }

    /// The HMAC-SHA-256 (hex) of `data` under a key derived from the master key: names a
    /// configuration in the audit log without letting anyone who knows the rest of the file
    /// confirm a guessed secret in it, as a plain hash would.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            self.master.derive("config-fingerprint").as_slice(),
        );
        let tag = aws_lc_rs::hmac::sign(&key, data);
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Writes the audit events still queued (the denials tallied in this interval).
    pub async fn flush_audit(&self) {
        self.denials.flush().await;
    }

    /// The newest checkpoint of the audit log, with the size and root its signature covers.
    pub async fn newest_audit_checkpoint(
        &self,
    ) -> Result<Option<(store::StoredCheckpoint, u64, audit::tree::Hash)>> {
        let keys = self.audit_keys()?;
        self.audit_log.newest(&self.store, &keys).await
    }

    /// The audit log's name (its checkpoints' origin line).
    pub fn audit_origin(&self) -> &str {
        self.audit_log.origin()
    }

    /// The public keys of every audit key, which verify the log's checkpoints.
    pub fn audit_keys(&self) -> Result<Vec<audit::note::VerifierKey>> {
        self.audit_log.verifier_keys(&self.ring())
    }

    /// [`audit_keys_document`](crate::audit_keys_document) of the ring's audit keys, their
    /// public halves taken from the decrypted keys.
    pub fn audit_keys_document(&self) -> Result<serde_json::Value> {
        let ring = self.ring();
        let keys = ring
            .audit_keys()
            .map(|k| Ok((&k.record, k.jwk.to_public()?.to_json())))
            .collect::<Result<Vec<_>>>()?;
        crate::audit_keys_document(self.audit_origin(), keys.into_iter())
    }

    /// Appends an audit event; a failure is returned, so the caller reports it rather than
    /// success.
    pub(crate) async fn audit(&self, event: &AuditEvent) -> Result<()> {
        self.store.append_audit(event).await?;
        Ok(())
    }

    /// One step of the key lifecycle, run periodically by every node: promotes due keys,
    /// removes expired ones, starts a scheduled rotation when the active key is older than
    /// `rotate_every`, forgets expired single-use jtis, revokes tokens recorded for clients
    /// already disabled (issued by a request that authenticated just before), deletes the
    /// records of tokens expired for a day (a batch per step), and reloads the ring when
    /// it changed (here, on another node or by the CLI), so the change takes effect here.
    pub async fn maintain(&self, now: i64) -> Result<()> {
        let before = self.store.list_keys().await?;
        let mut ring = KeyRing::load(&self.store, &self.master, &self.settings.policy).await?;
        ring.promote_due(&self.store, &self.master, now).await?;
        if let Some(every) = self.settings.rotate_every {
            let every = i64::try_from(every).unwrap_or(i64::MAX);
            for key_use in [KeyUse::Sig, KeyUse::Enc] {
                let keys: Vec<_> = ring
                    .keys()
                    .filter(|k| k.record.key_use == key_use)
                    .collect();
                let pending = keys.iter().any(|k| k.record.state == KeyState::Pending);
                let newest_active = keys
                    .iter()
                    .filter(|k| k.record.state == KeyState::Active)
                    .map(|k| k.record.activate_at)
                    .max();
                if !pending && newest_active.is_some_and(|t| t.saturating_add(every) <= now) {
                    ring.rotate(
                        &self.store,
                        &self.master,
                        key_use,
                        now,
                        self.settings.jwks_max_age,
                    )
                    .await?;
                }
            }
        }
        let after = self.store.list_keys().await?;
        // Loaded again rather than `ring` installed: the ticket order says which load is
        // newer. When this step changed nothing, the ring is loaded only if the store's keys
        // differ from it (changed by another node or the CLI), not every step.
        drop(ring);
        if after != before {
            self.reload_ring().await?;
            self.announce(crate::changes::Change::Keys);
        } else {
            self.refresh_ring().await?;
        }
        for key in &after {
            let old = before.iter().find(|b| b.kid == key.kid).map(|b| b.state);
            if old != Some(key.state) {
                let event = match key.state {
                    KeyState::Pending => "key.rotated",
                    KeyState::Active => "key.activated",
                    KeyState::Retired => "key.retired",
                    KeyState::Removed => "key.removed",
                };
                self.audit(&key_event(event, &key.kid, now, None)).await?;
            }
        }
        self.store.purge_used_jtis(now).await?;
        // Kept a day past expiry, so a late replay still revokes what the code issued.
        self.store.purge_codes(now - KEEP_EXPIRED_TOKENS).await?;
        self.store
            .purge_refresh_families(now - KEEP_EXPIRED_TOKENS)
            .await?;
        // Stamped now, not at the step's start: gateways poll revocations from a recent
        // time, and an earlier stamp could fall before it.
        let late = self
            .store
            .revoke_tokens_of_disabled_clients(store::unix_now())
            .await?;
        if late > 0 {
            let mut event = event("token.revoked", "maintenance", now);
            event.request_id = None;
            event.reason = Some(format!("client disabled: {late} issued late revoked"));
            self.audit(&event).await?;
        }
        self.store
            .purge_expired(now - KEEP_EXPIRED_TOKENS, PURGE_BATCH)
            .await?;
        Ok(())
    }
}

/// A successful event of a request, to be filled in as the request goes.
pub(crate) fn event(name: &str, request_id: &str, now: i64) -> AuditEvent {
    AuditEvent {
        time: now,
        event: name.into(),
        outcome: "success".into(),
        request_id: Some(request_id.to_owned()),
        ..AuditEvent::default()
    }
}

pub(crate) fn key_event(event: &str, kid: &str, now: i64, request_id: Option<&str>) -> AuditEvent {
    AuditEvent {
        time: now,
        event: event.into(),
        outcome: "success".into(),
        reason: Some(format!("kid {kid}")),
        request_id: request_id.map(String::from),
        ..AuditEvent::default()
    }
}
