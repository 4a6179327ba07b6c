//! PostgreSQL: AS-3 verification by review (the "Review" part of the `Store` contract). Each
//! write is one transaction (`PgStore::write`); the compare-and-set on `status = 'pending'` row-locks
//! the request, so of two concurrent decisions the second sees it decided.

use super::super::review_rows::{FileRow, RequestRow, request_columns};
use super::super::rows::{conflict_from, json_text};
use super::{PgStore, append};
use crate::audit::AuditEvent;
use crate::store::{
    Conflict, EvidenceRecord, ReviewDecision, ReviewFile, ReviewOutcome, ReviewRequest, ReviewStatus, StoreError,
    StoreResult,
};
use uuid::Uuid;

impl PgStore {
    pub(super) async fn pg_create_review_request(
        &self,
        r: &ReviewRequest,
        files: &[(ReviewFile, String)],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(concat!(
            "INSERT INTO review_requests (",
            request_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(r.id)
        .bind(r.account_id)
        .bind(r.status.as_str())
        .bind(r.created_at)
        .bind(&r.full_name)
        .bind(&r.birth_date)
        .bind(&r.sex)
        .bind(&r.national_id_masked)
        .bind(&r.national_id_hash)
        .bind(&r.decided_by)
        .bind(r.decided_at)
        .bind(&r.reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| match conflict_from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(Conflict::Other),
            other => other,
        })?;
        for (f, sealed) in files {
            sqlx::query(
                "INSERT INTO review_files (id, request_id, side, content_type, size, sealed) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(f.id)
            .bind(r.id)
            .bind(&f.side)
            .bind(&f.content_type)
            .bind(f.size)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(|e| match conflict_from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(Conflict::Other),
                other => other,
            })?;
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_list_pending_reviews(&self, limit: i64) -> StoreResult<Vec<ReviewRequest>> {
        let sql = concat!(
            "SELECT ",
            request_columns!(),
            " FROM review_requests WHERE status = 'pending' ORDER BY created_at, id LIMIT $1"
        );
        let rows = sqlx::query_as::<_, RequestRow>(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.into_iter().map(ReviewRequest::try_from).collect()
    }

    pub(super) async fn pg_count_pending_reviews(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM review_requests WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    pub(super) async fn pg_get_review_request(
        &self,
        id: Uuid,
    ) -> StoreResult<Option<(ReviewRequest, Vec<ReviewFile>)>> {
        let sql = concat!("SELECT ", request_columns!(), " FROM review_requests WHERE id = $1");
        let Some(row) = sqlx::query_as::<_, RequestRow>(sql).bind(id).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let files = sqlx::query_as::<_, FileRow>(
            "SELECT id, request_id, side, content_type, size FROM review_files WHERE request_id = $1 \
             ORDER BY CASE side WHEN 'front' THEN 0 ELSE 1 END, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((ReviewRequest::try_from(row)?, files.into_iter().map(ReviewFile::from).collect())))
    }

    pub(super) async fn pg_get_review_file(
        &self,
        request_id: Uuid,
        file_id: Uuid,
    ) -> StoreResult<Option<(ReviewFile, String)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            file: FileRow,
            sealed: String,
        }
        let row = sqlx::query_as::<_, Row>(
            "SELECT id, request_id, side, content_type, size, sealed FROM review_files \
             WHERE id = $1 AND request_id = $2",
        )
        .bind(file_id)
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (ReviewFile::from(r.file), r.sealed)))
    }

    pub(super) async fn pg_latest_review_request(&self, account_id: Uuid) -> StoreResult<Option<ReviewRequest>> {
        let sql = concat!(
            "SELECT ",
            request_columns!(),
            " FROM review_requests WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query_as::<_, RequestRow>(sql).bind(account_id).fetch_optional(&self.pool).await?;
        row.map(ReviewRequest::try_from).transpose()
    }

    pub(super) async fn pg_decide_review(
        &self,
        d: &ReviewDecision,
        evidence: Option<&EvidenceRecord>,
        audit: &AuditEvent,
    ) -> StoreResult<ReviewOutcome> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE review_requests SET status = $1, decided_by = $2, decided_at = $3, reason = $4 \
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(d.status.as_str())
        .bind(&d.decided_by)
        .bind(d.decided_at)
        .bind(&d.reason)
        .bind(d.request_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 || d.status == ReviewStatus::Pending {
            return Ok(ReviewOutcome::NotPending);
        }
        if let Some(e) = evidence {
            let from = e.from_level.map(|l| i64::from(l.number())).unwrap_or(0);
            let n = sqlx::query(
                "UPDATE accounts SET as_level = $1, updated_at = $2 WHERE id = $3 AND as_level = $4 \
                 AND national_id_hash = (SELECT national_id_hash FROM review_requests WHERE id = $5 AND account_id = $3)",
            )
            .bind(i64::from(e.to_level.number()))
            .bind(e.at)
            .bind(e.account_id)
            .bind(from)
            .bind(d.request_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(ReviewOutcome::AccountChanged);
            }
            sqlx::query(
                "INSERT INTO identity_evidence (id, account_id, at, from_level, to_level, method, source, verifier, \
                 office, documents, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(e.id)
            .bind(e.account_id)
            .bind(e.at)
            .bind(e.from_level.map(|l| i64::from(l.number())))
            .bind(i64::from(e.to_level.number()))
            .bind(&e.method)
            .bind(&e.source)
            .bind(&e.verifier)
            .bind(&e.office)
            .bind(json_text(&e.documents)?)
            .bind(&e.reason)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(ReviewOutcome::Decided)
    }
}
