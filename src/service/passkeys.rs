//! Passkeys (WebAuthn Level 3): registration from the account page, passwordless sign-in with a
//! discoverable credential, a passkey as the second step after a password, and management.
//!
//! - **Ceremony state** (challenge, allowed credentials, policy) never leaves the server: it is
//!   stored under the hash of a random id, expires after `webauthn.ceremony_seconds` and is
//!   taken (deleted) by the one request that finishes it (W3C WebAuthn L3 §13.4.3: challenges
//!   must be single use).
//! - **User verification is required** at registration and at every assertion (the `Passkey`
//!   type of webauthn-rs): an assertion therefore carries the UV flag, which the assurance
//!   model counts as possession **and** inherence (`amr` `hwk`, `user`; mechanism `mfa`).
//!   The flag of each assertion is still read and recorded as it is, never assumed.
//! - **Cloned authenticators**: a signature counter that does not increase (§6.1.1) refuses
//!   the assertion and is audited as `factor.passkey_counter_regression`; the counter is
//!   advanced with a compare-and-set, so two assertions racing with one counter value cannot
//!   both pass.
//! - **Credential ids are unique across accounts** (§7.1 step 25; a database constraint).

use super::{ServiceError, random_token};
use crate::app::AppState;
use crate::assurance::{Method, VerifiedFactor};
use crate::audit::AuditEvent;
use crate::crypto::random::hash_token;
use crate::store::{Account, AccountStatus, PasskeyCredential, SessionRecord, StoreError, WebauthnCeremony};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    AttestationMetadata, AttestedPasskeyRegistration, AuthenticationResult, CreationChallengeResponse, DiscoverableKey,
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Webauthn, WebauthnError,
};

/// What is being registered. A passkey must verify the user (fingerprint, face, PIN) at every
/// use. A security key is asked to verify the user but may not (UV "preferred"): if it did at
/// registration webauthn-rs requires it ever after, otherwise its assertions are possession only
/// (`hwk`), a second factor after a password (`2fa`), never `mfa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    #[default]
    Passkey,
    SecurityKey,
}

/// Ceremony kinds (the `kind` column): each finish takes only its own kind.
pub const REGISTER: &str = "register";
pub const AUTHENTICATE: &str = "authenticate";
pub const DISCOVER: &str = "discover";

/// The longest passkey name, in characters.
pub const MAX_NAME: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the ceremony is unknown, already used or expired")]
    Ceremony,
    #[error("the authenticator's answer was refused: {0}")]
    Rejected(String),
    #[error("this passkey is already registered")]
    Duplicate,
    #[error("unknown passkey")]
    UnknownCredential,
    #[error("the signature counter did not increase: possibly a cloned authenticator")]
    CounterRegression,
    #[error("the account has no passkey")]
    NoPasskey,
    #[error("no such passkey")]
    NotFound,
    #[error("a recent sign-in is needed")]
    NotFresh,
    #[error("the account would be left without a way to sign in")]
    LastWayIn,
    #[error("too many failed attempts; locked until {0}")]
    Locked(i64),
    #[error("account suspended")]
    Suspended,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for PasskeyError {
    fn from(e: StoreError) -> Self {
        PasskeyError::Service(e.into())
    }
}

fn internal(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Service(ServiceError::internal(e))
}

fn actor(account_id: Uuid) -> String {
    format!("account:{account_id}")
}

fn relying_party(state: &AppState) -> Result<Webauthn, PasskeyError> {
    state.config.webauthn.relying_party(state.issuer(), state.config.development).map_err(internal)
}

/// base64url (unpadded) of a raw credential id: the form stored and compared.
pub fn credential_id_text(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// What the registration ceremony keeps server-side besides webauthn-rs' own state.
#[derive(Serialize, Deserialize)]
struct RegistrationState {
    user_handle: Uuid,
    attested: bool,
    #[serde(default)]
    kind: KeyKind,
    state: serde_json::Value,
}

/// The second step's parked state: passkey authentication (UV required) when every credential
/// of the account is a passkey, security-key authentication (UV preferred; passkeys among them
/// still require it, by their registration policy) otherwise.
#[derive(Serialize, Deserialize)]
struct AuthenticationState {
    security_key: bool,
    state: serde_json::Value,
}

/// Whether the session has a factor verified within the last five minutes (adding or
/// removing a way in needs a fresh sign-in, as for authenticator apps).
fn fresh(session: &SessionRecord, now: i64) -> bool {
    session.factors.iter().any(|f| f.at >= now - super::second_factor::FRESH_SIGN_IN_SECONDS)
}

async fn park(
    state: &AppState,
    kind: &str,
    account_id: Option<Uuid>,
    json: String,
    now: i64,
) -> Result<String, PasskeyError> {
    let id = random_token()?;
    let ceremony = WebauthnCeremony {
        id_hash: hash_token(&id),
        kind: kind.into(),
        account_id,
        state_json: json,
        created_at: now,
        expires_at: now + state.config.webauthn.ceremony_seconds,
    };
    state.store.create_webauthn_ceremony(&ceremony).await?;
    Ok(id)
}

/// Takes the ceremony (single use); one of another account is refused (and spent).
async fn take(
    state: &AppState,
    id: &str,
    kind: &str,
    account_id: Option<Uuid>,
    now: i64,
) -> Result<WebauthnCeremony, PasskeyError> {
    if id.is_empty() {
        return Err(PasskeyError::Ceremony);
    }
    match state.store.take_webauthn_ceremony(&hash_token(id), kind, now).await? {
        Some(c) if c.account_id == account_id => Ok(c),
        _ => Err(PasskeyError::Ceremony),
    }
}

fn parse_passkey(p: &PasskeyCredential) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&p.credential_json).map_err(internal)
}

fn parse_security_key(p: &PasskeyCredential) -> Result<SecurityKey, PasskeyError> {
    serde_json::from_str(&p.credential_json).map_err(internal)
}

/// webauthn-rs' `Passkey` and `SecurityKey` wrap the same credential and serialise alike
/// (`{"cred": …}`): one stored form serves both ceremonies.
fn as_passkey(key: &SecurityKey) -> Result<Passkey, PasskeyError> {
    serde_json::to_value(key).and_then(serde_json::from_value).map_err(internal)
}

/// Whether the credential was registered with user verification required (a passkey).
fn registered_as_passkey(p: &PasskeyCredential) -> bool {
    serde_json::from_str::<serde_json::Value>(&p.credential_json)
        .is_ok_and(|v| v["cred"]["registration_policy"] == "required")
}

/// The flags and counter webauthn-rs keeps inside a credential (not exposed by accessors).
struct Flags {
    user_verified: bool,
    backup_eligible: bool,
    backed_up: bool,
    counter: i64,
}

fn flags(passkey: &Passkey) -> Result<(String, Flags), PasskeyError> {
    let json = serde_json::to_value(passkey).map_err(internal)?;
    let cred = &json["cred"];
    let flag = |k: &str| cred[k].as_bool().unwrap_or(false);
    let f = Flags {
        user_verified: flag("user_verified"),
        backup_eligible: flag("backup_eligible"),
        backed_up: flag("backup_state"),
        counter: cred["counter"].as_i64().unwrap_or(0),
    };
    Ok((json.to_string(), f))
}

/// The options for `navigator.credentials.create()`, the ceremony id, and the state parked.
pub struct Started<T> {
    pub ceremony: String,
    pub options: T,
}

/// Starts registering a passkey for the signed-in account (fresh sign-in required):
/// user verification required, a discoverable credential preferred, the account's existing
/// credentials excluded; with an AAGUID allow-list configured, attestation is required.
pub async fn start_registration(
    state: &AppState,
    account: &Account,
    session: &SessionRecord,
    kind: KeyKind,
    now: i64,
) -> Result<Started<serde_json::Value>, PasskeyError> {
    if !fresh(session, now) {
        return Err(PasskeyError::NotFresh);
    }
    start_registration_for(state, account, kind, REGISTER, now).await
}

/// Starts registering a credential for `account`, parked as a ceremony of `ceremony_kind`
/// (only a finish naming the same kind takes it). The caller has decided who may do so: the
/// account holder (`start_registration`) or counter staff (`service::proofing::counter`).
pub(crate) async fn start_registration_for(
    state: &AppState,
    account: &Account,
    kind: KeyKind,
    ceremony_kind: &str,
    now: i64,
) -> Result<Started<serde_json::Value>, PasskeyError> {
    let existing = state.store.list_passkeys(account.id).await?;
    // One user handle per account, so an authenticator replaces rather than duplicates.
    let user_handle = existing.first().map(|p| p.user_handle).unwrap_or_else(Uuid::new_v4);
    let exclude = existing.iter().map(|p| parse_passkey(p).map(|k| k.cred_id().clone())).collect::<Result<_, _>>()?;
    let display = account.identity.as_ref().map(|i| i.full_name.clone()).unwrap_or_else(|| account.username.clone());
    let rp = relying_party(state)?;
    let cas = state.config.webauthn.attestation_cas().map_err(internal)?;
    let (ccr, json, attested): (CreationChallengeResponse, serde_json::Value, bool) = match (kind, cas) {
        (KeyKind::SecurityKey, cas) => {
            let attested = cas.is_some();
            let (ccr, reg) = rp
                .start_securitykey_registration(user_handle, &account.username, &display, Some(exclude), cas, None)
                .map_err(internal)?;
            (ccr, serde_json::to_value(&reg).map_err(internal)?, attested)
        }
        (KeyKind::Passkey, None) => {
            let (ccr, reg) = rp
                .start_passkey_registration(user_handle, &account.username, &display, Some(exclude))
                .map_err(internal)?;
            (ccr, serde_json::to_value(&reg).map_err(internal)?, false)
        }
        (KeyKind::Passkey, Some(cas)) => {
            let (ccr, reg) = rp
                .start_attested_passkey_registration(user_handle, &account.username, &display, Some(exclude), cas, None)
                .map_err(internal)?;
            (ccr, serde_json::to_value(&reg).map_err(internal)?, true)
        }
    };
    let parked = RegistrationState { user_handle, attested, kind, state: json };
    let ceremony =
        park(state, ceremony_kind, Some(account.id), serde_json::to_string(&parked).map_err(internal)?, now).await?;
    // Resident keys preferred (issue 5): a discoverable credential allows passwordless sign-in;
    // webauthn-rs asks for "discouraged" because some security keys have little storage.
    let mut options = serde_json::to_value(&ccr).map_err(internal)?;
    if let (KeyKind::Passkey, Some(sel)) = (kind, options["publicKey"]["authenticatorSelection"].as_object_mut()) {
        sel.insert("residentKey".into(), "preferred".into());
        sel.insert("requireResidentKey".into(), false.into());
    }
    Ok(Started { ceremony, options })
}

fn normalise_name(name: &str) -> Option<String> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    (name.chars().count() <= MAX_NAME).then_some(name)
}

/// Finishes a registration: verifies the authenticator's answer against the parked state and
/// stores the credential (audited `factor.enrolled`).
pub async fn finish_registration(
    state: &AppState,
    account: &Account,
    ceremony: &str,
    response: &RegisterPublicKeyCredential,
    name: &str,
    now: i64,
) -> Result<PasskeyCredential, PasskeyError> {
    let audit = AuditEvent::new(now, "factor.enrolled", actor(account.id)).account(account.id);
    finish_registration_for(state, account, REGISTER, ceremony, response, name, audit, now).await
}

/// Finishes a registration started by `start_registration_for` with the same `ceremony_kind`;
/// `audit` (kind, actor, account) gets the credential's details and is appended with it, in
/// one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish_registration_for(
    state: &AppState,
    account: &Account,
    ceremony_kind: &str,
    ceremony: &str,
    response: &RegisterPublicKeyCredential,
    name: &str,
    audit: AuditEvent,
    now: i64,
) -> Result<PasskeyCredential, PasskeyError> {
    let c = take(state, ceremony, ceremony_kind, Some(account.id), now).await?;
    let parked: RegistrationState = serde_json::from_str(&c.state_json).map_err(internal)?;
    let rp = relying_party(state)?;
    let refused = |e: WebauthnError| PasskeyError::Rejected(e.to_string());
    let (passkey, aaguid) = if parked.kind == KeyKind::SecurityKey {
        let reg: SecurityKeyRegistration = serde_json::from_value(parked.state).map_err(internal)?;
        let key = rp.finish_securitykey_registration(response, &reg).map_err(refused)?;
        let aaguid = match key.attestation().metadata {
            AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } if parked.attested => {
                Some(aaguid.to_string())
            }
            _ => None,
        };
        (as_passkey(&key)?, aaguid)
    } else if parked.attested {
        let reg: AttestedPasskeyRegistration = serde_json::from_value(parked.state).map_err(internal)?;
        let attested = rp.finish_attested_passkey_registration(response, &reg).map_err(refused)?;
        let aaguid = match attested.attestation().metadata {
            AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } => {
                Some(aaguid.to_string())
            }
            _ => None,
        };
        (Passkey::from(attested), aaguid)
    } else {
        let reg: PasskeyRegistration = serde_json::from_value(parked.state).map_err(internal)?;
        (rp.finish_passkey_registration(response, &reg).map_err(refused)?, None)
    };
    let (credential_json, f) = flags(&passkey)?;
    let credential = PasskeyCredential {
        id: Uuid::now_v7(),
        account_id: account.id,
        credential_id: credential_id_text(passkey.cred_id().as_ref()),
        user_handle: parked.user_handle,
        name: normalise_name(name).unwrap_or_default(),
        credential_json,
        user_verified: f.user_verified,
        backup_eligible: f.backup_eligible,
        backed_up: f.backed_up,
        sign_count: f.counter,
        aaguid,
        created_at: now,
        last_used_at: None,
    };
    let audit = audit
        .detail("factor", "passkey")
        .detail("credential", credential.id.to_string())
        .detail("user_verified", f.user_verified)
        .detail("backup_eligible", f.backup_eligible)
        .detail("backed_up", f.backed_up)
        .detail("aaguid", credential.aaguid.clone().unwrap_or_default());
    match state.store.create_passkey(&credential, &audit).await {
        Ok(()) => Ok(credential),
        Err(StoreError::Conflict(_)) => {
            // Registered to this or another account already: refused, and recorded.
            let event = AuditEvent::new(now, "factor.enrol_refused", audit.actor.clone())
                .account(account.id)
                .detail("factor", "passkey")
                .detail("reason", "credential_id_taken");
            state.store.append_audit(&event).await?;
            Err(PasskeyError::Duplicate)
        }
        Err(e) => Err(e.into()),
    }
}

/// Starts a passwordless sign-in: no user is known yet, the authenticator offers its
/// discoverable credentials for this RP (user verification required).
pub async fn start_sign_in(state: &AppState, now: i64) -> Result<Started<RequestChallengeResponse>, PasskeyError> {
    let rp = relying_party(state)?;
    let (mut options, auth) = rp.start_discoverable_authentication().map_err(internal)?;
    // webauthn-rs marks this "conditional" (autofill); our button runs a modal ceremony.
    options.mediation = None;
    let ceremony = park(state, DISCOVER, None, serde_json::to_string(&auth).map_err(internal)?, now).await?;
    Ok(Started { ceremony, options })
}

/// Starts the passkey step for a signed-in account (the second step after a password, or a
/// step-up): only the account's own credentials are allowed.
pub async fn start_second_step(
    state: &AppState,
    account: &Account,
    now: i64,
) -> Result<Started<RequestChallengeResponse>, PasskeyError> {
    if let Some(until) = state.store.locked_until(account.id, super::second_factor::LOCK_KEY, now).await? {
        return Err(PasskeyError::Locked(until));
    }
    let stored = state.store.list_passkeys(account.id).await?;
    if stored.is_empty() {
        return Err(PasskeyError::NoPasskey);
    }
    let rp = relying_party(state)?;
    let security_key = !stored.iter().all(registered_as_passkey);
    let (options, auth) = if security_key {
        let keys = stored.iter().map(parse_security_key).collect::<Result<Vec<_>, _>>()?;
        let (options, auth) = rp.start_securitykey_authentication(&keys).map_err(internal)?;
        (options, serde_json::to_value(&auth).map_err(internal)?)
    } else {
        let keys = stored.iter().map(parse_passkey).collect::<Result<Vec<_>, _>>()?;
        let (options, auth) = rp.start_passkey_authentication(&keys).map_err(internal)?;
        (options, serde_json::to_value(&auth).map_err(internal)?)
    };
    let parked = serde_json::to_string(&AuthenticationState { security_key, state: auth }).map_err(internal)?;
    let ceremony = park(state, AUTHENTICATE, Some(account.id), parked, now).await?;
    Ok(Started { ceremony, options })
}

/// Audits a refused assertion.
async fn refused(
    state: &AppState,
    account: Option<Uuid>,
    credential: Option<&PasskeyCredential>,
    reason: &str,
    now: i64,
) -> Result<(), PasskeyError> {
    // A counter regression is the system's finding about a credential; a failed sign-in is an
    // anonymous attempt (whoever sent it proved nothing).
    let (kind, actor) = if reason == "counter_regression" {
        ("factor.passkey_counter_regression", "system")
    } else {
        ("login.failed", "anonymous")
    };
    let mut event = AuditEvent::new(now, kind, actor).detail("method", "passkey").detail("reason", reason);
    if let Some(id) = account {
        event = event.account(id);
    }
    if let Some(c) = credential {
        event = event.detail("credential", c.id.to_string());
    }
    state.store.append_audit(&event).await?;
    Ok(())
}

/// Checks the result against the credential as stored now and records the use: the counter
/// must increase unless the authenticator keeps none (both zero), and the stored counter is
/// advanced only if nobody advanced it since it was read.
async fn record_use(
    state: &AppState,
    stored: &PasskeyCredential,
    result: &AuthenticationResult,
    now: i64,
) -> Result<(), PasskeyError> {
    let counter = i64::from(result.counter());
    let regression = (counter > 0 || stored.sign_count > 0) && counter <= stored.sign_count;
    let mut passkey = parse_passkey(stored)?;
    passkey.update_credential(result);
    let (json, f) = flags(&passkey)?;
    if regression
        || !state
            .store
            .use_passkey(
                stored.id,
                stored.sign_count,
                counter.max(stored.sign_count),
                &json,
                f.backup_eligible,
                f.backed_up,
                now,
            )
            .await?
    {
        tracing::warn!(credential = %stored.id, counter, stored = stored.sign_count, "passkey counter regression: possibly cloned");
        refused(state, Some(stored.account_id), Some(stored), "counter_regression", now).await?;
        return Err(PasskeyError::CounterRegression);
    }
    Ok(())
}

fn verified(result: &AuthenticationResult, now: i64) -> VerifiedFactor {
    VerifiedFactor { method: Method::WebAuthn { user_verified: result.user_verified() }, at: now }
}

/// Finishes a passwordless sign-in: finds the credential by id, checks that the user handle
/// the authenticator returned is the one registered with it, verifies the assertion (user
/// verification required) and the counter. Returns the account and the factor to start the
/// session with. Failures are audited; they do not count towards the second-factor lock (a
/// forged assertion needs no secret of the victim to send, so counting it would let anyone
/// lock any account, and a signature cannot be guessed).
pub async fn finish_sign_in(
    state: &AppState,
    ceremony: &str,
    response: &PublicKeyCredential,
    now: i64,
) -> Result<(Account, VerifiedFactor), PasskeyError> {
    let c = take(state, ceremony, DISCOVER, None, now).await?;
    let auth = serde_json::from_str(&c.state_json).map_err(internal)?;
    let rp = relying_party(state)?;
    let stored = state.store.find_passkey(&credential_id_text(response.get_credential_id())).await?;
    let handle = response.get_user_unique_id().and_then(|b| Uuid::from_slice(b).ok());
    let Some(stored) = stored.filter(|s| Some(s.user_handle) == handle) else {
        refused(state, None, None, "unknown_credential", now).await?;
        return Err(PasskeyError::UnknownCredential);
    };
    let key = DiscoverableKey::from(parse_passkey(&stored)?);
    #[allow(deprecated)] // the v2 call needs webauthn-rs' credential internals
    let result = rp.finish_discoverable_authentication(response, auth, &[key]);
    let result = match result {
        Ok(r) => r,
        Err(e) => return Err(assertion_refused(state, &stored, e, now).await?),
    };
    let account = match state.store.get_account(stored.account_id).await? {
        Some(a) if a.status == AccountStatus::Active => a,
        _ => return Err(PasskeyError::Suspended),
    };
    record_use(state, &stored, &result, now).await?;
    Ok((account, verified(&result, now)))
}

async fn assertion_refused(
    state: &AppState,
    stored: &PasskeyCredential,
    e: WebauthnError,
    now: i64,
) -> Result<PasskeyError, PasskeyError> {
    if matches!(e, WebauthnError::CredentialPossibleCompromise) {
        refused(state, Some(stored.account_id), Some(stored), "counter_regression", now).await?;
        return Ok(PasskeyError::CounterRegression);
    }
    let reason = if matches!(e, WebauthnError::UserNotVerified) { "user_not_verified" } else { "invalid_assertion" };
    refused(state, Some(stored.account_id), Some(stored), reason, now).await?;
    Ok(PasskeyError::Rejected(e.to_string()))
}

/// Finishes the passkey step for the signed-in session and adds the factor to it (the cookie
/// rotates, as for any step-up). Failures count towards the second-factor lock.
pub async fn finish_second_step(
    state: &AppState,
    session: &SessionRecord,
    account: &Account,
    ceremony: &str,
    response: &PublicKeyCredential,
    now: i64,
) -> Result<String, PasskeyError> {
    use super::second_factor::{LOCK_KEY, fail};
    if let Some(until) = state.store.locked_until(account.id, LOCK_KEY, now).await? {
        return Err(PasskeyError::Locked(until));
    }
    let c = take(state, ceremony, AUTHENTICATE, Some(account.id), now).await?;
    let parked: AuthenticationState = serde_json::from_str(&c.state_json).map_err(internal)?;
    let rp = relying_party(state)?;
    let stored = state
        .store
        .find_passkey(&credential_id_text(response.get_credential_id()))
        .await?
        .filter(|s| s.account_id == account.id);
    let Some(stored) = stored else {
        fail(state, account, "passkey", now).await?;
        return Err(PasskeyError::UnknownCredential);
    };
    let result = if parked.security_key {
        let auth: SecurityKeyAuthentication = serde_json::from_value(parked.state).map_err(internal)?;
        rp.finish_securitykey_authentication(response, &auth)
    } else {
        let auth: PasskeyAuthentication = serde_json::from_value(parked.state).map_err(internal)?;
        rp.finish_passkey_authentication(response, &auth)
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            let e = assertion_refused(state, &stored, e, now).await?;
            fail(state, account, "passkey", now).await?;
            return Err(e);
        }
    };
    if let Err(e) = record_use(state, &stored, &result, now).await {
        fail(state, account, "passkey", now).await?;
        return Err(e);
    }
    state.store.clear_failures(account.id, LOCK_KEY).await?;
    let cookie = random_token()?;
    let factor = verified(&result, now);
    let audit = AuditEvent::new(now, "login.second_factor", actor(account.id))
        .account(account.id)
        .detail("amr", factor.method.amr())
        .detail("session", session.id.to_string())
        .detail("credential", stored.id.to_string());
    if !state.store.add_session_factor(&session.token_hash, &hash_token(&cookie), &factor, &audit).await? {
        return Err(PasskeyError::NotFound);
    }
    state.metrics.step_up(factor.method.amr());
    Ok(cookie)
}

/// The account's passkeys, oldest first.
pub async fn list(state: &AppState, account: &Account) -> Result<Vec<PasskeyCredential>, ServiceError> {
    Ok(state.store.list_passkeys(account.id).await?)
}

/// Renames a passkey; 1–60 characters after collapsing spaces.
pub async fn rename(state: &AppState, account: &Account, id: Uuid, name: &str, now: i64) -> Result<(), PasskeyError> {
    let name = normalise_name(name).filter(|n| !n.is_empty()).ok_or(PasskeyError::NotFound)?;
    let audit = AuditEvent::new(now, "factor.renamed", actor(account.id))
        .account(account.id)
        .detail("factor", "passkey")
        .detail("credential", id.to_string());
    if state.store.rename_passkey(id, account.id, &name, &audit).await? { Ok(()) } else { Err(PasskeyError::NotFound) }
}

/// Removes a passkey (fresh sign-in required). An account must keep a way in: without a
/// password its last passkey stays; with "always ask for a second factor" on, the last
/// second factor stays.
pub async fn remove(
    state: &AppState,
    account: &Account,
    session: &SessionRecord,
    id: Uuid,
    now: i64,
) -> Result<(), PasskeyError> {
    if !fresh(session, now) {
        return Err(PasskeyError::NotFresh);
    }
    let keys = state.store.list_passkeys(account.id).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(PasskeyError::NotFound);
    }
    let others = keys.iter().filter(|k| k.id != id).count();
    if others == 0 {
        if account.password_hash.is_none() {
            return Err(PasskeyError::LastWayIn);
        }
        if account.always_second_factor
            && super::second_factor::reachable_without_passkeys(state, account).await?
                == crate::assurance::Mechanism::OneFactor
        {
            return Err(PasskeyError::LastWayIn);
        }
    }
    let audit = AuditEvent::new(now, "factor.removed", actor(account.id))
        .account(account.id)
        .detail("factor", "passkey")
        .detail("credential", id.to_string());
    if state.store.delete_passkey(id, account.id, &audit).await? { Ok(()) } else { Err(PasskeyError::NotFound) }
}
