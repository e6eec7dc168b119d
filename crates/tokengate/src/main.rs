//! `tokengate`: parse flags, run the command, map the outcome to an exit status (0 success,
//! 1 rejected token or signature, 2 usage, key, configuration or I/O error).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use tokengate::{cli, commands};

// A proxy allocates and frees many small buffers per request; mimalloc does that markedly
// faster than glibc's allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::report_clap_error(&e),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // eprintln! would panic if stderr is closed; the exit status still tells.
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(e.exit)
        }
    }
}
