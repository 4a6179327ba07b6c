//! ID token contents (OIDC Core §2) with our extra claims, built and signed with the
//! `openidconnect` crate's provider-side types.

use super::OAuthError;
use crate::crypto::signing::SigningKey;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationContextClass, AuthenticationMethodReference, IdToken,
    IdTokenClaims, IssuerUrl, Nonce, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

/// Claims beyond OIDC Core: the registration level and mechanism as plain values (the `acr`
/// carries both, these save portals from parsing it) and the session id `sid` (OIDC
/// Front-/Back-Channel Logout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XacthucClaims {
    pub as_level: u8,
    pub auth_mechanism: String,
    pub sid: String,
    /// OIDC4IDA `verified_claims`, under the `verification` scope (super::verified_claims).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_claims: Option<serde_json::Value>,
}

impl AdditionalClaims for XacthucClaims {}

pub type XacthucIdToken =
    IdToken<XacthucClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

pub struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub acr: &'a str,
    pub amr: &'a [String],
    pub as_level: u8,
    pub mechanism: &'a str,
    pub sid: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Bound by `at_hash` (OIDC Core §3.1.3.6).
    pub access_token: &'a str,
    pub verified_claims: Option<serde_json::Value>,
}

fn time(t: i64) -> Result<DateTime<Utc>, OAuthError> {
    DateTime::from_timestamp(t, 0).ok_or_else(|| OAuthError::server_error("clock out of range"))
}

pub fn sign(key: &SigningKey, input: &IdTokenInput<'_>) -> Result<String, OAuthError> {
    let issuer = IssuerUrl::new(input.issuer.to_string())
        .map_err(|e| OAuthError::server_error("issuer is not a URL").with_detail(e.to_string()))?;
    let claims = IdTokenClaims::new(
        issuer,
        vec![Audience::new(input.client_id.to_string())],
        time(input.expires_at)?,
        time(input.issued_at)?,
        StandardClaims::new(SubjectIdentifier::new(input.subject.to_string())),
        XacthucClaims {
            as_level: input.as_level,
            auth_mechanism: input.mechanism.to_string(),
            sid: input.sid.to_string(),
            verified_claims: input.verified_claims.clone(),
        },
    )
    .set_nonce(input.nonce.map(|n| Nonce::new(n.to_string())))
    .set_auth_time(Some(time(input.auth_time)?))
    .set_auth_context_ref(Some(AuthenticationContextClass::new(input.acr.to_string())))
    .set_auth_method_refs(Some(input.amr.iter().map(|m| AuthenticationMethodReference::new(m.clone())).collect()));
    let access_token = AccessToken::new(input.access_token.to_string());
    let token = XacthucIdToken::new(claims, key, key.alg().to_core(), Some(&access_token), None)
        .map_err(|e| OAuthError::server_error("could not sign the ID token").with_detail(e.to_string()))?;
    Ok(token.to_string())
}
