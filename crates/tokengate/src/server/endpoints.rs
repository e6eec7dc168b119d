//! The OAuth endpoints: token, introspection, revocation, metadata and JWKS.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use gateway::DPOP;
use oauth::{paths, ErrorKind, ErrorResponse, Introspection, Request, INTROSPECTION_JWT};

use super::{json_response, limits, App, ConnInfo, RequestId};

const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(paths::TOKEN, post(token))
        .route(paths::INTROSPECT, post(introspect))
        .route(paths::REVOKE, post(revoke))
        .route(paths::JWKS, get(jwks))
        .route(paths::REGISTER, post(register))
        .route(AUDIT_KEYS, get(audit_keys))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
}

/// Reads the body up to the protocol's limit; `None` when it is larger (the protocol answers
/// `invalid_request`), stopped coming (`[server.timeouts] body`) or the connection failed
/// mid-body.
async fn bounded(body: Body) -> Option<Bytes> {
    axum::body::to_bytes(body, oauth::form::MAX_BODY).await.ok()
}

fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect()
}

fn request<'a>(headers: &'a HeaderMap, body: Option<&'a [u8]>, id: &'a str) -> Request<'a> {
    Request {
        content_type: text(headers, &header::CONTENT_TYPE).first().copied(),
        authorization: text(headers, &header::AUTHORIZATION),
        dpop: text(headers, &DPOP),
        accept: text(headers, &header::ACCEPT).first().copied(),
        body,
        request_id: id,
    }
}

/// RFC 6749 §5.1: token responses and anything holding token data are not cached.
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn with_nonce(mut response: Response, nonce: Option<&str>) -> Response {
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
    response
}

/// The one place an [`ErrorResponse`] becomes HTTP.
fn oauth_error(e: &ErrorResponse, id: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(json_response(status, &e.body(id)));
    if let Some(challenge) = e.www_authenticate() {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if status.is_server_error() {
        tracing::error!("request {id}: {}", e.reason());
    }
    with_nonce(response, e.dpop_nonce.as_deref())
}

/// The client's address, when the request came through a listener.
type Peer = Option<Extension<ConnInfo>>;

fn peer_ip(peer: &Peer) -> Option<std::net::IpAddr> {
    peer.as_ref().and_then(|p| p.0.peer).map(|a| a.ip())
}

/// The rate limits around an endpoint: admitted or refused first, and a failed client
/// authentication counted after (`server::limits`).
async fn limited<F, Fut>(
    app: &App,
    req: &Request<'_>,
    headers: &HeaderMap,
    peer: &Peer,
    handle: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ErrorResponse>>,
{
    let admission = match limits::admit(app, req, headers, peer_ip(peer)).await {
        Ok(admission) => admission,
        Err(refused) => return refused,
    };
    let (response, ended) = match handle().await {
        Ok(response) => (response, limits::Ended::Served),
        Err(e) if e.kind == ErrorKind::InvalidClient => (
            oauth_error(&e, req.request_id),
            limits::Ended::FailedAuthentication,
        ),
        Err(e) => (oauth_error(&e, req.request_id), limits::Ended::Refused),
    };
    limits::settle(app, admission, ended, req.request_id, response).await
}

async fn token(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = bounded(body).await;
    let req = request(&headers, body.as_deref(), &id.0);
    limited(&app, &req, &headers, &peer, || async {
        let r = app.service.token(&req, store::unix_now()).await?;
        Ok(with_nonce(
            no_store(json_response(StatusCode::OK, &r.body)),
            r.dpop_nonce.as_deref(),
        ))
    })
    .await
}

async fn introspect(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = bounded(body).await;
    let req = request(&headers, body.as_deref(), &id.0);
    limited(&app, &req, &headers, &peer, || async {
        Ok(
            match app.service.introspect(&req, store::unix_now()).await? {
                Introspection::Json(v) => no_store(json_response(StatusCode::OK, &v)),
                Introspection::Jwt(jwt) => no_store(
                    (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static(INTROSPECTION_JWT),
                        )],
                        jwt,
                    )
                        .into_response(),
                ),
            },
        )
    })
    .await
}

async fn revoke(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = bounded(body).await;
    let req = request(&headers, body.as_deref(), &id.0);
    limited(&app, &req, &headers, &peer, || async {
        app.service.revoke(&req, store::unix_now()).await?;
        Ok(no_store(StatusCode::OK.into_response()))
    })
    .await
}

/// RFC 7591 dynamic client registration (`[token_service.registration] dynamic`), rate
/// limited like the token endpoint.
async fn register(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !app.service.registration_enabled() {
        return super::error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            "dynamic client registration is off ([token_service.registration] dynamic)",
            &id.0,
        );
    }
    let body = axum::body::to_bytes(body, oauth::registration::MAX_REGISTRATION)
        .await
        .ok();
    let req = request(&headers, body.as_deref(), &id.0);
    // Admitted by address only: registration authenticates no client, and a `Basic` header
    // naming one must not spend that client's budget.
    let admitted = Request {
        authorization: Vec::new(),
        ..request(&headers, body.as_deref(), &id.0)
    };
    limited(&app, &admitted, &headers, &peer, || async {
        let answer = app
            .service
            .register(
                req.authorization.first().copied(),
                req.content_type,
                req.body,
                req.request_id,
                store::unix_now(),
            )
            .await?;
        Ok(no_store(json_response(StatusCode::CREATED, &answer)))
    })
    .await
}

async fn metadata(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &app.service.metadata())
}

/// Where the audit log's public keys are served.
pub(crate) const AUDIT_KEYS: &str = "/.well-known/tokengate-audit-keys";

/// The audit log's public keys (every one that ever signed a checkpoint), from the ring in
/// memory: public, so it costs no database read.
async fn audit_keys(State(app): State<Arc<App>>) -> Response {
    match app.service.audit_keys_document() {
        Ok(doc) => {
            let max_age = app.service.settings().jwks_max_age;
            let mut response = json_response(StatusCode::OK, &doc);
            if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
                response.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            response
        }
        Err(e) => {
            tracing::error!("the audit keys document failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The JWKS, cacheable for `jwks_max_age`: the pre-publication period of a new key is at
/// least as long, so a cached copy always holds the key that signs.
async fn jwks(State(app): State<Arc<App>>) -> Response {
    let max_age = app.service.settings().jwks_max_age;
    let mut response = json_response(StatusCode::OK, &app.service.jwks());
    let cache = format!("public, max-age={max_age}");
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}
