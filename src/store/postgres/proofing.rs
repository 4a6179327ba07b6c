//! PostgreSQL: identity evidence, staff members and activation codes (the "Proofing" part of the
//! `Store` contract). Each write is one transaction (`PgStore::write`).

use super::super::proofing_rows::{CodeRow, EvidenceRow, StaffRow, evidence_columns};
use super::super::rows::{account_columns, conflict_from, json_text};
use super::{PgStore, append};
use crate::audit::AuditEvent;
use crate::store::{
    Account, AccountStatus, ActivationCode, Conflict, EvidenceRecord, IdentityData, StaffMember, StoreError,
    StoreResult,
};
use sqlx::PgConnection;
use uuid::Uuid;

async fn insert_evidence(conn: &mut PgConnection, e: &EvidenceRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO identity_evidence (id, account_id, at, from_level, to_level, method, source, verifier, office, \
         documents, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_account(conn: &mut PgConnection, a: &Account) -> StoreResult<()> {
    let id = a.identity.as_ref();
    sqlx::query(concat!(
        "INSERT INTO accounts (",
        account_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(a.id)
    .bind(&a.username)
    .bind(&a.password_hash)
    .bind(i64::from(a.as_level.number()))
    .bind(&a.email)
    .bind(&a.phone)
    .bind(a.email_verified_at)
    .bind(a.phone_verified_at)
    .bind(id.map(|i| &i.full_name))
    .bind(id.map(|i| &i.birth_date))
    .bind(id.map(|i| &i.sex))
    .bind(id.map(|i| &i.national_id_enc))
    .bind(id.map(|i| &i.national_id_hash))
    .bind(id.map(|i| &i.national_id_masked))
    .bind(a.status.as_str())
    .bind(a.always_second_factor)
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict_from)?;
    Ok(())
}

impl PgStore {
    pub(super) async fn pg_create_account_with_evidence(
        &self,
        account: &Account,
        evidence: &EvidenceRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_account(&mut tx, account).await?;
        insert_evidence(&mut tx, evidence).await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_change_level(
        &self,
        e: &EvidenceRecord,
        identity: Option<&IdentityData>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let from = e.from_level.map(|l| i64::from(l.number())).unwrap_or(0);
        let to = i64::from(e.to_level.number());
        let n = match identity {
            Some(i) => sqlx::query(
                "UPDATE accounts SET full_name = $1, birth_date = $2, sex = $3, national_id_enc = $4, \
                 national_id_hash = $5, national_id_masked = $6, as_level = $7, updated_at = $8 \
                 WHERE id = $9 AND as_level = $10",
            )
            .bind(&i.full_name)
            .bind(&i.birth_date)
            .bind(&i.sex)
            .bind(&i.national_id_enc)
            .bind(&i.national_id_hash)
            .bind(&i.national_id_masked)
            .bind(to)
            .bind(e.at)
            .bind(e.account_id)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(conflict_from)?
            .rows_affected(),
            None => sqlx::query("UPDATE accounts SET as_level = $1, updated_at = $2 WHERE id = $3 AND as_level = $4")
                .bind(to)
                .bind(e.at)
                .bind(e.account_id)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        if n == 0 {
            return Ok(false);
        }
        insert_evidence(&mut tx, e).await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn pg_list_evidence(&self, account_id: Uuid) -> StoreResult<Vec<EvidenceRecord>> {
        let sql =
            concat!("SELECT ", evidence_columns!(), " FROM identity_evidence WHERE account_id = $1 ORDER BY at, id");
        let rows = sqlx::query_as::<_, EvidenceRow>(sql).bind(account_id).fetch_all(&self.pool).await?;
        rows.into_iter().map(EvidenceRecord::try_from).collect()
    }

    pub(super) async fn pg_list_evidence_since(&self, since: i64, limit: i64) -> StoreResult<Vec<EvidenceRecord>> {
        let sql = concat!(
            "SELECT ",
            evidence_columns!(),
            " FROM identity_evidence WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query_as::<_, EvidenceRow>(sql).bind(since).bind(limit).fetch_all(&self.pool).await?;
        rows.into_iter().map(EvidenceRecord::try_from).collect()
    }

    pub(super) async fn pg_set_account_status(
        &self,
        account_id: Uuid,
        status: AccountStatus,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(at)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn pg_create_staff(
        &self,
        m: &StaffMember,
        account: Option<&Account>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if let Some(a) = account {
            insert_account(&mut tx, a).await?;
        }
        sqlx::query("INSERT INTO staff_members (account_id, role, office, created_at) VALUES ($1, $2, $3, $4)")
            .bind(m.account_id)
            .bind(m.role.as_str())
            .bind(&m.office)
            .bind(m.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match conflict_from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(Conflict::Other),
                other => other,
            })?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_get_staff(&self, account_id: Uuid) -> StoreResult<Option<StaffMember>> {
        let row = sqlx::query_as::<_, StaffRow>(
            "SELECT account_id, role, office, created_at FROM staff_members WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(StaffMember::try_from).transpose()
    }

    pub(super) async fn pg_create_activation_code(&self, c: &ActivationCode, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE activation_codes SET used_at = $1 WHERE account_id = $2 AND used_at IS NULL")
            .bind(c.created_at)
            .bind(c.account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO activation_codes (code_hash, account_id, issued_by, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.code_hash)
        .bind(c.account_id)
        .bind(&c.issued_by)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.used_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_find_activation_code(&self, code_hash: &str) -> StoreResult<Option<ActivationCode>> {
        let row = sqlx::query_as::<_, CodeRow>(
            "SELECT code_hash, account_id, issued_by, created_at, expires_at, used_at FROM activation_codes \
             WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ActivationCode::from))
    }

    pub(super) async fn pg_activate_account(
        &self,
        code_hash: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let account: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE activation_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING account_id",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((account_id,)) = account else {
            return Ok(false);
        };
        sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
