//! AS-3 online (issue 8; docs/proofing.md, "AS-3 online"): a citizen who declared an identity
//! (AS-2) verifies it without a counter visit,
//!
//! - **by certificate**: signs a one-time challenge (purpose `proofing`) with a certificate of
//!   the `[proofing.certificate] profile` whose subject UID `CCCD:` is the declared ID number and
//!   whose CN is the declared full name (compared without case and diacritics, [`fold_name`]);
//! - **by registry**: the declared identity is sent to a population / identity registry
//!   (`registry::ask`), which answers match or no match.
//!
//! Success raises the account to AS-3 with an evidence record (method `certificate` or
//! `registry`, verifier `system`) and the `account.level_raised` audit event in one transaction
//! (`Store::change_level`). Every refusal is audited as `proofing.failed` with its reason.
//! The ID number never appears in logs or audit events (only the account id and masked forms).

use super::config::{CertificateMethodConfig, RegistryConfig};
use super::evidence;
use super::registry::{self, RegistryAnswer, RegistryError, RegistryRequest};
use crate::app::AppState;
use crate::assurance::AsLevel;
use crate::audit::AuditEvent;
use crate::certs::ChallengePurpose;
use crate::service::ServiceError;
use crate::service::certificates::{self, AccountMatch, CertServiceError, Challenge};
use crate::store::{Account, StoreError};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Failed registry look-ups ("no match") allowed per account per day: the registry is not an
/// oracle for guessing other people's details.
const REGISTRY_MAX_NO_MATCH: i64 = 5;
const REGISTRY_WINDOW_SECONDS: i64 = 24 * 3600;
const REGISTRY_LOCK_KEY: &str = "proofing_registry";

/// Where an account stands for online verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No declared identity: declare one first (AS-2).
    NoIdentity,
    /// AS-3 or more already.
    Verified,
    /// AS-2 with a declared identity: may verify.
    Eligible,
}

pub fn standing(account: &Account) -> Standing {
    if account.identity.is_none() {
        Standing::NoIdentity
    } else if account.as_level >= AsLevel::As3 {
        Standing::Verified
    } else {
        Standing::Eligible
    }
}

/// Whether AS-3 by certificate is offered: enabled, and the trust store has the profile.
pub fn certificate_offered(state: &AppState) -> bool {
    let c: &CertificateMethodConfig = &state.config.proofing.certificate;
    c.enabled && state.certificates.trust.profile_names().contains(&c.profile.as_str())
}

/// Whether AS-3 by registry is offered: enabled and a usable URL configured.
pub fn registry_offered(state: &AppState) -> bool {
    let c: &RegistryConfig = &state.config.proofing.registry;
    c.enabled && registry::endpoint(c, state.config.development).is_ok()
}

/// Why online verification did not raise the level.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error("this verification method is not offered")]
    Disabled,
    #[error("no declared identity")]
    NoIdentity,
    #[error("the account is verified already")]
    AlreadyVerified,
    #[error("certificate: {0}")]
    Certificate(CertServiceError),
    #[error("the certificate is not of the required profile")]
    WrongProfile,
    #[error("the certificate carries no CCCD number")]
    NoIdNumber,
    #[error("the certificate's CCCD number is not the declared one")]
    UidMismatch,
    #[error("the certificate's name is not the declared one")]
    NameMismatch,
    #[error("the certificate is another account's")]
    OtherAccount,
    #[error("the registry does not confirm the declared identity")]
    NoMatch,
    #[error("too many registry look-ups without a match; locked until {0}")]
    Locked(i64),
    #[error("the registry is unavailable: {0}")]
    Unavailable(RegistryError),
    #[error("the account was changed meanwhile")]
    ChangedMeanwhile,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for OnlineError {
    fn from(e: StoreError) -> Self {
        OnlineError::Service(e.into())
    }
}

impl OnlineError {
    /// The audit reason, and the message key `verify_err_<code>` (certificate problems use the
    /// certificate pages' `cert_err_<code>`).
    pub fn code(&self) -> &'static str {
        match self {
            OnlineError::Disabled => "disabled",
            OnlineError::NoIdentity => "no_identity",
            OnlineError::AlreadyVerified => "already_verified",
            OnlineError::Certificate(e) => e.code(),
            OnlineError::WrongProfile => "wrong_profile",
            OnlineError::NoIdNumber => "no_id_number",
            OnlineError::UidMismatch => "uid_mismatch",
            OnlineError::NameMismatch => "name_mismatch",
            OnlineError::OtherAccount => "other_account",
            OnlineError::NoMatch => "no_match",
            OnlineError::Locked(_) => "locked",
            OnlineError::Unavailable(_) => "registry_unavailable",
            OnlineError::ChangedMeanwhile => "changed_meanwhile",
            OnlineError::Service(_) => "internal",
        }
    }
}

/// Folds a name for comparison: Unicode decomposition (NFD), combining marks removed,
/// `đ`/`Đ` as `d`, lower case, runs of white space as one space. "NGUYỄN  Văn Đức" and
/// "nguyen van duc" fold the same.
pub fn fold_name(s: &str) -> String {
    let folded: String = s
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' | 'ð' | 'Ð' => 'd',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn actor(account: &Account) -> String {
    format!("account:{}", account.id)
}

/// Records a refusal (`proofing.failed`) and returns it.
async fn refused(state: &AppState, account: &Account, method: &str, e: OnlineError, now: i64) -> OnlineError {
    if matches!(e, OnlineError::Service(_)) {
        return e;
    }
    let mut event = AuditEvent::new(now, "proofing.failed", actor(account))
        .account(account.id)
        .detail("method", method)
        .detail("reason", e.code());
    if let OnlineError::Unavailable(r) = &e {
        event = event.detail("registry_error", r.code()).detail("registry_detail", r.to_string());
    }
    match state.store.append_audit(&event).await {
        Ok(()) => e,
        Err(se) => OnlineError::Service(se.into()),
    }
}

fn check_standing(account: &Account) -> Result<(), OnlineError> {
    match standing(account) {
        Standing::NoIdentity => Err(OnlineError::NoIdentity),
        Standing::Verified => Err(OnlineError::AlreadyVerified),
        Standing::Eligible => Ok(()),
    }
}

/// Raises `account` to AS-3 with an evidence record of `method` and `source`.
async fn raise(
    state: &AppState,
    account: &Account,
    method: &str,
    source: &str,
    extra: &[(&str, String)],
    now: i64,
) -> Result<(), OnlineError> {
    let record = evidence(account.id, now, Some(account.as_level), AsLevel::As3, method, source, "system");
    let mut audit = AuditEvent::new(now, "account.level_raised", "system")
        .account(account.id)
        .detail("from", account.as_level.number())
        .detail("to", 3)
        .detail("method", method)
        .detail("source", source)
        .detail("evidence", record.id.to_string());
    for (k, v) in extra {
        audit = audit.detail(k, v);
    }
    match state.store.change_level(&record, None, &audit).await {
        Ok(true) => {
            tracing::info!(account = %account.id, method, "proofing: account verified online to AS-3");
            Ok(())
        }
        Ok(false) => Err(OnlineError::ChangedMeanwhile),
        Err(e) => Err(e.into()),
    }
}

/// A challenge for AS-3 by certificate, issued to `account`.
pub async fn certificate_challenge(state: &AppState, account: &Account, now: i64) -> Result<Challenge, OnlineError> {
    if !certificate_offered(state) {
        return Err(OnlineError::Disabled);
    }
    check_standing(account)?;
    Ok(certificates::issue_challenge(state, Some(account.id), ChallengePurpose::Proofing, None, now).await?)
}

/// AS-3 by certificate: verifies the signed challenge, then that the certificate is of the
/// configured profile and names the declared person (UID `CCCD:` = declared ID number, CN =
/// declared full name, folded). Raises the level on success; every refusal is audited.
pub async fn verify_by_certificate(
    state: &AppState,
    account: &Account,
    challenge_id: &str,
    response: &[u8],
    now: i64,
) -> Result<(), OnlineError> {
    const METHOD: &str = "certificate";
    if !certificate_offered(state) {
        return Err(OnlineError::Disabled);
    }
    check_standing(account)?;
    match check_certificate(state, account, challenge_id, response, now).await {
        Ok((source, extra)) => match raise(state, account, METHOD, &source, &extra, now).await {
            Ok(()) => Ok(()),
            Err(e) => Err(refused(state, account, METHOD, e, now).await),
        },
        Err(e) => Err(refused(state, account, METHOD, e, now).await),
    }
}

type Source = (String, Vec<(&'static str, String)>);

async fn check_certificate(
    state: &AppState,
    account: &Account,
    challenge_id: &str,
    response: &[u8],
    now: i64,
) -> Result<Source, OnlineError> {
    let identity = account.identity.as_ref().ok_or(OnlineError::NoIdentity)?;
    let wanted = state.config.proofing.certificate.profile.as_str();
    // Every profile is accepted by the signature check, so that a certificate of another
    // profile gets its own message ("wrong profile") rather than "untrusted".
    let profiles = state.certificates.trust.profile_names();
    let v = match certificates::verify_response(
        state,
        challenge_id,
        response,
        &[ChallengePurpose::Proofing],
        &profiles,
        now,
    )
    .await
    {
        Ok(v) => v,
        Err(CertServiceError::Service(e)) => return Err(e.into()),
        Err(e) => return Err(OnlineError::Certificate(e)),
    };
    if v.challenge_account != Some(account.id) {
        return Err(OnlineError::Certificate(CertServiceError::ChallengeUnknown));
    }
    if v.verified.profile != wanted {
        return Err(OnlineError::WrongProfile);
    }
    if let AccountMatch::Enrolled { account_id, .. } = v.account_match
        && account_id != account.id
    {
        return Err(OnlineError::OtherAccount);
    }
    let c = &v.verified.certificate;
    let numbers = crate::certs::subject::cccd_numbers(&c.uids);
    if numbers.is_empty() {
        return Err(OnlineError::NoIdNumber);
    }
    if !numbers.iter().any(|n| crate::service::accounts::national_id_hash(state, n) == identity.national_id_hash) {
        return Err(OnlineError::UidMismatch);
    }
    if c.subject_cn.trim().is_empty() || fold_name(&c.subject_cn) != fold_name(&identity.full_name) {
        return Err(OnlineError::NameMismatch);
    }
    let source = format!("{} / {}", c.issuer, c.serial);
    let extra = vec![
        ("fingerprint", c.fingerprint.clone()),
        ("profile", v.verified.profile.clone()),
        ("challenge_sha256", v.challenge_digest.clone()),
    ];
    Ok((source, extra))
}

/// AS-3 by registry: asks the registry about the declared identity; a match raises the level
/// (source: the registry's reference). "No match" and an unavailable registry change nothing.
pub async fn verify_by_registry(state: &AppState, account: &Account, now: i64) -> Result<String, OnlineError> {
    const METHOD: &str = "registry";
    if !registry_offered(state) {
        return Err(OnlineError::Disabled);
    }
    check_standing(account)?;
    if let Some(until) = state.store.locked_until(account.id, REGISTRY_LOCK_KEY, now).await? {
        return Err(OnlineError::Locked(until));
    }
    let identity = account.identity.as_ref().ok_or(OnlineError::NoIdentity)?;
    let id_number = crate::service::accounts::decrypt_national_id(state, account)
        .ok_or_else(|| ServiceError::Internal("the declared ID number cannot be decrypted".into()))?;
    let request = RegistryRequest {
        id_number,
        full_name: identity.full_name.clone(),
        birth_date: identity.birth_date.clone(),
        sex: identity.sex.clone(),
    };
    let config = &state.config.proofing.registry;
    let answer = registry::ask(&state.http, config, state.config.development, &request).await;
    match answer {
        Ok(RegistryAnswer::Match { reference }) => {
            state.store.clear_failures(account.id, REGISTRY_LOCK_KEY).await?;
            match raise(state, account, METHOD, &reference, &[], now).await {
                Ok(()) => Ok(reference),
                Err(e) => Err(refused(state, account, METHOD, e, now).await),
            }
        }
        Ok(RegistryAnswer::NoMatch { reference }) => {
            let mut event = AuditEvent::new(now, "proofing.failed", actor(account))
                .account(account.id)
                .detail("method", METHOD)
                .detail("reason", "no_match");
            if let Some(r) = &reference {
                event = event.detail("registry_reference", r);
            }
            state.store.append_audit(&event).await?;
            let locked = state
                .store
                .count_failure(
                    account.id,
                    REGISTRY_LOCK_KEY,
                    now,
                    REGISTRY_WINDOW_SECONDS,
                    REGISTRY_MAX_NO_MATCH,
                    REGISTRY_WINDOW_SECONDS,
                )
                .await?;
            if let Some(until) = locked {
                let event = AuditEvent::new(now, "factor.locked", "system")
                    .account(account.id)
                    .detail("factor", REGISTRY_LOCK_KEY)
                    .detail("until", until);
                state.store.append_audit(&event).await?;
            }
            Err(OnlineError::NoMatch)
        }
        Err(e) => {
            tracing::warn!(account = %account.id, error = %e, "proofing: registry unavailable");
            Err(refused(state, account, METHOD, OnlineError::Unavailable(e), now).await)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn names_fold_without_case_and_diacritics() {
        assert_eq!(fold_name("NGUYỄN VĂN AN"), "nguyen van an");
        assert_eq!(fold_name("Nguyễn  Văn   An "), "nguyen van an");
        assert_eq!(fold_name("Đặng Thị Đào"), "dang thi dao");
        assert_eq!(fold_name("ĐẶNG THỊ ĐÀO"), fold_name("dang thi dao"));
        // Precomposed (NFC) and decomposed (NFD) input fold the same.
        assert_eq!(fold_name("Phạm Thị Hoa"), fold_name(&"Phạm Thị Hoa".nfd().collect::<String>()));
        assert_ne!(fold_name("Nguyễn Văn An"), fold_name("Nguyễn Văn Anh"));
    }
}
