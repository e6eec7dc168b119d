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

    /// The login settings of the token service.
    pub fn settings(&self) -> oauth::sign_in::Login {
        oauth::sign_in::Login {
            provider: oauth::sign_in::Provider::Dev,
            consent: match self.consent {
                ConsentConfig::Always => oauth::sign_in::Consent::Always,
                ConsentConfig::Remember => oauth::sign_in::Consent::Remember,
                ConsentConfig::SkipForFirstParty => oauth::sign_in::Consent::SkipForFirstParty,
            },
        }
    }

    /// What this version can do with the block: only the development page so far.
    pub(super) fn validate(&self) -> Result<(), Failure> {
        if self.is_dev() {
            return Ok(());
        }
        Err((
            self.provider.span(),
            "token_service.login.provider: signing in at an OpenID Provider is not implemented \
             in this version (issue #18); only provider = \"dev\" works, with `tokengate dev`"
                .into(),
        ))
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
