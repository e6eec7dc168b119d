//! `[[routes.auth.rules]]`: authorization rules per method, path and claim, checked in order
//! after the token is verified (the gateway's `authorize` module). Each rule is checked here
//! against its route: a path inside the route's own, known methods, valid scope tokens,
//! claim values a token can hold.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use gateway::authorize::AuthRule;
use gateway::route::PathMatch;

use super::values::Method;
use super::Failure;

/// One `[[routes.auth.rules]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The methods it applies to (default: any).
    pub methods: Option<Spanned<Vec<Spanned<Method>>>>,
    /// The paths it applies to, within the route's own (default: all of them).
    pub path_prefix: Option<Spanned<String>>,
    /// Scopes all required.
    #[serde(default)]
    pub scopes: Vec<Spanned<String>>,
    /// Claim values all required (a string, integer or boolean each).
    #[serde(default)]
    pub claims: BTreeMap<String, Spanned<toml::Value>>,
}

/// The route's rules, checked against its path matcher.
pub(super) fn rules(
    route: &str,
    written: &[RuleConfig],
    path: &PathMatch,
    case_sensitive: bool,
) -> Result<Vec<AuthRule>, Failure> {
    let mut out = Vec::with_capacity(written.len());
    for (i, rule) in written.iter().enumerate() {
        let what = format!("routes {route:?}: auth.rules[{}]", i + 1);
        out.push(AuthRule {
            methods: methods(rule, &what)?,
            path_prefix: match &rule.path_prefix {
                Some(p) => Some(prefix(p, path, case_sensitive, &what)?),
                None => None,
            },
            scopes: super::table::required(
                route,
                &format!("auth.rules[{}].scopes", i + 1),
                &rule.scopes,
                store::is_scope_token,
                "a valid scope token",
            )?,
            claims: super::limits::claim_values(&rule.claims, &format!("{what}: claims"))?,
        });
    }
    Ok(out)
}

fn methods(rule: &RuleConfig, what: &str) -> Result<Option<Vec<http::Method>>, Failure> {
    match &rule.methods {
        None => Ok(None),
        Some(m) if m.get_ref().is_empty() => Err((
            m.span(),
            format!("{what}: methods is empty, so the rule applies to nothing: leave it out for every method"),
        )),
        Some(m) => Ok(Some(m.get_ref().iter().map(|s| s.get_ref().0.clone()).collect())),
    }
}

/// A prefix ending with `/`, canonical, inside the route's path (a rule can only narrow it).
fn prefix(
    written: &Spanned<String>,
    route_path: &PathMatch,
    case_sensitive: bool,
    what: &str,
) -> Result<String, Failure> {
    let p = written.get_ref();
    let refuse = |why: String| Err((written.span(), format!("{what}: path_prefix {p:?} {why}")));
    if !p.starts_with('/') || !p.ends_with('/') {
        return refuse("must start and end with '/'".into());
    }
    if let Some(why) = super::table::not_a_plain_path(p) {
        return refuse(format!("is not a canonical path: {why}"));
    }
    let PathMatch::Prefix(route_prefix) = route_path else {
        return refuse(
            "needs a route with path_prefix: an exact path has nothing to narrow".into(),
        );
    };
    let inside = if case_sensitive {
        p.starts_with(route_prefix.as_str())
    } else {
        p.to_ascii_lowercase()
            .starts_with(&route_prefix.to_ascii_lowercase())
    };
    if !inside {
        return refuse(format!(
            "is not within the route's path_prefix {route_prefix:?}"
        ));
    }
    Ok(p.clone())
}
