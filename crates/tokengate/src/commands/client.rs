//! `tokengate client …`: register and manage OAuth clients directly in the store (no running
//! server needed). Each change is an audit event, as through the admin API.

use oauth::{AdminError, NewClient};
use store::AuthMethod;

use super::{block_on, print_json, storage};
use crate::boot;
use crate::cli::{ClientCommand, ClientIdArgs};
use crate::error::{CliError, EXIT_USAGE};
use crate::server::client_view;

fn admin(e: &AdminError) -> CliError {
    CliError::new(
        format!("ERR_CLIENT_{}", e.code().to_uppercase()),
        e.to_string(),
        EXIT_USAGE,
    )
}

pub fn run(cmd: ClientCommand) -> Result<(), CliError> {
    let now = store::unix_now();
    match cmd {
        ClientCommand::Create(args) => {
            let named = if args.public {
                Some("none")
            } else {
                args.auth_method.as_deref()
            };
            let auth_method = named
                .map(|m| {
                    AuthMethod::parse(m).ok_or_else(|| {
                        CliError::usage(
                            "--auth-method must be client_secret_basic, client_secret_post, private_key_jwt or none",
                        )
                    })
                })
                .transpose()?;
            let jwks = match &args.jwks {
                Some(path) => Some(
                    String::from_utf8(crate::input::read_text(Some(path))?)
                        .map_err(|_| CliError::usage("--jwks is not UTF-8"))?,
                ),
                None => None,
            };
            let new = NewClient {
                name: args.name,
                scopes: args
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                audiences: args.audiences,
                auth_method,
                jwks,
                redirect_uris: args.redirect_uris,
                first_party: true,
            };
            let (config, flags) = storage(&args.storage)?;
            let creds = block_on(async {
                let service = boot::open_service(&config, &flags).await?;
                let created = service.create_client(new, now, None).await;
                boot::flush_changes(&service).await;
                created.map_err(|e| admin(&e))
            })?;
            print_json(&serde_json::to_value(&creds).unwrap_or_default())
        }
        ClientCommand::List(args) => {
            let (config, flags) = storage(&args)?;
            let clients = block_on(async {
                let service = boot::open_service(&config, &flags).await?;
                service
                    .store()
                    .list_clients()
                    .await
                    .map_err(|e| admin(&e.into()))
            })?;
            print_json(&clients.iter().map(client_view).collect())
        }
        ClientCommand::Show(args) => with_client(args, |service, id| async move {
            match service.store().client(&id).await {
                Ok(Some(c)) => Ok(client_view(&c)),
                Ok(None) => Err(AdminError::NotFound("client")),
                Err(e) => Err(e.into()),
            }
        }),
        ClientCommand::Disable(args) => with_client(args, move |service, id| async move {
            service
                .set_client_disabled(&id, true, now, None)
                .await
                .map(|c| client_view(&c))
        }),
        ClientCommand::Enable(args) => with_client(args, move |service, id| async move {
            service
                .set_client_disabled(&id, false, now, None)
                .await
                .map(|c| client_view(&c))
        }),
        ClientCommand::Delete(args) => with_client(args, move |service, id| async move {
            service
                .delete_client(&id, now, None)
                .await
                .map(|()| serde_json::json!({ "deleted": id }))
        }),
        ClientCommand::RotateSecret(args) => with_client(args, move |service, id| async move {
            let creds = service.rotate_client_secret(&id, now, None).await?;
            Ok(serde_json::to_value(&creds).unwrap_or_default())
        }),
    }
}

/// Opens the service and runs `op` on one client id, printing its JSON result.
fn with_client<F, Fut>(args: ClientIdArgs, op: F) -> Result<(), CliError>
where
    F: FnOnce(std::sync::Arc<oauth::Service>, String) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, AdminError>>,
{
    let (config, flags) = storage(&args.storage)?;
    let value = block_on(async {
        let service = std::sync::Arc::new(boot::open_service(&config, &flags).await?);
        let done = op(std::sync::Arc::clone(&service), args.client_id).await;
        boot::flush_changes(&service).await;
        done.map_err(|e| admin(&e))
    })?;
    print_json(&value)
}
