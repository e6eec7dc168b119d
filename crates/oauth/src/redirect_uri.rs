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
    for uri in uris {
        check(uri).map_err(|why| format!("redirect URI {uri:?}: {why}"))?;
    }
    Ok(())
}

/// One redirect URI: absolute, without a fragment or user information, and either `https`,
/// `http` on a loopback address (an app on the user's machine, RFC 8252 §7.3), or an app's
/// private-use scheme named after a domain it owns (`com.example.app:/cb`, RFC 8252 §7.1).
fn check(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_LEN {
        return Err("longer than 2000 bytes");
    }
    let url = Url::parse(uri).map_err(|_| "not an absolute URI")?;
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
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("http is allowed on loopback addresses only (127.0.0.1, [::1], localhost)"),
        scheme if scheme.contains('.') && url.host().is_none() => Ok(()),
        _ => Err("the scheme must be https, http on loopback, or a private-use scheme with a dot (com.example.app)"),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
fn is_loopback(url: &Url) -> bool {
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
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_uri_is_checked_and_their_number_bounded() {
        let good = "https://app.example/cb".to_owned();
        assert_eq!(check_all(&[]), Ok(()));
        assert_eq!(check_all(&vec![good.clone(); MAX_REDIRECT_URIS]), Ok(()));
        assert!(check_all(&vec![good.clone(); MAX_REDIRECT_URIS + 1]).is_err());
        let err = check_all(&[good, "http://app.example/cb".into()]).unwrap_err();
        assert!(err.contains("http://app.example/cb"), "{err}");
    }
}
