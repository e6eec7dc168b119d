//! The HTML pages of user sign-in: the error page, the development sign-in page and the
//! consent page. Plain server-rendered forms, no script: every value that came from a
//! request, a client's registration or a user is escaped (`html-escape`) where it is put,
//! and every page goes out with headers that keep it from being framed, cached or leaking
//! its URL.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

/// No script, no plugin, no framing (consent must not be clickjacked: RFC 6749 §10.13), no
/// `<base>`; the one inline style sheet is allowed. `form-action` is left open: browsers
/// apply it to the redirect after a form is posted, and consent redirects to the client.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}label,input,button{font-size:1rem}input{padding:.4rem;width:100%;\
box-sizing:border-box}button{padding:.5rem 1.2rem;margin:.5rem .5rem 0 0}\
.dev{background:#fff3cd;border:1px solid #b58100;padding:.5rem 1rem}code{word-break:break-all}";

/// A whole page: `body` is HTML already escaped by its maker.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        text(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    response
}

/// The headers of every sign-in response, pages and redirects alike.
pub(super) fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// An error shown to the user (never redirected: the client or its redirect URI is not
/// verified, or the session is gone), with the request id operators can look up.
pub(super) fn error(status: StatusCode, code: &str, description: &str, id: &str) -> Response {
    let body = format!(
        "<h1>Sign-in failed</h1><p>{}</p><p>Error <code>{}</code>. Request id <code>{}</code>.</p>\
         <p>Go back to the application and start again.</p>",
        text(description),
        text(code),
        text(id)
    );
    page(status, "Sign-in failed", &body)
}

/// The development sign-in page: a user name only, and a warning that says what it is.
pub(super) fn dev_sign_in(
    action: &str,
    csrf: &str,
    client: &str,
    problem: Option<&str>,
) -> Response {
    let problem = problem
        .map(|p| format!("<p role=\"alert\"><strong>{}</strong></p>", text(p)))
        .unwrap_or_default();
    let body = format!(
        "<p class=\"dev\"><strong>Development sign-in.</strong> Anyone can sign in as anyone \
         here: <code>tokengate dev</code> only, never in production.</p>\
         <h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{problem}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label for=\"username\">User name</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus \
         maxlength=\"{max}\"></p>\
         <button type=\"submit\">Sign in</button></form>",
        client = text(client),
        action = attr(action),
        csrf = attr(csrf),
        max = oauth::sign_in::MAX_DEV_USER,
    );
    page(StatusCode::OK, "Sign in (development)", &body)
}

/// What the consent page names.
pub(super) struct ConsentView<'a> {
    pub action: &'a str,
    pub csrf: &'a str,
    pub user: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scope: &'a [String],
    /// Registered by an operator; otherwise the page says the client registered itself.
    pub first_party: bool,
    /// Where the code will be sent (the redirect URI's host, or its scheme for an app).
    pub destination: &'a str,
}

/// A URL's host, and port when not the scheme's default, as the consent page names a place.
pub(super) fn host_and_port(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The host of a client known by its metadata document (its `client_id` is the document's
/// URL): who vouches for the name shown.
fn document_host(client_id: &str) -> Option<String> {
    let url = url::Url::parse(client_id).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    host_and_port(&url)
}

/// The consent page: the client, the resource and the scopes, and two buttons named
/// `approve` and `deny` (scripts and tests submit one or the other).
pub(super) fn consent(view: &ConsentView<'_>) -> Response {
    let scopes: String = if view.scope.is_empty() {
        "<li>no particular scope</li>".to_owned()
    } else {
        view.scope
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", text(s)))
            .collect()
    };
    let stranger = match (view.first_party, document_host(view.client_id)) {
        (true, _) => String::new(),
        (false, Some(host)) => format!(
            "<p role=\"note\"><strong>This application describes itself in a document at \
             <code>{}</code>:</strong> its name is its own claim, not checked by the operator. \
             Allow it only if you started it and trust that site.</p>",
            text(&host)
        ),
        (false, None) => "<p role=\"note\"><strong>This application registered itself:</strong> \
             its name is its own claim, not checked by the operator. Allow it only if you \
             started it.</p>"
            .to_owned(),
    };
    let body = format!(
        "<h1>Allow access?</h1>{stranger}\
         <p><strong>{name}</strong> (client <code>{id}</code>, returning to \
         <code>{destination}</code>) asks to act as \
         <strong>{user}</strong> at <code>{audience}</code> with:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"approve\" value=\"yes\">Allow</button>\
         <button type=\"submit\" name=\"deny\" value=\"yes\">Deny</button></form>",
        name = text(view.client_name),
        id = text(view.client_id),
        user = text(view.user),
        audience = text(view.audience),
        destination = text(view.destination),
        action = attr(view.action),
        csrf = attr(view.csrf),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// Where `tokengate dev`'s browser client ends: the access token and its claims (read, not
/// verified: the token was just issued by this server; an encrypted one is opaque here).
pub(super) fn dev_signed_in(token: &str, issuer: &str) -> Response {
    let claims = match jose::jwt::decode_unverified(token) {
        Ok((_, claims)) => {
            serde_json::to_string_pretty(&serde_json::Value::Object(claims)).unwrap_or_default()
        }
        Err(_) => "(an encrypted token: only its audience can read the claims)".to_owned(),
    };
    let body = format!(
        "<p class=\"dev\"><strong>Development client.</strong> <code>tokengate dev</code> \
         signed you in with its own browser client.</p>\
         <h1>Signed in</h1><p>The access token's claims:</p><pre>{claims}</pre>\
         <p>The token (call the demo API with it: <code>curl -H \"Authorization: Bearer …\" \
         {issuer}/api/rates</code>):</p><p><code>{token}</code></p>",
        claims = text(&claims),
        issuer = text(issuer),
        token = text(token),
    );
    page(StatusCode::OK, "Signed in (development)", &body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn everything_interpolated_is_escaped() {
        let hostile = "<script>alert(1)</script>\"'&";
        let scope = [hostile.to_owned()];
        let view = ConsentView {
            action: "/x\"><script>",
            csrf: "\"><img src=x>",
            user: hostile,
            client_name: hostile,
            client_id: hostile,
            audience: hostile,
            scope: &scope,
            first_party: false,
            destination: hostile,
        };
        let response = consent(&view);
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            CSP,
            "no script may run"
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let html = body(response).await;
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("name=\"approve\"") && html.contains("name=\"deny\""));
        assert!(
            html.contains("registered itself"),
            "a third party is labelled: {html}"
        );

        // A client known by its document: the page names the site that vouches for it.
        let document_client = ConsentView {
            client_id: "https://app.example/<b>/client.json",
            ..view
        };
        let html = body(consent(&document_client)).await;
        assert!(
            html.contains("describes itself in a document at <code>app.example</code>"),
            "{html}"
        );

        let html = body(dev_sign_in("/a\"b", "c\"d", hostile, Some(hostile))).await;
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("value=\"c&quot;d\""), "{html}");
        let html = body(error(StatusCode::BAD_REQUEST, "x", hostile, "<id>")).await;
        assert!(
            !html.contains("<script") && !html.contains("<id>"),
            "{html}"
        );
    }
}
