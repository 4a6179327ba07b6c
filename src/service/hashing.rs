//! Argon2 on a bounded pool sized to the cores (issue 10).
//!
//! Password hashing is the one piece of request work that is CPU- and memory-bound for tens of
//! milliseconds. It runs on `[password] workers` dedicated threads (default: one per core), each
//! keeping its own Argon2 memory block ([`Scratch`]), so resident memory stays at about
//! workers × `memory_kib` however many sign-ins arrive. At most `[password] queue` hashes wait
//! for a worker; a request beyond that is refused at once ([`ServiceError::Busy`]: a 503 page
//! with `Retry-After`, or `temporarily_unavailable` on a protocol endpoint) instead of timing out
//! behind a queue that cannot drain.
//!
//! A request takes its place ([`reserve`]) *before* any other work of the sign-in (throttle
//! counters, audit), so a refused request leaves no trace and costs no hash.

use super::ServiceError;
use crate::app::AppState;
use crate::authn::password::{self, Argon2Params, PasswordHashError, Scratch};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Seconds a refused client is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 5;

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Places taken: reserved, waiting or running. At most `workers + queue`.
    taken: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The hashing threads and their waiting room.
pub struct HashingPool {
    shared: Arc<Shared>,
    workers: usize,
    capacity: usize,
}

/// A place in the pool: one hash may run with it. Released when the hash has run (or when the
/// place is dropped unused).
pub struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingPool {
    /// Starts `workers` threads (at least one), each with memory for hashes of `params`, and
    /// lets `queue` hashes wait for them.
    pub fn start(workers: usize, queue: usize, params: Argon2Params) -> std::io::Result<HashingPool> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
            taken: AtomicUsize::new(0),
        });
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || work(&shared, params))?;
        }
        Ok(HashingPool { shared, workers, capacity: workers.saturating_add(queue) })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Hashes running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.shared.taken.load(Ordering::Acquire)
    }

    /// A place for one hash, or `None` when every worker is busy and the queue is full.
    pub fn try_reserve(&self) -> Option<Slot> {
        let mut taken = self.shared.taken.load(Ordering::Acquire);
        loop {
            if taken >= self.capacity {
                return None;
            }
            match self.shared.taken.compare_exchange_weak(taken, taken + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Slot { shared: Arc::clone(&self.shared) }),
                Err(now) => taken = now,
            }
        }
    }
}

impl Drop for HashingPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// One worker: takes jobs until the pool closes, always in the same memory.
fn work(shared: &Shared, params: Argon2Params) {
    let mut scratch = Scratch::for_params(params);
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Jobs catch their own panics (`Slot::run`); this is the worker's own safety net.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut scratch)));
    }
}

impl Slot {
    /// Runs `f` on a worker with the worker's memory; the place is released once it has run.
    /// Skipped if the caller has gone away (the request was dropped) before a worker got to it.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let job: Job = Box::new(move |scratch: &mut Scratch| {
            let result = if tx.is_closed() {
                None
            } else {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(scratch))).ok()
            };
            // The place is free before the caller resumes; a panic drops the sender unanswered
            // (the caller sees an internal error).
            drop(self);
            if let Some(result) = result {
                let _ = tx.send(result);
            }
        });
        {
            let mut queue = shared.lock();
            if queue.closed {
                return Err(ServiceError::Internal("the hashing pool is shut down".into()));
            }
            queue.jobs.push_back(job);
        }
        shared.ready.notify_one();
        rx.await.map_err(|_| ServiceError::Internal("a password hashing job failed".into()))
    }

    pub async fn verify(self, password: String, phc: String) -> Result<bool, ServiceError> {
        self.run(move |s| password::verify_password_with(s, &password, &phc)).await
    }

    pub async fn hash(
        self,
        password: String,
        params: Argon2Params,
    ) -> Result<Result<String, PasswordHashError>, ServiceError> {
        self.run(move |s| password::hash_password_with(s, &password, params)).await
    }

    pub async fn dummy_verify(self, password: String, params: Argon2Params) -> Result<(), ServiceError> {
        self.run(move |s| password::dummy_verify_with(s, &password, params)).await
    }
}

/// A place on the state's pool, or [`ServiceError::Busy`] (counted in
/// `xacthuc_password_hashes_shed_total`).
pub fn reserve(state: &AppState) -> Result<Slot, ServiceError> {
    match state.hashing.try_reserve() {
        Some(slot) => Ok(slot),
        None => {
            state.metrics.password_shed.inc();
            tracing::warn!(
                workers = state.hashing.workers(),
                in_flight = state.hashing.in_flight(),
                "password hashing queue full: request refused with 503"
            );
            Err(ServiceError::Busy)
        }
    }
}

/// Verifies a password against a stored PHC string on the pool.
pub async fn verify(state: &AppState, password: String, phc: String) -> Result<bool, ServiceError> {
    reserve(state)?.verify(password, phc).await
}

/// Hashes a new password on the pool.
pub async fn hash(
    state: &AppState,
    password: String,
    params: Argon2Params,
) -> Result<Result<String, PasswordHashError>, ServiceError> {
    reserve(state)?.hash(password, params).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_are_bounded_and_released() {
        let pool = HashingPool::start(1, 1, Argon2Params::TEST).unwrap();
        let a = pool.try_reserve().unwrap();
        let b = pool.try_reserve().unwrap();
        assert!(pool.try_reserve().is_none(), "one worker + one waiting: the third is refused");
        drop(b);
        let b = pool.try_reserve().unwrap();
        let phc = password::hash_password("mật khẩu", Argon2Params::TEST).unwrap();
        assert!(a.verify("mật khẩu".into(), phc.clone()).await.unwrap());
        assert!(!b.verify("sai".into(), phc).await.unwrap());
        assert_eq!(pool.in_flight(), 0);
        let slot = pool.try_reserve().unwrap();
        let panicked = slot.run(|_| -> u8 { panic!("boom") }).await;
        assert!(matches!(panicked, Err(ServiceError::Internal(_))));
        // The worker survived the panic.
        assert_eq!(pool.try_reserve().unwrap().run(|_| 7).await.unwrap(), 7);
    }
}
