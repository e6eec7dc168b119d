//! The authorize phase: whether the authenticated token may do this request on this route.
//! After authentication (only a verified token's claims are worth checking), before any
//! work for the request (rate limits, cache, upstream). Today: the route's required scopes;
//! rules per method, path and claim come with the authorization-rules issue.

use crate::auth::{Denial, RouteAuth, Verified};

/// Refuses a token that lacks one of the route's required scopes (403, naming them all).
pub fn authorize(auth: &RouteAuth, verified: &Verified) -> Result<(), Denial> {
    let has_all = auth
        .required_scopes
        .iter()
        .all(|s| verified.scopes.contains(s));
    if has_all {
        Ok(())
    } else {
        Err(Denial::InsufficientScope {
            scope: auth.required_scopes.join(" "),
        })
    }
}
