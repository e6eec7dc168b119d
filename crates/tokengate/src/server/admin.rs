//! The admin API under `/admin/`: clients, keys, revocations and the audit trail, behind a
//! bearer admin token; its OpenAPI document at `/admin/openapi.json`. Off (404) unless an
//! admin token is configured.
//!
//! Every operation is a handler with a `#[utoipa::path]` attribute, and the router is built
//! only from `routes!` of those handlers ([`public`], [`protected`]): each route the router
//! serves is an operation of the document, with the document's method and path, and the
//! reverse. Add routes here the same way, never with a bare `.route(…)`.

mod failures;
mod openapi;
mod views;

pub use failures::AuthFailures;
pub(crate) use views::{client_view, key_view};

use std::sync::{Arc, LazyLock};

use aws_lc_rs::constant_time;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use oauth::{AdminError, NewClient, RevokeBy};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use store::{AuthMethod, KeyUse};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{error_json, App, RequestId};
use openapi::{BadRequest, Conflict, NotFound, ServerError, Unavailable};
use views::{
    AuditEventView, AuditFault, AuditPage, AuditQuery, AuditVerification, CheckpointView,
    ClientList, ClientView, ConfigurationView, CredentialsView, ErrorBody, KeyList, KeyRotation,
    KeyView, NewClientBody, ProofView, PurgeQuery, Purged, Reloaded, RevokeBody, Revoked,
    RotateBody, TokenList, TokenQuery, TokenView,
};

/// Admin request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

/// The document, serialised once: it is the same for every server in the process.
static DOCUMENT: LazyLock<Result<Bytes, serde_json::Error>> =
    LazyLock::new(|| serde_json::to_vec(&openapi::document()).map(Bytes::from));

pub(super) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let protected =
        protected().route_layer(middleware::from_fn_with_state(Arc::clone(&app), authorize));
    let (router, _) = public()
        .merge(protected)
        .route_layer(middleware::from_fn_with_state(app, enabled))
        .split_for_parts();
    router
}

/// The operations anyone may call while the admin API is on; the document's base.
fn public() -> OpenApiRouter<Arc<App>> {
    let mut router = OpenApiRouter::with_openapi(openapi::base()).routes(routes!(serve_document));
    openapi::open_to_anyone(router.get_openapi_mut());
    router
}

/// The operations behind the admin token: [`routes`] puts [`authorize`] in front of exactly
/// these, so their documentation says so here.
fn protected() -> OpenApiRouter<Arc<App>> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, delete_client))
        .routes(routes!(disable_client))
        .routes(routes!(enable_client))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .routes(routes!(revoke))
        .routes(routes!(list_tokens))
        .routes(routes!(audit))
        .routes(routes!(audit_checkpoint))
        .routes(routes!(audit_proof))
        .routes(routes!(verify_audit))
        .routes(routes!(purge_cache))
        .routes(routes!(reload))
        .routes(routes!(configuration))
        .routes(routes!(metrics));
    openapi::require_admin_token(router.get_openapi_mut());
    router
}

/// Audits a state-changing admin request: who (the admin credential's id: the first 8 hex
/// digits of its SHA-256, never the token), from where, what and how it ended. The event of
/// what it did (`client.created`, `key.rotated`, …) carries the same request id.
pub(super) async fn audit_admin_action(
    app: &App,
    action: AdminAction<'_>,
    peer: Option<std::net::IpAddr>,
    status: StatusCode,
) {
    let AdminAction {
        method,
        path,
        id,
        via,
    } = action;
    let credential = app
        .admin_token
        .as_deref()
        .map(|t| format!("admin_token:{}", oauth::token_hash_prefix(t)));
    let mut detail = serde_json::Map::new();
    detail.insert("method".into(), method.into());
    detail.insert("path".into(), path.into());
    detail.insert("status".into(), status.as_u16().into());
    detail.insert("credential".into(), credential.into());
    detail.insert("via".into(), via.name().into());
    detail.insert("source".into(), peer.map(|p| p.to_string()).into());
    let event = store::AuditEvent {
        time: store::unix_now(),
        event: "admin.action".into(),
        outcome: if status.is_success() {
            "success"
        } else {
            "failure"
        }
        .into(),
        request_id: Some(id.to_owned()),
        detail: Some(detail),
        ..store::AuditEvent::default()
    };
    if let Err(e) = app.service.store().append_audit(&event).await {
        tracing::error!("request {id}: the admin action was not audited: {e}");
    }
}

/// What an audited admin request was.
pub(super) struct AdminAction<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Its request id.
    pub id: &'a str,
    pub via: Via,
}

/// How an admin request presented the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// `Authorization: Bearer`.
    Bearer,
    /// A console session started with it (and, for a change, its CSRF token).
    Console,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Bearer => "bearer",
            Via::Console => "console",
        }
    }
}

/// Without an admin token the admin API does not exist.
async fn enabled(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if app.admin_token.is_none() {
        let id = request_id(&req);
        return error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            "the admin API is off",
            &id,
        );
    }
    next.run(req).await
}

fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Whether `headers` carry `Authorization: Bearer <expected>`, compared in constant time.
pub(super) fn bearer_matches(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| {
            constant_time::verify_slices_are_equal(expected.as_bytes(), given.trim().as_bytes())
                .is_ok()
        })
}

/// `Authorization: Bearer <admin token>`, compared in constant time; a failure is counted
/// for the audit trail ([`AuthFailures`]).
async fn authorize(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<super::ConnInfo>()
        .and_then(|c| c.peer)
        .map(|p| p.ip());
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let via = match app.admin_token() {
        Some(expected) if bearer_matches(req.headers(), expected) => Some(Via::Bearer),
        Some(_) => match app.console.of(req.headers()) {
            // A cookie is sent whichever page made the request: a change also needs the
            // token only the console's own pages can read.
            Some(session) if changes && !session.csrf_matches(req.headers()) => {
                app.admin_failures.record(peer);
                return super::console::csrf_refused(&request_id(&req));
            }
            Some(_) => Some(Via::Console),
            None => None,
        },
        None => None,
    };
    let Some(via) = via else {
        app.admin_failures.record(peer);
        let id = request_id(&req);
        let mut response = error_json(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
            &id,
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tokengate-admin\""),
        );
        return response;
    };
    if !changes {
        return next.run(req).await;
    }
    let (method, path, id) = (
        req.method().to_string(),
        req.uri().path().to_owned(),
        request_id(&req),
    );
    let response = next.run(req).await;
    let action = AdminAction {
        method: &method,
        path: &path,
        id: &id,
        via,
    };
    audit_admin_action(&app, action, peer, response.status()).await;
    response
}

fn admin_error(e: &AdminError, id: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let description = if status.is_server_error() {
        tracing::error!("request {id}: {e}");
        "internal error; see the log for this request id".to_owned()
    } else {
        e.to_string()
    };
    error_json(status, e.code(), &description, id)
}

fn bad_request(description: &str, id: &str) -> Response {
    error_json(StatusCode::BAD_REQUEST, "invalid_request", description, id)
}

/// Parses a JSON body (unknown fields refused by the target type); an empty body is `{}`.
async fn json_body<T: DeserializeOwned>(body: Body, id: &str) -> Result<T, Response> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| bad_request("the body is too large or did not arrive in time", id))?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| bad_request(&format!("invalid JSON body: {e}"), id))
}

/// A JSON response of one of the documented bodies.
fn reply<T: Serialize>(status: StatusCode, body: &T, id: &str) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, Bytes::from(bytes)),
        Err(e) => server_fault(&format!("a response body did not serialise: {e}"), id),
    }
}

/// A fault of the server's own (never the request's): logged with the request id, 500.
fn server_fault(what: &str, id: &str) -> Response {
    tracing::error!("request {id}: {what}");
    error_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error; see the log for this request id",
        id,
    )
}

fn json_bytes(status: StatusCode, bytes: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// The client an operation is about.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ClientPath {
    /// The client's identifier.
    client_id: String,
}

/// Return this OpenAPI document.
///
/// It needs no admin token, but exists only while the admin API is on.
#[utoipa::path(
    get,
    path = "/admin/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of the admin API.", body = Object))
)]
async fn serve_document(Extension(id): Extension<RequestId>) -> Response {
    match &*DOCUMENT {
        Ok(bytes) => json_bytes(StatusCode::OK, bytes.clone()),
        Err(e) => server_fault(
            &format!("the OpenAPI document did not serialise: {e}"),
            &id.0,
        ),
    }
}

/// List every client.
#[utoipa::path(
    get,
    path = "/admin/clients",
    operation_id = "listClients",
    tag = "clients",
    responses(
        (status = 200, description = "Every client, disabled ones included.", body = ClientList),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn list_clients(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    match app.service.store().list_clients().await {
        Ok(clients) => {
            let clients = clients.iter().map(ClientView::from).collect();
            reply(StatusCode::OK, &ClientList { clients }, &id.0)
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Register a client and return its credentials.
///
/// The server chooses the client_id, so registering cannot conflict with another client. For
/// `client_secret_basic` and `client_secret_post` it also generates a secret, returned in this
/// response only.
#[utoipa::path(
    post,
    path = "/admin/clients",
    operation_id = "createClient",
    tag = "clients",
    request_body = NewClientBody,
    responses(
        (status = 201, description = "The client is registered.", body = CredentialsView),
        (status = 400, response = BadRequest),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn create_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Response {
    let body: NewClientBody = match json_body(body, &id.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let auth_method = match body.auth_method.as_deref().map(AuthMethod::parse) {
        None => None,
        Some(Some(method)) => Some(method),
        Some(None) => return bad_request(
            "auth_method must be client_secret_basic, client_secret_post, private_key_jwt or none",
            &id.0,
        ),
    };
    let new = NewClient {
        name: body.name,
        scopes: body.scopes,
        audiences: body.audiences,
        auth_method,
        jwks: body.jwks.map(|j| j.to_string()),
        redirect_uris: body.redirect_uris,
        first_party: true,
    };
    match app
        .service
        .create_client(new, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(creds) => reply(StatusCode::CREATED, &CredentialsView::from(&creds), &id.0),
        Err(e) => admin_error(&e, &id.0),
    }
}

/// Show one client.
#[utoipa::path(
    get,
    path = "/admin/clients/{client_id}",
    operation_id = "getClient",
    tag = "clients",
    params(ClientPath),
    responses(
        (status = 200, description = "The client.", body = ClientView),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn get_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(path): Path<ClientPath>,
) -> Response {
    match app.service.store().client(&path.client_id).await {
        Ok(Some(c)) => reply(StatusCode::OK, &ClientView::from(&c), &id.0),
        Ok(None) => admin_error(&AdminError::NotFound("client"), &id.0),
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Delete a client.
///
/// Every token issued to it is revoked, at every node.
#[utoipa::path(
    delete,
    path = "/admin/clients/{client_id}",
    operation_id = "deleteClient",
    tag = "clients",
    params(ClientPath),
    responses(
        (status = 204, description = "The client is deleted; no body."),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn delete_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(path): Path<ClientPath>,
) -> Response {
    match app
        .service
        .delete_client(&path.client_id, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => admin_error(&e, &id.0),
    }
}

async fn set_disabled(app: &App, client_id: &str, disabled: bool, id: &str) -> Response {
    match app
        .service
        .set_client_disabled(client_id, disabled, store::unix_now(), Some(id))
        .await
    {
        Ok(c) => reply(StatusCode::OK, &ClientView::from(&c), id),
        Err(e) => admin_error(&e, id),
    }
}

/// Disable a client.
///
/// A disabled client cannot obtain, introspect or revoke tokens until it is enabled again,
/// and every token it holds is revoked (enabling it again does not bring them back).
#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/disable",
    operation_id = "disableClient",
    tag = "clients",
    params(ClientPath),
    responses(
        (status = 200, description = "The client, now disabled.", body = ClientView),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn disable_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(path): Path<ClientPath>,
) -> Response {
    set_disabled(&app, &path.client_id, true, &id.0).await
}

/// Enable a disabled client again.
#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/enable",
    operation_id = "enableClient",
    tag = "clients",
    params(ClientPath),
    responses(
        (status = 200, description = "The client, now enabled.", body = ClientView),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn enable_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(path): Path<ClientPath>,
) -> Response {
    set_disabled(&app, &path.client_id, false, &id.0).await
}

/// Replace a client's secret with a new one.
///
/// The old secret stops working at once. A `private_key_jwt` client has no secret: 409.
#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/rotate-secret",
    operation_id = "rotateClientSecret",
    tag = "clients",
    params(ClientPath),
    responses(
        (status = 200, description = "The client's new credentials.", body = CredentialsView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn rotate_secret(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(path): Path<ClientPath>,
) -> Response {
    match app
        .service
        .rotate_client_secret(&path.client_id, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(creds) => reply(StatusCode::OK, &CredentialsView::from(&creds), &id.0),
        Err(e) => admin_error(&e, &id.0),
    }
}

/// List every key, in every state of its lifecycle.
#[utoipa::path(
    get,
    path = "/admin/keys",
    operation_id = "listKeys",
    tag = "keys",
    responses(
        (status = 200, description = "Every key the server knows, removed ones included.", body = KeyList),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn list_keys(State(app): State<Arc<App>>, Extension(id): Extension<RequestId>) -> Response {
    match app.service.store().list_keys().await {
        Ok(keys) => {
            let keys = keys.iter().map(KeyView::from).collect();
            reply(StatusCode::OK, &KeyList { keys }, &id.0)
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Parses `sig`, `enc` or `audit`.
pub(crate) fn key_use(text: Option<&str>) -> Option<KeyUse> {
    match text.unwrap_or("sig") {
        "sig" => Some(KeyUse::Sig),
        "enc" => Some(KeyUse::Enc),
        "audit" => Some(KeyUse::Audit),
        _ => None,
    }
}

/// Start a key rotation: create a pending key that will replace the active one.
///
/// The new key is published in the JWKS at once and stays pending for the JWKS max-age, so
/// that verifiers fetch it before it is used; when it becomes active, the key it replaces (of
/// the same use) is retired. An empty body rotates the signing key.
#[utoipa::path(
    post,
    path = "/admin/keys/rotate",
    operation_id = "rotateKey",
    tag = "keys",
    request_body(content = RotateBody, description = "An empty body is taken as `{}`."),
    responses(
        (status = 201, description = "The pending key is created.", body = KeyRotation),
        (status = 400, response = BadRequest),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn rotate_key(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Response {
    let body: RotateBody = match json_body(body, &id.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(key_use) = key_use(body.key_use.as_deref()) else {
        return bad_request("use must be sig, enc or audit", &id.0);
    };
    match app
        .service
        .rotate_key(key_use, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(k) => {
            let rotation = KeyRotation {
                kid: k.kid,
                key_use: k.key_use.into(),
                activate_at: k.activate_at,
            };
            reply(StatusCode::CREATED, &rotation, &id.0)
        }
        Err(e) => admin_error(&e, &id.0),
    }
}

/// Revoke tokens by token id, by client or by subject.
#[utoipa::path(
    post,
    path = "/admin/revocations",
    operation_id = "revokeTokens",
    tag = "revocation",
    request_body = RevokeBody,
    responses(
        (status = 200, description = "The revocation is recorded.", body = Revoked),
        (status = 400, response = BadRequest),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn revoke(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Response {
    let body: RevokeBody = match json_body(body, &id.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let selected = one_selection(
        body.jti.as_deref(),
        body.client_id.as_deref(),
        body.subject.as_deref(),
    );
    let by = match selected {
        Some(store::TokensOf::Jti(j)) => RevokeBy::Jti(j.to_owned()),
        Some(store::TokensOf::Client(c)) => RevokeBy::Client(c.to_owned()),
        Some(store::TokensOf::Subject(s)) => RevokeBy::Subject(s.to_owned()),
        None => return bad_request(ONE_SELECTION, &id.0),
    };
    match app
        .service
        .revoke_tokens(by, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(revoked) => reply(StatusCode::OK, &Revoked { revoked }, &id.0),
        Err(e) => admin_error(&e, &id.0),
    }
}

/// Why a revocation or a token lookup was refused its selection.
const ONE_SELECTION: &str = "give exactly one of jti, client_id or subject";

/// The tokens a revocation or a lookup names: exactly one of a jti, a client or a subject,
/// not empty.
fn one_selection<'a>(
    jti: Option<&'a str>,
    client_id: Option<&'a str>,
    subject: Option<&'a str>,
) -> Option<store::TokensOf<'a>> {
    match (jti, client_id, subject) {
        (Some(j), None, None) if !j.is_empty() => Some(store::TokensOf::Jti(j)),
        (None, Some(c), None) if !c.is_empty() => Some(store::TokensOf::Client(c)),
        (None, None, Some(s)) if !s.is_empty() => Some(store::TokensOf::Subject(s)),
        _ => None,
    }
}

/// Look up issued tokens by token id, by client or by subject, newest first.
///
/// Tokens are recorded by their claims (never the token itself) until they are purged after
/// expiry.
#[utoipa::path(
    get,
    path = "/admin/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    params(TokenQuery),
    responses(
        (status = 200, description = "The tokens found (none is not an error).", body = TokenList),
        (status = 400, response = BadRequest),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn list_tokens(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_request(
            "expected jti, client_id or subject, and an integer limit",
            &id.0,
        );
    };
    if !(1..=500).contains(&q.limit) {
        return bad_request("limit must be between 1 and 500", &id.0);
    }
    let Some(of) = one_selection(
        q.jti.as_deref(),
        q.client_id.as_deref(),
        q.subject.as_deref(),
    ) else {
        return bad_request(ONE_SELECTION, &id.0);
    };
    match app.service.store().find_tokens(of, q.limit).await {
        Ok(found) => {
            let now = store::unix_now();
            let tokens = found.iter().map(|t| TokenView::at(t, now)).collect();
            reply(StatusCode::OK, &TokenList { tokens }, &id.0)
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Read the audit trail, in ascending id order.
#[utoipa::path(
    get,
    path = "/admin/audit",
    operation_id = "listAuditEvents",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn audit(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_request("after and limit must be integers", &id.0);
    };
    if !(1..=1000).contains(&q.limit) {
        return bad_request("limit must be between 1 and 1000", &id.0);
    }
    match app.service.store().audit_events(q.after, q.limit).await {
        Ok(events) => {
            let events = events.iter().map(AuditEventView::from).collect();
            reply(StatusCode::OK, &AuditPage { events }, &id.0)
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Verify the whole audit log, as `tokengate audit verify` does on this node's database.
///
/// Recomputes the Merkle tree from every event, checks every checkpoint's signature with the
/// audit keys the database holds and that each is consistent with the one before. The keys
/// come from the database being checked: an auditor who does not trust its writers verifies
/// an export offline with keys obtained apart (`tokengate audit verify FILE --keys FILE`).
/// Reads the whole log: on a large one this takes a while.
#[utoipa::path(
    post,
    path = "/admin/audit/verify",
    operation_id = "verifyAuditLog",
    tag = "audit",
    responses(
        (status = 200, description = "The verification ran; `ok` says how it ended.", body = AuditVerification),
        (status = 409, response = Conflict),
        (status = 500, response = ServerError),
    )
)]
async fn verify_audit(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    use crate::commands::audit::{store_keys, summary, verify_store};
    // It reads and hashes the whole log: one at a time, so that repeated clicks cannot
    // take the node's CPU from the requests it serves.
    let Ok(_running) = app.audit_verification.try_lock() else {
        return error_json(
            StatusCode::CONFLICT,
            "conflict",
            "a verification of the audit log is already running on this node",
            &id.0,
        );
    };
    let store = app.service.store();
    let outcome = match store_keys(store).await {
        Ok(keys) => verify_store(store, &keys, &[]).await,
        Err(e) => Err(e),
    };
    let verification = match outcome {
        Ok(Ok(verified)) => AuditVerification {
            ok: true,
            summary: summary(&verified),
            fault: None,
        },
        Ok(Err(fault)) => AuditVerification {
            ok: false,
            summary: fault.to_string(),
            fault: Some(AuditFault {
                seq: fault.seq,
                kind: fault.kind.as_str(),
                detail: fault.detail,
            }),
        },
        Err(e) => return server_fault(&format!("the audit log could not be read: {e}"), &id.0),
    };
    reply(StatusCode::OK, &verification, &id.0)
}

/// The newest signed checkpoint of the audit log.
///
/// Nodes sign one every `[audit] checkpoint_every` when events were added, and at shutdown.
#[utoipa::path(
    get,
    path = "/admin/audit/checkpoint",
    operation_id = "getAuditCheckpoint",
    tag = "audit",
    responses(
        (status = 200, description = "The newest checkpoint.", body = CheckpointView),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn audit_checkpoint(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    match app.service.newest_audit_checkpoint().await {
        Ok(Some((c, size, root))) => {
            let view = CheckpointView::signed(&c, app.service.audit_origin(), size, &root);
            reply(StatusCode::OK, &view, &id.0)
        }
        Ok(None) => admin_error(&AdminError::NotFound("checkpoint"), &id.0),
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// An inclusion proof of one audit event in the newest checkpoint.
///
/// 404 when the event is not signed by a checkpoint yet (or does not exist).
#[utoipa::path(
    get,
    path = "/admin/audit/proof/{seq}",
    operation_id = "getAuditProof",
    tag = "audit",
    params(("seq" = u64, Path, description = "The event's sequence number.")),
    responses(
        (status = 200, description = "The proof.", body = ProofView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
async fn audit_proof(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    seq: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(seq)) = seq else {
        return bad_request("seq must be a non-negative integer", &id.0);
    };
    match app.service.prove_audit(seq).await {
        Ok(Some(p)) => {
            let view = ProofView {
                seq: p.seq,
                leaf_hash: audit::event::encode_hash(&p.leaf),
                inclusion_path: p.path.iter().map(audit::event::encode_hash).collect(),
                checkpoint: CheckpointView::signed(
                    &p.checkpoint,
                    app.service.audit_origin(),
                    p.size,
                    &p.root,
                ),
            };
            reply(StatusCode::OK, &view, &id.0)
        }
        Ok(None) => admin_error(&AdminError::NotFound("signed event"), &id.0),
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

/// Purge stored responses.
///
/// Removes the response cache's entries of one route (or of every route that caches),
/// for paths starting with `path_prefix` (or every path). Entries in Redis are gone for
/// every node; entries in memory only on the node that answers. Audited as `cache.purged`.
#[utoipa::path(
    delete,
    path = "/admin/cache",
    operation_id = "purgeCache",
    tag = "meta",
    params(PurgeQuery),
    responses(
        (status = 200, description = "The entries are gone.", body = Purged),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn purge_cache(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    query: Result<Query<PurgeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_request("the only parameters are route and path_prefix", &id.0);
    };
    if q.path_prefix
        .as_deref()
        .is_some_and(|p| !p.starts_with('/'))
    {
        return bad_request("path_prefix starts with /", &id.0);
    }
    let gateway = app.gateway();
    let outcome = gateway
        .purge_cache(q.route.as_deref(), q.path_prefix.as_deref())
        .await;
    let (result, reason) = match &outcome {
        Ok(n) => ("success", format!("entries={n}")),
        Err(e) => ("failure", e.to_string()),
    };
    let event = store::AuditEvent {
        time: store::unix_now(),
        event: "cache.purged".into(),
        outcome: result.into(),
        reason: Some(format!(
            "route={} path_prefix={} {reason}",
            q.route.as_deref().unwrap_or("*"),
            q.path_prefix.as_deref().unwrap_or("/")
        )),
        request_id: Some(id.0.clone()),
        ..store::AuditEvent::default()
    };
    if let Err(e) = app.service.store().append_audit(&event).await {
        tracing::error!("request {}: the cache purge was not audited: {e}", id.0);
    }
    match outcome {
        Ok(purged) => {
            tracing::info!(purged, route = ?q.route, path_prefix = ?q.path_prefix, "response cache purged");
            reply(StatusCode::OK, &Purged { purged }, &id.0)
        }
        Err(e @ gateway::response_cache::PurgeError::UnknownRoute(_)) => {
            error_json(StatusCode::NOT_FOUND, "not_found", &e.to_string(), &id.0)
        }
        Err(e) => error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &e.to_string(),
            &id.0,
        ),
    }
}

/// The node's metrics, as `/metrics` serves them.
///
/// The same OpenMetrics text, behind the admin token (or the console's session) rather than
/// `[server] metrics_token`: what the web console's Overview charts.
#[utoipa::path(
    get,
    path = "/admin/metrics",
    operation_id = "getMetrics",
    tag = "meta",
    responses(
        (status = 200, description = "The metrics in the OpenMetrics text format.", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "A metric could not be encoded."),
    )
)]
async fn metrics(State(app): State<Arc<App>>) -> Response {
    super::proxy::metrics_text(&app)
}

/// The configuration in effect.
///
/// The effective settings, defaults filled in, as `tokengate config check` prints them; the
/// routes are those of the last successful reload, every other setting as the node
/// started. No secret is shown.
#[utoipa::path(
    get,
    path = "/admin/config",
    operation_id = "getConfiguration",
    tag = "meta",
    responses(
        (status = 200, description = "The configuration in effect.", body = ConfigurationView),
    )
)]
async fn configuration(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    let (shown, reloadable) = app.shown_configuration();
    let (reloaded_at, fingerprint) = shown.reloaded.unzip();
    let view = ConfigurationView {
        configuration: shown.effective,
        reloadable,
        reloaded_at,
        fingerprint,
    };
    reply(StatusCode::OK, &view, &id.0)
}

/// Reload the configuration file.
///
/// Re-reads the file given to `serve --config` and swaps in its gateway routes and issuers.
/// A configuration that fails to load, validate or build is refused, and the running one
/// keeps serving.
#[utoipa::path(
    post,
    path = "/admin/reload",
    operation_id = "reloadConfiguration",
    tag = "meta",
    responses(
        (status = 200, description = "The new configuration serves.", body = Reloaded),
        (status = 409, description = "Nothing changed: the configuration does not load, \
            validate or build, or the server was started without --config (error \
            invalid_config).", body = ErrorBody),
    )
)]
async fn reload(State(app): State<Arc<App>>, Extension(id): Extension<RequestId>) -> Response {
    match app.reload_audited(Some(&id.0)).await {
        Ok(routes) => {
            tracing::info!("configuration reloaded ({routes} routes)");
            let reloaded = Reloaded {
                reloaded: true,
                routes,
            };
            reply(StatusCode::OK, &reloaded, &id.0)
        }
        Err(e) => {
            tracing::warn!("reload refused, the old configuration keeps serving: {e}");
            error_json(StatusCode::CONFLICT, "invalid_config", &e, &id.0)
        }
    }
}
