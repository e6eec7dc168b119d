//! `tokengate jwt …`: sign, verify and inspect JWTs.

use serde_json::{Map, Value};

use jose::jwe::{self, EncryptParams};
use jose::jws::Algorithms;
use jose::jwt::{self, Validation};
use jose::ErrorCode;

use super::{print_json, print_line};
use crate::cli::{JwtCommand, JwtInspectArgs, JwtSignArgs, JwtVerifyArgs};
use crate::error::{CliError, EXIT_REJECTED, EXIT_USAGE};
use crate::input::{
    after, at_most_one_stdin, decrypt_options, is_stdin, load_key, now, parse_encryption,
    parse_key_management, read_text, read_token, signing_alg, verify_algorithms,
};

/// Lifetime when neither --exp nor the given claims set `exp`: long enough to use the token,
/// short enough that a forgotten one does not live forever.
const DEFAULT_EXP_SECS: u64 = 3_600;

pub fn run(cmd: JwtCommand) -> Result<(), CliError> {
    match cmd {
        JwtCommand::Sign(args) => sign(&args),
        JwtCommand::Verify(args) => verify(&args),
        JwtCommand::Inspect(args) => inspect(&args),
    }
}

fn sign(args: &JwtSignArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        (
            "--claims",
            args.claims.as_deref().is_some_and(|p| is_stdin(Some(p))),
        ),
        (
            "--encrypt-key",
            args.encrypt_key
                .as_deref()
                .is_some_and(|p| is_stdin(Some(p))),
        ),
    ])?;
    let keys = load_key(Some(&args.key))?;
    let key = keys.signing_key()?;
    let alg = signing_alg(key, args.alg.as_deref())?;
    // clap makes --encrypt-key, --encrypt-alg and --enc come together.
    let encryption = match (&args.encrypt_key, &args.encrypt_alg, &args.enc) {
        (Some(path), Some(km), Some(enc)) => Some((
            load_key(Some(path))?,
            parse_key_management(km)?,
            parse_encryption(enc)?,
        )),
        _ => None,
    };

    let mut claims = match &args.claims {
        Some(path) => {
            let text = read_text(Some(path))?;
            jose::json::parse_object(&text, "the claims file")
                .map_err(|e| CliError::jose_in(path, &e))?
        }
        None => Map::new(),
    };
    let now = now();
    claims.insert("iat".into(), now.into());
    match args.exp {
        Some(secs) => {
            claims.insert("exp".into(), after(now, secs)?.into());
        }
        // A later --claim exp=… overrides this default anyway.
        None if !claims.contains_key("exp") => {
            claims.insert("exp".into(), after(now, DEFAULT_EXP_SECS)?.into());
        }
        None => {}
    }
    if let Some(secs) = args.nbf {
        claims.insert("nbf".into(), after(now, secs)?.into());
    }
    for (name, value) in [("iss", &args.iss), ("sub", &args.sub), ("jti", &args.jti)] {
        if let Some(v) = value {
            claims.insert(name.into(), v.clone().into());
        }
    }
    match args.aud.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert("aud".into(), many.to_vec().into());
        }
    }
    for (name, value) in &args.claim {
        claims.insert(name.clone(), value.clone());
    }
    let signed = jwt::sign(&claims, key, alg, Some(&args.typ))?;
    let Some((encrypt_keys, km, enc)) = encryption else {
        return print_line(&signed);
    };
    // A nested JWT (RFC 7519 §11.2), as jwt::sign_encrypted makes it; signed once, so that a
    // JWK Set can be searched for the one key to encrypt to.
    let mut params = EncryptParams::default();
    params.protected.insert("cty".into(), "JWT".into());
    let key = encrypt_keys.encryption_key(&format!("{km} with {enc}"), km, enc)?;
    let token = jwe::compact::encrypt(signed.as_bytes(), key, km, enc, &params)
        .map_err(|e| CliError::jose(&e))?;
    print_line(&token)
}

fn verify(args: &JwtVerifyArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        (
            "--decrypt-key",
            args.decrypt_key
                .as_deref()
                .is_some_and(|p| is_stdin(Some(p))),
        ),
        ("the JWT", is_stdin(args.token.as_deref())),
    ])?;
    let keys = load_key(Some(&args.key))?;
    let decryption = match &args.decrypt_key {
        Some(path) => {
            let decrypt_keys = load_key(Some(path))?;
            decrypt_keys.require_private("--decrypt-key")?;
            Some((
                decrypt_keys,
                decrypt_options(&args.decrypt_algs, &args.encs)?,
            ))
        }
        None => None,
    };
    let mut validation = Validation::new()
        .issuer(args.iss.clone())
        .audience(args.aud.clone())
        .leeway(args.leeway.unwrap_or(0));
    let algorithms = verify_algorithms(&keys, &args.algs)?;
    // Which flag completes options jose finds incomplete (InvalidOptions): the decryption's
    // when it comes from the key, the verification's when it comes from a set's keys.
    let hint = match (
        decryption.is_some() && args.decrypt_algs.is_empty(),
        algorithms == Algorithms::FromKey,
    ) {
        (true, true) => Some("pass --decrypt-alg or --alg"),
        (true, false) => Some("pass --decrypt-alg"),
        // Without decryption the message is what `jwt verify` always printed.
        (false, _) => None,
    };
    validation = match algorithms {
        Algorithms::Only(list) => validation.algorithms(list),
        Algorithms::FromKey => validation.algorithms_from_key(),
    };
    if let Some(typ) = &args.typ {
        validation = validation.typ(typ.clone());
    }
    let token = read_token(args.token.as_deref(), ErrorCode::JwtInvalid, EXIT_REJECTED)?;
    let verified = match &decryption {
        Some((decrypt_keys, options)) => jwt::decrypt_and_verify(
            &token,
            decrypt_keys.keys(),
            options,
            keys.keys(),
            &validation,
        ),
        None => jwt::verify(&token, keys.keys(), &validation),
    }
    .map_err(|e| {
        let mut err = CliError::verify(&e);
        if let (ErrorCode::InvalidOptions, Some(hint)) = (e.code(), hint) {
            err.reason.push_str(": ");
            err.reason.push_str(hint);
        }
        err
    })?;
    // Claims that cannot be read refuse the token, with the exit code of any refusal.
    let claims = verified.claims.as_map().map_err(|e| CliError::verify(&e))?;
    print_json(&Value::Object(claims.clone()))
}

fn inspect(args: &JwtInspectArgs) -> Result<(), CliError> {
    let token = read_token(args.token.as_deref(), ErrorCode::JwtInvalid, EXIT_USAGE)?;
    let mut out = Map::new();
    out.insert("unverified".into(), true.into());
    if token.split('.').count() == 5 {
        // A JWE: only its protected header is readable without the key.
        let header =
            jwe::compact::decode_header_unverified(&token).map_err(|e| CliError::jose(&e))?;
        out.insert("header".into(), Value::Object(header));
        out.insert("claims".into(), Value::Null);
        out.insert(
            "note".into(),
            "this is a JWE: the claims are encrypted, only the protected header is shown".into(),
        );
    } else {
        let (header, claims) = jwt::decode_unverified(&token).map_err(|e| CliError::jose(&e))?;
        out.insert("header".into(), Value::Object(header));
        out.insert("claims".into(), Value::Object(claims));
    }
    print_json(&Value::Object(out))
}
