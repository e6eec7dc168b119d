//! RFC 7591 dynamic client registration at `/oauth2/register` (`[token_service.registration]
//! dynamic`): `open` to anyone, or `token` for callers holding the initial access token. A
//! client that registers itself signs users in only (the authorization code and refresh
//! token grants), is a third party (consent is never skipped for it as for an operator's
//! client), and gets tokens only for the audiences the operator opened to registration
//! (`[token_service.registration] audiences`), with their scopes (RFC 7591 §5: such clients
//! are strangers).

use serde_json::{json, Map, Value};
use store::AuthMethod;
use zeroize::Zeroizing;

use crate::admin::{AdminError, NewClient};
use crate::protocol::{ErrorKind, ErrorResponse};
use crate::service::Service;
use crate::token::{AUTHORIZATION_CODE, REFRESH_TOKEN};

/// The largest registration request read.
pub const MAX_REGISTRATION: usize = 16 * 1024;

/// The longest `client_name` kept.
const MAX_NAME: usize = 100;

/// Who may register clients (`[token_service.registration] dynamic`).
#[derive(Clone, Default)]
pub enum RegistrationAccess {
    /// Nobody: `/oauth2/register` is not served.
    #[default]
    Off,
    /// Anyone (MCP clients register themselves this way).
    Open,
    /// Whoever presents this initial access token (RFC 7591 §3, `Authorization: Bearer`).
    Token(Zeroizing<String>),
}

impl std::fmt::Debug for RegistrationAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RegistrationAccess::Off => "Off",
            RegistrationAccess::Open => "Open",
            RegistrationAccess::Token(_) => "Token(..)",
        })
    }
}

/// `[token_service.registration]`: who may register, and for what.
#[derive(Debug, Clone, Default)]
pub struct DynamicRegistration {
    /// Who may register.
    pub access: RegistrationAccess,
    /// The audiences a self-registered client may get tokens for (declared audiences); it
    /// may ask for their scopes only. Clients known by a metadata document get the same.
    pub audiences: Vec<String>,
    /// Whether `client_id` URLs are read as Client ID Metadata Documents.
    pub documents: crate::client_document::MetadataDocuments,
}

fn metadata_error(why: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidClientMetadata, why)
}

/// Whether a character of a client's name may be shown on the consent page: not a control
/// character, nor an invisible or bidirectional formatting one (which would let a name show
/// as another, "Trusted\u{202e}ppA" read backwards).
fn is_visible(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}'
            | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
            | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}'))
}

/// A `private_key_jwt` client's keys: `jwks`, a JWK Set given in the metadata itself.
/// `jwks_uri` is not fetched (a second document to fetch from a stranger's server).
fn client_keys(metadata: &Map<String, Value>) -> Result<String, ErrorResponse> {
    match metadata.get("jwks") {
        Some(keys @ Value::Object(_)) => {
            let json = keys.to_string();
            jose::JwkSet::from_json(json.as_bytes())
                .map_err(|e| metadata_error(format!("jwks is not a JWK Set: {e}")))?;
            Ok(json)
        }
        Some(_) => Err(metadata_error("jwks must be a JWK Set object")),
        None if metadata.contains_key("jwks_uri") => Err(metadata_error(
            "jwks_uri is not supported: give the keys as jwks",
        )),
        None => Err(metadata_error(
            "private_key_jwt needs the client's keys as jwks",
        )),
    }
}

/// Client metadata, checked (RFC 7591 §2): a registration request's or a client ID metadata
/// document's.
pub(crate) struct Requested {
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) auth_method: AuthMethod,
    pub(crate) name: Option<String>,
    pub(crate) scope: Vec<String>,
    /// With `private_key_jwt`: the client's public keys (`jwks`), as JSON.
    pub(crate) jwks: Option<String>,
}

/// The `token_endpoint_auth_method`s a way of registering accepts, and the one meant when
/// none is named.
pub(crate) struct Methods {
    pub(crate) default: AuthMethod,
    pub(crate) allowed: &'static [AuthMethod],
}

/// RFC 7591 registration: public clients and clients with a secret (the secret is answered
/// once, in the registration response). RFC 7591 §2's default is `client_secret_basic`.
const REGISTERED: Methods = Methods {
    default: AuthMethod::ClientSecretBasic,
    allowed: &[
        AuthMethod::Public,
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
    ],
};

impl Service {
    /// Whether `/oauth2/register` is served.
    pub fn registration_enabled(&self) -> bool {
        !matches!(self.settings.registration.access, RegistrationAccess::Off)
    }

    /// RFC 7591 §3: registers the client a JSON request describes; answers the client
    /// information response (§3.2.1), with the secret for a confidential client.
    pub async fn register(
        &self,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        request_id: &str,
        now: i64,
    ) -> Result<Value, ErrorResponse> {
        self.registration_allowed(authorization)?;
        let is_json = content_type
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidRequest,
                "a registration is a JSON object (Content-Type: application/json)",
            ));
        }
        let body = body.ok_or_else(|| metadata_error("the request is too large"))?;
        let Ok(Value::Object(metadata)) = serde_json::from_slice::<Value>(body) else {
            return Err(metadata_error("the request is not a JSON object"));
        };
        let requested = self.requested(&metadata, &REGISTERED)?;
        let name = requested
            .name
            .clone()
            .unwrap_or_else(|| "dynamically registered client".to_owned());
        let credentials = self
            .create_client(
                NewClient {
                    name: name.clone(),
                    scopes: requested.scope.clone(),
                    audiences: self.settings.registration.audiences.clone(),
                    auth_method: Some(requested.auth_method),
                    jwks: None,
                    redirect_uris: requested.redirect_uris.clone(),
                    first_party: false,
                },
                now,
                Some(request_id),
            )
            .await
            .map_err(|e| match e {
                AdminError::Invalid(why) => metadata_error(why),
                AdminError::Internal(e) => ErrorResponse::from(e),
                other => metadata_error(other.to_string()),
            })?;
        let mut answer = json!({
            "client_id": credentials.client_id,
            "client_id_issued_at": now,
            "client_name": name,
            "redirect_uris": requested.redirect_uris,
            "token_endpoint_auth_method": requested.auth_method.as_str(),
            // Refresh tokens come with every code: both grants, whatever was asked.
            "grant_types": [AUTHORIZATION_CODE, REFRESH_TOKEN],
            "response_types": ["code"],
            "scope": requested.scope.join(" "),
        });
        if let (Some(secret), Value::Object(map)) = (&credentials.client_secret, &mut answer) {
            map.insert("client_secret".into(), secret.as_str().into());
            map.insert("client_secret_expires_at".into(), 0.into());
        }
        Ok(answer)
    }

    /// `open`, or the initial access token presented (compared in constant time).
    fn registration_allowed(&self, authorization: Option<&str>) -> Result<(), ErrorResponse> {
        match &self.settings.registration.access {
            RegistrationAccess::Off => Err(ErrorResponse::new(
                ErrorKind::InvalidRequest,
                "dynamic client registration is off",
            )),
            RegistrationAccess::Open => Ok(()),
            RegistrationAccess::Token(expected) => {
                let presented = authorization
                    .and_then(|h| h.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .unwrap_or_default();
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    presented.as_bytes(),
                    expected.as_bytes(),
                )
                .map_err(|_| {
                    ErrorResponse::new(
                        ErrorKind::InvalidToken,
                        "registration needs the initial access token",
                    )
                })
            }
        }
    }

    /// RFC 7591 §2 metadata, checked; unknown members are ignored (§2).
    pub(crate) fn requested(
        &self,
        metadata: &Map<String, Value>,
        methods: &Methods,
    ) -> Result<Requested, ErrorResponse> {
        let strings = |name: &str| -> Result<Option<Vec<String>>, ErrorResponse> {
            match metadata.get(name) {
                None => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or_else(|| metadata_error(format!("{name} must be an array of strings"))),
                Some(_) => Err(metadata_error(format!(
                    "{name} must be an array of strings"
                ))),
            }
        };
        let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidRedirectUri,
                "redirect_uris is required: a registered client signs users in",
            ));
        }
        crate::redirect_uri::check_all(&redirect_uris)
            .map_err(|why| ErrorResponse::new(ErrorKind::InvalidRedirectUri, why))?;
        let auth_method = match metadata.get("token_endpoint_auth_method") {
            None => methods.default,
            Some(Value::String(m)) => match AuthMethod::parse(m) {
                Some(m) if methods.allowed.contains(&m) => m,
                _ => {
                    let names: Vec<&str> = methods.allowed.iter().map(|m| m.as_str()).collect();
                    return Err(metadata_error(format!(
                        "token_endpoint_auth_method must be one of {}",
                        names.join(", ")
                    )));
                }
            },
            Some(_) => {
                return Err(metadata_error(
                    "token_endpoint_auth_method must be a string",
                ))
            }
        };
        let jwks = match auth_method {
            AuthMethod::PrivateKeyJwt => Some(client_keys(metadata)?),
            _ => None,
        };
        let grant_types =
            strings("grant_types")?.unwrap_or_else(|| vec![AUTHORIZATION_CODE.to_owned()]);
        if grant_types
            .iter()
            .any(|g| g != AUTHORIZATION_CODE && g != REFRESH_TOKEN)
            || !grant_types.iter().any(|g| g == AUTHORIZATION_CODE)
        {
            return Err(metadata_error(
                "grant_types may be authorization_code and refresh_token only",
            ));
        }
        let response_types = strings("response_types")?.unwrap_or_else(|| vec!["code".into()]);
        if response_types.iter().any(|r| r != "code") {
            return Err(metadata_error("response_types may be code only"));
        }
        let name = match metadata.get("client_name") {
            None => None,
            Some(Value::String(n)) => {
                let shown: String = n
                    .chars()
                    .filter(|c| is_visible(*c))
                    .take(MAX_NAME)
                    .collect();
                if shown.trim().is_empty() {
                    return Err(metadata_error("client_name must have a visible character"));
                }
                Some(shown.trim().to_owned())
            }
            Some(_) => return Err(metadata_error("client_name must be a string")),
        };
        Ok(Requested {
            redirect_uris,
            auth_method,
            name,
            scope: self.registrable_scope(metadata.get("scope"))?,
            jwks,
        })
    }

    /// The scopes asked for, each one an audience open to registration accepts; all of them
    /// by default.
    fn registrable_scope(&self, asked: Option<&Value>) -> Result<Vec<String>, ErrorResponse> {
        let open = &self.settings.registration.audiences;
        let mut known: Vec<&str> = self
            .settings
            .audiences
            .iter()
            .filter(|a| open.contains(&a.id))
            .flat_map(|a| a.scopes.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        let asked = match asked {
            None => return Ok(known.into_iter().map(String::from).collect()),
            Some(Value::String(s)) => s,
            Some(_) => return Err(metadata_error("scope must be a space-separated string")),
        };
        let mut scope: Vec<String> = Vec::new();
        for s in asked.split(' ').filter(|s| !s.is_empty()) {
            if !known.contains(&s) {
                return Err(metadata_error(format!("the scope {s} is not offered here")));
            }
            if !scope.iter().any(|x| x == s) {
                scope.push(s.to_owned());
            }
        }
        Ok(scope)
    }
}
