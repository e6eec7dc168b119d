//! `tokengate config check FILE`: parse and validate, then print the effective settings so an
//! operator sees what the defaults resolved to.

use super::print_json;
use crate::cli::ConfigCommand;
use crate::config::Config;
use crate::error::{CliError, EXIT_USAGE};

pub fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Check(args) => {
            let config = Config::load(&args.file)
                .map_err(|e| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE))?;
            print_json(&config.effective())
        }
    }
}
