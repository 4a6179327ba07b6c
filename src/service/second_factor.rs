//! Second factors: enrolling an authenticator app (TOTP), recovery codes, and the second step
//! of a sign-in, which adds a factor to the session (and rotates its cookie, since the
//! session's privileges rise).

use super::{ServiceError, random_token};
use crate::app::AppState;
use crate::assurance::{Mechanism, Method, VerifiedFactor};
use crate::audit::AuditEvent;
use crate::authn::{recovery, totp};
use crate::crypto::random::hash_token;
use crate::i18n::Lang;
use crate::store::{Account, SessionRecord, TotpCredential};
use uuid::Uuid;

/// A sign-in older than this no longer allows removing a factor (issue 4: "removal needs a
/// fresh sign-in").
pub const FRESH_SIGN_IN_SECONDS: i64 = 300;

/// Failed second-factor attempts allowed within [`FAILURE_WINDOW_SECONDS`] before the second
/// factor locks for [`LOCK_SECONDS`]. A 6-digit code guessed 5 times per 15 minutes takes on
/// average years to hit. One counter covers every second-factor method, so alternating methods
/// gains nothing.
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW_SECONDS: i64 = 900;
pub const LOCK_SECONDS: i64 = 900;
pub(crate) const LOCK_KEY: &str = "second_factor";
/// Every failed attempt is answered this much later: guessing slows down before it locks.
pub const FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(750);

#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    #[error("{}", .0.message(Lang::En))]
    Totp(totp::TotpError),
    #[error("unknown or used recovery code")]
    RecoveryCode,
    #[error("no such authenticator")]
    NotFound,
    #[error("a recent sign-in is needed")]
    NotFresh,
    #[error("the account would be left without a second factor it relies on")]
    LastFactor,
    #[error("too many failed attempts; locked until {0}")]
    Locked(i64),
    #[error("{0}")]
    Otp(super::otp::OtpError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for SecondFactorError {
    fn from(e: crate::store::StoreError) -> Self {
        SecondFactorError::Service(e.into())
    }
}

fn actor(account: &Account) -> String {
    format!("account:{}", account.id)
}

/// The strongest mechanism an account can reach with what it has enrolled: a passkey with user
/// verification alone reaches `mfa` (possession and inherence); a key without it is possession,
/// `2fa` with a password; a confirmed authenticator app, a verified contact or unused recovery
/// codes make `2fa` reachable.
pub async fn reachable_mechanism(state: &AppState, account: &Account) -> Result<Mechanism, ServiceError> {
    let passkeys = state.store.list_passkeys(account.id).await?;
    if passkeys.iter().any(|p| p.user_verified) {
        return Ok(Mechanism::MultiFactor);
    }
    let without = reachable_without_passkeys(state, account).await?;
    if !passkeys.is_empty() && account.password_hash.is_some() {
        return Ok(without.max(Mechanism::TwoFactor));
    }
    Ok(without)
}

/// [`reachable_mechanism`] leaving passkeys out (whether removing one leaves a second factor).
pub async fn reachable_without_passkeys(state: &AppState, account: &Account) -> Result<Mechanism, ServiceError> {
    let apps = state.store.list_totp(account.id).await?;
    // A verified contact counts only while its channel can actually deliver codes.
    let can = |c| state.notifier.can_send(c);
    let verified_contact = (account.email_verified_at.is_some() && can(crate::notify::Channel::Email))
        || (account.phone_verified_at.is_some() && can(crate::notify::Channel::Sms));
    if verified_contact
        || apps.iter().any(|t| t.confirmed_at.is_some())
        || state.store.count_recovery_codes(account.id).await? > 0
        || super::certificates::reachable(state, account).await?
    {
        Ok(Mechanism::TwoFactor)
    } else {
        Ok(Mechanism::OneFactor)
    }
}

/// Whether the account can present a factor of `kind` now (for a step-up that requires it).
pub async fn can_present(
    state: &AppState,
    account: &Account,
    kind: crate::policy::FactorKind,
) -> Result<bool, ServiceError> {
    use crate::policy::FactorKind;
    Ok(match kind {
        FactorKind::Password => true,
        FactorKind::Otp => {
            let can = |c| state.notifier.can_send(c);
            (account.email_verified_at.is_some() && can(crate::notify::Channel::Email))
                || (account.phone_verified_at.is_some() && can(crate::notify::Channel::Sms))
                || state.store.list_totp(account.id).await?.iter().any(|t| t.confirmed_at.is_some())
        }
        FactorKind::RecoveryCode => state.store.count_recovery_codes(account.id).await? > 0,
        // A certificate is matched when it is presented: an enrolled one, or one whose `CCCD:`
        // UID is the account's ID number.
        FactorKind::Certificate => {
            state.certificates.enabled()
                && (account.identity.is_some() || super::certificates::reachable(state, account).await?)
        }
        // Whether a key sits on a hardware token cannot be known from a signature alone.
        FactorKind::SmartCard => false,
        // Passkeys (service::passkeys): any key is WebAuthn; one registered with user
        // verification is also the biometric (inherence) kind.
        FactorKind::Webauthn => !state.store.list_passkeys(account.id).await?.is_empty(),
        FactorKind::Biometric => state.store.list_passkeys(account.id).await?.iter().any(|p| p.user_verified),
    })
}

/// Starts enrolling an authenticator app: a new secret, stored sealed and unconfirmed.
pub async fn start_totp(state: &AppState, account: &Account, now: i64) -> Result<Uuid, ServiceError> {
    let secret = totp::new_secret().map_err(ServiceError::internal)?;
    let credential = TotpCredential {
        id: Uuid::now_v7(),
        account_id: account.id,
        name: String::new(),
        secret_enc: totp::seal(&state.data_key, account.id, &secret).map_err(ServiceError::internal)?,
        last_step: None,
        created_at: now,
        confirmed_at: None,
        last_used_at: None,
    };
    state.store.create_totp(&credential).await?;
    Ok(credential.id)
}

fn issuer(state: &AppState) -> String {
    url::Url::parse(state.issuer())
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "xacthuc".into())
}

/// What the enrolment page shows for an unconfirmed app of this account.
pub async fn totp_enrolment(
    state: &AppState,
    account: &Account,
    id: Uuid,
    lang: Lang,
) -> Result<Option<totp::Enrolment>, ServiceError> {
    let Some(t) = pending(state, account, id).await? else { return Ok(None) };
    let secret = totp::unseal(&state.data_key, account.id, &t.secret_enc).map_err(ServiceError::internal)?;
    let label = format!("{} ({})", account.username, issuer(state));
    totp::enrolment(&secret, &issuer(state), &label, lang).map(Some).map_err(ServiceError::internal)
}

async fn pending(state: &AppState, account: &Account, id: Uuid) -> Result<Option<TotpCredential>, ServiceError> {
    Ok(state.store.list_totp(account.id).await?.into_iter().find(|t| t.id == id && t.confirmed_at.is_none()))
}

/// Confirms an enrolment with a first code. Returns fresh recovery codes (to show once) when
/// the account had none.
pub async fn confirm_totp(
    state: &AppState,
    account: &Account,
    id: Uuid,
    code: &str,
    now: i64,
) -> Result<Option<Vec<String>>, SecondFactorError> {
    let t = pending(state, account, id).await?.ok_or(SecondFactorError::NotFound)?;
    let secret = totp::unseal(&state.data_key, account.id, &t.secret_enc).map_err(ServiceError::internal)?;
    let step = totp::verify(secret.as_bytes(), code, now.max(0) as u64, None).map_err(SecondFactorError::Totp)?;
    let audit = AuditEvent::new(now, "factor.enrolled", actor(account)).account(account.id).detail("factor", "totp");
    if !state.store.confirm_totp(id, account.id, step as i64, now, &audit).await? {
        return Err(SecondFactorError::NotFound);
    }
    if state.store.count_recovery_codes(account.id).await? > 0 {
        return Ok(None);
    }
    new_recovery_codes(state, account, now).await.map(Some)
}

/// Names an authenticator app ("Điện thoại của tôi"); 1–60 characters after trimming.
pub async fn rename_totp(
    state: &AppState,
    account: &Account,
    id: Uuid,
    name: &str,
    now: i64,
) -> Result<(), SecondFactorError> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() || name.chars().count() > 60 {
        return Err(SecondFactorError::NotFound);
    }
    let audit = AuditEvent::new(now, "factor.renamed", actor(account)).account(account.id).detail("factor", "totp");
    if state.store.rename_totp(id, account.id, &name, &audit).await? {
        Ok(())
    } else {
        Err(SecondFactorError::NotFound)
    }
}

/// Replaces the account's recovery codes with ten new ones, returned once.
pub async fn new_recovery_codes(
    state: &AppState,
    account: &Account,
    now: i64,
) -> Result<Vec<String>, SecondFactorError> {
    let codes = recovery::generate().map_err(ServiceError::internal)?;
    let hashes: Vec<String> = codes.iter().filter_map(|c| recovery::hash(account.id, c)).collect();
    let audit = AuditEvent::new(now, "factor.recovery_codes_issued", actor(account))
        .account(account.id)
        .detail("count", hashes.len());
    state.store.replace_recovery_codes(account.id, &hashes, now, &audit).await?;
    Ok(codes)
}

/// Removes an authenticator app; needs a sign-in within [`FRESH_SIGN_IN_SECONDS`].
pub async fn remove_totp(
    state: &AppState,
    account: &Account,
    session: &SessionRecord,
    id: Uuid,
    now: i64,
) -> Result<(), SecondFactorError> {
    if !session.factors.iter().any(|f| f.at >= now - FRESH_SIGN_IN_SECONDS) {
        return Err(SecondFactorError::NotFresh);
    }
    let audit = AuditEvent::new(now, "factor.removed", actor(account)).account(account.id).detail("factor", "totp");
    if state.store.delete_totp(id, account.id, &audit).await? { Ok(()) } else { Err(SecondFactorError::NotFound) }
}

/// What the citizen typed at the second step.
pub enum SecondFactorInput<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    /// A code sent by SMS or e-mail (`otp::send` with `Purpose::Login`).
    SentCode(crate::notify::Channel, &'a str),
}

/// Sends a sign-in code to a verified contact, unless the second factor is locked.
pub async fn send_code(
    state: &AppState,
    account: &Account,
    channel: crate::notify::Channel,
    lang: Lang,
    now: i64,
) -> Result<String, SecondFactorError> {
    if let Some(until) = state.store.locked_until(account.id, LOCK_KEY, now).await? {
        return Err(SecondFactorError::Locked(until));
    }
    super::otp::send(state, account, super::otp::Purpose::Login, channel, lang, now)
        .await
        .map_err(SecondFactorError::Otp)
}

/// The outcome of a successful second step.
pub struct Stepped {
    /// The session's new cookie value (the old one stops working).
    pub cookie: String,
    /// Recovery codes left, when one was used.
    pub recovery_left: Option<i64>,
}

/// Verifies a second factor for the signed-in session and adds it to the session.
pub async fn verify(
    state: &AppState,
    session: &SessionRecord,
    account: &Account,
    input: SecondFactorInput<'_>,
    now: i64,
) -> Result<Stepped, SecondFactorError> {
    if let Some(until) = state.store.locked_until(account.id, LOCK_KEY, now).await? {
        return Err(SecondFactorError::Locked(until));
    }
    let (method, recovery_left) = match input {
        SecondFactorInput::Totp(code) => (verify_totp(state, account, code, now).await?, None),
        SecondFactorInput::SentCode(channel, code) => {
            match super::otp::verify(state, account, super::otp::Purpose::Login, code, now).await {
                Ok(_) => (
                    match channel {
                        crate::notify::Channel::Sms => Method::SmsOtp,
                        crate::notify::Channel::Email => Method::EmailOtp,
                    },
                    None,
                ),
                Err(e @ super::otp::OtpError::Service(_)) => return Err(SecondFactorError::Otp(e)),
                Err(e) => {
                    fail(state, account, "sent_code", now).await?;
                    return Err(SecondFactorError::Otp(e));
                }
            }
        }
        SecondFactorInput::RecoveryCode(code) => {
            let used = match recovery::hash(account.id, code) {
                Some(hash) => {
                    let audit = AuditEvent::new(now, "factor.recovery_code_used", actor(account)).account(account.id);
                    state.store.use_recovery_code(account.id, &hash, now, &audit).await?
                }
                None => None,
            };
            match used {
                Some(left) => (Method::RecoveryCode, Some(left)),
                None => {
                    fail(state, account, "recovery_code", now).await?;
                    return Err(SecondFactorError::RecoveryCode);
                }
            }
        }
    };
    state.store.clear_failures(account.id, LOCK_KEY).await?;
    let cookie = random_token()?;
    let factor = VerifiedFactor { method, at: now };
    let audit = AuditEvent::new(now, "login.second_factor", actor(account))
        .account(account.id)
        .detail("amr", method.amr())
        .detail("session", session.id.to_string());
    if !state.store.add_session_factor(&session.token_hash, &hash_token(&cookie), &factor, &audit).await? {
        return Err(SecondFactorError::NotFound);
    }
    state.metrics.step_up(method.amr());
    Ok(Stepped { cookie, recovery_left })
}

pub(crate) async fn verify_totp(
    state: &AppState,
    account: &Account,
    code: &str,
    now: i64,
) -> Result<Method, SecondFactorError> {
    let mut last_error = totp::TotpError::Invalid;
    for t in state.store.list_totp(account.id).await?.into_iter().filter(|t| t.confirmed_at.is_some()) {
        let secret = totp::unseal(&state.data_key, account.id, &t.secret_enc).map_err(ServiceError::internal)?;
        match totp::verify(secret.as_bytes(), code, now.max(0) as u64, t.last_step.map(|s| s.max(0) as u64)) {
            // The store advances the last used step atomically: of two concurrent uses of one
            // code, one wins and the other is a replay.
            Ok(step) if state.store.use_totp_step(t.id, step as i64, now).await? => return Ok(Method::Totp),
            Ok(_) => last_error = totp::TotpError::Replayed,
            Err(e @ totp::TotpError::Malformed) => return Err(SecondFactorError::Totp(e)),
            Err(totp::TotpError::Replayed) => last_error = totp::TotpError::Replayed,
            Err(_) => {}
        }
    }
    fail(state, account, "totp", now).await?;
    Err(SecondFactorError::Totp(last_error))
}

pub(crate) async fn fail(state: &AppState, account: &Account, factor: &str, now: i64) -> Result<(), ServiceError> {
    let event =
        AuditEvent::new(now, "login.second_factor_failed", actor(account)).account(account.id).detail("factor", factor);
    state.store.append_audit(&event).await?;
    let locked = state
        .store
        .count_failure(account.id, LOCK_KEY, now, FAILURE_WINDOW_SECONDS, MAX_FAILURES, LOCK_SECONDS)
        .await?;
    tokio::time::sleep(FAILURE_DELAY).await;
    if let Some(until) = locked {
        state.metrics.lockout("second_factor");
        tracing::warn!(account = %account.id, until, "second factor locked after repeated failures");
        let event = AuditEvent::new(now, "factor.locked", "system")
            .account(account.id)
            .detail("factor", LOCK_KEY)
            .detail("until", until);
        state.store.append_audit(&event).await?;
    }
    Ok(())
}

/// The citizen's own setting: ask for a second factor at every sign-in.
pub async fn set_always(state: &AppState, account: &Account, on: bool, now: i64) -> Result<(), ServiceError> {
    let audit =
        AuditEvent::new(now, "account.second_factor_setting", actor(account)).account(account.id).detail("always", on);
    state.store.set_always_second_factor(account.id, on, now, &audit).await?;
    Ok(())
}

/// What the account page shows about second factors.
pub struct Overview {
    pub apps: Vec<TotpCredential>,
    pub recovery_left: i64,
}

pub async fn overview(state: &AppState, account: &Account) -> Result<Overview, ServiceError> {
    let apps = state.store.list_totp(account.id).await?.into_iter().filter(|t| t.confirmed_at.is_some()).collect();
    Ok(Overview { apps, recovery_left: state.store.count_recovery_codes(account.id).await? })
}
