//! The token service's rate limits (`[token_service.rate_limits]`) around the token,
//! introspection and revocation endpoints: requests per client and per address, and failed
//! client authentications per client and per address. A client or address past its
//! `failed_auth` limit gets 429 even with the right secret, until a cell comes back, so a
//! secret cannot be guessed at the speed of the network; each such refusal is audited once
//! per period per key, not per attempt.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use gateway::ratelimit::{ceil_seconds, Nearest, Outcome, RateLimit, ServiceLimits};
use serde_json::json;

use super::{json_response, App};

/// The keys a token-service request is counted by.
pub(super) struct Admission {
    client: Vec<u8>,
    address: Vec<u8>,
    claimed: Option<String>,
    nearest: Option<Nearest>,
}

impl Admission {
    /// The `RateLimit` fields of the limit nearest to running out, on any response.
    pub(super) fn finish(&self, mut response: Response) -> Response {
        if let Some(nearest) = &self.nearest {
            nearest.set_fields(response.headers_mut());
        }
        response
    }
}

/// Checks `per_ip` and `per_client` (spending a cell of each) and whether the client or the
/// address is past `failed_auth` (spending nothing): the request's keys to count a failed
/// authentication against afterwards, or the 429 (503 when a limit that refuses then cannot
/// reach Redis).
pub(super) async fn admit(
    app: &App,
    req: &oauth::Request<'_>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Admission, Response> {
    let gateway = app.gateway();
    let limits = gateway.service_limits();
    let client_ip = gateway.trusted_proxies().client_address(peer, headers);
    let address = match client_ip {
        Some(ip) => format!("a{ip}").into_bytes(),
        None => b"a?".to_vec(),
    };
    let claimed = if limits.per_client.is_some() || limits.failed_auth.is_some() {
        oauth::claimed_client_id(req)
    } else {
        None
    };
    let client = match &claimed {
        Some(id) => [b"c".as_slice(), id.as_bytes()].concat(),
        // A request that names no client is counted by its address, never in one bucket.
        None => address.clone(),
    };
    let mut admission = Admission {
        client,
        address,
        claimed,
        nearest: None,
    };
    let id = req.request_id;
    for (limit, key) in [
        (&limits.per_ip, &admission.address),
        (&limits.per_client, &admission.client),
    ] {
        if let Some(limit) = limit {
            let verdict = checked(limit, key, true, id).await?;
            if let Some(v) = verdict {
                let nearest = Nearest::closer(admission.nearest.take(), limit, v);
                admission.nearest = Some(nearest);
                if !v.allowed {
                    return Err(admission.finish(too_many(limit, v.retry_after, id)));
                }
            }
        }
    }
    if let Some(limit) = &limits.failed_auth {
        for key in [&admission.client, &admission.address] {
            let Some(v) = checked(limit, key, false, id).await? else {
                continue;
            };
            if !v.allowed {
                limit.counters.decided(false);
                audit_lockout(&gateway, limits, key, admission.claimed.as_deref(), id);
                return Err(admission.finish(too_many(limit, v.retry_after, id)));
            }
        }
    }
    Ok(admission)
}

/// Counts a failed client authentication against the client and the address.
pub(super) async fn failed_authentication(app: &App, admission: &Admission, id: &str) {
    let gateway = app.gateway();
    let Some(limit) = &gateway.service_limits().failed_auth else {
        return;
    };
    for key in [&admission.client, &admission.address] {
        // A refusal here needs no answer: the failure already has its response, and the
        // next attempt is refused by `admit`.
        let _ = checked(limit, key, true, id).await;
    }
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
