//! The admin API under `/admin/`: clients, keys, revocations and the audit trail, behind a
//! bearer admin token; its OpenAPI document at `/admin/openapi.json`. Off (404) unless an
//! admin token is configured.

use std::sync::Arc;

use aws_lc_rs::constant_time;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use oauth::{AdminError, NewClient, RevokeBy};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use store::{AuditRecord, AuthMethod, Client, KeyRecord, KeyUse};

use super::{error_json, json_response, App, RequestId};

const OPENAPI: &str = include_str!("openapi.json");
/// Admin request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

pub(super) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let protected = Router::new()
        .route("/admin/clients", get(list_clients).post(create_client))
        .route("/admin/clients/{id}", get(get_client).delete(delete_client))
        .route("/admin/clients/{id}/disable", post(disable_client))
        .route("/admin/clients/{id}/enable", post(enable_client))
        .route("/admin/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_key))
        .route("/admin/revocations", post(revoke))
        .route("/admin/audit", get(audit))
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), authorize));
    Router::new()
        .route("/admin/openapi.json", get(openapi))
        .merge(protected)
        .route_layer(middleware::from_fn_with_state(app, enabled))
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

/// `Authorization: Bearer <admin token>`, compared in constant time.
async fn authorize(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let ok = match (&app.admin_token, presented) {
        (Some(expected), Some(given)) => {
            constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes()).is_ok()
        }
        _ => false,
    };
    if ok {
        return next.run(req).await;
    }
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
    response
}

fn admin_error(e: &AdminError, id: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let description = if status.is_server_error() {
        crate::log::event("error", &format!("request {id}: {e}"));
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
        .map_err(|_| bad_request("the body is too large", id))?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| bad_request(&format!("invalid JSON body: {e}"), id))
}

/// A client as the API shows it (never the secret hash).
pub(crate) fn client_view(c: &Client) -> Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "auth_method": c.auth_method.as_str(),
        "scopes": c.scopes,
        "audiences": c.audiences,
        "jwks": c.jwks.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()),
        "disabled": c.disabled,
        "created_at": c.created_at,
    })
}

/// A key as the API shows it (never the private half).
pub(crate) fn key_view(k: &KeyRecord) -> Value {
    let public: Option<Value> = serde_json::from_str::<Value>(&k.public_jwk)
        .ok()
        .filter(|v| v.get("k").is_none() && v.get("kty").and_then(Value::as_str) != Some("oct"));
    json!({
        "kid": k.kid,
        "use": k.key_use.as_str(),
        "alg": k.alg,
        "state": k.state.as_str(),
        "created_at": k.created_at,
        "activate_at": k.activate_at,
        "retired_at": k.retired_at,
        "remove_after": k.remove_after,
        "public_jwk": public,
    })
}

fn audit_view(r: &AuditRecord) -> Value {
    let e = &r.event;
    json!({
        "id": r.id,
        "time": e.time,
        "event": e.event,
        "client_id": e.client_id,
        "subject": e.subject,
        "jti": e.jti,
        "audience": e.audience,
        "outcome": e.outcome,
        "reason": e.reason,
        "request_id": e.request_id,
    })
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn list_clients(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    match app.service.store().list_clients().await {
        Ok(clients) => {
            let list: Vec<Value> = clients.iter().map(client_view).collect();
            json_response(StatusCode::OK, &json!({ "clients": list }))
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClientBody {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    auth_method: Option<String>,
    #[serde(default)]
    jwks: Option<Value>,
}

async fn create_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Response {
    let body: NewClientBody = match json_body(body, &id.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let method = body.auth_method.as_deref().unwrap_or("client_secret_basic");
    let Some(auth_method) = AuthMethod::parse(method) else {
        return bad_request(
            "auth_method must be client_secret_basic, client_secret_post or private_key_jwt",
            &id.0,
        );
    };
    let new = NewClient {
        name: body.name,
        scopes: body.scopes,
        audiences: body.audiences,
        auth_method,
        jwks: body.jwks.map(|j| j.to_string()),
    };
    match app
        .service
        .create_client(new, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(creds) => match serde_json::to_value(&creds) {
            Ok(v) => json_response(StatusCode::CREATED, &v),
            Err(_) => admin_error(&AdminError::Invalid("unserializable".into()), &id.0),
        },
        Err(e) => admin_error(&e, &id.0),
    }
}

async fn get_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(client_id): Path<String>,
) -> Response {
    match app.service.store().client(&client_id).await {
        Ok(Some(c)) => json_response(StatusCode::OK, &client_view(&c)),
        Ok(None) => admin_error(&AdminError::NotFound("client"), &id.0),
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

async fn delete_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(client_id): Path<String>,
) -> Response {
    match app
        .service
        .delete_client(&client_id, store::unix_now(), Some(&id.0))
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
        Ok(c) => json_response(StatusCode::OK, &client_view(&c)),
        Err(e) => admin_error(&e, id),
    }
}

async fn disable_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(client_id): Path<String>,
) -> Response {
    set_disabled(&app, &client_id, true, &id.0).await
}

async fn enable_client(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(client_id): Path<String>,
) -> Response {
    set_disabled(&app, &client_id, false, &id.0).await
}

async fn rotate_secret(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Path(client_id): Path<String>,
) -> Response {
    match app
        .service
        .rotate_client_secret(&client_id, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(creds) => match serde_json::to_value(&creds) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(_) => admin_error(&AdminError::Invalid("unserializable".into()), &id.0),
        },
        Err(e) => admin_error(&e, &id.0),
    }
}

async fn list_keys(State(app): State<Arc<App>>, Extension(id): Extension<RequestId>) -> Response {
    match app.service.store().list_keys().await {
        Ok(keys) => {
            let list: Vec<Value> = keys.iter().map(key_view).collect();
            json_response(StatusCode::OK, &json!({ "keys": list }))
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(rename = "use", default)]
    key_use: Option<String>,
}

/// Parses `sig` or `enc`.
pub(crate) fn key_use(text: Option<&str>) -> Option<KeyUse> {
    match text.unwrap_or("sig") {
        "sig" => Some(KeyUse::Sig),
        "enc" => Some(KeyUse::Enc),
        _ => None,
    }
}

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
        return bad_request("use must be sig or enc", &id.0);
    };
    match app
        .service
        .rotate_key(key_use, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(k) => json_response(
            StatusCode::CREATED,
            &json!({ "kid": k.kid, "use": k.key_use.as_str(), "activate_at": k.activate_at }),
        ),
        Err(e) => admin_error(&e, &id.0),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    jti: Option<String>,
    client_id: Option<String>,
    subject: Option<String>,
}

async fn revoke(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Response {
    let body: RevokeBody = match json_body(body, &id.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let by = match (body.jti, body.client_id, body.subject) {
        (Some(j), None, None) if !j.is_empty() => RevokeBy::Jti(j),
        (None, Some(c), None) if !c.is_empty() => RevokeBy::Client(c),
        (None, None, Some(s)) if !s.is_empty() => RevokeBy::Subject(s),
        _ => return bad_request("give exactly one of jti, client_id or subject", &id.0),
    };
    match app
        .service
        .revoke_tokens(by, store::unix_now(), Some(&id.0))
        .await
    {
        Ok(n) => json_response(StatusCode::OK, &json!({ "revoked": n })),
        Err(e) => admin_error(&e, &id.0),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

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
            let list: Vec<Value> = events.iter().map(audit_view).collect();
            json_response(StatusCode::OK, &json!({ "events": list }))
        }
        Err(e) => admin_error(&e.into(), &id.0),
    }
}

async fn reload(State(app): State<Arc<App>>, Extension(id): Extension<RequestId>) -> Response {
    match app.reload() {
        Ok(routes) => {
            crate::log::event("info", &format!("configuration reloaded ({routes} routes)"));
            json_response(
                StatusCode::OK,
                &json!({ "reloaded": true, "routes": routes }),
            )
        }
        Err(e) => {
            crate::log::event(
                "warn",
                &format!("reload refused, the old configuration keeps serving: {e}"),
            );
            error_json(StatusCode::CONFLICT, "invalid_config", &e, &id.0)
        }
    }
}
