//! `[token_service.login]`: where users sign in before the authorization endpoint issues a
//! code (issue #18). docs/configuration.md documents each field.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Failure;

/// `[token_service.login]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// `"dev"` (the development sign-in page, `tokengate dev` only) or an OpenID Provider's
    /// issuer URL.
    pub provider: Spanned<String>,
    /// Our client id at the provider.
    pub client_id: Option<String>,
    /// The environment variable holding our client secret at the provider.
    pub client_secret_env: Option<String>,
    /// Scopes asked of the provider.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Access-token claim = the provider's claim it is copied from.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// When the consent page is shown.
    #[serde(default)]
    pub consent: ConsentConfig,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

/// `consent`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConsentConfig {
    /// Every time.
    Always,
    /// Once per user, client, audience and scopes, remembered in the browser.
    #[default]
    Remember,
    /// Never for clients an operator registered.
    SkipForFirstParty,
}

impl LoginConfig {
    /// Whether this is the development sign-in page.
    pub fn is_dev(&self) -> bool {
        self.provider.get_ref() == "dev"
    }

    /// The login settings of the token service; reads the client secret from its
    /// environment variable.
    pub fn settings(&self) -> Result<oauth::sign_in::Login, String> {
        let provider = if self.is_dev() {
            oauth::sign_in::Provider::Dev
        } else {
            let client_secret = match &self.client_secret_env {
                Some(name) => Some(zeroize::Zeroizing::new(std::env::var(name).map_err(
                    |_| {
                        format!(
                            "token_service.login.client_secret_env names {name}, which is not set"
                        )
                    },
                )?)),
                None => None,
            };
            oauth::sign_in::Provider::Oidc(oauth::upstream::OidcProvider {
                issuer: self.provider.get_ref().clone(),
                client_id: self.client_id.clone().unwrap_or_default(),
                client_secret,
                scopes: self.scopes.clone(),
                claims: self
                    .claims
                    .iter()
                    .map(|(ours, theirs)| (ours.clone(), theirs.clone()))
                    .collect(),
            })
        };
        Ok(oauth::sign_in::Login {
            provider,
            consent: match self.consent {
                ConsentConfig::Always => oauth::sign_in::Consent::Always,
                ConsentConfig::Remember => oauth::sign_in::Consent::Remember,
                ConsentConfig::SkipForFirstParty => oauth::sign_in::Consent::SkipForFirstParty,
            },
        })
    }

    /// The block's own rules: a provider URL that may be called, our client id there,
    /// `openid` among the scopes, and no claim of ours overwritten by the provider's.
    pub(super) fn validate(&self) -> Result<(), Failure> {
        if let Some((ours, _)) = self
            .claims
            .iter()
            .find(|(ours, _)| oauth::upstream::RESERVED_CLAIMS.contains(&ours.as_str()))
        {
            return Err((
                self.provider.span(),
                format!("token_service.login.claims: {ours} is set by tokengate, not copied from the provider"),
            ));
        }
        if self.is_dev() {
            return Ok(());
        }
        let url = url::Url::parse(self.provider.get_ref()).ok();
        let callable = url.as_ref().is_some_and(|u| match u.scheme() {
            "https" => true,
            "http" => gateway::keys::is_loopback(u),
            _ => false,
        });
        if !callable
            || url
                .as_ref()
                .is_some_and(|u| u.query().is_some() || u.fragment().is_some())
        {
            return Err((
                self.provider.span(),
                "token_service.login.provider must be \"dev\" or an OpenID Provider's issuer URL: https (http only on loopback), without query or fragment".into(),
            ));
        }
        if self.client_id.as_deref().is_none_or(str::is_empty) {
            return Err((
                self.provider.span(),
                "token_service.login.client_id is required with an OpenID Provider".into(),
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err((
                self.provider.span(),
                "token_service.login.scopes must include openid".into(),
            ));
        }
        Ok(())
    }
}

/// `[token_service.refresh]`: refresh tokens of signed-in users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    /// A grant's absolute lifetime from sign-in; no rotation extends it (default 30d).
    #[serde(default = "default_refresh_lifetime")]
    pub lifetime: Spanned<super::Duration>,
    /// A refresh token unused this long expires (default 7d; at most the lifetime: a longer
    /// one is the lifetime).
    #[serde(default = "default_refresh_idle")]
    pub idle: Spanned<super::Duration>,
}

fn default_refresh_lifetime() -> Spanned<super::Duration> {
    Spanned::new(0..0, super::Duration(30 * 86_400))
}

fn default_refresh_idle() -> Spanned<super::Duration> {
    Spanned::new(0..0, super::Duration(7 * 86_400))
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            lifetime: default_refresh_lifetime(),
            idle: default_refresh_idle(),
        }
    }
}

impl RefreshConfig {
    /// The token service's refresh settings.
    pub fn settings(&self) -> oauth::refresh::RefreshSettings {
        oauth::refresh::RefreshSettings {
            lifetime: self.lifetime.get_ref().0,
            idle: self.idle.get_ref().0.min(self.lifetime.get_ref().0),
        }
    }

    pub(super) fn validate(&self) -> Result<(), Failure> {
        if self.lifetime.get_ref().0 == 0 {
            return Err((
                self.lifetime.span(),
                "token_service.refresh.lifetime must be more than 0s".into(),
            ));
        }
        if self.idle.get_ref().0 == 0 {
            return Err((
                self.idle.span(),
                "token_service.refresh.idle must be more than 0s".into(),
            ));
        }
        Ok(())
    }
}

/// `[token_service.registration]`: how clients that sign users in may register themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Client ID Metadata Documents: a `client_id` that is an https URL is the client
    /// described by the JSON document there.
    #[serde(default = "unspanned")]
    pub client_id_metadata_documents: Spanned<bool>,
    /// Also fetch documents from this machine's loopback addresses, over http or https
    /// (development and tests: nothing else relaxes the address rules).
    #[serde(default = "unspanned")]
    pub metadata_documents_from_loopback: Spanned<bool>,
    /// RFC 7591 at `/oauth2/register`: off (default), open, or token.
    #[serde(default = "unspanned")]
    pub dynamic: Spanned<DynamicConfig>,
    /// With `dynamic = "token"`: the environment variable holding the initial access token.
    pub initial_access_token_env: Option<String>,
    /// The declared audiences a self-registered client may get tokens for (required when
    /// `dynamic` is not `off`).
    #[serde(default)]
    pub audiences: Vec<Spanned<String>>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            client_id_metadata_documents: unspanned(),
            metadata_documents_from_loopback: unspanned(),
            dynamic: unspanned(),
            initial_access_token_env: None,
            audiences: Vec::new(),
        }
    }
}

/// A default value where the file says nothing.
fn unspanned<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

/// `dynamic`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DynamicConfig {
    /// No `/oauth2/register`.
    #[default]
    Off,
    /// Anyone may register.
    Open,
    /// With the initial access token.
    Token,
}

impl RegistrationConfig {
    /// The token service's registration setting; reads the initial access token.
    pub fn settings(&self) -> Result<oauth::registration::DynamicRegistration, String> {
        use oauth::registration::{DynamicRegistration, RegistrationAccess};
        let access = match self.dynamic.get_ref() {
            DynamicConfig::Off => RegistrationAccess::Off,
            DynamicConfig::Open => RegistrationAccess::Open,
            DynamicConfig::Token => {
                let name = self.initial_access_token_env.as_deref().unwrap_or_default();
                let token = std::env::var(name).map_err(|_| {
                    format!("token_service.registration.initial_access_token_env names {name}, which is not set")
                })?;
                if token.len() < 16 {
                    return Err(format!(
                        "the initial access token in {name} is shorter than 16 characters"
                    ));
                }
                RegistrationAccess::Token(zeroize::Zeroizing::new(token))
            }
        };
        use oauth::client_document::MetadataDocuments;
        let documents = match (
            *self.client_id_metadata_documents.get_ref(),
            *self.metadata_documents_from_loopback.get_ref(),
        ) {
            (false, _) => MetadataDocuments::Off,
            (true, false) => MetadataDocuments::On,
            (true, true) => MetadataDocuments::OnWithLoopback,
        };
        Ok(DynamicRegistration {
            access,
            audiences: self.audiences.iter().map(|a| a.get_ref().clone()).collect(),
            documents,
        })
    }

    /// The block's own rules, and those it shares with the rest of the file: sign-in
    /// configured, the audiences opened to registration declared, and, for `open`, a limit
    /// per address on what anyone may call.
    pub(super) fn validate(
        &self,
        login: bool,
        declared: &[&str],
        per_ip_limit: bool,
    ) -> Result<(), Failure> {
        self.validate_documents(login, per_ip_limit)?;
        if let Some(unknown) = self
            .audiences
            .iter()
            .find(|a| !declared.contains(&a.get_ref().as_str()))
        {
            return Err((
                unknown.span(),
                format!(
                    "token_service.registration.audiences: {:?} is not a declared [[audiences]] id",
                    unknown.get_ref()
                ),
            ));
        }
        let dynamic = *self.dynamic.get_ref();
        let why = match dynamic {
            DynamicConfig::Off => None,
            _ if !login => Some(
                "dynamic registration needs [token_service.login]: registered clients sign users in",
            ),
            _ if self.audiences.is_empty() => Some(
                "dynamic registration needs audiences = [...]: the declared audiences self-registered clients may get tokens for",
            ),
            DynamicConfig::Token if self.initial_access_token_env.is_none() => {
                Some("dynamic = \"token\" needs initial_access_token_env")
            }
            DynamicConfig::Open if !per_ip_limit => Some(
                "dynamic = \"open\" needs [token_service.rate_limits] per_ip: anyone may register, so registrations are limited per address",
            ),
            _ => None,
        };
        match why {
            Some(why) => Err((
                self.dynamic.span(),
                format!("token_service.registration: {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Client ID Metadata Documents, like `dynamic = "open"`, let anyone name a client: they
    /// need sign-in, the audiences such clients may get tokens for, and a limit per address
    /// (each unknown document is one fetch).
    fn validate_documents(&self, login: bool, per_ip_limit: bool) -> Result<(), Failure> {
        let on = *self.client_id_metadata_documents.get_ref();
        let why = if *self.metadata_documents_from_loopback.get_ref() && !on {
            Some((
                self.metadata_documents_from_loopback.span(),
                "metadata_documents_from_loopback needs client_id_metadata_documents = true",
            ))
        } else if !on {
            None
        } else if !login {
            Some((
                self.client_id_metadata_documents.span(),
                "client_id_metadata_documents needs [token_service.login]: such clients sign users in",
            ))
        } else if self.audiences.is_empty() {
            Some((
                self.client_id_metadata_documents.span(),
                "client_id_metadata_documents needs audiences = [...]: the declared audiences clients known by a document may get tokens for",
            ))
        } else if !per_ip_limit {
            Some((
                self.client_id_metadata_documents.span(),
                "client_id_metadata_documents needs [token_service.rate_limits] per_ip: anyone may name a document, and each unknown one is fetched",
            ))
        } else {
            None
        };
        match why {
            Some((span, why)) => Err((span, format!("token_service.registration: {why}"))),
            None => Ok(()),
        }
    }
}
