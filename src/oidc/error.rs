//! OAuth 2.0 / OpenID Connect error values. `description` is public (sent to the client);
//! `detail` is for the log only and never leaves the server.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC error code, e.g. `invalid_grant`.
    pub code: &'static str,
    /// Human-readable, safe to show the client (`error_description`).
    pub description: String,
    /// HTTP status for JSON responses (400 unless the RFC says otherwise).
    pub status: u16,
    /// Internal detail for logs.
    pub detail: Option<String>,
}

#[derive(Serialize)]
pub struct OAuthErrorBody<'a> {
    pub error: &'a str,
    pub error_description: &'a str,
}

macro_rules! constructors {
    ($($name:ident => $status:expr),* $(,)?) => {
        $(
            pub fn $name(description: impl Into<String>) -> Self {
                OAuthError { code: stringify!($name), description: description.into(), status: $status, detail: None }
            }
        )*
    };
}

impl OAuthError {
    constructors! {
        invalid_request => 400,
        // RFC 6749 §5.2: 401 when the client tried to authenticate (with WWW-Authenticate).
        invalid_client => 401,
        invalid_grant => 400,
        unauthorized_client => 400,
        unsupported_grant_type => 400,
        invalid_scope => 400,
        access_denied => 403,
        unsupported_response_type => 400,
        server_error => 500,
        temporarily_unavailable => 503,
        login_required => 400,
        interaction_required => 400,
        request_not_supported => 400,
        request_uri_not_supported => 400,
        // OIDC Core §3.1.2.6, RFC 9101 §7: the request_uri is unknown, expired, used or not
        // the client's (RFC 9126 §4).
        invalid_request_uri => 400,
        unmet_authentication_requirements => 400,
        // RFC 6750 §3.1
        invalid_token => 401,
        insufficient_scope => 403,
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn body(&self) -> OAuthErrorBody<'_> {
        OAuthErrorBody { error: self.code, error_description: &self.description }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}
