//! Row shapes shared by both backends (the column types line up: BIGINT/INTEGER → i64,
//! UUID/BLOB → Uuid, TEXT → String) and their conversion to the records of `store`.

use super::*;
use crate::assurance::AsLevel;
use crate::audit::{AuditEvent, StoredAuditEvent};

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    id: Uuid,
    username: String,
    password_hash: Option<String>,
    as_level: i64,
    email: Option<String>,
    phone: Option<String>,
    email_verified_at: Option<i64>,
    phone_verified_at: Option<i64>,
    full_name: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    national_id_enc: Option<String>,
    national_id_hash: Option<String>,
    national_id_masked: Option<String>,
    status: String,
    always_second_factor: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        let as_level = AsLevel::from_number(r.as_level)
            .ok_or_else(|| StoreError::Corrupt(format!("account {}: as_level {}", r.id, r.as_level)))?;
        let status = match r.status.as_str() {
            "active" => AccountStatus::Active,
            "suspended" => AccountStatus::Suspended,
            other => return Err(StoreError::Corrupt(format!("account {}: status {other}", r.id))),
        };
        let identity =
            match (r.full_name, r.birth_date, r.sex, r.national_id_enc, r.national_id_hash, r.national_id_masked) {
                (Some(full_name), Some(birth_date), Some(sex), Some(enc), Some(hash), Some(masked)) => {
                    Some(IdentityData {
                        full_name,
                        birth_date,
                        sex,
                        national_id_enc: enc,
                        national_id_hash: hash,
                        national_id_masked: masked,
                    })
                }
                _ => None,
            };
        Ok(Account {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            as_level,
            email: r.email,
            phone: r.phone,
            email_verified_at: r.email_verified_at,
            phone_verified_at: r.phone_verified_at,
            identity,
            status,
            always_second_factor: r.always_second_factor,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The column list of `AccountRow`, as a literal for `concat!`.
macro_rules! account_columns {
    () => {
        "id, username, password_hash, as_level, email, phone, email_verified_at, phone_verified_at, full_name, \
         birth_date, sex, national_id_enc, national_id_hash, national_id_masked, status, always_second_factor, \
         created_at, updated_at"
    };
}
pub(super) use account_columns;

#[derive(sqlx::FromRow)]
pub(super) struct TotpRow {
    id: Uuid,
    account_id: Uuid,
    name: String,
    secret_enc: String,
    last_step: Option<i64>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl From<TotpRow> for TotpCredential {
    fn from(r: TotpRow) -> Self {
        TotpCredential {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            secret_enc: r.secret_enc,
            last_step: r.last_step,
            created_at: r.created_at,
            confirmed_at: r.confirmed_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// The column list of `TotpRow`.
macro_rules! totp_columns {
    () => {
        "id, account_id, name, secret_enc, last_step, created_at, confirmed_at, last_used_at"
    };
}
pub(super) use totp_columns;

#[derive(sqlx::FromRow)]
pub(super) struct OtpRow {
    id: Uuid,
    account_id: Uuid,
    purpose: String,
    channel: String,
    destination: String,
    code_hash: String,
    attempts: i64,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

impl From<OtpRow> for OtpChallenge {
    fn from(r: OtpRow) -> Self {
        OtpChallenge {
            id: r.id,
            account_id: r.account_id,
            purpose: r.purpose,
            channel: r.channel,
            destination: r.destination,
            code_hash: r.code_hash,
            attempts: r.attempts,
            created_at: r.created_at,
            expires_at: r.expires_at,
            consumed_at: r.consumed_at,
        }
    }
}

/// The column list of `OtpRow`.
macro_rules! otp_columns {
    () => {
        "id, account_id, purpose, channel, destination, code_hash, attempts, created_at, expires_at, consumed_at"
    };
}
pub(super) use otp_columns;

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    id: String,
    name: String,
    kind: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    id_token_alg: String,
    settings: String,
    created_at: i64,
}

impl TryFrom<ClientRow> for ClientRecord {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let kind = match r.kind.as_str() {
            "confidential" => ClientKind::Confidential,
            "public" => ClientKind::Public,
            other => return Err(StoreError::Corrupt(format!("client {}: kind {other}", r.id))),
        };
        let redirect_uris = serde_json::from_str(&r.redirect_uris)
            .map_err(|e| StoreError::Corrupt(format!("client {}: redirect_uris: {e}", r.id)))?;
        let settings = serde_json::from_str(&r.settings)
            .map_err(|e| StoreError::Corrupt(format!("client {}: settings: {e}", r.id)))?;
        Ok(ClientRecord {
            id: r.id,
            name: r.name,
            kind,
            secret_hash: r.secret_hash,
            redirect_uris,
            id_token_alg: r.id_token_alg,
            settings,
            created_at: r.created_at,
        })
    }
}

pub(super) fn client_kind_str(kind: &ClientKind) -> &'static str {
    match kind {
        ClientKind::Confidential => "confidential",
        ClientKind::Public => "public",
    }
}

pub(super) fn json_text<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[derive(sqlx::FromRow)]
pub(super) struct SigningKeyRow {
    kid: String,
    alg: String,
    private_key_enc: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl From<SigningKeyRow> for SigningKeyRecord {
    fn from(r: SigningKeyRow) -> Self {
        SigningKeyRecord {
            kid: r.kid,
            alg: r.alg,
            private_key_enc: r.private_key_enc,
            created_at: r.created_at,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: Uuid,
    token_hash: String,
    account_id: Uuid,
    factors: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        let factors =
            serde_json::from_str(&r.factors).map_err(|e| StoreError::Corrupt(format!("session {}: {e}", r.id)))?;
        Ok(SessionRecord {
            id: r.id,
            token_hash: r.token_hash,
            account_id: r.account_id,
            factors,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PendingRow {
    id_hash: String,
    request_json: String,
    created_at: i64,
    expires_at: i64,
}

impl From<PendingRow> for PendingAuthorization {
    fn from(r: PendingRow) -> Self {
        PendingAuthorization {
            id_hash: r.id_hash,
            request_json: r.request_json,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// The column list of `GrantRow`, as a literal for `concat!`.
macro_rules! grant_columns {
    () => {
        "id, client_id, account_id, session_id, scope, auth, created_at, expires_at, revoked_at"
    };
}
pub(super) use grant_columns;

/// The column list of `ClientRow`.
macro_rules! client_columns {
    () => {
        "id, name, kind, secret_hash, redirect_uris, id_token_alg, settings, created_at"
    };
}
pub(super) use client_columns;

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    id: Uuid,
    client_id: String,
    account_id: Option<Uuid>,
    session_id: Option<Uuid>,
    scope: String,
    auth: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        let auth = r
            .auth
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("grant {}: auth: {e}", r.id)))?;
        Ok(GrantRecord {
            id: r.id,
            client_id: r.client_id,
            account_id: r.account_id,
            session_id: r.session_id,
            scope: r.scope,
            auth,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RefreshRow {
    token_hash: String,
    grant_id: Uuid,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<RefreshRow> for RefreshTokenRecord {
    fn from(r: RefreshRow) -> Self {
        RefreshTokenRecord {
            token_hash: r.token_hash,
            grant_id: r.grant_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: Uuid,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    created_at: i64,
}

impl From<OutboxRow> for OutboxMessage {
    fn from(r: OutboxRow) -> Self {
        OutboxMessage {
            id: r.id,
            channel: r.channel,
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PushedRow {
    uri_hash: String,
    client_id: String,
    request_json: String,
    created_at: i64,
    expires_at: i64,
}

impl From<PushedRow> for PushedRequest {
    fn from(r: PushedRow) -> Self {
        PushedRequest {
            uri_hash: r.uri_hash,
            client_id: r.client_id,
            request_json: r.request_json,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: Uuid,
    client_id: String,
    uri: String,
    token: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    delivered_at: Option<i64>,
    last_error: Option<String>,
}

impl From<DeliveryRow> for LogoutDelivery {
    fn from(r: DeliveryRow) -> Self {
        LogoutDelivery {
            id: r.id,
            client_id: r.client_id,
            uri: r.uri,
            token: r.token,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
            last_error: r.last_error,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    code_hash: String,
    grant_id: Uuid,
    data: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<CodeRow> for AuthCodeRecord {
    type Error = StoreError;
    fn try_from(r: CodeRow) -> Result<Self, StoreError> {
        let data = serde_json::from_str(&r.data).map_err(|e| StoreError::Corrupt(format!("auth code: {e}")))?;
        Ok(AuthCodeRecord {
            code_hash: r.code_hash,
            grant_id: r.grant_id,
            data,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccessTokenRow {
    token_hash: String,
    grant_id: Uuid,
    scope: String,
    created_at: i64,
    expires_at: i64,
}

impl From<AccessTokenRow> for AccessTokenRecord {
    fn from(r: AccessTokenRow) -> Self {
        AccessTokenRecord {
            token_hash: r.token_hash,
            grant_id: r.grant_id,
            scope: r.scope,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    seq: i64,
    at: i64,
    kind: String,
    actor: String,
    account_id: Option<Uuid>,
    client_id: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl TryFrom<AuditRow> for StoredAuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        let details =
            serde_json::from_str(&r.details).map_err(|e| StoreError::Corrupt(format!("audit {}: {e}", r.seq)))?;
        Ok(StoredAuditEvent {
            seq: r.seq,
            event: AuditEvent {
                at: r.at,
                kind: r.kind,
                actor: r.actor,
                account_id: r.account_id,
                client_id: r.client_id,
                details,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}

/// Maps a unique-constraint violation to the value that collided, by constraint/column name.
pub(super) fn conflict_from(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
        let which = if text.contains("national_id") {
            Conflict::NationalId
        } else if text.contains("username") {
            Conflict::Username
        } else if text.contains("clients") {
            Conflict::ClientId
        } else {
            Conflict::Other
        };
        return StoreError::Conflict(which);
    }
    StoreError::Database(err)
}

/// A token and its grant, read in one query; the token's columns are aliased `t_…`.
#[derive(sqlx::FromRow)]
pub(super) struct AccessTokenWithGrant {
    t_token_hash: String,
    t_grant_id: Uuid,
    t_scope: String,
    t_created_at: i64,
    t_expires_at: i64,
    #[sqlx(flatten)]
    grant: GrantRow,
}

impl TryFrom<AccessTokenWithGrant> for (AccessTokenRecord, GrantRecord) {
    type Error = StoreError;
    fn try_from(r: AccessTokenWithGrant) -> Result<Self, StoreError> {
        let token = AccessTokenRecord {
            token_hash: r.t_token_hash,
            grant_id: r.t_grant_id,
            scope: r.t_scope,
            created_at: r.t_created_at,
            expires_at: r.t_expires_at,
        };
        Ok((token, r.grant.try_into()?))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RefreshWithGrant {
    t_token_hash: String,
    t_grant_id: Uuid,
    t_created_at: i64,
    t_expires_at: i64,
    t_used_at: Option<i64>,
    #[sqlx(flatten)]
    grant: GrantRow,
}

impl TryFrom<RefreshWithGrant> for (RefreshTokenRecord, GrantRecord) {
    type Error = StoreError;
    fn try_from(r: RefreshWithGrant) -> Result<Self, StoreError> {
        let token = RefreshTokenRecord {
            token_hash: r.t_token_hash,
            grant_id: r.t_grant_id,
            created_at: r.t_created_at,
            expires_at: r.t_expires_at,
            used_at: r.t_used_at,
        };
        Ok((token, r.grant.try_into()?))
    }
}

/// The grant's columns qualified `g.`, for joins.
macro_rules! grant_columns_g {
    () => {
        "g.id, g.client_id, g.account_id, g.session_id, g.scope, g.auth, g.created_at, g.expires_at, g.revoked_at"
    };
}
pub(super) use grant_columns_g;

#[derive(sqlx::FromRow)]
pub(super) struct CertificateRow {
    id: Uuid,
    account_id: Uuid,
    fingerprint: String,
    der: String,
    subject_cn: String,
    issuer: String,
    serial: String,
    not_before: i64,
    not_after: i64,
    uids: String,
    profile: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<CertificateRow> for EnrolledCertificate {
    type Error = StoreError;
    fn try_from(r: CertificateRow) -> Result<Self, StoreError> {
        Ok(EnrolledCertificate {
            id: r.id,
            account_id: r.account_id,
            fingerprint: r.fingerprint,
            der: r.der,
            subject_cn: r.subject_cn,
            issuer: r.issuer,
            serial: r.serial,
            not_before: r.not_before,
            not_after: r.not_after,
            uids: serde_json::from_str(&r.uids).map_err(|e| StoreError::Corrupt(format!("certificates.uids: {e}")))?,
            profile: r.profile,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        })
    }
}

/// The column list of `CertificateRow`.
macro_rules! certificate_columns {
    () => {
        "id, account_id, fingerprint, der, subject_cn, issuer, serial, not_before, not_after, uids, profile, \
         created_at, last_used_at"
    };
}
pub(super) use certificate_columns;

#[derive(sqlx::FromRow)]
pub(super) struct CertificateChallengeRow {
    id_hash: String,
    account_id: Option<Uuid>,
    purpose: String,
    bytes: String,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

impl From<CertificateChallengeRow> for CertificateChallenge {
    fn from(r: CertificateChallengeRow) -> Self {
        CertificateChallenge {
            id_hash: r.id_hash,
            account_id: r.account_id,
            purpose: r.purpose,
            bytes: r.bytes,
            created_at: r.created_at,
            expires_at: r.expires_at,
            consumed_at: r.consumed_at,
        }
    }
}
