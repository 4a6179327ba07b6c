//! Cryptographic building blocks, all backed by ring:
//!
//! - [`random`]: CSPRNG bytes, opaque tokens, token hashing, constant-time comparison.
//! - [`secretbox`]: the data key — AES-256-GCM encryption at rest of personal data,
//!   keyed look-up hashes, pairwise subject identifiers.
//! - [`signing`]: JWS signing keys (PS256, ES256, RS256), compact JWTs, JWK/JWKS, and
//!   openidconnect's `PrivateSigningKey` for ID tokens.
//!
//! No I/O: keys come in as bytes or strings, results go out as bytes, strings or JSON.
//! Loading, storing and rotating keys is the caller's job. Nothing here depends on
//! axum, sqlx or the clock.

pub mod jws;
pub mod random;
pub mod secretbox;
pub mod signing;

pub use random::{RandomError, constant_time_eq, hash_token, random_bytes, random_token};
pub use secretbox::{DataKey, DataKeyRing, DataKeys, SecretBoxError};
pub use signing::{KeyError, SigningAlg, SigningKey, generate_pkcs8, jwks, sign_jwt};
