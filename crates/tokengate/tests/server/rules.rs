//! Authorization rules (`[[routes.auth.rules]]`) through a real gateway: by method, path and
//! claim (string and array claims), deny by default, the step-up challenge for missing
//! scopes (with `resource_metadata` on an MCP route), and which rule refused in the access
//! log's detail and the audit trail, never in the response.

use serde_json::json;
use store::testing::{run_sqlite, Ctx};

use crate::gateway_env::{front, partner_issuer, partner_token, upstream, Front};
use crate::harness::Reply;

const RULES: &str = "\
[[routes.auth.rules]]
methods = [\"GET\", \"HEAD\"]
path_prefix = \"/api/reports/\"
scopes = [\"reports:read\"]
claims = { tenant = \"acme\" }

[[routes.auth.rules]]
methods = [\"POST\"]
path_prefix = \"/api/reports/\"
scopes = [\"reports:write\"]
claims = { roles = \"admin\" }

[[routes.auth.rules]]
methods = [\"GET\"]
";

/// A front whose route `/api/` (partner tokens) has `rules`; and an MCP route with one rule.
async fn ruled(ctx: &Ctx) -> (Front, jose::Jwk) {
    let (up, _) = upstream("up").await;
    let (key, issuer) = partner_issuer("p1");
    let config = format!(
        "{issuer}\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"partner\"]\naudience = \"https://api.example\"\n{RULES}\n\
         [[routes]]\nname = \"mcp\"\npath_prefix = \"/mcp/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.mcp]\nresource = \"https://mcp.example/mcp\"\n\
         [routes.auth]\nissuers = [\"partner\"]\n\
         [[routes.auth.rules]]\nscopes = [\"tools:call\"]\n"
    );
    (front(ctx, &config).await, key)
}

async fn call(f: &Front, method: &str, path: &str, token: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    crate::gateway_env::send(
        &f.client,
        method,
        &f.url(path),
        &[("authorization", &bearer)],
        "",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_by_method_path_and_claim_deny_by_default_and_ask_for_scopes() {
    run_sqlite(|ctx| async move {
        let (f, key) = ruled(&ctx).await;
        let token =
            |claims: serde_json::Value| partner_token(&key, "https://partner.example", claims);
        let reader = token(json!({"scope": "reports:read", "tenant": "acme"}));
        let other_tenant = token(json!({"scope": "reports:read", "tenant": "globex"}));
        let writer = token(json!({"scope": "reports:write", "roles": ["user", "admin"]}));
        let not_admin = token(json!({"scope": "reports:write", "roles": ["user"]}));
        let no_scope = token(json!({"scope": "other", "tenant": "acme"}));

        // The first rule whose method and path match decides.
        assert_eq!(
            call(&f, "GET", "/api/reports/q1", &reader).await.status,
            200
        );
        assert_eq!(
            call(&f, "HEAD", "/api/reports", &reader).await.status,
            200,
            "the bare path too"
        );
        assert_eq!(
            call(&f, "POST", "/api/reports/q1", &writer).await.status,
            200,
            "an array claim holding the value"
        );
        // Outside /api/reports/, GET falls to the third rule: no scope, no claim needed.
        assert_eq!(call(&f, "GET", "/api/other", &no_scope).await.status, 200);

        // A missing scope: 403 insufficient_scope naming the rule's scopes (step up).
        let r = call(&f, "GET", "/api/reports/q1", &no_scope).await;
        let challenge = r.challenge(403);
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"reports:read\""),
            "{challenge}"
        );
        // (An admin without the write scope: the rule's claims hold, its scope does not.)
        let admin_reader = token(json!({"scope": "reports:read", "roles": "admin"}));
        let r = call(&f, "POST", "/api/reports/q1", &admin_reader).await;
        assert!(r.challenge(403).contains("scope=\"reports:write\""));

        // A claim that does not hold, or no rule at all: a plain 403 access_denied, no
        // challenge, and nothing about which rule.
        f.forget_denials().await;
        for (method, path, t) in [
            ("GET", "/api/reports/q1", &other_tenant),
            ("POST", "/api/reports/q1", &not_admin),
            ("DELETE", "/api/reports/q1", &writer),
            ("PUT", "/api/other", &writer),
        ] {
            let r = call(&f, method, path, t).await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
            assert_eq!(r.json()["error"], "access_denied", "{method} {path}");
            assert_eq!(r.header("www-authenticate"), None, "{method} {path}");
            assert!(!r.text().contains("rule"), "{}", r.text());
            assert_eq!(f.denial_code(&r).await, "ERR_GATEWAY_ACCESS_DENIED");
        }

        // An MCP route's step-up challenge points at its metadata.
        let r = call(
            &f,
            "POST",
            "/mcp/",
            &token(json!({"aud": "https://mcp.example/mcp", "scope": "tools:list"})),
        )
        .await;
        let challenge = r.challenge(403);
        assert!(
            challenge.contains("scope=\"tools:call\"") && challenge.contains("resource_metadata="),
            "{challenge}"
        );
        let ok = token(json!({"aud": "https://mcp.example/mcp", "scope": "tools:call"}));
        assert_eq!(call(&f, "POST", "/mcp/", &ok).await.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rules_cover_head_claims_come_first_and_the_challenge_names_every_scope() {
    run_sqlite(|ctx| async move {
        let (up, _) = upstream("up").await;
        let (key, issuer) = partner_issuer("p2");
        let config = format!(
            "{issuer}\
             [[routes]]\nname = \"v2\"\npath_prefix = \"/v2/\"\ncase_sensitive = false\nupstreams = [\"http://{up}\"]\n\
             [routes.auth]\nissuers = [\"partner\"]\naudience = \"https://api.example\"\nrequired_scopes = [\"base\"]\n\
             [[routes.auth.rules]]\nmethods = [\"GET\"]\npath_prefix = \"/v2/admin/\"\nscopes = [\"admin\"]\nclaims = {{ level = 3, staff = true }}\n\
             [[routes.auth.rules]]\nmethods = [\"GET\"]\n"
        );
        let f = front(&ctx, &config).await;
        let token = |claims: serde_json::Value| partner_token(&key, "https://partner.example", claims);
        let staff = token(json!({"scope": "base", "level": 3, "staff": true}));
        let admin = token(json!({"scope": "base admin", "level": 3, "staff": true}));
        let outsider = token(json!({"scope": "base"}));
        let wrong_type = token(json!({"scope": "base admin", "level": "3", "staff": true}));
        // HEAD is covered by the GET rule, in any case of the path on this route.
        let r = call(&f, "HEAD", "/V2/Admin/x", &staff).await;
        let challenge = r.challenge(403);
        assert!(challenge.contains("scope=\"base admin\""), "the route's and the rule's: {challenge}");
        assert_eq!(call(&f, "HEAD", "/v2/admin/x", &admin).await.status, 200);
        assert_eq!(call(&f, "GET", "/v2/admin/x", &admin).await.status, 200);
        // Claims are checked before scopes: more scopes would not help this one.
        let r = call(&f, "GET", "/v2/admin/x", &outsider).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["error"], "access_denied");
        // A claim's type counts: "3" is not 3.
        assert_eq!(call(&f, "GET", "/v2/admin/x", &wrong_type).await.json()["error"], "access_denied");
        // Elsewhere under the route, GET and HEAD pass with the route's scope alone.
        assert_eq!(call(&f, "HEAD", "/v2/other", &outsider).await.status, 200);
    })
    .await;
}
