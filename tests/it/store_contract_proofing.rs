//! The proofing part of the `Store` contract (src/store/mod.rs, "Proofing"), run on
//! SQLite and, when `XACTHUC_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database.
//! Tests are `store_contract_proofing::on_sqlite::<group>` and `…::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use std::future::Future;
use uuid::Uuid;
use xacthuc::assurance::AsLevel;
use xacthuc::audit::{AuditEvent, verify_chain};
use xacthuc::store::{
    Account, AccountStatus, ActivationCode, Conflict, DynStore, EvidenceDocument, EvidenceRecord, IdentityData,
    StaffMember, StaffRole, StoreError, connect,
};
const T0: i64 = 1_750_000_000;

async fn run_sqlite<F, Fut>(group: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    group(connect(&url).await.unwrap()).await;
}

async fn run_postgres<F, Fut>(name: &str, group: F)
where
    F: FnOnce(DynStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = common::PgDatabase::create().await else {
        println!("store_contract_proofing::{name}: {} is unset; the PostgreSQL half was not run", common::POSTGRES_ENV);
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { group(connect(&url).await.unwrap()).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! groups {
    ($($group:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    super::run_sqlite(super::$group).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    super::run_postgres(stringify!($group), super::$group).await;
                }
            )*
        }
    };
}

groups!(evidence_and_levels, staff_members, activation_codes);

fn account(username: &str, identity: Option<IdentityData>, as_level: AsLevel) -> Account {
    Account {
        id: Uuid::now_v7(),
        username: username.into(),
        password_hash: None,
        as_level,
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity,
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: T0,
        updated_at: T0,
    }
}

fn identity(hash: &str) -> IdentityData {
    IdentityData {
        full_name: "Trần Thị Bình".into(),
        birth_date: "1992-02-03".into(),
        sex: "female".into(),
        national_id_enc: "sealed".into(),
        national_id_hash: hash.into(),
        national_id_masked: "0011******23".into(),
    }
}

fn evidence(account: &Account, at: i64, from: Option<AsLevel>, to: AsLevel, method: &str) -> EvidenceRecord {
    EvidenceRecord {
        id: Uuid::now_v7(),
        account_id: account.id,
        at,
        from_level: from,
        to_level: to,
        method: method.into(),
        source: "counter".into(),
        verifier: "staff:00000000-0000-0000-0000-000000000001".into(),
        office: Some("UBND phường Bến Nghé".into()),
        documents: vec![EvidenceDocument {
            kind: "cccd".into(),
            number_masked: "0011******23".into(),
            authority: "Bộ Công an".into(),
            expires_on: Some("2035-02-03".into()),
        }],
        reason: None,
    }
}

async fn kinds(store: &DynStore) -> Vec<String> {
    let events = store.list_audit(1, 1000).await.unwrap();
    assert!(verify_chain(&events).is_ok());
    events.into_iter().map(|e| e.event.kind).collect()
}

async fn evidence_and_levels(store: DynStore) {
    // Created with its evidence: account, record and event, or nothing.
    let a = account("binh", Some(identity("h-binh")), AsLevel::As4);
    let created = evidence(&a, T0, None, AsLevel::As4, "in_person");
    store.create_account_with_evidence(&a, &created, &AuditEvent::new(T0, "account.created", "staff:x")).await.unwrap();
    assert_eq!(store.list_evidence(a.id).await.unwrap(), vec![created.clone()]);
    let twin = account("binh2", Some(identity("h-binh")), AsLevel::As4);
    let e = evidence(&twin, T0, None, AsLevel::As4, "in_person");
    let r = store.create_account_with_evidence(&twin, &e, &AuditEvent::new(T0, "account.created", "staff:x")).await;
    assert!(matches!(r, Err(StoreError::Conflict(Conflict::NationalId))), "{r:?}");
    assert!(store.get_account(twin.id).await.unwrap().is_none());
    assert_eq!(kinds(&store).await, vec!["account.created"]);

    // A level change is compare-and-set on the level it starts from.
    let mut lowered = evidence(&a, T0 + 10, Some(AsLevel::As4), AsLevel::As2, "lowered");
    lowered.reason = Some("giấy tờ bị mất".into());
    lowered.documents.clear();
    assert!(
        store
            .change_level(&lowered, None, &AuditEvent::new(T0 + 10, "account.level_lowered", "staff:x"))
            .await
            .unwrap()
    );
    assert_eq!(store.get_account(a.id).await.unwrap().unwrap().as_level, AsLevel::As2);
    let stale = evidence(&a, T0 + 20, Some(AsLevel::As4), AsLevel::As3, "lowered");
    assert!(
        !store.change_level(&stale, None, &AuditEvent::new(T0 + 20, "account.level_lowered", "staff:x")).await.unwrap()
    );
    assert_eq!(store.list_evidence(a.id).await.unwrap(), vec![created.clone(), lowered.clone()]);

    // With identity: the data is replaced; a number held by another account conflicts.
    let c = account("cuong", None, AsLevel::As1);
    store.create_account(&c, &AuditEvent::new(T0, "account.created", "self")).await.unwrap();
    let up = evidence(&c, T0 + 30, Some(AsLevel::As1), AsLevel::As4, "in_person");
    let r = store
        .change_level(&up, Some(&identity("h-binh")), &AuditEvent::new(T0 + 30, "account.level_raised", "s"))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(Conflict::NationalId))), "{r:?}");
    let mut own = identity("h-cuong");
    own.full_name = "Lê Văn Cường".into();
    assert!(store.change_level(&up, Some(&own), &AuditEvent::new(T0 + 30, "account.level_raised", "s")).await.unwrap());
    let got = store.get_account(c.id).await.unwrap().unwrap();
    assert_eq!((got.as_level, got.identity.unwrap().full_name.as_str()), (AsLevel::As4, "Lê Văn Cường"));

    // Newest first since a time.
    let since = store.list_evidence_since(T0 + 10, 10).await.unwrap();
    assert_eq!(since.iter().map(|e| e.id).collect::<Vec<_>>(), vec![up.id, lowered.id]);
    assert_eq!(store.list_evidence_since(T0, 1).await.unwrap().len(), 1);

    // Status.
    assert!(
        store
            .set_account_status(
                c.id,
                AccountStatus::Suspended,
                T0 + 40,
                &AuditEvent::new(T0 + 40, "account.suspended", "s")
            )
            .await
            .unwrap()
    );
    assert_eq!(store.get_account(c.id).await.unwrap().unwrap().status, AccountStatus::Suspended);
    assert!(
        !store
            .set_account_status(Uuid::now_v7(), AccountStatus::Suspended, T0, &AuditEvent::new(T0, "x", "s"))
            .await
            .unwrap()
    );
    assert_eq!(
        kinds(&store).await,
        vec![
            "account.created",
            "account.level_lowered",
            "account.created",
            "account.level_raised",
            "account.suspended"
        ]
    );
}

async fn staff_members(store: DynStore) {
    let a = account("canbo", None, AsLevel::As1);
    let m =
        StaffMember { account_id: a.id, role: StaffRole::Supervisor, office: Some("Quầy 1".into()), created_at: T0 };
    store.create_staff(&m, Some(&a), &AuditEvent::new(T0, "staff.added", "operator")).await.unwrap();
    assert_eq!(store.get_staff(a.id).await.unwrap(), Some(m.clone()));
    assert!(store.get_account(a.id).await.unwrap().is_some());
    // Twice: the user name is taken; staff already.
    let same_name = account("canbo", None, AsLevel::As1);
    let m2 = StaffMember { account_id: same_name.id, ..m.clone() };
    let r = store.create_staff(&m2, Some(&same_name), &AuditEvent::new(T0, "staff.added", "operator")).await;
    assert!(matches!(r, Err(StoreError::Conflict(Conflict::Username))), "{r:?}");
    let r = store.create_staff(&m, None, &AuditEvent::new(T0, "staff.added", "operator")).await;
    assert!(matches!(r, Err(StoreError::Conflict(Conflict::Other))), "{r:?}");
    let citizen = account("dan", None, AsLevel::As1);
    store.create_account(&citizen, &AuditEvent::new(T0, "account.created", "self")).await.unwrap();
    assert_eq!(store.get_staff(citizen.id).await.unwrap(), None);
    assert_eq!(kinds(&store).await, vec!["staff.added", "account.created"]);
}

fn code(hash: &str, account: &Account, created_at: i64) -> ActivationCode {
    ActivationCode {
        code_hash: hash.into(),
        account_id: account.id,
        issued_by: "staff:x".into(),
        created_at,
        expires_at: created_at + 7 * 86_400,
        used_at: None,
    }
}

async fn activation_codes(store: DynStore) {
    let a = account("em", None, AsLevel::As4);
    store.create_account(&a, &AuditEvent::new(T0, "account.created", "staff:x")).await.unwrap();
    let first = code("c1", &a, T0);
    store.create_activation_code(&first, &AuditEvent::new(T0, "activation.issued", "staff:x")).await.unwrap();
    assert_eq!(store.find_activation_code("c1").await.unwrap(), Some(first.clone()));
    // A second letter spends the first.
    let second = code("c2", &a, T0 + 5);
    store.create_activation_code(&second, &AuditEvent::new(T0 + 5, "activation.issued", "staff:x")).await.unwrap();
    assert_eq!(store.find_activation_code("c1").await.unwrap().unwrap().used_at, Some(T0 + 5));
    let ev = || AuditEvent::new(T0 + 10, "account.activated", "account:x");
    assert!(!store.activate_account("c1", "$argon2id$new", T0 + 10, &ev()).await.unwrap());
    assert!(!store.activate_account("nope", "$argon2id$new", T0 + 10, &ev()).await.unwrap());
    // Expired: refused, nothing written.
    assert!(!store.activate_account("c2", "$argon2id$new", second.expires_at, &ev()).await.unwrap());
    assert_eq!(store.get_account(a.id).await.unwrap().unwrap().password_hash, None);
    // Single use.
    assert!(store.activate_account("c2", "$argon2id$new", T0 + 10, &ev()).await.unwrap());
    assert!(!store.activate_account("c2", "$argon2id$other", T0 + 11, &ev()).await.unwrap());
    assert_eq!(store.get_account(a.id).await.unwrap().unwrap().password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(store.find_activation_code("c2").await.unwrap().unwrap().used_at, Some(T0 + 10));
    assert_eq!(
        kinds(&store).await,
        vec!["account.created", "activation.issued", "activation.issued", "account.activated"]
    );
}
