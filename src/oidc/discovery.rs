//! The discovery document (OpenID Connect Discovery 1.0 §3) advertising exactly what is
//! implemented, built with `openidconnect`'s `ProviderMetadata`.

use crate::assurance::Acr;
use crate::crypto::signing::SigningAlg;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthenticationContextClass, IssuerUrl, JsonWebKeySetUrl, LanguageTag,
    ProviderMetadata, ResponseTypes, Scope, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

/// Metadata from RFCs newer than Discovery 1.0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtraMetadata {
    /// RFC 8414 §2 (PKCE methods).
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 8414 §2 / RFC 7009.
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2 / RFC 7662.
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: we send `iss` in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// RFC 9126 §5.
    pub pushed_authorization_request_endpoint: String,
    /// RFC 9126 §5: only some clients are required to push (`require_par`), not all.
    pub require_pushed_authorization_requests: bool,
    /// OpenID Connect RP-Initiated Logout 1.0 §2.1.
    pub end_session_endpoint: String,
    /// OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens are sent, and carry `sid`.
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    /// RFC 9396 §10: the authorization details types this server understands.
    pub authorization_details_types_supported: Vec<String>,
    /// OpenID Connect for Identity Assurance 1.0 §8: `verified_claims` under the
    /// `verification` scope (super::verified_claims).
    pub verified_claims_supported: bool,
    pub trust_frameworks_supported: Vec<String>,
    pub evidence_supported: Vec<String>,
    pub documents_supported: Vec<String>,
    pub claims_in_verified_claims_supported: Vec<String>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

pub type XacthucProviderMetadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Claims the provider can release (by scope; see `claims`).
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "as_level",
    "auth_mechanism",
    "name",
    "birthdate",
    "gender",
    "preferred_username",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "national_id",
];

/// Client authentication at introspection and revocation (public clients cannot use them).
const CLIENT_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "private_key_jwt"];

pub fn metadata(issuer: &str, algs: &[SigningAlg]) -> Result<XacthucProviderMetadata, url::ParseError> {
    let url = |path: &str| format!("{issuer}{path}");
    Ok(XacthucProviderMetadata::new(
        IssuerUrl::new(issuer.to_string())?,
        AuthUrl::new(url("/authorize"))?,
        JsonWebKeySetUrl::new(url("/jwks.json"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        // Pairwise by default so portals cannot join their users on `sub` (OIDC Core §8).
        vec![CoreSubjectIdentifierType::Pairwise],
        algs.iter().map(|a| a.to_core()).collect(),
        ExtraMetadata {
            code_challenge_methods_supported: vec!["S256".into()],
            revocation_endpoint: url("/revoke"),
            revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS.iter().map(|s| s.to_string()).collect(),
            introspection_endpoint: url("/introspect"),
            introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS.iter().map(|s| s.to_string()).collect(),
            authorization_response_iss_parameter_supported: true,
            pushed_authorization_request_endpoint: url("/par"),
            require_pushed_authorization_requests: false,
            end_session_endpoint: url("/logout/end"),
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            authorization_details_types_supported: vec!["payment".into(), "result_receipt".into()],
            verified_claims_supported: true,
            trust_frameworks_supported: vec![super::verified_claims::TRUST_FRAMEWORK.into()],
            evidence_supported: super::verified_claims::EVIDENCE_SUPPORTED.iter().map(|s| s.to_string()).collect(),
            documents_supported: super::verified_claims::DOCUMENTS_SUPPORTED.iter().map(|s| s.to_string()).collect(),
            claims_in_verified_claims_supported: vec!["name".into(), "birthdate".into()],
        },
    )
    .set_token_endpoint(Some(TokenUrl::new(url("/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(url("/userinfo"))?))
    .set_scopes_supported(Some(super::SUPPORTED_SCOPES.iter().map(|s| Scope::new(s.to_string())).collect()))
    .set_claims_supported(Some(CLAIMS_SUPPORTED.iter().map(|c| CoreClaimName::new(c.to_string())).collect()))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query, CoreResponseMode::FormPost]))
    .set_acr_values_supported(Some(Acr::all().iter().map(|a| AuthenticationContextClass::new(a.to_string())).collect()))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::PrivateKeyJwt,
        CoreClientAuthMethod::None,
    ]))
    .set_token_endpoint_auth_signing_alg_values_supported(Some(algs.iter().map(|a| a.to_core()).collect()))
    .set_claim_types_supported(Some(vec![CoreClaimType::Normal]))
    .set_claims_parameter_supported(Some(true))
    // Discovery §3: request_uri_parameter_supported defaults to true when omitted; say false.
    .set_request_parameter_supported(Some(false))
    .set_request_uri_parameter_supported(Some(false))
    .set_ui_locales_supported(Some(vec![LanguageTag::new("vi".into()), LanguageTag::new("en".into())])))
}
