use super::*;

fn err(text: &str) -> ConfigError {
    Config::parse(text, "t.toml").unwrap_err()
}

#[test]
fn an_empty_file_means_the_embedded_defaults() {
    let c = Config::parse("", "t.toml").unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.issuer().unwrap().as_str(), "http://127.0.0.1:8080/");
    assert_eq!(c.token_service.signing_alg, Algorithm::ES256);
    assert_eq!(
        c.token_service.encryption_alg,
        KeyManagement::ECDH_ES_A256KW
    );
    assert_eq!(c.token_service.token_lifetime, Duration(600));
    assert!(c.audiences.is_empty());
}

#[test]
fn a_full_file_parses() {
    let c = Config::parse(
        r#"
[server]
listen = "0.0.0.0:9443"
tls = { cert = "cert.pem", key = "key.pem" }
database_url = "postgres://tokengate@db.internal/tokengate"
master_key_file = "/run/secrets/master.key"

[token_service]
issuer = "https://auth.example"
signing_alg = "EdDSA"
encryption_alg = "RSA-OAEP-256"
encryption_enc = "A128CBC-HS256"
token_lifetime = "5m"
rotate_every = "30d"
jwks_max_age = 300

[[audiences]]
id = "https://api.example"
scopes = ["transactions:read", "transactions:write"]
encrypt = true
token_lifetime = "2m"

[[audiences]]
id = "https://partner.example/api"
encrypt = true
encrypt_to = "partner-enc.jwk"
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.token_service.rotate_every, Some(Duration(30 * 86_400)));
    assert_eq!(c.token_service.jwks_max_age, Duration(300));
    assert_eq!(c.audiences.len(), 2);
    assert_eq!(c.audiences[0].token_lifetime, Some(Duration(120)));
    assert_eq!(c.issuer().unwrap().as_str(), "https://auth.example/");
}

#[test]
fn errors_name_file_line_column_and_field() {
    let e = err("[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
    assert!(e.to_string().starts_with("t.toml:3:"), "{e}");
    assert!(e.message.contains("lisen"), "{e}");

    let e = err("[server]\nlisten = \"not an address\"\n");
    assert_eq!(e.position, Some((2, 10)), "{e}");

    let e = err("[token_service]\ntoken_lifetime = \"5 minutes\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(2));
    assert!(e.message.contains("duration"), "{e}");

    let e = err("[token_service]\nsigning_alg = \"HS256\"\n");
    assert!(e.message.contains("ES256, RS256, PS256 or EdDSA"), "{e}");

    let e = err("[token_service]\nencryption_alg = \"RSA1_5\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");

    let e = err("[server\n");
    assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");

    // Sections of later features are unknown until they exist, not silently ignored.
    let e = err("[[routes]]\nname = \"x\"\n");
    assert!(e.message.contains("routes"), "{e}");
}

#[test]
fn cross_field_rules_point_at_the_field() {
    let e = err("[server]\ndata_dir = \"d\"\ndatabase_url = \"postgres://h/db\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");

    let e = err("[server]\ndatabase_url = \"mysql://h/db\"\n");
    assert!(e.message.contains("postgres://"), "{e}");

    let e = err("[token_service]\nissuer = \"http://auth.example\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(2));
    assert!(e.message.contains("https"), "{e}");
    Config::parse("[token_service]\nissuer = \"http://localhost:8080\"\n", "t").unwrap();

    let e = err("[[audiences]]\nid = \"https://a\"\n[[audiences]]\nid = \"https://a\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");

    let e = err("[[audiences]]\nid = \"not a uri\"\n");
    assert!(e.message.contains("absolute URI"), "{e}");

    let e = err("[[audiences]]\nid = \"https://a\"\nscopes = [\"read\", \"has space\"]\n");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");

    let e = err("[[audiences]]\nid = \"https://a\"\nencrypt_to = \"k.jwk\"\n");
    assert!(e.message.contains("encrypt = true"), "{e}");
}

#[test]
fn line_and_column_count_characters() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 3), (2, 1));
    assert_eq!(line_col("é\nxy", 4), (2, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn effective_settings_fill_defaults_and_hide_the_password() {
    let c = Config::parse(
        "[server]\ndatabase_url = \"postgres://u:hunter2@db/tg\"\n[[audiences]]\nid = \"https://a\"\n",
        "t",
    )
    .unwrap();
    let e = c.effective();
    assert!(!e.to_string().contains("hunter2"));
    assert_eq!(e["storage"]["database_url"], "postgres://u:REDACTED@db/tg");
    assert_eq!(e["audiences"][0]["token_lifetime_seconds"], 600);
    let d = Config::parse("", "t").unwrap().effective();
    assert_eq!(
        d["storage"],
        serde_json::json!({"backend": "sqlite", "data_dir": "./tokengate-data"})
    );
    assert_eq!(d["issuer"], "http://127.0.0.1:8080/");
}

#[test]
fn issuers_admin_token_and_dpop() {
    let c = Config::parse(
        r#"
[server]
admin_token = "0123456789abcdef0123456789abcdef"
[token_service]
issuer = "https://auth.example"
dpop_window = "2m"
dpop_nonce = true
[[issuers]]
name = "partner"
issuer = "https://partner.example"
jwks_file = "partner.json"
algorithms = ["ES256", "RS256"]
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.issuer_id().unwrap(), "https://auth.example");
    assert_eq!(c.token_service.dpop_window, Duration(120));
    assert!(c.token_service.dpop_nonce);
    assert_eq!(c.issuers.len(), 1);
    let shown = c.effective().to_string();
    assert!(
        !shown.contains("0123456789abcdef"),
        "the admin token is never shown"
    );

    let e = err("[server]\nadmin_token = \"short\"\n");
    assert_eq!(e.position, Some((2, 15)));
    assert!(e.message.contains("admin_token"));
    let partner =
        "[[issuers]]\nname = \"p\"\nissuer = \"https://p.example\"\njwks_file = \"p.json\"\n";
    let e = err(&format!("{partner}algorithms = [\"none\"]\n"));
    assert_eq!(e.position, Some((5, 15)));
    let e = err(&format!("{partner}algorithms = []\n"));
    assert!(e.message.contains("at least one"), "{e}");
    let e = err(&format!(
        "{partner}algorithms = [\"ES256\"]\n{}algorithms = [\"ES256\"]\n",
        partner
    ));
    assert!(e.message.contains("twice"), "{e}");
    let e = err("[[issuers]]\nname = \"p\"\nissuer = \"x\"\njwks_url = \"https://x\"\nalgorithms = [\"ES256\"]\n");
    assert!(e.message.contains("jwks_url"), "{e}");
}
