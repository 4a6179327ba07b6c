//! PostgreSQL: one account's audit events for the staff console (`Store::list_account_audit`).
//! The index `audit_events_account_seq` on `(account_id, seq)` (migration 0008) reads a page in
//! order.

use super::super::rows::AuditRow;
use super::PgStore;
use crate::audit::StoredAuditEvent;
use crate::store::StoreResult;
use uuid::Uuid;

impl PgStore {
    pub(super) async fn pg_list_account_audit(
        &self,
        account_id: Uuid,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, kind, actor, account_id, client_id, details::text AS details, prev_hash, hash \
             FROM audit_events WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(StoredAuditEvent::try_from)
        .collect()
    }
}
