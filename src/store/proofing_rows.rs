//! Row types of the proofing tables (`migrations/*/0005_proofing.sql`), shared by both
//! backends: each backend keeps its own SQL (`sqlite/proofing.rs`, `postgres/proofing.rs`).

use super::{ActivationCode, EvidenceRecord, StaffMember, StaffRole, StoreError, StoreResult};
use crate::assurance::AsLevel;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(super) struct EvidenceRow {
    id: Uuid,
    account_id: Uuid,
    at: i64,
    from_level: Option<i64>,
    to_level: i64,
    method: String,
    source: String,
    verifier: String,
    office: Option<String>,
    documents: String,
    reason: Option<String>,
}

macro_rules! evidence_columns {
    () => {
        "id, account_id, at, from_level, to_level, method, source, verifier, office, documents, reason"
    };
}
pub(super) use evidence_columns;

fn level(n: i64) -> StoreResult<AsLevel> {
    AsLevel::from_number(n).ok_or_else(|| StoreError::Corrupt(format!("level {n}")))
}

impl TryFrom<EvidenceRow> for EvidenceRecord {
    type Error = StoreError;
    fn try_from(r: EvidenceRow) -> StoreResult<Self> {
        Ok(EvidenceRecord {
            id: r.id,
            account_id: r.account_id,
            at: r.at,
            from_level: r.from_level.map(level).transpose()?,
            to_level: level(r.to_level)?,
            method: r.method,
            source: r.source,
            verifier: r.verifier,
            office: r.office,
            documents: serde_json::from_str(&r.documents).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            reason: r.reason,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct StaffRow {
    account_id: Uuid,
    role: String,
    office: Option<String>,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    code_hash: String,
    account_id: Uuid,
    issued_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<StaffRow> for StaffMember {
    type Error = StoreError;
    fn try_from(r: StaffRow) -> StoreResult<Self> {
        Ok(StaffMember {
            account_id: r.account_id,
            role: StaffRole::parse(&r.role).ok_or_else(|| StoreError::Corrupt(format!("staff role {}", r.role)))?,
            office: r.office,
            created_at: r.created_at,
        })
    }
}

impl From<CodeRow> for ActivationCode {
    fn from(r: CodeRow) -> Self {
        ActivationCode {
            code_hash: r.code_hash,
            account_id: r.account_id,
            issued_by: r.issued_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        }
    }
}
