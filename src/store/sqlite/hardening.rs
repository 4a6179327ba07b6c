//! SQLite: throttle counters and session activity (the "Hardening" part of the `Store`
//! contract). Writes run in `BEGIN IMMEDIATE`, which serialises them across connections and
//! processes sharing the file.

use super::super::hardening_rows::{AccountWithThrottlesRow, ActivityRow, KeyedThrottleRow, ThrottleRow, in_key_order};
use super::super::rows::{account_columns, json_text};
use super::{SqliteStore, append};
use crate::store::{Account, SessionActivity, StoreResult, ThrottleFn, ThrottleState};
use uuid::Uuid;

const SELECT_THROTTLE: &str =
    "SELECT failures, window_start, consecutive, locked_until, hard_locked, updated_at FROM throttle WHERE key = $1";

impl SqliteStore {
    pub(super) async fn sqlite_update_throttle(
        &self,
        key: &str,
        update: &ThrottleFn<'_>,
    ) -> StoreResult<Option<ThrottleState>> {
        let mut tx = self.write().await?;
        let current: Option<ThrottleState> =
            sqlx::query_as::<_, ThrottleRow>(SELECT_THROTTLE).bind(key).fetch_optional(&mut *tx).await?.map(Into::into);
        let out = update(current.as_ref());
        match &out.state {
            Some(s) => {
                sqlx::query(
                    "INSERT INTO throttle (key, failures, window_start, consecutive, locked_until, hard_locked, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
                     window_start = excluded.window_start, consecutive = excluded.consecutive, \
                     locked_until = excluded.locked_until, hard_locked = excluded.hard_locked, \
                     updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(s.failures)
                .bind(s.window_start)
                .bind(s.consecutive)
                .bind(s.locked_until)
                .bind(i64::from(s.hard_locked))
                .bind(s.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(&mut *tx).await?;
            }
        }
        if let Some(event) = &out.audit {
            append(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(out.state)
    }

    pub(super) async fn sqlite_get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        Ok(sqlx::query_as::<_, ThrottleRow>(SELECT_THROTTLE)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(Into::into))
    }

    pub(super) async fn sqlite_get_throttles(&self, keys: &[&str]) -> StoreResult<Vec<Option<ThrottleState>>> {
        let rows = sqlx::query_as::<_, KeyedThrottleRow>(
            "SELECT key, failures, window_start, consecutive, locked_until, hard_locked, updated_at FROM throttle \
             WHERE key IN (SELECT value FROM json_each($1))",
        )
        .bind(json_text(&keys)?)
        .fetch_all(&self.pool)
        .await?;
        Ok(in_key_order(keys, rows))
    }

    pub(super) async fn sqlite_find_account_for_sign_in(
        &self,
        username: &str,
        keys: &[&str],
    ) -> StoreResult<(Option<Account>, Vec<Option<ThrottleState>>)> {
        // The counters as a JSON array beside the account's columns; the keys as a JSON array.
        let row = sqlx::query_as::<_, AccountWithThrottlesRow>(concat!(
            "SELECT ",
            account_columns!(),
            ", (SELECT json_group_array(json_object('key', t.key, 'failures', t.failures, \
             'window_start', t.window_start, 'consecutive', t.consecutive, 'locked_until', t.locked_until, \
             'hard_locked', t.hard_locked, 'updated_at', t.updated_at)) FROM throttle t \
             WHERE t.key IN (SELECT value FROM json_each($2))) AS throttles FROM accounts WHERE username = $1"
        ))
        .bind(username)
        .bind(json_text(&keys)?)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => row.split(keys).map(|(a, t)| (Some(a), t)),
            None => Ok((None, self.sqlite_get_throttles(keys).await?)),
        }
    }

    pub(super) async fn sqlite_purge_throttle(&self, prefix: &str, before: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "DELETE FROM throttle WHERE updated_at < $1 AND hard_locked = 0 \
             AND (locked_until IS NULL OR locked_until < $1) AND substr(key, 1, length($2)) = $2",
        )
        .bind(before)
        .bind(prefix)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn sqlite_touch_session(
        &self,
        id: Uuid,
        now: i64,
        idle_seconds: i64,
        device: Option<&str>,
    ) -> StoreResult<bool> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT MAX(last_seen_at, created_at), device FROM sessions \
             WHERE id = $1 AND expires_at > $2 AND MAX(last_seen_at, created_at) > $3",
        )
        .bind(id)
        .bind(now)
        .bind(now - idle_seconds)
        .fetch_optional(&self.pool)
        .await?;
        let Some((seen, stored_device)) = row else { return Ok(false) };
        let set_device = stored_device.is_none() && device.is_some();
        if seen <= now - 30 || set_device {
            let mut tx = self.write().await?;
            sqlx::query(
                "UPDATE sessions SET last_seen_at = MAX(last_seen_at, $1), device = COALESCE(device, $2) WHERE id = $3",
            )
            .bind(now)
            .bind(device)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(true)
    }

    pub(super) async fn sqlite_list_account_sessions(
        &self,
        account_id: Uuid,
        now: i64,
    ) -> StoreResult<Vec<SessionActivity>> {
        let rows = sqlx::query_as::<_, ActivityRow>(
            "SELECT id, token_hash, account_id, factors, created_at, expires_at, \
             MAX(last_seen_at, created_at) AS last_seen_at, device FROM sessions \
             WHERE account_id = $1 AND expires_at > $2 ORDER BY last_seen_at DESC, created_at DESC",
        )
        .bind(account_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(SessionActivity::try_from).collect()
    }
}

impl SqliteStore {
    /// A consistent online backup into a new file (`VACUUM INTO`: one read transaction, so
    /// writers carry on and the copy is the database as of one moment). `path` must not exist.
    pub async fn backup_into(&self, path: &std::path::Path) -> StoreResult<()> {
        let target = path.to_string_lossy().to_string();
        sqlx::query("VACUUM INTO $1").bind(target).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (before the file is moved or replaced).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
