//! `tokengate jwt …`: sign, verify and inspect JWTs.

use serde_json::{Map, Value};

use jose::jws::Algorithms;
use jose::jwt::{self, Validation};
use jose::ErrorCode;

use super::{print_json, print_line};
use crate::cli::{JwtCommand, JwtInspectArgs, JwtSignArgs, JwtVerifyArgs};
use crate::error::{CliError, EXIT_REJECTED, EXIT_USAGE};
use crate::input::{
    after, at_most_one_stdin, is_stdin, load_key, now, read_text, read_token, signing_alg,
    verify_algorithms,
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
    ])?;
    let keys = load_key(Some(&args.key))?;
    let key = keys.signing_key()?;
    let alg = signing_alg(key, args.alg.as_deref())?;

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
    print_line(&jwt::sign(&claims, key, alg, Some(&args.typ))?)
}

fn verify(args: &JwtVerifyArgs) -> Result<(), CliError> {
    at_most_one_stdin(&[
        ("--key", is_stdin(Some(&args.key))),
        ("the JWT", is_stdin(args.token.as_deref())),
    ])?;
    let keys = load_key(Some(&args.key))?;
    let mut validation = Validation::new()
        .issuer(args.iss.clone())
        .audience(args.aud.clone())
        .leeway(args.leeway.unwrap_or(0));
    validation = match verify_algorithms(&keys, &args.algs)? {
        Algorithms::Only(list) => validation.algorithms(list),
        Algorithms::FromKey => validation.algorithms_from_key(),
    };
    if let Some(typ) = &args.typ {
        validation = validation.typ(typ.clone());
    }
    let token = read_token(args.token.as_deref(), ErrorCode::JwtInvalid, EXIT_REJECTED)?;
    let verified =
        jwt::verify(&token, keys.keys(), &validation).map_err(|e| CliError::verify(&e))?;
    print_json(&Value::Object(verified.claims.as_map().clone()))
}

fn inspect(args: &JwtInspectArgs) -> Result<(), CliError> {
    let token = read_token(args.token.as_deref(), ErrorCode::JwtInvalid, EXIT_USAGE)?;
    let mut out = Map::new();
    out.insert("unverified".into(), true.into());
    if token.split('.').count() == 5 {
        // A JWE: only its protected header is readable without the key.
        let first = token.split('.').next().unwrap_or_default();
        let header = jose::b64::decode(first)
            .and_then(|bytes| jose::json::parse_object(&bytes, "JWE header"))
            .map_err(|e| CliError::jose(&e))?;
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
