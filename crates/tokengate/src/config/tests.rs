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

    let e = err("[[routes]]\nname = \"x\"\n");
    assert!(e.message.contains("missing field"), "{e}");
}

#[test]
fn cross_field_rules_point_at_the_field() {
    let e = err("[server]\ndata_dir = \"d\"\ndatabase_url = \"postgres://h/db\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");

    let e = err("[server]\ndatabase_url = \"mysql://h/db\"\n");
    assert!(e.message.contains("postgres://"), "{e}");

    let e = err("[server]\ndatabase_url = \"postgres://h/db\"\nsqlite_synchronous = \"normal\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
    assert!(e.message.contains("synchronous_commit"), "{e}");
    let e = err("[server]\nsqlite_synchronous = \"off\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    assert!(
        e.message.contains("full") && e.message.contains("normal"),
        "{e}"
    );

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
        serde_json::json!({"backend": "sqlite", "data_dir": "./tokengate-data", "sqlite_synchronous": "full"})
    );
    let n = Config::parse("[server]\nsqlite_synchronous = \"normal\"\n", "t").unwrap();
    assert_eq!(n.effective()["storage"]["sqlite_synchronous"], "normal");
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
    let e = err("[[issuers]]\nname = \"p\"\nissuer = \"x\"\njwks_url = \"https://x\"\ndiscovery = true\nalgorithms = [\"ES256\"]\n");
    assert!(
        e.message
            .contains("exactly one of jwks_file, jwks_url or discovery"),
        "{e}"
    );
}

const ROUTE: &str =
    "[[routes]]\nname = \"a\"\npath_prefix = \"/api/\"\nupstreams = [\"http://127.0.0.1:9000\"]\n";

#[test]
fn routes_parse_and_their_rules_are_checked() {
    let c = Config::parse(
        &format!(
            "{ROUTE}[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\nforward_claims = {{ sub = \"x-user\" }}\n\n\
             [[routes]]\nname = \"public\"\npath = \"/health\"\nupstreams = [\"http://127.0.0.1:9000\"]\nauth = \"none\"\n\n\
             [[routes]]\nname = \"mcp\"\npath_prefix = \"/mcp\"\nupstreams = [\"http://127.0.0.1:9001\"]\n[routes.mcp]\nresource = \"https://host.example/mcp\"\n[routes.auth]\nissuers = [\"self\"]\n"
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.routes.len(), 3);
    assert!(matches!(c.routes[1].auth.get_ref(), routes::Auth::None));

    let auth = "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n";
    // Each mistake, and the line it is reported on.
    let cases: Vec<(String, &str, usize)> = vec![
        (ROUTE.to_owned(), "missing field `auth`", 1),
        (format!("{ROUTE}auth = \"open\"\n"), "use \"none\"", 5),
        (format!("{ROUTE}{auth}colour = 1\n"), "unknown field `colour`", 8),
        (format!("{ROUTE}[routes.auth]\nissuers = [\"partner\"]\naudience = \"x\"\n"), "unknown issuer", 6),
        (format!("{ROUTE}[routes.auth]\nissuers = [\"self\"]\n"), "audience is required", 5),
        (format!("{ROUTE}{auth}forward_token = \"all\"\n"), "forward_token", 8),
        (format!("{ROUTE}{auth}{ROUTE}{auth}"), "declared twice", 9),
        (format!("{ROUTE}{auth}{}{auth}", ROUTE.replace("\"a\"", "\"b\"")), "overlaps route", 9),
        (format!("[[routes]]\nname = \"o\"\npath_prefix = \"/oauth2/\"\nupstreams = [\"http://h\"]\n{auth}"), "served by the token service", 3),
        (format!("[[routes]]\nname = \"o\"\npath = \"/x\"\npath_prefix = \"/x\"\nupstreams = [\"http://h\"]\n{auth}"), "exactly one of path", 2),
        (format!("[[routes]]\nname = \"o\"\npath = \"/x\"\nupstreams = [\"ftp://h\"]\n{auth}"), "http:// or https://", 4),
        (format!("{ROUTE}methods = [\"GE T\"]\n{auth}"), "not an HTTP method", 5),
        // Header names and values are parsed with the file, each refused where it stands.
        (format!("{ROUTE}request_headers = {{ set = {{ \"x env\" = \"1\" }} }}\n{auth}"), "\"x env\" is not a header name", 5),
        (format!("{ROUTE}request_headers = {{ set = {{ x-a = \"\\u0007\" }} }}\n{auth}"), "is not a valid header value", 5),
        (format!("{ROUTE}request_headers = {{ set = {{ x-a = \"1\", X-A = \"2\" }} }}\n{auth}"), "\"x-a\" is set twice", 5),
        (format!("{ROUTE}response_headers = {{ remove = [\"a b\"] }}\n{auth}"), "\"a b\" is not a header name", 5),
        (format!("{ROUTE}{auth}forward_claims = {{ sub = \"x user\" }}\n"), "\"x user\" is not a header name", 8),
        // Nothing a route says may be silently ineffective or break framing.
        (format!("{ROUTE}methods = []\n{auth}"), "methods is empty", 2),
        (format!("{ROUTE}request_headers = {{ set = {{ Content-Length = \"1\" }} }}\n{auth}"), "\"content-length\" frames the message", 2),
        (format!("{ROUTE}response_headers = {{ set = {{ connection = \"close\" }} }}\n{auth}"), "\"connection\" frames the message", 2),
        (format!("{ROUTE}{auth}forward_claims = {{ sub = \"transfer-encoding\" }}\n"), "\"transfer-encoding\" frames the message", 2),
        (format!("{ROUTE}{auth}forward_claims = {{ sub = \"x-user\", email = \"X-User\" }}\n"), "\"x-user\" for two claims", 2),
        (format!("{ROUTE}[routes.mcp]\nresource = \"https://h/mcp\"\n{auth}"), "must equal mcp.resource", 9),
    ];
    for (text, expected, line) in cases {
        let e = err(&text);
        assert!(e.message.contains(expected), "{expected}: {e}");
        assert_eq!(e.position.map(|p| p.0), Some(line), "{expected}: {e}");
    }
    // The same path with disjoint methods, or on another host, is not an overlap.
    let get = format!("[[routes]]\nname = \"g\"\npath_prefix = \"/api/\"\nmethods = [\"GET\"]\nupstreams = [\"http://h\"]\n{auth}");
    let post = format!("[[routes]]\nname = \"p\"\npath_prefix = \"/api/\"\nmethods = [\"post\"]\nupstreams = [\"http://h\"]\n{auth}");
    let host = format!("[[routes]]\nname = \"h\"\nhost = \"a.example\"\npath_prefix = \"/api/\"\nupstreams = [\"http://h\"]\n{auth}");
    Config::parse(&format!("{get}{post}{host}"), "t.toml").unwrap();
}
