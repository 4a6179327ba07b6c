//! The token endpoint: authenticate the client, redeem the code once, issue tokens.

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::crypto::random::{constant_time_eq, hash_token};
use crate::crypto::signing::SigningAlg;
use crate::oidc::token::{self, Grant, TokenRequest, TokenResponse};
use crate::oidc::{OAuthError, client_auth, id_token};
use crate::store::{AccessTokenRecord, AccountStatus, ConsumedCode};

/// Client secrets are generated high-entropy values, so a SHA-256 hash suffices to store them
/// (no stretching needed); comparison is constant-time.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_token(presented).as_bytes(), stored_hash.as_bytes())
}

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::server_error("internal error").with_detail(e.to_string())
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        internal(e)
    }
}

/// The pairwise subject of an account at a client (OIDC Core §8.1), sector = client id.
pub fn pairwise_sub(state: &AppState, client_id: &str, account_id: &uuid::Uuid) -> String {
    state.data_key.pairwise_subject(client_id, &account_id.to_string())
}

/// The session id as one client sees it: pairwise too, so `sid` cannot join users either.
pub fn pairwise_sid(state: &AppState, client_id: &str, session_id: &uuid::Uuid) -> String {
    state.data_key.pairwise_subject(&format!("sid:{client_id}"), &session_id.to_string())
}

pub async fn exchange(
    state: &AppState,
    authorization: Option<&str>,
    req: &TokenRequest,
    now: i64,
) -> Result<(TokenResponse, bool), (OAuthError, bool)> {
    // A request without a usable grant is malformed whoever sent it (RFC 6749 §5.2).
    token::check_grant_type(req).map_err(|e| (e, authorization.is_some()))?;
    let presented = client_auth::extract(authorization, req.client_id.as_deref(), req.client_secret.as_deref())
        .map_err(|e| (e, authorization.is_some()))?;
    let basic = presented.used_basic();
    let fail = |e: OAuthError| (e, basic);
    let client = state
        .store
        .get_client(presented.client_id())
        .await
        .map_err(|e| fail(internal(e)))?
        .ok_or_else(|| fail(OAuthError::invalid_client("client authentication failed")))?;
    client_auth::check(&client, &presented, secret_matches).map_err(fail)?;
    let Grant::AuthorizationCode { code } = token::check_grant_type(req).map_err(fail)?;
    let (code, grant) =
        match state.store.consume_auth_code(&hash_token(code), now).await.map_err(|e| fail(internal(e)))? {
            ConsumedCode::Fresh(c, g) => (c, g),
            ConsumedCode::AlreadyUsed(_, g) => {
                // RFC 6749 §4.1.2: "If an authorization code is used more than once, the
                // authorization server MUST deny the request and SHOULD revoke (when possible) all
                // tokens previously issued based on that authorization code."
                let audit = AuditEvent::new(now, "token.code_replayed", format!("client:{}", client.id))
                    .client(&client.id)
                    .account(g.account_id)
                    .detail("grant", g.id.to_string());
                state.store.revoke_grant(g.id, now, &audit).await.map_err(|e| fail(internal(e)))?;
                return Err(fail(OAuthError::invalid_grant("the code was already used; its tokens are revoked")));
            }
            ConsumedCode::NotFound => return Err(fail(OAuthError::invalid_grant("unknown code"))),
        };
    token::check_code(&code, &grant, &client.id, req, now).map_err(fail)?;
    let account = state
        .store
        .get_account(grant.account_id)
        .await
        .map_err(|e| fail(internal(e)))?
        .filter(|a| a.status == AccountStatus::Active)
        .ok_or_else(|| fail(OAuthError::invalid_grant("the account is not active")))?;

    let access_token = super::random_token().map_err(|e| fail(e.into()))?;
    let expires_in = state.config.tokens.access_token_seconds;
    state
        .store
        .create_access_token(&AccessTokenRecord {
            token_hash: hash_token(&access_token),
            grant_id: grant.id,
            scope: grant.scope.clone(),
            created_at: now,
            expires_at: now + expires_in,
        })
        .await
        .map_err(|e| fail(internal(e)))?;

    let alg: SigningAlg = client
        .id_token_alg
        .parse()
        .map_err(|_| fail(internal(format!("client {} has an unknown id_token_alg", client.id))))?;
    let key = state.keys.key_for(alg).ok_or_else(|| fail(internal(format!("no {alg} signing key"))))?;
    let sub = pairwise_sub(state, &client.id, &account.id);
    let sid = pairwise_sid(state, &client.id, &grant.session_id);
    let id_token = id_token::sign(
        key,
        &id_token::IdTokenInput {
            issuer: state.issuer(),
            client_id: &client.id,
            subject: &sub,
            nonce: code.data.nonce.as_deref(),
            auth_time: code.data.auth_time,
            acr: &code.data.acr,
            amr: &code.data.amr,
            as_level: code.data.as_level,
            mechanism: &code.data.mechanism,
            sid: &sid,
            issued_at: now,
            expires_at: now + state.config.tokens.id_token_seconds,
            access_token: &access_token,
        },
    )
    .map_err(fail)?;
    Ok((TokenResponse { access_token, token_type: "Bearer".into(), expires_in, id_token, scope: grant.scope }, basic))
}
