//! `tokengate dev`'s browser client: a public OAuth client served by the binary itself, so
//! a newcomer can walk user sign-in from one URL with no application of their own.
//! [`DEV_START`] makes a PKCE verifier and `state`, keeps them in a sealed cookie and sends
//! the browser to the authorization endpoint; [`DEV_CALLBACK`] checks `state` and `iss`
//! (RFC 9207), redeems the code at the token endpoint's own logic, and shows the access
//! token's claims. It answers only while the development sign-in provider is configured,
//! which only `tokengate dev` allows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use oauth::form::Params;
use oauth::{paths, ErrorKind, ErrorResponse, Service};
use serde::{Deserialize, Serialize};

use super::sign_in::{base_cookie, cookie_value, redirect, set_cookie, show};
use super::{pages, App, RequestId};

/// Where the URL `tokengate dev` prints starts.
pub const DEV_START: &str = "/oauth2/dev/start";
/// The dev client's redirect URI, below the issuer.
pub const DEV_CALLBACK: &str = "/oauth2/dev/callback";
/// The name `tokengate dev` registers the browser client under.
pub const DEV_CLIENT_NAME: &str = "dev-browser";

const COOKIE: &str = "tokengate_dev_client";
const COOKIE_PATH: &str = "/oauth2/dev";
const PURPOSE: &str = "tokengate-dev-client";
/// How long the walk may take (seconds).
const LIFETIME: i64 = 600;

/// What the dev client remembers between start and callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    state: String,
}

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(DEV_START, get(start))
        .route(DEV_CALLBACK, get(callback))
}

/// The registered dev client's id, when the development provider is on; else the page to
/// show.
async fn dev_client(service: &Service, id: &str) -> Result<String, Response> {
    if !service.login().is_some_and(|l| l.provider.is_dev()) {
        return Err(not_here(id));
    }
    let callback = service.url(DEV_CALLBACK);
    let clients = service
        .store()
        .list_clients()
        .await
        .map_err(|e| show(&ErrorResponse::from(e), id))?;
    clients
        .into_iter()
        .find(|c| {
            c.name == DEV_CLIENT_NAME
                && c.first_party
                && !c.disabled
                && c.auth_method == store::AuthMethod::Public
                && c.redirect_uris == [callback.clone()]
        })
        .map(|c| c.client_id)
        .ok_or_else(|| not_here(id))
}

fn not_here(id: &str) -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        "not_found",
        "the development browser client runs with `tokengate dev` only",
        id,
    )
}

/// Starts a sign-in for the audience named by `?resource=` (default: the first declared).
async fn start(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    uri: Uri,
) -> Response {
    let service = &app.service;
    let client_id = match dev_client(service, &id.0).await {
        Ok(client_id) => client_id,
        Err(page) => return page,
    };
    let asked = uri
        .query()
        .and_then(|q| Params::parse_query(q.as_bytes(), &[]).ok())
        .and_then(|p| p.get("resource").map(str::to_owned));
    let audiences = &service.settings().audiences;
    let Some(audience) = audiences
        .iter()
        .find(|a| asked.as_deref().is_none_or(|r| r == a.id))
    else {
        return show(
            &ErrorResponse::new(ErrorKind::InvalidTarget, "no such audience"),
            &id.0,
        );
    };
    let (pending, sealed) = match pending(service) {
        Ok(made) => made,
        Err(e) => return show(&e, &id.0),
    };
    let pairs = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", &service.url(DEV_CALLBACK)),
        (
            "code_challenge",
            &oauth::pkce::challenge_of(&pending.verifier),
        ),
        ("code_challenge_method", "S256"),
        ("state", &pending.state),
        ("resource", &audience.id),
        ("scope", &audience.scopes.join(" ")),
    ];
    let Some(location) = oauth::authorize::with_query(&service.url(paths::AUTHORIZE), &pairs)
    else {
        return show(
            &ErrorResponse::new(ErrorKind::ServerError, "the issuer is not a URL"),
            &id.0,
        );
    };
    let mut response = redirect(&location);
    set_cookie(
        &mut response,
        base_cookie(&app, COOKIE, COOKIE_PATH, sealed, LIFETIME),
    );
    response
}

/// A fresh verifier and state, and the cookie value holding them.
fn pending(service: &Service) -> Result<(Pending, String), ErrorResponse> {
    let pending = Pending {
        verifier: oauth::random_b64(32)?,
        state: oauth::random_b64(16)?,
    };
    let now = store::unix_now();
    let sealed = service
        .sealer(PURPOSE)?
        .seal(&pending, now.saturating_add(LIFETIME))?;
    Ok((pending, sealed))
}

/// The client's redirect URI: checks state and iss, redeems the code, shows the claims.
async fn callback(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let service = &app.service;
    let client_id = match dev_client(service, &id.0).await {
        Ok(client_id) => client_id,
        Err(page) => return page,
    };
    let now = store::unix_now();
    let pending: Option<Pending> = match service.sealer(PURPOSE) {
        Ok(sealer) => cookie_value(&headers, COOKIE).and_then(|c| sealer.open(&c, now)),
        Err(e) => return show(&ErrorResponse::from(e), &id.0),
    };
    let params = match Params::parse_query(uri.query().unwrap_or_default().as_bytes(), &[]) {
        Ok(params) => params,
        Err(e) => return show(&e, &id.0),
    };
    let refused = |why: String| show(&ErrorResponse::new(ErrorKind::InvalidRequest, why), &id.0);
    let Some(pending) = pending.filter(|p| params.get("state") == Some(p.state.as_str())) else {
        return refused("state does not match this browser's sign-in: start again".into());
    };
    if params.get("iss") != Some(service.settings().issuer.as_str()) {
        return refused("iss is not this issuer (RFC 9207): a mix-up".into());
    }
    if let Some(error) = params.get("error") {
        return refused(format!("the authorization server answered {error}"));
    }
    let form = format!(
        "grant_type=authorization_code&client_id={}&code={}&code_verifier={}&redirect_uri={}",
        encode(&client_id),
        encode(params.get("code").unwrap_or_default()),
        encode(&pending.verifier),
        encode(&service.url(DEV_CALLBACK)),
    );
    let request = oauth::Request {
        content_type: Some("application/x-www-form-urlencoded"),
        authorization: Vec::new(),
        dpop: Vec::new(),
        accept: None,
        body: Some(form.as_bytes()),
        request_id: &id.0,
    };
    let answer = match service.token(&request, now).await {
        Ok(answer) => answer,
        Err(e) => return show(&e, &id.0),
    };
    let token = answer
        .body
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let mut response = pages::dev_signed_in(token, &service.settings().issuer);
    set_cookie(
        &mut response,
        base_cookie(&app, COOKIE, COOKIE_PATH, String::new(), 0),
    );
    response
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
