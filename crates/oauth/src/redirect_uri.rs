//! Which redirect URIs a client may register (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1):
//! where the authorization endpoint may send a user's browser with a code, so anything
//! vague is refused here, once, rather than guessed at on every authorization request.

use std::net::IpAddr;

use url::{Host, Url};

/// At most this many redirect URIs per client.
pub const MAX_REDIRECT_URIS: usize = 10;
/// At most this many bytes per redirect URI.
const MAX_LEN: usize = 2000;

/// Checks a client's redirect URIs; `Err` says which one is refused and why.
pub fn check_all(uris: &[String]) -> Result<(), String> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs per client"
        ));
    }
    for (i, uri) in uris.iter().enumerate() {
        let named = || {
            let shown: String = uri.chars().take(100).collect();
            format!("redirect URI {shown:?}")
        };
        check(uri).map_err(|why| format!("{}: {why}", named()))?;
        if uris.get(..i).is_some_and(|before| before.contains(uri)) {
            return Err(format!("{}: given twice", named()));
        }
    }
    Ok(())
}

/// One redirect URI: absolute, without a fragment or user information, and either `https`,
/// `http` on a loopback address (an app on the user's machine, RFC 8252 §7.3), or an app's
/// private-use scheme named after a domain it owns (`com.example.app:/cb`, RFC 8252 §7.1).
/// It must be written as a URL parser writes it back, byte for byte, so that what is
/// checked is what is matched and redirected to: no spaces or control characters, no `\`,
/// no `https:host` without `//`, no empty `@`, lowercase scheme and host, punycode for a
/// non-ASCII host.
fn check(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_LEN {
        return Err("longer than 2000 bytes".into());
    }
    let url = Url::parse(uri).map_err(|_| "not an absolute URI".to_owned())?;
    if url.as_str() != uri {
        return Err(format!(
            "not written as a URL parser writes it back ({:?}): write it that way, if that is \
             the one meant",
            url.as_str()
        ));
    }
    check_parts(&url, uri).map_err(str::to_owned)
}

fn check_parts(url: &Url, uri: &str) -> Result<(), &'static str> {
    if uri.contains('#') {
        return Err("a fragment is not allowed (RFC 6749 §3.1.2)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user information (user@host) is not allowed");
    }
    if uri.contains('*') {
        return Err("wildcards are not allowed: redirect URIs are matched exactly");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("http is allowed on loopback addresses only (127.0.0.1, [::1], localhost)"),
        scheme if scheme.contains('.') && url.host().is_none() => Ok(()),
        _ => Err("the scheme must be https, http on loopback, or a private-use scheme with a dot (com.example.app)"),
    }
}

/// Whether `presented` (an authorization request's `redirect_uri`) is `registered`: the same
/// string, or for a registered `http` loopback URI the same but for the port (RFC 8252 §7.3:
/// a native app listens on whatever port it was given when it started). Nothing else is
/// normalised: not case, not a trailing slash, not percent-encoding (RFC 9700 §4.1.3).
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(mut registered), Ok(mut presented_url)) =
        (Url::parse(registered), Url::parse(presented))
    else {
        return false;
    };
    // Compared as the parser writes them back, so the presented one must be written that
    // way too: what is matched is what is redirected to.
    if registered.scheme() != "http"
        || !is_loopback(&registered)
        || presented_url.as_str() != presented
    {
        return false;
    }
    registered.set_port(None).is_ok()
        && presented_url.set_port(None).is_ok()
        && registered == presented_url
}

/// Whether the URL's host is a loopback address (127.0.0.0/8, `::1`) or `localhost`. RFC
/// 8252 §8.3 prefers the address to the name, but MCP clients and their SDKs register
/// `http://localhost:PORT/…`, so the name is accepted too.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for ok in [
            "https://app.example/callback",
            "https://app.example:8443/cb?tenant=a",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53123/callback",
            "http://[::1]:8080/cb",
            "http://localhost:6274/oauth/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app:callback",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refused() {
        let long = format!("https://app.example/{}", "a".repeat(2000));
        for bad in [
            "/callback",
            "app.example/callback",
            "https://app.example/cb#frag",
            "https://app.example/cb#",
            "https://user@app.example/cb",
            "https://user:pw@app.example/cb",
            "https://*.app.example/cb",
            "http://app.example/cb",
            "http://127.0.0.1.app.example/cb",
            "http://localhost.app.example/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://app.example/cb",
            "com.example.app://host/cb",
            long.as_str(),
            // Strings a parser would change: what is checked must be what is matched.
            " https://app.example/cb",
            "https://app.example/c\nb",
            "https://app.example/c\tb",
            "https://app.example\\cb",
            "https:app.example/cb",
            "https:/app.example/cb",
            "https://@app.example/cb",
            "https://:@app.example/cb",
            "HTTPS://app.example/cb",
            "https://APP.example/cb",
            "https://app.example",
            "https://xn--bcher-kva.example/cb/../x",
            "https://bücher.example/cb",
            "https://app%2eexample/cb",
            "http://127.1/cb",
            "http://0x7f.0.0.1/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "http://localhost./cb",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        let err = check("https://APP.example/cb").unwrap_err();
        assert!(err.contains("\"https://app.example/cb\""), "{err}");
    }

    #[test]
    fn every_uri_is_checked_and_their_number_bounded() {
        let good = |i: usize| format!("https://app.example/cb{i}");
        assert_eq!(check_all(&[]), Ok(()));
        let ten: Vec<String> = (0..MAX_REDIRECT_URIS).map(good).collect();
        assert_eq!(check_all(&ten), Ok(()));
        let eleven: Vec<String> = (0..=MAX_REDIRECT_URIS).map(good).collect();
        assert!(check_all(&eleven).is_err());
        let err = check_all(&[good(0), "http://app.example/cb".into()]).unwrap_err();
        assert!(err.contains("http://app.example/cb"), "{err}");
        let err = check_all(&[good(0), good(1), good(0)]).unwrap_err();
        assert!(err.ends_with("given twice"), "{err}");
        // A refused long URI is named by its start, not quoted whole.
        let long = format!("https://app.example/{}", "a".repeat(3000));
        assert!(check_all(&[long]).unwrap_err().len() < 200);
    }

    #[test]
    fn redirect_uris_match_exactly_but_for_a_loopback_port() {
        for (registered, presented) in [
            ("https://app.example/cb", "https://app.example/cb"),
            (
                "https://app.example/cb?tenant=a",
                "https://app.example/cb?tenant=a",
            ),
            ("com.example.app:/cb", "com.example.app:/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:53123/cb"),
            ("http://127.0.0.1:8080/cb", "http://127.0.0.1:53123/cb"),
            ("http://127.0.0.1:8080/cb", "http://127.0.0.1/cb"),
            ("http://[::1]/cb", "http://[::1]:1/cb"),
            (
                "http://localhost:6274/oauth/callback",
                "http://localhost:7000/oauth/callback",
            ),
        ] {
            assert!(matches(registered, presented), "{registered} {presented}");
        }
        for (registered, presented) in [
            ("https://app.example/cb", "https://app.example/cb/"),
            ("https://app.example/cb", "https://APP.example/cb"),
            ("https://app.example/cb", "https://app.example/cb?x=1"),
            ("https://app.example/cb", "https://app.example:443/cb"),
            ("https://app.example/cb", "https://app.example:8443/cb"),
            ("https://app.example/cb", "https://app.example/%63b"),
            ("https://app.example/cb", "https://app.example/cb#x"),
            // The port is free on loopback http only, and nothing else is.
            ("https://127.0.0.1/cb", "https://127.0.0.1:8443/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.2:80/cb"),
            ("http://127.0.0.1/cb", "http://localhost:5000/cb"),
            ("http://localhost/cb", "http://127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb2"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb?x=1"),
            ("http://127.0.0.1/cb", "http://evil@127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "https://127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb#x"),
            // Written otherwise than a parser writes it back.
            ("http://127.0.0.1/cb", "HTTP://127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:05000/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/./cb"),
            ("http://127.0.0.1/cb", "not a uri"),
        ] {
            assert!(!matches(registered, presented), "{registered} {presented}");
        }
    }
}
