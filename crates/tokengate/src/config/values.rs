//! Typed values of the configuration that are parsed while the TOML is read, so that a bad
//! one is refused with its file, line and column, and the gateway is built from values that
//! cannot be wrong: nothing is parsed a second time at boot, and nothing is dropped there.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

/// An HTTP method (`methods = ["get", "POST"]`; any case, stored upper-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub http::Method);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        http::Method::from_bytes(text.to_ascii_uppercase().as_bytes())
            .map(Method)
            .map_err(|_| D::Error::custom(format!("{text:?} is not an HTTP method")))
    }
}

/// An address range (`[server] trusted_proxies`): CIDR (`10.0.0.0/8`, `2001:db8::/32`) or
/// one address (`192.0.2.10`, a /32 or /128). Host bits set below the prefix are refused:
/// `10.1.2.3/8` is more likely a typo than a wish to trust all of 10/8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            return Ok(IpRange(ipnet::IpNet::from(ip)));
        }
        let net = text.parse::<ipnet::IpNet>().map_err(|_| {
            D::Error::custom(format!(
                "{text:?} is not an address range (10.0.0.0/8) or an address"
            ))
        })?;
        if net.prefix_len() == 0 {
            return Err(D::Error::custom(format!(
                "{text:?} trusts every address, so any client could write its own \
                 X-Forwarded-For; list the proxies' addresses"
            )));
        }
        if net.trunc() != net {
            return Err(D::Error::custom(format!(
                "{text:?} has host bits set below its prefix: write {}",
                net.trunc()
            )));
        }
        Ok(IpRange(net))
    }
}

/// An amount of memory (`token_cache_memory = "32MB"`): bytes as a number, or a number
/// with `KB`, `MB` or `GB` (powers of 1024, as nginx reads `k` and `m`; `KiB`, `MiB`, `GiB`
/// too). Never zero: a cache of nothing would be a silent way to turn it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "kb" | "kib" | "k" => 10,
            "mb" | "mib" | "m" => 20,
            "gb" | "gib" | "g" => 30,
            _ => return None,
        };
        n.checked_mul(1u64 << shift)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        let bytes = match Raw::deserialize(d)? {
            Raw::Bytes(n) => Some(n),
            Raw::Text(s) => ByteSize::parse(&s),
        };
        match bytes {
            Some(0) => Err(D::Error::custom("a size must be more than 0")),
            Some(n) => Ok(ByteSize(n)),
            None => Err(D::Error::custom(
                "a size is a number of bytes or a number with KB, MB or GB (\"32MB\")",
            )),
        }
    }
}

/// A header name (`request_headers.remove`, the keys of `request_headers.set`,
/// `forward_claims` values), lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub http::HeaderName);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        http::HeaderName::from_bytes(text.as_bytes())
            .map(HeaderName)
            .map_err(|_| D::Error::custom(format!("{text:?} is not a header name")))
    }
}

/// A header value (the values of `request_headers.set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue(pub http::HeaderValue);

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        http::HeaderValue::from_str(&text)
            .map(HeaderValue)
            .map_err(|_| D::Error::custom(format!("{text:?} is not a valid header value")))
    }
}

/// `request_headers.set` / `response_headers.set`: header name → value. A name given twice
/// (in any case) is refused rather than one spelling silently winning, so the order does not
/// matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderSet(pub Vec<(HeaderName, HeaderValue)>);

impl<'de> Deserialize<'de> for HeaderSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SetVisitor;
        impl<'de> serde::de::Visitor<'de> for SetVisitor {
            type Value = HeaderSet;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of header names and values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeaderSet, A::Error> {
                let mut set: Vec<(HeaderName, HeaderValue)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<HeaderName, HeaderValue>()? {
                    if set.iter().any(|(n, _)| *n == name) {
                        return Err(A::Error::custom(format!(
                            "{:?} is set twice",
                            name.0.as_str()
                        )));
                    }
                    set.push((name, value));
                }
                Ok(HeaderSet(set))
            }
        }
        d.deserialize_map(SetVisitor)
    }
}

/// An upstream base URL (`upstreams = ["http://10.0.0.5:8080/base"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream(pub gateway::upstream::TargetUrl);

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        gateway::upstream::TargetUrl::parse(&text)
            .map(Upstream)
            .map_err(D::Error::custom)
    }
}

/// `forward_token`: what the upstream gets in `Authorization` (`none` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardToken(pub gateway::auth::ForwardToken);

impl Default for ForwardToken {
    fn default() -> Self {
        ForwardToken(gateway::auth::ForwardToken::None)
    }
}

impl<'de> Deserialize<'de> for ForwardToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use gateway::auth::ForwardToken as Forward;
        match String::deserialize(d)?.as_str() {
            "none" => Ok(ForwardToken(Forward::None)),
            "original" => Ok(ForwardToken(Forward::Original)),
            "internal" => Ok(ForwardToken(Forward::Internal)),
            other => Err(D::Error::custom(format!(
                "forward_token = {other:?}: must be none, original or internal"
            ))),
        }
    }
}

/// A JWS algorithm an issuer's tokens may use (`issuers.algorithms`); `none` cannot be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwsAlgorithm(pub jose::Algorithm);

impl<'de> Deserialize<'de> for JwsAlgorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(JwsAlgorithm)
            .map_err(|_| D::Error::custom(format!("{text:?} is not a JWS algorithm")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc<T> {
        v: T,
    }

    fn parse<T: for<'de> Deserialize<'de>>(value: &str) -> Result<T, String> {
        toml::from_str::<Doc<T>>(&format!("v = {value}"))
            .map(|d| d.v)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn methods_any_case_and_refused_ones() {
        assert_eq!(parse::<Method>("\"get\""), Ok(Method(http::Method::GET)));
        assert_eq!(
            parse::<Method>("\"PURGE\"").map(|m| m.0.as_str().to_owned()),
            Ok("PURGE".to_owned())
        );
        assert_eq!(
            parse::<Method>("\"GE T\""),
            Err("\"GE T\" is not an HTTP method".to_owned())
        );
    }

    #[test]
    fn headers_names_and_values() {
        assert_eq!(
            parse::<HeaderName>("\"X-Env\"").map(|h| h.0.as_str().to_owned()),
            Ok("x-env".to_owned())
        );
        assert_eq!(
            parse::<HeaderName>("\"x env\""),
            Err("\"x env\" is not a header name".to_owned())
        );
        assert_eq!(
            parse::<HeaderValue>("\"a\\nb\""),
            Err("\"a\\nb\" is not a valid header value".to_owned())
        );
    }

    #[test]
    fn a_header_set_twice_is_refused() {
        let set = parse::<HeaderSet>("{ x-a = \"1\", X-B = \"2\" }").unwrap();
        let mut names: Vec<&str> = set.0.iter().map(|(n, _)| n.0.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x-a", "x-b"]);
        assert_eq!(
            parse::<HeaderSet>("{ x-a = \"1\", X-A = \"2\" }"),
            Err("\"x-a\" is set twice".to_owned())
        );
    }

    #[test]
    fn upstream_urls() {
        let u = parse::<Upstream>("\"http://127.0.0.1:9000/base/\"").unwrap();
        assert_eq!(u.0.as_str(), "http://127.0.0.1:9000/base");
        for (bad, why) in [
            ("ftp://h", "must be an http:// or https:// URL with a host"),
            ("http://h/?q=1", "must have no query or fragment"),
            ("http://h/#f", "must have no query or fragment"),
            ("h:9000", "must be an http:// or https:// URL with a host"),
            ("", "not a URL"),
        ] {
            assert_eq!(
                parse::<Upstream>(&format!("{bad:?}")),
                Err(format!("upstream {bad:?}: {why}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn jws_algorithms_by_exact_name() {
        assert_eq!(
            parse::<JwsAlgorithm>("\"ES256\""),
            Ok(JwsAlgorithm(jose::Algorithm::ES256))
        );
        for bad in ["none", "es256", "RSA-OAEP"] {
            assert_eq!(
                parse::<JwsAlgorithm>(&format!("{bad:?}")),
                Err(format!("{bad:?} is not a JWS algorithm")),
                "{bad}"
            );
        }
    }

    #[test]
    fn forward_token_is_one_of_three() {
        use gateway::auth::ForwardToken as Forward;
        assert_eq!(parse("\"none\""), Ok(ForwardToken(Forward::None)));
        assert_eq!(parse("\"original\""), Ok(ForwardToken(Forward::Original)));
        assert_eq!(parse("\"internal\""), Ok(ForwardToken(Forward::Internal)));
        assert_eq!(ForwardToken::default(), ForwardToken(Forward::None));
        assert_eq!(
            parse::<ForwardToken>("\"all\""),
            Err("forward_token = \"all\": must be none, original or internal".to_owned())
        );
    }
}
