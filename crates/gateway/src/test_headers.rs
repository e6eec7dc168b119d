//! Header maps for the phases' tests.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header map of `pairs`, appended in order (a name given twice has two field lines).
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The names in `h`, sorted.
pub(crate) fn names(h: &HeaderMap) -> Vec<&str> {
    let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    n.sort_unstable();
    n
}
