//! One module per command group; each turns parsed flags into jose calls and prints results.

mod config;
mod jwe;
mod jwk;
mod jws;
mod jwt;

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
