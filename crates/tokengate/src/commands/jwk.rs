//! `tokengate jwk …`: generation, public half, thumbprint, PEM import and export.

use serde_json::Value;

use jose::{ErrorCode, Jwk};

use super::{print_json, print_line};
use crate::cli::{JwkCommand, JwkGenerateArgs, JwkImportArgs};
use crate::error::{CliError, EXIT_USAGE};
use crate::input::{load_key, parse_alg, read_text, KeyInput};

pub fn run(cmd: JwkCommand) -> Result<(), CliError> {
    match cmd {
        JwkCommand::Generate(args) => generate(&args),
        JwkCommand::Public(args) => public(args.file.as_deref()),
        JwkCommand::Thumbprint(args) => thumbprint(args.file.as_deref()),
        JwkCommand::Import(args) => import(&args),
        JwkCommand::Export(args) => export(args.file.as_deref()),
    }
}

fn jwe_not_implemented(what: &str) -> CliError {
    CliError::new(
        ErrorCode::NotSupported.as_str(),
        format!("{what}: JWE key generation is not implemented yet"),
        EXIT_USAGE,
    )
}

fn generate(args: &JwkGenerateArgs) -> Result<(), CliError> {
    if let Some(enc) = &args.enc {
        return Err(jwe_not_implemented(&format!("--enc {enc}")));
    }
    if jose::alg::is_jwe_name(&args.alg) {
        return Err(jwe_not_implemented(&format!(
            "--alg {} is a JWE algorithm",
            args.alg
        )));
    }
    let alg = parse_alg(&args.alg)?;
    if let Some(crv) = &args.crv {
        // A curve that merely restates the algorithm's is harmless; any other choice of curve
        // only makes sense for ECDH-ES keys.
        let own = alg.curve().map(|c| c.name());
        if own != Some(crv.as_str()) {
            let fits = own.map_or_else(|| "none".to_owned(), |c| format!("only {c}"));
            return Err(jwe_not_implemented(&format!(
                "--crv {crv} does not fit {alg} ({fits})"
            )));
        }
    }
    let key = Jwk::generate(alg, args.bits, args.kid.clone())?;
    print_json(&Value::Object(key.to_map()))
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
        key.set_alg(parse_alg(alg)?)?;
    }
    key.set_kid(key.thumbprint());
    print_json(&Value::Object(key.to_map()))
}

fn export(file: Option<&std::path::Path>) -> Result<(), CliError> {
    let key = single(load_key(file)?, "export")?;
    print_line(&key.to_pem()?)
}
