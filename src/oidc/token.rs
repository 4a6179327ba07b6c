//! The token endpoint's request and the authorization_code grant checks (RFC 6749 §4.1.3,
//! RFC 7636 §4.6, OIDC Core §3.1.3.2).

use super::{OAuthError, pkce};
use crate::model::{AuthCodeRecord, GrantRecord};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub id_token: String,
    pub scope: String,
}

pub enum Grant<'a> {
    AuthorizationCode { code: &'a str },
}

/// RFC 6749 §5.2: `unsupported_grant_type` for a grant the server does not support.
pub fn check_grant_type(req: &TokenRequest) -> Result<Grant<'_>, OAuthError> {
    match req.grant_type.as_deref() {
        Some("authorization_code") => match req.code.as_deref() {
            Some(code) if !code.is_empty() => Ok(Grant::AuthorizationCode { code }),
            _ => Err(OAuthError::invalid_request("code is missing")),
        },
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some(_) => Err(OAuthError::unsupported_grant_type("only authorization_code is supported")),
    }
}

/// Checks a code that was just consumed for the first time, for the authenticated client.
pub fn check_code(
    code: &AuthCodeRecord,
    grant: &GrantRecord,
    client_id: &str,
    req: &TokenRequest,
    now: i64,
) -> Result<(), OAuthError> {
    // RFC 6749 §4.1.3: "ensure that the authorization code was issued to the authenticated
    // confidential client, or if the client is public, ensure that the code was issued to
    // "client_id" in the request".
    if grant.client_id != client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if grant.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    }
    // "verify that the authorization code is valid" — RFC 6749 §4.1.2: short-lived.
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    // "ensure that the "redirect_uri" parameter is present if … included in the initial
    // authorization request …, and if included ensure that their values are identical."
    // OIDC always includes it, so it is always required here.
    if req.redirect_uri.as_deref() != Some(code.data.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&code.data.code_challenge, req.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) => pkce::verify(challenge, verifier)?,
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        // RFC 9700 §2.1.1: a code_verifier for a code issued without a challenge MUST be
        // rejected (prevents PKCE downgrade).
        (None, Some(_)) => return Err(OAuthError::invalid_grant("code_verifier sent but no code_challenge was")),
        (None, None) => {}
    }
    Ok(())
}
