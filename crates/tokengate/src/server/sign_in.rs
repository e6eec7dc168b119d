//! The authorization endpoint and the pages of user sign-in (issue #18): `GET
//! /oauth2/authorize` checks the request and starts a session (a sealed, HttpOnly, SameSite=Lax
//! cookie), the sign-in form posts to [`SIGN_IN`], the consent form to [`CONSENT`], and the
//! browser goes back to the client with a code or an error. What is decided lives in
//! `oauth::sign_in` and `oauth::code`; this module moves cookies, forms and pages.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use cookie::{Cookie, SameSite};
use oauth::authorize::AuthorizeError;
use oauth::form::Params;
use oauth::sign_in::{Provider, SignIn, CONSENT_MEMORY_LIFETIME, SIGN_IN_LIFETIME};
use oauth::{paths, ErrorKind, ErrorResponse};

use super::{pages, App, RequestId};

/// Where the development sign-in form posts.
pub(crate) const SIGN_IN: &str = "/oauth2/authorize/sign-in";
/// Where the consent form posts.
pub(crate) const CONSENT: &str = "/oauth2/authorize/consent";

/// The sign-in session's cookie (sent to `/oauth2` only: the authorization endpoint, its forms
/// and the provider's callback).
const SESSION_COOKIE: &str = "tokengate_sign_in";
/// Consents remembered in this browser (`consent = "remember"`).
const CONSENT_COOKIE: &str = "tokengate_consent";
/// `/oauth2`: the authorization endpoint, its forms and the provider's callback.
const COOKIE_PATH: &str = "/oauth2";

/// The largest form the pages post (a CSRF value, a user name, a button).
const MAX_FORM: usize = 4096;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(paths::AUTHORIZE, get(authorize))
        .route(SIGN_IN, post(sign_in))
        .route(CONSENT, post(consent))
        .route(oauth::upstream::CALLBACK, get(callback))
}

/// RFC 6749 §4.1.1: checks the request, starts the session and shows the sign-in page.
async fn authorize(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    uri: Uri,
) -> Response {
    let service = &app.service;
    if service.login().is_none() {
        return pages::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "user sign-in is not configured on this server ([token_service.login])",
            &id.0,
        );
    }
    let now = store::unix_now();
    let query = uri.query().unwrap_or_default().as_bytes();
    let (mut session, sealed) = match service.begin_sign_in(query, now).await {
        Ok(begun) => begun,
        Err(refused) => return authorize_error(&app, &refused, &id.0),
    };
    let Some(provider) = service.oidc_provider() else {
        let mut response = sign_in_page(&app, &session, None, &id.0).await;
        set_cookie(
            &mut response,
            session_cookie(&app, sealed, SIGN_IN_LIFETIME),
        );
        return response;
    };
    // To the OpenID Provider, with this sign-in's state, nonce and PKCE verifier sealed.
    let to_provider = async {
        let upstream = app.upstream()?;
        let metadata = upstream.metadata(&provider.issuer).await?;
        let url = service.upstream_redirect(&mut session, &metadata)?;
        let sealed = service.seal_sign_in(&session, now)?;
        Ok::<_, ErrorResponse>((url, sealed))
    };
    match to_provider.await {
        Ok((url, sealed)) => {
            let mut response = redirect(&url);
            set_cookie(
                &mut response,
                session_cookie(&app, sealed, SIGN_IN_LIFETIME),
            );
            response
        }
        Err(error) => back_to_client(&app, session, error, &id.0),
    }
}

/// The OpenID Provider's answer (OpenID Connect Core §3.1.2.5): checked against the session,
/// the code redeemed there, the ID token verified; then consent, as after any sign-in.
async fn callback(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let now = store::unix_now();
    let service = &app.service;
    let session = cookie_value(&headers, SESSION_COOKIE)
        .and_then(|sealed| service.open_sign_in(&sealed, now))
        .filter(|s| s.upstream.is_some());
    let Some(mut session) = session else {
        return show(&invalid(EXPIRED), &id.0);
    };
    let params = match Params::parse_query(uri.query().unwrap_or_default().as_bytes(), &[]) {
        Ok(params) => params,
        Err(e) => return show(&e, &id.0),
    };
    if !service.upstream_state_matches(&session, &params) {
        // Not this sign-in's answer (another tab's, or a link someone sent): shown, and the
        // session is kept for the real answer.
        return show(
            &invalid("the provider's answer is not for this sign-in"),
            &id.0,
        );
    }
    match service.spend_upstream_leg(&session, now).await {
        Ok(true) => {}
        Ok(false) => {
            return show(
                &invalid("this answer of the provider was used already"),
                &id.0,
            )
        }
        Err(e) => return show(&e, &id.0),
    }
    let user = async {
        let provider = service
            .oidc_provider()
            .ok_or_else(|| invalid("no OpenID Provider is configured"))?;
        let upstream = app.upstream()?;
        let metadata = upstream.metadata(&provider.issuer).await?;
        let code = service.upstream_code(&session, &metadata, &params)?;
        let (form, authorization) = service.upstream_token_request(&session, code)?;
        let (id_token, access_token) = upstream.redeem(&metadata, form, authorization).await?;
        // The ID token is verified before anything else is asked with what came with it.
        let mut keys = upstream.keys(&metadata, false).await?;
        if service
            .upstream_user(&id_token, &keys, &session, None, now)
            .is_err()
        {
            // A key the provider rotated in since its keys were fetched: one refetch (the
            // remote key set allows one per cooldown).
            keys = upstream.keys(&metadata, true).await?;
        }
        let mut user = service.upstream_user(&id_token, &keys, &session, None, now)?;
        if let Some(token) = access_token.filter(|_| service.upstream_needs_userinfo(&id_token)) {
            if let Some(info) = upstream.userinfo(&metadata, &token).await {
                user = service.upstream_user(&id_token, &keys, &session, Some(&info), now)?;
            }
        }
        service
            .check_user_sub(&user.sub)
            .await
            .map_err(|e| ErrorResponse::new(ErrorKind::AccessDenied, e.description))?;
        Ok::<_, ErrorResponse>(user)
    };
    match user.await {
        Ok(user) => {
            tracing::info!(sign_in = %session.id, sub = %user.sub, "signed in at the OpenID Provider");
            session.user = Some(user);
            session.upstream = None;
            after_sign_in(&app, session, &headers, &id.0, now).await
        }
        Err(error) => back_to_client(&app, session, error, &id.0),
    }
}

/// A failure after the client's redirect URI was verified: back to the client with the
/// error, `state` and `iss` (RFC 6749 §4.1.2.1); the session ends.
fn back_to_client(app: &App, session: SignIn, error: ErrorResponse, id: &str) -> Response {
    let refused = AuthorizeError::Redirect {
        redirect_uri: session.request.redirect_uri,
        state: session.request.state,
        error,
    };
    let mut response = authorize_error(app, &refused, id);
    set_cookie(&mut response, session_cookie(app, String::new(), 0));
    response
}

/// After any sign-in: the consent page, or, when consent is not needed, the code.
async fn after_sign_in(
    app: &App,
    session: SignIn,
    headers: &HeaderMap,
    id: &str,
    now: i64,
) -> Response {
    // Sealed first, whether or not consent is asked: a user whose claims from the provider do
    // not fit in the session is refused the same way in every consent mode.
    let sealed = match app.service.seal_sign_in(&session, now) {
        Ok(sealed) => sealed,
        Err(oauth::Error::Sealed(_)) => {
            let too_large = ErrorResponse::new(
                ErrorKind::AccessDenied,
                "the user's claims from the provider are too large to carry through sign-in",
            );
            return back_to_client(app, session, too_large, id);
        }
        Err(e) => return show(&ErrorResponse::from(e), id),
    };
    let memory = cookie_value(headers, CONSENT_COOKIE);
    if app.service.consent_needed(&session, memory.as_deref(), now) {
        return consent_page(app, &session, sealed, id).await;
    }
    approve(app, session, memory.as_deref(), id, now).await
}

const EXPIRED: &str =
    "this sign-in expired or was replaced by a newer one: start again from the application";

/// The provider's sign-in: for the development provider, its form.
async fn sign_in_page(app: &App, session: &SignIn, problem: Option<&str>, id: &str) -> Response {
    match app.service.login().map(|l| &l.provider) {
        Some(Provider::Dev) => {
            let client = match app.service.client_name(&session.request.client_id).await {
                Ok(name) => name,
                Err(e) => return show(&e, id),
            };
            pages::dev_sign_in(SIGN_IN, &session.csrf, &client, problem)
        }
        _ => show(
            &ErrorResponse::new(ErrorKind::ServerError, "no sign-in provider is configured"),
            id,
        ),
    }
}

/// The development provider's form: the user name is the user.
async fn sign_in(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = store::unix_now();
    let (mut session, form) = match posted_session(&app, &headers, body, &id.0, now).await {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    let name = form.get("username").unwrap_or_default();
    let user = match app.service.dev_sign_in(name, now).await {
        Ok(user) => user,
        Err(e) if e.kind == ErrorKind::InvalidRequest => {
            let mut page = sign_in_page(&app, &session, Some(&e.description), &id.0).await;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            return page;
        }
        Err(e) => return show(&e, &id.0),
    };
    tracing::info!(sign_in = %session.id, sub = %user.sub, "signed in (development provider)");
    session.user = Some(user);
    after_sign_in(&app, session, &headers, &id.0, now).await
}

/// The consent page, with the session (now holding the user) sealed again.
async fn consent_page(app: &App, session: &SignIn, sealed: String, id: &str) -> Response {
    let request = &session.request;
    let client_name = match app.service.client_name(&request.client_id).await {
        Ok(name) => name,
        Err(e) => return show(&e, id),
    };
    let user = session
        .user
        .as_ref()
        .map(|u| u.sub.as_str())
        .unwrap_or_default();
    let mut response = pages::consent(&pages::ConsentView {
        action: CONSENT,
        csrf: &session.csrf,
        user,
        client_name: &client_name,
        client_id: &request.client_id,
        audience: &request.audience,
        scope: &request.scope,
        first_party: request.first_party,
        destination: &destination(&request.redirect_uri),
    });
    set_cookie(&mut response, session_cookie(app, sealed, SIGN_IN_LIFETIME));
    response
}

/// Where a redirect URI sends the user, as the consent page names it: the host (and port),
/// or, for an app's private-use scheme, the scheme.
fn destination(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(url) => pages::host_and_port(&url).unwrap_or_else(|| format!("{}:", url.scheme())),
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The consent form: `approve` issues the code, `deny` sends `access_denied`.
async fn consent(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = store::unix_now();
    let (session, form) = match posted_session(&app, &headers, body, &id.0, now).await {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    if session.user.is_none() {
        return show(&invalid("sign in before consenting"), &id.0);
    }
    match (form.get("approve").is_some(), form.get("deny").is_some()) {
        (true, false) => {
            let memory = cookie_value(&headers, CONSENT_COOKIE);
            approve(&app, session, memory.as_deref(), &id.0, now).await
        }
        (false, true) => {
            let refused = app.service.deny_authorization(session, &id.0, now).await;
            let mut response = authorize_error(&app, &refused, &id.0);
            set_cookie(&mut response, session_cookie(&app, String::new(), 0));
            response
        }
        _ => show(&invalid("submit either approve or deny"), &id.0),
    }
}

/// Issues the code and sends the browser back to the client; the session ends and, with
/// `consent = "remember"`, the consent is remembered.
async fn approve(app: &App, session: SignIn, memory: Option<&str>, id: &str, now: i64) -> Response {
    // Remembering is a convenience: when it fails, the code is issued all the same.
    let remembered = app
        .service
        .remember_consent(&session, memory, now)
        .unwrap_or_default();
    let location = match app.service.approve_authorization(session, id, now).await {
        Ok(location) => location,
        Err(e) => return show(&e, id),
    };
    let mut response = redirect(&location);
    set_cookie(&mut response, session_cookie(app, String::new(), 0));
    if let Some(value) = remembered {
        let cookie = base_cookie(
            app,
            CONSENT_COOKIE,
            COOKIE_PATH,
            value,
            CONSENT_MEMORY_LIFETIME,
        );
        set_cookie(&mut response, cookie);
    }
    response
}

/// The session of a posted form, after its CSRF value is checked; or the page to show.
async fn posted_session(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    id: &str,
    now: i64,
) -> Result<(SignIn, Params), Response> {
    let expired = || show(&invalid(EXPIRED), id);
    let session = cookie_value(headers, SESSION_COOKIE)
        .and_then(|sealed| app.service.open_sign_in(&sealed, now))
        .ok_or_else(expired)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| show(&invalid("the form is too large"), id))?;
    let form = Params::from_request(content_type, Some(&body), &[]).map_err(|e| show(&e, id))?;
    let submitted = form.get("csrf").unwrap_or_default();
    if !session.csrf_matches(submitted) {
        let page = pages::error(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "the form does not belong to this sign-in (CSRF check failed): start again from the application",
            id,
        );
        return Err(page);
    }
    Ok((session, form))
}

/// A refused authorization: shown to the user, or redirected to the verified redirect URI.
fn authorize_error(app: &App, refused: &AuthorizeError, id: &str) -> Response {
    tracing::info!(reason = %refused.error().reason(), "authorization refused");
    match refused.location(&app.service.settings().issuer) {
        Some(location) => redirect(&location),
        None => show(refused.error(), id),
    }
}

/// An error page for the user: 400, or 500/503 for our own failures. Never 401 with
/// `WWW-Authenticate`, which would open a browser's password dialog.
pub(super) fn show(error: &ErrorResponse, id: &str) -> Response {
    let status = match error.kind {
        ErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    if status.is_server_error() {
        tracing::error!("request {id}: {}", error.reason());
    }
    pages::error(status, error.kind.as_str(), &error.description, id)
}

fn invalid(why: &str) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidRequest, why)
}

/// 303 See Other to `location`: the browser follows with a GET, whatever it posted.
pub(super) fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => return show(&invalid("the redirect URI cannot be sent"), ""),
    }
    pages::secure_headers(response.headers_mut());
    response
}

/// A cookie of the flow: HttpOnly, SameSite=Lax (sent on the top-level return from the
/// provider, not on other sites' requests), Secure when the issuer is https, scoped to the
/// authorization endpoint. `max_age` 0 deletes it.
pub(super) fn base_cookie(
    app: &App,
    name: &'static str,
    path: &'static str,
    value: String,
    max_age: i64,
) -> Cookie<'static> {
    let secure = app.service.settings().issuer.starts_with("https://");
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

fn session_cookie(app: &App, sealed: String, max_age: i64) -> Cookie<'static> {
    base_cookie(app, SESSION_COOKIE, COOKIE_PATH, sealed, max_age)
}

pub(super) fn set_cookie(response: &mut Response, cookie: Cookie<'static>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The value of the cookie `name`, from any `Cookie` header (HTTP/2 may send several).
pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers, name).next()
}

/// Every value of the cookie `name`, in the order sent.
pub(super) fn cookie_values<'h>(
    headers: &'h HeaderMap,
    name: &'h str,
) -> impl Iterator<Item = String> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_owned())
}
