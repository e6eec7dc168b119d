//! `tokengate serve` and `tokengate dev`: open the store, check the master key, bind, start
//! the service, run the key lifecycle in the background, serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oauth::{NewClient, Service};

use super::{block_on, storage};
use crate::boot;
use crate::cli::{DevArgs, ServeArgs};
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};
use crate::server::App;

/// How often each node runs the key lifecycle step (and so picks up changes other nodes or
/// the CLI made). Far below any pre-publication period.
const MAINTAIN_EVERY: Duration = Duration::from_secs(5);

/// The audience of the demo's plain tokens, and of its encrypted ones.
const DEMO_API: &str = "https://api.example";
const DEMO_SECURE: &str = "https://secure.example";

/// The demo route's rate limit: requests per minute per client.
const DEMO_LIMIT: u32 = 10;

/// The configuration `dev` runs with when given none: the development sign-in page, client
/// metadata documents (from loopback too), two audiences (one with encrypted tokens) and
/// three routes to the demo upstream: the first limited per client, the second cached.
fn dev_config(upstream: SocketAddr) -> String {
    format!(
        r#"
[token_service.login]
provider = "dev"

# Anyone may name a client by a metadata document URL (MCP hosts do); in dev, documents
# served beside tokengate on loopback are fetched too.
[token_service.registration]
client_id_metadata_documents = true
metadata_documents_from_loopback = true
audiences = ["{DEMO_API}"]

[token_service.rate_limits]
per_ip = {{ limit = 600, per = "1m" }}

[[audiences]]
id = "{DEMO_API}"
scopes = ["transactions:read", "transactions:write"]

[[audiences]]
id = "{DEMO_SECURE}"
scopes = ["transactions:read"]
encrypt = true

[[routes]]
name = "transactions"
path_prefix = "/api/"
upstreams = ["http://{upstream}"]
[routes.auth]
issuers = ["self"]
audience = "{DEMO_API}"
required_scopes = ["transactions:write"]
forward_claims = {{ sub = "x-user-id", client_id = "x-client-id", scope = "x-scopes" }}
[[routes.rate_limits]]
name = "per-client"
key = "client_id"
limit = {DEMO_LIMIT}
per = "1m"

[[routes]]
name = "rates"
path = "/api/rates"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]
[routes.auth]
issuers = ["self"]
audience = "{DEMO_API}"
required_scopes = ["transactions:read"]
[routes.cache]
ttl = "30s"
partition = "subject"

[[routes]]
name = "secure"
path_prefix = "/secure/"
upstreams = ["http://{upstream}"]
[routes.auth]
issuers = ["self"]
audience = "{DEMO_SECURE}"
forward_claims = {{ sub = "x-user-id", scope = "x-scopes" }}
"#
    )
}

pub fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (config, flags) = storage(&args.storage)?;
    let listen = args.listen.unwrap_or(config.server.listen);
    let _logs = start_logging(&config)?;
    block_on(run(
        config,
        flags,
        listen,
        false,
        args.storage.config.clone(),
    ))
}

pub fn dev(args: DevArgs) -> Result<(), CliError> {
    // A configuration file is read before the runtime starts: logging and tracing start
    // outside it (the span exporter's HTTP client runs its own).
    let given = match &args.storage.config {
        Some(path) => Some((storage(&args.storage)?, path.clone())),
        None => None,
    };
    let _logs = match &given {
        Some(((config, _), _)) => start_logging(config)?,
        None => start_logging(&Config::parse("", "(defaults)").map_err(config_error)?)?,
    };
    block_on(async move {
        let (config, flags, path) = match given {
            Some(((config, flags), path)) => (config, flags, Some(path)),
            None => {
                let (_, flags) = storage(&args.storage)?;
                let upstream = crate::demo::start().await?;
                let config =
                    Config::parse(&dev_config(upstream), "(dev defaults)").map_err(config_error)?;
                (config, flags, None)
            }
        };
        let listen = args.listen.unwrap_or(config.server.listen);
        run(config, flags, listen, true, path).await
    })
}

/// With the development sign-in provider: registers the binary's own browser client (public,
/// its redirect URI on this issuer; registered again when the issuer moved to another port)
/// and returns the URL that starts a sign-in with it.
async fn dev_browser_client(
    service: &Service,
    issuer: &str,
    now: i64,
) -> Result<Option<String>, oauth::AdminError> {
    use crate::server::dev_client::{DEV_CALLBACK, DEV_CLIENT_NAME, DEV_START};
    if !service.login().is_some_and(|l| l.provider.is_dev()) {
        return Ok(None);
    }
    let redirect_uri = service.url(DEV_CALLBACK);
    let mut found = false;
    for c in service.store().list_clients().await? {
        // Only the browser client a dev start registered: public, its redirect URI this
        // binary's callback (on whatever port it had).
        let ours = c.name == DEV_CLIENT_NAME
            && c.first_party
            && c.auth_method == store::AuthMethod::Public
            && c.redirect_uris.len() == 1
            && c.redirect_uris.iter().all(|r| r.ends_with(DEV_CALLBACK));
        if !ours || c.disabled {
            continue;
        }
        if c.redirect_uris == [redirect_uri.clone()] && !found {
            found = true;
        } else {
            service.delete_client(&c.client_id, now, None).await?;
        }
    }
    if !found {
        let settings = service.settings();
        let mut scopes: Vec<String> = settings
            .audiences
            .iter()
            .flat_map(|a| a.scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        service
            .create_client(
                NewClient {
                    name: DEV_CLIENT_NAME.into(),
                    scopes,
                    audiences: settings.audiences.iter().map(|a| a.id.clone()).collect(),
                    auth_method: Some(store::AuthMethod::Public),
                    jwks: None,
                    redirect_uris: vec![redirect_uri],
                    first_party: true,
                },
                now,
                None,
            )
            .await?;
    }
    Ok(Some(format!("{}{DEV_START}", issuer.trim_end_matches('/'))))
}

/// Whether the listen address and the issuer (by default derived from it) are loopback: the
/// service is reachable from this machine only, and says so in its URLs.
fn on_loopback(config: &Config, listen: SocketAddr) -> bool {
    listen.ip().is_loopback()
        && config
            .token_service
            .issuer
            .as_ref()
            .is_none_or(|i| gateway::keys::is_loopback(i.get_ref()))
}

/// `provider = "dev"` lets anyone sign in as anyone: it runs with `tokengate dev` only, and
/// only where nobody but this machine can reach it (a loopback listen address and issuer).
fn refuse_dev_sign_in_beyond_this_machine(
    config: &Config,
    dev: bool,
    listen: SocketAddr,
) -> Result<(), CliError> {
    if !config
        .token_service
        .login
        .as_ref()
        .is_some_and(|l| l.is_dev())
    {
        return Ok(());
    }
    if !dev {
        return Err(CliError::usage(
            "token_service.login.provider = \"dev\" lets anyone sign in as anyone: it runs \
             with `tokengate dev` only"
                .to_owned(),
        ));
    }
    if !on_loopback(config, listen) {
        return Err(CliError::usage(
            "token_service.login.provider = \"dev\" lets anyone sign in as anyone: it listens \
             on loopback only (127.0.0.1 or [::1]), with a loopback issuer"
                .to_owned(),
        ));
    }
    Ok(())
}

/// `metadata_documents_from_loopback` makes tokengate GET any URL on this machine's loopback
/// addresses that a stranger names: it runs only where nobody but this machine can name one
/// (development and tests): a loopback listen address and issuer, and no trusted proxies
/// (a proxy in front would bring the network's requests in), with a warning under `serve`.
fn refuse_loopback_documents_beyond_this_machine(
    config: &Config,
    dev: bool,
    listen: SocketAddr,
) -> Result<(), CliError> {
    let setting = &config
        .token_service
        .registration
        .metadata_documents_from_loopback;
    if !*setting.get_ref() {
        return Ok(());
    }
    if !on_loopback(config, listen) || !config.server.trusted_proxies.is_empty() {
        return Err(CliError::usage(
            "token_service.registration.metadata_documents_from_loopback fetches documents \
             from this machine's loopback addresses: it runs on a loopback listen address \
             only (127.0.0.1 or [::1]), with a loopback issuer and no trusted_proxies"
                .to_owned(),
        ));
    }
    if !dev {
        tracing::warn!(
            "token_service.registration.metadata_documents_from_loopback is on: client \
             metadata documents are fetched from this machine's loopback addresses too \
             (meant for development and tests)"
        );
    }
    Ok(())
}

fn config_error(e: crate::config::ConfigError) -> CliError {
    CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE)
}

/// Logs (and traces, when configured) until the returned guard is dropped, which writes
/// what is still queued.
fn start_logging(config: &Config) -> Result<crate::log::Guard, CliError> {
    crate::log::init(&config.telemetry)
        .map_err(|e| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE))
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::io(what, &e)
}

async fn run(
    config: Config,
    flags: boot::StorageFlags,
    listen: SocketAddr,
    dev: bool,
    config_path: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let tls = match &config.server.tls {
        Some(t) => Some(
            crate::server::listener::tls_config(&t.cert, &t.key)
                .map_err(|e| CliError::new("ERR_TLS", format!("server.tls: {e}"), EXIT_USAGE))?,
        ),
        None => None,
    };
    refuse_dev_sign_in_beyond_this_machine(&config, dev, listen)?;
    refuse_loopback_documents_beyond_this_machine(&config, dev, listen)?;
    // Before anything is written: a second node on one SQLite file is refused.
    let _claim = boot::node::claim_sqlite(&config, &flags)?;
    // The master key is checked against the database before the port is bound.
    let (store, master, note) = boot::open_store(&config, &flags).await?;
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(io_error("binding the listen address"))?;
    let admin_listener = match &config.server.admin_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(*at.get_ref())
                .await
                .map_err(io_error("binding the admin listen address"))?,
        ),
        None => None,
    };
    let addr = listener
        .local_addr()
        .map_err(io_error("reading the bound address"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let issuer = match &config.token_service.issuer {
        Some(_) => config
            .issuer_id()
            .map_err(|e| CliError::usage(format!("issuer: {e}")))?,
        None => format!("{scheme}://{addr}"),
    };
    let service = Arc::new(boot::start_service(&config, store, master, issuer.clone()).await?);
    let mut admin_token = boot::admin_token(&config)?;
    if dev {
        if admin_token.is_none() {
            admin_token = Some(random_token()?);
        }
        let storage = flags.as_flags(&config);
        announce_dev(&service, &issuer, admin_token.as_deref(), &storage).await?;
    }
    let (parts, redis) = boot::GatewayParts::for_node(Arc::clone(&service), &config)?;
    let gateway = boot::build_gateway(&config, &parts)?;
    let reloader: Option<crate::server::Reloader> = config_path.map(|path| {
        let parts = parts.clone();
        let service = Arc::clone(&service);
        Box::new(move || {
            let (config, text) = Config::load_with_text(&path).map_err(|e| e.to_string())?;
            let gateway = boot::build_gateway(&config, &parts).map_err(|e| e.to_string())?;
            Ok(crate::server::Rebuilt {
                gateway,
                fingerprint: service.fingerprint(text.as_bytes()),
                effective: config.effective(),
            })
        }) as crate::server::Reloader
    });
    let bound = |n: &Option<toml::Spanned<u64>>| {
        n.as_ref().and_then(|n| usize::try_from(*n.get_ref()).ok())
    };
    let access = crate::server::Access {
        admin_token,
        metrics_token: boot::metrics_token(&config)?,
        max_in_flight: bound(&config.server.max_in_flight),
        max_connections: bound(&config.server.max_connections),
        redis: redis.clone(),
    };
    let console_beside_routes = access.admin_token.is_some()
        && config.server.admin_listen.is_none()
        && !gateway.routes().is_empty();
    if console_beside_routes && !dev {
        // Same origin, same trust: a page an upstream serves through a route could use a
        // signed-in console user's session (docs/security.md).
        tracing::warn!(
            "the web console shares its origin with the gateway's routes: set [server] \
             admin_listen to give the console and the admin API an origin of their own"
        );
    }
    let app = App::with_gateway(Arc::clone(&service), access, gateway, reloader);
    app.show_configuration(config.effective());

    tokio::spawn(maintain(Arc::clone(&service)));
    // Past this, while the store cannot be read, the gateway refuses our own tokens.
    service
        .revocations()
        .set_max_staleness(config.server.max_revocation_staleness.0);
    tokio::spawn(boot::node::poll_store(Arc::clone(&service)));
    if let Some(redis) = redis {
        boot::node::follow_changes(Arc::clone(&service), redis)?;
    }
    tokio::spawn(audit_admin_failures(Arc::clone(&app)));
    tokio::spawn(boot::audit::sign_checkpoints(
        Arc::clone(&service),
        Duration::from_secs(config.audit.checkpoint_every.0),
    ));
    if let Some(sink) = config.audit.sink.clone() {
        tokio::spawn(boot::audit::copy_to_sink(service.store().clone(), sink));
    }
    // Signal handlers exist before the "listening" line, so a signal sent on seeing it is
    // handled rather than taking the default action (termination).
    let shutdown = shutdown_signal();
    #[cfg(unix)]
    if let Ok(hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(reload_on_hangup(hangup, Arc::clone(&app)));
    }
    let listeners = Listeners {
        main: listener,
        admin: admin_listener,
        tls,
        timeouts: config.timeouts(),
        shutdown_delay: Duration::from_secs(config.server.shutdown_delay.0),
    };
    listeners.serve(app, shutdown, &issuer).await
}

/// The bound listeners: the main one, and the admin one when `admin_listen` is set.
struct Listeners {
    main: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: crate::config::Timeouts,
    /// `[server] shutdown_delay`.
    shutdown_delay: Duration,
}

impl Listeners {
    /// Announces the addresses (the admin one first: the main line is what scripts wait
    /// for), serves until `shutdown`, then writes the admin failures still counted.
    async fn serve(
        self,
        app: Arc<App>,
        shutdown: impl std::future::Future<Output = ()>,
        issuer: &str,
    ) -> Result<(), CliError> {
        use crate::server::listener::serve;
        use crate::server::Surface;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let bound = |l: &tokio::net::TcpListener| {
            l.local_addr()
                .map_err(io_error("reading the bound address"))
        };
        let addr = bound(&self.main)?;
        let admin_addr = self.admin.as_ref().map(bound).transpose()?;
        {
            let mut out = std::io::stdout().lock();
            if let Some(admin) = admin_addr {
                let _ = writeln!(out, "tokengate admin API and metrics on {scheme}://{admin}");
            }
            let _ = writeln!(out, "tokengate listening on {scheme}://{addr}");
            let _ = out.flush();
        }
        tracing::info!("listening on {addr}, issuer {issuer}");
        let stop = tokio_util::sync::CancellationToken::new();
        let (main, admin) = match self.admin {
            None => (Surface::All, None),
            Some(listener) => (Surface::Public, Some(listener)),
        };
        let admin_served = admin.map(|listener| {
            tokio::spawn(serve(
                listener,
                Arc::clone(&app),
                self.tls.clone(),
                self.timeouts,
                Surface::Admin,
                stop.clone().cancelled_owned(),
            ))
        });
        let on_shutdown = stop.clone();
        let leaving = Arc::clone(&app);
        let (delay, drain) = (self.shutdown_delay, self.timeouts.drain);
        // SIGTERM: readiness fails first; the listeners keep accepting for the delay, while
        // load balancers take the node out; then they stop and requests in flight get the
        // drain time.
        let shutdown = async move {
            shutdown.await;
            leaving.readiness.drain();
            tracing::info!(
                "shutting down: /readyz answers 503; new connections stop in {delay:?}, \
                 requests in flight then get {drain:?}"
            );
            tokio::time::sleep(delay).await;
            on_shutdown.cancel();
        };
        serve(
            self.main,
            Arc::clone(&app),
            self.tls,
            self.timeouts,
            main,
            shutdown,
        )
        .await;
        if let Some(served) = admin_served {
            let _ = served.await;
        }
        // Bounded: a store that does not answer must not hold the exit.
        let _ = tokio::time::timeout(Duration::from_secs(5), write_admin_failures(&app)).await;
        // The denials tallied since the last interval, then a checkpoint that signs every
        // event written before the exit.
        let _ = tokio::time::timeout(boot::audit::FINAL_CHECKPOINT_TIMEOUT, async {
            app.gateway().audit().flush().await;
            app.service.flush_audit().await;
            boot::audit::checkpoint_now(&app.service).await;
        })
        .await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often failed admin authentications are written to the audit trail.
const ADMIN_FAILURES_EVERY: Duration = Duration::from_secs(60);

/// Writes the failed admin authentications counted since the last time, one event per
/// source; what cannot be written is kept for the next time, and the failure logged.
async fn write_admin_failures(app: &App) {
    let written = app
        .admin_failures
        .flush(
            app.service.store(),
            store::unix_now(),
            ADMIN_FAILURES_EVERY.as_secs(),
        )
        .await;
    if let Err(e) = written {
        tracing::error!(
            "auditing failed admin authentications failed ({}): {e}",
            e.code()
        );
    }
}

/// Writes the failed admin authentications counted in each interval, one event per source.
async fn audit_admin_failures(app: Arc<App>) {
    let mut tick = tokio::time::interval(ADMIN_FAILURES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        write_admin_failures(&app).await;
    }
}

/// SIGHUP reloads the configuration (as `POST /admin/reload` does).
#[cfg(unix)]
async fn reload_on_hangup(mut hangup: tokio::signal::unix::Signal, app: Arc<App>) {
    while hangup.recv().await.is_some() {
        match app.reload_audited(None).await {
            Ok(n) => tracing::info!("configuration reloaded on SIGHUP ({n} routes)"),
            Err(e) => tracing::warn!("reload refused, the old configuration keeps serving: {e}"),
        }
    }
}

/// The periodic key-lifecycle step; failures are logged and retried on the next tick.
async fn maintain(service: Arc<Service>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = service.maintain(store::unix_now()).await {
            tracing::error!("key lifecycle step failed ({}): {e}", e.code());
        }
    }
}

/// Ctrl-C and (on Unix) SIGTERM, listened for from the moment this is called, not from its
/// first poll: a SIGTERM that arrives right after the "listening" line must shut down
/// gracefully, not kill the process (an unhandled SIGTERM's default action).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Each stream separately: one that cannot be made must not take the other with it.
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        async move {
            if interrupt.is_none() && term.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                () = received(&mut interrupt) => {}
                () = received(&mut term) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Completes when `signal` is delivered; never for a stream that could not be made (or whose
/// driver is gone), so the other one decides.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    let delivered = match signal {
        Some(s) => s.recv().await.is_some(),
        None => false,
    };
    if !delivered {
        std::future::pending::<()>().await;
    }
}

fn random_token() -> Result<String, CliError> {
    oauth::random_b64(32).map_err(|e| CliError::new(e.code(), e.to_string(), EXIT_USAGE))
}

/// Creates (or, on later runs, re-keys) the demo client and prints how to use it.
async fn announce_dev(
    service: &Service,
    issuer: &str,
    admin_token: Option<&str>,
    storage: &str,
) -> Result<(), CliError> {
    let fail = |e: oauth::AdminError| CliError::new("ERR_DEV", e.to_string(), EXIT_USAGE);
    let now = store::unix_now();
    let audiences: Vec<String> = service
        .settings()
        .audiences
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let mut scopes: Vec<String> = service
        .settings()
        .audiences
        .iter()
        .flat_map(|a| a.scopes.iter().cloned())
        .collect();
    scopes.sort();
    scopes.dedup();
    let existing = service
        .store()
        .list_clients()
        .await
        .map_err(|e| fail(e.into()))?
        .into_iter()
        .find(|c| c.name == "demo");
    let creds = match existing {
        Some(c) => service.rotate_client_secret(&c.client_id, now, None).await,
        None => {
            service
                .create_client(
                    NewClient {
                        name: "demo".into(),
                        scopes,
                        audiences,
                        auth_method: None,
                        jwks: None,
                        redirect_uris: Vec::new(),
                        first_party: true,
                    },
                    now,
                    None,
                )
                .await
        }
    }
    .map_err(fail)?;
    let id = &creds.client_id;
    let secret = creds.client_secret.as_deref().map_or("", |s| s.as_str());
    let admin = admin_token.unwrap_or("(admin API off)");
    let token = |var: &str, resource: &str, scope: &str| {
        format!(
            "{var}=$(curl -s -u '{id}:{secret}' -d grant_type=client_credentials -d resource={resource} -d scope={scope} {issuer}/oauth2/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
        )
    };
    let text = format!(
        "tokengate dev: token service and gateway at {issuer}\n\
         demo client: client_id={id} client_secret={secret} (secret re-issued on every dev start)\n\
         admin token: {admin}\n\
         web console: {issuer}/console (sign in with the admin token)\n\n\
         Get tokens (one that may write, one that may only read, one encrypted):\n  {write}\n  {read}\n  {enc}\n\
         Call the demo API through the gateway:\n\
         \x20 curl -i -X POST {issuer}/api/transactions                                            # 401: no token\n\
         \x20 curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -d '{{\"amount\":5}}' {issuer}/api/transactions   # 200: the upstream sees the caller\n\
         \x20 curl -i -X POST -H \"Authorization: Bearer $READ\" {issuer}/api/transactions            # 403: insufficient_scope\n\
         \x20 curl -s -H \"Authorization: Bearer $ENC\" {issuer}/secure/balance                         # 200: an encrypted (JWE) token\n\
         Rate limit ({DEMO_LIMIT} a minute per client): RateLimit counts down, then 429 with Retry-After:\n\
         \x20 for i in $(seq {DEMO_LIMIT}); do curl -s -o /dev/null -D - -X POST -H \"Authorization: Bearer $TOKEN\" {issuer}/api/transactions | grep -iE '^(HTTP|ratelimit:|retry-after)'; done\n\
         Cached responses: the first is stored (Cache-Status fwd=miss; stored), the next one is a hit with its Age:\n\
         \x20 for i in 1 2; do curl -s -o /dev/null -D - -H \"Authorization: Bearer $READ\" {issuer}/api/rates | grep -iE '^(HTTP/|cache-status:|age:)'; done\n\
         Introspect, revoke, and try again:\n\
         \x20 curl -s -u '{id}:{secret}' -d \"token=$TOKEN\" {issuer}/oauth2/introspect\n\
         \x20 curl -s -u '{id}:{secret}' -d \"token=$TOKEN\" {issuer}/oauth2/revoke\n\
         \x20 curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {issuer}/api/transactions            # 401: revoked\n\
         Metadata, keys, audit trail, metrics:\n\
         \x20 curl -s {issuer}/.well-known/oauth-authorization-server\n  curl -s {issuer}/oauth2/jwks\n\
         \x20 curl -s -H 'Authorization: Bearer {admin}' {issuer}/admin/audit\n  curl -s {issuer}/metrics\n\
         The audit log is tamper-evident (a checkpoint signs it every few seconds). Verify it; exit 1 names the first bad event:\n\
         \x20 tokengate audit verify {storage}\n\
         \x20 curl -s {issuer}/.well-known/tokengate-audit-keys > audit-keys.json\n\
         \x20 tokengate audit export {storage} --out audit.jsonl && tokengate audit verify audit.jsonl --keys audit-keys.json\n",
        write = token("TOKEN", DEMO_API, "transactions:write"),
        read = token("READ", DEMO_API, "transactions:read"),
        enc = token("ENC", DEMO_SECURE, "transactions:read"),
    );
    let text = match dev_browser_client(service, issuer, now).await.map_err(fail)? {
        Some(start) => format!(
            "{text}Sign a user in from a browser (the development sign-in page, then consent; it ends on the access token's claims):\n\
             \x20 {start}\n"
        ),
        None => text,
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DOCUMENTS: &str = "[token_service.login]\nprovider = \"dev\"\n\
        [token_service.rate_limits]\nper_ip = { limit = 60, per = \"1m\" }\n\
        [[audiences]]\nid = \"https://mcp.example\"\n\
        [token_service.registration]\naudiences = [\"https://mcp.example\"]\n\
        client_id_metadata_documents = true\nmetadata_documents_from_loopback = true\n";

    fn config(before: &str) -> Config {
        Config::parse(&format!("{before}{DOCUMENTS}"), "t.toml").unwrap()
    }

    #[test]
    fn loopback_documents_run_where_only_this_machine_can_name_them() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let plain = config("");
        // Behind a proxy (a public issuer, or trusted proxies), loopback is the network's.
        let public_issuer = config("[token_service]\nissuer = \"https://auth.example\"\n");
        let with_proxies = config("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n");
        for dev in [true, false] {
            assert!(refuse_loopback_documents_beyond_this_machine(&plain, dev, loopback).is_ok());
            for (refused_config, listen) in [
                (&plain, everywhere),
                (&public_issuer, loopback),
                (&with_proxies, loopback),
            ] {
                let refused =
                    refuse_loopback_documents_beyond_this_machine(refused_config, dev, listen)
                        .unwrap_err();
                assert!(
                    refused.to_string().contains("loopback listen address"),
                    "{refused}"
                );
            }
        }
    }
}
