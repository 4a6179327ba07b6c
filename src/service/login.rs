//! Password sign-in (1FA) and the gateway's browser session.

use super::{ServiceError, blocking, random_token};
use crate::app::AppState;
use crate::assurance::{Method, VerifiedFactor};
use crate::audit::AuditEvent;
use crate::authn::password;
use crate::crypto::random::hash_token;
use crate::store::{Account, AccountStatus, SessionRecord};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: the same answer for both, in the same time.
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("account suspended")]
    Suspended,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Checks a user name and password. Unknown names cost a dummy Argon2 verification so their
/// timing matches a wrong password. A hash made with outdated parameters is upgraded.
pub async fn check_password(state: &AppState, username: &str, pw: &str, now: i64) -> Result<Account, LoginError> {
    let username = super::accounts::canonical_username(username);
    let account = state.store.find_account_by_username(&username).await.map_err(ServiceError::from)?;
    let params = state.password_params;
    let Some((account, hash)) = account.and_then(|a| a.password_hash.clone().map(|h| (a, h))) else {
        let pw = pw.to_string();
        blocking(state, move || password::dummy_verify(&pw, params)).await?;
        audit_failure(state, None, &username, now).await?;
        return Err(LoginError::BadCredentials);
    };
    let candidate = pw.to_string();
    let phc = hash.clone();
    let ok = blocking(state, move || password::verify_password(&candidate, &phc)).await?;
    if !ok {
        audit_failure(state, Some(account.id), &username, now).await?;
        return Err(LoginError::BadCredentials);
    }
    if account.status != AccountStatus::Active {
        return Err(LoginError::Suspended);
    }
    if password::needs_rehash(&hash, params) {
        let pw = pw.to_string();
        if let Ok(Ok(new_hash)) = blocking(state, move || password::hash_password(&pw, params)).await {
            state.store.update_password_hash(account.id, &new_hash, now).await.map_err(ServiceError::from)?;
        }
    }
    Ok(account)
}

async fn audit_failure(state: &AppState, account: Option<Uuid>, username: &str, now: i64) -> Result<(), ServiceError> {
    let mut event = AuditEvent::new(now, "login.failed", "anonymous").detail("method", "password");
    match account {
        Some(id) => event = event.account(id),
        // An unknown name is kept only as a keyed hash: it may be someone's mistyped password.
        None => event = event.detail("username_hash", state.data_key.keyed_hash("audit-username", username.as_bytes())),
    }
    state.store.append_audit(&event).await?;
    Ok(())
}

/// A new session (always a new id: no fixation) with the factors just verified. Returns the
/// cookie value; only its hash is stored.
pub async fn start_session(
    state: &AppState,
    account: &Account,
    factors: Vec<VerifiedFactor>,
    now: i64,
) -> Result<(String, SessionRecord), ServiceError> {
    let token = random_token()?;
    let session = SessionRecord {
        id: Uuid::now_v7(),
        token_hash: hash_token(&token),
        account_id: account.id,
        factors,
        created_at: now,
        expires_at: now + state.config.session.lifetime_seconds,
    };
    let methods: Vec<&str> = session.factors.iter().flat_map(|f| f.method.amr().iter().copied()).collect();
    let audit = AuditEvent::new(now, "login.succeeded", format!("account:{}", account.id))
        .account(account.id)
        .detail("amr", methods)
        .detail("session", session.id.to_string());
    state.store.create_session(&session, &audit).await?;
    Ok((token, session))
}

pub fn password_factor(now: i64) -> Vec<VerifiedFactor> {
    vec![VerifiedFactor { method: Method::Password, at: now }]
}

/// The signed-in session behind a cookie value, with its account (active accounts only).
pub async fn current(
    state: &AppState,
    cookie: &str,
    now: i64,
) -> Result<Option<(SessionRecord, Account)>, ServiceError> {
    let Some(session) = state.store.find_session(&hash_token(cookie), now).await? else {
        return Ok(None);
    };
    match state.store.get_account(session.account_id).await? {
        Some(a) if a.status == AccountStatus::Active => Ok(Some((session, a))),
        _ => Ok(None),
    }
}

/// Removes a session row that is no longer live (expired): nothing to tell portals about.
pub async fn logout(state: &AppState, cookie: &str, account: Uuid, now: i64) -> Result<(), ServiceError> {
    let audit = AuditEvent::new(now, "logout", format!("account:{account}")).account(account);
    state.store.delete_session(&hash_token(cookie), now, &audit, &[]).await?;
    Ok(())
}
