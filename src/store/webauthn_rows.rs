//! Row types of the passkey tables (`migrations/*/0002_webauthn.sql`), shared by both backends.

use super::{PasskeyCredential, WebauthnCeremony};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(super) struct PasskeyRow {
    id: Uuid,
    account_id: Uuid,
    credential_id: String,
    user_handle: Uuid,
    name: String,
    credential_json: String,
    user_verified: bool,
    backup_eligible: bool,
    backed_up: bool,
    sign_count: i64,
    aaguid: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<PasskeyRow> for PasskeyCredential {
    fn from(r: PasskeyRow) -> Self {
        PasskeyCredential {
            id: r.id,
            account_id: r.account_id,
            credential_id: r.credential_id,
            user_handle: r.user_handle,
            name: r.name,
            credential_json: r.credential_json,
            user_verified: r.user_verified,
            backup_eligible: r.backup_eligible,
            backed_up: r.backed_up,
            sign_count: r.sign_count,
            aaguid: r.aaguid,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// The column list of `PasskeyRow`.
macro_rules! passkey_columns {
    () => {
        "id, account_id, credential_id, user_handle, name, credential_json, user_verified, backup_eligible, \
         backed_up, sign_count, aaguid, created_at, last_used_at"
    };
}
pub(super) use passkey_columns;

#[derive(sqlx::FromRow)]
pub(super) struct CeremonyRow {
    id_hash: String,
    kind: String,
    account_id: Option<Uuid>,
    state_json: String,
    created_at: i64,
    expires_at: i64,
}

impl From<CeremonyRow> for WebauthnCeremony {
    fn from(r: CeremonyRow) -> Self {
        WebauthnCeremony {
            id_hash: r.id_hash,
            kind: r.kind,
            account_id: r.account_id,
            state_json: r.state_json,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}
