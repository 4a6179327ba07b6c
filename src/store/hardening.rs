//! Records of the hardening part of the store (issue 9): throttle counters and session activity.
//! Plain data; the `Store` methods that use them are under "Hardening" in `store/mod.rs`.

use super::SessionRecord;
use crate::audit::AuditEvent;

/// One throttle counter (table `throttle`). What the numbers mean is the caller's business
/// (`authn::throttle`); the store only keeps them consistent across instances.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Failures (or events) counted in the window that began at `window_start`.
    pub failures: i64,
    pub window_start: i64,
    /// Consecutive failures since the last success; never reset by time.
    pub consecutive: i64,
    /// No attempt is accepted before this time.
    pub locked_until: Option<i64>,
    /// The hard limit was reached: only a second factor or staff unlock.
    pub hard_locked: bool,
    pub updated_at: i64,
}

/// What an update of a throttle counter writes.
#[derive(Clone, Debug, Default)]
pub struct ThrottleUpdate {
    /// The new state; `None` deletes the counter.
    pub state: Option<ThrottleState>,
    /// Appended in the same transaction (a lock began, an unlock).
    pub audit: Option<AuditEvent>,
}

/// The function that computes an update from the stored state (`None`: no counter yet).
pub type ThrottleFn<'a> = dyn Fn(Option<&ThrottleState>) -> ThrottleUpdate + Send + Sync + 'a;

/// A live session with its activity, for the citizen's list of sessions.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionActivity {
    pub session: SessionRecord,
    /// The last request seen in this session (the sign-in when none since).
    pub last_seen_at: i64,
    /// A short device summary ("Firefox, Android"), when known.
    pub device: Option<String>,
}
