//! The OpenID Connect protocol core: request validation, decisions, token contents, discovery.
//!
//! Pure: no axum, no sqlx, no clock, no randomness. Callers load what is needed (the client,
//! the session, the code record), pass it in with the current time, and persist the outcome.
//! Each check is a small named function with the specification's rule quoted above it.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod id_token;
pub mod logout;
pub mod pkce;
pub mod rar;
pub mod token;
pub mod verified_claims;

pub use error::OAuthError;

/// Scopes this provider understands. Others are ignored (RFC 6749 §3.3 lets the server
/// fully or partially ignore the requested scope).
pub const SUPPORTED_SCOPES: &[&str] =
    &["openid", "profile", "email", "phone", "national_id", "offline_access", "verification"];
