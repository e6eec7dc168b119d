//! `tokengate jwe …`: encrypt and decrypt arbitrary payloads.

use jose::jwe::{compact, json, EncryptParams};
use jose::ErrorCode;

use super::{print_line, write_stdout};
use crate::cli::{JweCommand, JweDecryptArgs, JweEncryptArgs};
use crate::error::{CliError, EXIT_REJECTED};
use crate::input::{
    at_most_one_stdin, decrypt_options, is_stdin, load_key, parse_encryption, parse_key_management,
    read_bytes, read_token,
};

pub fn run(cmd: JweCommand) -> Result<(), CliError> {
    match cmd {
        JweCommand::Encrypt(args) => encrypt(&args),
        JweCommand::Decrypt(args) => decrypt(&args),
    }
}

fn encrypt(args: &JweEncryptArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        ("the plaintext", is_stdin(args.plaintext.as_deref())),
    ])?;
    let alg = parse_key_management(&args.alg)?;
    let enc = parse_encryption(&args.enc)?;
    let keys = load_key(Some(&args.key))?;
    let mut params = EncryptParams {
        // clap admits only "DEF".
        zip: args.zip.is_some(),
        pbes2_count: args.p2c,
        ..EncryptParams::default()
    };
    if let Some(cty) = &args.cty {
        params.protected.insert("cty".into(), cty.clone().into());
    }
    // The plaintext is encrypted exactly as read: no trimming, no newline handling.
    let plaintext = read_bytes(args.plaintext.as_deref())?;
    let key = keys.encryption_key(&format!("{alg} with {enc}"), alg, enc)?;
    let out = if args.json {
        let recipient = json::Recipient { key, alg };
        json::encrypt(
            &plaintext,
            &[recipient],
            enc,
            &params,
            None,
            json::Form::Flattened,
        )
    } else {
        compact::encrypt(&plaintext, key, alg, enc, &params)
    }
    .map_err(|e| CliError::jose(&e))?;
    print_line(&out)
}

fn decrypt(args: &JweDecryptArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        ("the JWE", is_stdin(args.token.as_deref())),
    ])?;
    let keys = load_key(Some(&args.key))?;
    keys.require_private("--key")?;
    let options = decrypt_options(&args.algs, &args.encs)?;
    let token = read_token(args.token.as_deref(), ErrorCode::JweInvalid, EXIT_REJECTED)?;
    let as_json = args.json || token.starts_with('{');
    let decrypted = if as_json {
        json::decrypt(&token, keys.keys(), &options)
    } else {
        compact::decrypt(&token, keys.keys(), &options)
    }
    .map_err(|e| {
        let mut err = CliError::verify(&e);
        if e.code() == ErrorCode::InvalidOptions && args.algs.is_empty() {
            err.reason.push_str(": pass --alg");
        }
        err
    })?;
    write_stdout(&decrypted.plaintext)
}
