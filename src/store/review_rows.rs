//! Row types of the review tables (`migrations/*/0006_review.sql`), shared by both backends:
//! each backend keeps its own SQL (`sqlite/review.rs`, `postgres/review.rs`).

use super::{ReviewFile, ReviewRequest, ReviewStatus, StoreError, StoreResult};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(super) struct RequestRow {
    id: Uuid,
    account_id: Uuid,
    status: String,
    created_at: i64,
    full_name: String,
    birth_date: String,
    sex: String,
    national_id_masked: String,
    national_id_hash: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    reason: Option<String>,
}

macro_rules! request_columns {
    () => {
        "id, account_id, status, created_at, full_name, birth_date, sex, national_id_masked, national_id_hash, \
         decided_by, decided_at, reason"
    };
}
pub(super) use request_columns;

impl TryFrom<RequestRow> for ReviewRequest {
    type Error = StoreError;
    fn try_from(r: RequestRow) -> StoreResult<Self> {
        Ok(ReviewRequest {
            id: r.id,
            account_id: r.account_id,
            status: ReviewStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("review {}: status {}", r.id, r.status)))?,
            created_at: r.created_at,
            full_name: r.full_name,
            birth_date: r.birth_date,
            sex: r.sex,
            national_id_masked: r.national_id_masked,
            national_id_hash: r.national_id_hash,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            reason: r.reason,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FileRow {
    id: Uuid,
    request_id: Uuid,
    side: String,
    content_type: String,
    size: i64,
}

impl From<FileRow> for ReviewFile {
    fn from(r: FileRow) -> Self {
        ReviewFile { id: r.id, request_id: r.request_id, side: r.side, content_type: r.content_type, size: r.size }
    }
}
