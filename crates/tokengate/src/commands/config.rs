//! `tokengate config check FILE`: parse and validate (the same conversion `serve` and a reload
//! build the gateway from), read the key files the issuers name, then print the effective
//! settings so an operator sees what the defaults resolved to.

use super::print_json;
use crate::cli::ConfigCommand;
use crate::config::{Config, ConfigError};
use crate::error::{CliError, EXIT_USAGE};

pub fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Check(args) => {
            let refused = |e: ConfigError| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE);
            let config = Config::load(&args.file).map_err(refused)?;
            config.table().load_key_files().map_err(refused)?;
            let warnings = config.table().warnings();
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            let mut effective = config.effective();
            if let Some(fields) = effective.as_object_mut() {
                fields.insert("warnings".into(), serde_json::json!(warnings));
            }
            print_json(&effective)
        }
    }
}
