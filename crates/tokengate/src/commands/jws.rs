//! `tokengate jws …`: sign and verify arbitrary payloads.

use jose::jws::{compact, json, HeaderParams, VerifyOptions};
use jose::ErrorCode;

use super::{print_line, write_stdout};
use crate::cli::{JwsCommand, JwsSignArgs, JwsVerifyArgs};
use crate::error::{CliError, EXIT_REJECTED, EXIT_USAGE};
use crate::input::{
    at_most_one_stdin, is_stdin, load_key, read_bytes, read_token, signing_alg, verify_algorithms,
};

pub fn run(cmd: JwsCommand) -> Result<(), CliError> {
    match cmd {
        JwsCommand::Sign(args) => sign(&args),
        JwsCommand::Verify(args) => verify(&args),
    }
}

fn sign(args: &JwsSignArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        ("the payload", is_stdin(args.payload.as_deref())),
    ])?;
    let keys = load_key(Some(&args.key))?;
    let key = keys.signing_key()?;
    let alg = signing_alg(key, args.alg.as_deref())?;
    let mut params = HeaderParams::default();
    if let Some(header) = &args.header {
        params.protected =
            jose::json::parse_object(header.as_bytes(), "--header").map_err(|e| {
                CliError::new(
                    e.code().as_str(),
                    format!("--header: {}", e.reason()),
                    EXIT_USAGE,
                )
            })?;
        // jose would silently replace it; a header saying one thing and a flag another is a
        // mistake worth reporting.
        if params.protected.contains_key("alg") {
            return Err(CliError::usage("--header must not set \"alg\": use --alg"));
        }
    }
    // The payload is signed exactly as read: no trimming, no newline handling.
    let payload = read_bytes(args.payload.as_deref())?;
    let out = if args.json {
        let signer = json::Signature {
            key,
            alg,
            params: &params,
        };
        json::sign(&payload, &[signer], json::Form::Flattened, args.detached)?
    } else if args.detached {
        compact::sign_detached(&payload, key, alg, &params)?
    } else {
        compact::sign(&payload, key, alg, &params)?
    };
    print_line(&out)
}

fn verify(args: &JwsVerifyArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        (
            "--payload",
            args.payload.as_deref().is_some_and(|p| is_stdin(Some(p))),
        ),
        ("the JWS", is_stdin(args.token.as_deref())),
    ])?;
    let keys = load_key(Some(&args.key))?;
    let mut options = VerifyOptions::from_key();
    options.algorithms = verify_algorithms(&keys, &args.algs)?;
    let token = read_token(args.token.as_deref(), ErrorCode::JwsInvalid, EXIT_REJECTED)?;
    let detached = args
        .payload
        .as_deref()
        .map(|p| read_bytes(Some(p)))
        .transpose()?;
    let as_json = args.json || token.starts_with('{');
    let keys = keys.keys();
    let payload = match (as_json, detached.as_deref()) {
        (true, None) => json::verify(&token, keys, &options).map(|v| v.payload),
        (true, Some(p)) => json::verify_detached(&token, p, keys, &options).map(|v| v.payload),
        (false, None) => compact::verify(&token, keys, &options).map(|v| v.payload),
        (false, Some(p)) => compact::verify_detached(&token, p, keys, &options).map(|v| v.payload),
    }
    .map_err(|e| CliError::verify(&e))?;
    write_stdout(&payload)
}
