//! A throttle counter created, bumped and cleared by concurrent transactions (concurrent
//! sign-ins of one user name: a failure bumps it, a success deletes it) never fails. On
//! PostgreSQL the locked read after `INSERT … ON CONFLICT DO NOTHING` used to find the row
//! gone and answer 500 at `POST /login`; found by the load benchmark (docs/performance.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use xacthuc::store::{DynStore, ThrottleState, ThrottleUpdate};

async fn throttle_created_and_cleared_concurrently(store: DynStore) {
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let update = move |current: Option<&ThrottleState>| {
                if i % 2 == 0 {
                    let consecutive = current.map_or(0, |s| s.consecutive) + 1;
                    let state = ThrottleState {
                        failures: consecutive,
                        window_start: 1,
                        consecutive,
                        updated_at: i,
                        ..Default::default()
                    };
                    ThrottleUpdate { state: Some(state), audit: None }
                } else {
                    ThrottleUpdate { state: None, audit: None }
                }
            };
            store.update_throttle("login:lan", &update).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        t.await.unwrap().unwrap_or_else(|e| panic!("update {i} failed: {e}"));
    }
}

crate::store_groups!(throttle_created_and_cleared_concurrently);
