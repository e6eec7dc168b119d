//! Command-line definitions (clap derive). Only flag parsing lives here; the commands build
//! keys, options and tokens from these values.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::error::EXIT_USAGE;
use crate::input::parse_duration;

/// Issue, validate and inspect JOSE objects: JWK, JWS, JWE and JWT.
///
/// Inputs come from the file argument, or stdin when it is absent or "-". Results go to
/// stdout; errors go to stderr as `error[CODE]: reason`. Exit status: 0 success, 1 the
/// token or signature was rejected, 2 usage, key or I/O error.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// JSON Web Keys: generate, derive the public key, thumbprint, PEM import and export.
    #[command(subcommand)]
    Jwk(JwkCommand),
    /// JSON Web Signatures: sign and verify arbitrary payloads.
    #[command(subcommand)]
    Jws(JwsCommand),
    /// JSON Web Encryption: encrypt and decrypt arbitrary payloads.
    #[command(subcommand)]
    Jwe(JweCommand),
    /// JSON Web Tokens: sign, verify and inspect.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// Configuration files: check one before anything uses it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the token service (OAuth endpoints, JWKS, metadata, admin API).
    Serve(ServeArgs),
    /// Run everything locally with a demo client, printing the commands to try it.
    Dev(DevArgs),
    /// Registered OAuth clients: create, list, show, disable, enable, delete, rotate-secret.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing and encryption keys: list, rotate, print the public JWKS.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The tamper-evident audit log: export, verify, prove an event's inclusion, its keys.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the log as JSON lines: events and the checkpoints that sign them.
    Export(AuditExportArgs),
    /// Check the log (an export, or the database): every event against the tree, every
    /// checkpoint's signature and consistency. Exit 1 naming the first bad sequence number.
    Verify(AuditVerifyArgs),
    /// Print the inclusion proof of one event against the newest checkpoint.
    Prove(AuditProveArgs),
    /// Print the public keys that verify the log's checkpoints.
    Keys(StorageArgs),
    /// Remove the events signed by the newest checkpoint older than DATE, keeping what
    /// verification needs (the frontier of their tree and every checkpoint, with proofs).
    /// Refused when the log does not verify.
    Prune(AuditPruneArgs),
}

#[derive(Debug, Args)]
pub struct AuditPruneArgs {
    /// A date (2026-11-01, midnight UTC), an RFC 3339 time, or unix seconds.
    #[arg(long, value_name = "DATE")]
    pub before: String,
    /// The keys the log must verify with before anything is removed (as `audit verify
    /// --keys`); default: the keys the database holds.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// The first sequence number to export (default 0: the whole log, which is what
    /// `audit verify FILE` needs).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub since: u64,
    /// The last sequence number to export.
    #[arg(long, value_name = "SEQ")]
    pub until: Option<u64>,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// An export to verify (offline; needs --keys). Without it, the database is verified.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The public keys to trust: the JSON of /.well-known/tokengate-audit-keys or of
    /// `tokengate audit keys`, or verifier keys one per line. Default, for a database: the
    /// keys it holds (which whoever can write it could replace).
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// A checkpoint kept apart from the log (the JSON of GET /admin/audit/checkpoint, or its
    /// note) that the log must hold: shows a log cut after an older checkpoint, or rewritten
    /// and signed again. Repeatable.
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct AuditProveArgs {
    /// The event's sequence number.
    pub seq: u64,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where the data lives: the configuration file's `[server]`, overridden by the flags.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database (default ./tokengate-data).
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite (postgres://…).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on (default: the configuration's, else 127.0.0.1:8080). Port 0
    /// picks a free port; the address is printed on stdout.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} (the secret only once).
    Create(ClientCreateArgs),
    /// List clients.
    List(StorageArgs),
    /// Show one client.
    Show(ClientIdArgs),
    /// Disable a client: it can no longer get, introspect or revoke tokens, and the tokens
    /// it holds are revoked.
    Disable(ClientIdArgs),
    /// Enable a disabled client.
    Enable(ClientIdArgs),
    /// Delete a client and revoke the tokens it holds.
    Delete(ClientIdArgs),
    /// Replace a client's secret; prints the new one (once).
    RotateSecret(ClientIdArgs),
}

#[derive(Debug, Args)]
pub struct ClientCreateArgs {
    /// A human-readable name.
    #[arg(long)]
    pub name: String,
    /// Space-separated scopes the client may ask for.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// An audience (resource) the client may ask for; repeat for several.
    #[arg(long = "audience", value_name = "AUD")]
    pub audiences: Vec<String>,
    /// client_secret_basic, client_secret_post or private_key_jwt: the only method the
    /// client may use. Without it the client gets a secret it may present either way
    /// (HTTP Basic or in the form), as client libraries differ in their default.
    #[arg(long, conflicts_with = "public")]
    pub auth_method: Option<String>,
    /// A public client (token_endpoint_auth_method "none"): no secret, for apps that
    /// cannot keep one; it signs users in with PKCE and needs a --redirect-uri.
    #[arg(long)]
    pub public: bool,
    /// A redirect URI the client may use to sign users in, matched exactly (https, http on
    /// loopback, or a private-use scheme such as com.example.app:/cb); repeat for several.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// The client's public JWK Set, for private_key_jwt.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct ClientIdArgs {
    /// The client id.
    pub client_id: String,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List every key with its state and times (no private material).
    List(StorageArgs),
    /// Start a rotation: a new pending key, published now, active after the JWKS max-age.
    Rotate(KeyRotateArgs),
    /// Print the public JWKS as the service publishes it.
    Jwks(StorageArgs),
}

#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// sig (signing, default), enc (encryption) or audit (the audit log's checkpoints).
    #[arg(long = "use", default_value = "sig", value_parser = ["sig", "enc", "audit"])]
    pub key_use: String,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file; errors name the file, line, column and field.
    Check(ConfigCheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigCheckArgs {
    /// The TOML configuration file.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum JwkCommand {
    /// Generate a private JWK (with "alg", and "kid" defaulting to its RFC 7638 thumbprint;
    /// keys for JWE algorithms also get "use": "enc").
    Generate(JwkGenerateArgs),
    /// Print the public JWK of a private one (a JWK Set gives the public set).
    Public(KeyFileArg),
    /// Print the RFC 7638 thumbprint (base64url SHA-256).
    Thumbprint(KeyFileArg),
    /// Convert a PEM key (SPKI, PKCS#1, PKCS#8 or SEC1) to a JWK.
    Import(JwkImportArgs),
    /// Convert a JWK to PEM (SPKI for public keys, PKCS#8 for private ones).
    Export(KeyFileArg),
}

#[derive(Debug, Args)]
pub struct JwkGenerateArgs {
    /// Algorithm the key is for. JWS: HS256/384/512, RS256/384/512, PS256/384/512,
    /// ES256/384/512, EdDSA. JWE key management: dir, A128KW/A192KW/A256KW,
    /// A128GCMKW/A192GCMKW/A256GCMKW, RSA-OAEP(-256/-384/-512), ECDH-ES(+A128KW/+A192KW/+A256KW),
    /// PBES2-HS256+A128KW/-HS384+A192KW/-HS512+A256KW.
    #[arg(long, value_name = "ALG")]
    pub alg: String,
    /// Content encryption a dir key is for (it sizes the key): A128GCM, A192GCM, A256GCM,
    /// A128CBC-HS256, A192CBC-HS384, A256CBC-HS512. Only with --alg dir.
    #[arg(long, value_name = "ENC")]
    pub enc: Option<String>,
    /// Curve: for ECDH-ES* keys P-256 (default), P-384, P-521 or X25519; for JWS keys only the
    /// curve the algorithm implies (ES256 with P-256, ...).
    #[arg(long, value_name = "CRV")]
    pub crv: Option<String>,
    /// Key size in bits: RSA 2048 (default), 3072, 4096 or 8192; HMAC at least the hash size.
    #[arg(long, value_name = "N")]
    pub bits: Option<usize>,
    /// Key ID (default: the RFC 7638 thumbprint).
    #[arg(long, value_name = "KID")]
    pub kid: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyFileArg {
    /// JWK, JWK Set or PEM file (default: stdin).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JwkImportArgs {
    /// Set the key's "alg" (checked against the key type).
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,
    /// PEM file ("-" for stdin).
    #[arg(value_name = "PEM")]
    pub pem: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum JwsCommand {
    /// Sign a payload (the file's bytes exactly as they are) and print the JWS.
    Sign(JwsSignArgs),
    /// Verify a JWS and print its payload bytes (nothing added).
    Verify(JwsVerifyArgs),
}

#[derive(Debug, Args)]
pub struct JwsSignArgs {
    /// Private JWK or PEM file (a JWK Set only if it holds exactly one private key).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Algorithm (default: the key's "alg", or the one its curve implies).
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,
    /// Extra protected header members, as a JSON object.
    #[arg(long, value_name = "JSON")]
    pub header: Option<String>,
    /// Produce the flattened JSON serialization instead of the compact one.
    #[arg(long)]
    pub json: bool,
    /// Leave the payload out of the output (detached content, RFC 7515 Appendix F).
    #[arg(long)]
    pub detached: bool,
    /// Payload file (default: stdin), signed byte for byte.
    #[arg(value_name = "PAYLOAD_FILE")]
    pub payload: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JwsVerifyArgs {
    /// JWK (public or private), JWK Set (selected by kid, else by algorithm) or PEM file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Accepted algorithm; repeat for several (default: the one the key determines).
    #[arg(long = "alg", value_name = "ALG")]
    pub algs: Vec<String>,
    /// The input is a JSON serialization (also detected by a leading '{').
    #[arg(long)]
    pub json: bool,
    /// Detached payload file to verify the JWS against.
    #[arg(long, value_name = "FILE")]
    pub payload: Option<PathBuf>,
    /// JWS file (default: stdin).
    #[arg(value_name = "TOKEN_FILE")]
    pub token: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum JweCommand {
    /// Encrypt a plaintext (the file's bytes exactly as they are) and print the JWE.
    Encrypt(JweEncryptArgs),
    /// Decrypt a JWE and print its plaintext bytes (nothing added).
    Decrypt(JweDecryptArgs),
}

#[derive(Debug, Args)]
pub struct JweEncryptArgs {
    /// Recipient's JWK (public or private), PEM file, or a JWK Set holding exactly one key
    /// that fits --alg and --enc. For PBES2 an oct JWK whose "k" is the password's bytes.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Key-management algorithm (dir, A256KW, A256GCMKW, RSA-OAEP-256, ECDH-ES+A256KW,
    /// PBES2-HS512+A256KW, ...).
    #[arg(long, value_name = "ALG")]
    pub alg: String,
    /// Content encryption: A128GCM, A192GCM, A256GCM, A128CBC-HS256, A192CBC-HS384 or
    /// A256CBC-HS512.
    #[arg(long, value_name = "ENC")]
    pub enc: String,
    /// Compress the plaintext before encrypting; DEF (DEFLATE) is the only method.
    #[arg(long, value_name = "ZIP", value_parser = ["DEF"])]
    pub zip: Option<String>,
    /// The "cty" (content type) header.
    #[arg(long, value_name = "CTY")]
    pub cty: Option<String>,
    /// PBES2 iteration count (default 10000, at least 1000, at most 100000). The default is
    /// what panva/jose (10000) and jwcrypto (16384) accept with their default limits; a
    /// larger count resists password guessing better where the reader accepts it.
    #[arg(long, value_name = "N")]
    pub p2c: Option<u32>,
    /// Produce the flattened JSON serialization instead of the compact one.
    #[arg(long)]
    pub json: bool,
    /// Plaintext file (default: stdin), encrypted byte for byte.
    #[arg(value_name = "PLAINTEXT_FILE")]
    pub plaintext: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JweDecryptArgs {
    /// Private JWK, JWK Set (selected by kid, else by algorithm) or PEM file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Accepted key-management algorithm; repeat for several (default: the key's "alg", else
    /// the family its type allows: RSA-OAEP* for RSA, ECDH-ES* for EC and X25519).
    #[arg(long = "alg", value_name = "ALG")]
    pub algs: Vec<String>,
    /// Accepted content encryption; repeat for several (default: all).
    #[arg(long = "enc", value_name = "ENC")]
    pub encs: Vec<String>,
    /// The input is a JSON serialization (also detected by a leading '{').
    #[arg(long)]
    pub json: bool,
    /// JWE file (default: stdin).
    #[arg(value_name = "TOKEN_FILE")]
    pub token: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Sign a claims set and print the JWT.
    ///
    /// Claims are built in this order, later steps overriding earlier ones: the --claims file;
    /// iat (now) and exp; nbf; --iss, --sub, --aud, --jti; then each --claim.
    ///
    /// With --encrypt-key, --encrypt-alg and --enc the signed JWT is then encrypted to that
    /// key (a nested JWT, "cty": "JWT").
    Sign(JwtSignArgs),
    /// Verify a JWT and print its claims as JSON.
    ///
    /// With --decrypt-key the token must be a nested JWT: it is decrypted first, then the
    /// inner JWT is verified and validated.
    Verify(JwtVerifyArgs),
    /// Print a JWT's header and claims WITHOUT verifying anything.
    ///
    /// The output is labelled "unverified": true. For a JWE only the protected header is
    /// shown ("claims": null).
    Inspect(JwtInspectArgs),
}

#[derive(Debug, Args)]
pub struct JwtSignArgs {
    /// Private JWK or PEM file (a JWK Set only if it holds exactly one private key).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Algorithm (default: the key's "alg", or the one its curve implies).
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,
    /// The "typ" header.
    #[arg(long, value_name = "TYP", default_value = "JWT")]
    pub typ: String,
    /// The "iss" claim.
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,
    /// The "sub" claim.
    #[arg(long, value_name = "SUB")]
    pub sub: Option<String>,
    /// The "aud" claim; once gives a string, several give an array.
    #[arg(long, value_name = "AUD")]
    pub aud: Vec<String>,
    /// Lifetime: exp = now + DURATION (30s, 5m, 1h, 2d; a bare integer is seconds).
    /// Default: 1h, unless --claims or --claim supply "exp".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub exp: Option<u64>,
    /// Not before: nbf = now + DURATION (no nbf claim unless given).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub nbf: Option<u64>,
    /// The "jti" claim.
    #[arg(long, value_name = "JTI")]
    pub jti: Option<String>,
    /// Any claim, NAME=JSON; a value that is not JSON is taken as a string. Repeatable.
    #[arg(long, value_name = "NAME=JSON", value_parser = parse_claim)]
    pub claim: Vec<(String, Value)>,
    /// A JSON object of claims to start from.
    #[arg(long, value_name = "FILE")]
    pub claims: Option<PathBuf>,
    /// Encrypt the signed JWT to this JWK (public or private), PEM or JWK Set (with exactly
    /// one key that fits); needs --encrypt-alg and --enc.
    #[arg(long, value_name = "FILE", requires_all = ["encrypt_alg", "enc"])]
    pub encrypt_key: Option<PathBuf>,
    /// Key-management algorithm for --encrypt-key.
    #[arg(long, value_name = "ALG", requires = "encrypt_key")]
    pub encrypt_alg: Option<String>,
    /// Content encryption for --encrypt-key.
    #[arg(long, value_name = "ENC", requires = "encrypt_key")]
    pub enc: Option<String>,
}

#[derive(Debug, Args)]
pub struct JwtVerifyArgs {
    /// JWK (public or private), JWK Set (selected by kid, else by algorithm) or PEM file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Accepted algorithm; repeat for several (default: the one the key determines).
    #[arg(long = "alg", value_name = "ALG")]
    pub algs: Vec<String>,
    /// Required issuer ("iss").
    #[arg(long, value_name = "ISS")]
    pub iss: String,
    /// Required audience (must be in "aud").
    #[arg(long, value_name = "AUD")]
    pub aud: String,
    /// Required "typ" header (compared as a media type).
    #[arg(long, value_name = "TYP")]
    pub typ: Option<String>,
    /// Clock skew tolerated on exp, nbf and iat (30s, 5m, ...; default 0).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub leeway: Option<u64>,
    /// Require a nested (encrypted) JWT and decrypt it with this private JWK, JWK Set or PEM.
    #[arg(long, value_name = "FILE")]
    pub decrypt_key: Option<PathBuf>,
    /// Accepted key-management algorithm for decryption; repeat for several (default: the
    /// decrypt key's "alg", else the family its type allows).
    #[arg(long = "decrypt-alg", value_name = "ALG", requires = "decrypt_key")]
    pub decrypt_algs: Vec<String>,
    /// Accepted content encryption; repeat for several (default: all).
    #[arg(long = "enc", value_name = "ENC", requires = "decrypt_key")]
    pub encs: Vec<String>,
    /// JWT file (default: stdin).
    #[arg(value_name = "TOKEN_FILE")]
    pub token: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JwtInspectArgs {
    /// JWT file (default: stdin).
    #[arg(value_name = "TOKEN_FILE")]
    pub token: Option<PathBuf>,
}

/// Parses `NAME=JSON`; a value that is not valid JSON is kept as a string so `--claim
/// scope=read` works without shell-quoting JSON.
fn parse_claim(s: &str) -> Result<(String, Value), String> {
    let (name, raw) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=JSON, got {s:?}"))?;
    if name.is_empty() {
        return Err("the claim name is empty".to_owned());
    }
    let value = jose::json::parse(raw.as_bytes()).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((name.to_owned(), value))
}

/// Reports a clap failure. Help and version go to stdout with status 0; usage errors keep
/// clap's message (with its usage hint) but take our `error[CODE]:` form and status 2.
pub fn report_clap_error(err: &clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        // Nothing sensible to do if stdout is gone.
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let text = err.render().to_string();
    let mut stderr = std::io::stderr().lock();
    let _ = match text.strip_prefix("error: ") {
        Some(body) => write!(stderr, "error[ERR_USAGE]: {body}"),
        None => write!(
            stderr,
            "error[ERR_USAGE]: a subcommand is required\n\n{text}"
        ),
    };
    ExitCode::from(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(parse_claim("n=5").unwrap(), ("n".into(), Value::from(5)));
        assert_eq!(
            parse_claim("s=read write").unwrap(),
            ("s".into(), Value::from("read write"))
        );
        assert_eq!(parse_claim("e=").unwrap(), ("e".into(), Value::from("")));
        assert_eq!(
            parse_claim("o={\"a\":[1]}").unwrap().1,
            serde_json::json!({"a":[1]})
        );
        assert_eq!(parse_claim("=1").unwrap_err(), "the claim name is empty");
        assert_eq!(
            parse_claim("novalue").unwrap_err(),
            r#"expected NAME=JSON, got "novalue""#
        );
    }
}
