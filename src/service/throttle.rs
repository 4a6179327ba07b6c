//! Throttling online guessing and abuse, across instances (the counters are in the database;
//! the rules in `authn::throttle`, docs/operations.md "Throttling").
//!
//! Keys never hold a user name or an address in clear: `login:<keyed hash of the canonical
//! user name>`, `addr:<keyed hash of the address bucket>`, `register:…`, `send:…`. A user name
//! that has no account is counted exactly like one that has, so a lock says nothing about
//! whether an account exists.

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::authn::throttle::{self, LockBegan, Verdict};
use crate::store::{ThrottleState, ThrottleUpdate};
use std::net::IpAddr;
use std::sync::Mutex;
use uuid::Uuid;

/// Why an attempt was refused before it was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This user name: not before this time.
    Wait(i64),
    /// This user name: a second factor (passkey, certificate) or staff must unlock it.
    HardLocked,
    /// This source address: not before this time.
    Address(i64),
}

/// What is rate-limited per source address.
#[derive(Clone, Copy, Debug)]
pub enum Rate {
    Registration,
    CodeSent,
    /// Attempts at `/login/unlock` (limited like code sending).
    Unlock,
}

fn account_key(state: &AppState, canonical_username: &str) -> String {
    format!("login:{}", state.data_key.keyed_hash("throttle-username", canonical_username.as_bytes()))
}

fn address_key(state: &AppState, kind: &str, ip: IpAddr) -> String {
    let bucket = throttle::address_bucket(ip);
    format!("{kind}:{}", state.data_key.keyed_hash("throttle-address", bucket.as_bytes()))
}

/// Password attempts on one user name take turns within this instance: an attempt reads the
/// verdict, checks the password and counts a failure before the next attempt on that name reads
/// the verdict, so a burst of parallel guesses is no faster than one after the other. (Each
/// instance admits one attempt per name at a time: with several instances a lock can be
/// overshot by at most instances − 1 guesses.) Concurrent sign-ins of one citizen with the right
/// password simply wait their turn; none is refused.
///
/// Striped: a fixed set of locks picked by a hash with a per-process random key, so memory does
/// not grow with user names and no one can choose names that share a victim's lock.
pub struct LoginGate {
    stripes: Box<[tokio::sync::Mutex<()>]>,
    hasher: std::hash::RandomState,
}

impl LoginGate {
    pub fn new(stripes: usize) -> LoginGate {
        LoginGate {
            stripes: (0..stripes.max(1)).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Waits for this user name's turn (first come, first served).
    pub async fn enter(&self, canonical_username: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let i = self.hasher.hash_one(canonical_username) as usize % self.stripes.len();
        self.stripes[i].lock().await
    }
}

impl Default for LoginGate {
    fn default() -> LoginGate {
        LoginGate::new(1024)
    }
}

/// What [`check_login`] found: whether the user name has a failure count (which a success
/// then clears).
#[derive(Clone, Copy, Debug)]
pub struct LoginCheck {
    counted: bool,
}

/// The throttle keys a password sign-in reads: the user name's and, when known, the source
/// address's.
pub fn login_keys(state: &AppState, canonical_username: &str, source: Option<IpAddr>) -> Vec<String> {
    let mut keys = vec![account_key(state, canonical_username)];
    keys.extend(source.map(|ip| address_key(state, "addr", ip)));
    keys
}

/// Before a password is checked (within the user name's turn, [`LoginGate`]), on the counters
/// of [`login_keys`] (read with the account, one query): the source address must not be
/// locked, nor the user name. Nothing is written for an attempt that then succeeds with no
/// earlier failures.
pub fn check_login(counters: &[Option<ThrottleState>], now: i64) -> Result<LoginCheck, Refused> {
    let user = counters.first().and_then(Option::as_ref);
    let addr = counters.get(1).and_then(Option::as_ref);
    if let Verdict::Wait(until) = throttle::verdict(addr, now) {
        return Err(Refused::Address(until));
    }
    match throttle::verdict(user, now) {
        Verdict::Allowed => Ok(LoginCheck { counted: user.is_some() }),
        Verdict::Wait(until) => Err(Refused::Wait(until)),
        _ => Err(Refused::HardLocked),
    }
}

/// A wrong password (or an unknown user name): counted against the user name — a lock that
/// begins is audited — and against the source address. `account` is the account behind the
/// name, if any, only for the audit event of a lock.
pub async fn login_failed(
    state: &AppState,
    canonical_username: &str,
    account: Option<Uuid>,
    source: Option<IpAddr>,
    now: i64,
) -> Result<(), ServiceError> {
    let cfg = &state.config.throttle;
    // Set by the update when this failure began a lock (for the lockout metric).
    let lock_began = std::sync::atomic::AtomicBool::new(false);
    let username_hash = state.data_key.keyed_hash("audit-username", canonical_username.as_bytes());
    let update = |current: Option<&ThrottleState>| -> ThrottleUpdate {
        let (next, began) = throttle::account_failure(cfg, current, now);
        lock_began.store(began.is_some(), std::sync::atomic::Ordering::Relaxed);
        let audit = began.map(|b| {
            let (kind, until) = match b {
                LockBegan::Temporary(until) => ("login.locked", Some(until)),
                LockBegan::Hard => ("login.locked_hard", None),
            };
            let mut e = AuditEvent::new(now, kind, "system").detail("consecutive_failures", next.consecutive);
            if let Some(until) = until {
                e = e.detail("until", until);
            }
            match account {
                Some(id) => e.account(id),
                None => e.detail("username_hash", username_hash.clone()),
            }
        });
        ThrottleUpdate { state: Some(next), audit }
    };
    state.store.update_throttle(&account_key(state, canonical_username), &update).await?;
    if lock_began.load(std::sync::atomic::Ordering::Relaxed) {
        state.metrics.lockout("user_name");
    }
    address_failed(state, source, now).await
}

/// A failed password counted against the source address.
async fn address_failed(state: &AppState, source: Option<IpAddr>, now: i64) -> Result<(), ServiceError> {
    let Some(ip) = source else { return Ok(()) };
    let cfg = &state.config.throttle;
    // Set by the update when this failure began a lock (for the lockout metric).
    let lock_began = std::sync::atomic::AtomicBool::new(false);
    let update = |current: Option<&ThrottleState>| {
        let (next, locked) = throttle::windowed(
            current,
            now,
            cfg.address_window_seconds,
            cfg.address_failures,
            cfg.address_lock_seconds,
        );
        let audit = locked.map(|until| {
            AuditEvent::new(now, "login.address_locked", "system")
                .detail("address", throttle::masked_address(ip))
                .detail("until", until)
        });
        if let Some(until) = locked {
            tracing::warn!(address = %throttle::masked_address(ip), until, "source address locked after repeated sign-in failures");
        }
        lock_began.store(locked.is_some(), std::sync::atomic::Ordering::Relaxed);
        ThrottleUpdate { state: Some(next), audit }
    };
    state.store.update_throttle(&address_key(state, "addr", ip), &update).await?;
    if lock_began.load(std::sync::atomic::Ordering::Relaxed) {
        state.metrics.lockout("address");
    }
    Ok(())
}

/// A successful password: the user name's count, if it had one, starts again.
pub async fn login_succeeded(
    state: &AppState,
    canonical_username: &str,
    check: LoginCheck,
) -> Result<(), ServiceError> {
    if !check.counted {
        return Ok(());
    }
    let clear = |_: Option<&ThrottleState>| ThrottleUpdate { state: None, audit: None };
    state.store.update_throttle(&account_key(state, canonical_username), &clear).await?;
    Ok(())
}

/// Unlocks a user name (staff, or the citizen who signed in with a second factor): the count
/// starts again. Audited as `login.unlocked` when there was a lock or a count; `false` when
/// there was nothing to unlock.
pub async fn unlock(
    state: &AppState,
    canonical_username: &str,
    account: Uuid,
    actor: &str,
    how: &str,
    now: i64,
) -> Result<bool, ServiceError> {
    let had = Mutex::new(false);
    let clear = |current: Option<&ThrottleState>| {
        let locked = current.is_some_and(|s| s.hard_locked || s.locked_until.is_some_and(|u| u > now));
        if let Ok(mut h) = had.lock() {
            *h = locked;
        }
        let audit = locked.then(|| {
            AuditEvent::new(now, "login.unlocked", actor.to_string()).account(account).detail("by", how.to_string())
        });
        ThrottleUpdate { state: None, audit }
    };
    state.store.update_throttle(&account_key(state, canonical_username), &clear).await?;
    Ok(had.lock().map(|h| *h).unwrap_or(false))
}

/// Whether the user name is locked now (for staff and tests).
pub async fn account_verdict(state: &AppState, canonical_username: &str, now: i64) -> Result<Verdict, ServiceError> {
    Ok(throttle::verdict(state.store.get_throttle(&account_key(state, canonical_username)).await?.as_ref(), now))
}

/// Counts one registration or code sent from `source`; refused (and not counted) while the
/// address is over its limit. No address known: not limited here.
pub async fn rate(state: &AppState, what: Rate, source: Option<IpAddr>, now: i64) -> Result<(), ThrottleError> {
    let Some(ip) = source else { return Ok(()) };
    let cfg = &state.config.throttle;
    let (kind, max) = match what {
        Rate::Registration => ("register", cfg.registrations_per_address),
        Rate::CodeSent => ("send", cfg.codes_per_address),
        Rate::Unlock => ("unlock", cfg.codes_per_address),
    };
    let refused: Mutex<Option<i64>> = Mutex::new(None);
    let update = |current: Option<&ThrottleState>| {
        if let Verdict::Wait(until) = throttle::verdict(current, now) {
            if let Ok(mut r) = refused.lock() {
                *r = Some(until);
            }
            return ThrottleUpdate { state: current.cloned(), audit: None };
        }
        let (next, locked) =
            throttle::windowed(current, now, cfg.rate_window_seconds, max + 1, cfg.rate_window_seconds);
        // `max + 1`: the max-th event is still accepted; the next one finds the key locked.
        let (next, audit) = match locked {
            Some(until) => {
                if let Ok(mut r) = refused.lock() {
                    *r = Some(until);
                }
                let e = AuditEvent::new(now, "rate.limited", "system")
                    .detail("what", kind)
                    .detail("address", throttle::masked_address(ip))
                    .detail("until", until);
                (next, Some(e))
            }
            None => (next, None),
        };
        ThrottleUpdate { state: Some(next), audit }
    };
    state.store.update_throttle(&address_key(state, kind, ip), &update).await?;
    match refused.lock().ok().and_then(|r| *r) {
        Some(until) => Err(ThrottleError::Refused(Refused::Address(until))),
        None => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many attempts")]
    Refused(Refused),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for ThrottleError {
    fn from(e: crate::store::StoreError) -> Self {
        ThrottleError::Service(e.into())
    }
}

/// Why an unlock with a second factor did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// The user name is not hard-locked: the ordinary sign-in applies.
    #[error("not locked")]
    NotLocked,
    /// Still within the lock's time: not before this time.
    #[error("not yet")]
    Wait(i64),
    /// Wrong user name, password or code, or the second factor is locked: one answer for all,
    /// so the page tells nothing about which, or whether the account exists.
    #[error("unlock failed")]
    Failed,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for UnlockError {
    fn from(e: crate::store::StoreError) -> Self {
        UnlockError::Service(e.into())
    }
}

/// The citizen's own way out of the hard lock (NIST SP 800-63B §5.2.2 lets another
/// authenticator unlock): once the lock's time has passed, the password together with a code
/// from an authenticator app or a recovery code. The second factor is checked first and counts
/// toward its own lock (5 failures in 15 minutes), as does a wrong password here, so the hard
/// lock does not reopen password guessing. On success the user name is unlocked and the
/// factors verified are returned (a 2FA sign-in).
pub async fn unlock_with_second_factor(
    state: &AppState,
    username: &str,
    password: &str,
    code: &str,
    now: i64,
) -> Result<(crate::store::Account, Vec<crate::assurance::VerifiedFactor>), UnlockError> {
    use super::second_factor::{self as sf, LOCK_KEY};
    use crate::assurance::{Method, VerifiedFactor};
    let username = super::accounts::canonical_username(username);
    match state.store.get_throttle(&account_key(state, &username)).await? {
        Some(s) if s.hard_locked => {
            if let Some(until) = s.locked_until.filter(|u| *u > now) {
                return Err(UnlockError::Wait(until));
            }
        }
        _ => return Err(UnlockError::NotLocked),
    }
    let params = state.password_params;
    let account = state.store.find_account_by_username(&username).await?;
    let Some((account, hash)) = account.and_then(|a| a.password_hash.clone().map(|h| (a, h))) else {
        super::hashing::reserve(state)?.dummy_verify(password.to_string(), params).await?;
        return Err(UnlockError::Failed);
    };
    if state.store.locked_until(account.id, LOCK_KEY, now).await?.is_some() {
        return Err(UnlockError::Failed);
    }
    let code = code.trim();
    let method = if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        match sf::verify_totp(state, &account, code, now).await {
            Ok(m) => m,
            Err(sf::SecondFactorError::Service(e)) => return Err(e.into()),
            Err(_) => return Err(UnlockError::Failed),
        }
    } else {
        let used = match crate::authn::recovery::hash(account.id, code) {
            Some(hash) => {
                let audit = AuditEvent::new(now, "factor.recovery_code_used", format!("account:{}", account.id))
                    .account(account.id);
                state.store.use_recovery_code(account.id, &hash, now, &audit).await?
            }
            None => None,
        };
        if used.is_none() {
            sf::fail(state, &account, "recovery_code", now).await?;
            return Err(UnlockError::Failed);
        }
        Method::RecoveryCode
    };
    let ok = super::hashing::verify(state, password.to_string(), hash).await?;
    if !ok || account.status != crate::store::AccountStatus::Active {
        sf::fail(state, &account, "password_unlock", now).await?;
        return Err(UnlockError::Failed);
    }
    state.store.clear_failures(account.id, LOCK_KEY).await?;
    let actor = format!("account:{}", account.id);
    unlock(state, &username, account.id, &actor, "second_factor", now).await?;
    let factors = vec![VerifiedFactor { method: Method::Password, at: now }, VerifiedFactor { method, at: now }];
    Ok((account, factors))
}
