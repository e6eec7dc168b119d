//! Turning a checked configuration into a running token service: the store (SQLite under the
//! data directory, or PostgreSQL), the master key, and the service settings. Shared by
//! `serve`, `dev`, `client` and `key`, so each opens the same data the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oauth::{Audience, DpopSettings, EncryptTo, Policy, Service, Settings, TrustedIssuer};
use store::{MasterKey, SqliteDurability, Store, StoreError, StoreOptions};

pub mod audit;
mod gateway;
mod limits;
pub mod node;

pub use gateway::{build_gateway, GatewayParts, SharedSettings};

use crate::config::{Config, DEFAULT_DATA_DIR};
use crate::error::{display_path, CliError, EXIT_USAGE};

/// The environment variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "TOKENGATE_MASTER_KEY";
/// The environment variable holding the admin API token.
pub const ADMIN_TOKEN_ENV: &str = "TOKENGATE_ADMIN_TOKEN";
/// The environment variable that sets the `/metrics` bearer token.
pub const METRICS_TOKEN_ENV: &str = "TOKENGATE_METRICS_TOKEN";
/// The SQLite file inside the data directory.
const DATABASE_FILE: &str = "tokengate.db";
/// The master key file inside the data directory, when no other source is configured.
const MASTER_KEY_FILE: &str = "master.key";

/// Where the data lives: flags override the configuration file.
#[derive(Debug, Clone, Default)]
pub struct StorageFlags {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

impl StorageFlags {
    fn data_dir(&self, config: &Config) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| config.server.data_dir.as_ref().map(|d| d.get_ref().clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The storage flags that name this store on a command line (for printed commands).
    pub fn as_flags(&self, config: &Config) -> String {
        match (&self.database_url, &config.server.database_url) {
            (Some(url), _) => format!("--database-url '{url}'"),
            (None, Some(_)) if self.data_dir.is_none() => "--database-url \"$DATABASE_URL\"".into(),
            _ => format!("--data-dir {}", self.data_dir(config).display()),
        }
    }

    fn database_url(&self, config: &Config) -> String {
        if let Some(url) = &self.database_url {
            return url.clone();
        }
        if self.data_dir.is_none() {
            if let Some(url) = &config.server.database_url {
                return url.get_ref().0.to_string();
            }
        }
        self.data_dir(config)
            .join(DATABASE_FILE)
            .to_string_lossy()
            .into_owned()
    }
}

fn store_error(what: &str, e: &StoreError) -> CliError {
    let reason = match e {
        StoreError::WrongMasterKey => format!(
            "{what}: the master key does not decrypt this database's keys; it was made with \
             another master key. Nothing was changed. Use the master key the database was \
             created with ({MASTER_KEY_ENV} or master_key_file)."
        ),
        other => {
            let mut text = format!("{what}: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    };
    CliError::new(e.code(), reason, EXIT_USAGE)
}

/// Opens a store that must exist already, without the master key: what reading the audit
/// log needs (its public keys are in the store), so an auditor need not hold the key that
/// decrypts the signing keys.
pub async fn open_existing_store(config: &Config, flags: &StorageFlags) -> Result<Store, CliError> {
    let url = flags.database_url(config);
    let is_url = url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:");
    if !is_url && !Path::new(&url).is_file() {
        return Err(CliError::new(
            "ERR_STORE_UNAVAILABLE",
            format!("no database at {url} (give --data-dir or --database-url)"),
            EXIT_USAGE,
        ));
    }
    Store::open_with(&url, &StoreOptions::default().without_migrations())
        .await
        .map_err(|e| store_error("opening the database", &e))
}

/// Opens the store and the master key, and checks that the key belongs to the store before
/// anything is written. Returns a note to print when a master key file was created.
pub async fn open_store(
    config: &Config,
    flags: &StorageFlags,
) -> Result<(Store, MasterKey, Option<String>), CliError> {
    let (master, note) = master_key(config, flags)?;
    let url = flags.database_url(config);
    let durability = config
        .server
        .sqlite_synchronous
        .as_ref()
        .map_or(SqliteDurability::Full, |s| s.get_ref().durability());
    let store = Store::open_with(&url, &StoreOptions::default().sqlite_durability(durability))
        .await
        .map_err(|e| store_error("opening the database", &e))?;
    store
        .verify_master_key(&master)
        .await
        .map_err(|e| store_error("checking the master key", &e))?;
    Ok((store, master, note))
}

/// The master key: `TOKENGATE_MASTER_KEY`, else `master_key_file`, else `master.key` in the
/// data directory; a missing file is created (mode 0600) and a note says so.
fn master_key(
    config: &Config,
    flags: &StorageFlags,
) -> Result<(MasterKey, Option<String>), CliError> {
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        let key =
            MasterKey::from_base64(text.trim()).map_err(|e| store_error(MASTER_KEY_ENV, &e))?;
        return Ok((key, None));
    }
    let path = config
        .server
        .master_key_file
        .clone()
        .unwrap_or_else(|| flags.data_dir(config).join(MASTER_KEY_FILE));
    let (key, created) = MasterKey::load_or_create_file(&path)
        .map_err(|e| store_error("the master key file", &e))?;
    let note = created.then(|| {
        format!(
            "created the master key file {} (mode 0600). It decrypts the signing keys: back it \
             up, keep it apart from database backups, or set {MASTER_KEY_ENV} instead.",
            display_path(&path)
        )
    });
    Ok((key, note))
}

/// The service settings from the configuration, with `issuer` (the configured one, or the
/// URL of the bound listener). Reads the key files the configuration names.
pub fn settings(config: &Config, issuer: String) -> Result<Settings, CliError> {
    let ts = &config.token_service;
    let lifetimes = config
        .audiences
        .iter()
        .filter_map(|a| a.token_lifetime)
        .map(|d| d.0)
        .chain([ts.token_lifetime.0]);
    let max_token_lifetime = lifetimes.max().unwrap_or(ts.token_lifetime.0).max(1);
    let mut audiences = Vec::new();
    for a in &config.audiences {
        let encrypt = match (&a.encrypt_to, a.encrypt) {
            (_, false) => None,
            (None, true) => Some(EncryptTo::Own),
            (Some(path), true) => Some(EncryptTo::Key(Arc::new(encryption_key(path.get_ref())?))),
        };
        audiences.push(Audience {
            id: a.id.get_ref().clone(),
            scopes: a.scopes.iter().map(|s| s.get_ref().clone()).collect(),
            encrypt,
            token_lifetime: a.token_lifetime.map(|d| d.0),
        });
    }
    let mut trusted_issuers = Vec::new();
    // Token exchange verifies subject tokens synchronously, so only issuers with a key file
    // take part; issuers with remote key sets serve gateway routes only.
    for i in &config.issuers {
        let Some(path) = &i.jwks_file else {
            continue;
        };
        let keys = crate::input::load_key_set(path.get_ref())?;
        trusted_issuers.push(TrustedIssuer {
            issuer: i.issuer.get_ref().clone(),
            keys,
            algorithms: i.algorithm_list(),
            audience: i.exchange_audience.clone(),
        });
    }
    Ok(Settings {
        issuer,
        policy: Policy {
            signing_alg: ts.signing_alg,
            encryption_alg: ts.encryption_alg,
            encryption_enc: ts.encryption_enc,
            max_token_lifetime,
        },
        token_lifetime: ts.token_lifetime.0,
        jwks_max_age: ts.jwks_max_age.0,
        rotate_every: ts.rotate_every.map(|d| d.0),
        audiences,
        trusted_issuers,
        dpop: DpopSettings {
            window: ts.dpop_window.0,
            require_nonce: ts.dpop_nonce,
        },
        audit_origin: config.audit.origin.clone(),
        login: match &ts.login {
            Some(l) => Some(l.settings().map_err(CliError::usage)?),
            None => None,
        },
        refresh: ts.refresh.settings(),
        registration: ts.registration.settings().map_err(CliError::usage)?,
    })
}

/// An audience's public encryption key: a JWK, or the one key of a JWK Set.
fn encryption_key(path: &Path) -> Result<jose::Jwk, CliError> {
    let set = crate::input::load_key_set(path)?;
    let mut keys = set.keys().iter();
    match (keys.next(), keys.next()) {
        (Some(k), None) => {
            jose::Jwk::from_map(&k.to_map()).map_err(|e| CliError::jose_in(path, &e))
        }
        _ => Err(CliError::usage(format!(
            "{}: encrypt_to must hold exactly one key",
            display_path(path)
        ))),
    }
}

/// Starts the service over an opened store (creating the first keys on a first boot).
pub async fn start_service(
    config: &Config,
    store: Store,
    master: MasterKey,
    issuer: String,
) -> Result<Service, CliError> {
    let settings = settings(config, issuer)?;
    Service::start(store, master, settings, store::unix_now())
        .await
        .map_err(|e| match e {
            oauth::Error::Store(s) => store_error("starting the token service", &s),
            other => CliError::new(other.code(), other.to_string(), EXIT_USAGE),
        })
}

/// Opens the store and starts the service, for commands that serve nothing (`client`, `key`).
pub async fn open_service(config: &Config, flags: &StorageFlags) -> Result<Service, CliError> {
    let (store, master, note) = open_store(config, flags).await?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let issuer = config
        .issuer_id()
        .map_err(|e| CliError::usage(format!("issuer: {e}")))?;
    let service = start_service(config, store, master, issuer).await?;
    // A change made here reaches the running nodes at once through Redis (the command
    // waits for it to be sent: `Service::flush_changes`), else at their next poll, so a
    // Redis that cannot be used is a warning, not a failure.
    if let Some(section) = &config.redis {
        match cli_publisher(section) {
            Ok((redis, node)) => service.publish_changes(redis, node),
            Err(why) => eprintln!(
                "warning: [redis]: {why}; running nodes learn of changes made here by polling \
                 the store (about a second)"
            ),
        }
    }
    Ok(service)
}

/// The CLI's Redis connection and node name. It connects for one message, so it waits
/// longer than a node's calls do (a connection, perhaps TLS, is made first).
fn cli_publisher(
    section: &crate::config::limits::RedisSection,
) -> Result<(store::redis::Redis, String), String> {
    let mut settings = section.store_config()?;
    settings.timeout = settings.timeout.max(std::time::Duration::from_secs(2));
    let redis = store::redis::Redis::new(&settings).map_err(|e| format!("url: {e}"))?;
    let node = oauth::random_b64(12).map_err(|e| e.to_string())?;
    Ok((redis, format!("cli-{node}")))
}

/// Waits for the changes a command made to be published, and warns about those Redis did
/// not take.
pub async fn flush_changes(service: &Service) {
    let failed = service.flush_changes().await;
    if failed > 0 {
        eprintln!(
            "warning: {failed} change message(s) could not be published on Redis; running \
             nodes learn of them by polling the store (about a second)"
        );
    }
}

/// The admin token: `TOKENGATE_ADMIN_TOKEN`, else the configuration's.
pub fn admin_token(config: &Config) -> Result<Option<String>, CliError> {
    bearer_token(ADMIN_TOKEN_ENV, config.server.admin_token.as_ref())
}

/// The token `/metrics` requires: `TOKENGATE_METRICS_TOKEN`, else the configuration's.
pub fn metrics_token(config: &Config) -> Result<Option<String>, CliError> {
    bearer_token(METRICS_TOKEN_ENV, config.server.metrics_token.as_ref())
}

/// A bearer token from `env`, else from the configuration file.
fn bearer_token(
    env: &str,
    configured: Option<&toml::Spanned<String>>,
) -> Result<Option<String>, CliError> {
    match std::env::var(env).ok().filter(|t| !t.is_empty()) {
        // The same floor as the configuration file's: a guessable token is a hole.
        Some(t) if t.len() < 32 => Err(CliError::usage(format!(
            "{env} must be at least 32 characters"
        ))),
        Some(t) => Ok(Some(t)),
        None => Ok(configured.map(|t| t.get_ref().clone())),
    }
}
