//! Signing users in at an OpenID Provider (OpenID Connect Core §3.1, the code flow, with
//! PKCE, `state` and `nonce`; RFC 9207 `iss` when the provider sends it). Here is what is
//! decided: the provider's metadata as accepted, the redirect to it, the token request's
//! form, and the ID token's checks (signature with the provider's keys, `iss`, `aud`, `azp`,
//! `exp`, `iat`, `nonce`) that make a [`SignedInUser`]. The binary does the HTTP.

use jose::jwt::{self, Validation};
use jose::{Algorithm, JwkSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::authorize::with_query;
use crate::mint::random_b64;
use crate::protocol::{ErrorKind, ErrorResponse};
use crate::service::Service;
use crate::sign_in::{SignIn, SignedInUser};

/// Where the provider sends the user back, below our issuer (register it there).
pub const CALLBACK: &str = "/oauth2/callback";

/// Clock skew allowed on an ID token.
const LEEWAY: u64 = 60;

/// Signature algorithms accepted on ID tokens: asymmetric only (an HMAC ID token would be
/// keyed with our client secret, which the binary does not use as a key).
const ID_TOKEN_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Claims of an access token that come from us, never from the provider.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "auth_time",
    "act",
    "may_act",
];

/// `[token_service.login]` with an OpenID Provider.
#[derive(Clone)]
pub struct OidcProvider {
    /// Its issuer identifier (discovery starts there).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret there (`client_secret_basic`); `None`: we are a public client there
    /// and PKCE alone binds the code.
    pub client_secret: Option<Zeroizing<String>>,
    /// Scopes asked of it (`openid` among them).
    pub scopes: Vec<String>,
    /// (claim in our access tokens, the provider's claim it is copied from).
    pub claims: Vec<(String, String)>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(set)"),
            )
            .field("scopes", &self.scopes)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The longest `sub` an OpenID Provider may send (OpenID Connect Core §2).
const MAX_SUB: usize = 255;

/// The provider's metadata, as far as sign-in needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// Where the user is sent.
    pub authorization_endpoint: String,
    /// Where the code is redeemed.
    pub token_endpoint: String,
    /// Its keys.
    pub jwks_uri: String,
    /// Where more claims may be read, if the ID token lacks some.
    pub userinfo_endpoint: Option<String>,
    /// RFC 9207: it sends `iss` with the code, so its absence is an attack.
    pub iss_parameter: bool,
}

/// What the session holds while the user is at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLeg {
    /// Our `state` at the provider.
    pub state: String,
    /// The ID token's expected `nonce`.
    pub nonce: String,
    /// Our PKCE verifier there.
    pub verifier: String,
}

/// Whether `url` may be called: https, or http to this machine (development).
fn callable(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.scheme() {
        "https" => true,
        "http" => crate::redirect_uri::is_loopback(&u),
        _ => false,
    })
}

/// Reads the provider's discovery document (OpenID Connect Discovery §3, or RFC 8414): it
/// must name `issuer` exactly (§4.3), support the code flow with S256, and every endpoint
/// must be https (http only on this machine).
pub fn provider_metadata(doc: &[u8], issuer: &str) -> Result<ProviderMetadata, String> {
    let doc: Value = serde_json::from_slice(doc).map_err(|_| "the metadata is not JSON")?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err("the metadata names another issuer".into());
    }
    let endpoint = |name: &str| -> Result<String, String> {
        let url = doc
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the metadata has no {name}"))?;
        if !callable(url) {
            return Err(format!("{name} is not https (http only on loopback)"));
        }
        Ok(url.to_owned())
    };
    let methods = doc.get("code_challenge_methods_supported");
    if let Some(list) = methods.and_then(Value::as_array) {
        if !list.iter().any(|m| m == "S256") {
            return Err("the provider does not support PKCE with S256".into());
        }
    }
    Ok(ProviderMetadata {
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        userinfo_endpoint: endpoint("userinfo_endpoint").ok(),
        iss_parameter: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn denied(why: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::AccessDenied, why)
}

impl Service {
    /// The OpenID Provider users sign in at, when configured.
    pub fn oidc_provider(&self) -> Option<&OidcProvider> {
        match self.login().map(|l| &l.provider) {
            Some(crate::sign_in::Provider::Oidc(p)) => Some(p),
            _ => None,
        }
    }

    /// Sends the user to the provider: a fresh `state`, `nonce` and PKCE verifier go into the
    /// session; returns the URL.
    pub fn upstream_redirect(
        &self,
        session: &mut SignIn,
        metadata: &ProviderMetadata,
    ) -> Result<String, ErrorResponse> {
        let provider = self
            .oidc_provider()
            .ok_or_else(|| denied("no OpenID Provider is configured"))?;
        let leg = UpstreamLeg {
            state: random_b64(16)?,
            nonce: random_b64(16)?,
            verifier: random_b64(32)?,
        };
        let challenge = crate::pkce::challenge_of(&leg.verifier);
        let scope = provider.scopes.join(" ");
        let callback = self.url(CALLBACK);
        let pairs = [
            ("response_type", "code"),
            ("client_id", provider.client_id.as_str()),
            ("redirect_uri", callback.as_str()),
            ("scope", scope.as_str()),
            ("state", leg.state.as_str()),
            ("nonce", leg.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let url = with_query(&metadata.authorization_endpoint, &pairs)
            .ok_or_else(|| denied("the provider's authorization endpoint is not a URL"))?;
        session.upstream = Some(leg);
        Ok(url)
    }

    /// Whether the provider's answer carries this session's `state` (compared in constant
    /// time): the answer belongs to this sign-in.
    pub fn upstream_state_matches(&self, session: &SignIn, params: &crate::form::Params) -> bool {
        let (Some(leg), Some(state)) = (&session.upstream, params.get("state")) else {
            return false;
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(state.as_bytes(), leg.state.as_bytes())
            .is_ok()
    }

    /// Spends this sign-in's provider leg: a sealed session can be presented for its ten
    /// minutes, and each answer costs a token request at the provider, so each leg is
    /// answered once (on any node). `false` when it was answered before.
    pub async fn spend_upstream_leg(
        &self,
        session: &SignIn,
        now: i64,
    ) -> Result<bool, ErrorResponse> {
        let Some(leg) = &session.upstream else {
            return Ok(false);
        };
        let until = now.saturating_add(crate::sign_in::SIGN_IN_LIFETIME);
        Ok(self
            .store
            .use_jti("upstream_state", &leg.state, until)
            .await?)
    }

    /// Checks the provider's answer at the callback (`state`, RFC 9207 `iss`, `error`) and
    /// returns the code to redeem.
    pub fn upstream_code<'q>(
        &self,
        session: &SignIn,
        metadata: &ProviderMetadata,
        params: &'q crate::form::Params,
    ) -> Result<&'q str, ErrorResponse> {
        let provider = self
            .oidc_provider()
            .ok_or_else(|| denied("no OpenID Provider is configured"))?;
        if !self.upstream_state_matches(session, params) {
            return Err(denied(
                "the provider's answer is not for this sign-in (state)",
            ));
        }
        match params.get("iss") {
            Some(iss) if iss != provider.issuer => {
                return Err(denied("the answer came from another issuer (RFC 9207 iss)"))
            }
            None if metadata.iss_parameter => {
                return Err(denied("the provider sends iss, but this answer has none"))
            }
            _ => {}
        }
        if let Some(error) = params.get("error") {
            return Err(denied(format!(
                "the provider refused the sign-in ({error})"
            )));
        }
        params
            .get("code")
            .ok_or_else(|| denied("the provider's answer has no code"))
    }

    /// The provider and this sign-in's leg there.
    fn upstream_leg<'s>(
        &'s self,
        session: &'s SignIn,
    ) -> Result<(&'s OidcProvider, &'s UpstreamLeg), ErrorResponse> {
        let provider = self
            .oidc_provider()
            .ok_or_else(|| denied("no OpenID Provider is configured"))?;
        let leg = session
            .upstream
            .as_ref()
            .ok_or_else(|| denied("this sign-in never went to the provider"))?;
        Ok((provider, leg))
    }

    /// The token request to the provider: the form and, with a client secret, the
    /// `Authorization` header (`client_secret_basic`, OpenID Connect Core §9).
    pub fn upstream_token_request(
        &self,
        session: &SignIn,
        code: &str,
    ) -> Result<(String, Option<String>), ErrorResponse> {
        let (provider, leg) = self.upstream_leg(session)?;
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            encode(code),
            encode(&self.url(CALLBACK)),
            encode(&leg.verifier)
        );
        let authorization = match &provider.client_secret {
            Some(secret) => {
                let pair = format!("{}:{}", encode(&provider.client_id), encode(secret));
                Some(format!(
                    "Basic {}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair)
                ))
            }
            None => {
                form.push_str(&format!("&client_id={}", encode(&provider.client_id)));
                None
            }
        };
        Ok((form, authorization))
    }

    /// The user an ID token names (OpenID Connect Core §3.1.3.7): signed by the provider's
    /// `keys` with an asymmetric algorithm, from its issuer, for our client id (with `azp`
    /// when it has several audiences), unexpired, with this sign-in's `nonce`. The mapped
    /// claims are taken from the ID token, else from `userinfo` (whose `sub` must match).
    pub fn upstream_user(
        &self,
        id_token: &str,
        keys: &JwkSet,
        session: &SignIn,
        userinfo: Option<&Map<String, Value>>,
        now: i64,
    ) -> Result<SignedInUser, ErrorResponse> {
        let (provider, leg) = self.upstream_leg(session)?;
        let validation = Validation::new()
            .algorithms(ID_TOKEN_ALGORITHMS)
            .issuer(provider.issuer.clone())
            .audience(provider.client_id.clone())
            .require("sub")
            .require("iat")
            .leeway(LEEWAY)
            .at_time(now);
        let verified = jwt::verify(id_token, keys, &validation).map_err(|e| {
            denied(format!(
                "the provider's ID token is invalid: {}",
                e.reason()
            ))
        })?;
        if verified
            .header
            .typ()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
        {
            return Err(denied("the provider sent an access token as ID token"));
        }
        let claims = verified.claims.as_map().map_err(|e| {
            denied(format!(
                "the provider's ID token is invalid: {}",
                e.reason()
            ))
        })?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("nonce").map(str::as_bytes) != Some(leg.nonce.as_bytes()) {
            return Err(denied("the ID token's nonce is not this sign-in's"));
        }
        let audiences = verified.claims.aud();
        let azp = text("azp");
        if azp.is_some_and(|a| a != provider.client_id)
            || (audiences.len() > 1 && azp != Some(provider.client_id.as_str()))
        {
            return Err(denied("the ID token was issued to another party (azp)"));
        }
        let sub = text("sub").unwrap_or_default().to_owned();
        if sub.is_empty() || sub.len() > MAX_SUB || !sub.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(denied(
                "the ID token's sub is empty, too long or not printable ASCII",
            ));
        }
        let userinfo = userinfo.filter(|u| u.get("sub").and_then(Value::as_str) == Some(&sub));
        let mut copied = Map::new();
        for (ours, theirs) in &provider.claims {
            let value = claims
                .get(theirs)
                .or_else(|| userinfo.and_then(|u| u.get(theirs)));
            if let Some(value) = value {
                copied.insert(ours.clone(), value.clone());
            }
        }
        let auth_time = claims
            .get("auth_time")
            .and_then(Value::as_i64)
            .filter(|t| *t <= now.saturating_add(LEEWAY as i64))
            .unwrap_or(now);
        Ok(SignedInUser {
            sub,
            auth_time,
            claims: copied,
        })
    }

    /// Whether the mapped claims are all in the ID token, or the userinfo endpoint must be
    /// read for the rest.
    pub fn upstream_needs_userinfo(&self, id_token: &str) -> bool {
        let Some(provider) = self.oidc_provider() else {
            return false;
        };
        let Ok((_, claims)) = jwt::decode_unverified(id_token) else {
            return false;
        };
        provider
            .claims
            .iter()
            .any(|(_, theirs)| !claims.contains_key(theirs))
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
