//! Row types of the throttle and session-activity tables (`migrations/*/0004_hardening.sql`),
//! shared by both backends: each backend keeps its own SQL.

use super::rows::{AccountRow, SessionRow};
use super::{Account, SessionActivity, SessionRecord, StoreError, StoreResult, ThrottleState};

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct ThrottleRow {
    failures: i64,
    window_start: i64,
    consecutive: i64,
    locked_until: Option<i64>,
    hard_locked: i64,
    updated_at: i64,
}

impl From<ThrottleRow> for ThrottleState {
    fn from(r: ThrottleRow) -> Self {
        ThrottleState {
            failures: r.failures,
            window_start: r.window_start,
            consecutive: r.consecutive,
            locked_until: r.locked_until,
            hard_locked: r.hard_locked != 0,
            updated_at: r.updated_at,
        }
    }
}

/// A counter with its key (`get_throttles`; as JSON in `find_account_for_sign_in`).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct KeyedThrottleRow {
    key: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    row: ThrottleRow,
}

/// The counters found, in the order of `keys` (`None` where a key has none).
pub(super) fn in_key_order(keys: &[&str], rows: Vec<KeyedThrottleRow>) -> Vec<Option<ThrottleState>> {
    let mut rows: Vec<Option<KeyedThrottleRow>> = rows.into_iter().map(Some).collect();
    keys.iter()
        .map(|k| rows.iter_mut().find(|r| r.as_ref().is_some_and(|r| r.key == *k)).and_then(Option::take))
        .map(|r| r.map(|r| ThrottleState::from(r.row)))
        .collect()
}

/// An account with the sign-in's throttle counters as a JSON array (`find_account_for_sign_in`).
#[derive(sqlx::FromRow)]
pub(super) struct AccountWithThrottlesRow {
    #[sqlx(flatten)]
    account: AccountRow,
    throttles: Option<String>,
}

impl AccountWithThrottlesRow {
    /// The account, and the counters in the order of `keys`.
    pub(super) fn split(self, keys: &[&str]) -> StoreResult<(Account, Vec<Option<ThrottleState>>)> {
        let rows: Vec<KeyedThrottleRow> = match self.throttles.as_deref() {
            Some(json) => serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => Vec::new(),
        };
        Ok((Account::try_from(self.account)?, in_key_order(keys, rows)))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ActivityRow {
    #[sqlx(flatten)]
    pub(super) session: SessionRow,
    pub(super) last_seen_at: i64,
    pub(super) device: Option<String>,
}

impl TryFrom<ActivityRow> for SessionActivity {
    type Error = StoreError;
    fn try_from(r: ActivityRow) -> StoreResult<Self> {
        Ok(SessionActivity {
            session: SessionRecord::try_from(r.session)?,
            last_seen_at: r.last_seen_at,
            device: r.device,
        })
    }
}
