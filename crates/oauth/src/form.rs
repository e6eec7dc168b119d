//! `application/x-www-form-urlencoded` bodies, parsed strictly: a bad percent-escape, bytes
//! that are not UTF-8 and a repeated parameter (RFC 6749 §3.1) are errors, not guesses.

use crate::protocol::{invalid_request, ErrorResponse};

/// The largest body the endpoints read (the HTTP layer enforces it; parameters are short).
pub const MAX_BODY: usize = 64 * 1024;

/// The parameters of a form body. Empty values count as absent (RFC 6749 §3.1).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Checks the request's content type and parses its body. Only the parameters named in
    /// `repeatable` (RFC 8707 `resource`) may appear more than once.
    pub fn from_request(
        content_type: Option<&str>,
        body: Option<&[u8]>,
        repeatable: &[&str],
    ) -> Result<Params, ErrorResponse> {
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body =
            body.ok_or_else(|| invalid_request("the body is too large or did not arrive in time"))?;
        Params::parse(body, repeatable)
    }

    /// Parses a body; see [`Params::from_request`].
    pub fn parse(body: &[u8], repeatable: &[&str]) -> Result<Params, ErrorResponse> {
        Params::parse_in(body, repeatable, "the body")
    }

    /// Parses a URL's query string (the authorization endpoint's parameters) by the same
    /// rules as a body.
    pub fn parse_query(query: &[u8], repeatable: &[&str]) -> Result<Params, ErrorResponse> {
        Params::parse_in(query, repeatable, "the query")
    }

    /// Parses `bytes`, naming them `what` in errors.
    fn parse_in(bytes: &[u8], repeatable: &[&str], what: &str) -> Result<Params, ErrorResponse> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for part in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (
                    part.get(..i).unwrap_or_default(),
                    part.get(i + 1..).unwrap_or_default(),
                ),
                None => (part, &[][..]),
            };
            let name = decode_in(name, what)?;
            let value = decode_in(value, what)?;
            if value.is_empty() {
                continue;
            }
            if !seen.insert(name.clone()) && !repeatable.contains(&name.as_str()) {
                return Err(invalid_request(format!("the parameter {name} is repeated")));
            }
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    /// The value of a parameter that appears at most once.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, ErrorResponse> {
        self.get(name)
            .ok_or_else(|| invalid_request(format!("the parameter {name} is missing")))
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8 (the
/// WHATWG form decoder replaces bad input silently, which here would hide a client bug).
pub(crate) fn decode(raw: &[u8]) -> Result<String, ErrorResponse> {
    decode_in(raw, "the body")
}

/// [`decode`], naming the bytes `what` in errors.
fn decode_in(raw: &[u8], what: &str) -> Result<String, ErrorResponse> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| (*c as char).to_digit(16));
                let lo = bytes.next().and_then(|c| (*c as char).to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(invalid_request(format!("a bad percent-escape in {what}"))),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| invalid_request(format!("{what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let p = Params::parse(b"grant_type=client_credentials&scope=a+b%20c&x=&y", &[]).unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a b c"));
        assert_eq!(p.get("x"), None);
        assert_eq!(p.get("y"), None);
    }

    #[test]
    fn refuses_repeats_bad_escapes_and_non_utf8() {
        assert_eq!(
            Params::parse(b"a=1&a=2", &[]).unwrap_err(),
            invalid_request("the parameter a is repeated")
        );
        let p = Params::parse(b"resource=1&resource=2", &["resource"]).unwrap();
        assert_eq!(p.all("resource"), ["1", "2"]);
        let bad_escape = invalid_request("a bad percent-escape in the body");
        assert_eq!(Params::parse(b"a=%zz", &[]).unwrap_err(), bad_escape);
        assert_eq!(Params::parse(b"a=%4", &[]).unwrap_err(), bad_escape);
        assert_eq!(
            Params::parse(b"a=%ff", &[]).unwrap_err(),
            invalid_request("the body is not UTF-8")
        );
    }

    #[test]
    fn checks_the_content_type() {
        let form = Some("application/x-www-form-urlencoded; charset=UTF-8");
        let p = Params::from_request(form, Some(b"a=1"), &[]).unwrap();
        assert_eq!(p.get("a"), Some("1"));
        let not_a_form = invalid_request("the body must be application/x-www-form-urlencoded");
        assert_eq!(
            Params::from_request(Some("application/json"), Some(b"a=1"), &[]).unwrap_err(),
            not_a_form
        );
        assert_eq!(
            Params::from_request(None, Some(b"a=1"), &[]).unwrap_err(),
            not_a_form
        );
        assert_eq!(
            Params::from_request(form, None, &[]).unwrap_err(),
            invalid_request("the body is too large or did not arrive in time")
        );
    }
}
