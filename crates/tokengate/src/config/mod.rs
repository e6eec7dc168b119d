//! The configuration file (TOML). Parse, don't validate: the file becomes typed values, and
//! every error names the file, line, column and the offending field, before anything binds a
//! port. Unknown fields are errors, never ignored: a typo must not silently disable a check.
//!
//! `[[issuers]]` and `[[routes]]` are converted here, once, into the gateway's typed route
//! table (`table.rs`): `config check`, `serve` and a reload accept and refuse the same files,
//! and boot only attaches what exists at runtime.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use jose::jwe::{ContentEncryption, KeyManagement};
use jose::Algorithm;

pub use telemetry::Telemetry;
pub use timeouts::Timeouts;

/// Where the embedded SQLite database and key file live unless configured otherwise.
pub const DEFAULT_DATA_DIR: &str = "./tokengate-data";

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: String,
    /// 1-based line and column, when the error has a place.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and storage.
    #[serde(default)]
    pub server: Server,
    /// The built-in issuer.
    #[serde(default)]
    pub token_service: TokenService,
    /// Resource servers tokens may be issued for.
    #[serde(default)]
    pub audiences: Vec<Audience>,
    /// Other trusted issuers (gateway routes, token exchange).
    #[serde(default)]
    pub issuers: Vec<Issuer>,
    /// Gateway routes.
    #[serde(default)]
    pub routes: Vec<routes::Route>,
    /// Trace export.
    #[serde(default)]
    pub telemetry: Telemetry,
    /// Redis, for state several nodes share (cluster rate limits).
    pub redis: Option<limits::RedisSection>,
    /// The audit log's checkpoints and sink.
    #[serde(default)]
    pub audit: audit::AuditSection,
    /// `issuers` and `routes` converted for the gateway (by `parse`, never by serde).
    #[serde(skip)]
    table: table::Table,
    /// `[server.timeouts]` with its defaults (by `parse`, never by serde).
    #[serde(skip)]
    timeouts: Timeouts,
    /// `[token_service.cors]`, checked (by `parse`, never by serde).
    #[serde(skip)]
    service_cors: Option<gateway::cors::Cors>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Address to listen on (default 127.0.0.1:8080).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS certificate chain and key (PEM).
    pub tls: Option<Tls>,
    /// Directory of the embedded SQLite database and key file (default ./tokengate-data).
    pub data_dir: Option<Spanned<PathBuf>>,
    /// PostgreSQL instead of SQLite (`postgres://…`).
    pub database_url: Option<Spanned<DatabaseUrl>>,
    /// When an embedded SQLite commit is on disk: `"full"` (default, survives power loss) or
    /// `"normal"` (survives a crash of tokengate, not of the machine).
    pub sqlite_synchronous: Option<Spanned<SqliteSynchronous>>,
    /// File holding the master key (base64 of 32 bytes); `TOKENGATE_MASTER_KEY` overrides it.
    pub master_key_file: Option<PathBuf>,
    /// Bearer token of the admin API; `TOKENGATE_ADMIN_TOKEN` overrides it. Without either,
    /// the admin API is off.
    pub admin_token: Option<Spanned<String>>,
    /// A second address for the admin API and `/metrics`, which then leave the main
    /// listener (default: both on the main listener).
    pub admin_listen: Option<Spanned<SocketAddr>>,
    /// Bearer token `/metrics` requires (at least 32 characters); `TOKENGATE_METRICS_TOKEN`
    /// overrides it. Without either, `/metrics` is open.
    pub metrics_token: Option<Spanned<String>>,
    /// `[server.timeouts]`: deadlines of a client connection's phases.
    #[serde(default)]
    pub timeouts: timeouts::TimeoutsConfig,
    /// Peers (load balancers in front) whose `X-Forwarded-*` and `X-Real-IP` are believed;
    /// from any other peer they are replaced. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<values::IpRange>,
    /// Memory of the verified-token cache, all entries together (default 32 MB).
    #[serde(default = "default_token_cache_memory")]
    pub token_cache_memory: values::ByteSize,
    /// Requests in flight on the node at most (token service and gateway); past it 503 at
    /// once. Default: no bound.
    pub max_in_flight: Option<Spanned<u64>>,
    /// Open client connections at most (per listener); past it a new connection gets 503
    /// and is closed. Default: no bound.
    pub max_connections: Option<Spanned<u64>>,
    /// `[server.cache]`: the response cache's memory.
    #[serde(default)]
    pub cache: cache::ServerCache,
    /// After SIGTERM (or Ctrl-C), how long requests in flight may take to finish before the
    /// process exits anyway (default 30s).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long the listeners keep accepting while `/readyz` already says 503,
    /// so that load balancers stop sending traffic before connections are refused (default
    /// 0s; a few seconds behind Kubernetes, docs/deployment.md).
    #[serde(default)]
    pub shutdown_delay: Duration,
    /// How long after the last successful read of revocations from the store the gateway
    /// keeps accepting this node's own tokens (default 60s); past it, while the store is
    /// unreachable, they are refused with 503 (other issuers' tokens are unaffected).
    #[serde(default = "default_max_revocation_staleness")]
    pub max_revocation_staleness: Duration,
}

fn default_shutdown_timeout() -> Duration {
    Duration(30)
}

fn default_max_revocation_staleness() -> Duration {
    Duration(60)
}

fn default_token_cache_memory() -> values::ByteSize {
    values::ByteSize(32 << 20)
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: None,
            data_dir: None,
            database_url: None,
            sqlite_synchronous: None,
            master_key_file: None,
            admin_token: None,
            admin_listen: None,
            metrics_token: None,
            timeouts: timeouts::TimeoutsConfig::default(),
            trusted_proxies: Vec::new(),
            token_cache_memory: default_token_cache_memory(),
            max_in_flight: None,
            max_connections: None,
            cache: cache::ServerCache::default(),
            shutdown_timeout: default_shutdown_timeout(),
            shutdown_delay: Duration(0),
            max_revocation_staleness: default_max_revocation_staleness(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// `server.sqlite_synchronous`: SQLite's `synchronous` pragma, of the two settings that keep
/// a WAL database consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit synced before it returns.
    Full,
    /// Synced at checkpoints; the last commits can be lost on power loss.
    Normal,
}

impl SqliteSynchronous {
    /// The store's setting.
    pub fn durability(self) -> store::SqliteDurability {
        match self {
            SqliteSynchronous::Full => store::SqliteDurability::Full,
            SqliteSynchronous::Normal => store::SqliteDurability::Normal,
        }
    }
}

/// A `postgres://` or `postgresql://` URL.
#[derive(Debug, Clone)]
pub struct DatabaseUrl(pub Url);

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let url = Url::deserialize(d)?;
        match url.scheme() {
            "postgres" | "postgresql" => Ok(Self(url)),
            other => Err(D::Error::custom(format!(
                "database_url: unsupported scheme {other:?}; use postgres:// (SQLite is the default without database_url)"
            ))),
        }
    }
}

/// `[token_service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenService {
    /// The `iss` of issued tokens and the base of the metadata document (default:
    /// `http://` and the listen address).
    pub issuer: Option<Spanned<Url>>,
    /// Signing algorithm of new keys: ES256 (default), RS256, PS256 or EdDSA.
    #[serde(default = "default_signing_alg", deserialize_with = "signing_alg")]
    pub signing_alg: Algorithm,
    /// Key management of new encryption keys: ECDH-ES+A256KW (default) or RSA-OAEP-256.
    #[serde(
        default = "default_encryption_alg",
        deserialize_with = "encryption_alg"
    )]
    pub encryption_alg: KeyManagement,
    /// Content encryption of encrypted tokens (default A256GCM).
    #[serde(default = "default_enc", deserialize_with = "content_encryption")]
    pub encryption_enc: ContentEncryption,
    /// Default access-token lifetime (default 10m).
    #[serde(default = "default_lifetime")]
    pub token_lifetime: Duration,
    /// Rotate keys on this schedule; absent means only by command.
    pub rotate_every: Option<Duration>,
    /// `Cache-Control: max-age` of the JWKS, and so the minimum pre-publication period of a
    /// new key (default 10m).
    #[serde(default = "default_jwks_max_age")]
    pub jwks_max_age: Duration,
    /// How far a DPoP proof's `iat` may lie from now (default 60s).
    #[serde(default = "default_dpop_window")]
    pub dpop_window: Duration,
    /// Require server nonces in DPoP proofs (RFC 9449 §8; default false).
    #[serde(default)]
    pub dpop_nonce: bool,
    /// Limits of the token, introspection and revocation endpoints.
    #[serde(default)]
    pub rate_limits: limits::ServiceRateLimits,
    /// Browser access to `/oauth2/…` and `/.well-known/…`.
    pub cors: Option<cors::CorsConfig>,
    /// User sign-in at the authorization endpoint; absent: machines only.
    pub login: Option<login::LoginConfig>,
    /// Refresh tokens of signed-in users.
    #[serde(default)]
    pub refresh: login::RefreshConfig,
    /// How clients may register themselves.
    #[serde(default)]
    pub registration: login::RegistrationConfig,
}

impl Default for TokenService {
    fn default() -> Self {
        Self {
            issuer: None,
            signing_alg: default_signing_alg(),
            encryption_alg: default_encryption_alg(),
            encryption_enc: default_enc(),
            token_lifetime: default_lifetime(),
            rotate_every: None,
            jwks_max_age: default_jwks_max_age(),
            dpop_window: default_dpop_window(),
            dpop_nonce: false,
            rate_limits: limits::ServiceRateLimits::default(),
            cors: None,
            login: None,
            refresh: login::RefreshConfig::default(),
            registration: login::RegistrationConfig::default(),
        }
    }
}

fn default_dpop_window() -> Duration {
    Duration(60)
}

fn default_signing_alg() -> Algorithm {
    Algorithm::ES256
}
fn default_encryption_alg() -> KeyManagement {
    KeyManagement::ECDH_ES_A256KW
}
fn default_enc() -> ContentEncryption {
    ContentEncryption::A256GCM
}
fn default_lifetime() -> Duration {
    Duration(600)
}
fn default_jwks_max_age() -> Duration {
    Duration(600)
}

fn signing_alg<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<Algorithm>() {
        Ok(a @ (Algorithm::ES256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::EdDSA)) => {
            Ok(a)
        }
        _ => Err(D::Error::custom(format!(
            "signing_alg {s:?}: use ES256, RS256, PS256 or EdDSA"
        ))),
    }
}

fn encryption_alg<'de, D: Deserializer<'de>>(d: D) -> Result<KeyManagement, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<KeyManagement>() {
        Ok(a @ (KeyManagement::ECDH_ES_A256KW | KeyManagement::RSA_OAEP_256)) => Ok(a),
        _ => Err(D::Error::custom(format!(
            "encryption_alg {s:?}: use ECDH-ES+A256KW or RSA-OAEP-256"
        ))),
    }
}

fn content_encryption<'de, D: Deserializer<'de>>(d: D) -> Result<ContentEncryption, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        D::Error::custom(format!(
            "encryption_enc {s:?}: use A128GCM, A192GCM, A256GCM, A128CBC-HS256, A192CBC-HS384 or A256CBC-HS512"
        ))
    })
}

/// A duration written as `30s`, `5m`, `1h`, `2d` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Duration(pub u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => Ok(Self(n)),
            Raw::Text(s) => crate::input::parse_duration(&s)
                .map(Self)
                .map_err(D::Error::custom),
        }
    }
}

/// `[[issuers]]`: another issuer whose access tokens are trusted (for token exchange now,
/// for gateway routes later).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// A short name routes refer to it by ("self" is the built-in issuer).
    pub name: Spanned<String>,
    /// Its `iss` value.
    pub issuer: Spanned<String>,
    /// Its public keys: a JWK, JWK Set or PEM file.
    pub jwks_file: Option<Spanned<PathBuf>>,
    /// Its JWKS URL, fetched and cached.
    pub jwks_url: Option<Spanned<Url>>,
    /// Find the JWKS URL in the issuer's metadata (RFC 8414, then OpenID discovery).
    #[serde(default)]
    pub discovery: bool,
    /// The algorithms its tokens may use.
    pub algorithms: Vec<Spanned<values::JwsAlgorithm>>,
    /// The `aud` its tokens must carry to be exchanged here (default: our issuer).
    pub exchange_audience: Option<String>,
    /// Required JWT `typ` (default `at+jwt`, RFC 9068); `""` checks none.
    pub typ: Option<String>,
    /// Private keys (JWK, JWK Set or PEM) that decrypt this issuer's encrypted tokens.
    pub decrypt_keys_file: Option<Spanned<PathBuf>>,
    /// JWKS cache lifetime when the response names none (default 10m).
    #[serde(default = "default_jwks_max_age")]
    pub cache_max_age: Duration,
    /// Least time between refetches for an unknown `kid` (default 30s).
    #[serde(default = "default_cooldown")]
    pub refetch_cooldown: Duration,
    /// Timeout of one JWKS or metadata fetch (default 5s).
    pub fetch_timeout: Option<Spanned<Duration>>,
}

impl Issuer {
    /// The algorithms (each was parsed with the file).
    pub fn algorithm_list(&self) -> Vec<Algorithm> {
        self.algorithms.iter().map(|a| a.get_ref().0).collect()
    }
}

fn default_cooldown() -> Duration {
    Duration(30)
}

/// `[[audiences]]`: a resource server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// The audience identifier, a URI (RFC 8707 resource indicator).
    pub id: Spanned<String>,
    /// Scopes this audience accepts.
    #[serde(default)]
    pub scopes: Vec<Spanned<String>>,
    /// Encrypt its tokens (nested JWE).
    #[serde(default)]
    pub encrypt: bool,
    /// Encrypt to this JWK or JWK Set (an external resource server) instead of tokengate's
    /// own encryption key.
    pub encrypt_to: Option<Spanned<PathBuf>>,
    /// Token lifetime for this audience (default: the token service's).
    pub token_lifetime: Option<Duration>,
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_text(path).map(|(config, _)| config)
    }

    /// [`Config::load`], and the file's text (whose keyed fingerprint the audit event of a
    /// reload names).
    pub fn load_with_text(path: &Path) -> Result<(Self, String), ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        Ok((Self::parse(&text, &file)?, text))
    }

    /// Parses and validates configuration text; `file` names it in errors. Converts
    /// `[[issuers]]` and `[[routes]]` into the gateway's table; reads no file.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let source = Source { text, file };
        let mut config: Config =
            toml::from_str(text).map_err(|e| source.error(e.span(), e.message().to_owned()))?;
        config
            .validate()
            .map_err(|(span, message)| source.error(Some(span), message))?;
        config.timeouts = timeouts::resolve(&config.server.timeouts)
            .map_err(|(span, message)| source.error(Some(span), message))?;
        config.timeouts.drain = std::time::Duration::from_secs(config.server.shutdown_timeout.0);
        config.table = table::build(&config, &source)
            .map_err(|(span, message)| source.error(Some(span), message))?;
        config.service_cors = match &config.token_service.cors {
            Some(written) => Some(
                cors::policy(written, "token_service.cors")
                    .map_err(|(span, message)| source.error(Some(span), message))?,
            ),
            None => None,
        };
        Ok(config)
    }

    /// The token service's CORS policy (checked when the file was parsed).
    pub fn service_cors(&self) -> Option<&gateway::cors::Cors> {
        self.service_cors.as_ref()
    }

    /// The gateway's issuers and routes, typed and checked.
    pub fn table(&self) -> &table::Table {
        &self.table
    }

    /// The connection deadlines in force (`[server.timeouts]` and its defaults).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The peers whose forwarding headers are believed.
    pub fn trusted_proxies(&self) -> gateway::forwarded::TrustedProxies {
        gateway::forwarded::TrustedProxies::new(
            self.server.trusted_proxies.iter().map(|r| r.0).collect(),
        )
    }

    /// The issuer identifier: configured, or `http://` and the listen address.
    pub fn issuer(&self) -> Result<Url, url::ParseError> {
        match &self.token_service.issuer {
            Some(url) => Ok(url.get_ref().clone()),
            None => Url::parse(&format!("http://{}", self.server.listen)),
        }
    }

    /// The issuer identifier as it appears in `iss`: a bare origin has no trailing slash
    /// (`https://auth.example`, as RFC 8414 examples write it).
    pub fn issuer_id(&self) -> Result<String, url::ParseError> {
        let url = self.issuer()?;
        let text = url.as_str();
        Ok(if url.path() == "/" {
            text.trim_end_matches('/').to_owned()
        } else {
            text.to_owned()
        })
    }

    /// The effective settings, defaults filled in, as JSON for `config check` (and `GET
    /// /admin/config`). No secret is shown: URLs lose their password and their query's
    /// values ([`redacted`]).
    pub fn effective(&self) -> serde_json::Value {
        use serde_json::json;
        let storage = match (&self.server.database_url, &self.server.data_dir) {
            (Some(url), _) => {
                json!({"backend": "postgres", "database_url": redacted(&url.get_ref().0)})
            }
            (None, dir) => {
                let dir = dir
                    .as_ref()
                    .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |d| d.get_ref().clone());
                let synchronous = self
                    .server
                    .sqlite_synchronous
                    .as_ref()
                    .map_or(SqliteSynchronous::Full, |s| *s.get_ref());
                let synchronous = match synchronous {
                    SqliteSynchronous::Full => "full",
                    SqliteSynchronous::Normal => "normal",
                };
                json!({"backend": "sqlite", "data_dir": dir, "sqlite_synchronous": synchronous})
            }
        };
        let ts = &self.token_service;
        json!({
            "listen": self.server.listen.to_string(),
            "trusted_proxies": self.server.trusted_proxies.iter().map(|r| r.0.to_string()).collect::<Vec<_>>(),
            "token_cache_memory_bytes": self.server.token_cache_memory.0,
            "cache": { "max_memory_bytes": self.server.cache.max_memory.0 },
            "max_in_flight": self.server.max_in_flight.as_ref().map(|n| *n.get_ref()),
            "max_connections": self.server.max_connections.as_ref().map(|n| *n.get_ref()),
            "shutdown_timeout_seconds": self.server.shutdown_timeout.0,
            "shutdown_delay_seconds": self.server.shutdown_delay.0,
            "max_revocation_staleness_seconds": self.server.max_revocation_staleness.0,
            "redis": self.redis.as_ref().map(|r| json!({
                "url": r.shown_url(),
                "password_env": r.password_env.as_ref().map(|p| p.get_ref()),
                "timeout_ms": u64::try_from(r.timeout.get_ref().0.as_millis()).unwrap_or(u64::MAX),
                "dpop_on_unavailable": r.dpop_on_unavailable.as_str(),
            })),
            "token_service_rate_limits": self.token_service.rate_limits.effective(),
            "tls": self.server.tls.as_ref().map(|t| json!({"cert": t.cert, "key": t.key})),
            "storage": storage,
            "master_key_file": self.server.master_key_file,
            "issuer": self.issuer().map(String::from).ok(),
            "signing_alg": ts.signing_alg.name(),
            "encryption_alg": ts.encryption_alg.name(),
            "encryption_enc": ts.encryption_enc.name(),
            "token_lifetime_seconds": ts.token_lifetime.0,
            "rotate_every_seconds": ts.rotate_every.map(|d| d.0),
            "jwks_max_age_seconds": ts.jwks_max_age.0,
            "dpop_window_seconds": ts.dpop_window.0,
            "dpop_nonce": ts.dpop_nonce,
            "admin_listen": self.server.admin_listen.as_ref().map(|a| a.get_ref().to_string()),
            "metrics": if self.server.metrics_token.is_some() { "bearer token from the file" } else { "open unless TOKENGATE_METRICS_TOKEN is set" },
            "admin_api": if self.server.admin_token.is_some() { "on (token from the file)" } else { "on only if TOKENGATE_ADMIN_TOKEN is set" },
            "issuers": self.issuers.iter().map(|i| json!({
                "name": i.name.get_ref(),
                "issuer": i.issuer.get_ref(),
                "jwks_file": i.jwks_file.as_ref().map(|f| f.get_ref()),
                "jwks_url": i.jwks_url.as_ref().map(|u| redacted(u.get_ref())),
                "discovery": i.discovery,
                "algorithms": i.algorithm_list().iter().map(|a| a.name()).collect::<Vec<_>>(),
                "exchange_audience": i.exchange_audience,
            })).collect::<Vec<_>>(),
            "routes": self.table.effective_routes(),
            "audiences": self.audiences.iter().map(|a| json!({
                "id": a.id.get_ref(),
                "scopes": a.scopes.iter().map(|s| s.get_ref()).collect::<Vec<_>>(),
                "encrypt": a.encrypt,
                "encrypt_to": a.encrypt_to.as_ref().map(|p| p.get_ref()),
                "token_lifetime_seconds": a.token_lifetime.unwrap_or(ts.token_lifetime).0,
            })).collect::<Vec<_>>(),
            "audit": {
                "checkpoint_every_seconds": self.audit.checkpoint_every.0,
                "origin": self.audit.origin,
                "sink": match &self.audit.sink {
                    None => None,
                    Some(audit::Sink::Stdout) => Some("stdout".to_owned()),
                    Some(audit::Sink::File(path)) => Some(path.display().to_string()),
                },
            },
            "telemetry": {
                "otlp_endpoint": self.telemetry.otlp_endpoint.as_ref().map(|u| u.get_ref().as_str()),
                "service_name": self.telemetry.service_name,
                "sample_ratio": self.telemetry.sample_ratio,
                "trust_client_sampling": self.telemetry.trust_client_sampling,
            },
        })
    }

    /// Cross-field rules, each reported at the field that breaks it.
    fn validate(&self) -> Result<(), Failure> {
        self.validate_server()?;
        self.validate_limits()?;
        if let Some(login) = &self.token_service.login {
            login.validate()?;
        }
        self.token_service.refresh.validate()?;
        let declared: Vec<&str> = self
            .audiences
            .iter()
            .map(|a| a.id.get_ref().as_str())
            .collect();
        self.token_service.registration.validate(
            self.token_service.login.is_some(),
            &declared,
            self.token_service.rate_limits.per_ip.is_some(),
        )?;
        if let Some(issuer) = &self.token_service.issuer {
            let url = issuer.get_ref();
            let loopback = url
                .host_str()
                .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                return Err((issuer.span(), "token_service.issuer must be https:// (http:// only on loopback, for development)".into()));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err((
                    issuer.span(),
                    "token_service.issuer must not have a query or fragment (RFC 8414 §2)".into(),
                ));
            }
        }
        for (i, aud) in self.audiences.iter().enumerate() {
            let id = aud.id.get_ref();
            if Url::parse(id).is_err() {
                return Err((
                    aud.id.span(),
                    format!("audiences.id {id:?} must be an absolute URI"),
                ));
            }
            if self.audiences.iter().take(i).any(|a| a.id.get_ref() == id) {
                return Err((
                    aud.id.span(),
                    format!("audiences.id {id:?} is declared twice"),
                ));
            }
            for scope in &aud.scopes {
                let s = scope.get_ref();
                if !store::is_scope_token(s) {
                    return Err((
                        scope.span(),
                        format!("audiences.scopes: {s:?} is not a valid scope token"),
                    ));
                }
            }
            if let (Some(to), false) = (&aud.encrypt_to, aud.encrypt) {
                return Err((
                    to.span(),
                    "audiences.encrypt_to needs encrypt = true".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[redis]`, the node's concurrency bounds and `[token_service.rate_limits]`.
    fn validate_limits(&self) -> Result<(), Failure> {
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        if let Some(n) = &self.server.max_in_flight {
            limits::concurrency(n, "server.max_in_flight")?;
        }
        if let Some(n) = &self.server.max_connections {
            limits::concurrency(n, "server.max_connections")?;
        }
        let service = &self.token_service.rate_limits;
        for (name, limit) in [
            ("per_client", &service.per_client),
            ("per_ip", &service.per_ip),
            ("failed_auth", &service.failed_auth),
        ] {
            if let Some(limit) = limit {
                let what = format!("token_service.rate_limits.{name}");
                limits::check_scope(&limit.scope, self.redis.is_some(), &what)?;
                limits::rate(&limit.limit, &limit.per, limit.burst, &what)?;
            }
        }
        Ok(())
    }

    /// `[server]`: one storage, SQLite settings only with SQLite, tokens long enough, two
    /// distinct listeners.
    fn validate_server(&self) -> Result<(), Failure> {
        if let (Some(_), Some(url)) = (&self.server.data_dir, &self.server.database_url) {
            return Err((
                url.span(),
                "server: set data_dir or database_url, not both".into(),
            ));
        }
        if let (Some(sync), Some(_)) = (&self.server.sqlite_synchronous, &self.server.database_url)
        {
            return Err((
                sync.span(),
                "server: sqlite_synchronous applies to the embedded SQLite database only; \
                 PostgreSQL's durability is set on the server (synchronous_commit)"
                    .into(),
            ));
        }
        for (field, token) in [
            ("admin_token", &self.server.admin_token),
            ("metrics_token", &self.server.metrics_token),
        ] {
            if let Some(token) = token.as_ref().filter(|t| t.get_ref().len() < 32) {
                return Err((
                    token.span(),
                    format!("server.{field} must be at least 32 characters"),
                ));
            }
        }
        if let Some(admin) = self
            .server
            .admin_listen
            .as_ref()
            .filter(|a| *a.get_ref() == self.server.listen && a.get_ref().port() != 0)
        {
            return Err((
                admin.span(),
                "server.admin_listen must differ from server.listen".into(),
            ));
        }
        self.validate_lifecycle()?;
        self.audit.validate().map_err(|message| (0..0, message))
    }

    /// Shutdown within an hour; revocations at most 2 s stale or more (they are read from
    /// the store every second) and at most a day.
    fn validate_lifecycle(&self) -> Result<(), Failure> {
        let server = &self.server;
        if server.shutdown_timeout.0 > 3600 || server.shutdown_delay.0 > 3600 {
            return Err((
                0..0,
                "server.shutdown_timeout and server.shutdown_delay must be at most 1h".into(),
            ));
        }
        if !(2..=86_400).contains(&server.max_revocation_staleness.0) {
            return Err((
                0..0,
                "server.max_revocation_staleness must be between 2s and 1d (revocations are \
                 read from the store every second)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The text being parsed, to locate what is wrong in it.
struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    /// An error at `span` (a byte range of the text), or at no place.
    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: span.map(|s| line_col(self.text, s.start)),
            message,
        }
    }
}

/// A rule broken at a byte range of the text.
type Failure = (Range<usize>, String);

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `url` as it may be shown: its password (or a user name without one, which is then a
/// token), query and fragment (where tokens and keys go) each replaced by `REDACTED`.
pub(crate) fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have user information; then there is none.
    if shown.password().is_some() {
        let _ = shown.set_password(Some("REDACTED"));
    } else if !shown.username().is_empty() {
        let _ = shown.set_username("REDACTED");
    }
    if shown.query().is_some() {
        shown.set_query(Some("REDACTED"));
    }
    if shown.fragment().is_some() {
        shown.set_fragment(Some("REDACTED"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests;

pub mod audit;
pub mod cache;
pub mod cors;
pub mod limits;
pub mod login;
pub mod routes;
mod rules;
pub mod table;
mod telemetry;
mod timeouts;
pub mod values;
