//! The hardening part of the `Store` contract (src/store/mod.rs, "Hardening"): throttle
//! counters and session activity, run on SQLite and, when `XACTHUC_TEST_POSTGRES_URL` is set,
//! on a fresh PostgreSQL database. Tests are `store_contract_hardening::on_sqlite::<group>` and
//! `…::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;
use xacthuc::assurance::{Method, VerifiedFactor};
use xacthuc::audit::{AuditEvent, verify_chain};
use xacthuc::store::{DynStore, SessionRecord, ThrottleState, ThrottleUpdate};

const T0: i64 = 1_750_000_000;

crate::store_groups!(throttle_updates, throttle_concurrent, throttle_purge, session_activity, sign_in_reads);

fn bump(now: i64, audit: bool) -> impl Fn(Option<&ThrottleState>) -> ThrottleUpdate + Send + Sync {
    move |current| {
        let consecutive = current.map_or(0, |s| s.consecutive) + 1;
        let state = ThrottleState {
            failures: consecutive,
            window_start: current.map_or(now, |s| s.window_start),
            consecutive,
            locked_until: None,
            hard_locked: false,
            updated_at: now,
        };
        ThrottleUpdate { state: Some(state), audit: audit.then(|| AuditEvent::new(now, "login.locked", "system")) }
    }
}

async fn throttle_updates(store: DynStore) {
    assert_eq!(store.get_throttle("login:a").await.unwrap(), None);
    let written = store.update_throttle("login:a", &bump(T0, false)).await.unwrap().unwrap();
    assert_eq!((written.consecutive, written.window_start), (1, T0));
    // The update sees what is stored: the window start stays, the count goes on.
    let written = store.update_throttle("login:a", &bump(T0 + 5, false)).await.unwrap().unwrap();
    assert_eq!((written.consecutive, written.window_start, written.updated_at), (2, T0, T0 + 5));
    // Every field round-trips.
    let full = ThrottleState {
        failures: 7,
        window_start: T0 + 1,
        consecutive: 100,
        locked_until: Some(T0 + 900),
        hard_locked: true,
        updated_at: T0 + 2,
    };
    let put = {
        let full = full.clone();
        move |_: Option<&ThrottleState>| ThrottleUpdate { state: Some(full.clone()), audit: None }
    };
    store.update_throttle("login:b", &put).await.unwrap();
    assert_eq!(store.get_throttle("login:b").await.unwrap(), Some(full.clone()));
    // Several keys at once, in the order asked, `None` where there is no counter.
    let two = store.get_throttles(&["login:b", "login:none", "login:a"]).await.unwrap();
    assert_eq!(two.len(), 3);
    assert_eq!(two[0], Some(full.clone()));
    assert_eq!(two[1], None);
    assert_eq!(two[2].as_ref().map(|s| s.consecutive), Some(2));
    assert_eq!(store.get_throttles(&["login:a"]).await.unwrap()[0].as_ref().map(|s| s.updated_at), Some(T0 + 5));
    assert!(store.get_throttles(&[]).await.unwrap().is_empty());
    // `None` deletes; other keys are untouched.
    let delete = |_: Option<&ThrottleState>| ThrottleUpdate { state: None, audit: None };
    assert_eq!(store.update_throttle("login:a", &delete).await.unwrap(), None);
    assert_eq!(store.get_throttle("login:a").await.unwrap(), None);
    assert!(store.get_throttle("login:b").await.unwrap().is_some());
    // The audit event is appended with the write, and only when given.
    let before = store.list_audit(1, 1000).await.unwrap().len();
    store.update_throttle("login:c", &bump(T0, true)).await.unwrap();
    store.update_throttle("login:c", &bump(T0, false)).await.unwrap();
    let events = store.list_audit(1, 1000).await.unwrap();
    assert_eq!(events.len(), before + 1);
    assert_eq!(events.last().unwrap().event.kind, "login.locked");
    verify_chain(&events).unwrap();
}

/// Concurrent updates of one key (as from several instances) are serialised: none is lost.
async fn throttle_concurrent(store: DynStore) {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.update_throttle("addr:x", &bump(T0 + i, i % 6 == 0)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get_throttle("addr:x").await.unwrap().unwrap().consecutive, 24);
    let events = store.list_audit(1, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event.kind == "login.locked").count(), 4);
    verify_chain(&events).unwrap();
}

async fn throttle_purge(store: DynStore) {
    let put =
        |s: ThrottleState| move |_: Option<&ThrottleState>| ThrottleUpdate { state: Some(s.clone()), audit: None };
    let old = ThrottleState { failures: 1, window_start: T0, consecutive: 1, updated_at: T0, ..Default::default() };
    store.update_throttle("addr:old", &put(old.clone())).await.unwrap();
    store.update_throttle("login:old", &put(old.clone())).await.unwrap();
    store.update_throttle("addr:recent", &put(ThrottleState { updated_at: T0 + 100, ..old.clone() })).await.unwrap();
    store
        .update_throttle("addr:locked", &put(ThrottleState { locked_until: Some(T0 + 500), ..old.clone() }))
        .await
        .unwrap();
    store.update_throttle("addr:hard", &put(ThrottleState { hard_locked: true, ..old.clone() })).await.unwrap();
    assert_eq!(store.purge_throttle("addr:", T0 + 50).await.unwrap(), 1);
    assert!(store.get_throttle("addr:old").await.unwrap().is_none());
    for kept in ["login:old", "addr:recent", "addr:locked", "addr:hard"] {
        assert!(store.get_throttle(kept).await.unwrap().is_some(), "{kept} kept");
    }
}

async fn session_activity(store: DynStore) {
    let a = crate::common::seed_store_citizen(&store, "lan.tran", T0).await;
    let session = |hash: &str, created_at: i64, expires_at: i64| SessionRecord {
        id: Uuid::now_v7(),
        token_hash: hash.into(),
        account_id: a.id,
        factors: vec![VerifiedFactor { method: Method::Password, at: created_at }],
        created_at,
        expires_at,
    };
    let s1 = session("h1", T0, T0 + 10_000);
    let s2 = session("h2", T0 + 10, T0 + 10_000);
    let gone = session("h3", T0, T0 + 50);
    for s in [&s1, &s2, &gone] {
        store.create_session(s, &AuditEvent::new(s.created_at, "login.succeeded", "test").account(a.id)).await.unwrap();
    }
    // Never touched: last seen is the sign-in.
    let list = store.list_account_sessions(a.id, T0 + 100).await.unwrap();
    assert_eq!(list.iter().map(|s| s.session.id).collect::<Vec<_>>(), vec![s2.id, s1.id], "expired left out");
    assert_eq!((list[1].last_seen_at, list[1].device.as_deref()), (T0, None));
    assert_eq!(list[1].session, s1);

    // Touch within the idle timeout: recorded, the device set once.
    assert!(store.touch_session(s1.id, T0 + 100, 600, Some("Firefox · Android")).await.unwrap());
    assert!(store.touch_session(s1.id, T0 + 110, 600, Some("Chrome · Windows")).await.unwrap());
    let list = store.list_account_sessions(a.id, T0 + 120).await.unwrap();
    assert_eq!(list[0].session.id, s1.id, "most recently seen first");
    assert_eq!((list[0].last_seen_at, list[0].device.as_deref()), (T0 + 100, Some("Firefox · Android")));
    // Within 30 s of the last record nothing is written; later it is.
    assert!(store.touch_session(s1.id, T0 + 140, 600, None).await.unwrap());
    let seen =
        |l: Vec<xacthuc::store::SessionActivity>| l.into_iter().find(|s| s.session.id == s1.id).unwrap().last_seen_at;
    assert_eq!(seen(store.list_account_sessions(a.id, T0 + 150).await.unwrap()), T0 + 140);

    // Idle: unused for the idle timeout; no change.
    assert!(!store.touch_session(s2.id, T0 + 10 + 600, 600, None).await.unwrap());
    assert!(store.touch_session(s2.id, T0 + 10 + 599, 600, None).await.unwrap());
    // Expired, or unknown.
    assert!(!store.touch_session(gone.id, T0 + 50, 600, None).await.unwrap());
    assert!(!store.touch_session(Uuid::now_v7(), T0, 600, None).await.unwrap());
    // Another account sees none of them.
    assert!(store.list_account_sessions(Uuid::now_v7(), T0).await.unwrap().is_empty());
}

/// A sign-in's reads: the account and the counters of its keys, in their order, whether the
/// account exists or not.
async fn sign_in_reads(store: DynStore) {
    let a = crate::common::seed_store_citizen(&store, "minh.vo", T0).await;
    let locked = ThrottleState {
        failures: 3,
        window_start: T0,
        consecutive: 12,
        locked_until: Some(T0 + 900),
        hard_locked: false,
        updated_at: T0 + 1,
    };
    let put = {
        let locked = locked.clone();
        move |_: Option<&ThrottleState>| ThrottleUpdate { state: Some(locked.clone()), audit: None }
    };
    store.update_throttle("addr:1", &put).await.unwrap();

    // Known account: the account, no counter for its name, the address's counter.
    let (found, counters) = store.find_account_for_sign_in("minh.vo", &["login:minh", "addr:1"]).await.unwrap();
    assert_eq!(found, Some(a.clone()));
    assert_eq!(counters, vec![None, Some(locked.clone())]);
    // The order of the keys is kept; one key alone works.
    store.update_throttle("login:minh", &bump(T0, false)).await.unwrap();
    let (_, counters) = store.find_account_for_sign_in("minh.vo", &["addr:1", "login:minh"]).await.unwrap();
    assert_eq!(counters[0], Some(locked.clone()));
    assert_eq!(counters[1].as_ref().map(|s| (s.consecutive, s.locked_until)), Some((1, None)));
    let (found, counters) = store.find_account_for_sign_in("minh.vo", &["login:minh"]).await.unwrap();
    assert!(found.is_some());
    assert_eq!(counters.len(), 1);
    // Unknown name: no account, the counters all the same.
    let (found, counters) = store.find_account_for_sign_in("khong.co", &["login:x", "addr:1"]).await.unwrap();
    assert_eq!(found, None);
    assert_eq!(counters, vec![None, Some(locked)]);
}
