//! The certificate part of the `Store` contract (src/store/mod.rs: enrolled certificates and
//! certificate challenges), run on SQLite and, when `XACTHUC_TEST_POSTGRES_URL` is set, on a
//! fresh PostgreSQL database. Tests are `store_contract_certificates::on_sqlite::<group>` and
//! `…::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use tokio::sync::Barrier;
use uuid::Uuid;
use xacthuc::audit::{AuditEvent, verify_chain};
use xacthuc::store::{Account, CertificateChallenge, Conflict, DynStore, EnrolledCertificate, StoreError};

const T0: i64 = 1_750_000_000;

crate::store_groups!(certificates, challenges, challenges_concurrent, purge_challenges);

async fn seed(store: &DynStore, username: &str) -> Account {
    crate::common::seed_store_citizen(store, username, T0).await
}

fn certificate(account: &Account, fingerprint: &str) -> EnrolledCertificate {
    EnrolledCertificate {
        id: Uuid::now_v7(),
        account_id: account.id,
        fingerprint: fingerprint.into(),
        der: "MIIB".into(),
        subject_cn: "NGUYỄN VĂN AN".into(),
        issuer: "C=VN, CN=VNPT-CA SHA2".into(),
        serial: "54450001".into(),
        not_before: T0 - 10,
        not_after: T0 + 1000,
        uids: vec!["CCCD:001090012345".into(), "MST:0101234567-001".into()],
        profile: "public".into(),
        created_at: T0,
        last_used_at: None,
    }
}

fn challenge(id_hash: &str, account: Option<&Account>, expires_at: i64) -> CertificateChallenge {
    CertificateChallenge {
        id_hash: id_hash.into(),
        account_id: account.map(|a| a.id),
        purpose: "sign-in".into(),
        bytes: r#"{"id":"x","origin":"https://id.example.vn","purpose":"sign-in"}"#.into(),
        created_at: T0,
        expires_at,
        consumed_at: None,
    }
}

async fn audit_kinds(store: &DynStore) -> Vec<String> {
    store.list_audit(1, 10_000).await.unwrap().into_iter().map(|e| e.event.kind).collect()
}

async fn certificates(store: DynStore) {
    let (an, binh) = (seed(&store, "an").await, seed(&store, "binh").await);
    let first = certificate(&an, "aa11");
    let enrolled = AuditEvent::new(T0, "factor.enrolled", "test").account(an.id).detail("factor", "x509");
    store.create_certificate(&first, &enrolled).await.unwrap();
    assert_eq!(store.list_certificates(an.id).await.unwrap(), vec![first.clone()], "stored as given, UIDs included");
    assert_eq!(store.find_certificate_by_fingerprint("aa11").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_certificate_by_fingerprint("bb22").await.unwrap(), None);
    assert!(store.list_certificates(binh.id).await.unwrap().is_empty());
    // One certificate, one account: the same fingerprint elsewhere is a conflict, and nothing
    // (not even the event) is written.
    let before = audit_kinds(&store).await.len();
    let taken = store.create_certificate(&certificate(&binh, "aa11"), &enrolled).await;
    assert!(matches!(taken, Err(StoreError::Conflict(Conflict::Other))), "{taken:?}");
    assert_eq!(audit_kinds(&store).await.len(), before);
    assert!(store.list_certificates(binh.id).await.unwrap().is_empty());
    // Oldest first.
    let mut second = certificate(&an, "cc33");
    second.created_at = T0 + 5;
    store.create_certificate(&second, &enrolled).await.unwrap();
    let ids: Vec<Uuid> = store.list_certificates(an.id).await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![first.id, second.id]);
    // Use is recorded without an event.
    let before = audit_kinds(&store).await.len();
    store.touch_certificate(first.id, T0 + 60).await.unwrap();
    assert_eq!(store.find_certificate_by_fingerprint("aa11").await.unwrap().unwrap().last_used_at, Some(T0 + 60));
    assert_eq!(audit_kinds(&store).await.len(), before);
    // Removal: only by the owner, with its event.
    let removed = AuditEvent::new(T0, "factor.removed", "test").account(an.id);
    assert!(!store.delete_certificate(first.id, binh.id, &removed).await.unwrap(), "not binh's");
    assert_eq!(audit_kinds(&store).await.len(), before);
    assert!(store.delete_certificate(first.id, an.id, &removed).await.unwrap());
    assert!(!store.delete_certificate(first.id, an.id, &removed).await.unwrap(), "gone");
    assert_eq!(store.find_certificate_by_fingerprint("aa11").await.unwrap(), None);
    // Once removed, another account may enrol it.
    store.create_certificate(&certificate(&binh, "aa11"), &enrolled).await.unwrap();
    let kinds = audit_kinds(&store).await;
    assert_eq!(kinds.iter().filter(|k| *k == "factor.enrolled").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "factor.removed").count(), 1);
    verify_chain(&store.list_audit(1, 10_000).await.unwrap()).unwrap();
}

async fn challenges(store: DynStore) {
    let an = seed(&store, "an").await;
    let c = challenge("h1", Some(&an), T0 + 300);
    store.create_certificate_challenge(&c).await.unwrap();
    assert!(matches!(store.create_certificate_challenge(&c).await, Err(StoreError::Conflict(Conflict::Other))));
    // Spending returns it as it was, once.
    assert_eq!(store.consume_certificate_challenge("h1", T0 + 10).await.unwrap(), Some(c.clone()));
    assert_eq!(store.consume_certificate_challenge("h1", T0 + 11).await.unwrap(), None, "single use");
    assert_eq!(store.consume_certificate_challenge("nope", T0).await.unwrap(), None);
    // An expired one is still spent (the caller checks expiry), and only once.
    let old = challenge("h2", None, T0 - 1);
    store.create_certificate_challenge(&old).await.unwrap();
    assert_eq!(store.consume_certificate_challenge("h2", T0).await.unwrap(), Some(old));
    assert_eq!(store.consume_certificate_challenge("h2", T0).await.unwrap(), None);
}

async fn challenges_concurrent(store: DynStore) {
    store.create_certificate_challenge(&challenge("race", None, T0 + 300)).await.unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.consume_certificate_challenge("race", T0 + 1).await.unwrap().is_some()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one concurrent spender");
}

async fn purge_challenges(store: DynStore) {
    store.create_certificate_challenge(&challenge("stale", None, T0 - 86_401)).await.unwrap();
    store.create_certificate_challenge(&challenge("fresh", None, T0 - 10)).await.unwrap();
    assert!(store.purge_expired(T0).await.unwrap() >= 1);
    assert_eq!(store.consume_certificate_challenge("stale", T0).await.unwrap(), None, "purged a day past expiry");
    assert!(store.consume_certificate_challenge("fresh", T0).await.unwrap().is_some(), "kept");
}
