//! Digital-certificate sign-in and signing (issue 6; docs/certificates.md): one-time
//! challenges, verifying a signed challenge with revocation, enrolment, and the two ways a
//! certificate signs a citizen in — as the second step after a password, or alone.
//!
//! # API for other use cases (step-up, transaction approval)
//!
//! ```text
//! issue_challenge(state, account_id: Option<Uuid>, purpose, transaction: Option<Value>, now)
//!     -> Challenge { id, bytes, expires_at }
//! verify_response(state, challenge_id, response_bytes, &[purpose…], &[profile…], now)
//!     -> Result<VerifiedCertificate, CertServiceError>
//! ```
//!
//! `issue_challenge` stores a new challenge (only the hash of its id) whose canonical bytes
//! embed `transaction` (the approved RFC 9396 `authorization_details`) when given: the
//! signature is then over the transaction itself (dynamic linking). Show `bytes` to the citizen
//! and keep `id` in the form.
//!
//! `verify_response` spends the challenge first (single use: a second attempt with the same id
//! fails with `ChallengeUnknown`, whether the first succeeded or not), checks it has not expired
//! and was issued for one of the `purposes`, then verifies the signature package or CMS
//! signature (`certs::verify`: signature over the exact stored bytes, chain to an anchor of
//! one of `profiles`, validity now, key usage, revocation with CRLs from `certs/crl/` and, when
//! `fetch_crls` is on, from the certificate's distribution points). Every outcome is in the
//! audit log: `certificate.signature_verified` with the evidence (challenge bytes and their
//! SHA-256, the signature, the response as submitted sealed with the data key — it holds the
//! certificate, whose subject is personal data —, fingerprint, issuer, serial, profile,
//! algorithm, revocation result, validated path), or `certificate.signature_refused` with the
//! reason.
//! The result says which account the certificate belongs to ([`AccountMatch`]); binding it to
//! the right account is the caller's decision (see [`second_step`], [`sign_in`], [`enrol`]).
//! [`step_up`] does it all for a signed-in session: verify (for the given purposes), check the
//! certificate is the account holder's, count failures towards the second-factor lock, add the
//! factor to the session and rotate its cookie.
//! The factor it yields is `Method::Certificate { hardware: false }` (`amr` `x509`): whether
//! the key is on a token cannot be known from a signature, so `sc` is never claimed.

use super::second_factor::{FAILURE_DELAY, FAILURE_WINDOW_SECONDS, LOCK_SECONDS, MAX_FAILURES};
use super::{ServiceError, random_token};
use crate::app::AppState;
use crate::assurance::{AsLevel, Method, VerifiedFactor};
use crate::audit::AuditEvent;
use crate::certs::challenge::{self, ChallengePurpose};
use crate::certs::{CertError, CertificatesConfig, TrustStore, Verified, VerifyOptions};
use crate::crypto::random::hash_token;
use crate::store::{
    Account, AccountStatus, CertificateChallenge, Conflict, EnrolledCertificate, SessionRecord, StoreError,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// The same lock as the other second factors (`service::second_factor`): one counter for
/// every method, so alternating methods gains nothing.
const LOCK_KEY: &str = "second_factor";

/// The trust store and the cache of CRLs fetched from distribution points.
pub struct CertState {
    pub trust: TrustStore,
    pub config: CertificatesConfig,
    crl_cache: Mutex<HashMap<String, CachedCrl>>,
}

struct CachedCrl {
    der: Vec<u8>,
    until: i64,
}

impl CertState {
    /// Loads `[certificates] trust_dir`; every problem stops start-up (with all of them listed).
    pub fn load(config: &CertificatesConfig, now: i64) -> Result<CertState, ServiceError> {
        let loaded = TrustStore::load(&config.trust_dir, now).map_err(|problems| {
            ServiceError::Internal(format!(
                "certificates: trust store {} is unusable:\n{}",
                config.trust_dir.display(),
                problems.join("\n")
            ))
        })?;
        // Logs go to stdout, which CLI commands (`client show`) use for their output: only real
        // problems are logged above debug level. An empty store is the shipped default.
        for w in &loaded.warnings {
            if loaded.store.is_empty() {
                tracing::debug!("certificates: {w}");
            } else {
                tracing::warn!("certificates: {w}");
            }
        }
        tracing::debug!(profiles = ?loaded.store.profile_names(), "certificates: trust store loaded");
        Ok(CertState::new(loaded.store, config.clone()))
    }

    pub fn new(trust: TrustStore, config: CertificatesConfig) -> CertState {
        CertState { trust, config, crl_cache: Mutex::new(HashMap::new()) }
    }

    /// Whether any profile has an anchor (otherwise certificates are not offered).
    pub fn enabled(&self) -> bool {
        !self.trust.is_empty()
    }

    /// The configured default profiles.
    pub fn default_profiles(&self) -> Vec<&str> {
        self.config.default_profiles.iter().map(String::as_str).collect()
    }
}

/// A challenge to show: `bytes` is what gets signed, `id` goes back with the signature.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: String,
    pub bytes: String,
    pub expires_at: i64,
}

/// Which account a verified certificate belongs to.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountMatch {
    /// Enrolled on this account.
    Enrolled { account_id: Uuid, certificate_id: Uuid },
    /// A `CCCD:` UID equals the account's ID number; `verified` when the account's identity was
    /// verified (AS-3 or more) rather than declared.
    NationalId { account_id: Uuid, verified: bool },
    /// Neither.
    None,
}

/// A verified signed challenge.
#[derive(Clone, Debug)]
pub struct VerifiedCertificate {
    pub verified: Verified,
    pub purpose: ChallengePurpose,
    /// The account the challenge was issued to, if any.
    pub challenge_account: Option<Uuid>,
    /// The transaction embedded in the challenge (its authorization details), if any.
    pub transaction: Option<serde_json::Value>,
    pub account_match: AccountMatch,
    /// The sequence-free id of the evidence: the SHA-256 of the challenge bytes, hex.
    pub challenge_digest: String,
}

impl VerifiedCertificate {
    pub fn fingerprint(&self) -> &str {
        &self.verified.certificate.fingerprint
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertServiceError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("unknown or already used challenge")]
    ChallengeUnknown,
    #[error("the challenge has expired")]
    ChallengeExpired,
    #[error("the challenge was issued for something else")]
    WrongPurpose,
    #[error("the certificate belongs to another person")]
    OtherPerson,
    #[error("no account uses this certificate")]
    NoAccount,
    #[error("the certificate is enrolled already")]
    AlreadyEnrolled,
    #[error("signing in with a certificate is not configured")]
    Disabled,
    #[error("a recent sign-in is needed")]
    NotFresh,
    #[error("no such certificate")]
    NotFound,
    #[error("too many failed attempts; locked until {0}")]
    Locked(i64),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for CertServiceError {
    fn from(e: StoreError) -> Self {
        CertServiceError::Service(e.into())
    }
}

impl CertServiceError {
    /// The message key (`cert_err_<code>` in locales/*.toml) and audit code.
    pub fn code(&self) -> &'static str {
        match self {
            CertServiceError::Cert(e) => e.code(),
            CertServiceError::ChallengeUnknown => "challenge_unknown",
            CertServiceError::ChallengeExpired => "challenge_expired",
            CertServiceError::WrongPurpose => "wrong_purpose",
            CertServiceError::OtherPerson => "other_person",
            CertServiceError::NoAccount => "no_account",
            CertServiceError::AlreadyEnrolled => "already_enrolled",
            CertServiceError::Disabled => "disabled",
            CertServiceError::NotFresh => "not_fresh",
            CertServiceError::NotFound => "not_found",
            CertServiceError::Locked(_) => "locked",
            CertServiceError::Service(_) => "internal",
        }
    }
}

/// Issues a one-time challenge (see the module documentation).
pub async fn issue_challenge(
    state: &AppState,
    account_id: Option<Uuid>,
    purpose: ChallengePurpose,
    transaction: Option<serde_json::Value>,
    now: i64,
) -> Result<Challenge, ServiceError> {
    let id = random_token()?;
    let nonce = random_token()?;
    let expires_at = now + state.certificates.config.challenge_seconds;
    let bytes = challenge::challenge_bytes(&id, &nonce, state.issuer(), purpose, now, expires_at, transaction.as_ref());
    let record = CertificateChallenge {
        id_hash: hash_token(&id),
        account_id,
        purpose: purpose.as_str().into(),
        bytes: bytes.clone(),
        created_at: now,
        expires_at,
        consumed_at: None,
    };
    state.store.create_certificate_challenge(&record).await?;
    Ok(Challenge { id, bytes, expires_at })
}

/// Fetches (or takes from the cache) the CRLs at `urls`. Failures are logged and skipped:
/// the verification that follows fails closed when configured to.
async fn fetch_crls(state: &AppState, urls: &[String], now: i64) -> Vec<Vec<u8>> {
    let config = &state.certificates.config;
    let mut out = Vec::new();
    for url in urls.iter().filter(|u| u.starts_with("http://")).take(4) {
        if let Ok(cache) = state.certificates.crl_cache.lock()
            && let Some(c) = cache.get(url)
            && c.until > now
        {
            out.push(c.der.clone());
            continue;
        }
        match fetch_one(state, url, config).await {
            Ok(der) => {
                let next_update = x509_parser::parse_x509_crl(&der)
                    .ok()
                    .and_then(|(_, crl)| crl.next_update().map(|t| t.timestamp()));
                let until = next_update.unwrap_or(i64::MAX).min(now + config.crl_cache_seconds);
                if let Ok(mut cache) = state.certificates.crl_cache.lock() {
                    cache.insert(url.clone(), CachedCrl { der: der.clone(), until });
                }
                out.push(der);
            }
            Err(e) => tracing::warn!(%url, error = %e, "certificates: CRL download failed"),
        }
    }
    out
}

async fn fetch_one(state: &AppState, url: &str, config: &CertificatesConfig) -> Result<Vec<u8>, String> {
    let mut resp = state
        .http
        .get(url)
        .timeout(std::time::Duration::from_secs(config.fetch_timeout_seconds))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n as usize > config.max_crl_bytes) {
        return Err("CRL larger than max_crl_bytes".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > config.max_crl_bytes {
            return Err("CRL larger than max_crl_bytes".into());
        }
    }
    if body.first() != Some(&0x30) {
        let text = String::from_utf8_lossy(&body);
        body = crate::certs::pem_blocks(&text, &["X509 CRL"]).into_iter().next().ok_or("not a CRL")?;
    }
    x509_parser::parse_x509_crl(&body).map_err(|e| format!("not a CRL: {e}"))?;
    Ok(body)
}

/// The additional data sealing a response in the audit log: the challenge's SHA-256.
pub fn evidence_aad(challenge_digest: &str) -> String {
    format!("certificate-evidence:{challenge_digest}")
}

/// The response as submitted, sealed with the data key: it holds the certificate, whose
/// subject is personal data, and the audit log keeps no personal data in clear. Recover it
/// with `state.data_key.decrypt(sealed, evidence_aad(challenge_sha256))`.
fn sealed(state: &AppState, response: &[u8], challenge_digest: &str) -> Result<String, ServiceError> {
    state.data_key.encrypt(response, evidence_aad(challenge_digest).as_bytes()).map_err(ServiceError::internal)
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::certs::verify::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Verifies a signed challenge (see the module documentation).
pub async fn verify_response(
    state: &AppState,
    challenge_id: &str,
    response: &[u8],
    purposes: &[ChallengePurpose],
    profiles: &[&str],
    now: i64,
) -> Result<VerifiedCertificate, CertServiceError> {
    if !state.certificates.enabled() {
        return Err(CertServiceError::Disabled);
    }
    let stored = state
        .store
        .consume_certificate_challenge(&hash_token(challenge_id.trim()), now)
        .await?
        .ok_or(CertServiceError::ChallengeUnknown)?;
    let challenge_digest = sha256_hex(stored.bytes.as_bytes());
    let response_sealed = sealed(state, response, &challenge_digest)?;
    let refuse = |reason: &'static str, fingerprint: Option<String>| {
        let mut event = AuditEvent::new(now, "certificate.signature_refused", "anonymous")
            .detail("reason", reason)
            .detail("purpose", &stored.purpose)
            .detail("challenge", &stored.bytes)
            .detail("challenge_sha256", &challenge_digest)
            .detail("response_sealed", &response_sealed);
        if let Some(f) = fingerprint {
            event = event.detail("fingerprint", f);
        }
        if let Some(a) = stored.account_id {
            event = event.account(a);
            event.actor = format!("account:{a}");
        }
        event
    };
    if stored.expires_at <= now {
        state.store.append_audit(&refuse("challenge_expired", None)).await?;
        return Err(CertServiceError::ChallengeExpired);
    }
    let purpose =
        ChallengePurpose::parse(&stored.purpose).filter(|p| purposes.contains(p)).ok_or(CertServiceError::WrongPurpose);
    let purpose = match purpose {
        Ok(p) => p,
        Err(e) => {
            state.store.append_audit(&refuse("wrong_purpose", None)).await?;
            return Err(e);
        }
    };
    let Some(parsed) = challenge::parse_response(response) else {
        state.store.append_audit(&refuse("malformed", None)).await?;
        return Err(CertError::Malformed("not a signature package or CMS signature".into()).into());
    };
    let config = &state.certificates.config;
    // First without fetched CRLs and without failing closed: the chain must be trusted before
    // any URL from the certificate is fetched (no requests on an attacker's behalf).
    let base = |extra: &[Vec<u8>], fail_closed: bool| {
        crate::certs::verify::verify(
            &state.certificates.trust,
            stored.bytes.as_bytes(),
            &parsed,
            &VerifyOptions { profiles, now, fail_closed, extra_crls: extra },
        )
    };
    let outcome = match base(&[], false) {
        Ok(first) if config.fetch_crls && !first.certificate.crl_urls.is_empty() => {
            let fetched = fetch_crls(state, &first.certificate.crl_urls, now).await;
            base(&fetched, config.fail_closed)
        }
        Ok(_) => base(&[], config.fail_closed),
        Err(e) => Err(e),
    };
    let verified = match outcome {
        Ok(v) => v,
        Err(e) => {
            let fingerprint = match &parsed {
                challenge::SignedResponse::Package { certificates, .. } => {
                    certificates.first().map(|c| crate::certs::verify::fingerprint(c))
                }
                challenge::SignedResponse::Cms(_) => None,
            };
            tracing::info!(reason = e.code(), "certificates: signature refused");
            state.store.append_audit(&refuse(e.code(), fingerprint)).await?;
            return Err(e.into());
        }
    };
    let account_match = match_account(state, &verified).await?;
    let matched_account = match &account_match {
        AccountMatch::Enrolled { account_id, .. } | AccountMatch::NationalId { account_id, .. } => Some(*account_id),
        AccountMatch::None => None,
    };
    let c = &verified.certificate;
    let mut event = AuditEvent::new(now, "certificate.signature_verified", format!("certificate:{}", c.fingerprint))
        .detail("purpose", purpose.as_str())
        .detail("challenge", &stored.bytes)
        .detail("challenge_sha256", &challenge_digest)
        .detail("response_sealed", &response_sealed)
        .detail("algorithm", &verified.algorithm)
        .detail("fingerprint", &c.fingerprint)
        .detail("issuer", &c.issuer)
        .detail("serial", &c.serial)
        .detail("profile", &verified.profile)
        .detail("revocation", verified.revocation)
        .detail("path", &verified.path);
    if let challenge::SignedResponse::Package { signature, .. } = &parsed {
        event = event.detail("signature", STANDARD.encode(signature));
    }
    if let Some(a) = stored.account_id.or(matched_account) {
        event = event.account(a);
    }
    state.store.append_audit(&event).await?;
    let transaction = challenge::read_challenge(stored.bytes.as_bytes()).and_then(|v| v.transaction);
    Ok(VerifiedCertificate {
        challenge_digest,
        verified,
        purpose,
        challenge_account: stored.account_id,
        transaction,
        account_match,
    })
}

async fn match_account(state: &AppState, v: &Verified) -> Result<AccountMatch, ServiceError> {
    if let Some(e) = state.store.find_certificate_by_fingerprint(&v.certificate.fingerprint).await? {
        return Ok(AccountMatch::Enrolled { account_id: e.account_id, certificate_id: e.id });
    }
    for number in crate::certs::subject::cccd_numbers(&v.certificate.uids) {
        let hash = super::accounts::national_id_hash(state, &number);
        if let Some(a) = state.store.find_account_by_national_id_hash(&hash).await? {
            return Ok(AccountMatch::NationalId { account_id: a.id, verified: a.as_level >= AsLevel::As3 });
        }
    }
    Ok(AccountMatch::None)
}

/// Whether the certificate may stand for `account`: enrolled on it, or naming its ID number.
/// A certificate enrolled elsewhere, or naming another ID number, is another person's.
fn belongs_to(account: &Account, v: &VerifiedCertificate) -> Result<(), CertServiceError> {
    match &v.account_match {
        AccountMatch::Enrolled { account_id, .. } | AccountMatch::NationalId { account_id, .. }
            if *account_id == account.id =>
        {
            Ok(())
        }
        _ => Err(CertServiceError::OtherPerson),
    }
}

fn actor(account: &Account) -> String {
    format!("account:{}", account.id)
}

async fn fail(state: &AppState, account: &Account, now: i64) -> Result<(), ServiceError> {
    let event =
        AuditEvent::new(now, "login.second_factor_failed", actor(account)).account(account.id).detail("factor", "x509");
    state.store.append_audit(&event).await?;
    let locked = state
        .store
        .count_failure(account.id, LOCK_KEY, now, FAILURE_WINDOW_SECONDS, MAX_FAILURES, LOCK_SECONDS)
        .await?;
    tokio::time::sleep(FAILURE_DELAY).await;
    if let Some(until) = locked {
        let event = AuditEvent::new(now, "factor.locked", "system")
            .account(account.id)
            .detail("factor", LOCK_KEY)
            .detail("until", until);
        state.store.append_audit(&event).await?;
    }
    Ok(())
}

/// A challenge for the second step of `account`'s sign-in.
pub async fn second_step_challenge(state: &AppState, account: &Account, now: i64) -> Result<Challenge, ServiceError> {
    issue_challenge(state, Some(account.id), ChallengePurpose::SecondFactor, None, now).await
}

/// The second step with a certificate: verifies, checks the certificate is the account
/// holder's, adds the factor to the session and rotates its cookie (returned). Failures count
/// towards the shared second-factor lock.
pub async fn second_step(
    state: &AppState,
    session: &SessionRecord,
    account: &Account,
    challenge_id: &str,
    response: &[u8],
    now: i64,
) -> Result<String, CertServiceError> {
    step_up(state, session, account, challenge_id, response, &[ChallengePurpose::SecondFactor], None, now)
        .await
        .map(|(cookie, _)| cookie)
}

/// A certificate signature added to a signed-in session, for any of `purposes` (the second
/// step; a transaction approval, whose verified `transaction` the caller compares with what
/// was approved). The challenge must have been issued to `account`, and the certificate must
/// be the account holder's ([`AccountMatch`] on this account). Locked after repeated failures
/// like every second factor. Returns the session's new cookie and the verification.
///
/// `transaction`: the authorization details the citizen approved, when the step-up is for a
/// transaction (dynamic linking): then only a challenge embedding exactly those details counts,
/// so the signature kept as evidence is over what was approved.
#[allow(clippy::too_many_arguments)]
pub async fn step_up(
    state: &AppState,
    session: &SessionRecord,
    account: &Account,
    challenge_id: &str,
    response: &[u8],
    purposes: &[ChallengePurpose],
    transaction: Option<&serde_json::Value>,
    now: i64,
) -> Result<(String, VerifiedCertificate), CertServiceError> {
    if let Some(until) = state.store.locked_until(account.id, LOCK_KEY, now).await? {
        return Err(CertServiceError::Locked(until));
    }
    let profiles = state.certificates.default_profiles();
    let outcome = verify_response(state, challenge_id, response, purposes, &profiles, now).await.and_then(|v| {
        if v.challenge_account != Some(account.id) {
            return Err(CertServiceError::ChallengeUnknown);
        }
        // A challenge for another transaction (or none) does not approve this one.
        if transaction.is_some() && v.transaction.as_ref() != transaction {
            return Err(CertServiceError::ChallengeUnknown);
        }
        belongs_to(account, &v).map(|_| v)
    });
    let v = match outcome {
        Ok(v) => v,
        Err(e @ (CertServiceError::Service(_) | CertServiceError::Disabled)) => return Err(e),
        Err(e) => {
            fail(state, account, now).await?;
            return Err(e);
        }
    };
    state.store.clear_failures(account.id, LOCK_KEY).await?;
    let cookie = random_token()?;
    let method = Method::Certificate { hardware: false };
    let factor = VerifiedFactor { method, at: now };
    let audit = AuditEvent::new(now, "login.second_factor", actor(account))
        .account(account.id)
        .detail("amr", method.amr())
        .detail("session", session.id.to_string())
        .detail("purpose", v.purpose.as_str())
        .detail("fingerprint", v.fingerprint())
        .detail("challenge_sha256", &v.challenge_digest);
    if !state.store.add_session_factor(&session.token_hash, &hash_token(&cookie), &factor, &audit).await? {
        return Err(CertServiceError::ChallengeUnknown);
    }
    state.metrics.step_up(method.amr());
    if let AccountMatch::Enrolled { certificate_id, .. } = v.account_match {
        state.store.touch_certificate(certificate_id, now).await?;
    }
    Ok((cookie, v))
}

/// A challenge for signing in with a certificate alone.
pub async fn sign_in_challenge(state: &AppState, now: i64) -> Result<Challenge, ServiceError> {
    issue_challenge(state, None, ChallengePurpose::SignIn, None, now).await
}

/// Signs in with a certificate alone (one factor): the certificate must be enrolled on an
/// account, or name (`CCCD:`) the verified ID number of one. A merely declared number is not
/// enough here: anyone could have declared it. Returns the session cookie and the account.
pub async fn sign_in(
    state: &AppState,
    challenge_id: &str,
    response: &[u8],
    now: i64,
) -> Result<(String, Account), CertServiceError> {
    let profiles = state.certificates.default_profiles();
    let v = verify_response(state, challenge_id, response, &[ChallengePurpose::SignIn], &profiles, now).await;
    let v = match v {
        Ok(v) => v,
        Err(e @ (CertServiceError::Service(_) | CertServiceError::Disabled)) => return Err(e),
        Err(e) => {
            tokio::time::sleep(FAILURE_DELAY).await;
            return Err(e);
        }
    };
    let account_id = match v.account_match {
        AccountMatch::Enrolled { account_id, .. } | AccountMatch::NationalId { account_id, verified: true } => {
            account_id
        }
        _ => return Err(CertServiceError::NoAccount),
    };
    let account = state.store.get_account(account_id).await?.ok_or(CertServiceError::NoAccount)?;
    if account.status != AccountStatus::Active {
        return Err(CertServiceError::NoAccount);
    }
    let factors = vec![VerifiedFactor { method: Method::Certificate { hardware: false }, at: now }];
    let (cookie, _) = super::login::start_session(state, &account, factors, now).await?;
    if let AccountMatch::Enrolled { certificate_id, .. } = v.account_match {
        state.store.touch_certificate(certificate_id, now).await?;
    }
    Ok((cookie, account))
}

/// A challenge for enrolling a certificate on the signed-in account.
pub async fn enrol_challenge(state: &AppState, account: &Account, now: i64) -> Result<Challenge, ServiceError> {
    issue_challenge(state, Some(account.id), ChallengePurpose::Enrol, None, now).await
}

/// Enrols the certificate that signed the challenge. When the account has an ID number and
/// the certificate names one (`CCCD:`), they must be the same person's.
pub async fn enrol(
    state: &AppState,
    account: &Account,
    challenge_id: &str,
    response: &[u8],
    now: i64,
) -> Result<EnrolledCertificate, CertServiceError> {
    let profiles = state.certificates.default_profiles();
    let v = verify_response(state, challenge_id, response, &[ChallengePurpose::Enrol], &profiles, now).await?;
    if v.challenge_account != Some(account.id) {
        return Err(CertServiceError::ChallengeUnknown);
    }
    match &v.account_match {
        AccountMatch::Enrolled { account_id, .. } if *account_id == account.id => {
            return Err(CertServiceError::AlreadyEnrolled);
        }
        AccountMatch::Enrolled { .. } => return Err(CertServiceError::OtherPerson),
        _ => {}
    }
    let numbers = crate::certs::subject::cccd_numbers(&v.verified.certificate.uids);
    if let Some(identity) = &account.identity
        && !numbers.is_empty()
        && !numbers.iter().any(|n| super::accounts::national_id_hash(state, n) == identity.national_id_hash)
    {
        return Err(CertServiceError::OtherPerson);
    }
    let c = &v.verified.certificate;
    let record = EnrolledCertificate {
        id: Uuid::now_v7(),
        account_id: account.id,
        fingerprint: c.fingerprint.clone(),
        der: STANDARD.encode(&v.verified.der),
        subject_cn: c.subject_cn.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
        uids: c.uids.clone(),
        profile: v.verified.profile.clone(),
        created_at: now,
        last_used_at: None,
    };
    let audit = AuditEvent::new(now, "factor.enrolled", actor(account))
        .account(account.id)
        .detail("factor", "x509")
        .detail("fingerprint", &c.fingerprint)
        .detail("issuer", &c.issuer)
        .detail("serial", &c.serial);
    match state.store.create_certificate(&record, &audit).await {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict(Conflict::Other)) => Err(CertServiceError::AlreadyEnrolled),
        Err(e) => Err(e.into()),
    }
}

/// The account's enrolled certificates.
pub async fn list(state: &AppState, account: &Account) -> Result<Vec<EnrolledCertificate>, ServiceError> {
    Ok(state.store.list_certificates(account.id).await?)
}

/// Removes an enrolled certificate; needs a sign-in within
/// [`super::second_factor::FRESH_SIGN_IN_SECONDS`].
pub async fn remove(
    state: &AppState,
    account: &Account,
    session: &SessionRecord,
    id: Uuid,
    now: i64,
) -> Result<(), CertServiceError> {
    if !session.factors.iter().any(|f| f.at >= now - super::second_factor::FRESH_SIGN_IN_SECONDS) {
        return Err(CertServiceError::NotFresh);
    }
    let audit = AuditEvent::new(now, "factor.removed", actor(account)).account(account.id).detail("factor", "x509");
    if state.store.delete_certificate(id, account.id, &audit).await? { Ok(()) } else { Err(CertServiceError::NotFound) }
}

/// Whether the account can present a certificate as a second factor: one is enrolled and the
/// trust store is in use. (A certificate matched only by the ID number is not known in
/// advance, so it does not count here.)
pub async fn reachable(state: &AppState, account: &Account) -> Result<bool, ServiceError> {
    Ok(state.certificates.enabled() && !state.store.list_certificates(account.id).await?.is_empty())
}
