//! The userinfo endpoint (OIDC Core §5.3): claims by the scopes of the access token's grant.

use crate::app::AppState;
use crate::crypto::random::hash_token;
use crate::oidc::OAuthError;
use crate::oidc::claims::{self, UserProfile};
use crate::store::AccountStatus;
use serde_json::{Map, Value};

pub async fn userinfo(state: &AppState, access_token: &str, now: i64) -> Result<Map<String, Value>, OAuthError> {
    let invalid = || OAuthError::invalid_token("the access token is invalid, expired or revoked");
    let internal = |e: crate::store::StoreError| OAuthError::server_error("internal error").with_detail(e.to_string());
    let (token, grant) =
        state.store.find_access_token(&hash_token(access_token)).await.map_err(internal)?.ok_or_else(invalid)?;
    if token.expires_at <= now || grant.revoked_at.is_some() {
        return Err(invalid());
    }
    // client_credentials tokens stand for no citizen: nothing to tell.
    let Some(account_id) = grant.account_id else {
        return Err(OAuthError::invalid_token("the access token does not stand for a citizen"));
    };
    let account = state
        .store
        .get_account(account_id)
        .await
        .map_err(internal)?
        .filter(|a| a.status == AccountStatus::Active)
        .ok_or_else(invalid)?;
    let scopes: Vec<&str> = token.scope.split(' ').collect();
    let identity = account.identity.as_ref();
    let profile = UserProfile {
        subject: super::token::pairwise_sub(state, &grant.client_id, &account.id),
        username: account.username.clone(),
        as_level: account.as_level.number(),
        full_name: identity.map(|i| i.full_name.clone()),
        birth_date: identity.map(|i| i.birth_date.clone()),
        sex: identity.map(|i| i.sex.clone()),
        email: account.email.clone(),
        email_verified: account.email_verified_at.is_some(),
        phone: account.phone.clone(),
        phone_verified: account.phone_verified_at.is_some(),
        national_id: if scopes.contains(&"national_id") {
            super::accounts::decrypt_national_id(state, &account)
        } else {
            None
        },
    };
    let mut out = claims::userinfo(&scopes, &profile);
    if scopes.contains(&"verification")
        && let Some(v) = super::proofing::verified_claims(state, &account)
            .await
            .map_err(|e| OAuthError::server_error("internal error").with_detail(e.to_string()))?
    {
        out.insert("verified_claims".into(), v);
    }
    Ok(out)
}
