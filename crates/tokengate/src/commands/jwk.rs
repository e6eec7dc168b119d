//! `tokengate jwk …`: generation, public half, thumbprint, PEM import and export.

use serde_json::Value;

use jose::jwe::ContentEncryption;
use jose::jwk::Curve;
use jose::{ErrorCode, Jwk};

use super::{print_json, print_line};
use crate::cli::{JwkCommand, JwkGenerateArgs, JwkImportArgs};
use crate::error::{CliError, EXIT_USAGE};
use crate::input::{
    load_key, parse_alg, parse_encryption, parse_key_management, read_text, KeyInput,
};

pub fn run(cmd: JwkCommand) -> Result<(), CliError> {
    match cmd {
        JwkCommand::Generate(args) => generate(&args),
        JwkCommand::Public(args) => public(args.file.as_deref()),
        JwkCommand::Thumbprint(args) => thumbprint(args.file.as_deref()),
        JwkCommand::Import(args) => import(&args),
        JwkCommand::Export(args) => export(args.file.as_deref()),
    }
}

fn generate(args: &JwkGenerateArgs) -> Result<(), CliError> {
    let crv = args
        .crv
        .as_deref()
        .map(|c| c.parse::<Curve>().map_err(|e| CliError::jose(&e)))
        .transpose()?;
    if jose::alg::is_jwe_name(&args.alg) {
        return generate_for_encryption(args, crv);
    }
    let alg = parse_alg(&args.alg)?;
    if let Some(enc) = &args.enc {
        return Err(unsuitable(format!(
            "--enc {enc} sizes dir keys only; {alg} is a JWS algorithm"
        )));
    }
    if let Some(crv) = crv {
        // A curve that merely restates the algorithm's is harmless; any other choice of curve
        // only makes sense for ECDH-ES keys.
        let own = alg.curve();
        if own != Some(crv) {
            let fits = own.map_or_else(|| "none".to_owned(), |c| format!("only {}", c.name()));
            return Err(unsuitable(format!(
                "--crv {} does not fit {alg} ({fits})",
                crv.name()
            )));
        }
    }
    let key = Jwk::generate(alg, args.bits, args.kid.clone())?;
    print_json(&Value::Object(key.to_map()))
}

/// A JWE key: jose sizes it by the algorithm (dir by `--enc`, ECDH-ES by `--crv`) and refuses
/// options that do not apply.
fn generate_for_encryption(args: &JwkGenerateArgs, crv: Option<Curve>) -> Result<(), CliError> {
    if let Ok(enc) = args.alg.parse::<ContentEncryption>() {
        return Err(CliError::usage(format!(
            "{enc} is a content encryption, not a key-management algorithm: \
             for a direct key use --alg dir --enc {enc}"
        )));
    }
    // RSA1_5 fails here, with jose's reason.
    let alg = parse_key_management(&args.alg)?;
    let enc = args.enc.as_deref().map(parse_encryption).transpose()?;
    let key = Jwk::generate_for_encryption(alg, enc, crv, args.bits, args.kid.clone())?;
    print_json(&Value::Object(key.to_map()))
}

fn unsuitable(reason: String) -> CliError {
    CliError::new(ErrorCode::KeyUnsuitable.as_str(), reason, EXIT_USAGE)
}

fn public(file: Option<&std::path::Path>) -> Result<(), CliError> {
    let map = match load_key(file)? {
        KeyInput::One(key) => key.to_public()?.to_map(),
        KeyInput::Set(set) => set.to_public()?.to_map(),
    };
    print_json(&Value::Object(map))
}

fn single(key: KeyInput, what: &str) -> Result<Box<Jwk>, CliError> {
    match key {
        KeyInput::One(key) => Ok(key),
        KeyInput::Set(_) => Err(CliError::usage(format!(
            "{what} takes a single JWK, not a JWK Set"
        ))),
    }
}

fn thumbprint(file: Option<&std::path::Path>) -> Result<(), CliError> {
    let key = single(load_key(file)?, "thumbprint")?;
    print_line(&key.thumbprint())
}

fn import(args: &JwkImportArgs) -> Result<(), CliError> {
    let pem = read_text(Some(&args.pem))?;
    let mut key = Jwk::from_pem(&pem).map_err(|e| CliError::jose_in(&args.pem, &e))?;
    if let Some(alg) = &args.alg {
        key.set_alg_name(alg)?;
    }
    key.set_kid(key.thumbprint());
    print_json(&Value::Object(key.to_map()))
}

fn export(file: Option<&std::path::Path>) -> Result<(), CliError> {
    let key = single(load_key(file)?, "export")?;
    print_line(&key.to_pem()?)
}
