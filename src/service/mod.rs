//! Use cases, one function each: load → decide (pure modules) → persist, with the audit event
//! written in the same transaction as the change. HTTP handlers and the CLI call these.

pub mod accounts;
pub mod authorize;
pub mod certificates;
pub mod clients;
pub mod data_key;
pub mod hashing;
pub mod keys;
pub mod login;
pub mod logout;
pub mod otp;
pub mod par;
pub mod passkeys;
pub mod proofing;
pub mod second_factor;
pub mod sessions;
pub mod throttle;
pub mod token;
pub mod userinfo;

use crate::app::AppState;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The password hashing pool is full (`service::hashing`): refused at once, to be retried
    /// (503 with `Retry-After`).
    #[error("too busy: the password hashing queue is full")]
    Busy,
}

impl ServiceError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// Runs CPU-heavy work (Argon2) on the bounded hashing pool (`service::hashing`), or refuses
/// it with [`ServiceError::Busy`] when the pool's queue is full. Password hashing itself should
/// use `hashing::{verify, hash}`, which reuse the worker's Argon2 memory.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    hashing::reserve(state)?.run(move |_| job()).await
}

/// A fresh random token, or an internal error if the system's random source failed.
pub fn random_token() -> Result<String, ServiceError> {
    crate::crypto::random::random_token().map_err(ServiceError::internal)
}
