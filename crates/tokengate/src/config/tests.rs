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
    // A password in the query is hidden too, and so are a key URL's query values.
    let q = Config::parse(
        "[server]\ndatabase_url = \"postgres://db/tg?password=hunter2&sslmode=require\"\n\
         [[issuers]]\nname = \"p\"\nissuer = \"https://p.example\"\n\
         jwks_url = \"https://t0ken@p.example/jwks?token=s3cret#frag\"\nalgorithms = [\"ES256\"]\n",
        "t",
    )
    .unwrap()
    .effective();
    assert!(!q.to_string().contains("hunter2"), "{q}");
    assert!(!q.to_string().contains("s3cret"), "{q}");
    assert!(!q.to_string().contains("t0ken"), "{q}");
    assert_eq!(q["storage"]["database_url"], "postgres://db/tg?REDACTED");
    assert_eq!(
        q["issuers"][0]["jwks_url"],
        "https://REDACTED@p.example/jwks?REDACTED#REDACTED"
    );
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
    // An algorithm is typed as the file is read: reported at its array, naming the value.
    let e = err(&format!("{partner}algorithms = [\"ES256\", \"none\"]\n"));
    assert_eq!(e.position, Some((5, 14)));
    assert_eq!(e.message, "\"none\" is not a JWS algorithm");
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
             [[routes]]\nname = \"mcp\"\npath_prefix = \"/mcp/\"\nupstreams = [\"http://127.0.0.1:9001\"]\n[routes.mcp]\nresource = \"https://host.example/mcp\"\n[routes.auth]\nissuers = [\"self\"]\n"
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
        (format!("{ROUTE}{auth}{}{auth}", ROUTE.replace("\"a\"", "\"b\"")), "routes \"a\" and \"b\" overlap: same host, path and methods", 9),
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

/// Where and what: the position and message of the error `text` is refused with.
fn refused(text: &str) -> ((usize, usize), String) {
    let e = err(text);
    (e.position.unwrap(), e.message)
}

const UP: &str = "upstreams = [\"http://h\"]\n";
const SELF_AUTH: &str = "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api\"\n";

#[test]
fn what_boot_refused_is_refused_with_its_place() {
    // Each of these once passed parsing and failed only when the gateway was built.
    let cases: Vec<(String, (usize, usize), &str)> = vec![
        (
            format!("[[routes]]\nname = \"a\"\npath = \"/x\"\npath_prefix = \"/x\"\n{UP}auth = \"none\"\n"),
            (2, 8),
            "routes \"a\": give exactly one of path and path_prefix",
        ),
        (
            format!("[[routes]]\nname = \"a\"\n{UP}auth = \"none\"\n"),
            (2, 8),
            "routes \"a\": give exactly one of path and path_prefix",
        ),
        (
            format!("[[routes]]\nname = \"m\"\npath_prefix = \"/mcp/\"\n{UP}[routes.mcp]\nresource = \"urn:example:mcp\"\n[routes.auth]\nissuers = [\"self\"]\n"),
            (6, 12),
            "routes \"m\": mcp.resource must be an http(s) URL without fragment",
        ),
        (
            format!("[[routes]]\nname = \"m\"\npath_prefix = \"/mcp/\"\n{UP}[routes.mcp]\nresource = \"https://h/mcp#x\"\n[routes.auth]\nissuers = [\"self\"]\n"),
            (6, 12),
            "routes \"m\": mcp.resource must be an http(s) URL without fragment",
        ),
        (
            format!("{ROUTE}[routes.auth]\nissuers = [\"self\", \"partner\"]\naudience = \"https://api\"\n"),
            (6, 20),
            "routes \"a\": unknown issuer \"partner\" (declare it in [[issuers]], or use \"self\")",
        ),
        (
            format!("{ROUTE}[routes.auth]\nissuers = [\"self\"]\n"),
            (5, 1),
            "routes \"a\": auth.audience is required",
        ),
        (
            format!("[[routes]]\nname = \"a\"\npath = \"/x\"\nupstreams = []\n{SELF_AUTH}"),
            (4, 13),
            "routes \"a\": at least one upstream",
        ),
        // Hosts match without regard to case, so these two serve the same requests.
        (
            format!("[[routes]]\nname = \"a\"\nhost = \"API.example\"\npath = \"/x\"\n{UP}{SELF_AUTH}\
                     [[routes]]\nname = \"b\"\nhost = \"api.example\"\npath = \"/x\"\nmethods = [\"get\"]\n{UP}{SELF_AUTH}"),
            (10, 8),
            "routes \"a\" and \"b\" overlap: same host, path and methods",
        ),
    ];
    for (text, at, message) in cases {
        assert_eq!(refused(&text), (at, message.to_owned()), "{text}");
    }
}

#[test]
fn values_that_could_never_work_are_refused_not_adjusted() {
    let route = |extra: &str| format!("{ROUTE}{extra}{SELF_AUTH}");
    let partner = "[[issuers]]\nname = \"p\"\nissuer = \"https://p.example\"\njwks_url = \"https://p.example/jwks\"\nalgorithms = [\"ES256\"]\n";
    let cases: Vec<(String, (usize, usize), &str)> = vec![
        (
            route("host = \"api.example:8443\"\n"),
            (5, 8),
            "routes \"a\": host \"api.example:8443\" must be a DNS name, an IPv4 address or an IPv6 address without brackets, without port (an internationalised name in its xn-- form)",
        ),
        (
            route("host = \"*.example\"\n"),
            (5, 8),
            "routes \"a\": host \"*.example\" must be a DNS name, an IPv4 address or an IPv6 address without brackets, without port (an internationalised name in its xn-- form)",
        ),
        (
            route("strip_prefix = \"/v2\"\n"),
            (5, 16),
            "routes \"a\": strip_prefix \"/v2\" must start with / and apply to the route's path",
        ),
        (
            route("add_prefix = \"v1\"\n"),
            (5, 14),
            "routes \"a\": add_prefix \"v1\": it must start with /",
        ),
        (
            route("add_prefix = \"/v1?x=1\"\n"),
            (5, 14),
            "routes \"a\": add_prefix \"/v1?x=1\": a path has no query or fragment",
        ),
        (route("timeout = 0\n"), (5, 11), "routes \"a\": timeout must be at least 1s"),
        (
            route("connect_timeout = \"0s\"\n"),
            (5, 19),
            "routes \"a\": connect_timeout must be at least 1s",
        ),
        (
            route("health_check = { path = \"/health\", interval = 0 }\n"),
            (5, 47),
            "routes \"a\": health_check.interval must be at least 1s",
        ),
        (
            route("health_check = { path = \"health\" }\n"),
            (5, 25),
            "routes \"a\": health_check.path must start with /",
        ),
        (
            format!("[[routes]]\nname = \"a\"\npath_prefix = \"/api/../admin/\"\n{UP}{SELF_AUTH}"),
            (3, 15),
            "routes \"a\": \"/api/../admin/\" would never match: the path has dot segments",
        ),
        (
            format!("[[routes]]\nname = \"a\"\npath = \"/a b\"\n{UP}{SELF_AUTH}"),
            (3, 8),
            "routes \"a\": \"/a b\" would never match: it has characters a request path cannot have",
        ),
        (
            format!("{ROUTE}[routes.auth]\nissuers = [\"self\", \"self\"]\naudience = \"https://api\"\n"),
            (6, 20),
            "routes \"a\": auth.issuers names \"self\" twice",
        ),
        (
            format!("{ROUTE}[routes.auth]\nissuers = [\"self\"]\naudience = \"\"\n"),
            (7, 12),
            "routes \"a\": auth.audience is empty",
        ),
        (
            format!("{ROUTE}{SELF_AUTH}required_scopes = [\"read\", \"a b\"]\n"),
            (8, 28),
            "routes \"a\": required_scopes: \"a b\" is not a valid scope token",
        ),
        (
            format!("{ROUTE}{SELF_AUTH}required_claims = [\"\"]\n"),
            (8, 20),
            "routes \"a\": required_claims: \"\" is not a claim name",
        ),
        (
            format!("{partner}fetch_timeout = 0\n"),
            (6, 17),
            "issuers \"p\": fetch_timeout must be at least 1s",
        ),
        (
            "[[issuers]]\nname = \"p\"\nissuer = \"partner\"\ndiscovery = true\nalgorithms = [\"ES256\"]\n".to_owned(),
            (3, 10),
            "issuers \"p\": discovery needs an issuer that is an http(s) URL (its metadata is fetched from it)",
        ),
        (
            "[[issuers]]\nname = \"p\"\nissuer = \"https://p\"\njwks_file = \"-\"\nalgorithms = [\"ES256\"]\n".to_owned(),
            (4, 13),
            "issuers \"p\": jwks_file must name a file (\"-\" would be stdin)",
        ),
        // Two MCP routes whose resources share a metadata path would share one document.
        (
            format!("[[routes]]\nname = \"m1\"\npath_prefix = \"/one/\"\n{UP}[routes.mcp]\nresource = \"https://a.example/mcp\"\n[routes.auth]\nissuers = [\"self\"]\n\
                     [[routes]]\nname = \"m2\"\npath_prefix = \"/two/\"\n{UP}[routes.mcp]\nresource = \"https://b.example/mcp/\"\n[routes.auth]\nissuers = [\"self\"]\n"),
            (14, 12),
            "routes \"m2\": mcp.resource has the metadata path /.well-known/oauth-protected-resource/mcp of route \"m1\" already",
        ),
    ];
    for (text, at, message) in cases {
        assert_eq!(refused(&text), (at, message.to_owned()), "{text}");
    }
}

#[test]
fn the_table_is_what_the_gateway_is_built_from() {
    use gateway::route::PathMatch;
    use table::{IssuerRef, KeySpec};
    let c = Config::parse(
        "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\njwks_url = \"https://partner.example/jwks\"\nalgorithms = [\"ES256\", \"PS256\"]\ntyp = \"\"\nfetch_timeout = \"2s\"\n\
         [[routes]]\nname = \"mcp\"\nhost = \"MCP.Example\"\npath_prefix = \"/mcp/\"\nmethods = [\"get\", \"POST\"]\nupstreams = [\"http://127.0.0.1:9001/base/\"]\n\
         strip_prefix = \"/mcp\"\nadd_prefix = \"/v1\"\ntimeout = \"1m\"\nrequest_headers = { set = { X-Env = \"test\" }, remove = [\"x-debug\"] }\n\
         [routes.mcp]\nresource = \"https://mcp.example/mcp/\"\n\
         [routes.auth]\nissuers = [\"partner\", \"self\"]\nrequired_scopes = [\"tools:call\"]\nforward_claims = { sub = \"X-User\" }\nforward_token = \"internal\"\n",
        "t.toml",
    )
    .unwrap();
    let table = c.table();
    let partner = &table.issuers[0];
    assert_eq!(partner.name, "partner");
    assert!(
        matches!(&partner.keys, KeySpec::Url(u) if u.as_str() == "https://partner.example/jwks")
    );
    assert_eq!(partner.algorithms, [Algorithm::ES256, Algorithm::PS256]);
    assert_eq!(partner.typ, None, "typ = \"\" checks none");
    assert_eq!(partner.remote.timeout, std::time::Duration::from_secs(2));
    assert_eq!(partner.remote.cooldown, std::time::Duration::from_secs(30));

    let [r] = &table.routes[..] else {
        panic!("one route")
    };
    assert_eq!(r.host.as_deref(), Some("mcp.example"));
    assert_eq!(r.path, PathMatch::Prefix("/mcp/".into()));
    assert_eq!(r.methods, Some(vec![http::Method::GET, http::Method::POST]));
    assert_eq!(r.strip_prefix.as_deref(), Some("/mcp"));
    assert_eq!(r.add_prefix.as_deref(), Some("/v1"));
    assert_eq!(r.upstreams[0].as_str(), "http://127.0.0.1:9001/base");
    assert_eq!(r.timeout, std::time::Duration::from_secs(60));
    assert_eq!(r.connect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(r.max_body, 10 * 1024 * 1024);
    assert_eq!(r.request_headers.set[0].0.as_str(), "x-env");
    assert_eq!(r.request_headers.remove[0].as_str(), "x-debug");
    let mcp = r.mcp.as_ref().unwrap();
    assert_eq!(
        mcp.metadata_path,
        "/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        mcp.metadata_url,
        "https://mcp.example/.well-known/oauth-protected-resource/mcp"
    );
    let auth = r.auth.as_ref().unwrap();
    // The audience defaults to the MCP resource, exactly as written.
    assert_eq!(auth.audience, "https://mcp.example/mcp/");
    let names: Vec<&str> = auth.issuers.iter().map(IssuerRef::name).collect();
    assert_eq!(names, ["partner", "self"]);
    assert!(
        matches!(&auth.issuers[0], IssuerRef::Declared(p) if std::sync::Arc::ptr_eq(p, partner))
    );
    assert_eq!(auth.required_scopes, ["tools:call"]);
    assert_eq!(auth.forward_claims[0].0, "sub");
    assert_eq!(auth.forward_claims[0].1.as_str(), "x-user");
    assert_eq!(auth.forward_token, gateway::auth::ForwardToken::Internal);
    assert_eq!(auth.leeway, 30);
    assert!(auth.token_cache);

    let shown = &c.effective()["routes"][0];
    assert_eq!(shown["host"], "mcp.example");
    assert_eq!(shown["audience"], "https://mcp.example/mcp/");
    assert_eq!(shown["issuers"], serde_json::json!(["partner", "self"]));
    assert_eq!(shown["methods"], serde_json::json!(["GET", "POST"]));
    assert_eq!(shown["public"], false);
}

#[test]
fn key_files_are_read_with_the_place_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("partner.jwk");
    // RFC 7517 appendix A.1's public EC key.
    std::fs::write(
        &good,
        r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}"#,
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    let config = |decrypt: &std::path::Path| {
        let text = format!(
            "[[issuers]]\nname = \"p\"\nissuer = \"https://p.example\"\njwks_file = {:?}\nalgorithms = [\"ES256\"]\ndecrypt_keys_file = {:?}\n",
            good.display().to_string(),
            decrypt.display().to_string()
        );
        Config::parse(&text, "t.toml").unwrap()
    };
    // Parsing reads no file; loading does, and names the file and where it is named.
    let c = config(&missing);
    let e = c.table().load_key_files().unwrap_err();
    assert_eq!(e.file, "t.toml");
    assert_eq!(e.position, Some((6, 21)));
    assert!(
        e.message.starts_with(&format!(
            "issuers \"p\": decrypt_keys_file: reading {}: ",
            missing.display()
        )),
        "{e}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"kty\":\"EC\"}").unwrap();
    let e = config(&bad).table().load_key_files().unwrap_err();
    assert_eq!(e.position, Some((6, 21)));
    assert!(
        e.message.starts_with(&format!(
            "issuers \"p\": decrypt_keys_file: {}: ",
            bad.display()
        )),
        "{e}"
    );
    let c = config(&good);
    c.table().load_key_files().unwrap();
    let table::KeySpec::File(file) = &c.table().issuers[0].keys else {
        panic!("a key file")
    };
    assert_eq!(file.load().unwrap().keys().len(), 1);
}

#[test]
fn telemetry_is_off_by_default_and_checked_when_on() {
    let defaults = Config::parse("", "t.toml").unwrap();
    assert!(defaults.telemetry.otlp_endpoint.is_none());
    assert_eq!(defaults.telemetry.service_name, "tokengate");
    assert_eq!(defaults.telemetry.sample_ratio, 1.0);
    let on = Config::parse(
        "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 0.25\n",
        "t.toml",
    )
    .unwrap();
    let shown = on.effective();
    assert_eq!(
        shown["telemetry"]["otlp_endpoint"],
        "http://collector:4318/"
    );
    assert_eq!(shown["telemetry"]["sample_ratio"], 0.25);
    let (at, message) = refused("[telemetry]\notlp_endpoint = \"grpc://collector:4317\"\n");
    assert_eq!(at, (2, 17));
    assert!(message.contains("http or https"), "{message}");
    let (at, message) = refused("[telemetry]\nsample_ratio = 1.5\n");
    assert_eq!(at, (2, 16));
    assert!(message.contains("between 0.0 and 1.0"), "{message}");
    let (_, message) = refused("[telemetry]\notlp_endpoint = \"http://u:p@collector:4318\"\n");
    assert!(
        message.contains("no query, fragment, user name or password"),
        "{message}"
    );
    assert!(!on.telemetry.trust_client_sampling);
    let (_, message) = refused("[telemetry]\nendpoint = \"http://x\"\n");
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn what_the_gateway_sets_itself_and_the_unrouted_label_are_not_a_routes() {
    let with = |extra: &str| {
        format!("[[routes]]\nname = \"r\"\npath_prefix = \"/a/\"\n{UP}auth = \"none\"\n{extra}")
    };
    for extra in [
        "request_headers = { set = { traceparent = \"00-x\" } }\n",
        "request_headers = { remove = [\"TraceState\"] }\n",
        "request_headers = { set = { x-request-id = \"fixed\" } }\n",
        "response_headers = { set = { X-Request-Id = \"fixed\" } }\n",
    ] {
        let (_, message) = refused(&with(extra));
        assert!(
            message.contains("the gateway sets") && message.contains("itself"),
            "{extra}: {message}"
        );
    }
    // A response header of the same name is the route's to set.
    assert!(Config::parse(
        &with("response_headers = { set = { traceparent = \"x\" } }\n"),
        "t.toml"
    )
    .is_ok());
    let (at, message) = refused(&format!(
        "[[routes]]\nname = \"-\"\npath_prefix = \"/a/\"\n{UP}auth = \"none\"\n"
    ));
    assert_eq!(at, (2, 8));
    assert!(message.contains("is reserved"), "{message}");
    let v6 = Config::parse(
        &format!("[[routes]]\nname = \"r\"\nhost = \"0:0::1\"\npath_prefix = \"/a/\"\n{UP}auth = \"none\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(v6.effective()["routes"][0]["host"], "::1");
    let (_, message) = refused(&format!(
        "[[routes]]\nname = \"r\"\nhost = \"[::1]\"\npath_prefix = \"/a/\"\n{UP}auth = \"none\"\n"
    ));
    assert!(message.contains("without brackets"), "{message}");
}

#[test]
fn server_timeouts_default_are_set_and_zero_is_refused_at_its_place() {
    let defaults = Config::parse("", "t.toml").unwrap().timeouts();
    assert_eq!(defaults, Timeouts::default());
    assert_eq!(defaults.head, std::time::Duration::from_secs(10));
    let set = Config::parse(
        "[server.timeouts]\nfirst_byte = \"5s\"\nidle = \"2m\"\nupstream = 7\n[[routes]]\nname = \"a\"\npath_prefix = \"/a/\"\nupstreams = [\"http://127.0.0.1:1\"]\nauth = \"none\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(set.timeouts().first_byte.as_secs(), 5);
    assert_eq!(set.timeouts().idle.as_secs(), 120);
    assert_eq!(set.timeouts().body, defaults.body);
    // `upstream` is the default of each route's `timeout`.
    assert_eq!(set.table().routes[0].timeout.as_secs(), 7);
    let e = err("[server.timeouts]\nbody = 0\n");
    assert_eq!(e.position, Some((2, 8)));
    assert_eq!(e.message, "server.timeouts.body must be at least 1s");
    let e = err("[server.timeouts]\nidle = 9223372036854775807\n");
    assert_eq!(e.message, "server.timeouts.idle must be at most 7d");
    let e = err("[server.timeouts]\nheader = \"5s\"\n");
    assert!(
        e.message.contains("unknown field `header`"),
        "{}",
        e.message
    );
}

#[test]
fn risky_settings_are_refused_with_the_reason() {
    let issuer = |extra: &str| {
        format!("[[issuers]]\nname = \"idp\"\nissuer = \"https://idp.example\"\nalgorithms = [\"ES256\"]\n{extra}")
    };
    for (text, why) in [
        (
            issuer("jwks_url = \"http://idp.example/jwks\"\n"),
            "fetched without TLS",
        ),
        (
            "[[issuers]]\nname = \"idp\"\nissuer = \"http://idp.example\"\nalgorithms = [\"ES256\"]\ndiscovery = true\n".to_owned(),
            "discovery over http",
        ),
        (
            issuer("jwks_url = \"https://idp.example/jwks\"\nrefetch_cooldown = \"0s\"\n"),
            "refetch_cooldown must be at least 1s",
        ),
        (
            "[token_service]\nissuer = \"https://auth.example\"\n[[issuers]]\nname = \"again\"\nissuer = \"https://auth.example/\"\nalgorithms = [\"ES256\"]\njwks_url = \"https://auth.example/jwks\"\n".to_owned(),
            "is the built-in token service's issuer",
        ),
        (
            format!("[[routes]]\nname = \"r\"\npath_prefix = \"/api\"\n{UP}auth = \"none\"\n"),
            "path_prefix \"/api\" would also match /apix",
        ),
        (
            format!("[[routes]]\nname = \"r\"\npath_prefix = \"/a/\"\n{UP}{SELF_AUTH}forward_claims = {{ sub = \"Content-Length\" }}\n"),
            "frames the message or belongs to the connection",
        ),
        (
            "[server]\ntrusted_proxies = [\"10.1.2.3/8\"]\n".to_owned(),
            "has host bits set below its prefix: write 10.0.0.0/8",
        ),
        (
            "[server]\ntrusted_proxies = [\"proxy.example\"]\n".to_owned(),
            "is not an address range",
        ),
        (
            "[server]\ntrusted_proxies = [\"0.0.0.0/0\"]\n".to_owned(),
            "trusts every address",
        ),
        (
            format!("[[routes]]\nname = \"r\"\npath_prefix = \"/a/\"\n{UP}{SELF_AUTH}leeway = \"1h\"\n"),
            "auth.leeway must be at most 10m",
        ),
        (
            "[server]\ntoken_cache_memory = 0\n".to_owned(),
            "a size must be more than 0",
        ),
        (
            format!("[[routes]]\nname = \"r\"\npath_prefix = \"/a/\"\n{UP}max_tunnel_lifetime = \"8d\"\nauth = \"none\"\n"),
            "max_tunnel_lifetime must be at most 7d",
        ),
        (
            "[server]\ntoken_cache_memory = \"32 lots\"\n".to_owned(),
            "a size is a number of bytes",
        ),
    ] {
        let (_, message) = refused(&text);
        assert!(message.contains(why), "{text}\n{message}");
    }
    // Loopback keys over http stay allowed (a sidecar or a test).
    for ok in [
        issuer("jwks_url = \"http://127.0.0.1:9/jwks\"\n"),
        issuer("jwks_url = \"http://localhost:9/jwks\"\n"),
        issuer("jwks_url = \"http://[::1]:9/jwks\"\n"),
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n"
            .to_owned(),
    ] {
        Config::parse(&ok, "t.toml").unwrap_or_else(|e| panic!("{ok}\n{e}"));
    }
    for (text, bytes) in [
        ("", 32 << 20),
        ("[server]\ntoken_cache_memory = \"64MB\"\n", 64 << 20),
        ("[server]\ntoken_cache_memory = \"512 KiB\"\n", 512 << 10),
        ("[server]\ntoken_cache_memory = 1000\n", 1000),
    ] {
        let config = Config::parse(text, "t.toml").unwrap();
        assert_eq!(config.server.token_cache_memory.0, bytes, "{text}");
    }
    let proxies = Config::parse(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        proxies.effective()["trusted_proxies"],
        serde_json::json!(["10.0.0.0/8", "192.0.2.7/32"])
    );
    assert!(proxies
        .trusted_proxies()
        .contains(Some("10.9.9.9".parse().unwrap())));
}

#[test]
fn case_rules_are_parsed_and_case_only_differences_are_warned_about() {
    let text = format!(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\n{UP}auth = \"none\"\n\
         [[routes]]\nname = \"admin\"\npath_prefix = \"/api/admin/\"\n{UP}auth = \"none\"\n\
         [[routes]]\nname = \"Reports\"\npath_prefix = \"/Reports/\"\n{UP}auth = \"none\"\n\
         [[routes]]\nname = \"reports\"\npath_prefix = \"/reports/\"\n{UP}auth = \"none\"\n\
         [[routes]]\nname = \"v1\"\npath_prefix = \"/api/1/\"\n{UP}auth = \"none\"\n"
    );
    let config = Config::parse(&text, "t.toml").unwrap();
    let warnings = config.table().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("route \"admin\" (/api/admin/) lies under route \"api\" (/api/)"));
    assert!(warnings[0].contains("/api/ADMIN/ reaches route \"api\""));
    assert!(warnings[1].contains(
        "routes \"reports\" (/reports/) and \"Reports\" (/Reports/) differ only by case"
    ));
    // A route limited to some methods under one that serves more: the others go there.
    let methods = format!(
        "[[routes]]\nname = \"all\"\npath_prefix = \"/\"\n{UP}auth = \"none\"\n\
         [[routes]]\nname = \"read\"\npath_prefix = \"/reports/\"\nmethods = [\"GET\"]\n{UP}auth = \"none\"\n"
    );
    let warnings = Config::parse(&methods, "t.toml")
        .unwrap()
        .table()
        .warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_eq!(
        warnings[1],
        "route \"read\" (/reports/) serves GET only: other methods on its paths go to route \"all\" (/) and its rules, not to a 405"
    );
    // Matching without case silences the first and makes the second an overlap.
    let quiet = text.replace(
        "name = \"admin\"\npath_prefix = \"/api/admin/\"\n",
        "name = \"admin\"\npath_prefix = \"/api/admin/\"\ncase_sensitive = false\n",
    );
    let config = Config::parse(&quiet, "t.toml").unwrap();
    assert_eq!(config.table().warnings().len(), 1);
    assert!(!config.table().routes[1].case_sensitive);
    assert_eq!(config.effective()["routes"][1]["case_sensitive"], false);
    let clash = text.replace(
        "name = \"reports\"\npath_prefix = \"/reports/\"\n",
        "name = \"reports\"\npath_prefix = \"/reports/\"\ncase_sensitive = false\n",
    );
    let (_, message) = refused(&clash);
    assert!(message.contains("overlap"), "{message}");
}

/// A route at `/api/` with token rules (or public), and `extra` after it.
fn limited_route(public: bool, extra: &str) -> String {
    let auth = if public {
        "auth = \"none\"\n".to_owned()
    } else {
        "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n".to_owned()
    };
    format!(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://127.0.0.1:9000\"]\n{auth}{extra}"
    )
}

#[test]
fn rate_limits_parse_with_their_defaults_and_show_in_the_effective_settings() {
    let text = format!(
        "[redis]\nurl = \"redis://:secret@127.0.0.1:6379/2\"\ntimeout = \"50ms\"\n\n\
         [server]\nmax_in_flight = 4096\nmax_connections = 10000\n\n\
         [token_service.rate_limits]\nper_client = {{ limit = 60, per = \"1m\" }}\n\
         per_ip = {{ limit = 600, per = \"1m\" }}\nfailed_auth = {{ limit = 10, per = \"5m\" }}\n\n{}",
        limited_route(
            false,
            "[[routes.rate_limits]]\nname = \"per-client\"\nkey = \"client_id\"\nlimit = 100\nper = \"1m\"\n\
             burst = 20\nscope = \"cluster\"\nwhen_claim = { plan = \"free\" }\non_unavailable = \"deny\"\n\n\
             [[routes.rate_limits]]\nname = \"per-key\"\nkey = \"header:X-Api-Key\"\nlimit = 5\nper = \"1s\"\n\n\
             [routes.limits]\nmax_in_flight = 64\n"
        )
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    let route = &c.table().routes[0];
    assert_eq!(route.max_in_flight, Some(64));
    let [first, second] = &route.rate_limits[..] else {
        panic!("{:?}", route.rate_limits)
    };
    assert_eq!(first.rate.capacity(), 120);
    assert_eq!(first.rate.interval_micros(), 600_000);
    assert_eq!(first.scope, limits::Scope::Cluster);
    assert_eq!(
        first.when_claim,
        [("plan".to_owned(), serde_json::json!("free"))]
    );
    assert_eq!(second.key.to_string(), "header:x-api-key");
    assert_eq!(second.scope, limits::Scope::Local, "local unless said");
    assert_eq!(
        second.on_unavailable,
        gateway::ratelimit::OnUnavailable::Allow
    );
    let shown = c.effective();
    assert_eq!(shown["max_in_flight"], 4096);
    assert_eq!(shown["redis"]["timeout_ms"], 50);
    let url = shown["redis"]["url"].as_str().unwrap();
    assert!(url.contains("REDACTED") && !url.contains("secret"), "{url}");
    assert_eq!(
        shown["token_service_rate_limits"]["failed_auth"]["per_seconds"],
        300
    );
    assert_eq!(shown["routes"][0]["rate_limits"][0]["burst"], 20);
}

#[test]
fn rate_limit_mistakes_are_refused_at_their_field() {
    let limit = |body: &str| {
        limited_route(
            false,
            &format!("[[routes.rate_limits]]\nname = \"l\"\n{body}\n"),
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (limit("key = \"client_id\"\nlimit = 1\nper = \"1m\"\nscope = \"cluster\""), "needs a [redis] section"),
        (limit("key = \"client\"\nlimit = 1\nper = \"1m\""), "use client_id, sub, ip, route"),
        (limit("key = \"header:bad name\"\nlimit = 1\nper = \"1m\""), "use client_id, sub, ip, route"),
        (limit("key = \"ip\"\nlimit = 0\nper = \"1m\""), "limit must be from 1"),
        (limit("key = \"ip\"\nlimit = 1\nper = 0"), "per must be from 1s"),
        (limit("key = \"ip\"\nlimit = 5000000\nper = \"1s\""), "one request per microsecond"),
        (limit("key = \"ip\"\nlimit = 1\nper = \"1m\"\nwhen_claim = { plan = [\"a\"] }"), "string, integer or boolean"),
        (limit("key = \"ip\"\nlimit = 1\nper = \"1m\"\nscope = \"global\""), "unknown variant"),
        (limit("key = \"ip\"\nlimit = 1\nper = \"1m\"\non_unavailable = \"maybe\""), "unknown variant"),
        (limit("key = \"ip\"\nlimit = 1\nper = \"1m\"\nlimt = 2"), "unknown field"),
        (
            format!("{}[[routes.rate_limits]]\nname = \"l\"\nkey = \"ip\"\nlimit = 2\nper = \"1m\"\n", limit("key = \"ip\"\nlimit = 1\nper = \"1m\"")),
            "declared twice",
        ),
        (
            limited_route(true, "[[routes.rate_limits]]\nname = \"l\"\nkey = \"sub\"\nlimit = 1\nper = \"1m\"\n"),
            "auth = \"none\"",
        ),
        (limited_route(false, "[routes.limits]\nmax_in_flight = 0\n"), "max_in_flight must be from 1"),
        ("[server]\nmax_connections = 0\n".to_owned(), "server.max_connections must be from 1"),
        ("[redis]\nurl = \"http://127.0.0.1:6379\"\n".to_owned(), "redis.url must be"),
        ("[redis]\nurl = \"redis://127.0.0.1\"\ntimeout = \"50\"\n".to_owned(), "write a duration"),
        ("[redis]\nurl = \"redis://127.0.0.1\"\ntimeout = \"0ms\"\n".to_owned(), "more than 0"),
        (
            "[token_service.rate_limits]\nfailed_auth = { limit = 10, per = \"5m\", scope = \"cluster\" }\n".to_owned(),
            "needs a [redis] section",
        ),
        ("[token_service.rate_limits]\nper_ip = { limit = 0, per = \"5m\" }\n".to_owned(), "limit must be from 1"),
        ("[token_service.rate_limits]\nper_user = { limit = 1, per = \"5m\" }\n".to_owned(), "unknown field"),
    ];
    for (text, expected) in cases {
        let e = err(&text);
        assert!(e.message.contains(expected), "{text}\n→ {e}");
        assert!(e.position.is_some(), "{text}\n→ {e}");
    }
}

#[test]
fn auth_rules_parse_and_their_mistakes_are_refused_at_their_field() {
    let route = |rules: &str| {
        format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://127.0.0.1:9000\"]\n\
             [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n{rules}"
        )
    };
    let ok = route(
        "[[routes.auth.rules]]\nmethods = [\"GET\", \"HEAD\"]\npath_prefix = \"/api/reports/\"\n\
         scopes = [\"reports:read\"]\nclaims = { tenant = \"acme\", level = 3, staff = true }\n\
         [[routes.auth.rules]]\nmethods = [\"POST\"]\n",
    );
    let c = Config::parse(&ok, "t.toml").unwrap();
    let rules = &c.table().routes[0].auth.as_ref().unwrap().rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].path_prefix.as_deref(), Some("/api/reports/"));
    assert_eq!(rules[0].claims.len(), 3);
    assert_eq!(rules[1].path_prefix, None);
    assert_eq!(
        c.effective()["routes"][0]["auth_rules"][0]["scopes"],
        serde_json::json!(["reports:read"])
    );
    let cases = [
        (
            "path_prefix = \"/other/\"",
            "is not within the route's path_prefix",
        ),
        (
            "path_prefix = \"/api/reports\"",
            "must start and end with '/'",
        ),
        ("path_prefix = \"/api/../x/\"", "is not a canonical path"),
        ("methods = []", "methods is empty"),
        ("methods = [\"G T\"]", "method"),
        ("scopes = [\"a b\"]", "is not a valid scope token"),
        (
            "claims = { roles = [\"a\"] }",
            "must be a string, integer or boolean",
        ),
        ("scope = [\"x\"]", "unknown field"),
    ];
    for (rule, expected) in cases {
        let e = err(&route(&format!("[[routes.auth.rules]]\n{rule}\n")));
        assert!(e.message.contains(expected), "{rule} → {e}");
        assert!(e.position.is_some(), "{rule} → {e}");
    }
    let exact = "[[routes]]\nname = \"x\"\npath = \"/x\"\nupstreams = [\"http://h\"]\n\
                 [routes.auth]\nissuers = [\"self\"]\naudience = \"https://a\"\n\
                 [[routes.auth.rules]]\npath_prefix = \"/x/\"\n";
    assert!(err(exact)
        .message
        .contains("needs a route with path_prefix"));
}

#[test]
fn cors_policies_parse_with_defaults_and_refuse_what_browsers_would_not_send() {
    let route = |cors: &str| {
        format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://127.0.0.1:9000\"]\n\
             auth = \"none\"\n[routes.cors]\n{cors}\n"
        )
    };
    let c = Config::parse(
        &route("allow_origins = [\"https://app.example\", \"http://localhost:5173\"]"),
        "t.toml",
    )
    .unwrap();
    let policy = c.table().routes[0].cors.as_ref().unwrap();
    assert_eq!(policy.max_age.as_secs(), 600);
    assert_eq!(policy.allow_methods.len(), 3);
    assert_eq!(policy.allow_headers.len(), 3);
    assert!(!policy.allow_credentials);
    assert!(
        Config::parse("[token_service.cors]\nallow_origins = [\"*\"]\n", "t.toml")
            .unwrap()
            .service_cors()
            .is_some()
    );
    for (cors, expected) in [
        (
            "allow_origins = [\"*\"]\nallow_credentials = true",
            "only with allow_credentials = false",
        ),
        (
            "allow_origins = [\"*\", \"https://a.example\"]",
            "stands alone",
        ),
        ("allow_origins = []", "is empty"),
        (
            "allow_origins = [\"https://app.example/\"]",
            "is not an origin",
        ),
        (
            "allow_origins = [\"https://App.example\"]",
            "is not an origin",
        ),
        (
            "allow_origins = [\"https://app.example:443\"]",
            "is not an origin",
        ),
        ("allow_origins = [\"null\"]", "is not an origin"),
        (
            "allow_origins = [\"ftp://app.example\"]",
            "is not an origin",
        ),
        (
            "allow_origins = [\"https://a.example\"]\nmax_age = \"2d\"",
            "at most 1d",
        ),
        (
            "allow_origins = [\"https://a.example\"]\nallow_headers = [\"bad name\"]",
            "header",
        ),
        (
            "allow_origins = [\"https://a.example\"]\norigins = []",
            "unknown field",
        ),
    ] {
        let e = err(&route(cors));
        assert!(e.message.contains(expected), "{cors} → {e}");
        assert!(e.position.is_some(), "{cors} → {e}");
    }
}

#[test]
fn response_caches_parse_with_defaults_and_refuse_what_could_not_work() {
    let route = |auth: &str, cache: &str| {
        format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://127.0.0.1:9000\"]\n\
             {auth}\n[routes.cache]\n{cache}\n"
        )
    };
    let with_token = "[routes.auth]\nissuers = [\"self\"]\naudience = \"https://a\"";
    let c = Config::parse(&route(with_token, ""), "t.toml").unwrap();
    let spec = c.table().routes[0].cache.clone().unwrap();
    assert_eq!(spec.settings.ttl.as_secs(), 30);
    assert_eq!(spec.settings.max_ttl.as_secs(), 600);
    assert_eq!(
        spec.settings.partition,
        gateway::response_cache::Partition::Subject
    );
    assert_eq!(
        spec.settings.methods,
        [http::Method::GET, http::Method::HEAD]
    );
    assert_eq!(spec.settings.max_body, 1 << 20);
    assert_eq!(spec.storage, super::cache::StorageKind::Memory);
    assert_eq!(c.server.cache.max_memory.0, 256 << 20);
    let shown = c.table().effective_routes();
    assert_eq!(shown[0]["cache"]["partition"], "subject", "{shown}");
    // Every field of the contract.
    let full = "ttl = \"10s\"\nmax_ttl = \"1h\"\npartition = \"client\"\nmethods = [\"GET\"]\n\
                max_body = \"64KB\"\nstorage = \"memory\"";
    let c = Config::parse(
        &format!(
            "[server.cache]\nmax_memory = \"1MB\"\n{}",
            route(with_token, full)
        ),
        "t.toml",
    )
    .unwrap();
    let spec = c.table().routes[0].cache.clone().unwrap();
    assert_eq!(
        (spec.settings.ttl.as_secs(), spec.settings.max_ttl.as_secs()),
        (10, 3600)
    );
    assert_eq!(spec.settings.max_body, 64 << 10);
    assert_eq!(c.server.cache.max_memory.0, 1 << 20);
    assert!(Config::parse(
        &route("auth = \"none\"", "partition = \"shared\""),
        "t.toml"
    )
    .is_ok());
    for (auth, cache, expected) in [
        ("auth = \"none\"", "", "no token rules"),
        (
            "auth = \"none\"",
            "partition = \"client\"",
            "no token rules",
        ),
        (
            with_token,
            "partition = \"everyone\"",
            "use \"subject\", \"client\" or \"shared\"",
        ),
        (with_token, "methods = [\"POST\"]", "only GET and HEAD"),
        (with_token, "methods = []", "methods is empty"),
        (with_token, "ttl = \"0s\"", "between 1s and 1d"),
        (with_token, "max_ttl = \"2d\"", "between 1s and 1d"),
        (
            with_token,
            "ttl = \"1h\"\nmax_ttl = \"1m\"",
            "longer than max_ttl",
        ),
        (with_token, "max_body = \"512MB\"", "at most 64MB"),
        (with_token, "storage = \"redis\"", "needs a [redis] section"),
        (
            with_token,
            "storage = \"disk\"",
            "use \"memory\" or \"redis\"",
        ),
        (with_token, "stale = true", "unknown field"),
    ] {
        let e = err(&route(auth, cache));
        assert!(e.message.contains(expected), "{cache} → {e}");
        assert!(e.position.is_some(), "{cache} → {e}");
    }
    // max_body within max_memory for memory storage only.
    let small = "[server.cache]\nmax_memory = \"1MB\"\n";
    let e = err(&format!(
        "{small}{}",
        route(with_token, "max_body = \"2MB\"")
    ));
    assert!(
        e.message.contains("larger than [server.cache] max_memory"),
        "{e}"
    );
    let redis = format!(
        "[redis]\nurl = \"redis://127.0.0.1:6379\"\n{small}{}",
        route(with_token, "storage = \"redis\"\nmax_body = \"2MB\"")
    );
    assert_eq!(
        Config::parse(&redis, "t.toml").unwrap().table().routes[0]
            .cache
            .as_ref()
            .unwrap()
            .storage,
        super::cache::StorageKind::Redis
    );
}

#[test]
fn login_takes_the_dev_provider_and_says_what_is_not_there_yet() {
    let c = Config::parse(
        "[token_service.login]\nprovider = \"dev\"\nconsent = \"always\"\n",
        "t.toml",
    )
    .unwrap();
    let login = c.token_service.login.as_ref().unwrap();
    assert!(login.is_dev());
    assert_eq!(login.consent, login::ConsentConfig::Always);
    assert_eq!(login.scopes, ["openid", "email", "profile"]);
    let c = Config::parse("[token_service.login]\nprovider = \"dev\"\n", "t.toml").unwrap();
    assert_eq!(
        c.token_service.login.unwrap().settings().unwrap().consent,
        oauth::sign_in::Consent::Remember,
        "the issue's default"
    );

    let c = Config::parse(
        "[token_service.login]\nprovider = \"https://idp.example\"\nclient_id = \"tg\"\nclaims = { email = \"email\" }\n",
        "t.toml",
    )
    .unwrap();
    let login = c.token_service.login.unwrap().settings().unwrap();
    let oauth::sign_in::Provider::Oidc(p) = login.provider else {
        panic!("not an OpenID Provider");
    };
    assert_eq!(
        (p.issuer.as_str(), p.client_id.as_str()),
        ("https://idp.example", "tg")
    );
    assert_eq!(p.claims, [("email".to_owned(), "email".to_owned())]);
    for (text, why) in [
        (
            "provider = \"http://idp.example\"\nclient_id = \"tg\"",
            "https",
        ),
        ("provider = \"https://idp.example\"", "client_id"),
        (
            "provider = \"https://idp.example\"\nclient_id = \"tg\"\nscopes = [\"email\"]",
            "openid",
        ),
        (
            "provider = \"dev\"\nclaims = { sub = \"email\" }",
            "set by tokengate",
        ),
    ] {
        let e = err(&format!("[token_service.login]\n{text}\n"));
        assert!(e.message.contains(why), "{text}: {e}");
    }
    let c = Config::parse(
        "[token_service.login]\nprovider = \"https://idp.example\"\nclient_id = \"tg\"\nclient_secret_env = \"TOKENGATE_TEST_UNSET_SECRET\"\n",
        "t.toml",
    )
    .unwrap();
    let e = c.token_service.login.unwrap().settings().unwrap_err();
    assert!(e.contains("TOKENGATE_TEST_UNSET_SECRET"), "{e}");
    let e = err("[token_service.login]\nprovider = \"dev\"\nconsent = \"sometimes\"\n");
    assert!(e.message.contains("always"), "{e}");
}

#[test]
fn refresh_lifetimes_default_to_30_and_7_days() {
    let c = Config::parse("", "t.toml").unwrap();
    let r = c.token_service.refresh.settings();
    assert_eq!((r.lifetime, r.idle), (30 * 86_400, 7 * 86_400));
    let c = Config::parse("[token_service.refresh]\nlifetime = \"1d\"\n", "t.toml").unwrap();
    let r = c.token_service.refresh.settings();
    assert_eq!(
        (r.lifetime, r.idle),
        (86_400, 86_400),
        "idle never past the lifetime"
    );
    let e = err("[token_service.refresh]\nidle = \"0s\"\n");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    let e = err("[token_service.refresh]\nlifetime = \"30d\"\nrotate = true\n");
    assert!(e.message.contains("rotate"), "{e}");
}

#[test]
fn registration_is_off_by_default_and_says_what_is_missing() {
    let c = Config::parse("", "t.toml").unwrap();
    assert!(matches!(
        c.token_service.registration.settings().unwrap().access,
        oauth::registration::RegistrationAccess::Off
    ));
    let base = "[token_service.login]\nprovider = \"dev\"\n[token_service.rate_limits]\n\
                per_ip = { limit = 60, per = \"1m\" }\n[[audiences]]\nid = \"https://mcp.example\"\n";
    let c = Config::parse(
        &format!("{base}[token_service.registration]\ndynamic = \"open\"\naudiences = [\"https://mcp.example\"]\n"),
        "t.toml",
    )
    .unwrap();
    let r = c.token_service.registration.settings().unwrap();
    assert!(matches!(
        r.access,
        oauth::registration::RegistrationAccess::Open
    ));
    assert_eq!(r.audiences, ["https://mcp.example"]);
    for (text, why) in [
        (
            "dynamic = \"token\"\naudiences = [\"https://mcp.example\"]",
            "initial_access_token_env",
        ),
        ("dynamic = \"open\"", "audiences = [...]"),
        (
            "dynamic = \"open\"\naudiences = [\"https://other.example\"]",
            "not a declared",
        ),
        ("dynamic = \"sometimes\"", "open"),
        ("client_id_metadata_documents = true", "audiences = [...]"),
        (
            "metadata_documents_from_loopback = true",
            "needs client_id_metadata_documents",
        ),
    ] {
        let e = err(&format!("{base}[token_service.registration]\n{text}\n"));
        assert!(e.message.contains(why), "{text}: {e}");
    }
    // Open registration without a limit per address, or without sign-in.
    let e = err("[token_service.login]\nprovider = \"dev\"\n[[audiences]]\nid = \"https://mcp.example\"\n\
                 [token_service.registration]\ndynamic = \"open\"\naudiences = [\"https://mcp.example\"]\n");
    assert!(e.message.contains("per_ip"), "{e}");
    let e = err(
        "[[audiences]]\nid = \"https://mcp.example\"\n[token_service.registration]\n\
                 dynamic = \"open\"\naudiences = [\"https://mcp.example\"]\n",
    );
    assert!(e.message.contains("[token_service.login]"), "{e}");
    let c = Config::parse(
        &format!("{base}[token_service.registration]\ndynamic = \"token\"\ninitial_access_token_env = \"TOKENGATE_TEST_UNSET_IAT\"\naudiences = [\"https://mcp.example\"]\n"),
        "t.toml",
    )
    .unwrap();
    let e = c.token_service.registration.settings().unwrap_err();
    assert!(e.contains("TOKENGATE_TEST_UNSET_IAT"), "{e}");
}

#[test]
fn metadata_documents_need_sign_in_audiences_and_a_limit_per_address() {
    use oauth::client_document::MetadataDocuments;
    let documents = |text: &str| {
        Config::parse(text, "t.toml")
            .unwrap()
            .token_service
            .registration
            .settings()
            .unwrap()
            .documents
    };
    assert_eq!(documents(""), MetadataDocuments::Off);
    let base = "[token_service.login]\nprovider = \"dev\"\n[token_service.rate_limits]\n\
                per_ip = { limit = 60, per = \"1m\" }\n[[audiences]]\nid = \"https://mcp.example\"\n\
                [token_service.registration]\naudiences = [\"https://mcp.example\"]\n\
                client_id_metadata_documents = true\n";
    assert_eq!(documents(base), MetadataDocuments::On);
    assert_eq!(
        documents(&format!("{base}metadata_documents_from_loopback = true\n")),
        MetadataDocuments::OnWithLoopback
    );
    let without_limit = base.replace("per_ip = { limit = 60, per = \"1m\" }\n", "");
    let e = err(&without_limit);
    assert!(e.message.contains("per_ip"), "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(8), "the documents line: {e}");
    let without_login = base.replace("[token_service.login]\nprovider = \"dev\"\n", "");
    assert!(err(&without_login)
        .message
        .contains("[token_service.login]"));
}
