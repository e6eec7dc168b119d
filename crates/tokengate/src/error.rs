//! The CLI's one error type: a stable code, a reason and the exit status it maps to.

use std::fmt;
use std::path::Path;

use jose::ErrorCode;

/// Exit status when a token or signature is rejected.
pub const EXIT_REJECTED: u8 = 1;
/// Exit status for usage, key and I/O problems.
pub const EXIT_USAGE: u8 = 2;

/// Printed as `error[CODE]: reason`; `exit` is the process exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: String,
    pub reason: String,
    pub exit: u8,
}

impl CliError {
    pub fn new(code: impl Into<String>, reason: impl Into<String>, exit: u8) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
            exit,
        }
    }

    /// A CLI-level usage problem (flags that make no sense together, a missing `--alg`).
    pub fn usage(reason: impl Into<String>) -> Self {
        Self::new("ERR_USAGE", reason, EXIT_USAGE)
    }

    /// Reading or writing failed.
    pub fn io(what: &str, err: &std::io::Error) -> Self {
        Self::new("ERR_IO", format!("{what}: {err}"), EXIT_USAGE)
    }

    /// A jose error from anything but a verification (keys, options, signing): exit 2.
    pub fn jose(err: &jose::Error) -> Self {
        Self::new(err.code().as_str(), err.reason(), EXIT_USAGE)
    }

    /// A jose error naming the file it came from.
    pub fn jose_in(path: &Path, err: &jose::Error) -> Self {
        Self::new(
            err.code().as_str(),
            format!("{}: {}", display_path(path), err.reason()),
            EXIT_USAGE,
        )
    }

    /// An error returned by a verify call: the token is rejected (exit 1), except when the
    /// caller's options were at fault, which is a usage problem (exit 2).
    pub fn verify(err: &jose::Error) -> Self {
        let exit = if err.code() == ErrorCode::InvalidOptions {
            EXIT_USAGE
        } else {
            EXIT_REJECTED
        };
        Self::new(err.code().as_str(), err.reason(), exit)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.reason)
    }
}

impl std::error::Error for CliError {}

impl From<jose::Error> for CliError {
    fn from(err: jose::Error) -> Self {
        Self::jose(&err)
    }
}

/// How a path appears in messages; `-` is stdin.
pub fn display_path(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}
