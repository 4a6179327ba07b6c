//! PostgreSQL: scanning and re-encrypting sealed columns (`xacthuc keys rotate-data-key`). Table
//! and column names come from `service::data_key::SEALED_COLUMNS` (constants, checked by
//! `SealedColumn::is_valid`), never from input.

use super::PgStore;
use crate::store::{IdKind, Reseal, RowValue, SealedColumn, SealedRow, StoreError, StoreResult};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Row};
use std::sync::Arc;

type Q<'q> = Query<'q, sqlx::Postgres, PgArguments>;

fn checked(column: &SealedColumn) -> StoreResult<()> {
    if column.is_valid() {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!("sealed column: not a plain SQL identifier in {column:?}")))
    }
}

fn bind_value<'q>(q: Q<'q>, v: &'q RowValue) -> Q<'q> {
    match v {
        RowValue::Uuid(u) => q.bind(*u),
        RowValue::Text(t) => q.bind(t.as_str()),
    }
}

fn get_value(row: &PgRow, index: usize, kind: IdKind) -> StoreResult<RowValue> {
    Ok(match kind {
        IdKind::Uuid => RowValue::Uuid(row.try_get(index)?),
        IdKind::Text => RowValue::Text(row.try_get(index)?),
    })
}

impl PgStore {
    pub(super) async fn pg_scan_sealed(
        &self,
        c: &SealedColumn,
        skip_prefix: &str,
        after: Option<&RowValue>,
        limit: i64,
    ) -> StoreResult<Vec<SealedRow>> {
        checked(c)?;
        let parts: Vec<&str> = c.aad_parts.iter().map(|p| p.sql).collect();
        let sql = format!(
            "SELECT {id}, {s}, {parts} FROM {t} WHERE {s} IS NOT NULL AND substr({s}, 1, $1) <> $2 {after} \
             ORDER BY {id} LIMIT $3",
            id = c.id_column,
            s = c.sealed_column,
            parts = if parts.is_empty() { "NULL".to_string() } else { parts.join(", ") },
            t = c.table,
            after = if after.is_some() { format!("AND {} > $4", c.id_column) } else { String::new() },
        );
        let sql: Arc<str> = sql.into();
        let len = i32::try_from(skip_prefix.chars().count()).unwrap_or(i32::MAX);
        let mut q = sqlx::query(AssertSqlSafe(sql.clone())).bind(len).bind(skip_prefix).bind(limit);
        if let Some(a) = after {
            q = bind_value(q, a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(SealedRow {
                    id: get_value(r, 0, c.id_kind)?,
                    sealed: r.try_get(1)?,
                    aad_parts: c
                        .aad_parts
                        .iter()
                        .enumerate()
                        .map(|(i, p)| get_value(r, 2 + i, p.kind))
                        .collect::<StoreResult<_>>()?,
                })
            })
            .collect()
    }

    pub(super) async fn pg_reseal(&self, c: &SealedColumn, updates: &[Reseal]) -> StoreResult<u64> {
        checked(c)?;
        if updates.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {t} SET {s} = $1 WHERE {id} = $2 AND {s} = $3",
            t = c.table,
            s = c.sealed_column,
            id = c.id_column
        );
        let sql: Arc<str> = sql.into();
        let mut tx = self.write().await?;
        let mut n = 0;
        for u in updates {
            let q =
                bind_value(sqlx::query(AssertSqlSafe(sql.clone())).bind(u.new.as_str()), &u.id).bind(u.old.as_str());
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn pg_count_sealed_by_key(&self, c: &SealedColumn) -> StoreResult<Vec<(String, i64)>> {
        checked(c)?;
        let sql = format!(
            "SELECT substr({s}, 4, 8) AS key_id, COUNT(*) FROM {t} WHERE {s} IS NOT NULL GROUP BY key_id ORDER BY key_id",
            s = c.sealed_column,
            t = c.table
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&self.pool).await?)
    }

    pub(super) async fn pg_count_audit_sealed_with(&self, key_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE strpos(details::text, $1) > 0")
            .bind(format!("\"v1.{key_id}."))
            .fetch_one(&self.pool)
            .await?)
    }
}
