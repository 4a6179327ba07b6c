//! Persistence. One narrow [`Store`] trait whose methods state their contracts; two
//! implementations, [`sqlite::SqliteStore`] and [`postgres::PgStore`], each with its own SQL and
//! its own migrations (`migrations/sqlite`, `migrations/postgres`, same file names).
//!
//! Conventions: times are unix seconds (`i64`) in both backends; identifiers are UUIDs; every
//! secret (session ids, codes, tokens) is stored only as [`crate::crypto::random::hash_token`];
//! personal data that must be recoverable (the national ID number) is stored encrypted by the
//! caller. Writes that change security-relevant state take the [`AuditEvent`] that records them
//! and append it in the same transaction, so a change is never without its audit record.
//! Only this module imports sqlx.

mod datakey_rows;
mod hardening;
mod hardening_rows;
pub mod postgres;
mod proofing;
mod proofing_rows;
mod review;
mod review_rows;
mod rows;
pub mod sqlite;
mod webauthn_rows;

use crate::assurance::{AsLevel, VerifiedFactor};
use crate::audit::{AuditEvent, StoredAuditEvent};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which unique value a write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Username,
    NationalId,
    ClientId,
    Other,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::Username => "username",
            Conflict::NationalId => "national_id",
            Conflict::ClientId => "client_id",
            Conflict::Other => "unique value",
        })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use crate::model::*;
pub use datakey_rows::{AadPart, IdKind, Reseal, RowValue, SealedColumn, SealedRow};
pub use hardening::{SessionActivity, ThrottleFn, ThrottleState, ThrottleUpdate};
pub use proofing::{ActivationCode, EvidenceDocument, EvidenceRecord, StaffMember, StaffRole};
pub use review::{ReviewDecision, ReviewFile, ReviewOutcome, ReviewRequest, ReviewStatus};

/// Storage contract shared by both backends. Every method is atomic.
#[async_trait]
pub trait Store: Send + Sync {
    /// Succeeds when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates an account. Fails with `Conflict(Username)` or `Conflict(NationalId)` and
    /// writes nothing (not even the audit event) when either is taken.
    async fn create_account(&self, account: &Account, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_account(&self, id: Uuid) -> StoreResult<Option<Account>>;
    /// Looks up by canonical user name.
    async fn find_account_by_username(&self, username: &str) -> StoreResult<Option<Account>>;
    /// Looks up by the keyed hash of the national ID number.
    async fn find_account_by_national_id_hash(&self, hash: &str) -> StoreResult<Option<Account>>;
    /// Sets the identity data and the level to `as_level` (callers decide whether a change of
    /// level is allowed). `Conflict(NationalId)` when
    /// another account holds the number; `NotFound` for an unknown account.
    async fn update_identity(
        &self,
        id: Uuid,
        identity: &IdentityData,
        as_level: AsLevel,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Replaces the password hash (after a successful login with outdated parameters); does
    /// nothing for an unknown account.
    async fn update_password_hash(&self, id: Uuid, hash: &str, at: i64) -> StoreResult<()>;
    /// Sets whether the account asks for a second factor at every sign-in (and `updated_at`),
    /// with `audit`. `NotFound`, and no event, for an unknown account.
    async fn set_always_second_factor(
        &self,
        account_id: Uuid,
        on: bool,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Stores an unconfirmed TOTP enrolment (`confirmed_at` should be `None`: it does not count
    /// yet, so no audit event). Purged a day after `created_at` unless confirmed.
    async fn create_totp(&self, credential: &TotpCredential) -> StoreResult<()>;
    /// Confirms an enrolment with its first accepted code: sets `confirmed_at = at`,
    /// `last_step = step` and `last_used_at = at`, and appends `audit` — only if the credential
    /// exists, belongs to `account_id` and is unconfirmed. `false`, and no change or event,
    /// otherwise (exactly one of several concurrent confirmations gets `true`).
    async fn confirm_totp(
        &self,
        id: Uuid,
        account_id: Uuid,
        step: i64,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The account's TOTP credentials, confirmed or not, oldest first.
    async fn list_totp(&self, account_id: Uuid) -> StoreResult<Vec<TotpCredential>>;
    /// Deletes the credential if it belongs to `account_id` (confirmed or not) and appends
    /// `audit`; `false`, and no change or event, when there is no such credential.
    async fn delete_totp(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;
    /// The replay guard: accepts time step `step` of a confirmed credential, setting
    /// `last_step = step` and `last_used_at = at`, only if no step `>= step` was accepted before.
    /// Atomic: of several concurrent callers with the same step exactly one gets `true`.
    /// `false` for an unknown or unconfirmed credential. (Ownership is the caller's check: it
    /// found `id` through `list_totp`.) No audit event: the sign-in that follows records it.
    async fn use_totp_step(&self, id: Uuid, step: i64, at: i64) -> StoreResult<bool>;

    /// Replaces the account's recovery codes (used or not) with `hashes`, created at `at`, and
    /// appends `audit`, in one transaction. Duplicate hashes fail the whole call (nothing written).
    async fn replace_recovery_codes(
        &self,
        account_id: Uuid,
        hashes: &[String],
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Spends an unused recovery code of the account: marks it used at `at` and appends `audit`,
    /// returning `Some(number of unused codes left)`. `None`, and no change or event, when the
    /// account has no such unused code. Atomic: of several concurrent callers with the same
    /// code exactly one gets `Some`.
    async fn use_recovery_code(
        &self,
        account_id: Uuid,
        code_hash: &str,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<Option<i64>>;
    /// The number of unused recovery codes of the account (0 for an unknown account).
    async fn count_recovery_codes(&self, account_id: Uuid) -> StoreResult<i64>;

    /// Stores a one-time code challenge (the code was sent: `audit` records it), in one
    /// transaction. `attempts` and `consumed_at` are stored as given (normally 0 and `None`).
    /// A taken id fails with `Conflict(Other)`, an unknown account with a database error; either
    /// way nothing is written, not even the event.
    async fn create_otp_challenge(&self, challenge: &OtpChallenge, audit: &AuditEvent) -> StoreResult<()>;
    /// The account's newest challenge for `purpose` (greatest `created_at`, ties broken by id),
    /// whatever its state: consumed, expired or exhausted alike (the caller checks).
    async fn latest_otp_challenge(&self, account_id: Uuid, purpose: &str) -> StoreResult<Option<OtpChallenge>>;
    /// How many challenges, of any purpose, were created for the account at or after `since`
    /// (the daily sending cap). Challenges stay stored two days past their expiry (see
    /// `purge_expired`), so any `since` within the last two days counts them all.
    async fn count_otp_challenges_since(&self, account_id: Uuid, since: i64) -> StoreResult<i64>;
    /// Counts one attempt at the challenge, atomically: increments `attempts` of the challenge
    /// if it is unconsumed and `expires_at > now`, and returns the new count (concurrent callers
    /// each get a distinct count, none lost). `None`, and no change, when the challenge is
    /// consumed, expired or unknown. No audit event (the caller records failures/successes).
    async fn record_otp_attempt(&self, id: Uuid, now: i64) -> StoreResult<Option<i64>>;
    /// Spends the challenge: sets `consumed_at = now` if it is unconsumed and `expires_at > now`.
    /// Atomic: of several concurrent callers exactly one gets `true`; `false`, and no change,
    /// when consumed, expired or unknown. `attempts` is not checked (the caller's limit). No
    /// audit event: the sign-in or `mark_contact_verified` that follows records it.
    async fn consume_otp_challenge(&self, id: Uuid, now: i64) -> StoreResult<bool>;
    /// Marks a contact proven: for `channel` `"email"` sets `email_verified_at = at` (for
    /// `"sms"`, `phone_verified_at = at`) and `updated_at = at`, and appends `audit`, in one
    /// transaction — only if the account exists and its current email (phone) equals
    /// `destination`, so a contact changed since the code was sent is not marked. `false`, and
    /// no change or event, otherwise (also for any other `channel`). Marking an already
    /// verified contact again moves its time to `at`.
    async fn mark_contact_verified(
        &self,
        account_id: Uuid,
        channel: &str,
        destination: &str,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// `Conflict(ClientId)` when the id is taken.
    async fn create_client(&self, client: &ClientRecord, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Replaces everything but the id and creation time. `NotFound` for an unknown client.
    async fn update_client(&self, client: &ClientRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// Removes the client and everything issued to it (grants, codes, tokens, pushed requests,
    /// pending deliveries). `NotFound` for an unknown client.
    async fn delete_client(&self, id: &str, audit: &AuditEvent) -> StoreResult<()>;

    async fn create_signing_key(&self, key: &SigningKeyRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// All keys, oldest first (by creation, then activation), retired ones included.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stops a key signing (it stays published until the caller drops it). Idempotent: the first
    /// retirement time is kept. `NotFound` for an unknown kid.
    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEvent) -> StoreResult<()>;

    /// Stores a new session and its audit event (a sign-in).
    async fn create_session(&self, session: &SessionRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// The session whose cookie hashes to `token_hash`, if it exists and `expires_at > now`.
    async fn find_session(&self, token_hash: &str, now: i64) -> StoreResult<Option<SessionRecord>>;
    /// Ends the session (sign-out): deletes it, revokes every grant made in it, and appends
    /// `audit`, in one transaction; `false`, and no change or event, when there was none.
    /// `deliveries` (the back-channel logout tokens for the session's clients) are queued in the
    /// same transaction, so a crash cannot end a session and lose its logout tokens.
    async fn delete_session(
        &self,
        token_hash: &str,
        at: i64,
        audit: &AuditEvent,
        deliveries: &[LogoutDelivery],
    ) -> StoreResult<bool>;
    /// Steps a session up: appends `factor` to the `factors` of the session whose cookie hashes
    /// to `token_hash` and replaces its `token_hash` with `new_token_hash` (the cookie rotates
    /// when privileges rise), and appends `audit`, in one transaction. The session's expiry is
    /// not checked (the caller found it with `find_session`). `false`, and no change or event,
    /// when there is no such session (e.g. a concurrent step-up already rotated it).
    async fn add_session_factor(
        &self,
        token_hash: &str,
        new_token_hash: &str,
        factor: &VerifiedFactor,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The unrevoked grants made in a session (whose clients get back-channel logout tokens).
    async fn list_session_grants(&self, session_id: Uuid) -> StoreResult<Vec<GrantRecord>>;

    /// Stores the request, and drops expired ones in the same transaction.
    async fn create_pending_authorization(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    /// The pending request if it exists and has not expired.
    async fn find_pending_authorization(&self, id_hash: &str, now: i64) -> StoreResult<Option<PendingAuthorization>>;
    async fn delete_pending_authorization(&self, id_hash: &str) -> StoreResult<()>;
    /// Replaces the request of an unexpired pending authorization with its approved form (the
    /// citizen approved its authorization details) and records `audit` in the same
    /// transaction. `false`, and nothing written, when it no longer exists or has expired.
    async fn approve_pending_authorization(
        &self,
        id_hash: &str,
        request_json: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// Creates the grant and its first authorization code together.
    async fn create_grant_with_code(&self, grant: &GrantRecord, code: &AuthCodeRecord) -> StoreResult<()>;
    /// A grant without a code (client_credentials).
    async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()>;
    async fn get_grant(&self, id: Uuid) -> StoreResult<Option<GrantRecord>>;
    /// Atomically marks the code used. Exactly one concurrent caller gets `Fresh`; every later
    /// one gets `AlreadyUsed`. Expiry is the caller's check (the record carries `expires_at`).
    async fn consume_auth_code(&self, code_hash: &str, now: i64) -> StoreResult<ConsumedCode>;
    async fn create_access_token(&self, token: &AccessTokenRecord) -> StoreResult<()>;
    /// The token and its grant, whether or not revoked or expired (the caller decides).
    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<(AccessTokenRecord, GrantRecord)>>;
    /// Deletes one access token (RFC 7009 revocation) and appends `audit`; idempotent.
    async fn delete_access_token(&self, token_hash: &str, audit: &AuditEvent) -> StoreResult<()>;
    /// Revokes the grant: every code and token of it stops working. Idempotent.
    async fn revoke_grant(&self, grant_id: Uuid, at: i64, audit: &AuditEvent) -> StoreResult<()>;

    async fn create_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()>;
    /// Atomically marks the refresh token used: exactly one concurrent caller gets `Fresh`,
    /// every later one `AlreadyUsed`. Expiry and revocation are the caller's checks.
    async fn consume_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<ConsumedRefresh>;
    /// The refresh token and its grant, used, expired or revoked alike.
    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<(RefreshTokenRecord, GrantRecord)>>;

    /// Records a `private_key_jwt` assertion's `jti` until `expires_at`; `false` when the same
    /// client already used it (a replay). Atomic.
    async fn record_client_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> StoreResult<bool>;

    async fn create_pushed_request(&self, request: &PushedRequest) -> StoreResult<()>;
    /// Removes and returns the pushed request if it exists, belongs to `client_id` and
    /// `expires_at > now` (single use). A request presented by another client is left alone, so
    /// knowing a `request_uri` does not let anyone spend it.
    async fn take_pushed_request(
        &self,
        uri_hash: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<PushedRequest>>;

    async fn create_logout_deliveries(&self, deliveries: &[LogoutDelivery]) -> StoreResult<()>;
    /// Undelivered deliveries whose `next_attempt_at <= now`, oldest first.
    async fn due_logout_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<LogoutDelivery>>;
    /// Claims a due delivery for sending: sets `next_attempt_at = until` if it is undelivered and
    /// due at `now`. Exactly one of several concurrent claimers (instances) gets `true`.
    async fn claim_logout_delivery(&self, id: Uuid, now: i64, until: i64) -> StoreResult<bool>;
    /// Records one attempt of an undelivered delivery: delivered at `delivered_at`, or failed
    /// with `error` and retried at `next_attempt_at` (`attempts` counts up either way); a
    /// delivered one is never changed again. Appends `audit` when given.
    async fn record_logout_attempt(
        &self,
        id: Uuid,
        delivered_at: Option<i64>,
        error: Option<&str>,
        next_attempt_at: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()>;

    /// Deletes what can no longer be used: sessions, pending and pushed requests, access and
    /// refresh tokens and `jti` records past their expiry; codes, grants and delivered logout
    /// tokens a day past theirs (kept that long so a late replay is still recognised and
    /// revokes its grant); logout tokens a week old, delivered or given up; TOTP enrolments
    /// still unconfirmed a day after `created_at`; one-time code challenges two days past their
    /// expiry (`expires_at <= now - 2 days`, kept so the daily sending cap still counts them);
    /// certificate challenges a day past theirs.
    /// Returns the number of rows deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Counts a failed attempt at `factor` for the account, atomically: failures older than
    /// `window_seconds` no longer count; the `max`-th failure within the window locks the factor
    /// until `now + lock_seconds` and starts the count again. Returns the lock's end when this
    /// failure locked it.
    async fn count_failure(
        &self,
        account_id: Uuid,
        factor: &str,
        now: i64,
        window_seconds: i64,
        max: i64,
        lock_seconds: i64,
    ) -> StoreResult<Option<i64>>;
    /// When the factor is locked at `now`, until when.
    async fn locked_until(&self, account_id: Uuid, factor: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Forgets the failures (after a success).
    async fn clear_failures(&self, account_id: Uuid, factor: &str) -> StoreResult<()>;

    /// Stores a one-time certificate challenge (issue 6). No audit event: issuing one changes
    /// nothing; the verification that spends it records the evidence. A taken `id_hash` fails
    /// with `Conflict(Other)`.
    async fn create_certificate_challenge(&self, challenge: &CertificateChallenge) -> StoreResult<()>;
    /// Spends the challenge whose id hashes to `id_hash`: sets `consumed_at = now` if it is
    /// unconsumed (expired or not) and returns it as it was before. Atomic: of several
    /// concurrent callers exactly one gets `Some`; `None`, and no change, when it is unknown or
    /// already consumed. Expiry is the caller's check (a spent expired challenge stays spent).
    async fn consume_certificate_challenge(&self, id_hash: &str, now: i64)
    -> StoreResult<Option<CertificateChallenge>>;
    /// Enrols a certificate on its account and appends `audit`, in one transaction.
    /// `Conflict(Other)`, and nothing written (not even the event), when the fingerprint is
    /// enrolled already, on this or another account.
    async fn create_certificate(&self, certificate: &EnrolledCertificate, audit: &AuditEvent) -> StoreResult<()>;
    /// The account's enrolled certificates, oldest first.
    async fn list_certificates(&self, account_id: Uuid) -> StoreResult<Vec<EnrolledCertificate>>;
    /// The enrolled certificate with this fingerprint, whichever account holds it.
    async fn find_certificate_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<EnrolledCertificate>>;
    /// Sets `last_used_at = at`; nothing for an unknown id. No event (the sign-in records it).
    async fn touch_certificate(&self, id: Uuid, at: i64) -> StoreResult<()>;
    /// Removes the certificate if it belongs to `account_id` and appends `audit`; `false`, and
    /// no change or event, when there is no such certificate.
    async fn delete_certificate(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;

    /// Renames an authenticator app of the account; `false` when it has no such app.
    async fn rename_totp(&self, id: Uuid, account_id: Uuid, name: &str, audit: &AuditEvent) -> StoreResult<bool>;

    /// Keeps a message in the development outbox (development mode only).
    async fn push_outbox(&self, message: &OutboxMessage) -> StoreResult<()>;
    /// The newest `limit` outbox messages, newest first.
    async fn list_outbox(&self, limit: i64) -> StoreResult<Vec<OutboxMessage>>;

    /// Appends a standalone event (e.g. a failed sign-in) to the chain.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events in chain order, from sequence number `from_seq` on, at most `limit`.
    async fn list_audit(&self, from_seq: i64, limit: i64) -> StoreResult<Vec<StoredAuditEvent>>;
    /// The events about one account (`account_id`), newest first: those with `seq < before`
    /// when given, at most `limit` (the staff console's audit page, `store/*/staff_audit.rs`).
    async fn list_account_audit(
        &self,
        account_id: Uuid,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>>;

    // --- Passkeys (WebAuthn) ---

    /// Stores a ceremony in progress, and drops expired ceremonies in the same transaction.
    /// A taken `id_hash` fails with `Conflict(Other)`. No audit event (nothing is proven yet).
    async fn create_webauthn_ceremony(&self, ceremony: &WebauthnCeremony) -> StoreResult<()>;
    /// Removes and returns the ceremony if it exists, is of `kind` and `expires_at > now`
    /// (single use: of several concurrent callers exactly one gets it). A ceremony of another
    /// kind is left alone; an expired one is deleted and `None` returned.
    async fn take_webauthn_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<WebauthnCeremony>>;
    /// Stores a new credential and appends `audit`, in one transaction. `Conflict(Other)`, and
    /// nothing written (not even the event), when `credential_id` is registered to any account.
    async fn create_passkey(&self, credential: &PasskeyCredential, audit: &AuditEvent) -> StoreResult<()>;
    /// The account's credentials, oldest first.
    async fn list_passkeys(&self, account_id: Uuid) -> StoreResult<Vec<PasskeyCredential>>;
    /// The credential with this (base64url) credential id, whichever account holds it.
    async fn find_passkey(&self, credential_id: &str) -> StoreResult<Option<PasskeyCredential>>;
    /// Records a successful assertion: sets `sign_count = new_count`, `credential_json`,
    /// `backup_eligible`, `backed_up` and `last_used_at = at` — only if the stored
    /// `sign_count` is still `previous_count` (compare-and-set: of two concurrent assertions
    /// with the same counter exactly one gets `true`, so a cloned authenticator racing the
    /// original is caught). `false`, and no change, otherwise or for an unknown credential.
    /// No audit event: the sign-in that follows records it.
    #[allow(clippy::too_many_arguments)]
    async fn use_passkey(
        &self,
        id: Uuid,
        previous_count: i64,
        new_count: i64,
        credential_json: &str,
        backup_eligible: bool,
        backed_up: bool,
        at: i64,
    ) -> StoreResult<bool>;
    /// Renames a credential of the account and appends `audit`; `false`, and no change or
    /// event, when the account has no such credential.
    async fn rename_passkey(&self, id: Uuid, account_id: Uuid, name: &str, audit: &AuditEvent) -> StoreResult<bool>;
    /// Deletes a credential of the account and appends `audit`; `false`, and no change or
    /// event, when the account has no such credential.
    async fn delete_passkey(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;

    // --- Hardening (issue 9; records in store/hardening.rs) ---

    /// Atomically reads the throttle counter `key` (`None` when there is none), calls `update`
    /// with it and writes what it returns: the new state (inserted or replaced), or for `None`
    /// the counter deleted; its `audit`, if any, is appended in the same transaction. Concurrent
    /// updates of one key, from any instance, are serialised: none is lost. Returns the state
    /// written.
    async fn update_throttle(&self, key: &str, update: &ThrottleFn<'_>) -> StoreResult<Option<ThrottleState>>;
    /// The throttle counter `key`, if any.
    async fn get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>>;
    /// The throttle counters of several keys in one query, in the order of `keys` (a sign-in
    /// reads its user name's and its address's at once).
    async fn get_throttles(&self, keys: &[&str]) -> StoreResult<Vec<Option<ThrottleState>>>;
    /// A password sign-in's reads: the account of `username`, if any, and the throttle counters
    /// of `keys` (in their order) — one query when the account exists, a second for an unknown
    /// name.
    async fn find_account_for_sign_in(
        &self,
        username: &str,
        keys: &[&str],
    ) -> StoreResult<(Option<Account>, Vec<Option<ThrottleState>>)>;
    /// Deletes the throttle counters whose key starts with `prefix`, last updated before
    /// `before`, that are neither hard-locked nor locked at `before` or later; returns how many.
    async fn purge_throttle(&self, prefix: &str, before: i64) -> StoreResult<u64>;
    /// Records activity in session `id`. When the session is live (`expires_at > now`) and not
    /// idle (last seen, or created when never seen, after `now - idle_seconds`): sets
    /// `last_seen_at = now` when it is 30 s or more behind, sets `device` when it is unset and
    /// one is given, and returns `true`. Otherwise `false`, and no change.
    async fn touch_session(&self, id: Uuid, now: i64, idle_seconds: i64, device: Option<&str>) -> StoreResult<bool>;
    /// The account's unexpired sessions (`expires_at > now`), idle or not, with their activity,
    /// most recently seen first.
    async fn list_account_sessions(&self, account_id: Uuid, now: i64) -> StoreResult<Vec<SessionActivity>>;
    /// The head of the audit chain: the sequence number and hash of the last event appended
    /// (`0` and the genesis hash when none). A chain whose last event differs was truncated.
    async fn get_audit_head(&self) -> StoreResult<(i64, String)>;

    // --- Proofing (issue 8; records in store/proofing.rs) ---

    /// Creates an account together with the evidence of its level, and appends `audit`, in one
    /// transaction. Conflicts as `create_account`, and then nothing is written.
    async fn create_account_with_evidence(
        &self,
        account: &Account,
        evidence: &EvidenceRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Changes the level of `evidence.account_id` to `evidence.to_level` (and replaces its
    /// identity data when `identity` is given), inserts `evidence` and appends `audit`, in one
    /// transaction — only if the account's level is still `evidence.from_level`
    /// (compare-and-set: a concurrent change wins, this one writes nothing and returns `false`).
    /// `Conflict(NationalId)`, and nothing written, when another account holds the number.
    async fn change_level(
        &self,
        evidence: &EvidenceRecord,
        identity: Option<&IdentityData>,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The account's evidence records, oldest first.
    async fn list_evidence(&self, account_id: Uuid) -> StoreResult<Vec<EvidenceRecord>>;
    /// Evidence records of every account made at or after `since`, newest first, at most `limit`.
    async fn list_evidence_since(&self, since: i64, limit: i64) -> StoreResult<Vec<EvidenceRecord>>;
    /// Sets the account's status (and `updated_at`) and appends `audit`; `false`, and no
    /// change or event, for an unknown account.
    async fn set_account_status(
        &self,
        account_id: Uuid,
        status: AccountStatus,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Makes an account staff: creates `account` first when given, then the staff row, and
    /// appends `audit`, in one transaction. `Conflict(Username)` when the account exists,
    /// `Conflict(Other)` when it is staff already; then nothing is written.
    async fn create_staff(
        &self,
        member: &StaffMember,
        account: Option<&Account>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn get_staff(&self, account_id: Uuid) -> StoreResult<Option<StaffMember>>;
    /// Stores a new activation code and appends `audit`; the account's earlier unused codes
    /// are spent (`used_at = created_at`) in the same transaction: only the newest letter works.
    async fn create_activation_code(&self, code: &ActivationCode, audit: &AuditEvent) -> StoreResult<()>;
    /// The activation code with this hash, used or not.
    async fn find_activation_code(&self, code_hash: &str) -> StoreResult<Option<ActivationCode>>;
    /// Spends the code (`used_at = now`) if it is unused and `expires_at > now`, sets its
    /// account's password hash and appends `audit`, in one transaction. Of several concurrent
    /// callers exactly one gets `true`; `false`, and no change or event, otherwise.
    async fn activate_account(
        &self,
        code_hash: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    // --- Review: AS-3 by uploaded ID-card photos (issue 8; records in store/review.rs) ---

    /// Stores a new request with its files (each `(file, sealed content)`; `file.request_id` is
    /// ignored, the request's id is used) and appends `audit`, in one transaction.
    /// `Conflict(Other)`, and nothing written, when the account already has a pending request
    /// (at most one), or the id or a file's id or side is taken.
    async fn create_review_request(
        &self,
        request: &ReviewRequest,
        files: &[(ReviewFile, String)],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Pending requests, oldest first, at most `limit`.
    async fn list_pending_reviews(&self, limit: i64) -> StoreResult<Vec<ReviewRequest>>;
    async fn count_pending_reviews(&self) -> StoreResult<i64>;
    /// The request and its files' descriptions (front first), whatever its status.
    async fn get_review_request(&self, id: Uuid) -> StoreResult<Option<(ReviewRequest, Vec<ReviewFile>)>>;
    /// A file of the request with its sealed content; `None` when the file is not the request's.
    async fn get_review_file(&self, request_id: Uuid, file_id: Uuid) -> StoreResult<Option<(ReviewFile, String)>>;
    /// The account's newest request, whatever its status.
    async fn latest_review_request(&self, account_id: Uuid) -> StoreResult<Option<ReviewRequest>>;
    /// Decides a pending request (compare-and-set on `status = pending`: of two concurrent
    /// decisions exactly one gets `Decided`, the other `NotPending`, and nothing is written for
    /// it). With `evidence` (an approval) the account's level is also changed to
    /// `evidence.to_level` and the record inserted — only if the level is still
    /// `evidence.from_level` and the account still holds the ID number the request was made with
    /// (else `AccountChanged`, and nothing written, the request stays pending). `audit` is
    /// appended in the same transaction.
    async fn decide_review(
        &self,
        decision: &ReviewDecision,
        evidence: Option<&EvidenceRecord>,
        audit: &AuditEvent,
    ) -> StoreResult<ReviewOutcome>;

    // --- Data-key rotation (issue 9; records in store/datakey_rows.rs) ---

    /// Up to `limit` rows of `column` whose sealed value is not NULL and does not start with
    /// `skip_prefix` (the current key's `v1.<id>.`), with an id greater than `after`, in id order.
    async fn scan_sealed(
        &self,
        column: &SealedColumn,
        skip_prefix: &str,
        after: Option<&RowValue>,
        limit: i64,
    ) -> StoreResult<Vec<SealedRow>>;
    /// In one transaction, sets each row's sealed value to `new` only where it still is `old`
    /// (compare-and-set: a value written meanwhile is never overwritten). Returns how many
    /// rows were updated.
    async fn reseal(&self, column: &SealedColumn, updates: &[Reseal]) -> StoreResult<u64>;
    /// How many values of `column` are sealed under each key id (`v1.<id>.…`), by key id.
    async fn count_sealed_by_key(&self, column: &SealedColumn) -> StoreResult<Vec<(String, i64)>>;
    /// How many audit events hold a value sealed under key `key_id` in their details (the
    /// certificate evidence, which the append-only log never lets us re-encrypt).
    async fn count_audit_sealed_with(&self, key_id: &str) -> StoreResult<i64>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`) and runs its migrations.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::connect(url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else {
        let store = sqlite::SqliteStore::connect(url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    }
}
