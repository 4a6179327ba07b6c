//! The records the gateway keeps: accounts, clients, sessions, grants, codes, tokens, keys.
//! Plain data shared by the pure core (`oidc`), the services and the stores; no framework here.

use crate::assurance::{AsLevel, VerifiedFactor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Suspended,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }
}

/// Self-declared (AS-2) or verified (AS-3/4) identity data. The national ID is held encrypted,
/// with a keyed hash for uniqueness look-ups and a masked copy for display.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityData {
    pub full_name: String,
    /// ISO date `YYYY-MM-DD`.
    pub birth_date: String,
    /// `male` | `female`.
    pub sex: String,
    pub national_id_enc: String,
    pub national_id_hash: String,
    pub national_id_masked: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: Uuid,
    /// Canonical (lower-case, trimmed) user name; unique.
    pub username: String,
    pub password_hash: Option<String>,
    pub as_level: AsLevel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub identity: Option<IdentityData>,
    pub status: AccountStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Can keep a secret; authenticates at the token endpoint.
    Confidential,
    /// Browser or native app; PKCE S256 required.
    Public,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    /// SHA-256 of the client secret (confidential clients). Secrets are generated, high-entropy
    /// values of at least 32 characters, so no stretching is needed.
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// `PS256` | `ES256` | `RS256`.
    pub id_token_alg: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER, sealed with the data key (see `crypto::secretbox`).
    pub private_key_enc: String,
    pub created_at: i64,
    /// When it stopped signing (kept for verification until its tokens expire).
    pub retired_at: Option<i64>,
}

/// A browser session at the gateway. `token_hash` is the hash of the cookie value.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub token_hash: String,
    pub account_id: Uuid,
    pub factors: Vec<VerifiedFactor>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization request waiting for the citizen to sign in (the interaction).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingAuthorization {
    pub id_hash: String,
    /// The validated request, serialized by the caller.
    pub request_json: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One authorization (client × account × session): codes and tokens belong to a grant, and
/// revoking the grant kills all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct GrantRecord {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What an authorization code stands for; everything the token endpoint needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeData {
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub as_level: u8,
    pub mechanism: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthCodeRecord {
    pub code_hash: String,
    pub grant_id: Uuid,
    pub data: CodeData,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, PartialEq)]
pub enum ConsumedCode {
    /// First use: the code is now spent.
    Fresh(AuthCodeRecord, GrantRecord),
    /// The code was already spent: a replay. The caller revokes the grant.
    AlreadyUsed(AuthCodeRecord, GrantRecord),
    NotFound,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccessTokenRecord {
    pub token_hash: String,
    pub grant_id: Uuid,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
}
