//! The token endpoint's request and each grant's checks (RFC 6749 §4.1.3, §4.4, §6; RFC 7636
//! §4.6; OIDC Core §3.1.3, §12), and the shapes of the introspection and revocation requests.

use super::{OAuthError, pkce};
use crate::model::{AuthCodeRecord, GrantRecord, RefreshTokenRecord};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

/// The body of a successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// The approved RFC 9396 authorization details (§7): what the access token allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Grant<'a> {
    AuthorizationCode { code: &'a str },
    RefreshToken { token: &'a str },
    ClientCredentials,
}

impl Grant<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken { .. } => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// RFC 6749 §5.2: `unsupported_grant_type` for a grant the server does not support, and
/// `invalid_request` for a missing parameter.
pub fn check_grant_type(req: &TokenRequest) -> Result<Grant<'_>, OAuthError> {
    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    match req.grant_type.as_deref() {
        Some("authorization_code") => nonempty(&req.code)
            .map(|code| Grant::AuthorizationCode { code })
            .ok_or_else(|| OAuthError::invalid_request("code is missing")),
        Some("refresh_token") => nonempty(&req.refresh_token)
            .map(|token| Grant::RefreshToken { token })
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing")),
        Some("client_credentials") => Ok(Grant::ClientCredentials),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some(_) => Err(OAuthError::unsupported_grant_type("unsupported grant_type")),
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

/// Checks a refresh token that was just consumed for the first time (RFC 6749 §6).
pub fn check_refresh(
    token: &RefreshTokenRecord,
    grant: &GrantRecord,
    client_id: &str,
    now: i64,
) -> Result<(), OAuthError> {
    // §6: "validate the refresh token and ensure that it was issued to the authenticated client".
    if grant.client_id != client_id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    if grant.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    }
    if now >= token.expires_at || now >= grant.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    Ok(())
}

/// The scope of a refreshed or client-credentials token. RFC 6749 §6: "The requested scope
/// MUST NOT include any scope not originally granted"; omitted means the original scope.
pub fn narrow_scope(requested: Option<&str>, granted: &[&str]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested.filter(|s| !s.trim().is_empty()) else {
        return Ok(granted.iter().map(|s| s.to_string()).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.contains(&s) {
            return Err(OAuthError::invalid_scope(format!("scope {s} was not granted")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// RFC 7009 §2.1 and RFC 7662 §2.1 requests.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenHintRequest {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types() {
        let r = |g: &str, code: Option<&str>, rt: Option<&str>| TokenRequest {
            grant_type: Some(g.into()),
            code: code.map(String::from),
            refresh_token: rt.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            check_grant_type(&r("authorization_code", Some("c"), None)),
            Ok(Grant::AuthorizationCode { code: "c" })
        );
        assert_eq!(check_grant_type(&r("refresh_token", None, Some("t"))), Ok(Grant::RefreshToken { token: "t" }));
        assert_eq!(check_grant_type(&r("client_credentials", None, None)), Ok(Grant::ClientCredentials));
        assert_eq!(check_grant_type(&r("refresh_token", None, None)).map_err(|e| e.code), Err("invalid_request"));
        assert_eq!(check_grant_type(&r("password", None, None)).map_err(|e| e.code), Err("unsupported_grant_type"));
    }

    #[test]
    fn scope_narrowing() {
        let granted = ["openid", "profile", "offline_access"];
        assert_eq!(narrow_scope(None, &granted).map(|v| v.len()), Ok(3));
        assert_eq!(narrow_scope(Some("openid profile"), &granted), Ok(vec!["openid".into(), "profile".into()]));
        assert_eq!(narrow_scope(Some("openid national_id"), &granted).map_err(|e| e.code), Err("invalid_scope"));
    }
}
