//! The "Review" part of the `Store` contract (src/store/mod.rs: AS-3 by uploaded ID-card
//! photos), on SQLite and, when `XACTHUC_TEST_POSTGRES_URL` is set, on PostgreSQL. Tests are
//! `store_contract_review::on_sqlite::<group>` and `…::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;
use xacthuc::assurance::AsLevel;
use xacthuc::audit::{AuditEvent, verify_chain};
use xacthuc::store::{
    Account, AccountStatus, Conflict, DynStore, EvidenceDocument, EvidenceRecord, IdentityData, ReviewDecision,
    ReviewFile, ReviewOutcome, ReviewRequest, ReviewStatus, StoreError,
};

crate::store_groups!(requests_and_files, one_decision_per_request, approval_needs_the_same_account_state);

const T0: i64 = 1_750_000_000;
const STAFF: &str = "staff:00000000-0000-0000-0000-000000000001";

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

async fn citizen(store: &DynStore, username: &str, hash: &str) -> Account {
    let a = Account {
        id: Uuid::now_v7(),
        username: username.into(),
        password_hash: None,
        as_level: AsLevel::As2,
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity: Some(identity(hash)),
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: T0,
        updated_at: T0,
    };
    store.create_account(&a, &AuditEvent::new(T0, "account.created", "self")).await.unwrap();
    a
}

fn request(a: &Account, at: i64) -> ReviewRequest {
    let i = a.identity.as_ref().unwrap();
    ReviewRequest {
        id: Uuid::now_v7(),
        account_id: a.id,
        status: ReviewStatus::Pending,
        created_at: at,
        full_name: i.full_name.clone(),
        birth_date: i.birth_date.clone(),
        sex: i.sex.clone(),
        national_id_masked: i.national_id_masked.clone(),
        national_id_hash: i.national_id_hash.clone(),
        decided_by: None,
        decided_at: None,
        reason: None,
    }
}

fn files(r: &ReviewRequest) -> Vec<(ReviewFile, String)> {
    ["front", "back"]
        .iter()
        .map(|side| {
            let f = ReviewFile {
                id: Uuid::now_v7(),
                request_id: r.id,
                side: (*side).into(),
                content_type: if *side == "front" { "image/jpeg" } else { "application/pdf" }.into(),
                size: 60_000,
            };
            (f, format!("v1.sealed-{side}"))
        })
        .collect()
}

async fn submit(store: &DynStore, r: &ReviewRequest) -> Vec<(ReviewFile, String)> {
    let f = files(r);
    store.create_review_request(r, &f, &AuditEvent::new(r.created_at, "review.submitted", "self")).await.unwrap();
    f
}

fn approval(r: &ReviewRequest, a: &Account, at: i64) -> (ReviewDecision, EvidenceRecord) {
    let d = ReviewDecision {
        request_id: r.id,
        status: ReviewStatus::Approved,
        decided_by: STAFF.into(),
        decided_at: at,
        reason: None,
    };
    let e = EvidenceRecord {
        id: Uuid::now_v7(),
        account_id: a.id,
        at,
        from_level: Some(a.as_level),
        to_level: AsLevel::As3,
        method: "review".into(),
        source: "web_upload".into(),
        verifier: STAFF.into(),
        office: None,
        documents: vec![EvidenceDocument {
            kind: "cccd".into(),
            number_masked: "0011******23".into(),
            authority: "Bộ Công an".into(),
            expires_on: None,
        }],
        reason: None,
    };
    (d, e)
}

fn rejection(r: &ReviewRequest, at: i64) -> ReviewDecision {
    ReviewDecision {
        request_id: r.id,
        status: ReviewStatus::Rejected,
        decided_by: STAFF.into(),
        decided_at: at,
        reason: Some("ảnh mờ".into()),
    }
}

async fn kinds(store: &DynStore) -> Vec<String> {
    let events = store.list_audit(1, 1000).await.unwrap();
    assert!(verify_chain(&events).is_ok());
    events.into_iter().map(|e| e.event.kind).collect()
}

async fn requests_and_files(store: DynStore) {
    let a = citizen(&store, "binh", "h-binh").await;
    let b = citizen(&store, "an", "h-an").await;
    let ra = request(&a, T0 + 20);
    let fa = submit(&store, &ra).await;
    let rb = request(&b, T0 + 10);
    submit(&store, &rb).await;

    // Oldest first; counted; each account's newest.
    let pending = store.list_pending_reviews(10).await.unwrap();
    assert_eq!(pending, vec![rb.clone(), ra.clone()]);
    assert_eq!(store.list_pending_reviews(1).await.unwrap(), vec![rb.clone()]);
    assert_eq!(store.count_pending_reviews().await.unwrap(), 2);
    assert_eq!(store.latest_review_request(a.id).await.unwrap(), Some(ra.clone()));
    assert_eq!(store.latest_review_request(Uuid::now_v7()).await.unwrap(), None);

    // The request with its files (front first), without contents; a file with its content,
    // only through its own request.
    let (got, got_files) = store.get_review_request(ra.id).await.unwrap().unwrap();
    assert_eq!(got, ra);
    assert_eq!(got_files, fa.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>());
    let (f, sealed) = store.get_review_file(ra.id, fa[1].0.id).await.unwrap().unwrap();
    assert_eq!((f, sealed), fa[1].clone());
    assert!(store.get_review_file(rb.id, fa[1].0.id).await.unwrap().is_none());
    assert!(store.get_review_request(Uuid::now_v7()).await.unwrap().is_none());

    // At most one pending request per account: the second writes nothing, not even its event.
    let again = request(&a, T0 + 30);
    let r = store
        .create_review_request(&again, &files(&again), &AuditEvent::new(T0 + 30, "review.submitted", "self"))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(Conflict::Other))), "{r:?}");
    assert!(store.get_review_request(again.id).await.unwrap().is_none());
    assert_eq!(store.count_pending_reviews().await.unwrap(), 2);
    // Two files for one side: nothing written either.
    let twice = request(&citizen(&store, "chi", "h-chi").await, T0 + 40);
    let mut f = files(&twice);
    f[1].0.side = "front".into();
    let r = store.create_review_request(&twice, &f, &AuditEvent::new(T0 + 40, "review.submitted", "self")).await;
    assert!(r.is_err());
    assert!(store.get_review_request(twice.id).await.unwrap().is_none());
    assert_eq!(kinds(&store).await.iter().filter(|k| *k == "review.submitted").count(), 2);

    // Once decided, a new request may be made.
    let outcome =
        store.decide_review(&rejection(&ra, T0 + 50), None, &AuditEvent::new(T0 + 50, "review.rejected", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::Decided);
    let next = request(&a, T0 + 60);
    submit(&store, &next).await;
    assert_eq!(store.latest_review_request(a.id).await.unwrap().unwrap().id, next.id);
    assert_eq!(store.list_pending_reviews(10).await.unwrap(), vec![rb, next]);
}

async fn one_decision_per_request(store: DynStore) {
    let a = citizen(&store, "binh", "h-binh").await;
    let r = request(&a, T0);
    submit(&store, &r).await;
    let (d, e) = approval(&r, &a, T0 + 100);
    let outcome = store.decide_review(&d, Some(&e), &AuditEvent::new(T0 + 100, "account.level_raised", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::Decided);
    let (got, _) = store.get_review_request(r.id).await.unwrap().unwrap();
    assert_eq!(got.status, ReviewStatus::Approved);
    assert_eq!(got.decided_by.as_deref(), Some(STAFF));
    assert_eq!(got.decided_at, Some(T0 + 100));
    assert_eq!(store.get_account(a.id).await.unwrap().unwrap().as_level, AsLevel::As3);
    assert_eq!(store.list_evidence(a.id).await.unwrap(), vec![e]);
    assert_eq!(store.count_pending_reviews().await.unwrap(), 0);

    // The second decision, either way, writes nothing.
    let outcome =
        store.decide_review(&rejection(&r, T0 + 200), None, &AuditEvent::new(T0 + 200, "review.rejected", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::NotPending);
    let (d2, e2) = approval(&r, &a, T0 + 200);
    let outcome = store.decide_review(&d2, Some(&e2), &AuditEvent::new(T0 + 200, "account.level_raised", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::NotPending);
    assert_eq!(store.get_review_request(r.id).await.unwrap().unwrap().0, got);
    assert_eq!(store.list_evidence(a.id).await.unwrap().len(), 1);
    let unknown = ReviewDecision { request_id: Uuid::now_v7(), ..rejection(&r, T0) };
    let outcome = store.decide_review(&unknown, None, &AuditEvent::new(T0, "review.rejected", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::NotPending);

    // Concurrent decisions on one request: exactly one wins.
    let b = citizen(&store, "an", "h-an").await;
    let rb = request(&b, T0 + 300);
    submit(&store, &rb).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store = store.clone();
        let d = ReviewDecision { reason: Some(format!("lý do {i}")), ..rejection(&rb, T0 + 300 + i) };
        tasks.push(tokio::spawn(async move {
            store.decide_review(&d, None, &AuditEvent::new(T0 + 300, "review.rejected", STAFF)).await.unwrap()
        }));
    }
    let mut decided = 0;
    for t in tasks {
        if t.await.unwrap() == ReviewOutcome::Decided {
            decided += 1;
        }
    }
    assert_eq!(decided, 1);
    assert_eq!(store.get_account(b.id).await.unwrap().unwrap().as_level, AsLevel::As2, "a rejection keeps the level");
    assert_eq!(
        kinds(&store).await,
        vec![
            "account.created",
            "review.submitted",
            "account.level_raised",
            "account.created",
            "review.submitted",
            "review.rejected"
        ]
    );
}

async fn approval_needs_the_same_account_state(store: DynStore) {
    // The level moved on meanwhile (e.g. verified at a counter): nothing written, still pending.
    let a = citizen(&store, "binh", "h-binh").await;
    let r = request(&a, T0);
    submit(&store, &r).await;
    let (d, e) = approval(&r, &a, T0 + 10);
    let counter =
        EvidenceRecord { id: Uuid::now_v7(), to_level: AsLevel::As4, method: "in_person".into(), ..e.clone() };
    assert!(store.change_level(&counter, None, &AuditEvent::new(T0 + 5, "account.level_raised", STAFF)).await.unwrap());
    let outcome = store.decide_review(&d, Some(&e), &AuditEvent::new(T0 + 10, "account.level_raised", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::AccountChanged);
    assert_eq!(store.get_review_request(r.id).await.unwrap().unwrap().0.status, ReviewStatus::Pending);
    assert_eq!(store.get_account(a.id).await.unwrap().unwrap().as_level, AsLevel::As4);
    assert_eq!(store.list_evidence(a.id).await.unwrap(), vec![counter]);

    // The declared ID number changed since the photos were sent: nothing written.
    let b = citizen(&store, "an", "h-an").await;
    let rb = request(&b, T0);
    submit(&store, &rb).await;
    let at = AuditEvent::new(T0 + 20, "account.identity_declared", "self");
    store.update_identity(b.id, &identity("h-an-other"), AsLevel::As2, T0 + 20, &at).await.unwrap();
    let (d, e) = approval(&rb, &b, T0 + 30);
    let outcome = store.decide_review(&d, Some(&e), &AuditEvent::new(T0 + 30, "account.level_raised", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::AccountChanged);
    assert_eq!(store.get_account(b.id).await.unwrap().unwrap().as_level, AsLevel::As2);
    assert!(store.list_evidence(b.id).await.unwrap().is_empty());
    // It can still be rejected.
    let outcome =
        store.decide_review(&rejection(&rb, T0 + 40), None, &AuditEvent::new(T0 + 40, "review.rejected", STAFF)).await;
    assert_eq!(outcome.unwrap(), ReviewOutcome::Decided);
    let events = kinds(&store).await;
    assert_eq!(events.iter().filter(|k| *k == "account.level_raised").count(), 1, "{events:?}");
}
