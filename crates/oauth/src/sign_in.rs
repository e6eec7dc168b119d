//! A user's way through the authorization endpoint (issue #18): the checked request is
//! sealed into a cookie ([`SignIn`]), the user signs in (the `dev` provider asks only for a
//! name; an OpenID Provider comes next), consents, and the client gets a code. Nothing about
//! the user is stored but the code ([`crate::code`]), the tokens and the audit events: the
//! session and remembered consents live in sealed cookies, which any node opens.
//!
//! The HTTP layer renders the pages and sets the cookies; what is decided lives here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authorize::{AuthorizationRequest, AuthorizeError};
use crate::error::{Error, Result};
use crate::mint::random_b64;
use crate::protocol::{ErrorKind, ErrorResponse};
use crate::sealed::Sealer;
use crate::service::Service;

/// How long a sign-in may take, from the authorization request to consent (seconds).
pub const SIGN_IN_LIFETIME: i64 = 600;

/// The longest sealed session: browsers keep a cookie of at most 4096 bytes, its name and
/// attributes included.
const MAX_SESSION: usize = 3900;

/// Room kept at the start of a sign-in for what is added later: the provider leg's state,
/// nonce and verifier (about 200 bytes sealed), and a user's name and a few claims.
const SESSION_RESERVE: usize = 600;

/// How long a remembered consent lasts (seconds): 30 days.
pub const CONSENT_MEMORY_LIFETIME: i64 = 30 * 86_400;

/// Consents remembered per browser; the oldest is forgotten first (the cookie must stay
/// under 4 KB).
const MAX_REMEMBERED: usize = 8;

/// The longest user name the dev provider accepts.
pub const MAX_DEV_USER: usize = 64;

/// Where users sign in (`[token_service.login] provider`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Provider {
    /// The development page asking only for a user name (`tokengate dev` only).
    Dev,
    /// An OpenID Provider.
    Oidc(crate::upstream::OidcProvider),
}

impl Provider {
    /// Whether this is the development page.
    pub fn is_dev(&self) -> bool {
        matches!(self, Provider::Dev)
    }
}

/// When the consent page is shown (`[token_service.login] consent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consent {
    /// Every time.
    Always,
    /// Once per user, client, audience and scopes, remembered in the browser for 30 days.
    #[default]
    Remember,
    /// Never for a client an operator registered; always for one that registered itself
    /// (RFC 7591).
    SkipForFirstParty,
}

/// User sign-in (`[token_service.login]`).
#[derive(Debug, Clone)]
pub struct Login {
    /// Where users sign in.
    pub provider: Provider,
    /// When consent is asked.
    pub consent: Consent,
}

/// The signed-in user, as the code and the token will describe them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInUser {
    /// `sub`.
    pub sub: String,
    /// When they signed in (`auth_time`).
    pub auth_time: i64,
    /// Claims copied from the provider into the token.
    pub claims: Map<String, Value>,
}

/// The sign-in session, sealed in a cookie between the authorization request and the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// Names this authorization in logs and audit events (128 random bits).
    pub id: String,
    /// Every form of the flow carries it back; a form from elsewhere does not have it.
    pub csrf: String,
    /// The checked authorization request.
    pub request: AuthorizationRequest,
    /// Set once the user signed in.
    pub user: Option<SignedInUser>,
    /// While the user is at the OpenID Provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::upstream::UpstreamLeg>,
}

impl SignIn {
    /// Whether a submitted form's CSRF value is this session's (compared in constant time).
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            self.csrf.as_bytes(),
            submitted.as_bytes(),
        )
        .is_ok()
    }
}

/// A consent a user gave, remembered in their browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    sub: String,
    client_id: String,
    audience: String,
    scope: Vec<String>,
    until: i64,
}

/// The sealers of the flow's cookies, one key per purpose.
pub(crate) struct Sealers {
    sign_in: Sealer,
    consent: Sealer,
}

impl Sealers {
    pub(crate) fn new(master: &store::MasterKey) -> Result<Sealers> {
        Ok(Sealers {
            sign_in: Sealer::new(master, "tokengate-sign-in")?,
            consent: Sealer::new(master, "tokengate-consent")?,
        })
    }
}

impl Service {
    /// User sign-in, when configured.
    pub fn login(&self) -> Option<&Login> {
        self.settings.login.as_ref()
    }

    /// A sealer for another purpose of the binary's own (`tokengate dev`'s browser client
    /// keeps its PKCE verifier in one); its values open under no other purpose.
    pub fn sealer(&self, purpose: &'static str) -> Result<Sealer> {
        Sealer::new(self.master(), purpose)
    }

    /// The name a client registered with, for the pages that show it (its id if it has
    /// none).
    pub async fn client_name(&self, client_id: &str) -> std::result::Result<String, ErrorResponse> {
        let client = self.client(client_id).await?;
        Ok(client
            .map(|c| c.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| client_id.to_owned()))
    }

    /// Starts a sign-in: checks the authorization request and seals it with a fresh id and
    /// CSRF value. Returns the session and the cookie value.
    pub async fn begin_sign_in(
        &self,
        query: &[u8],
        now: i64,
    ) -> std::result::Result<(SignIn, String), AuthorizeError> {
        let request = self.authorization_request(query).await?;
        let fresh = || random_b64(16).map_err(ErrorResponse::from);
        let session = match (fresh(), fresh()) {
            (Ok(id), Ok(csrf)) => SignIn {
                id,
                csrf,
                request,
                user: None,
                upstream: None,
            },
            (Err(e), _) | (_, Err(e)) => return Err(AuthorizeError::ShowUser(e)),
        };
        let sealed = self.seal_sign_in(&session, now).and_then(|s| {
            if s.len() + SESSION_RESERVE > MAX_SESSION {
                Err(Error::Sealed("no room left in the session for the sign-in"))
            } else {
                Ok(s)
            }
        });
        match sealed {
            Ok(sealed) => Ok((session, sealed)),
            Err(Error::Sealed(_)) => Err(AuthorizeError::ShowUser(ErrorResponse::new(
                ErrorKind::InvalidRequest,
                "the authorization request is too large to carry through sign-in \
                 (shorten state or the redirect URI)",
            ))),
            Err(e) => Err(AuthorizeError::ShowUser(e.into())),
        }
    }

    /// Seals a session again (after the user signed in). It expires
    /// [`SIGN_IN_LIFETIME`] after `now`.
    pub fn seal_sign_in(&self, session: &SignIn, now: i64) -> Result<String> {
        let sealed = self
            .sealers
            .sign_in
            .seal(session, now.saturating_add(SIGN_IN_LIFETIME))?;
        if sealed.len() > MAX_SESSION {
            return Err(Error::Sealed("the session is larger than a cookie may be"));
        }
        Ok(sealed)
    }

    /// The session a cookie holds, if it is one of ours and has not expired.
    pub fn open_sign_in(&self, sealed: &str, now: i64) -> Option<SignIn> {
        self.sealers.sign_in.open(sealed, now)
    }

    /// The dev provider's sign-in: the name typed is the `sub`. Refused when no dev
    /// provider is configured, and for a name that is empty, too long, not printable ASCII,
    /// or a registered client's id (whose tokens carry that `sub`: RFC 9068 §5).
    pub async fn dev_sign_in(
        &self,
        name: &str,
        now: i64,
    ) -> std::result::Result<SignedInUser, ErrorResponse> {
        if !self.login().is_some_and(|l| l.provider.is_dev()) {
            return Err(ErrorResponse::new(
                ErrorKind::AccessDenied,
                "the development sign-in is not enabled",
            ));
        }
        let name = name.trim();
        let printable = name.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if name.is_empty() || name.len() > MAX_DEV_USER || !printable {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidRequest,
                format!("a user name is 1 to {MAX_DEV_USER} printable characters without spaces"),
            ));
        }
        self.check_user_sub(name).await?;
        Ok(SignedInUser {
            sub: name.to_owned(),
            auth_time: now,
            claims: Map::new(),
        })
    }

    /// Refuses a user whose `sub` is a registered client's id: the client's own tokens carry
    /// that `sub`, and a resource server must never take one for the other (RFC 9068 §5).
    pub async fn check_user_sub(&self, sub: &str) -> std::result::Result<(), ErrorResponse> {
        if self.clients.get(&self.store, sub).await?.is_some() {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidRequest,
                "that name is a client's id; tokens for a user must not look like a client's",
            ));
        }
        Ok(())
    }

    /// Whether the user must be asked: by the consent setting and, for `remember`, the
    /// consents remembered in `memory` (the consent cookie).
    pub fn consent_needed(&self, session: &SignIn, memory: Option<&str>, now: i64) -> bool {
        let Some(user) = &session.user else {
            return true;
        };
        if !session.request.assured {
            return true;
        }
        match self.login().map(|l| l.consent).unwrap_or_default() {
            Consent::Always => true,
            Consent::SkipForFirstParty => !session.request.first_party,
            Consent::Remember => {
                let request = &session.request;
                !self.remembered(memory, now).iter().any(|r| {
                    r.sub == user.sub
                        && r.client_id == request.client_id
                        && r.audience == request.audience
                        && request.scope.iter().all(|s| r.scope.contains(s))
                })
            }
        }
    }

    /// The consent cookie with this session's consent added (when consent is remembered):
    /// `None` when nothing is to be remembered.
    pub fn remember_consent(
        &self,
        session: &SignIn,
        memory: Option<&str>,
        now: i64,
    ) -> Result<Option<String>> {
        let (Some(user), Some(Consent::Remember)) =
            (&session.user, self.login().map(|l| l.consent))
        else {
            return Ok(None);
        };
        let request = &session.request;
        if !request.assured {
            // Never used for such a client (always asked): not kept, so it pushes none out.
            return Ok(None);
        }
        let mut remembered = self.remembered(memory, now);
        let same = |r: &Remembered| {
            r.sub == user.sub && r.client_id == request.client_id && r.audience == request.audience
        };
        // A narrower consent now keeps the broader one given before.
        let mut scope = request.scope.clone();
        for r in remembered.iter().filter(|r| same(r)) {
            scope.extend(
                r.scope
                    .iter()
                    .filter(|s| !request.scope.contains(s))
                    .cloned(),
            );
        }
        remembered.retain(|r| !same(r));
        remembered.push(Remembered {
            sub: user.sub.clone(),
            client_id: request.client_id.clone(),
            audience: request.audience.clone(),
            scope,
            until: now.saturating_add(CONSENT_MEMORY_LIFETIME),
        });
        let excess = remembered.len().saturating_sub(MAX_REMEMBERED);
        remembered.drain(..excess);
        // The oldest are forgotten until the cookie fits what browsers keep.
        while !remembered.is_empty() {
            let until = remembered.iter().map(|r| r.until).max().unwrap_or(now);
            match self.sealers.consent.seal(&remembered, until) {
                Ok(sealed) if sealed.len() <= MAX_SESSION => return Ok(Some(sealed)),
                Ok(_) | Err(Error::Sealed(_)) => {
                    remembered.remove(0);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The unexpired consents a consent cookie holds.
    fn remembered(&self, memory: Option<&str>, now: i64) -> Vec<Remembered> {
        let mut list: Vec<Remembered> = memory
            .and_then(|m| self.sealers.consent.open(m, now))
            .unwrap_or_default();
        list.retain(|r| r.until > now);
        list
    }

    /// The user refused: `access_denied` back to the client (RFC 6749 §4.1.2.1), audited.
    pub async fn deny_authorization(
        &self,
        session: SignIn,
        request_id: &str,
        now: i64,
    ) -> AuthorizeError {
        let mut event = crate::service::event("authorization.denied", request_id, now);
        event.outcome = "failure".into();
        event.client_id = Some(session.request.client_id.clone());
        event.subject = session.user.as_ref().map(|u| u.sub.clone());
        event.audience = Some(session.request.audience.clone());
        event.reason = Some("access_denied: the user refused consent".into());
        self.denials.record(event);
        AuthorizeError::Redirect {
            redirect_uri: session.request.redirect_uri,
            state: session.request.state,
            error: ErrorResponse::new(ErrorKind::AccessDenied, "the user refused"),
        }
    }
}
