//! Reading inputs (a file, or stdin for an absent path or "-"), loading keys, choosing
//! algorithms and parsing durations.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jose::jwe::{ContentEncryption, DecryptOptions, KeyManagement};
use jose::jws::{Algorithms, Keys};
use jose::{Algorithm, ErrorCode, Jwk, JwkSet};

use crate::error::{display_path, CliError, EXIT_USAGE};

/// Upper bound on tokens, keys and JSON read from a file or stdin: far above any real key or
/// token (jose caps tokens at 64 KiB), low enough that a runaway pipe cannot exhaust memory.
const MAX_TEXT_LEN: usize = 1 << 20;

/// Whether `path` means stdin: absent, or "-".
pub fn is_stdin(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

/// Refuses invocations that would read stdin twice (the second read would see nothing).
pub fn at_most_one_stdin(inputs: &[(&str, bool)]) -> Result<(), CliError> {
    let names: Vec<&str> = inputs.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    if names.len() > 1 {
        return Err(CliError::usage(format!(
            "only one input can come from stdin, but {} all would; give the others as files",
            names.join(", ")
        )));
    }
    Ok(())
}

/// Reads the input unchanged, at most `cap` bytes of it.
fn read_capped(path: Option<&Path>, cap: u64) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let read = match path.filter(|p| !is_stdin(Some(p))) {
        None => io::stdin().lock().take(cap).read_to_end(&mut buf),
        Some(p) => File::open(p).and_then(|f| f.take(cap).read_to_end(&mut buf)),
    };
    match read {
        Ok(_) => Ok(buf),
        Err(e) => Err(CliError::io(&format!("reading {}", name(path)), &e)),
    }
}

fn name(path: Option<&Path>) -> String {
    path.map_or_else(|| "stdin".to_owned(), display_path)
}

/// Reads a payload byte for byte (no trimming, no size limit beyond memory).
pub fn read_bytes(path: Option<&Path>) -> Result<Vec<u8>, CliError> {
    read_capped(path, u64::MAX)
}

/// Reads a key, PEM or JSON document with surrounding whitespace trimmed.
pub fn read_text(path: Option<&Path>) -> Result<Vec<u8>, CliError> {
    read_trimmed(path, EXIT_USAGE)
}

fn read_trimmed(path: Option<&Path>, too_large_exit: u8) -> Result<Vec<u8>, CliError> {
    // One byte over the limit is enough to know it is too large.
    let bytes = read_capped(path, MAX_TEXT_LEN as u64 + 1)?;
    if bytes.len() > MAX_TEXT_LEN {
        return Err(CliError::new(
            ErrorCode::TooLarge.as_str(),
            format!("{} is larger than {MAX_TEXT_LEN} bytes", name(path)),
            too_large_exit,
        ));
    }
    Ok(bytes.trim_ascii().to_vec())
}

/// Reads a token, trimmed. Unreadable input is an I/O error (exit 2); input that cannot be a
/// token (too large, not UTF-8) fails with `invalid` and `exit` (a rejection when verifying).
pub fn read_token(path: Option<&Path>, invalid: ErrorCode, exit: u8) -> Result<String, CliError> {
    let bytes = read_trimmed(path, exit)?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::new(invalid.as_str(), "the token is not UTF-8 text", exit))
}

/// A `--key` argument: one key, or a set to select from.
pub enum KeyInput {
    One(Box<Jwk>),
    Set(JwkSet),
}

impl KeyInput {
    /// The keys, as the jose verify functions take them.
    pub fn keys(&self) -> Keys<'_> {
        match self {
            Self::One(k) => Keys::One(k),
            Self::Set(s) => Keys::Set(s),
        }
    }

    /// The one key to sign with: a single key, or the only private key of a set.
    pub fn signing_key(&self) -> Result<&Jwk, CliError> {
        match self {
            Self::One(k) => Ok(k),
            Self::Set(s) => {
                let mut private = s.keys().iter().filter(|k| k.is_private());
                match (private.next(), private.next()) {
                    (Some(k), None) => Ok(k),
                    _ => Err(CliError::usage(
                        "signing needs exactly one private key, and this JWK Set does not hold exactly one: \
                         pass a single JWK or PEM file",
                    )),
                }
            }
        }
    }

    /// The one key to encrypt to: a single key, or the only key of a set that fits `alg` and
    /// `enc`. `what` names the algorithms in messages ("RSA-OAEP-256 with A256GCM").
    pub fn encryption_key(
        &self,
        what: &str,
        alg: KeyManagement,
        enc: ContentEncryption,
    ) -> Result<&Jwk, CliError> {
        let set = match self {
            Self::One(k) => return Ok(k),
            Self::Set(s) => s,
        };
        let mut fitting = set
            .keys()
            .iter()
            .filter(|k| k.check_encryption(alg, enc, false).is_ok());
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Ok(key),
            (Some(_), Some(_)) => Err(CliError::usage(format!(
                "several keys in this JWK Set fit {what}: pass a single JWK or PEM file"
            ))),
            (None, _) => Err(CliError::new(
                ErrorCode::KeyUnsuitable.as_str(),
                format!("no key in this JWK Set fits {what}"),
                EXIT_USAGE,
            )),
        }
    }

    /// Refuses keys that cannot decrypt at all (public keys) before any token is read: a key
    /// problem (exit 2), not a rejected token.
    pub fn require_private(&self, flag: &str) -> Result<(), CliError> {
        let any_private = match self {
            Self::One(k) => k.is_private(),
            Self::Set(s) => s.keys().iter().any(Jwk::is_private),
        };
        if any_private {
            return Ok(());
        }
        Err(CliError::new(
            ErrorCode::KeyUnsuitable.as_str(),
            format!("decryption needs a private key, and {flag} holds only public keys"),
            EXIT_USAGE,
        ))
    }
}

/// Loads a JWK, a JWK Set (`{"keys":[…]}`) or a PEM key (detected by "-----BEGIN").
///
/// PEM keys get their thumbprint as `kid`, as `jwk import` gives them, so tokens signed
/// with a PEM key name the same key as its imported JWK.
pub fn load_key(path: Option<&Path>) -> Result<KeyInput, CliError> {
    let text = read_text(path)?;
    let fail = |e: jose::Error| CliError::jose_in(path.unwrap_or(Path::new("-")), &e);
    if text.starts_with(b"-----BEGIN") {
        let mut key = Jwk::from_pem(&text).map_err(fail)?;
        key.set_kid(key.thumbprint());
        return Ok(KeyInput::One(Box::new(key)));
    }
    let map = jose::json::parse_object(&text, "key").map_err(fail)?;
    if map.contains_key("keys") {
        Ok(KeyInput::Set(JwkSet::from_map(&map).map_err(fail)?))
    } else {
        Ok(KeyInput::One(Box::new(Jwk::from_map(&map).map_err(fail)?)))
    }
}

/// Loads a file with a JWK, a JWK Set or a PEM key, as a set.
pub fn load_key_set(path: &Path) -> Result<JwkSet, CliError> {
    match load_key(Some(path))? {
        KeyInput::Set(set) => Ok(set),
        KeyInput::One(key) => JwkSet::new(vec![*key]).map_err(|e| CliError::jose_in(path, &e)),
    }
}

/// Parses a JWS algorithm name (exact, case-sensitive; `none` is never accepted).
pub fn parse_alg(name: &str) -> Result<Algorithm, CliError> {
    name.parse::<Algorithm>().map_err(|e| CliError::jose(&e))
}

/// Parses a JWE key-management algorithm name (`RSA1_5` is refused with its reason).
pub fn parse_key_management(name: &str) -> Result<KeyManagement, CliError> {
    name.parse::<KeyManagement>()
        .map_err(|e| CliError::jose(&e))
}

/// Parses a JWE content-encryption algorithm name.
pub fn parse_encryption(name: &str) -> Result<ContentEncryption, CliError> {
    name.parse::<ContentEncryption>()
        .map_err(|e| CliError::jose(&e))
}

/// The options decryption runs with: exactly the `algs` when given, else what the key
/// determines (jose refuses a key that determines nothing with `InvalidOptions`); `encs`,
/// when given, restricts the content encryptions.
pub fn decrypt_options(algs: &[String], encs: &[String]) -> Result<DecryptOptions, CliError> {
    let mut options = if algs.is_empty() {
        DecryptOptions::from_key()
    } else {
        DecryptOptions::new(
            algs.iter()
                .map(|a| parse_key_management(a))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    if !encs.is_empty() {
        options = options.encryptions(
            encs.iter()
                .map(|e| parse_encryption(e))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(options)
}

/// The algorithm to sign with: `--alg`, else the one the key determines.
pub fn signing_alg(key: &Jwk, alg: Option<&str>) -> Result<Algorithm, CliError> {
    if let Some(name) = alg {
        return parse_alg(name);
    }
    key.signing_algorithm().ok_or_else(|| match key.alg() {
        Some(own) => CliError::usage(format!(
            "the key's \"alg\" is {own:?}, which is not a JWS algorithm: pass --alg"
        )),
        None => CliError::usage(format!(
            "the {} key has no \"alg\" and its type does not determine one: pass --alg",
            key.key_type().name()
        )),
    })
}

/// The algorithms verification accepts: the `--alg` list, else the one a single key
/// determines, else (a set) whatever each selected key determines.
pub fn verify_algorithms(key: &KeyInput, algs: &[String]) -> Result<Algorithms, CliError> {
    if !algs.is_empty() {
        let list = algs
            .iter()
            .map(|a| parse_alg(a))
            .collect::<Result<_, _>>()?;
        return Ok(Algorithms::Only(list));
    }
    match key {
        KeyInput::One(k) => Ok(Algorithms::Only(vec![signing_alg(k, None)?])),
        KeyInput::Set(_) => Ok(Algorithms::FromKey),
    }
}

/// Parses a DURATION: an integer followed by s, m, h or d; a bare integer is seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid duration {s:?}: expected an integer followed by s, m, h or d (30s, 5m, 1h, 2d)")
    };
    let (digits, unit) = [('s', 1), ('m', 60), ('h', 3_600), ('d', 86_400)]
        .into_iter()
        .find_map(|(suffix, secs)| s.strip_suffix(suffix).map(|d| (d, secs)))
        .unwrap_or((s, 1));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    // Keeps `now + duration` representable as a NumericDate.
    n.checked_mul(unit)
        .filter(|secs| i64::try_from(*secs).is_ok())
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// The current time in seconds since the epoch (0 if the clock is before 1970).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `now + seconds`, for exp and nbf.
pub fn after(now: i64, seconds: u64) -> Result<i64, CliError> {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| now.checked_add(s))
        .ok_or_else(|| CliError::usage("the duration is too large"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("1h").unwrap(), 3_600);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert_eq!(parse_duration("0s").unwrap(), 0);
        for bad in [
            "",
            "s",
            "-1s",
            "+1s",
            "1.5h",
            "1w",
            "h1",
            " 1s",
            "1 s",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_duration(bad).unwrap_err(),
                format!(
                    "invalid duration {bad:?}: expected an integer followed by s, m, h or d (30s, 5m, 1h, 2d)"
                ),
                "{bad:?} must be rejected"
            );
        }
        // Integers that fit a u64 but overflow a NumericDate.
        for big in ["9999999999999999999d", "9223372036854775808"] {
            assert_eq!(
                parse_duration(big).unwrap_err(),
                format!("duration {big:?} is too large"),
                "{big:?} must be rejected"
            );
        }
    }

    #[test]
    fn stdin_is_absent_or_dash() {
        assert!(is_stdin(None));
        assert!(is_stdin(Some(Path::new("-"))));
        assert!(!is_stdin(Some(Path::new("k.json"))));
        assert_eq!(at_most_one_stdin(&[("a", true), ("b", false)]), Ok(()));
        let err = at_most_one_stdin(&[("a", true), ("b", true)]).unwrap_err();
        assert_eq!(
            err,
            CliError::usage(
                "only one input can come from stdin, but a, b all would; give the others as files"
            )
        );
        assert_eq!(err.exit, 2);
    }
}
