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
    /// When the current `email` was proven by a one-time code (`None`: not verified).
    pub email_verified_at: Option<i64>,
    /// When the current `phone` was proven by a one-time code (`None`: not verified).
    pub phone_verified_at: Option<i64>,
    pub identity: Option<IdentityData>,
    pub status: AccountStatus,
    /// The citizen asked for a second factor at every sign-in, whatever the client requires.
    pub always_second_factor: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A TOTP authenticator (RFC 6238) of an account. It counts as a factor only once confirmed
/// (`confirmed_at` set by a first valid code); unconfirmed enrolments are purged after a day.
#[derive(Clone, Debug, PartialEq)]
pub struct TotpCredential {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The citizen's label for the device ("Điện thoại của tôi").
    pub name: String,
    /// The shared secret, sealed with the data key (see `crypto::secretbox`).
    pub secret_enc: String,
    /// The last time step accepted (`unix time / period`); a code of this step or an earlier
    /// one is never accepted again.
    pub last_step: Option<i64>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A one-time code sent to an account's email address or phone, for a sign-in or to prove the
/// contact. Only the code's hash is kept; `attempts` counts wrong guesses; a challenge is
/// spent (`consumed_at`) by its first correct code.
#[derive(Clone, Debug, PartialEq)]
pub struct OtpChallenge {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `login` | `verify_email` | `verify_phone`.
    pub purpose: String,
    /// `email` | `sms`.
    pub channel: String,
    /// The address or number the code was sent to (as stored on the account then).
    pub destination: String,
    pub code_hash: String,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
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
    pub settings: ClientSettings,
    pub created_at: i64,
}

/// How a client authenticates at the token endpoint (OIDC Core §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// Basic or form-post secret; the default for confidential clients.
    #[default]
    ClientSecret,
    /// A JWT signed with a key of the client's registered JWKS (RFC 7523).
    PrivateKeyJwt,
    /// Public clients: no authentication, PKCE required.
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    /// A random string, looked up at introspection and userinfo.
    #[default]
    Opaque,
    /// An RFC 9068 JWT (`typ: at+jwt`) carrying `acr`, `amr`, `auth_time`; still recorded, so
    /// revocation shows at introspection.
    Jwt,
}

/// Per-client settings, stored as JSON; every field has a safe default so older rows and
/// partial updates stay valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    pub token_auth_method: TokenAuthMethod,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types: Vec<String>,
    /// Scopes the client may be granted; others are dropped.
    pub scopes: Vec<String>,
    pub access_token_format: AccessTokenFormat,
    /// Seconds; `None` uses the server default.
    pub access_token_seconds: Option<i64>,
    pub id_token_seconds: Option<i64>,
    /// Sliding lifetime of a refresh token (each use extends it) and the grant's absolute end.
    pub refresh_token_seconds: Option<i64>,
    pub refresh_absolute_seconds: Option<i64>,
    /// Issue refresh tokens without `offline_access` being asked for.
    pub always_refresh: bool,
    /// Refuse authorization requests that were not pushed (RFC 9126 §6).
    pub require_par: bool,
    /// The client's public keys for `private_key_jwt` (a JWKS document).
    pub jwks: Option<serde_json::Value>,
    /// Exact URIs allowed after RP-initiated logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are POSTed.
    pub backchannel_logout_uri: Option<String>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            token_auth_method: TokenAuthMethod::ClientSecret,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "phone".into(),
                "national_id".into(),
                "offline_access".into(),
                "verification".into(),
            ],
            access_token_format: AccessTokenFormat::Opaque,
            access_token_seconds: None,
            id_token_seconds: None,
            refresh_token_seconds: None,
            refresh_absolute_seconds: None,
            always_refresh: false,
            require_par: false,
            jwks: None,
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
        }
    }
}

impl ClientSettings {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER, sealed with the data key (see `crypto::secretbox`).
    pub private_key_enc: String,
    pub created_at: i64,
    /// When it starts signing; until then it is only published (clients fetch it first).
    pub activates_at: i64,
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

/// One authorization: client × account × session for the code flow (its codes, access and
/// refresh tokens belong to it), or the client alone for client_credentials. Revoking the
/// grant kills all of its tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct GrantRecord {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub scope: String,
    /// What the authentication proved; refreshed ID tokens repeat it unchanged.
    pub auth: Option<GrantAuth>,
    pub created_at: i64,
    /// Absolute end: no token of the grant outlives it.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrantAuth {
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub as_level: u8,
    pub mechanism: String,
    /// RFC 9396 authorization details the citizen approved (a JSON array), carried by every
    /// token of the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub grant_id: Uuid,
    pub created_at: i64,
    /// Sliding expiry (bounded by the grant's `expires_at`).
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, PartialEq)]
pub enum ConsumedRefresh {
    /// First use: now spent; the caller issues its successor.
    Fresh(RefreshTokenRecord, GrantRecord),
    /// Already rotated: a replay. The caller revokes the grant (RFC 9700 §4.14.2).
    AlreadyUsed(RefreshTokenRecord, GrantRecord),
    NotFound,
}

/// A message the development outbox kept instead of sending.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxMessage {
    pub id: Uuid,
    /// `email` | `sms`.
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

/// A pushed authorization request (RFC 9126).
#[derive(Clone, Debug, PartialEq)]
pub struct PushedRequest {
    pub uri_hash: String,
    pub client_id: String,
    pub request_json: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A back-channel logout token to deliver to one client.
#[derive(Clone, Debug, PartialEq)]
pub struct LogoutDelivery {
    pub id: Uuid,
    pub client_id: String,
    pub uri: String,
    pub token: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// What an authorization code stands for, beyond its grant: what the token endpoint checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeData {
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
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

/// A certificate enrolled on an account (issue 6): it signed a challenge while the citizen was
/// signed in. Its fingerprint (SHA-256 of the DER, lower-case hex) is unique across accounts.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrolledCertificate {
    pub id: Uuid,
    pub account_id: Uuid,
    pub fingerprint: String,
    /// The certificate, DER, base64 (standard alphabet).
    pub der: String,
    pub subject_cn: String,
    pub issuer: String,
    /// Lower-case hex.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The subject's UID values as written (`CCCD:…`, `CMND:…`, `MST:…`).
    pub uids: Vec<String>,
    /// The trust profile it chained to at enrolment.
    pub profile: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A one-time challenge to sign with a certificate (issue 6). Only the hash of its id is stored;
/// `bytes` is the exact canonical JSON document shown to the citizen.
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateChallenge {
    pub id_hash: String,
    pub account_id: Option<Uuid>,
    pub purpose: String,
    pub bytes: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

/// A registered WebAuthn credential (a passkey). `credential_json` is the webauthn-rs
/// credential (public key, counter, flags, registration policy); the other fields repeat what
/// pages, policies and the store's checks need without parsing it.
#[derive(Clone, Debug, PartialEq)]
pub struct PasskeyCredential {
    pub id: Uuid,
    pub account_id: Uuid,
    /// base64url (unpadded) of the raw credential id; unique across all accounts.
    pub credential_id: String,
    /// The WebAuthn user handle stored on the authenticator for this account.
    pub user_handle: Uuid,
    /// The citizen's label ("Điện thoại của tôi").
    pub name: String,
    pub credential_json: String,
    /// Registered with user verification required: an assertion counts as possession and
    /// inherence.
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// The last signature counter accepted (0 when the authenticator keeps none).
    pub sign_count: i64,
    /// The authenticator model, when attestation was checked against an allow-list.
    pub aaguid: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn ceremony in progress (webauthn-rs state as JSON), stored under the hash of the
/// random id the browser holds, spent once.
#[derive(Clone, Debug, PartialEq)]
pub struct WebauthnCeremony {
    pub id_hash: String,
    /// `register`, `authenticate` (second step of a signed-in account) or `discover`.
    pub kind: String,
    pub account_id: Option<Uuid>,
    pub state_json: String,
    pub created_at: i64,
    pub expires_at: i64,
}
