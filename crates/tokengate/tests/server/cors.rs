//! CORS through a real gateway: preflights answered without a token, actual responses
//! (refusals included) from allowed, disallowed and `null` origins, credentials, and the
//! token service's own policy.

use store::testing::{run_sqlite, Ctx};

use crate::gateway_env::{front, send, upstream, Front, UpstreamState};
use crate::harness::Reply;

async fn cors_front(ctx: &Ctx) -> (Front, std::sync::Arc<UpstreamState>) {
    let (up, state) = upstream("up").await;
    let config = format!(
        "[token_service.cors]\nallow_origins = [\"*\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n\
         [routes.cors]\nallow_origins = [\"https://app.example\", \"http://localhost:5173\"]\n\
         allow_methods = [\"GET\", \"POST\"]\nallow_credentials = true\nmax_age = \"5m\"\n\n\
         [[routes]]\nname = \"plain\"\npath_prefix = \"/plain/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"https://api.example\"\n"
    );
    (front(ctx, &config).await, state)
}

async fn req(f: &Front, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(&f.client, method, &f.url(path), headers, "").await
}

fn cors_fields(r: &Reply) -> Vec<String> {
    r.headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .map(|k| k.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_responses_for_allowed_disallowed_and_null_origins() {
    run_sqlite(|ctx| async move {
        let (f, upstream) = cors_front(&ctx).await;
        let preflight = |origin: &'static str, method: &'static str| {
            let f = &f;
            async move {
                req(
                    f,
                    "OPTIONS",
                    "/api/x",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", method),
                        (
                            "access-control-request-headers",
                            "authorization, content-type",
                        ),
                    ],
                )
                .await
            }
        };
        // Allowed: answered by the gateway, without a token, the upstream never asked.
        let r = preflight("https://app.example", "POST").await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("authorization, content-type, dpop")
        );
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-max-age"), Some("300"));
        assert_eq!(upstream.hits_on("/api/x"), 0);
        // Disallowed origin, `null`, a method not allowed: no CORS field at all.
        for (origin, method) in [
            ("https://evil.example", "POST"),
            ("null", "GET"),
            ("https://app.example", "DELETE"),
        ] {
            let r = preflight(origin, method).await;
            assert_eq!(r.status, 403, "{origin} {method}");
            assert!(
                cors_fields(&r).is_empty(),
                "{origin} {method}: {:?}",
                r.headers
            );
        }

        // A route without `cors` treats a preflight as any request: its token rules apply.
        let r = req(
            &f,
            "OPTIONS",
            "/plain/x",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(cors_fields(&r).is_empty());
        // Actual requests: the token is still required, and the refusal is readable by the
        // page (its challenge exposed).
        let r = req(&f, "GET", "/api/x", &[("origin", "https://app.example")]).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert!(r
            .header("access-control-expose-headers")
            .unwrap()
            .contains("www-authenticate"));
        assert!(r.header("vary").unwrap().contains("origin"));
        let token = f.token("https://api.example", &[]);
        let bearer = format!("Bearer {token}");
        let r = req(
            &f,
            "GET",
            "/api/x",
            &[
                ("origin", "http://localhost:5173"),
                ("authorization", &bearer),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("http://localhost:5173")
        );
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        // A disallowed or `null` origin: the same answer, without CORS fields.
        for origin in ["https://evil.example", "null", "https://APP.example"] {
            let r = req(
                &f,
                "GET",
                "/api/x",
                &[("origin", origin), ("authorization", &bearer)],
            )
            .await;
            assert_eq!(r.status, 200, "{origin}");
            assert!(cors_fields(&r).is_empty(), "{origin}: {:?}", r.headers);
            assert!(r.header("vary").unwrap().contains("origin"));
        }

        // The token service's policy (`*`): preflight and responses.
        let r = req(
            &f,
            "OPTIONS",
            "/oauth2/token",
            &[
                ("origin", "https://anywhere.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type, dpop"),
            ],
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r.header("x-request-id").is_some());
        let r = req(
            &f,
            "GET",
            "/.well-known/oauth-authorization-server",
            &[("origin", "https://anywhere.example")],
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
    })
    .await;
}
