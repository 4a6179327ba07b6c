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

pub mod postgres;
mod rows;
pub mod sqlite;

use crate::assurance::AsLevel;
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

    /// `Conflict(ClientId)` when the id is taken.
    async fn create_client(&self, client: &ClientRecord, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;

    async fn create_signing_key(&self, key: &SigningKeyRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// All keys, oldest first, retired ones included.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    /// Stores a new session and its audit event (a sign-in).
    async fn create_session(&self, session: &SessionRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// The session whose cookie hashes to `token_hash`, if it exists and `expires_at > now`.
    async fn find_session(&self, token_hash: &str, now: i64) -> StoreResult<Option<SessionRecord>>;
    /// Removes the session (sign-out) and appends `audit`; `false`, and no event, when there was
    /// none.
    async fn delete_session(&self, token_hash: &str, audit: &AuditEvent) -> StoreResult<bool>;

    /// Stores the request, and drops expired ones in the same transaction.
    async fn create_pending_authorization(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    /// The pending request if it exists and has not expired.
    async fn find_pending_authorization(&self, id_hash: &str, now: i64) -> StoreResult<Option<PendingAuthorization>>;
    async fn delete_pending_authorization(&self, id_hash: &str) -> StoreResult<()>;

    /// Creates the grant and its first authorization code together.
    async fn create_grant_with_code(&self, grant: &GrantRecord, code: &AuthCodeRecord) -> StoreResult<()>;
    /// Atomically marks the code used. Exactly one concurrent caller gets `Fresh`; every later
    /// one gets `AlreadyUsed`. Expiry is the caller's check (the record carries `expires_at`).
    async fn consume_auth_code(&self, code_hash: &str, now: i64) -> StoreResult<ConsumedCode>;
    async fn create_access_token(&self, token: &AccessTokenRecord) -> StoreResult<()>;
    /// The token and its grant, whether or not revoked or expired (the caller decides).
    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<(AccessTokenRecord, GrantRecord)>>;
    /// Revokes the grant: every code and token of it stops working. Idempotent.
    async fn revoke_grant(&self, grant_id: Uuid, at: i64, audit: &AuditEvent) -> StoreResult<()>;

    /// Deletes what can no longer be used: sessions, pending requests and access tokens past
    /// their expiry, and codes a day past theirs (kept that long so a late replay is still
    /// recognised and revokes its grant). Returns the number of rows deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Appends a standalone event (e.g. a failed sign-in) to the chain.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events in chain order, from sequence number `from_seq` on, at most `limit`.
    async fn list_audit(&self, from_seq: i64, limit: i64) -> StoreResult<Vec<StoredAuditEvent>>;
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
