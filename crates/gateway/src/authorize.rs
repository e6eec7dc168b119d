//! The authorize phase: whether the authenticated token may do this request on this route.
//! After authentication (only a verified token's claims are worth checking), before any
//! work for the request (rate limits, cache, upstream): the route's required scopes, then
//! its rules (`[[routes.auth.rules]]`), the first whose methods and path match deciding,
//! and none matching refusing (deny by default).

use http::Method;
use serde_json::Value;

use crate::auth::{Denial, RouteAuth, Verified};
use crate::route::Route;

/// One authorization rule: for requests with one of `methods` (any, when `None`) under
/// `path_prefix` (the route's whole path, when `None`), the token must carry every scope of
/// `scopes` and every claim value of `claims`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRule {
    /// The methods it applies to; `None` for any.
    pub methods: Option<Vec<Method>>,
    /// The paths it applies to (a prefix ending with `/`, which also covers the bare path);
    /// `None` for all of the route's.
    pub path_prefix: Option<String>,
    /// Scopes all required.
    pub scopes: Vec<String>,
    /// Claim values all required: equal, or among the claim's values when it is an array.
    pub claims: Vec<(String, Value)>,
}

impl AuthRule {
    /// Whether the rule applies: a rule for `GET` applies to `HEAD` too, since upstreams
    /// answer `HEAD` with their `GET` handler.
    fn applies(&self, route: &Route, method: &Method, path: &str) -> bool {
        let head_as_get = *method == Method::HEAD;
        self.methods
            .as_ref()
            .is_none_or(|m| m.contains(method) || (head_as_get && m.contains(&Method::GET)))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| route.is_under(path, prefix))
    }
}

/// Refuses a token that lacks one of the route's required scopes (403 naming them all), then
/// one that the first applicable rule refuses (403 `insufficient_scope` naming the rule's
/// scopes, so a client can step up, or `access_denied` for its claims), or that no rule
/// applies to when the route has rules.
pub fn authorize(
    route: &Route,
    auth: &RouteAuth,
    verified: &Verified,
    method: &Method,
    path: &str,
) -> Result<(), Denial> {
    require_scopes(&auth.required_scopes, verified)?;
    if auth.rules.is_empty() {
        return Ok(());
    }
    let Some((index, rule)) = auth
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.applies(route, method, path))
    else {
        return Err(Denial::AccessDenied(
            "no rule applies to the request".into(),
        ));
    };
    // Claims first: a claim not held is not something a new token with more scopes fixes.
    if let Some((name, _)) = rule
        .claims
        .iter()
        .find(|(name, want)| !claim_holds(verified, name, want))
    {
        return Err(Denial::AccessDenied(format!(
            "rule {} requires the claim {name:?}",
            index + 1
        )));
    }
    if rule.scopes.iter().all(|s| verified.scopes.contains(s)) {
        return Ok(());
    }
    // The challenge names all this request needs, the route's scopes with the rule's, so
    // that a client asking for exactly those gets a token that passes both.
    let mut needed = auth.required_scopes.clone();
    needed.extend(
        rule.scopes
            .iter()
            .filter(|s| !auth.required_scopes.contains(s))
            .cloned(),
    );
    Err(Denial::InsufficientScope {
        scope: needed.join(" "),
    })
}

/// 403 `insufficient_scope` naming `scopes` when the token lacks one of them.
fn require_scopes(scopes: &[String], verified: &Verified) -> Result<(), Denial> {
    if scopes.iter().all(|s| verified.scopes.contains(s)) {
        Ok(())
    } else {
        Err(Denial::InsufficientScope {
            scope: scopes.join(" "),
        })
    }
}

/// Whether a claim holds `want`: equal, or among its values when it is an array.
pub fn claim_holds(verified: &Verified, name: &str, want: &Value) -> bool {
    match verified.claims.get(name).ok().flatten() {
        Some(Value::Array(values)) => values.contains(want),
        Some(value) => value == want,
        None => false,
    }
}
