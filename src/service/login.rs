//! Password sign-in (1FA) and the gateway's browser session.

use super::{ServiceError, random_token};
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
    /// Too many failures for this user name or from this address (`service::throttle`); the
    /// password was not checked. The same for a name with no account.
    #[error("too many attempts")]
    Throttled(super::throttle::Refused),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Checks a user name and password. Unknown names cost a dummy Argon2 verification so their
/// timing matches a wrong password. A hash made with outdated parameters is upgraded.
///
/// Throttled (`service::throttle`): attempts on one user name take turns (`LoginGate`); the
/// source address and the user name must not be locked; a failure — known name or not,
/// identically — is counted before the next attempt on that name is let in, and a success
/// clears the count.
pub async fn check_password(
    state: &AppState,
    username: &str,
    pw: &str,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Account, LoginError> {
    let username = super::accounts::canonical_username(username);
    let _turn = state.login_gate.enter(&username).await;
    // A place on the hashing pool first: a sign-in refused for load (503) counts nowhere.
    let slot = super::hashing::reserve(state)?;
    let keys = super::throttle::login_keys(state, &username, source);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (account, counters) =
        state.store.find_account_for_sign_in(&username, &keys).await.map_err(ServiceError::from)?;
    let check = super::throttle::check_login(&counters, now).map_err(LoginError::Throttled)?;
    let params = state.password_params;
    let Some((account, hash)) = account.and_then(|a| a.password_hash.clone().map(|h| (a, h))) else {
        slot.dummy_verify(pw.to_string(), params).await?;
        audit_failure(state, None, &username, now).await?;
        super::throttle::login_failed(state, &username, None, source, now).await?;
        return Err(LoginError::BadCredentials);
    };
    let ok = slot.verify(pw.to_string(), hash.clone()).await?;
    if !ok {
        audit_failure(state, Some(account.id), &username, now).await?;
        super::throttle::login_failed(state, &username, Some(account.id), source, now).await?;
        return Err(LoginError::BadCredentials);
    }
    super::throttle::login_succeeded(state, &username, check).await?;
    if account.status != AccountStatus::Active {
        return Err(LoginError::Suspended);
    }
    // Only when the stored hash is outdated: a second Argon2 run, and only if the pool has room
    // (the upgrade waits for the next sign-in otherwise).
    if password::needs_rehash(&hash, params)
        && let Some(slot) = state.hashing.try_reserve()
        && let Ok(Ok(new_hash)) = slot.hash(pw.to_string(), params).await
    {
        state.store.update_password_hash(account.id, &new_hash, now).await.map_err(ServiceError::from)?;
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

/// The citizen signed in again as the account of their current session (a re-authentication:
/// `prompt=login`, `max_age`, a stale step-up): the password factor joins that session, whose
/// cookie is rotated, instead of a new session replacing it — so the portals using it keep
/// their `sid` and tokens and are not sent a logout. Returns the new cookie value, or `None`
/// when the session is gone (then start a new one).
pub async fn reauthenticate(
    state: &AppState,
    session: &SessionRecord,
    account: &Account,
    now: i64,
) -> Result<Option<String>, ServiceError> {
    let token = random_token()?;
    let factor = VerifiedFactor { method: Method::Password, at: now };
    let audit = AuditEvent::new(now, "login.reauthenticated", format!("account:{}", account.id))
        .account(account.id)
        .detail("amr", factor.method.amr())
        .detail("session", session.id.to_string());
    let added = state.store.add_session_factor(&session.token_hash, &hash_token(&token), &factor, &audit).await?;
    if added {
        state.metrics.sign_in("success", "pwd");
    }
    Ok(added.then_some(token))
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
    let first = session.factors.first().and_then(|f| f.method.amr().first().copied()).unwrap_or("none");
    state.metrics.sign_in("success", first);
    // A sign-in that proved a factor other than the password (a passkey, a certificate) is the
    // citizen's way out of a password lock (NIST SP 800-63B §5.2.2 lets the subscriber unlock
    // with another authenticator).
    if session.factors.iter().any(|f| f.method != Method::Password) {
        let actor = format!("account:{}", account.id);
        super::throttle::unlock(state, &account.username, account.id, &actor, "second_factor", now).await?;
    }
    Ok((token, session))
}

pub fn password_factor(now: i64) -> Vec<VerifiedFactor> {
    vec![VerifiedFactor { method: Method::Password, at: now }]
}

/// The signed-in session behind a cookie value, with its account (active accounts only).
pub async fn current(
    state: &AppState,
    cookie: &str,
    user_agent: Option<&str>,
    now: i64,
) -> Result<Option<(SessionRecord, Account)>, ServiceError> {
    let Some(session) = state.store.find_session(&hash_token(cookie), now).await? else {
        return Ok(None);
    };
    // The idle timeout: a session unused for `session.idle_seconds` is over (the absolute one
    // is `expires_at`). Each request keeps it alive, recording the device on first sight.
    let idle = state.config.session.idle_seconds;
    let device = user_agent.and_then(super::sessions::device_summary);
    if !state.store.touch_session(session.id, now, idle, device.as_deref()).await? {
        return Ok(None);
    }
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
