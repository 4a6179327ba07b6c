//! The passkey part of the `Store` contract (src/store/mod.rs, "Passkeys (WebAuthn)"), run on
//! SQLite and, when `XACTHUC_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database.
//! Tests are `store_contract_webauthn::on_sqlite::<group>` and `…::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use tokio::sync::Barrier;
use uuid::Uuid;
use xacthuc::audit::{AuditEvent, verify_chain};
use xacthuc::store::{Account, DynStore, PasskeyCredential, StoreError, WebauthnCeremony};

const T0: i64 = 1_750_000_000;

crate::store_groups!(passkeys, passkey_counter_concurrent, ceremonies, ceremonies_concurrent);

async fn seed(store: &DynStore, username: &str) -> Account {
    crate::common::seed_store_citizen(store, username, T0).await
}

fn passkey(account: &Account, credential_id: &str) -> PasskeyCredential {
    PasskeyCredential {
        id: Uuid::now_v7(),
        account_id: account.id,
        credential_id: credential_id.into(),
        user_handle: Uuid::new_v4(),
        name: "Điện thoại của tôi".into(),
        credential_json: r#"{"cred":{"counter":0}}"#.into(),
        user_verified: true,
        backup_eligible: true,
        backed_up: false,
        sign_count: 0,
        aaguid: Some("ee882879-721c-4913-9775-3dfcce97072a".into()),
        created_at: T0,
        last_used_at: None,
    }
}

async fn audit_kinds(store: &DynStore) -> Vec<String> {
    store.list_audit(1, 10_000).await.unwrap().into_iter().map(|e| e.event.kind).collect()
}

async fn passkeys(store: DynStore) {
    let (lan, minh) = (seed(&store, "lan").await, seed(&store, "minh").await);
    let first = passkey(&lan, "AAEC");
    let enrolled = AuditEvent::new(T0, "factor.enrolled", "test").account(lan.id);
    store.create_passkey(&first, &enrolled).await.unwrap();
    assert_eq!(store.list_passkeys(lan.id).await.unwrap(), vec![first.clone()], "stored as given");
    assert_eq!(store.find_passkey("AAEC").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_passkey("AAED").await.unwrap(), None);
    assert_eq!(audit_kinds(&store).await.iter().filter(|k| *k == "factor.enrolled").count(), 1);

    // A credential id belongs to one account only: another account (or the same) is refused,
    // and nothing is written, not even the event.
    let before = audit_kinds(&store).await.len();
    let stolen = passkey(&minh, "AAEC");
    assert!(matches!(store.create_passkey(&stolen, &enrolled).await, Err(StoreError::Conflict(_))));
    assert!(store.list_passkeys(minh.id).await.unwrap().is_empty());
    assert_eq!(audit_kinds(&store).await.len(), before, "no event for a refused registration");

    // Oldest first.
    let second = PasskeyCredential { created_at: T0 + 5, ..passkey(&lan, "BBBB") };
    store.create_passkey(&second, &enrolled).await.unwrap();
    let ids: Vec<Uuid> = store.list_passkeys(lan.id).await.unwrap().iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![first.id, second.id]);

    // The counter advances only from the value read (compare-and-set).
    assert!(store.use_passkey(first.id, 0, 3, r#"{"cred":{"counter":3}}"#, true, true, T0 + 10).await.unwrap());
    let used = store.find_passkey("AAEC").await.unwrap().unwrap();
    assert_eq!((used.sign_count, used.backed_up, used.last_used_at), (3, true, Some(T0 + 10)));
    assert_eq!(used.credential_json, r#"{"cred":{"counter":3}}"#);
    assert!(!store.use_passkey(first.id, 0, 4, "{}", true, true, T0 + 11).await.unwrap(), "stale counter refused");
    assert!(!store.use_passkey(Uuid::now_v7(), 0, 1, "{}", true, true, T0).await.unwrap(), "unknown credential");
    assert_eq!(store.find_passkey("AAEC").await.unwrap().unwrap().sign_count, 3, "unchanged by refusals");

    // Rename and delete only the account's own credential, each audited.
    let renamed = AuditEvent::new(T0, "factor.renamed", "test").account(lan.id);
    assert!(!store.rename_passkey(first.id, minh.id, "x", &renamed).await.unwrap(), "not minh's");
    assert!(store.rename_passkey(first.id, lan.id, "Khóa YubiKey", &renamed).await.unwrap());
    assert_eq!(store.find_passkey("AAEC").await.unwrap().unwrap().name, "Khóa YubiKey");
    let removed = AuditEvent::new(T0, "factor.removed", "test").account(lan.id);
    let before = audit_kinds(&store).await.len();
    assert!(!store.delete_passkey(first.id, minh.id, &removed).await.unwrap(), "not minh's");
    assert_eq!(audit_kinds(&store).await.len(), before, "no event for a refused removal");
    assert!(store.delete_passkey(first.id, lan.id, &removed).await.unwrap());
    assert!(!store.delete_passkey(first.id, lan.id, &removed).await.unwrap(), "already gone");
    assert_eq!(store.list_passkeys(lan.id).await.unwrap(), vec![second]);
    let kinds = audit_kinds(&store).await;
    assert_eq!(kinds.iter().filter(|k| *k == "factor.renamed").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "factor.removed").count(), 1);
    // After removal the id is free again.
    store.create_passkey(&passkey(&minh, "AAEC"), &enrolled).await.unwrap();
    assert!(verify_chain(&store.list_audit(1, 10_000).await.unwrap()).is_ok());
}

async fn passkey_counter_concurrent(store: DynStore) {
    let lan = seed(&store, "lan").await;
    let key = passkey(&lan, "CCCC");
    store.create_passkey(&key, &AuditEvent::new(T0, "factor.enrolled", "test")).await.unwrap();
    // Eight assertions read the same counter: exactly one may advance it.
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.use_passkey(key.id, 0, 1 + i, "{}", false, false, T0).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

fn ceremony(id_hash: &str, kind: &str, account: Option<Uuid>, expires_at: i64) -> WebauthnCeremony {
    WebauthnCeremony {
        id_hash: id_hash.into(),
        kind: kind.into(),
        account_id: account,
        state_json: r#"{"challenge":"xyz"}"#.into(),
        created_at: T0,
        expires_at,
    }
}

async fn ceremonies(store: DynStore) {
    let lan = seed(&store, "lan").await;
    let c = ceremony("h1", "register", Some(lan.id), T0 + 300);
    store.create_webauthn_ceremony(&c).await.unwrap();
    assert!(store.create_webauthn_ceremony(&c).await.is_err(), "a taken id is refused");
    // Another kind is left alone; the right kind is taken exactly once.
    assert_eq!(store.take_webauthn_ceremony("h1", "discover", T0).await.unwrap(), None);
    assert_eq!(store.take_webauthn_ceremony("h1", "register", T0 + 10).await.unwrap(), Some(c));
    assert_eq!(store.take_webauthn_ceremony("h1", "register", T0 + 10).await.unwrap(), None, "single use");
    // Expired: not returned, and gone.
    store.create_webauthn_ceremony(&ceremony("h2", "discover", None, T0 + 60)).await.unwrap();
    assert_eq!(store.take_webauthn_ceremony("h2", "discover", T0 + 60).await.unwrap(), None);
    store.create_webauthn_ceremony(&ceremony("h2", "discover", None, T0 + 120)).await.unwrap();
    // Creating a ceremony drops expired ones: h2 (expires T0+120) goes when h3 is made later.
    let mut later = ceremony("h3", "discover", None, T0 + 900);
    later.created_at = T0 + 600;
    store.create_webauthn_ceremony(&later).await.unwrap();
    assert_eq!(store.take_webauthn_ceremony("h2", "discover", T0).await.unwrap(), None, "purged");
    assert!(store.take_webauthn_ceremony("h3", "discover", T0 + 601).await.unwrap().is_some());
    assert!(audit_kinds(&store).await.iter().all(|k| k == "account.created"), "ceremonies are not audited");
}

async fn ceremonies_concurrent(store: DynStore) {
    store.create_webauthn_ceremony(&ceremony("race", "discover", None, T0 + 300)).await.unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.take_webauthn_ceremony("race", "discover", T0).await.unwrap().is_some()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one caller gets the ceremony");
}
