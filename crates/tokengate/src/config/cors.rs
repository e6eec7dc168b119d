//! `[routes.cors]` and `[token_service.cors]`: the gateway's `cors` policy as written, and
//! its checks (exact `scheme://host[:port]` origins, `"*"` never with credentials).

use serde::Deserialize;
use toml::Spanned;

use gateway::cors::{AllowOrigins, Cors};

use super::values::{HeaderName, Method};
use super::{Duration, Failure};

/// A CORS policy as written; every field but `allow_origins` has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins, or `["*"]` (only with `allow_credentials = false`).
    pub allow_origins: Spanned<Vec<Spanned<String>>>,
    /// Methods a preflight may ask for (default GET, HEAD, POST).
    pub allow_methods: Option<Vec<Spanned<Method>>>,
    /// Request headers a preflight may ask for (default authorization, content-type, dpop).
    pub allow_headers: Option<Vec<HeaderName>>,
    /// Response headers the page may read (default www-authenticate, ratelimit,
    /// ratelimit-policy, retry-after, x-request-id, dpop-nonce).
    pub expose_headers: Option<Vec<HeaderName>>,
    /// How long a browser keeps a preflight's answer (default 10m, at most 1d).
    pub max_age: Option<Spanned<Duration>>,
    /// Whether cookies and HTTP authentication may be sent (default false).
    #[serde(default)]
    pub allow_credentials: bool,
}

/// The policy, checked.
pub(super) fn policy(written: &CorsConfig, what: &str) -> Result<Cors, Failure> {
    let origins = written.allow_origins.get_ref();
    let any = origins.iter().any(|o| o.get_ref() == "*");
    let allow_origins = if any {
        if origins.len() > 1 || written.allow_credentials {
            return Err((
                written.allow_origins.span(),
                format!("{what}: allow_origins \"*\" stands alone and only with allow_credentials = false"),
            ));
        }
        AllowOrigins::Any
    } else if origins.is_empty() {
        return Err((
            written.allow_origins.span(),
            format!("{what}: allow_origins is empty: leave the section out for no browser access"),
        ));
    } else {
        AllowOrigins::List(
            origins
                .iter()
                .map(|o| origin(o, what))
                .collect::<Result<_, _>>()?,
        )
    };
    // `*` as a header name is a wildcard to browsers only without credentials, and never
    // covers `authorization`: listing the names is what works.
    for list in [&written.allow_headers, &written.expose_headers]
        .into_iter()
        .flatten()
    {
        if list.iter().any(|h| h.0.as_str() == "*") {
            return Err((
                written.allow_origins.span(),
                format!("{what}: allow_headers and expose_headers list names; \"*\" is not one"),
            ));
        }
    }
    let max_age = match &written.max_age {
        Some(m) if m.get_ref().0 > 86_400 => {
            return Err((m.span(), format!("{what}: max_age must be at most 1d")))
        }
        Some(m) => m.get_ref().0,
        None => 600,
    };
    let names = |v: &Option<Vec<HeaderName>>, default: &[&'static str]| match v {
        Some(list) => list.iter().map(|h| h.0.clone()).collect(),
        None => default
            .iter()
            .map(|n| http::HeaderName::from_static(n))
            .collect(),
    };
    Ok(Cors {
        allow_origins,
        allow_methods: match &written.allow_methods {
            Some(list) => list.iter().map(|m| m.get_ref().0.clone()).collect(),
            None => vec![http::Method::GET, http::Method::HEAD, http::Method::POST],
        },
        allow_headers: names(
            &written.allow_headers,
            &["authorization", "content-type", "dpop"],
        ),
        expose_headers: names(
            &written.expose_headers,
            &[
                "www-authenticate",
                "ratelimit",
                "ratelimit-policy",
                "retry-after",
                "x-request-id",
                "dpop-nonce",
            ],
        ),
        max_age: std::time::Duration::from_secs(max_age),
        allow_credentials: written.allow_credentials,
    })
}

/// An origin exactly as a browser sends it: `scheme://host[:port]`, lowercase, no path, no
/// default port, no trailing slash.
fn origin(written: &Spanned<String>, what: &str) -> Result<String, Failure> {
    let text = written.get_ref();
    let refuse = || {
        Err((
            written.span(),
            format!("{what}: allow_origins {text:?} is not an origin: write scheme://host[:port] as browsers send it (lowercase, no path, no default port)"),
        ))
    };
    let Ok(url) = url::Url::parse(text) else {
        return refuse();
    };
    let serialised = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || serialised != *text {
        return refuse();
    }
    Ok(serialised)
}
