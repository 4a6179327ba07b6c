//! Use cases, one function each: load → decide (pure modules) → persist, with the audit event
//! written in the same transaction as the change. HTTP handlers and the CLI call these.

pub mod accounts;
pub mod authorize;
pub mod certificates;
pub mod clients;
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
}

impl ServiceError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// Runs CPU-heavy work (Argon2) on the blocking pool, at most one job per core at a time.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let _permit = state.hashing.acquire().await.map_err(ServiceError::internal)?;
    tokio::task::spawn_blocking(job).await.map_err(ServiceError::internal)
}

/// A fresh random token, or an internal error if the system's random source failed.
pub fn random_token() -> Result<String, ServiceError> {
    crate::crypto::random::random_token().map_err(ServiceError::internal)
}
