//! `tokengate key …`: list keys, start a rotation, print the JWKS, directly on the store.
//! Running nodes pick up a rotation at once through Redis when `[redis]` is configured,
//! else within a second (they compare the store's keys with theirs every second).

use super::{block_on, print_json, storage};
use crate::boot;
use crate::cli::KeyCommand;
use crate::error::{CliError, EXIT_USAGE};
use crate::server::{key_use, key_view};

pub fn run(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::List(args) => {
            let (config, flags) = storage(&args)?;
            let keys = block_on(async {
                let service = boot::open_service(&config, &flags).await?;
                service
                    .store()
                    .list_keys()
                    .await
                    .map_err(|e| CliError::new(e.code(), e.to_string(), EXIT_USAGE))
            })?;
            print_json(&keys.iter().map(key_view).collect())
        }
        KeyCommand::Rotate(args) => {
            let (config, flags) = storage(&args.storage)?;
            let use_ = key_use(Some(&args.key_use))
                .ok_or_else(|| CliError::usage("--use must be sig, enc or audit"))?;
            let key = block_on(async {
                let service = boot::open_service(&config, &flags).await?;
                let rotated = service.rotate_key(use_, store::unix_now(), None).await;
                boot::flush_changes(&service).await;
                rotated.map_err(|e| CliError::new("ERR_KEY_ROTATE", e.to_string(), EXIT_USAGE))
            })?;
            print_json(&key_view(&key))
        }
        KeyCommand::Jwks(args) => {
            let (config, flags) = storage(&args)?;
            let jwks = block_on(async {
                let service = boot::open_service(&config, &flags).await?;
                Ok(service.jwks())
            })?;
            print_json(&jwks)
        }
    }
}
