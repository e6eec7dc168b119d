//! The web console at `/console`: a single-page application built from `console/` (Vite,
//! TypeScript, Preact, uPlot) whose bundle is committed under `crates/tokengate/console-dist/`
//! and built into the binary, so nothing is fetched from elsewhere at run time. Served
//! wherever the admin API is (the admin listener when `admin_listen` is set), and off (404)
//! with it.
//!
//! The console is a client of the admin API and of nothing private. A browser cannot keep a
//! bearer token out of reach of scripts, so signing in with the admin token here starts a
//! session instead: a random id in an HttpOnly, SameSite=Strict cookie (Secure over TLS or
//! for an https page) for the path `/console` only, known to this node only, ending after 30
//! minutes without use or 8 hours in all, or at sign-out. The admin API is also mounted at
//! `/console/admin/` (the same operations), where it accepts that cookie in place of the
//! bearer token, and for every state-changing call also the session's CSRF token in
//! `X-CSRF-Token`. The cookie's path keeps it from the gateway's routes on the same origin,
//! which would forward it upstream. Every response of the console, the admin API's under
//! `/console/admin/` included, carries a Content-Security-Policy that allows scripts, styles
//! and connections from this origin only (no inline script, no eval).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::constant_time;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::admin::{audit_admin_action, AdminAction, Via};
use super::{error_json, json_response, App, ConnInfo, RequestId};

/// The session cookie, sent by browsers under [`PATH`] only.
const COOKIE: &str = "tokengate_console";
/// Where the console is, and the only path its cookie is sent to.
const PATH: &str = "/console";
/// Where the console reaches the admin API: `/console/admin/clients` is `/admin/clients`.
pub(super) const ADMIN_API: &str = "/console";
/// The application's pages (each is the same document; the script shows the page).
const PAGES: [&str; 8] = [
    "/console",
    "/console/",
    "/console/overview",
    "/console/clients",
    "/console/keys",
    "/console/tokens",
    "/console/audit",
    "/console/routes",
];
/// The header a state-changing call through the console carries its CSRF token in.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions a node keeps at most (the oldest unused go first).
const MAX_SESSIONS: u64 = 1024;
/// A session ends after this long without a request...
const IDLE: Duration = Duration::from_secs(30 * 60);
/// ...and after this long in all.
const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// The sign-in body: one token, a little JSON around it.
const MAX_SIGN_IN_BODY: usize = 8 * 1024;

/// Scripts, styles, images and calls from this origin only; no inline script, no eval, no
/// framing, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// The built bundle (see `console/README.md`): the page, its script and its styles.
const INDEX: &[u8] = include_bytes!("../../console-dist/index.html");
const SCRIPT: &[u8] = include_bytes!("../../console-dist/console.js");
const STYLES: &[u8] = include_bytes!("../../console-dist/console.css");

/// A signed-in console user.
#[derive(Debug)]
pub(crate) struct Session {
    /// Sent back in `X-CSRF-Token` on every state-changing call.
    csrf: String,
}

/// The node's console sessions, by the SHA-256 of their cookie (the cookie itself is not
/// kept, so a memory dump does not yield live sessions).
#[derive(Clone)]
pub struct Sessions {
    cache: moka::sync::Cache<[u8; 32], Arc<Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("count", &self.cache.entry_count())
            .finish()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            cache: moka::sync::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                // Least recently used first: the default (TinyLFU) may refuse a new entry
                // when full, which would sign a browser in to a session that is not kept.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(IDLE)
                .time_to_live(LIFETIME)
                .build(),
        }
    }
}

impl Sessions {
    /// The session a request's cookie names, if it is live.
    pub(crate) fn of(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        // Every cookie of that name: one set for a longer path (or from a sibling domain) is
        // sent first and must not hide the real session.
        super::sign_in::cookie_values(headers, COOKIE).find_map(|id| self.cache.get(&digest(&id)))
    }

    fn start(&self) -> Option<(String, Arc<Session>)> {
        let id = oauth::random_b64(32).ok()?;
        let csrf = oauth::random_b64(32).ok()?;
        let session = Arc::new(Session { csrf });
        self.cache.insert(digest(&id), Arc::clone(&session));
        Some((id, session))
    }

    fn end(&self, headers: &HeaderMap) {
        for id in super::sign_in::cookie_values(headers, COOKIE) {
            self.cache.invalidate(&digest(&id));
        }
    }
}

impl Session {
    /// Whether a state-changing request carries this session's CSRF token.
    pub(crate) fn csrf_matches(&self, headers: &HeaderMap) -> bool {
        headers.get(CSRF_HEADER).is_some_and(|given| {
            constant_time::verify_slices_are_equal(self.csrf.as_bytes(), given.as_bytes()).is_ok()
        })
    }
}

fn digest(id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    out.copy_from_slice(d.as_ref());
    out
}

pub(super) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let pages = PAGES
        .iter()
        .fold(Router::new(), |router, path| router.route(path, get(page)));
    pages
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(styles))
        .route(
            "/console/session",
            get(session_state).post(sign_in).delete(sign_out),
        )
        .route_layer(middleware::from_fn_with_state(app, guard))
}

/// Off with the admin API (404); every answer carries the CSP and is never cached by a
/// shared cache.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut response = if app.admin_token().is_none() {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            "the console is off",
            &id,
        )
    } else {
        next.run(req).await
    };
    protect(response.headers_mut());
    response
}

/// The admin API as the console reaches it (`/console/admin/…`): its answers carry the
/// console's headers too, since a browser reads them on the console's origin.
pub(super) async fn console_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    protect(response.headers_mut());
    response
}

/// The policy and the other headers every console response carries.
fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Every page of the application is the same document; the script routes by path.
async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn styles() -> Response {
    asset("text/css; charset=utf-8", STYLES)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The names carry no hash: revalidate, so an upgraded binary's bundle is used.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Bytes::from_static(body),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /console/session` with `{"token": "<admin token>"}`: starts a session. Failures are
/// counted with the admin API's.
async fn sign_in(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    conn: Option<Extension<ConnInfo>>,
    req: Request,
) -> Response {
    let peer = conn.as_ref().and_then(|c| c.peer).map(|p| p.ip());
    let presented = req.headers().clone();
    let tls = secure(conn.as_ref(), &presented);
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_SIGN_IN_BODY).await else {
        return error_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the body is too large",
            &id.0,
        );
    };
    let Ok(SignIn { token }) = serde_json::from_slice::<SignIn>(&body) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected {\"token\": \"…\"}",
            &id.0,
        );
    };
    let Some(expected) = app.admin_token() else {
        return error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            "the console is off",
            &id.0,
        );
    };
    if constant_time::verify_slices_are_equal(expected.as_bytes(), token.trim().as_bytes()).is_err()
    {
        app.admin_failures.record(peer);
        return error_json(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "that is not the admin token",
            &id.0,
        );
    }
    // A new session replaces the one this browser had.
    app.console.end(&presented);
    let Some((cookie_id, session)) = app.console.start() else {
        return error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "no randomness for a session",
            &id.0,
        );
    };
    let action = AdminAction {
        method: "POST",
        path: "/console/session",
        id: &id.0,
        via: Via::Console,
    };
    audit_admin_action(&app, action, peer, StatusCode::OK).await;
    let mut response = json_response(StatusCode::OK, &json!({ "csrf": session.csrf }));
    super::sign_in::set_cookie(&mut response, cookie(cookie_id, tls, LIFETIME));
    response
}

/// `GET /console/session`: whether this browser is signed in, and its CSRF token (readable
/// by this origin's scripts only: no CORS here, and the cookie is SameSite=Strict).
async fn session_state(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.console.of(&headers) {
        Some(session) => json_response(
            StatusCode::OK,
            &json!({ "signed_in": true, "csrf": session.csrf }),
        ),
        None => json_response(StatusCode::OK, &json!({ "signed_in": false })),
    }
}

/// `DELETE /console/session`: signs out (with the CSRF token, so another site cannot).
async fn sign_out(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
) -> Response {
    let tls = secure(conn.as_ref(), &headers);
    if let Some(session) = app.console.of(&headers) {
        if !session.csrf_matches(&headers) {
            return csrf_refused(&id.0);
        }
        app.console.end(&headers);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    super::sign_in::set_cookie(
        &mut response,
        cookie(String::new(), tls, Duration::from_secs(0)),
    );
    response
}

/// The answer to a state-changing call whose CSRF token is missing or wrong.
pub(super) fn csrf_refused(id: &str) -> Response {
    error_json(
        StatusCode::FORBIDDEN,
        "csrf",
        "a state-changing call from the console needs its X-CSRF-Token",
        id,
    )
}

/// Whether the cookie is `Secure`: over TLS, or when the page that asks is https (behind a
/// proxy that ends TLS the connection is plain, the browser's is not). Browsers send
/// `Origin` with every POST and DELETE of `fetch`. An http page (the admin listener on an
/// internal address) gets a cookie without it, which is the only one it could keep.
fn secure(conn: Option<&Extension<ConnInfo>>, headers: &HeaderMap) -> bool {
    conn.is_some_and(|c| c.tls)
        || headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.starts_with("https://"))
}

fn cookie(value: String, tls: bool, max_age: Duration) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(tls)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(0),
        ))
        .build()
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
