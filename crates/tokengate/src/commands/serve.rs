//! `tokengate serve` and `tokengate dev`: open the store, check the master key, bind, start
//! the service, run the key lifecycle in the background, serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oauth::{NewClient, Service};
use store::AuthMethod;

use super::{block_on, storage};
use crate::boot;
use crate::cli::{DevArgs, ServeArgs};
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};
use crate::server::{router, App};

/// How often each node runs the key lifecycle step (and so picks up changes other nodes or
/// the CLI made). Far below any pre-publication period.
const MAINTAIN_EVERY: Duration = Duration::from_secs(5);

/// The configuration `dev` runs with when given none: one demo audience.
const DEV_CONFIG: &str = r#"
[[audiences]]
id = "https://api.example"
scopes = ["demo:read", "demo:write"]
"#;

pub fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (config, flags) = storage(&args.storage)?;
    let listen = args.listen.unwrap_or(config.server.listen);
    block_on(run(config, flags, listen, false))
}

pub fn dev(args: DevArgs) -> Result<(), CliError> {
    let (config, flags) = match &args.storage.config {
        Some(_) => storage(&args.storage)?,
        None => {
            let (_, flags) = storage(&args.storage)?;
            let config = Config::parse(DEV_CONFIG, "(dev defaults)")
                .map_err(|e| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE))?;
            (config, flags)
        }
    };
    let listen = args.listen.unwrap_or(config.server.listen);
    block_on(run(config, flags, listen, true))
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::io(what, &e)
}

async fn run(
    config: Config,
    flags: boot::StorageFlags,
    listen: SocketAddr,
    dev: bool,
) -> Result<(), CliError> {
    if config.server.tls.is_some() {
        return Err(CliError::usage(
            "server.tls: TLS termination is not implemented yet; terminate TLS in front of \
             tokengate for now, or remove [server.tls]",
        ));
    }
    // The master key is checked against the database before the port is bound.
    let (store, master, note) = boot::open_store(&config, &flags).await?;
    if let Some(note) = note {
        crate::log::event("notice", &note);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(io_error("binding the listen address"))?;
    let addr = listener
        .local_addr()
        .map_err(io_error("reading the bound address"))?;
    let issuer = match &config.token_service.issuer {
        Some(_) => config
            .issuer_id()
            .map_err(|e| CliError::usage(format!("issuer: {e}")))?,
        None => format!("http://{addr}"),
    };
    let service = Arc::new(boot::start_service(&config, store, master, issuer.clone()).await?);
    let mut admin_token = boot::admin_token(&config);
    if dev {
        if admin_token.is_none() {
            admin_token = Some(random_token()?);
        }
        announce_dev(&service, &issuer, admin_token.as_deref()).await?;
    }
    let app = App::new(Arc::clone(&service), admin_token);

    tokio::spawn(maintain(Arc::clone(&service)));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tokengate listening on http://{addr}");
        let _ = out.flush();
    }
    crate::log::event("info", &format!("listening on {addr}, issuer {issuer}"));
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(io_error("serving"))?;
    crate::log::event("info", "stopped");
    Ok(())
}

/// The periodic key-lifecycle step; failures are logged and retried on the next tick.
async fn maintain(service: Arc<Service>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = service.maintain(store::unix_now()).await {
            crate::log::event(
                "error",
                &format!("key lifecycle step failed ({}): {e}", e.code()),
            );
        }
    }
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn random_token() -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CliError::new("ERR_RANDOM", "random generator failed", EXIT_USAGE))?;
    Ok(jose::b64::encode(bytes))
}

/// Creates (or, on later runs, re-keys) the demo client and prints how to use it.
async fn announce_dev(
    service: &Service,
    issuer: &str,
    admin_token: Option<&str>,
) -> Result<(), CliError> {
    let fail = |e: oauth::AdminError| CliError::new("ERR_DEV", e.to_string(), EXIT_USAGE);
    let now = store::unix_now();
    let audience = service
        .settings()
        .audiences
        .first()
        .map(|a| (a.id.clone(), a.scopes.clone()));
    let (audience, scopes) = audience.unwrap_or_else(|| ("https://api.example".into(), Vec::new()));
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
                        scopes: scopes.clone(),
                        audiences: vec![audience.clone()],
                        auth_method: AuthMethod::ClientSecretBasic,
                        jwks: None,
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
    let scope = scopes
        .first()
        .map_or(String::new(), |s| format!(" -d scope={s}"));
    let text = format!(
        "tokengate dev: token service at {issuer}\n\
         demo client: client_id={id} client_secret={secret} (secret re-issued on every dev start)\n\
         admin token: {admin}\n\n\
         Get a token:\n  \
         TOKEN=$(curl -s -u '{id}:{secret}' -d grant_type=client_credentials -d resource={audience}{scope} {issuer}/oauth2/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n\
         Introspect it:\n  curl -s -u '{id}:{secret}' -d \"token=$TOKEN\" {issuer}/oauth2/introspect\n\
         Revoke it:\n  curl -s -u '{id}:{secret}' -d \"token=$TOKEN\" {issuer}/oauth2/revoke\n\
         Metadata and keys:\n  curl -s {issuer}/.well-known/oauth-authorization-server\n  curl -s {issuer}/oauth2/jwks\n\
         Audit trail:\n  curl -s -H 'Authorization: Bearer {admin}' {issuer}/admin/audit\n",
        admin = admin_token.unwrap_or("(admin API off)"),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(())
}
