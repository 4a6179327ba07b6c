//! The `Store` contract (src/store/mod.rs), written once and run against both backends: SQLite
//! in a temp dir, and a fresh PostgreSQL database when `XACTHUC_TEST_POSTGRES_URL` is set (the
//! PostgreSQL half prints a line and passes when it is unset). Every group gets its own
//! database, so audit sequence numbers and counts are exact.
//!
//! Tests are `store_contract::on_sqlite::<group>` and `store_contract::on_postgres::<group>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Barrier;
use uuid::Uuid;
use xacthuc::assurance::{AsLevel, Method, VerifiedFactor};
use xacthuc::audit::{AuditEvent, GENESIS_HASH, StoredAuditEvent, verify_chain};
use xacthuc::store::{
    AccessTokenRecord, Account, AccountStatus, AuthCodeRecord, ClientKind, ClientRecord, CodeData, Conflict,
    ConsumedCode, DynStore, GrantAuth, GrantRecord, IdentityData, PendingAuthorization, SessionRecord,
    SigningKeyRecord, Store, StoreError, connect,
};

/// A fixed "now" (2025-06-15); the store never reads the clock.
const T0: i64 = 1_750_000_000;

// ---------------------------------------------------------------------------------------------
// Harness: one database per group and backend.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

struct Backend {
    kind: Kind,
    url: String,
    store: DynStore,
}

impl Backend {
    /// Runs raw SQL on the same database behind the store's back (to tamper with it).
    async fn raw(&self, statements: &[&'static str]) {
        use sqlx::Connection;
        match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                for sql in statements {
                    sqlx::query(*sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                conn.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                for sql in statements {
                    sqlx::query(*sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                conn.close().await.unwrap();
            }
        }
    }
}

async fn run_sqlite<F, Fut>(group: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = connect(&url).await.unwrap();
    group(Backend { kind: Kind::Sqlite, url, store }).await;
}

async fn run_postgres<F, Fut>(name: &str, group: F)
where
    F: FnOnce(Backend) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = common::PgDatabase::create().await else {
        println!("store_contract::{name}: {} is unset; the PostgreSQL half was not run", common::POSTGRES_ENV);
        return;
    };
    let url = db.url.clone();
    // In its own task so that a failed assertion still reaches `cleanup`.
    let outcome = tokio::spawn(async move {
        let store = connect(&url).await.unwrap();
        group(Backend { kind: Kind::Postgres, url, store }).await;
    })
    .await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// One test per group and backend. `store` groups take `&dyn Store`; `backend` groups take
/// `&Backend` (they need an `Arc` to spawn with, or raw SQL).
macro_rules! on_both_backends {
    (@arg store $b:ident) => { $b.store.as_ref() };
    (@arg backend $b:ident) => { &$b };
    ($($group:ident($arg:ident)),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    super::run_sqlite(|b| async move { super::$group(on_both_backends!(@arg $arg b)).await }).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    super::run_postgres(stringify!($group), |b| async move {
                        super::$group(on_both_backends!(@arg $arg b)).await
                    })
                    .await;
                }
            )*
        }
    };
}

on_both_backends! {
    accounts(store),
    clients(store),
    signing_keys(store),
    sessions(store),
    pending_authorizations(store),
    codes(store),
    codes_concurrent(backend),
    access_tokens_and_revocation(store),
    audit_chain(store),
    audit_concurrent(backend),
    audit_tampering(backend),
    migrations_idempotent(backend),
    purge_expired(store),
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// An event whose details exercise the JSON round trip (PostgreSQL stores them as JSONB, which
/// reorders keys and reformats): nested values, non-ASCII text, keys of different lengths.
fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(T0, kind, "system")
        .detail("national_id", "001******789")
        .detail("ghi_chú", "Đăng nhập — Nguyễn Thị Bình \"quoted\" \\ /")
        .detail("n", 3)
        .detail("big", i64::MAX)
        .detail("neg", -42)
        .detail("ratio", 0.25)
        .detail("score", 985.6906946328695)
        .detail("tiny", 1.0715660391465826e-75)
        .detail("nested", json!({"zeta": [1, "hai", {"ba": null}], "a": true, "empty": {}}))
}

fn identity(hash: &str) -> IdentityData {
    IdentityData {
        full_name: "Nguyễn Thị Bình".into(),
        birth_date: "1990-02-28".into(),
        sex: "female".into(),
        national_id_enc: format!("sealed:{hash}"),
        national_id_hash: hash.into(),
        national_id_masked: "001******789".into(),
    }
}

fn account(username: &str, identity: Option<IdentityData>, as_level: AsLevel) -> Account {
    Account {
        id: Uuid::new_v4(),
        username: username.into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        as_level,
        email: Some(format!("{username}@example.vn")),
        phone: None,
        identity,
        status: AccountStatus::Active,
        created_at: T0,
        updated_at: T0,
    }
}

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        id: id.into(),
        name: format!("Cổng dịch vụ công {id}"),
        kind: ClientKind::Confidential,
        secret_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$c2VjcmV0".into()),
        redirect_uris: vec![format!("https://{id}.example.vn/cb"), format!("https://{id}.example.vn/cb?x=1&y=2")],
        id_token_alg: "PS256".into(),
        settings: Default::default(),
        created_at: T0,
    }
}

/// An account and a client for grants to point at.
async fn seed(store: &dyn Store) -> (Account, ClientRecord) {
    let a = account(&format!("citizen-{}", Uuid::new_v4().simple()), None, AsLevel::As1);
    store.create_account(&a, &event("account.created").account(a.id)).await.unwrap();
    let c = client(&format!("portal-{}", Uuid::new_v4().simple()));
    store.create_client(&c, &event("client.created").client(&c.id)).await.unwrap();
    (a, c)
}

fn grant(account: &Account, client: &ClientRecord) -> GrantRecord {
    GrantRecord {
        id: Uuid::new_v4(),
        client_id: client.id.clone(),
        account_id: Some(account.id),
        session_id: Some(Uuid::new_v4()),
        scope: "openid profile national_id".into(),
        auth: Some(GrantAuth {
            acr: "urn:xacthuc:loa:as2:2fa".into(),
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
            auth_time: T0 - 5,
            as_level: 2,
            mechanism: "2fa".into(),
        }),
        created_at: T0,
        expires_at: T0 + 86_400,
        revoked_at: None,
    }
}

fn code(hash: &str, grant: &GrantRecord) -> AuthCodeRecord {
    AuthCodeRecord {
        code_hash: hash.into(),
        grant_id: grant.id,
        data: CodeData {
            redirect_uri: "https://portal.example.vn/cb?x=1".into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        },
        created_at: T0,
        expires_at: T0 + 60,
        used_at: None,
    }
}

async fn audit_all(store: &dyn Store) -> Vec<StoredAuditEvent> {
    store.list_audit(1, 1_000_000).await.unwrap()
}

async fn audit_len(store: &dyn Store) -> usize {
    audit_all(store).await.len()
}

/// The last write appended exactly `expected` (as the `before + 1`-th event).
async fn assert_audited(store: &dyn Store, before: usize, expected: &AuditEvent) {
    let all = audit_all(store).await;
    assert_eq!(all.len(), before + 1, "expected exactly one new audit event {:?}", expected.kind);
    assert_eq!(&all[before].event, expected, "the audit event comes back as written");
}

fn is_conflict(result: Result<(), StoreError>, which: Conflict) -> bool {
    matches!(result, Err(StoreError::Conflict(c)) if c == which)
}

// ---------------------------------------------------------------------------------------------
// Accounts.

async fn accounts(store: &dyn Store) {
    assert_eq!(audit_len(store).await, 0, "a fresh database has an empty audit log");

    // Create / get / find.
    let plain = account("an.nguyen", None, AsLevel::As1);
    let e = event("account.created").account(plain.id);
    store.create_account(&plain, &e).await.unwrap();
    assert_audited(store, 0, &e).await;
    assert_eq!(store.get_account(plain.id).await.unwrap(), Some(plain.clone()));
    assert_eq!(store.find_account_by_username("an.nguyen").await.unwrap(), Some(plain.clone()));

    let declared = account("binh.tran", Some(identity("nid-hash-binh")), AsLevel::As2);
    store.create_account(&declared, &event("account.created").account(declared.id)).await.unwrap();
    assert_eq!(store.get_account(declared.id).await.unwrap(), Some(declared.clone()));
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-binh").await.unwrap(), Some(declared.clone()));
    assert_eq!(store.find_account_by_username("binh.tran").await.unwrap(), Some(declared.clone()));

    assert_eq!(store.get_account(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.find_account_by_username("nobody").await.unwrap(), None);
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-nobody").await.unwrap(), None);

    // A taken user name: Conflict(Username), and nothing written, not even the audit event.
    let before = audit_len(store).await;
    let dup_name = account("an.nguyen", Some(identity("nid-hash-fresh")), AsLevel::As2);
    let r = store.create_account(&dup_name, &event("account.created").account(dup_name.id)).await;
    assert!(is_conflict(r, Conflict::Username), "duplicate user name");
    assert_eq!(audit_len(store).await, before, "a failed create_account appends no audit event");
    assert_eq!(store.get_account(dup_name.id).await.unwrap(), None);
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-fresh").await.unwrap(), None);
    assert_eq!(store.find_account_by_username("an.nguyen").await.unwrap(), Some(plain.clone()));

    // A taken national ID: Conflict(NationalId), and nothing written.
    let dup_id = account("chi.le", Some(identity("nid-hash-binh")), AsLevel::As2);
    let r = store.create_account(&dup_id, &event("account.created").account(dup_id.id)).await;
    assert!(is_conflict(r, Conflict::NationalId), "duplicate national ID");
    assert_eq!(audit_len(store).await, before, "a failed create_account appends no audit event");
    assert_eq!(store.get_account(dup_id.id).await.unwrap(), None);
    assert_eq!(store.find_account_by_username("chi.le").await.unwrap(), None);
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-binh").await.unwrap(), Some(declared.clone()));

    // update_identity sets the identity and raises the level.
    let verified = identity("nid-hash-an");
    let e = event("account.level_raised").account(plain.id);
    store.update_identity(plain.id, &verified, AsLevel::As3, T0 + 100, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    let raised =
        Account { identity: Some(verified.clone()), as_level: AsLevel::As3, updated_at: T0 + 100, ..plain.clone() };
    assert_eq!(store.get_account(plain.id).await.unwrap(), Some(raised.clone()));
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-an").await.unwrap(), Some(raised.clone()));

    // The number the account already holds is not "held by another account".
    store.update_identity(plain.id, &verified, AsLevel::As4, T0 + 110, &event("account.level_raised")).await.unwrap();
    let raised = Account { as_level: AsLevel::As4, updated_at: T0 + 110, ..raised };
    assert_eq!(store.get_account(plain.id).await.unwrap(), Some(raised.clone()));

    // Another account holds the number: Conflict(NationalId), nothing changed or appended.
    let before = audit_len(store).await;
    let r = store
        .update_identity(plain.id, &identity("nid-hash-binh"), AsLevel::As4, T0 + 120, &event("account.level_raised"))
        .await;
    assert!(is_conflict(r, Conflict::NationalId), "update_identity onto another account's number");
    assert_eq!(audit_len(store).await, before, "a failed update_identity appends no audit event");
    assert_eq!(store.get_account(plain.id).await.unwrap(), Some(raised.clone()));
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-binh").await.unwrap(), Some(declared.clone()));

    // Unknown account: NotFound, nothing appended.
    let r =
        store.update_identity(Uuid::new_v4(), &identity("nid-hash-ghost"), AsLevel::As2, T0 + 130, &event("x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "update_identity of an unknown account: {r:?}");
    assert_eq!(audit_len(store).await, before, "a failed update_identity appends no audit event");
    assert_eq!(store.find_account_by_national_id_hash("nid-hash-ghost").await.unwrap(), None);

    // update_password_hash replaces the hash and nothing else.
    let new_hash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaA";
    store.update_password_hash(plain.id, new_hash, T0 + 140).await.unwrap();
    let rehashed = Account { password_hash: Some(new_hash.into()), updated_at: T0 + 140, ..raised };
    assert_eq!(store.get_account(plain.id).await.unwrap(), Some(rehashed));
    assert_eq!(store.get_account(declared.id).await.unwrap(), Some(declared), "other accounts untouched");
}

// ---------------------------------------------------------------------------------------------
// Clients and signing keys.

async fn clients(store: &dyn Store) {
    assert_eq!(store.list_clients().await.unwrap(), vec![]);
    let confidential = client("dvc-hanoi");
    let public = ClientRecord {
        kind: ClientKind::Public,
        secret_hash: None,
        redirect_uris: vec!["vn.gov.app:/oauth/cb".into()],
        id_token_alg: "ES256".into(),
        ..client("app-mobile")
    };
    for c in [&confidential, &public] {
        let before = audit_len(store).await;
        let e = event("client.created").client(&c.id);
        store.create_client(c, &e).await.unwrap();
        assert_audited(store, before, &e).await;
    }
    assert_eq!(store.get_client("dvc-hanoi").await.unwrap(), Some(confidential.clone()));
    assert_eq!(store.get_client("app-mobile").await.unwrap(), Some(public.clone()));
    assert_eq!(store.get_client("unknown").await.unwrap(), None);

    let mut listed = store.list_clients().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, vec![public.clone(), confidential.clone()]);

    // A taken id: Conflict(ClientId), nothing written.
    let before = audit_len(store).await;
    let impostor = ClientRecord {
        name: "Impostor".into(),
        redirect_uris: vec!["https://evil.example/cb".into()],
        ..confidential.clone()
    };
    let r = store.create_client(&impostor, &event("client.created")).await;
    assert!(is_conflict(r, Conflict::ClientId), "duplicate client id");
    assert_eq!(audit_len(store).await, before, "a failed create_client appends no audit event");
    assert_eq!(store.get_client("dvc-hanoi").await.unwrap(), Some(confidential));
    assert_eq!(store.list_clients().await.unwrap().len(), 2);
}

async fn signing_keys(store: &dyn Store) {
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![]);
    let key = |kid: &str, created_at: i64, retired_at: Option<i64>| SigningKeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        private_key_enc: format!("sealed-pkcs8:{kid}"),
        created_at,
        activates_at: created_at + 60,
        retired_at,
    };
    let old = key("k-old", T0 - 2000, Some(T0 - 10));
    let mid = key("k-mid", T0 - 1000, None);
    let new = SigningKeyRecord { alg: "PS256".into(), ..key("k-new", T0, None) };
    // Inserted out of order: the list is by age, not by insertion.
    for k in [&new, &old, &mid] {
        let before = audit_len(store).await;
        let e = event("key.created").detail("kid", &k.kid);
        store.create_signing_key(k, &e).await.unwrap();
        assert_audited(store, before, &e).await;
    }
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![old, mid, new], "oldest first, retired included");
}

// ---------------------------------------------------------------------------------------------
// Sessions and pending authorizations.

async fn sessions(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let session = SessionRecord {
        id: Uuid::new_v4(),
        token_hash: "session-hash-1".into(),
        account_id: citizen.id,
        factors: vec![
            VerifiedFactor { method: Method::Password, at: T0 - 30 },
            VerifiedFactor { method: Method::WebAuthn { user_verified: true }, at: T0 - 10 },
            VerifiedFactor { method: Method::Certificate { hardware: false }, at: T0 },
        ],
        created_at: T0 - 30,
        expires_at: T0 + 3600,
    };
    let before = audit_len(store).await;
    let e = event("login.succeeded").account(citizen.id);
    store.create_session(&session, &e).await.unwrap();
    assert_audited(store, before, &e).await;

    // Found while `expires_at > now`, not at or after it.
    assert_eq!(store.find_session("session-hash-1", T0).await.unwrap(), Some(session.clone()));
    assert_eq!(store.find_session("session-hash-1", T0 + 3599).await.unwrap(), Some(session.clone()));
    assert_eq!(store.find_session("session-hash-1", T0 + 3600).await.unwrap(), None, "expires_at == now");
    assert_eq!(store.find_session("session-hash-1", T0 + 9999).await.unwrap(), None);
    assert_eq!(store.find_session("session-hash-unknown", T0).await.unwrap(), None);

    let expired = SessionRecord {
        id: Uuid::new_v4(),
        token_hash: "session-hash-expired".into(),
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 - 7200 }],
        created_at: T0 - 7200,
        expires_at: T0 - 3600,
        ..session.clone()
    };
    store.create_session(&expired, &event("login.succeeded")).await.unwrap();
    assert_eq!(store.find_session("session-hash-expired", T0).await.unwrap(), None);

    // Sign-out: true (audited) once, then false (nothing to record).
    let before = audit_len(store).await;
    let e = event("logout").account(citizen.id);
    assert!(store.delete_session("session-hash-1", T0, &e).await.unwrap());
    assert_audited(store, before, &e).await;
    assert_eq!(store.find_session("session-hash-1", T0).await.unwrap(), None);
    assert!(!store.delete_session("session-hash-1", T0, &event("logout")).await.unwrap());
    assert!(!store.delete_session("session-hash-unknown", T0, &event("logout")).await.unwrap());
    assert_eq!(audit_len(store).await, before + 1, "deleting no session appends no audit event");
    // Only that session went.
    assert_eq!(store.find_session("session-hash-expired", T0 - 7200).await.unwrap(), Some(expired));
}

async fn pending_authorizations(store: &dyn Store) {
    let pending = |id_hash: &str| PendingAuthorization {
        id_hash: id_hash.into(),
        request_json: json!({"client_id": "dvc-hanoi", "scope": "openid", "state": "xyz ✓"}).to_string(),
        created_at: T0,
        expires_at: T0 + 600,
    };
    let first = pending("pending-1");
    let second = pending("pending-2");
    store.create_pending_authorization(&first).await.unwrap();
    store.create_pending_authorization(&second).await.unwrap();

    assert_eq!(store.find_pending_authorization("pending-1", T0).await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_pending_authorization("pending-1", T0 + 599).await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_pending_authorization("pending-1", T0 + 600).await.unwrap(), None, "expired");
    assert_eq!(store.find_pending_authorization("pending-unknown", T0).await.unwrap(), None);

    store.delete_pending_authorization("pending-1").await.unwrap();
    assert_eq!(store.find_pending_authorization("pending-1", T0).await.unwrap(), None);
    assert_eq!(store.find_pending_authorization("pending-2", T0).await.unwrap(), Some(second), "only that one");
    store.delete_pending_authorization("pending-1").await.unwrap();
    store.delete_pending_authorization("pending-unknown").await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Authorization codes.

async fn codes(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let g = grant(&citizen, &portal);
    let c = code("code-hash-1", &g);
    store.create_grant_with_code(&g, &c).await.unwrap();

    // Fresh once, marked used at `now`, with its grant.
    let spent = AuthCodeRecord { used_at: Some(T0 + 5), ..c.clone() };
    assert_eq!(
        store.consume_auth_code("code-hash-1", T0 + 5).await.unwrap(),
        ConsumedCode::Fresh(spent.clone(), g.clone())
    );
    // Then AlreadyUsed, with the grant (to revoke) and the first use time kept.
    for now in [T0 + 6, T0 + 7] {
        assert_eq!(
            store.consume_auth_code("code-hash-1", now).await.unwrap(),
            ConsumedCode::AlreadyUsed(spent.clone(), g.clone())
        );
    }
    assert_eq!(store.consume_auth_code("code-hash-unknown", T0).await.unwrap(), ConsumedCode::NotFound);

    // Expiry is the caller's check: an expired code is still Fresh, carrying its expires_at.
    let g2 = grant(&citizen, &portal);
    let expired = AuthCodeRecord { created_at: T0 - 120, expires_at: T0 - 60, ..code("code-hash-expired", &g2) };
    store.create_grant_with_code(&g2, &expired).await.unwrap();
    assert_eq!(
        store.consume_auth_code("code-hash-expired", T0).await.unwrap(),
        ConsumedCode::Fresh(AuthCodeRecord { used_at: Some(T0), ..expired }, g2)
    );

    // Grant and code are created together: when the code cannot be stored, no grant is left
    // behind (storing the same grant again with another code then succeeds).
    let g3 = grant(&citizen, &portal);
    let clash = code("code-hash-1", &g3);
    assert!(store.create_grant_with_code(&g3, &clash).await.is_err(), "duplicate code hash");
    let c3 = code("code-hash-3", &g3);
    store.create_grant_with_code(&g3, &c3).await.expect("the failed call left no grant behind");
    assert_eq!(
        store.consume_auth_code("code-hash-3", T0 + 1).await.unwrap(),
        ConsumedCode::Fresh(AuthCodeRecord { used_at: Some(T0 + 1), ..c3 }, g3)
    );
    // The clash did not touch the existing code either.
    assert_eq!(store.consume_auth_code("code-hash-1", T0 + 9).await.unwrap(), ConsumedCode::AlreadyUsed(spent, g));
}

/// Exactly one of several concurrent consumers gets `Fresh`; all others `AlreadyUsed`, seeing
/// the winner's `used_at`.
async fn codes_concurrent(b: &Backend) {
    const CONSUMERS: i64 = 8;
    let (citizen, portal) = seed(b.store.as_ref()).await;
    for round in 0..4 {
        let g = grant(&citizen, &portal);
        let hash = format!("race-{round}");
        b.store.create_grant_with_code(&g, &code(&hash, &g)).await.unwrap();
        let barrier = Arc::new(Barrier::new(CONSUMERS as usize));
        let tasks: Vec<_> = (0..CONSUMERS)
            .map(|i| {
                let (store, barrier, hash) = (b.store.clone(), barrier.clone(), hash.clone());
                // Each consumer uses its own `now`, so the winner is identifiable.
                let now = T0 + 10 + i;
                tokio::spawn(async move {
                    barrier.wait().await;
                    (now, store.consume_auth_code(&hash, now).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (now, ConsumedCode::Fresh(c, got)) => {
                    assert_eq!(c.used_at, Some(now));
                    assert_eq!(got, g);
                    winners.push(now);
                }
                (_, ConsumedCode::AlreadyUsed(c, got)) => {
                    assert_eq!(got, g);
                    losers.push(c.used_at);
                }
                (_, ConsumedCode::NotFound) => panic!("round {round}: code not found"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one Fresh, got {winners:?}");
        assert_eq!(losers.len(), CONSUMERS as usize - 1);
        assert!(
            losers.iter().all(|u| *u == Some(winners[0])),
            "round {round}: every AlreadyUsed sees the winner's used_at {}: {losers:?}",
            winners[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Access tokens and revocation.

async fn access_tokens_and_revocation(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let ga = grant(&citizen, &portal);
    let gb = grant(&citizen, &portal);
    store.create_grant_with_code(&ga, &code("code-a", &ga)).await.unwrap();
    store.create_grant_with_code(&gb, &code("code-b", &gb)).await.unwrap();
    let token = |hash: &str, g: &GrantRecord, expires_at: i64| AccessTokenRecord {
        token_hash: hash.into(),
        grant_id: g.id,
        scope: "openid profile".into(),
        created_at: T0,
        expires_at,
    };
    let a1 = token("token-a-1", &ga, T0 + 300);
    let a2 = token("token-a-2", &ga, T0 - 1);
    let b1 = token("token-b-1", &gb, T0 + 300);
    for t in [&a1, &a2, &b1] {
        store.create_access_token(t).await.unwrap();
    }

    assert_eq!(store.find_access_token("token-a-1").await.unwrap(), Some((a1.clone(), ga.clone())));
    // Expired tokens are returned too: the caller decides.
    assert_eq!(store.find_access_token("token-a-2").await.unwrap(), Some((a2.clone(), ga.clone())));
    assert_eq!(store.find_access_token("token-unknown").await.unwrap(), None);

    // Revoking grant A marks it revoked for every token and code of it.
    let before = audit_len(store).await;
    let e = event("grant.revoked").account(citizen.id).client(&portal.id);
    store.revoke_grant(ga.id, T0 + 50, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    let revoked = GrantRecord { revoked_at: Some(T0 + 50), ..ga.clone() };
    assert_eq!(store.find_access_token("token-a-1").await.unwrap(), Some((a1.clone(), revoked.clone())));
    assert_eq!(store.find_access_token("token-a-2").await.unwrap(), Some((a2, revoked.clone())));
    match store.consume_auth_code("code-a", T0 + 60).await.unwrap() {
        ConsumedCode::Fresh(_, g) | ConsumedCode::AlreadyUsed(_, g) => assert_eq!(g, revoked, "the code's grant"),
        ConsumedCode::NotFound => panic!("code of a revoked grant vanished"),
    }

    // Grant B is untouched.
    assert_eq!(store.find_access_token("token-b-1").await.unwrap(), Some((b1, gb.clone())));
    match store.consume_auth_code("code-b", T0 + 60).await.unwrap() {
        ConsumedCode::Fresh(_, g) => assert_eq!(g, gb),
        other => panic!("code of grant B: {other:?}"),
    }

    // Idempotent: a second revocation succeeds and keeps the first revocation time.
    store.revoke_grant(ga.id, T0 + 90, &event("grant.revoked")).await.unwrap();
    assert_eq!(
        store.find_access_token("token-a-1").await.unwrap(),
        Some((a1, revoked)),
        "a second revoke_grant keeps the first revoked_at"
    );
}

// ---------------------------------------------------------------------------------------------
// The audit chain.

/// Every audited write, in order; the chain holds exactly their events, in that order, seq
/// 1..n, and verifies.
async fn audit_chain(store: &dyn Store) {
    assert_eq!(audit_all(store).await, vec![]);
    assert_eq!(verify_chain(&[]), Ok(()));
    let mut expected = Vec::new();

    let a = account("chain.citizen", None, AsLevel::As1);
    let e = event("account.created").account(a.id);
    store.create_account(&a, &e).await.unwrap();
    expected.push(e);

    let c = client("chain-portal");
    let e = event("client.created").client(&c.id);
    store.create_client(&c, &e).await.unwrap();
    expected.push(e);

    let k = SigningKeyRecord {
        kid: "k1".into(),
        alg: "ES256".into(),
        private_key_enc: "sealed".into(),
        created_at: T0,
        activates_at: T0,
        retired_at: None,
    };
    let e = event("key.created");
    store.create_signing_key(&k, &e).await.unwrap();
    expected.push(e);

    let e = AuditEvent::new(T0 + 1, "login.failed", "anonymous").detail("method", "password");
    store.append_audit(&e).await.unwrap();
    expected.push(e);

    let s = SessionRecord {
        id: Uuid::new_v4(),
        token_hash: "chain-session".into(),
        account_id: a.id,
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 + 2 }],
        created_at: T0 + 2,
        expires_at: T0 + 3600,
    };
    let e = event("login.succeeded").account(a.id);
    store.create_session(&s, &e).await.unwrap();
    expected.push(e);

    let e = event("account.level_raised").account(a.id);
    store.update_identity(a.id, &identity("chain-nid"), AsLevel::As2, T0 + 3, &e).await.unwrap();
    expected.push(e);

    // Failed writes leave no trace in the chain.
    let r = store.create_account(&account("chain.citizen", None, AsLevel::As1), &event("account.created")).await;
    assert!(is_conflict(r, Conflict::Username));
    let r = store.create_client(&c, &event("client.created")).await;
    assert!(is_conflict(r, Conflict::ClientId));

    let g = grant(&a, &c);
    store.create_grant_with_code(&g, &code("chain-code", &g)).await.unwrap();
    let e = AuditEvent::new(T0 + 4, "token.code_replayed", format!("client:{}", c.id)).client(&c.id).account(a.id);
    store.revoke_grant(g.id, T0 + 4, &e).await.unwrap();
    expected.push(e);

    let e = event("logout").account(a.id);
    assert!(store.delete_session("chain-session", T0, &e).await.unwrap());
    expected.push(e);

    let e = AuditEvent::new(T0 + 5, "login.failed", "anonymous");
    store.append_audit(&e).await.unwrap();
    expected.push(e);

    let all = audit_all(store).await;
    let n = expected.len() as i64;
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "seq 1..n without gaps");
    assert_eq!(all.iter().map(|s| s.event.clone()).collect::<Vec<_>>(), expected, "events as written, in order");
    assert_eq!(all[0].prev_hash, GENESIS_HASH);
    assert_eq!(verify_chain(&all), Ok(()));

    // Paging: from `from_seq` on, at most `limit`.
    let page = store.list_audit(3, 4).await.unwrap();
    assert_eq!(page.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert_eq!(page, all[2..6].to_vec());
    assert_eq!(store.list_audit(n, 10).await.unwrap(), all[all.len() - 1..].to_vec());
    assert_eq!(store.list_audit(n + 1, 10).await.unwrap(), vec![]);
    assert_eq!(store.list_audit(1, 0).await.unwrap(), vec![]);
}

/// Concurrent appends, standalone and inside other writes, still form one valid chain.
async fn audit_concurrent(b: &Backend) {
    const APPENDS: usize = 20;
    const ACCOUNTS: usize = 5;
    let barrier = Arc::new(Barrier::new(APPENDS + ACCOUNTS));
    let mut tasks = Vec::new();
    let mut kinds = BTreeSet::new();
    for i in 0..APPENDS {
        let (store, barrier) = (b.store.clone(), barrier.clone());
        let e = event(&format!("concurrent.append.{i}"));
        kinds.insert(e.kind.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.append_audit(&e).await.unwrap();
        }));
    }
    for i in 0..ACCOUNTS {
        let (store, barrier) = (b.store.clone(), barrier.clone());
        let a = account(&format!("racer{i}"), None, AsLevel::As1);
        let e = event(&format!("concurrent.account.{i}")).account(a.id);
        kinds.insert(e.kind.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.create_account(&a, &e).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = audit_all(b.store.as_ref()).await;
    let n = (APPENDS + ACCOUNTS) as i64;
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "seq 1..n without gaps");
    assert_eq!(verify_chain(&all), Ok(()));
    assert_eq!(all.iter().map(|s| s.event.kind.clone()).collect::<BTreeSet<_>>(), kinds, "every event, once");
}

/// Edits made behind the store's back are found by `verify_chain`, at the first bad seq. Each
/// tamper is earlier in the chain than the last, so the reported seq moves back each time.
async fn audit_tampering(b: &Backend) {
    let store = b.store.as_ref();
    seed(store).await;
    for i in 0..8 {
        store.append_audit(&event(&format!("tamper.target.{i}"))).await.unwrap();
    }
    let all = audit_all(store).await;
    assert_eq!(all.len(), 10);
    assert_eq!(verify_chain(&all), Ok(()));

    b.raw(&[r#"UPDATE audit_events SET details = '{"forged": true}' WHERE seq = 9"#]).await;
    assert_eq!(verify_chain(&audit_all(store).await), Err(9), "details edited");

    b.raw(&["UPDATE audit_events SET kind = 'login.succeeded' WHERE seq = 8"]).await;
    assert_eq!(verify_chain(&audit_all(store).await), Err(8), "kind edited");

    b.raw(&["UPDATE audit_events SET at = at + 1 WHERE seq = 7"]).await;
    assert_eq!(verify_chain(&audit_all(store).await), Err(7), "time edited");

    b.raw(&[
        "UPDATE audit_events SET seq = -5 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -5",
    ])
    .await;
    assert_eq!(verify_chain(&audit_all(store).await), Err(5), "rows 5 and 6 swapped");

    b.raw(&["DELETE FROM audit_events WHERE seq = 3"]).await;
    let all = audit_all(store).await;
    assert_eq!(all.len(), 9);
    assert_eq!(verify_chain(&all), Err(4), "row 3 deleted: 4 is where 3 should be");
}

// ---------------------------------------------------------------------------------------------
// Migrations.

/// `connect` runs the migrations; running them again on a migrated database is a no-op, and
/// both handles see one database.
async fn migrations_idempotent(b: &Backend) {
    let again = connect(&b.url).await.expect("second connect on a migrated database");
    let third = connect(&b.url).await.expect("third connect on a migrated database");
    b.store.ping().await.unwrap();
    again.ping().await.unwrap();
    third.ping().await.unwrap();

    let c = client("migrated");
    b.store.create_client(&c, &event("client.created")).await.unwrap();
    assert_eq!(again.get_client("migrated").await.unwrap(), Some(c));
    again.append_audit(&event("via.second.handle")).await.unwrap();
    let all = audit_all(third.as_ref()).await;
    assert_eq!(all.len(), 2);
    assert_eq!(verify_chain(&all), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Housekeeping.

/// Expired sessions, requests and tokens go; codes stay a day past expiry (replay detection);
/// everything still usable stays.
async fn purge_expired(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let session = |hash: &str, expires_at: i64| SessionRecord {
        id: Uuid::new_v4(),
        token_hash: hash.into(),
        account_id: citizen.id,
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 }],
        created_at: T0 - 7200,
        expires_at,
    };
    for s in [session("live", T0 + 60), session("dead", T0)] {
        store.create_session(&s, &event("login.succeeded")).await.unwrap();
    }
    let pending = |h: &str, expires_at: i64| PendingAuthorization {
        id_hash: h.into(),
        request_json: "{}".into(),
        created_at: T0 - 10,
        expires_at,
    };
    store.create_pending_authorization(&pending("p-live", T0 + 60)).await.unwrap();
    store.create_pending_authorization(&pending("p-dead", T0 - 1)).await.unwrap();
    let g = grant(&citizen, &portal);
    let recent = AuthCodeRecord { expires_at: T0 - 3600, ..code("code-recent", &g) };
    store.create_grant_with_code(&g, &recent).await.unwrap();
    let g2 = grant(&citizen, &portal);
    let old = AuthCodeRecord { expires_at: T0 - 2 * 86_400, ..code("code-old", &g2) };
    store.create_grant_with_code(&g2, &old).await.unwrap();
    for (hash, expires_at) in [("at-live", T0 + 60), ("at-dead", T0 - 60)] {
        let t = AccessTokenRecord {
            token_hash: hash.into(),
            grant_id: g.id,
            scope: "openid".into(),
            created_at: T0 - 600,
            expires_at,
        };
        store.create_access_token(&t).await.unwrap();
    }

    let deleted = store.purge_expired(T0).await.unwrap();
    assert_eq!(deleted, 4, "dead session, dead pending request, dead token, old code");
    assert!(store.find_session("live", T0).await.unwrap().is_some());
    assert!(store.find_session("dead", T0 - 10).await.unwrap().is_none());
    assert!(store.find_pending_authorization("p-live", T0).await.unwrap().is_some());
    assert!(store.find_pending_authorization("p-dead", T0 - 100).await.unwrap().is_none());
    assert!(store.find_access_token("at-live").await.unwrap().is_some());
    assert!(store.find_access_token("at-dead").await.unwrap().is_none());
    assert!(matches!(store.consume_auth_code("code-recent", T0).await.unwrap(), ConsumedCode::Fresh(..)));
    assert_eq!(store.consume_auth_code("code-old", T0).await.unwrap(), ConsumedCode::NotFound);
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "idempotent");
}
