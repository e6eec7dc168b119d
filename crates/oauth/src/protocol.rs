//! What the endpoints answer: RFC 6749 §5.2 error responses (and their HTTP status), and the
//! request as the HTTP layer hands it over.

use serde_json::{json, Value};

use crate::error::Error;

/// An endpoint request, taken apart by the HTTP layer: the body (already bounded in size) and
/// the headers the protocol reads. Header values that were repeated arrive as several entries
/// so the protocol can refuse them.
#[derive(Debug, Default, Clone)]
pub struct Request<'a> {
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// Every `Authorization` header.
    pub authorization: Vec<&'a str>,
    /// Every `DPoP` header (RFC 9449 §4.1).
    pub dpop: Vec<&'a str>,
    /// The `Accept` header.
    pub accept: Option<&'a str>,
    /// The request body, or `None` when it exceeded the size limit.
    pub body: Option<&'a [u8]>,
    /// The request id, for audit events.
    pub request_id: &'a str,
}

/// An RFC 6749 §5.2 error code (and the extensions of RFC 7009, 8707, 9449).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed request: missing, repeated or bad parameter, wrong content type, oversized.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// The grant (a token-exchange subject token) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type or act on this token.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// A requested scope is unknown or not allowed.
    InvalidScope,
    /// RFC 8707: the resource (audience) is missing, unknown or not allowed.
    InvalidTarget,
    /// RFC 9449: the DPoP proof is invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the server's nonce (given in `DPoP-Nonce`).
    UseDpopNonce,
    /// RFC 7009: the token type cannot be revoked.
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1: the authorization endpoint serves `response_type=code` only.
    UnsupportedResponseType,
    /// `request` (a request object) is not supported (OpenID Connect Core §3.1.2.6; RFC 9101).
    RequestNotSupported,
    /// `request_uri` is not supported (OpenID Connect Core §3.1.2.6; RFC 9101).
    RequestUriNotSupported,
    /// RFC 6749 §4.1.2.1: the user refused consent.
    AccessDenied,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, but the user must sign in.
    LoginRequired,
    /// RFC 7591 §3.2.2: a redirect URI of a registration is refused.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: other client metadata of a registration is refused.
    InvalidClientMetadata,
    /// RFC 6750 §3.1: the bearer token (RFC 7591's initial access token) is missing or
    /// wrong (401).
    InvalidToken,
    /// Something failed on our side (500).
    ServerError,
    /// The database is unreachable (503).
    TemporarilyUnavailable,
}

impl ErrorKind {
    /// The registered error code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InvalidClient => "invalid_client",
            ErrorKind::InvalidGrant => "invalid_grant",
            ErrorKind::UnauthorizedClient => "unauthorized_client",
            ErrorKind::UnsupportedGrantType => "unsupported_grant_type",
            ErrorKind::InvalidScope => "invalid_scope",
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::InvalidDpopProof => "invalid_dpop_proof",
            ErrorKind::UseDpopNonce => "use_dpop_nonce",
            ErrorKind::UnsupportedTokenType => "unsupported_token_type",
            ErrorKind::UnsupportedResponseType => "unsupported_response_type",
            ErrorKind::RequestNotSupported => "request_not_supported",
            ErrorKind::RequestUriNotSupported => "request_uri_not_supported",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::LoginRequired => "login_required",
            ErrorKind::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorKind::InvalidClientMetadata => "invalid_client_metadata",
            ErrorKind::InvalidToken => "invalid_token",
            ErrorKind::ServerError => "server_error",
            ErrorKind::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 500/503 for our failures, else 400.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidClient | ErrorKind::InvalidToken => 401,
            ErrorKind::ServerError => 500,
            ErrorKind::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error response. The description is for the client and the audit trail; it never holds
/// a secret or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The error code.
    pub kind: ErrorKind,
    /// `error_description`.
    pub description: String,
    /// A fresh `DPoP-Nonce` to send along (with [`ErrorKind::UseDpopNonce`]).
    pub dpop_nonce: Option<String>,
    /// What the audit trail records instead of the description, when the client must not
    /// learn it (why client authentication failed).
    pub detail: Option<String>,
}

impl ErrorResponse {
    /// An error with a description.
    pub fn new(kind: ErrorKind, description: impl Into<String>) -> Self {
        ErrorResponse {
            kind,
            description: description.into(),
            dpop_nonce: None,
            detail: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `WWW-Authenticate` value an `invalid_client` response carries (RFC 6749 §5.2).
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::InvalidClient => Some("Basic realm=\"tokengate\""),
            ErrorKind::InvalidToken => Some("Bearer realm=\"tokengate\", error=\"invalid_token\""),
            _ => None,
        }
    }

    /// The JSON body, with the request id so operators can find the log line.
    pub fn body(&self, request_id: &str) -> Value {
        json!({
            "error": self.kind.as_str(),
            "error_description": self.description,
            "request_id": request_id,
        })
    }

    /// Our own failure: `temporarily_unavailable` (503) when the database cannot be reached,
    /// else `server_error` (500) naming only the error code; the detail goes to the log.
    pub(crate) fn ours(unavailable: bool, code: &str) -> Self {
        if unavailable {
            ErrorResponse::new(
                ErrorKind::TemporarilyUnavailable,
                "the database is unavailable; retry later",
            )
        } else {
            ErrorResponse::new(ErrorKind::ServerError, format!("internal error ({code})"))
        }
    }

    /// `error: description` (or the detail), for the audit trail; at most 256 characters.
    pub fn reason(&self) -> String {
        let text = self.detail.as_deref().unwrap_or(&self.description);
        let mut reason = format!("{}: {text}", self.kind.as_str());
        if let Some((cut, _)) = reason.char_indices().nth(256) {
            reason.truncate(cut);
        }
        reason
    }
}

/// Shorthand for an [`ErrorKind::InvalidRequest`].
pub(crate) fn invalid_request(description: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidRequest, description)
}

impl From<Error> for ErrorResponse {
    /// Our own failures: 503 when the database is unreachable, 500 otherwise. The detail goes
    /// to the log, not to the client.
    fn from(e: Error) -> Self {
        let unavailable = matches!(&e, Error::Store(s) if s.is_unavailable());
        ErrorResponse::ours(unavailable, e.code())
    }
}

impl From<store::StoreError> for ErrorResponse {
    fn from(e: store::StoreError) -> Self {
        Error::Store(e).into()
    }
}
