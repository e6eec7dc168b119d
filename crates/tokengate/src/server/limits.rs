//! The token service's rate limits (`[token_service.rate_limits]`) around the token,
//! introspection and revocation endpoints: requests per address (`per_ip`), successful
//! requests per client (`per_client`), and failed client authentications per client and per
//! address (`failed_auth`).
//!
//! `failed_auth` spends a cell for every attempt before the secret is checked, and gives it
//! back when the attempt did not fail authentication: so attempts sent at once cannot all
//! pass before the first failure is counted, and a client or address past its failures gets
//! 429 even with the right secret until a cell comes back. Each such refusal is audited once
//! per period per key, not per attempt. `per_client` is checked before and spent after a
//! request the client authenticated for, so nobody can spend another client's budget by
//! naming its `client_id`.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use gateway::ratelimit::{
    address_key, ceil_seconds, Nearest, Outcome, RateLimit, ServiceLimits, Verdict,
};
use serde_json::json;

use super::{json_response, App};

/// What a token-service request is counted by, and what its admission spent.
pub(super) struct Admission {
    /// `c` and the `client_id` the request names, if it names one.
    client: Option<Vec<u8>>,
    /// The client's address key.
    address: Vec<u8>,
    claimed: Option<String>,
    nearest: Option<Nearest>,
    /// The `failed_auth` cells this attempt spent, given back unless authentication failed.
    attempt: Vec<Vec<u8>>,
}

impl Admission {
    /// The keys `failed_auth` counts: the client's (when the request names one) and the
    /// address's.
    fn failure_keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.client.iter().chain(std::iter::once(&self.address))
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
}

/// What became of the request, for what its admission spent.
pub(super) enum Ended {
    /// Answered: the client authenticated (and `per_client` counts it).
    Served,
    /// Client authentication failed: `failed_auth` keeps the cells the attempt spent.
    FailedAuthentication,
    /// Refused for another reason: nothing counts.
    Refused,
}

/// Spends a `per_ip` cell, checks `per_client` without spending, and spends a `failed_auth`
/// cell of the client and of the address; the admission, or the 429 (503 when a limit that
/// refuses then cannot reach Redis).
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
        attempt: Vec::new(),
    };
    let id = req.request_id;
    if let Some(limit) = &limits.per_ip {
        if let Some(v) = checked(limit, &admission.address, true, id).await? {
            admission.note(limit, v);
            if let Some(refused) = refusal(v, limit, &admission, id) {
                return Err(refused);
            }
        }
    }
    if let (Some(limit), Some(client)) = (&limits.per_client, admission.client.clone()) {
        if let Some(v) = checked(limit, &client, false, id).await? {
            if let Some(refused) = refusal(v, limit, &admission, id) {
                return Err(refused);
            }
        }
    }
    if let Some(limit) = &limits.failed_auth {
        admission.attempt = attempt(&gateway, limit, &admission, id).await?;
    }
    Ok(admission)
}

/// Spends a `failed_auth` cell of each of the attempt's keys; the keys spent, or the 429 of
/// a client or address past its failures (after giving back what this attempt spent).
async fn attempt(
    gateway: &gateway::Gateway,
    limit: &RateLimit,
    admission: &Admission,
    id: &str,
) -> Result<Vec<Vec<u8>>, Response> {
    let mut spent: Vec<Vec<u8>> = Vec::with_capacity(2);
    for key in admission.failure_keys() {
        let refused = match checked(limit, key, true, id).await {
            Ok(Some(v)) if !v.allowed => {
                let claimed = admission.claimed.as_deref();
                audit_lockout(gateway, gateway.service_limits(), key, claimed, id);
                admission.finish(too_many(limit, v.retry_after, id))
            }
            Ok(Some(_)) => {
                spent.push(key.clone());
                continue;
            }
            // Redis did not answer and the limit lets requests through: nothing spent.
            Ok(None) => continue,
            Err(unavailable) => unavailable,
        };
        for earlier in &spent {
            limit.refund_key(earlier).await;
        }
        return Err(refused);
    }
    Ok(spent)
}

/// The 429 for `limit`, unless `verdict` allowed the request.
fn refusal(
    verdict: Verdict,
    limit: &RateLimit,
    admission: &Admission,
    id: &str,
) -> Option<Response> {
    (!verdict.allowed).then(|| admission.finish(too_many(limit, verdict.retry_after, id)))
}

/// Settles what the admission spent once the request is answered: `failed_auth` keeps its
/// cells only for a failed authentication, `per_client` spends one for a served request;
/// then the response gets its `RateLimit` fields.
pub(super) async fn settle(
    app: &App,
    mut admission: Admission,
    ended: Ended,
    id: &str,
    response: Response,
) -> Response {
    let gateway = app.gateway();
    let limits = gateway.service_limits();
    if let Some(limit) = &limits.failed_auth {
        if !matches!(ended, Ended::FailedAuthentication) {
            for key in &admission.attempt {
                limit.refund_key(key).await;
            }
        }
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
