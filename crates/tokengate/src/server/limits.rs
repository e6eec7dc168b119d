//! The token service's rate limits (`[token_service.rate_limits]`) around the token,
//! introspection and revocation endpoints: requests per address (`per_ip`), served requests
//! per client (`per_client`), and failed client authentications per address and per client
//! (`failed_auth`).
//!
//! `failed_auth` is checked before the request (without spending) and a failure is recorded
//! after it. A client or address past its failures gets 429 before its secret is checked,
//! and so does any answer that raced past that check: a wrong secret whose failure cannot be
//! recorded any more, and even a right one, are answered 429, so guesses sent at once learn
//! nothing beyond the limit. Successful requests spend nothing, so any number may be in
//! flight. Each refusal is audited once per period per key, not per attempt. `per_client` is
//! checked before and spent after a request the client was served, so nobody can spend
//! another client's budget by naming its `client_id`.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use gateway::ratelimit::{
    address_key, ceil_seconds, Nearest, Outcome, RateLimit, ServiceLimits, Verdict,
};
use serde_json::json;

use super::{json_response, App};

/// What a token-service request is counted by.
pub(super) struct Admission {
    /// `c` and the `client_id` the request names, if it names one.
    client: Option<Vec<u8>>,
    /// The client's address key.
    address: Vec<u8>,
    claimed: Option<String>,
    nearest: Option<Nearest>,
}

impl Admission {
    /// The keys `failed_auth` counts: the address's, then the client's (when the request
    /// names one).
    fn failure_keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        std::iter::once(&self.address).chain(self.client.iter())
    }

    /// The `RateLimit` fields of the limit nearest to running out, on any response.
    fn finish(&self, mut response: Response) -> Response {
        if let Some(nearest) = &self.nearest {
            nearest.set_fields(response.headers_mut());
        }
        response
    }

    fn note(&mut self, limit: &RateLimit, verdict: Verdict) {
        let nearest = Nearest::closer(self.nearest.take(), limit, verdict);
        self.nearest = Some(nearest);
    }

    /// The 429 for `limit`, unless `verdict` allowed the request.
    fn refusal(&mut self, limit: &RateLimit, verdict: Verdict, id: &str) -> Option<Response> {
        self.note(limit, verdict);
        (!verdict.allowed).then(|| self.finish(too_many(limit, verdict.retry_after, id)))
    }
}

/// What became of the request.
pub(super) enum Ended {
    /// Answered: the client authenticated.
    Served,
    /// Client authentication failed.
    FailedAuthentication,
    /// Refused for another reason.
    Refused,
}

/// Spends a `per_ip` cell and checks `per_client` and `failed_auth` without spending; the
/// admission, or the 429 (503 when a limit that refuses then cannot reach Redis).
pub(super) async fn admit(
    app: &App,
    req: &oauth::Request<'_>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Admission, Response> {
    let gateway = app.gateway();
    let limits = gateway.service_limits();
    let claimed = if limits.per_client.is_some() || limits.failed_auth.is_some() {
        oauth::claimed_client_id(req)
    } else {
        None
    };
    let mut admission = Admission {
        client: claimed
            .as_ref()
            .map(|id| [b"c".as_slice(), id.as_bytes()].concat()),
        address: address_key(gateway.trusted_proxies().client_address(peer, headers)),
        claimed,
        nearest: None,
    };
    let id = req.request_id;
    if let Some(limit) = &limits.per_ip {
        let address = admission.address.clone();
        if let Some(v) = checked(limit, &address, true, id).await? {
            if let Some(refused) = admission.refusal(limit, v, id) {
                return Err(refused);
            }
        }
    }
    if let (Some(limit), Some(client)) = (&limits.per_client, admission.client.clone()) {
        if let Some(v) = checked(limit, &client, false, id).await? {
            if let Some(refused) = admission.refusal(limit, v, id) {
                return Err(refused);
            }
        }
    }
    if let Some(refused) = locked_out(&gateway, &admission, false, id).await? {
        return Err(refused);
    }
    Ok(admission)
}

/// The 429 of a client or address past its failures, if either is: asked without spending,
/// or (`record`) while recording a failure. Audited once per key and period.
async fn locked_out(
    gateway: &gateway::Gateway,
    admission: &Admission,
    record: bool,
    id: &str,
) -> Result<Option<Response>, Response> {
    let limits = gateway.service_limits();
    let Some(limit) = &limits.failed_auth else {
        return Ok(None);
    };
    for key in admission.failure_keys() {
        let Some(v) = checked(limit, key, record, id).await? else {
            continue;
        };
        if !v.allowed {
            if !record {
                limit.counters.decided(false);
            }
            audit_lockout(gateway, limits, key, admission.claimed.as_deref(), id);
            return Ok(Some(admission.finish(too_many(limit, v.retry_after, id))));
        }
    }
    Ok(None)
}

/// Settles the request once answered: a failed authentication is recorded against the
/// address and the client, and any answer given past `failed_auth` (a race with other
/// attempts) becomes its 429; a served request spends its `per_client` cell; then the
/// response gets its `RateLimit` fields.
pub(super) async fn settle(
    app: &App,
    mut admission: Admission,
    ended: Ended,
    id: &str,
    response: Response,
) -> Response {
    let gateway = app.gateway();
    let limits = gateway.service_limits();
    let past = match ended {
        Ended::FailedAuthentication => locked_out(&gateway, &admission, true, id).await,
        Ended::Served => locked_out(&gateway, &admission, false, id).await,
        Ended::Refused => Ok(None),
    };
    match past {
        Ok(Some(refused)) | Err(refused) => return refused,
        Ok(None) => {}
    }
    if let (Some(limit), Some(client), Ended::Served) =
        (&limits.per_client, admission.client.clone(), &ended)
    {
        // Served already: an unavailable Redis only means this one is not counted.
        if let Ok(Some(v)) = checked(limit, &client, true, id).await {
            admission.note(limit, v);
        }
    }
    admission.finish(response)
}

/// One check: its verdict, `None` when Redis did not answer and the limit lets requests
/// through, the 503 when it refuses them then.
async fn checked(
    limit: &RateLimit,
    key: &[u8],
    spend: bool,
    id: &str,
) -> Result<Option<gateway::ratelimit::Verdict>, Response> {
    match limit.check_key(key, spend).await {
        Ok(Outcome::Checked(v)) => Ok(Some(v)),
        Ok(Outcome::Unavailable) => Ok(None),
        Err(_) => {
            let body = json!({
                "error": "temporarily_unavailable",
                "error_description": "the request cannot be admitted right now",
                "request_id": id,
            });
            let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(1u64));
            Err(response)
        }
    }
}

/// The 429: `Retry-After`, and the limit's name with the request id.
fn too_many(limit: &RateLimit, retry_after: std::time::Duration, id: &str) -> Response {
    let body = json!({
        "error": "rate_limited",
        "error_description": format!("rate limit {:?} reached", limit.name),
        "limit": limit.name,
        "request_id": id,
    });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    let seconds = ceil_seconds(retry_after).max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// One audit event per key per period for a client or address locked out by `failed_auth`.
fn audit_lockout(
    gateway: &gateway::Gateway,
    limits: &ServiceLimits,
    key: &[u8],
    claimed: Option<&str>,
    id: &str,
) {
    if !limits.first_refusal_in_period(key) {
        return;
    }
    let by_address = key.first() == Some(&b'a');
    let what = if by_address { "address" } else { "client" };
    let from = String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned();
    gateway.audit().record(store::AuditEvent {
        time: store::unix_now(),
        event: "client.auth_limited".into(),
        client_id: claimed.map(str::to_owned),
        outcome: "failure".into(),
        reason: Some(if by_address {
            format!("failed_auth limit reached for the {what} {from}")
        } else {
            format!("failed_auth limit reached for the {what}")
        }),
        request_id: Some(id.to_owned()),
        ..store::AuditEvent::default()
    });
}

/// The sign-in pages' limit: `[token_service.rate_limits] per_ip`, as at the token endpoint
/// (each page load, form and callback is one request of the address). Nothing there
/// authenticates a client, so nothing is counted per client or as a failed authentication.
pub(super) async fn per_address(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = req
        .extensions()
        .get::<super::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let peer = req
        .extensions()
        .get::<super::ConnInfo>()
        .and_then(|c| c.peer)
        .map(|a| a.ip());
    let headers = req.headers().clone();
    let unauthenticated = oauth::Request {
        content_type: None,
        authorization: Vec::new(),
        dpop: Vec::new(),
        accept: None,
        body: None,
        request_id: &id,
    };
    let admission = match admit(&app, &unauthenticated, &headers, peer).await {
        Ok(admission) => admission,
        Err(refused) => return refused,
    };
    let response = next.run(req).await;
    settle(&app, admission, Ended::Refused, &id, response).await
}
