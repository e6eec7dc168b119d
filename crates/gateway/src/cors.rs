//! CORS (the Fetch standard's CORS protocol) for a route (`[routes.cors]`) or the token
//! service (`[token_service.cors]`): preflights answered by the gateway, right after routing
//! and before any token is asked for (a browser sends none with them); actual responses,
//! refusals included, given `Access-Control-Allow-Origin` only for an allowed origin. A
//! disallowed origin gets no CORS field at all (the browser then withholds the response from
//! the page) and its request is otherwise unchanged. The gateway answers for CORS on such a
//! route: the upstream's own `Access-Control-*` fields are dropped.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};

use crate::ResponseBody;

/// The origins a policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowOrigins {
    /// Any origin (`"*"`; never with credentials).
    Any,
    /// These origins exactly (`scheme://host[:port]`, as browsers serialise them).
    List(Vec<String>),
}

/// A CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Origins allowed.
    pub allow_origins: AllowOrigins,
    /// Methods a preflight may ask for.
    pub allow_methods: Vec<Method>,
    /// Request headers a preflight may ask for (lowercase).
    pub allow_headers: Vec<HeaderName>,
    /// Response headers the page may read.
    pub expose_headers: Vec<HeaderName>,
    /// How long a browser may keep a preflight's answer.
    pub max_age: Duration,
    /// Whether credentials (cookies, HTTP authentication) may be sent.
    pub allow_credentials: bool,
}

static REQUEST_METHOD: HeaderName = HeaderName::from_static("access-control-request-method");
static REQUEST_HEADERS: HeaderName = HeaderName::from_static("access-control-request-headers");

/// The method a CORS preflight asks for: an `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`; `None` for any other request.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    let requested = headers.get(&REQUEST_METHOD)?.to_str().ok()?;
    Method::from_bytes(requested.trim().as_bytes()).ok()
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for the request's `Origin`, when allowed:
    /// the origin itself (a list, or `"*"` policies with credentials are refused by the
    /// configuration), or `*`.
    fn allowed_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.allow_origins {
            // Static: the same answer with or without `Origin`, so a shared cache that kept
            // an answer to a request without one still serves browsers a readable one.
            AllowOrigins::Any => Some(HeaderValue::from_static("*")),
            AllowOrigins::List(list) => list
                .iter()
                .any(|o| origin.is_some_and(|got| o.as_bytes() == got.as_bytes()))
                .then(|| origin.cloned())
                .flatten(),
        }
    }

    /// The answer to a preflight for `requested`: 204 with what the policy allows, or 403
    /// without any CORS field when the origin, the method or a requested header is not
    /// allowed.
    pub fn preflight(&self, headers: &HeaderMap, requested: &Method) -> Response<ResponseBody> {
        let origin = self.allowed_origin(headers.get(header::ORIGIN));
        // The CORS-safelisted methods are always allowed, as browsers treat them.
        let method_ok = self.allow_methods.contains(requested)
            || [Method::GET, Method::HEAD, Method::POST].contains(requested);
        let headers_ok = requested_headers(headers).all(|name| {
            self.allow_headers
                .iter()
                .any(|a| a.as_str().eq_ignore_ascii_case(name))
        });
        let mut response =
            Response::new(Empty::<Bytes>::new().map_err(|n| match n {}).boxed_unsync());
        let allowed = origin.filter(|_| method_ok && headers_ok);
        *response.status_mut() = if allowed.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::FORBIDDEN
        };
        let h = response.headers_mut();
        h.insert(
            header::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        let Some(origin) = allowed else {
            return response;
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(v) = joined(self.allow_methods.iter().map(Method::as_str)) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = joined(self.allow_headers.iter().map(HeaderName::as_str)) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age.as_secs()),
        );
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    /// An actual response to a request from `origin`: the upstream's CORS fields dropped,
    /// `Vary: Origin` added, and, for an allowed origin, `Access-Control-Allow-Origin`, the
    /// exposed headers and the credentials flag.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        for name in [
            &header::ACCESS_CONTROL_ALLOW_ORIGIN,
            &header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            &header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &header::ACCESS_CONTROL_ALLOW_METHODS,
            &header::ACCESS_CONTROL_ALLOW_HEADERS,
            &header::ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
        if self.allow_origins != AllowOrigins::Any {
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
        let Some(allowed) = self.allowed_origin(origin) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if let Some(v) = joined(self.expose_headers.iter().map(HeaderName::as_str)) {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// The header names a preflight asks for (`Access-Control-Request-Headers`, comma-separated,
/// possibly over several lines).
fn requested_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(&REQUEST_HEADERS)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// `a, b, c`; `None` for none.
fn joined<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let text = items.collect::<Vec<_>>().join(", ");
    (!text.is_empty())
        .then(|| HeaderValue::from_str(&text).ok())
        .flatten()
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
