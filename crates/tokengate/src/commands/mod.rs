//! One module per command group; each turns parsed flags into jose calls and prints results.

pub(crate) mod audit;
mod client;
mod config;
mod jwe;
mod jwk;
mod jws;
mod jwt;
mod key;
mod serve;

use std::io::{self, Write as _};

use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::error::{CliError, EXIT_USAGE};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Jwk(cmd) => jwk::run(cmd),
        Command::Jws(cmd) => jws::run(cmd),
        Command::Jwe(cmd) => jwe::run(cmd),
        Command::Jwt(cmd) => jwt::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Serve(args) => serve::serve(args),
        Command::Dev(args) => serve::dev(args),
        Command::Client(cmd) => client::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
    }
}

/// Writes `bytes` to stdout exactly. A closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::io("writing stdout", &e)),
        _ => Ok(()),
    }
}

/// Prints a line of text.
fn print_line(text: &str) -> Result<(), CliError> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    if !line.ends_with('\n') {
        line.push('\n');
    }
    write_stdout(line.as_bytes())
}

/// Prints pretty JSON and a newline.
fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        CliError::new(
            "ERR_INTERNAL",
            format!("JSON output failed: {e}"),
            EXIT_USAGE,
        )
    })?;
    print_line(&text)
}

/// Runs an async command on a fresh runtime.
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", &e))?
        .block_on(future)
}

/// The configuration (`--config`, or every default) and the storage flags.
fn storage(
    args: &crate::cli::StorageArgs,
) -> Result<(crate::config::Config, crate::boot::StorageFlags), CliError> {
    let config = match &args.config {
        Some(path) => crate::config::Config::load(path),
        None => crate::config::Config::parse("", "(defaults)"),
    }
    .map_err(|e| CliError::new("ERR_CONFIG", e.to_string(), EXIT_USAGE))?;
    let flags = crate::boot::StorageFlags {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
    };
    Ok((config, flags))
}
