//! What a JWT must satisfy. Nothing is permissive by default: issuer, audience and
//! algorithms must each be stated or explicitly waived, and `exp` is required unless waived.

use std::time::{SystemTime, UNIX_EPOCH};

use super::claims::Claims;
use crate::alg::Algorithm;
use crate::error::{err, Result};
use crate::jws::compact::Policy;
use crate::jws::{Algorithms, Header};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Unset,
    Waived,
    OneOf(Vec<String>),
}

/// Validation rules for [`verify`](super::verify).
///
/// ```
/// use jose::{Algorithm, jwt::Validation};
/// let v = Validation::new()
///     .algorithms([Algorithm::ES256])
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .typ("at+jwt")
///     .leeway(30);
/// ```
#[derive(Debug, Clone)]
pub struct Validation {
    algorithms: Option<Algorithms>,
    issuer: Expect,
    audience: Expect,
    subject: Option<String>,
    typ: Option<String>,
    leeway: u64,
    max_age: Option<u64>,
    require_exp: bool,
    required: Vec<String>,
    crit: Vec<String>,
    max_len: usize,
    now: Option<i64>,
}

impl Default for Validation {
    fn default() -> Self {
        Self::new()
    }
}

impl Validation {
    /// Rules with nothing stated yet; [`verify`](super::verify) refuses them until issuer,
    /// audience and algorithms are each stated or waived.
    pub fn new() -> Self {
        Self {
            algorithms: None,
            issuer: Expect::Unset,
            audience: Expect::Unset,
            subject: None,
            typ: None,
            leeway: 0,
            max_age: None,
            require_exp: true,
            required: Vec::new(),
            crit: Vec::new(),
            max_len: crate::jws::DEFAULT_MAX_LEN,
            now: None,
        }
    }

    /// Accept exactly these algorithms.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(Algorithms::Only(algs.into_iter().collect()));
        self
    }

    /// Accept only the algorithm each key determines (its `alg`, or its curve's).
    pub fn algorithms_from_key(mut self) -> Self {
        self.algorithms = Some(Algorithms::FromKey);
        self
    }

    /// Require `iss` to equal `issuer`.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.issuers([issuer.into()])
    }

    /// Require `iss` to be one of `issuers`.
    pub fn issuers(mut self, issuers: impl IntoIterator<Item = String>) -> Self {
        self.issuer = Expect::OneOf(issuers.into_iter().collect());
        self
    }

    /// Do not check `iss`.
    pub fn waive_issuer(mut self) -> Self {
        self.issuer = Expect::Waived;
        self
    }

    /// Require `aud` to contain `audience`.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.audiences([audience.into()])
    }

    /// Require `aud` to contain at least one of `audiences`.
    pub fn audiences(mut self, audiences: impl IntoIterator<Item = String>) -> Self {
        self.audience = Expect::OneOf(audiences.into_iter().collect());
        self
    }

    /// Do not check `aud`.
    pub fn waive_audience(mut self) -> Self {
        self.audience = Expect::Waived;
        self
    }

    /// Require `sub` to equal `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Require the `typ` header to name this type (RFC 8725 §3.11), compared as a media type:
    /// case-insensitively and with or without `application/`.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Reject tokens whose `iat` is older than this many seconds (and require `iat`).
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Accept tokens without `exp` (a token that never expires; rarely what you want).
    pub fn allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Require a claim to be present.
    pub fn require(mut self, claim: impl Into<String>) -> Self {
        self.required.push(claim.into());
        self
    }

    /// `crit` header names the caller understands and checks itself.
    pub fn critical(mut self, name: impl Into<String>) -> Self {
        self.crit.push(name.into());
        self
    }

    /// Maximum token length (default 64 KiB).
    pub fn max_len(mut self, len: usize) -> Self {
        self.max_len = len;
        self
    }

    /// Validate as if the time were `unix_seconds` (tests, replays of logs).
    pub fn at_time(mut self, unix_seconds: i64) -> Self {
        self.now = Some(unix_seconds);
        self
    }

    /// The verification policy, borrowed: nothing is cloned per token.
    pub(crate) fn policy(&self) -> Result<Policy<'_>> {
        let Some(algorithms) = &self.algorithms else {
            return Err(err!(
                InvalidOptions,
                "no algorithms stated: list them or call algorithms_from_key"
            ));
        };
        if self.issuer == Expect::Unset {
            return Err(err!(
                InvalidOptions,
                "no issuer stated: set one or call waive_issuer"
            ));
        }
        if self.audience == Expect::Unset {
            return Err(err!(
                InvalidOptions,
                "no audience stated: set one or call waive_audience"
            ));
        }
        Ok(Policy {
            algorithms,
            crit: &self.crit,
            max_len: self.max_len,
        })
    }

    fn now(&self) -> i64 {
        self.now.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        })
    }

    pub(crate) fn check(&self, header: &Header, claims: &Claims) -> Result<()> {
        if let Some(want) = &self.typ {
            match header.typ() {
                Some(got) if same_media_type(got, want) => {}
                Some(got) => return Err(err!(TypInvalid, "typ is {got:?}, expected {want:?}")),
                None => return Err(err!(TypInvalid, "typ is missing, expected {want:?}")),
            }
        }
        if let Expect::OneOf(issuers) = &self.issuer {
            match claims.iss() {
                Some(iss) if issuers.iter().any(|i| i == iss) => {}
                Some(_) => return Err(err!(JwtClaimInvalid, "unexpected \"iss\"")),
                None => return Err(err!(JwtClaimInvalid, "missing \"iss\"")),
            }
        }
        if let Expect::OneOf(audiences) = &self.audience {
            let mut aud = claims.aud_iter().peekable();
            if aud.peek().is_none() {
                return Err(err!(JwtClaimInvalid, "missing \"aud\""));
            }
            if !aud.any(|a| audiences.iter().any(|want| want == a)) {
                return Err(err!(
                    JwtClaimInvalid,
                    "\"aud\" does not include an accepted audience"
                ));
            }
        }
        if let Some(sub) = &self.subject {
            if claims.sub() != Some(sub.as_str()) {
                return Err(err!(JwtClaimInvalid, "unexpected \"sub\""));
            }
        }
        for name in &self.required {
            if !claims.contains(name)? {
                return Err(err!(JwtClaimInvalid, "missing required claim {name:?}"));
            }
        }
        let now = self.now();
        let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
        match claims.exp() {
            Some(exp) if now >= exp.saturating_add(leeway) => {
                return Err(err!(JwtExpired, "the token expired"));
            }
            None if self.require_exp => return Err(err!(JwtClaimInvalid, "missing \"exp\"")),
            _ => {}
        }
        if let Some(nbf) = claims.nbf() {
            if now.saturating_add(leeway) < nbf {
                return Err(err!(JwtNotYetValid, "the token is not valid yet (nbf)"));
            }
        }
        if let Some(max_age) = self.max_age {
            let iat = claims.iat().ok_or_else(|| {
                err!(
                    JwtClaimInvalid,
                    "missing \"iat\", needed for the maximum age"
                )
            })?;
            if iat > now.saturating_add(leeway) {
                return Err(err!(JwtNotYetValid, "\"iat\" is in the future"));
            }
            let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
            if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
                return Err(err!(JwtExpired, "the token is older than the maximum age"));
            }
        }
        Ok(())
    }
}

/// RFC 7515 §4.1.9: `typ` values are media types, case-insensitive, `application/` optional.
fn same_media_type(a: &str, b: &str) -> bool {
    fn short(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or_default(),
            _ => s,
        }
    }
    short(a).eq_ignore_ascii_case(short(b))
}

#[cfg(test)]
mod tests {
    use super::same_media_type;

    #[test]
    fn media_types_compare_loosely_but_not_too_loosely() {
        assert!(same_media_type("at+jwt", "application/at+jwt"));
        assert!(same_media_type("AT+JWT", "at+jwt"));
        assert!(!same_media_type("jwt", "at+jwt"));
        assert!(!same_media_type("application/jwt", "at+jwt"));
    }
}
