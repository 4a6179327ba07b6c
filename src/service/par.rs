//! The pushed authorization request endpoint (RFC 9126): the client authenticates as at the
//! token endpoint, its authorization parameters go through the same checks as at the
//! authorization endpoint, and the validated request waits under a one-time `request_uri`.

use super::token::{ClientCredentials, authenticate_client};
use crate::app::AppState;
use crate::crypto::random::hash_token;
use crate::oidc::OAuthError;
use crate::oidc::authorize::{self, AuthorizeError, REQUEST_URI_PREFIX, RawAuthorizeRequest};
use crate::store::PushedRequest;
use serde::{Deserialize, Serialize};

/// The client authentication parameters of a push. RFC 9126 §2.1: "When present in a pushed
/// authorization request, they are relied upon only for client authentication and are not
/// germane to the authorization request itself."
#[derive(Debug, Default, Deserialize)]
pub struct PushAuth {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

/// RFC 9126 §2.2, sent with 201 Created.
#[derive(Debug, Serialize)]
pub struct PushResponse {
    pub request_uri: String,
    pub expires_in: i64,
}

/// Authenticates the client, validates and stores its authorization request. Every error is an
/// OAuth error for a JSON response (RFC 9126 §2.3): nothing is redirected from here.
pub async fn push(
    state: &AppState,
    authorization: Option<&str>,
    auth: &PushAuth,
    raw: &RawAuthorizeRequest,
    now: i64,
) -> Result<PushResponse, OAuthError> {
    // RFC 9126 §2: "The rules for client authentication as defined in [RFC6749] for token
    // endpoint requests, including the applicable authentication methods, apply for the PAR
    // endpoint as well." Public clients send their client_id alone.
    let creds = ClientCredentials {
        authorization,
        client_id: auth.client_id.as_deref(),
        client_secret: auth.client_secret.as_deref(),
        assertion_type: auth.client_assertion_type.as_deref(),
        assertion: auth.client_assertion.as_deref(),
    };
    let client = authenticate_client(state, &creds, &format!("{}/par", state.issuer()), now).await?;
    // RFC 9126 §2.1: "as a required authorization request parameter, it is similarly required
    // in a pushed authorization request."
    if raw.client_id.as_deref() != Some(client.id.as_str()) {
        return Err(OAuthError::invalid_request("client_id is missing or is not the authenticated client"));
    }
    // RFC 9126 §2.1: "The authorization server MUST process the request as follows: … 3. Validate
    // the pushed request as it would an authorization request sent to the authorization
    // endpoint." Errors that would be a page or a redirect there are JSON here.
    let req = authorize::validate(raw, &client).map_err(|e| match e {
        AuthorizeError::Page(error) | AuthorizeError::Redirect { error, .. } => error,
    })?;
    let id = super::random_token()?;
    let lifetime = state.config.tokens.par_seconds;
    state
        .store
        .create_pushed_request(&PushedRequest {
            uri_hash: hash_token(&id),
            client_id: client.id.clone(),
            request_json: serde_json::to_string(&req)
                .map_err(|e| OAuthError::server_error("internal error").with_detail(e.to_string()))?,
            created_at: now,
            expires_at: now + lifetime,
        })
        .await?;
    Ok(PushResponse { request_uri: format!("{REQUEST_URI_PREFIX}{id}"), expires_in: lifetime })
}
