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
    AccessTokenFormat, AccessTokenRecord, Account, AccountStatus, AuthCodeRecord, ClientKind, ClientRecord,
    ClientSettings, CodeData, Conflict, ConsumedCode, ConsumedRefresh, DynStore, GrantAuth, GrantRecord, IdentityData,
    LogoutDelivery, OtpChallenge, OutboxMessage, PendingAuthorization, PushedRequest, RefreshTokenRecord,
    SessionRecord, SigningKeyRecord, Store, StoreError, TokenAuthMethod, TotpCredential, connect,
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

    /// Runs a `SELECT COUNT(*) …` on the same database behind the store's back (to see rows no
    /// store method returns).
    async fn count(&self, sql: String) -> i64 {
        use sqlx::Connection;
        match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let n = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                conn.close().await.unwrap();
                n
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let n = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                conn.close().await.unwrap();
                n
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
    client_update(store),
    client_delete(store),
    signing_key_retirement(store),
    session_grants(store),
    session_logout_concurrent(backend),
    grants(store),
    refresh_tokens(store),
    refresh_tokens_concurrent(backend),
    access_token_deletion(store),
    client_assertions(store),
    client_assertions_concurrent(backend),
    pushed_requests(backend),
    logout_deliveries(backend),
    purge_expired_issued(backend),
    logout_delivery_claims(backend),
    failure_counting(backend),
    totp_rename_and_outbox(store),
    always_second_factor(store),
    totp_credentials(store),
    totp_steps_concurrent(backend),
    recovery_codes(store),
    recovery_codes_concurrent(backend),
    session_step_up(store),
    session_step_up_concurrent(backend),
    purge_totp_enrolments(store),
    otp_challenges(store),
    otp_attempts(store),
    otp_attempts_concurrent(backend),
    otp_consumption(store),
    otp_consumption_concurrent(backend),
    contact_verification(backend),
    purge_otp_challenges(store),
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
        email_verified_at: None,
        phone_verified_at: None,
        identity,
        status: AccountStatus::Active,
        always_second_factor: false,
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
            authorization_details: None,
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

/// A client_credentials grant: the client alone, no account, session or authentication.
fn client_credentials_grant(client: &ClientRecord) -> GrantRecord {
    GrantRecord {
        id: Uuid::new_v4(),
        client_id: client.id.clone(),
        account_id: None,
        session_id: None,
        scope: "api.hoso.read api.hoso.write".into(),
        auth: None,
        created_at: T0,
        expires_at: T0 + 3600,
        revoked_at: None,
    }
}

fn access_token(hash: &str, grant: &GrantRecord, expires_at: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: hash.into(),
        grant_id: grant.id,
        scope: grant.scope.clone(),
        created_at: T0,
        expires_at,
    }
}

fn refresh_token(hash: &str, grant: &GrantRecord, expires_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord { token_hash: hash.into(), grant_id: grant.id, created_at: T0, expires_at, used_at: None }
}

fn pushed(uri_hash: &str, client: &ClientRecord, expires_at: i64) -> PushedRequest {
    PushedRequest {
        uri_hash: uri_hash.into(),
        client_id: client.id.clone(),
        request_json: json!({
            "client_id": client.id,
            "redirect_uri": format!("https://{}.example.vn/cb", client.id),
            "scope": "openid profile",
            "state": "trạng thái ✓",
        })
        .to_string(),
        created_at: T0 - 10,
        expires_at,
    }
}

fn delivery(client: &ClientRecord, created_at: i64, next_attempt_at: i64) -> LogoutDelivery {
    LogoutDelivery {
        id: Uuid::new_v4(),
        client_id: client.id.clone(),
        uri: format!("https://{}.example.vn/backchannel-logout", client.id),
        token: format!("eyJhbGciOiJQUzI1NiIsInR5cCI6ImxvZ291dCtqd3QifQ.logout-{created_at}.c2ln"),
        attempts: 0,
        next_attempt_at,
        created_at,
        delivered_at: None,
        last_error: None,
    }
}

/// Every setting away from its default, with a JWKS document carrying Vietnamese text.
fn rich_settings() -> ClientSettings {
    ClientSettings {
        token_auth_method: TokenAuthMethod::PrivateKeyJwt,
        grant_types: vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()],
        scopes: vec!["openid".into(), "profile".into(), "national_id".into()],
        access_token_format: AccessTokenFormat::Jwt,
        access_token_seconds: Some(300),
        id_token_seconds: Some(600),
        refresh_token_seconds: Some(86_400),
        refresh_absolute_seconds: Some(30 * 86_400),
        always_refresh: true,
        require_par: true,
        jwks: Some(json!({
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "kid": "khoá-ký-số-1",
                    "use": "sig",
                    "alg": "ES256",
                    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                },
                {
                    "kty": "RSA",
                    "kid": "rsa-2025",
                    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
                    "e": "AQAB",
                    "x5c": ["MIIC+DCCAeCgAwIBAgIJBIGjYW6hFpn2MA0GCSqGSIb3DQEBBQUAMCMxITAfBgNVBAMTGGN1c3RvbWVyLWRlbW9z"],
                },
            ],
            "ghi_chú": "Khoá công khai của Sở Tư pháp thành phố Hà Nội — \"đã xác minh\" \\ /",
        })),
        post_logout_redirect_uris: vec!["https://dvc.example.vn/đã-đăng-xuất".into(), "https://dvc.example.vn/".into()],
        backchannel_logout_uri: Some("https://dvc.example.vn/backchannel-logout".into()),
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
    assert!(store.delete_session("session-hash-1", T0, &e, &[]).await.unwrap());
    assert_audited(store, before, &e).await;
    assert_eq!(store.find_session("session-hash-1", T0).await.unwrap(), None);
    assert!(!store.delete_session("session-hash-1", T0, &event("logout"), &[]).await.unwrap());
    assert!(!store.delete_session("session-hash-unknown", T0, &event("logout"), &[]).await.unwrap());
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
    assert_eq!(store.find_pending_authorization("pending-2", T0).await.unwrap(), Some(second.clone()), "only that one");
    store.delete_pending_authorization("pending-1").await.unwrap();
    store.delete_pending_authorization("pending-unknown").await.unwrap();

    // Approval replaces the request and is audited in the same transaction.
    let approved_json = json!({"client_id": "dvc-hanoi", "approved_by": "account-1"}).to_string();
    let before = audit_len(store).await;
    let audit = event("authorize.details_approved");
    assert!(store.approve_pending_authorization("pending-2", &approved_json, T0 + 10, &audit).await.unwrap());
    assert_audited(store, before, &audit).await;
    let found = store.find_pending_authorization("pending-2", T0 + 10).await.unwrap().unwrap();
    assert_eq!(found.request_json, approved_json);
    assert_eq!((found.created_at, found.expires_at), (second.created_at, second.expires_at), "times unchanged");
    // Gone or expired: nothing written, no event.
    let before = audit_len(store).await;
    assert!(!store.approve_pending_authorization("pending-1", &approved_json, T0, &audit).await.unwrap());
    assert!(!store.approve_pending_authorization("pending-2", "{}", T0 + 600, &audit).await.unwrap(), "expired");
    assert_eq!(audit_len(store).await, before);
    assert_eq!(store.find_pending_authorization("pending-2", T0).await.unwrap().unwrap().request_json, approved_json);
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
    assert!(store.delete_session("chain-session", T0, &e, &[]).await.unwrap());
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
    const SIGN_INS: usize = 10;
    let citizen = account("signs.in.often", None, AsLevel::As1);
    let created = event("concurrent.citizen");
    b.store.create_account(&citizen, &created).await.unwrap();
    let barrier = Arc::new(Barrier::new(APPENDS + ACCOUNTS + SIGN_INS));
    let mut tasks = Vec::new();
    let mut kinds = BTreeSet::from([created.kind.clone()]);
    // Sign-ins append their event with the session (one statement on PostgreSQL).
    for i in 0..SIGN_INS {
        let (store, barrier) = (b.store.clone(), barrier.clone());
        let s = session(&citizen, &format!("concurrent-session-{i}"));
        let e = event(&format!("concurrent.sign_in.{i}")).account(citizen.id);
        kinds.insert(e.kind.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.create_session(&s, &e).await.unwrap();
        }));
    }
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
    let n = (1 + APPENDS + ACCOUNTS + SIGN_INS) as i64;
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "seq 1..n without gaps");
    assert_eq!(verify_chain(&all), Ok(()));
    assert_eq!(all.iter().map(|s| s.event.kind.clone()).collect::<BTreeSet<_>>(), kinds, "every event, once");
    for i in 0..SIGN_INS {
        let found = b.store.find_session(&format!("concurrent-session-{i}"), T0).await.unwrap();
        assert_eq!(found.map(|s| s.account_id), Some(citizen.id), "session {i} written with its event");
    }
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

// ---------------------------------------------------------------------------------------------
// Client administration and key rotation.

/// `update_client` replaces everything but the id and the creation time.
async fn client_update(store: &dyn Store) {
    let original = client("dvc-danang");
    let other = client("dvc-hue");
    for c in [&original, &other] {
        store.create_client(c, &event("client.created").client(&c.id)).await.unwrap();
    }

    let updated = ClientRecord {
        id: original.id.clone(),
        name: "Cổng dịch vụ công Đà Nẵng — bản mới".into(),
        kind: ClientKind::Public,
        secret_hash: None,
        redirect_uris: vec!["https://dichvucong.danang.gov.vn/đăng-nhập/cb".into(), "vn.gov.danang:/cb".into()],
        id_token_alg: "ES256".into(),
        settings: rich_settings(),
        // Ignored: the creation time is kept.
        created_at: T0 + 999,
    };
    let before = audit_len(store).await;
    let e = event("client.updated").client(&original.id);
    store.update_client(&updated, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    let stored = ClientRecord { created_at: original.created_at, ..updated.clone() };
    assert_eq!(store.get_client("dvc-danang").await.unwrap(), Some(stored.clone()), "settings round-trip");
    assert_eq!(store.get_client("dvc-hue").await.unwrap(), Some(other.clone()), "other clients untouched");
    let mut listed = store.list_clients().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, vec![stored.clone(), other.clone()]);

    // And back: confidential with a new secret, default settings (no JWKS).
    let back = ClientRecord {
        kind: ClientKind::Confidential,
        secret_hash: Some("sha256:bmV3LXNlY3JldA".into()),
        settings: ClientSettings::default(),
        ..stored.clone()
    };
    store.update_client(&back, &event("client.updated").client(&back.id)).await.unwrap();
    assert_eq!(store.get_client("dvc-danang").await.unwrap(), Some(back.clone()));

    // Unknown client: NotFound, no row created (not an upsert), no audit event.
    let before = audit_len(store).await;
    let ghost = ClientRecord { id: "dvc-ghost".into(), ..updated.clone() };
    let r = store.update_client(&ghost, &event("client.updated").client("dvc-ghost")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "update_client of an unknown client: {r:?}");
    assert_eq!(audit_len(store).await, before, "a failed update_client appends no audit event");
    assert_eq!(store.get_client("dvc-ghost").await.unwrap(), None);
    assert_eq!(store.get_client("dvc-danang").await.unwrap(), Some(back));
    assert_eq!(store.get_client("dvc-hue").await.unwrap(), Some(other));
}

/// One of everything a client can have issued to it.
struct Issued {
    client: ClientRecord,
    code_grant: GrantRecord,
    code_hash: String,
    cc_grant: GrantRecord,
    access: AccessTokenRecord,
    cc_access: AccessTokenRecord,
    refresh: RefreshTokenRecord,
    pushed: PushedRequest,
    delivery: LogoutDelivery,
}

async fn issue_everything(store: &dyn Store, citizen: &Account, id: &str, delivery_at: i64) -> Issued {
    let client = client(id);
    store.create_client(&client, &event("client.created").client(id)).await.unwrap();
    let code_grant = grant(citizen, &client);
    let code_hash = format!("{id}-code");
    store.create_grant_with_code(&code_grant, &code(&code_hash, &code_grant)).await.unwrap();
    let cc_grant = client_credentials_grant(&client);
    store.create_grant(&cc_grant).await.unwrap();
    let access = access_token(&format!("{id}-at"), &code_grant, T0 + 300);
    let cc_access = access_token(&format!("{id}-cc-at"), &cc_grant, T0 + 300);
    for t in [&access, &cc_access] {
        store.create_access_token(t).await.unwrap();
    }
    let refresh = refresh_token(&format!("{id}-rt"), &code_grant, T0 + 3600);
    store.create_refresh_token(&refresh).await.unwrap();
    let pushed = pushed(&format!("{id}-par"), &client, T0 + 60);
    store.create_pushed_request(&pushed).await.unwrap();
    let delivery = delivery(&client, delivery_at, delivery_at);
    store.create_logout_deliveries(std::slice::from_ref(&delivery)).await.unwrap();
    Issued { client, code_grant, code_hash, cc_grant, access, cc_access, refresh, pushed, delivery }
}

/// `delete_client` removes the client and everything issued to it, and nothing of anyone else.
async fn client_delete(store: &dyn Store) {
    let citizen = account("deletion.citizen", None, AsLevel::As1);
    store.create_account(&citizen, &event("account.created").account(citizen.id)).await.unwrap();
    let gone = issue_everything(store, &citizen, "dvc-gone", T0 - 20).await;
    let kept = issue_everything(store, &citizen, "dvc-kept", T0 - 10).await;

    let before = audit_len(store).await;
    let e = event("client.deleted").client("dvc-gone");
    store.delete_client("dvc-gone", &e).await.unwrap();
    assert_audited(store, before, &e).await;

    // The deleted client and everything issued to it are gone.
    assert_eq!(store.get_client("dvc-gone").await.unwrap(), None);
    assert_eq!(store.get_grant(gone.code_grant.id).await.unwrap(), None);
    assert_eq!(store.get_grant(gone.cc_grant.id).await.unwrap(), None);
    assert_eq!(store.find_access_token(&gone.access.token_hash).await.unwrap(), None);
    assert_eq!(store.find_access_token(&gone.cc_access.token_hash).await.unwrap(), None);
    assert_eq!(store.find_refresh_token(&gone.refresh.token_hash).await.unwrap(), None);
    assert_eq!(store.consume_auth_code(&gone.code_hash, T0).await.unwrap(), ConsumedCode::NotFound);
    assert_eq!(store.consume_refresh_token(&gone.refresh.token_hash, T0).await.unwrap(), ConsumedRefresh::NotFound);
    assert_eq!(store.take_pushed_request(&gone.pushed.uri_hash, "dvc-gone", T0).await.unwrap(), None);
    assert_eq!(
        store.due_logout_deliveries(T0 + 1000, 100).await.unwrap(),
        vec![kept.delivery.clone()],
        "only the other client's delivery is left"
    );

    // The other client and its grants, tokens and requests are untouched; so is the account.
    assert_eq!(store.list_clients().await.unwrap(), vec![kept.client.clone()]);
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(citizen.clone()));
    assert_eq!(store.get_grant(kept.code_grant.id).await.unwrap(), Some(kept.code_grant.clone()));
    assert_eq!(store.get_grant(kept.cc_grant.id).await.unwrap(), Some(kept.cc_grant.clone()));
    assert_eq!(
        store.find_access_token(&kept.access.token_hash).await.unwrap(),
        Some((kept.access.clone(), kept.code_grant.clone()))
    );
    assert_eq!(
        store.find_access_token(&kept.cc_access.token_hash).await.unwrap(),
        Some((kept.cc_access.clone(), kept.cc_grant.clone()))
    );
    assert_eq!(
        store.find_refresh_token(&kept.refresh.token_hash).await.unwrap(),
        Some((kept.refresh.clone(), kept.code_grant.clone()))
    );
    assert!(matches!(store.consume_auth_code(&kept.code_hash, T0).await.unwrap(), ConsumedCode::Fresh(..)));
    assert_eq!(
        store.take_pushed_request(&kept.pushed.uri_hash, &kept.pushed.client_id, T0).await.unwrap(),
        Some(kept.pushed.clone())
    );

    // Deleting it again, or an unknown client: NotFound, no audit event.
    let before = audit_len(store).await;
    for id in ["dvc-gone", "dvc-never"] {
        let r = store.delete_client(id, &event("client.deleted").client(id)).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "delete_client({id}): {r:?}");
    }
    assert_eq!(audit_len(store).await, before, "a failed delete_client appends no audit event");
    assert_eq!(store.get_client("dvc-kept").await.unwrap(), Some(kept.client));
}

/// `retire_signing_key` stamps `retired_at` once; `activates_at` round-trips.
async fn signing_key_retirement(store: &dyn Store) {
    let key = |kid: &str, created_at: i64, activates_at: i64, retired_at: Option<i64>| SigningKeyRecord {
        kid: kid.into(),
        alg: "PS256".into(),
        private_key_enc: format!("sealed-pkcs8:{kid}"),
        created_at,
        activates_at,
        retired_at,
    };
    let current = key("k-current", T0 - 1000, T0 - 1000, None);
    // Published a day before it signs.
    let next = key("k-next", T0, T0 + 86_400, None);
    let retired = key("k-retired", T0 - 5000, T0 - 4000, Some(T0 - 1000));
    for k in [&current, &next, &retired] {
        store.create_signing_key(k, &event("key.created").detail("kid", &k.kid)).await.unwrap();
    }
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![retired.clone(), current.clone(), next.clone()]);

    let before = audit_len(store).await;
    let e = event("key.retired").detail("kid", "k-current");
    store.retire_signing_key("k-current", T0 + 10, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    let current_retired = SigningKeyRecord { retired_at: Some(T0 + 10), ..current.clone() };
    let expected = vec![retired.clone(), current_retired.clone(), next.clone()];
    assert_eq!(store.list_signing_keys().await.unwrap(), expected, "only that key retired");

    // Idempotent: the first retirement time is kept.
    store.retire_signing_key("k-current", T0 + 20, &event("key.retired")).await.unwrap();
    store.retire_signing_key("k-retired", T0 + 20, &event("key.retired")).await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap(), expected, "retiring again keeps the first time");

    // Unknown kid: NotFound, no key created, no audit event.
    let before = audit_len(store).await;
    let r = store.retire_signing_key("k-unknown", T0 + 30, &event("key.retired")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "retire_signing_key of an unknown kid: {r:?}");
    assert_eq!(audit_len(store).await, before, "a failed retire_signing_key appends no audit event");
    assert_eq!(store.list_signing_keys().await.unwrap(), expected);
}

// ---------------------------------------------------------------------------------------------
// Grants, sessions and sign-out.

/// A client_credentials grant (no account, session or auth) and code-flow grants round-trip.
async fn grants(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;

    let cc = client_credentials_grant(&portal);
    store.create_grant(&cc).await.unwrap();
    assert_eq!(store.get_grant(cc.id).await.unwrap(), Some(cc.clone()));

    let flow = GrantRecord {
        auth: Some(GrantAuth {
            acr: "urn:xacthuc:loa:as4:cert".into(),
            amr: vec!["pwd".into(), "hwk".into(), "sc".into(), "mfa".into()],
            auth_time: T0 - 42,
            as_level: 4,
            mechanism: "chứng thư số".into(),
            authorization_details: Some(serde_json::json!([
                {"type": "payment", "amount": "1250000", "currency": "VND", "payee": "UBND", "reference": "HKD-1"}
            ])),
        }),
        ..grant(&citizen, &portal)
    };
    store.create_grant_with_code(&flow, &code("grants-code", &flow)).await.unwrap();
    assert_eq!(store.get_grant(flow.id).await.unwrap(), Some(flow.clone()), "auth round-trips");

    // A code-flow grant stored without a code (the refresh path), already revoked.
    let bare = GrantRecord { revoked_at: Some(T0 + 5), expires_at: T0 + 30 * 86_400, ..grant(&citizen, &portal) };
    store.create_grant(&bare).await.unwrap();
    assert_eq!(store.get_grant(bare.id).await.unwrap(), Some(bare.clone()));
    assert_eq!(store.get_grant(Uuid::new_v4()).await.unwrap(), None);

    // A taken id fails and changes nothing; neither does a grant-with-code under a taken id.
    let clash = GrantRecord { scope: "admin".into(), ..flow.clone() };
    assert!(store.create_grant(&clash).await.is_err(), "duplicate grant id");
    let clash_cc = GrantRecord { scope: "admin".into(), ..cc.clone() };
    assert!(store.create_grant_with_code(&clash_cc, &code("grants-clash-code", &clash_cc)).await.is_err());
    assert_eq!(store.consume_auth_code("grants-clash-code", T0).await.unwrap(), ConsumedCode::NotFound);
    assert_eq!(store.get_grant(flow.id).await.unwrap(), Some(flow));
    assert_eq!(store.get_grant(cc.id).await.unwrap(), Some(cc));
}

fn session(citizen: &Account, token_hash: &str) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        token_hash: token_hash.into(),
        account_id: citizen.id,
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 }],
        created_at: T0,
        expires_at: T0 + 3600,
    }
}

/// `list_session_grants` lists a session's unrevoked grants, oldest first; `delete_session`
/// revokes exactly those, in the same write as the deletion.
async fn session_grants(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let other = client("session-other");
    store.create_client(&other, &event("client.created")).await.unwrap();
    let s1 = session(&citizen, "sg-session-1");
    let s2 = session(&citizen, "sg-session-2");
    for s in [&s1, &s2] {
        store.create_session(s, &event("login.succeeded").account(citizen.id)).await.unwrap();
    }
    let in_session = |s: &SessionRecord, c: &ClientRecord, created_at: i64| GrantRecord {
        session_id: Some(s.id),
        created_at,
        ..grant(&citizen, c)
    };
    let late = in_session(&s1, &portal, T0 + 30);
    let early = in_session(&s1, &other, T0 + 10);
    let revoked = in_session(&s1, &portal, T0 + 20);
    let elsewhere = in_session(&s2, &portal, T0 + 5);
    let cc = client_credentials_grant(&portal);
    // Inserted out of age order.
    store.create_grant_with_code(&late, &code("sg-code-late", &late)).await.unwrap();
    store.create_grant(&early).await.unwrap();
    store.create_grant_with_code(&revoked, &code("sg-code-revoked", &revoked)).await.unwrap();
    store.create_grant_with_code(&elsewhere, &code("sg-code-elsewhere", &elsewhere)).await.unwrap();
    store.create_grant(&cc).await.unwrap();
    let late_token = access_token("sg-at-late", &late, T0 + 300);
    store.create_access_token(&late_token).await.unwrap();
    store.revoke_grant(revoked.id, T0 + 25, &event("grant.revoked")).await.unwrap();
    let revoked = GrantRecord { revoked_at: Some(T0 + 25), ..revoked };

    assert_eq!(store.list_session_grants(s1.id).await.unwrap(), vec![early.clone(), late.clone()], "oldest first");
    assert_eq!(store.list_session_grants(s2.id).await.unwrap(), vec![elsewhere.clone()]);
    assert_eq!(store.list_session_grants(Uuid::new_v4()).await.unwrap(), vec![]);

    // Sign-out of session 1 revokes its live grants at `at`, audited once.
    let before = audit_len(store).await;
    let e = event("logout").account(citizen.id);
    assert!(store.delete_session("sg-session-1", T0 + 100, &e, &[]).await.unwrap());
    assert_audited(store, before, &e).await;
    let early_out = GrantRecord { revoked_at: Some(T0 + 100), ..early.clone() };
    let late_out = GrantRecord { revoked_at: Some(T0 + 100), ..late.clone() };
    assert_eq!(store.get_grant(early.id).await.unwrap(), Some(early_out.clone()));
    assert_eq!(store.get_grant(late.id).await.unwrap(), Some(late_out.clone()));
    assert_eq!(store.get_grant(revoked.id).await.unwrap(), Some(revoked.clone()), "first revocation kept");
    assert_eq!(store.find_access_token("sg-at-late").await.unwrap(), Some((late_token, late_out.clone())));
    match store.consume_auth_code("sg-code-late", T0 + 101).await.unwrap() {
        ConsumedCode::Fresh(_, g) => assert_eq!(g, late_out, "the code's grant is revoked"),
        other => panic!("code of a signed-out grant: {other:?}"),
    }
    assert_eq!(store.list_session_grants(s1.id).await.unwrap(), vec![]);

    // Other sessions' grants, and grants without a session, are untouched.
    assert_eq!(store.get_grant(elsewhere.id).await.unwrap(), Some(elsewhere.clone()));
    assert_eq!(store.get_grant(cc.id).await.unwrap(), Some(cc.clone()));
    assert_eq!(store.list_session_grants(s2.id).await.unwrap(), vec![elsewhere.clone()]);
    assert_eq!(store.find_session("sg-session-2", T0).await.unwrap(), Some(s2));

    // Signing out again (or of an unknown session): false, nothing revoked, no audit event.
    let before = audit_len(store).await;
    assert!(!store.delete_session("sg-session-1", T0 + 200, &event("logout"), &[]).await.unwrap());
    assert!(!store.delete_session("sg-session-unknown", T0 + 200, &event("logout"), &[]).await.unwrap());
    assert_eq!(audit_len(store).await, before, "deleting no session appends no audit event");
    assert_eq!(store.get_grant(early.id).await.unwrap(), Some(early_out));
    assert_eq!(store.get_grant(elsewhere.id).await.unwrap(), Some(elsewhere));
}

/// Sign-out racing revocations of the same grants (a code replay, an admin) never fails (no
/// deadlock between the grant rows and the audit chain), and every write lands exactly once.
async fn session_logout_concurrent(b: &Backend) {
    const GRANTS: usize = 3;
    let store = b.store.as_ref();
    let (citizen, portal) = seed(store).await;
    let mut audited = audit_len(store).await;
    for round in 0..12 {
        let s = session(&citizen, &format!("race-session-{round}"));
        store.create_session(&s, &event("login.succeeded")).await.unwrap();
        audited += 1;
        let grants: Vec<GrantRecord> = (0..GRANTS)
            .map(|i| GrantRecord { session_id: Some(s.id), created_at: T0 + i as i64, ..grant(&citizen, &portal) })
            .collect();
        for g in &grants {
            store.create_grant(g).await.unwrap();
        }
        let barrier = Arc::new(Barrier::new(GRANTS + 1));
        let mut tasks = Vec::new();
        {
            let (store, barrier, hash) = (b.store.clone(), barrier.clone(), s.token_hash.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                assert!(store.delete_session(&hash, T0 + 100, &event("logout"), &[]).await.unwrap());
            }));
        }
        for g in &grants {
            let (store, barrier, id) = (b.store.clone(), barrier.clone(), g.id);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.revoke_grant(id, T0 + 100, &event("grant.revoked")).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        audited += 1 + GRANTS;
        for g in &grants {
            let got = store.get_grant(g.id).await.unwrap().unwrap();
            assert_eq!(got.revoked_at, Some(T0 + 100), "round {round}");
        }
        assert_eq!(store.list_session_grants(s.id).await.unwrap(), vec![]);
    }
    let all = audit_all(store).await;
    assert_eq!(all.len(), audited, "every write audited once");
    assert_eq!(verify_chain(&all), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens.

async fn refresh_tokens(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let g = grant(&citizen, &portal);
    store.create_grant_with_code(&g, &code("rt-code", &g)).await.unwrap();
    let dead = GrantRecord { revoked_at: Some(T0 - 5), ..grant(&citizen, &portal) };
    store.create_grant(&dead).await.unwrap();

    let fresh = refresh_token("rt-fresh", &g, T0 + 3600);
    let used = RefreshTokenRecord { used_at: Some(T0 - 10), ..refresh_token("rt-used", &g, T0 + 3600) };
    let expired = RefreshTokenRecord { created_at: T0 - 7200, ..refresh_token("rt-expired", &g, T0 - 1) };
    let revoked = refresh_token("rt-revoked", &dead, T0 + 3600);
    for t in [&fresh, &used, &expired, &revoked] {
        store.create_refresh_token(t).await.unwrap();
    }

    // Found whatever their state: the caller decides.
    assert_eq!(store.find_refresh_token("rt-fresh").await.unwrap(), Some((fresh.clone(), g.clone())));
    assert_eq!(store.find_refresh_token("rt-used").await.unwrap(), Some((used.clone(), g.clone())));
    assert_eq!(store.find_refresh_token("rt-expired").await.unwrap(), Some((expired.clone(), g.clone())));
    assert_eq!(store.find_refresh_token("rt-revoked").await.unwrap(), Some((revoked.clone(), dead.clone())));
    assert_eq!(store.find_refresh_token("rt-unknown").await.unwrap(), None);

    // Fresh once, marked used at `now`; then AlreadyUsed with the grant, first use time kept.
    let spent = RefreshTokenRecord { used_at: Some(T0 + 5), ..fresh.clone() };
    assert_eq!(
        store.consume_refresh_token("rt-fresh", T0 + 5).await.unwrap(),
        ConsumedRefresh::Fresh(spent.clone(), g.clone())
    );
    for now in [T0 + 6, T0 + 7] {
        assert_eq!(
            store.consume_refresh_token("rt-fresh", now).await.unwrap(),
            ConsumedRefresh::AlreadyUsed(spent.clone(), g.clone())
        );
    }
    assert_eq!(store.find_refresh_token("rt-fresh").await.unwrap(), Some((spent, g.clone())));
    assert_eq!(
        store.consume_refresh_token("rt-used", T0).await.unwrap(),
        ConsumedRefresh::AlreadyUsed(used.clone(), g.clone()),
        "created used"
    );
    assert_eq!(store.consume_refresh_token("rt-unknown", T0).await.unwrap(), ConsumedRefresh::NotFound);

    // Expiry and revocation are the caller's checks.
    assert_eq!(
        store.consume_refresh_token("rt-expired", T0).await.unwrap(),
        ConsumedRefresh::Fresh(RefreshTokenRecord { used_at: Some(T0), ..expired }, g.clone())
    );
    assert_eq!(
        store.consume_refresh_token("rt-revoked", T0).await.unwrap(),
        ConsumedRefresh::Fresh(RefreshTokenRecord { used_at: Some(T0), ..revoked }, dead)
    );

    // A taken hash fails and changes nothing.
    let clash = RefreshTokenRecord { expires_at: T0 + 99_999, ..refresh_token("rt-used", &g, T0) };
    assert!(store.create_refresh_token(&clash).await.is_err(), "duplicate refresh token hash");
    assert_eq!(store.find_refresh_token("rt-used").await.unwrap(), Some((used, g.clone())));
    // So does a token for an unknown grant.
    let orphan = RefreshTokenRecord { grant_id: Uuid::new_v4(), ..refresh_token("rt-orphan", &g, T0 + 60) };
    assert!(store.create_refresh_token(&orphan).await.is_err(), "refresh token of an unknown grant");
    assert_eq!(store.find_refresh_token("rt-orphan").await.unwrap(), None);
}

/// Exactly one of several concurrent consumers of a refresh token gets `Fresh`.
async fn refresh_tokens_concurrent(b: &Backend) {
    const CONSUMERS: i64 = 8;
    let (citizen, portal) = seed(b.store.as_ref()).await;
    let g = grant(&citizen, &portal);
    b.store.create_grant(&g).await.unwrap();
    for round in 0..4 {
        let hash = format!("rt-race-{round}");
        b.store.create_refresh_token(&refresh_token(&hash, &g, T0 + 3600)).await.unwrap();
        let barrier = Arc::new(Barrier::new(CONSUMERS as usize));
        let tasks: Vec<_> = (0..CONSUMERS)
            .map(|i| {
                let (store, barrier, hash) = (b.store.clone(), barrier.clone(), hash.clone());
                let now = T0 + 10 + i;
                tokio::spawn(async move {
                    barrier.wait().await;
                    (now, store.consume_refresh_token(&hash, now).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (now, ConsumedRefresh::Fresh(t, got)) => {
                    assert_eq!(t.used_at, Some(now));
                    assert_eq!(got, g);
                    winners.push(now);
                }
                (_, ConsumedRefresh::AlreadyUsed(t, got)) => {
                    assert_eq!(got, g);
                    losers.push(t.used_at);
                }
                (_, ConsumedRefresh::NotFound) => panic!("round {round}: refresh token not found"),
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
// Access token revocation (RFC 7009).

async fn access_token_deletion(store: &dyn Store) {
    let (citizen, portal) = seed(store).await;
    let g = grant(&citizen, &portal);
    store.create_grant(&g).await.unwrap();
    let cc = client_credentials_grant(&portal);
    store.create_grant(&cc).await.unwrap();
    let t1 = access_token("del-at-1", &g, T0 + 300);
    let t2 = access_token("del-at-2", &g, T0 + 300);
    let t3 = access_token("del-at-cc", &cc, T0 + 300);
    for t in [&t1, &t2, &t3] {
        store.create_access_token(t).await.unwrap();
    }

    let before = audit_len(store).await;
    let e = event("token.revoked").client(&portal.id);
    store.delete_access_token("del-at-1", &e).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.find_access_token("del-at-1").await.unwrap(), None);

    // Only that token: its sibling, the other grant's token and the grant itself stay.
    assert_eq!(store.find_access_token("del-at-2").await.unwrap(), Some((t2, g.clone())));
    assert_eq!(store.find_access_token("del-at-cc").await.unwrap(), Some((t3, cc.clone())));
    assert_eq!(store.get_grant(g.id).await.unwrap(), Some(g));
    assert_eq!(store.get_grant(cc.id).await.unwrap(), Some(cc));

    // Idempotent: deleting it again, or an unknown token, succeeds.
    store.delete_access_token("del-at-1", &event("token.revoked")).await.unwrap();
    store.delete_access_token("del-at-unknown", &event("token.revoked")).await.unwrap();
    assert_eq!(store.find_access_token("del-at-1").await.unwrap(), None);
    assert_eq!(verify_chain(&audit_all(store).await), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// private_key_jwt assertion replay.

async fn client_assertions(store: &dyn Store) {
    let (_, a) = seed(store).await;
    let (_, b) = seed(store).await;
    assert!(store.record_client_assertion(&a.id, "jti-1", T0 + 60).await.unwrap(), "first use");
    assert!(!store.record_client_assertion(&a.id, "jti-1", T0 + 60).await.unwrap(), "replay");
    assert!(!store.record_client_assertion(&a.id, "jti-1", T0 + 120).await.unwrap(), "replay, other expiry");
    assert!(store.record_client_assertion(&b.id, "jti-1", T0 + 60).await.unwrap(), "same jti, other client");
    assert!(!store.record_client_assertion(&b.id, "jti-1", T0 + 60).await.unwrap());
    assert!(store.record_client_assertion(&a.id, "jti-2", T0 + 60).await.unwrap(), "other jti");
    assert!(store.record_client_assertion(&a.id, "JTI-1", T0 + 60).await.unwrap(), "jti compared exactly");
    let long = format!("jti-ổn-định-{}", "x".repeat(400));
    assert!(store.record_client_assertion(&a.id, &long, T0 + 60).await.unwrap());
    assert!(!store.record_client_assertion(&a.id, &long, T0 + 60).await.unwrap());
}

/// Concurrent uses of one `jti`: exactly one `true` per client.
async fn client_assertions_concurrent(b: &Backend) {
    const PER_CLIENT: usize = 6;
    let (_, x) = seed(b.store.as_ref()).await;
    let (_, y) = seed(b.store.as_ref()).await;
    for round in 0..4 {
        let jti = format!("jti-race-{round}");
        let barrier = Arc::new(Barrier::new(2 * PER_CLIENT));
        let tasks: Vec<_> = (0..2 * PER_CLIENT)
            .map(|i| {
                let client_id = if i % 2 == 0 { x.id.clone() } else { y.id.clone() };
                let (store, barrier, jti) = (b.store.clone(), barrier.clone(), jti.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let fresh = store.record_client_assertion(&client_id, &jti, T0 + 60).await.unwrap();
                    (client_id, fresh)
                })
            })
            .collect();
        let mut fresh = Vec::new();
        for t in tasks {
            let (client_id, ok) = t.await.unwrap();
            if ok {
                fresh.push(client_id);
            }
        }
        fresh.sort();
        let mut expected = vec![x.id.clone(), y.id.clone()];
        expected.sort();
        assert_eq!(fresh, expected, "round {round}: exactly one true per client");
    }
}

// ---------------------------------------------------------------------------------------------
// Pushed authorization requests (RFC 9126).

async fn pushed_requests(b: &Backend) {
    let store = b.store.as_ref();
    let (_, portal) = seed(store).await;
    let live = pushed("par-live", &portal, T0 + 60);
    let expired = pushed("par-expired", &portal, T0 - 1);
    let edge = pushed("par-edge", &portal, T0 + 30);
    for r in [&live, &expired, &edge] {
        store.create_pushed_request(r).await.unwrap();
    }

    // Single use: taken once, then gone.
    // Another client presenting the URI gets nothing and does not spend it.
    assert_eq!(store.take_pushed_request("par-live", "someone-else", T0).await.unwrap(), None, "foreign client");
    assert_eq!(store.take_pushed_request("par-live", &portal.id, T0).await.unwrap(), Some(live.clone()));
    assert_eq!(store.take_pushed_request("par-live", &portal.id, T0).await.unwrap(), None, "second take");
    // Not taken once `expires_at <= now`, and a failed take changes nothing.
    assert_eq!(store.take_pushed_request("par-expired", &portal.id, T0).await.unwrap(), None, "expired");
    assert_eq!(store.take_pushed_request("par-edge", &portal.id, T0 + 30).await.unwrap(), None, "expires_at == now");
    assert_eq!(store.take_pushed_request("par-unknown", &portal.id, T0).await.unwrap(), None);

    // A taken hash fails and leaves the original.
    let clash = PushedRequest { request_json: "{\"forged\":true}".into(), ..edge.clone() };
    assert!(store.create_pushed_request(&clash).await.is_err(), "duplicate request_uri hash");
    assert_eq!(store.take_pushed_request("par-edge", &portal.id, T0 + 29).await.unwrap(), Some(edge));
    // So does a request for an unknown client.
    let stray = PushedRequest { client_id: "no-such-client".into(), ..pushed("par-stray", &portal, T0 + 60) };
    assert!(store.create_pushed_request(&stray).await.is_err(), "pushed request of an unknown client");
    assert_eq!(store.take_pushed_request("par-stray", &portal.id, T0).await.unwrap(), None);

    // Concurrent takers: exactly one gets it.
    const TAKERS: usize = 8;
    for round in 0..4 {
        let r = pushed(&format!("par-race-{round}"), &portal, T0 + 60);
        store.create_pushed_request(&r).await.unwrap();
        let barrier = Arc::new(Barrier::new(TAKERS));
        let tasks: Vec<_> = (0..TAKERS)
            .map(|_| {
                let (store, barrier, hash) = (b.store.clone(), barrier.clone(), r.uri_hash.clone());
                let client_id = portal.id.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.take_pushed_request(&hash, &client_id, T0).await.unwrap()
                })
            })
            .collect();
        let mut taken = Vec::new();
        for t in tasks {
            taken.extend(t.await.unwrap());
        }
        assert_eq!(taken, vec![r], "round {round}: exactly one taker");
    }
}

// ---------------------------------------------------------------------------------------------
// Back-channel logout deliveries.

async fn logout_deliveries(b: &Backend) {
    let store = b.store.as_ref();
    let (_, portal) = seed(store).await;
    let d1 = delivery(&portal, T0 - 30, T0 - 30);
    let d2 = delivery(&portal, T0 - 20, T0 - 20);
    let later = delivery(&portal, T0 - 10, T0 + 100);
    let delivered = LogoutDelivery { attempts: 1, delivered_at: Some(T0 - 35), ..delivery(&portal, T0 - 40, T0 - 40) };
    let d5 = delivery(&portal, T0 - 5, T0);
    // Inserted out of age order, in one call.
    store
        .create_logout_deliveries(&[d2.clone(), later.clone(), d1.clone(), delivered.clone(), d5.clone()])
        .await
        .unwrap();
    store.create_logout_deliveries(&[]).await.unwrap();

    // Undelivered and due (`next_attempt_at <= now`), oldest first, at most `limit`.
    assert_eq!(store.due_logout_deliveries(T0, 10).await.unwrap(), vec![d1.clone(), d2.clone(), d5.clone()]);
    assert_eq!(store.due_logout_deliveries(T0, 2).await.unwrap(), vec![d1.clone(), d2.clone()], "limit");
    assert_eq!(store.due_logout_deliveries(T0, 0).await.unwrap(), vec![]);
    assert_eq!(store.due_logout_deliveries(T0 - 1, 10).await.unwrap(), vec![d1.clone(), d2.clone()]);
    assert_eq!(store.due_logout_deliveries(T0 - 31, 10).await.unwrap(), vec![]);
    assert_eq!(
        store.due_logout_deliveries(T0 + 100, 10).await.unwrap(),
        vec![d1.clone(), d2.clone(), later.clone(), d5.clone()]
    );

    // The batch is atomic: one clashing id and none of it is stored.
    let fresh = delivery(&portal, T0 - 25, T0 - 25);
    let clash = LogoutDelivery { uri: "https://evil.example/".into(), ..d1.clone() };
    assert!(store.create_logout_deliveries(&[fresh, clash]).await.is_err(), "duplicate delivery id");
    assert_eq!(store.due_logout_deliveries(T0, 10).await.unwrap(), vec![d1.clone(), d2.clone(), d5.clone()]);

    // Delivered: no longer due; not audited when no event is given.
    let before = audit_len(store).await;
    store.record_logout_attempt(d1.id, Some(T0 + 1), None, T0 + 1, None).await.unwrap();
    assert_eq!(audit_len(store).await, before);
    assert_eq!(store.due_logout_deliveries(T0 + 1000, 10).await.unwrap(), vec![d2.clone(), later.clone(), d5.clone()]);
    let sql = format!("SELECT COUNT(*) FROM logout_deliveries WHERE delivered_at = {} AND attempts = 1", T0 + 1);
    assert_eq!(b.count(sql).await, 1, "a delivery counts as an attempt");

    // Failed: retried at `next_attempt_at`, attempts counted, the error kept; audited.
    let e = event("logout.delivery_failed").client(&portal.id);
    let error = "HTTP 503 — Dịch vụ tạm ngừng";
    store.record_logout_attempt(d2.id, None, Some(error), T0 + 60, Some(&e)).await.unwrap();
    assert_audited(store, before, &e).await;
    let d2_failed =
        LogoutDelivery { attempts: 1, next_attempt_at: T0 + 60, last_error: Some(error.into()), ..d2.clone() };
    assert_eq!(store.due_logout_deliveries(T0 + 59, 10).await.unwrap(), vec![d5.clone()], "not before its retry");
    assert_eq!(store.due_logout_deliveries(T0 + 60, 10).await.unwrap(), vec![d2_failed.clone(), d5.clone()]);

    // Failed again: attempts keep counting, the latest error is kept.
    store.record_logout_attempt(d2.id, None, Some("timeout"), T0 + 180, None).await.unwrap();
    let d2_failed = LogoutDelivery { attempts: 2, next_attempt_at: T0 + 180, last_error: Some("timeout".into()), ..d2 };
    assert_eq!(
        store.due_logout_deliveries(T0 + 180, 10).await.unwrap(),
        vec![d2_failed.clone(), later.clone(), d5.clone()]
    );

    // Then delivered, audited: gone from the due list; the others are untouched.
    let before = audit_len(store).await;
    let e = event("logout.delivered").client(&portal.id);
    store.record_logout_attempt(d2_failed.id, Some(T0 + 181), None, T0 + 181, Some(&e)).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.due_logout_deliveries(T0 + 1000, 10).await.unwrap(), vec![later, d5]);
    let sql = format!("SELECT COUNT(*) FROM logout_deliveries WHERE delivered_at = {} AND attempts = 3", T0 + 181);
    assert_eq!(b.count(sql).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Housekeeping of what the newer flows issue.

/// Pushed requests, refresh tokens and `jti` records go at expiry; delivered logout tokens and
/// grants a day after (a grant with its codes and tokens); nothing usable goes.
async fn purge_expired_issued(b: &Backend) {
    const DAY: i64 = 86_400;
    let store = b.store.as_ref();
    let (citizen, portal) = seed(store).await;

    // A live grant: its unexpired tokens stay, its expired ones go.
    let live = GrantRecord { created_at: T0 - 100, ..grant(&citizen, &portal) };
    let live_code = AuthCodeRecord {
        created_at: T0 - 100,
        expires_at: T0 - 40,
        used_at: Some(T0 - 90),
        ..code("pi-live-code", &live)
    };
    store.create_grant_with_code(&live, &live_code).await.unwrap();
    store.create_access_token(&access_token("pi-at-live", &live, T0 + 60)).await.unwrap();
    store.create_access_token(&access_token("pi-at-dead", &live, T0 - 60)).await.unwrap(); // 1
    store.create_refresh_token(&refresh_token("pi-rt-live", &live, T0 + 3600)).await.unwrap();
    let used = RefreshTokenRecord { used_at: Some(T0 - 50), ..refresh_token("pi-rt-used", &live, T0 + 3600) };
    store.create_refresh_token(&used).await.unwrap();
    store.create_refresh_token(&refresh_token("pi-rt-dead", &live, T0)).await.unwrap(); // 2

    // Ended less than a day ago: the grant stays (a late replay still finds it).
    let ended = GrantRecord { created_at: T0 - 2 * DAY, expires_at: T0 - DAY + 1, ..grant(&citizen, &portal) };
    store.create_grant(&ended).await.unwrap();
    store.create_refresh_token(&refresh_token("pi-rt-ended", &ended, T0 - DAY + 1)).await.unwrap(); // 3

    // Ended a day ago: the grant goes, with its code and tokens.
    let old = GrantRecord { created_at: T0 - 30 * DAY, expires_at: T0 - DAY, ..grant(&citizen, &portal) };
    let old_code = AuthCodeRecord {
        created_at: T0 - 30 * DAY,
        expires_at: T0 - 30 * DAY + 60,
        used_at: Some(T0 - 30 * DAY + 5),
        ..code("pi-old-code", &old)
    };
    store.create_grant_with_code(&old, &old_code).await.unwrap(); // 4, 5
    store.create_access_token(&access_token("pi-old-at", &old, T0 - 30 * DAY + 300)).await.unwrap(); // 6
    let old_used =
        RefreshTokenRecord { used_at: Some(T0 - 20 * DAY), ..refresh_token("pi-old-rt-used", &old, T0 - DAY) };
    store.create_refresh_token(&old_used).await.unwrap(); // 7
    store.create_refresh_token(&refresh_token("pi-old-rt", &old, T0 - DAY)).await.unwrap(); // 8

    // A revoked client_credentials grant that ended two days ago, and its token.
    let cc = GrantRecord {
        created_at: T0 - 3 * DAY,
        expires_at: T0 - 2 * DAY,
        revoked_at: Some(T0 - 3 * DAY + 10),
        ..client_credentials_grant(&portal)
    };
    store.create_grant(&cc).await.unwrap(); // 9
    store.create_access_token(&access_token("pi-cc-at", &cc, T0 - 3 * DAY + 300)).await.unwrap(); // 10

    // A revoked grant that has not ended stays.
    let revoked = GrantRecord { revoked_at: Some(T0 - 10), ..grant(&citizen, &portal) };
    store.create_grant(&revoked).await.unwrap();

    // Pushed requests and jti records: gone at `expires_at <= now`.
    store.create_pushed_request(&pushed("pi-par-live", &portal, T0 + 60)).await.unwrap();
    store.create_pushed_request(&pushed("pi-par-dead", &portal, T0 - 1)).await.unwrap(); // 11
    store.create_pushed_request(&pushed("pi-par-edge", &portal, T0)).await.unwrap(); // 12
    for (jti, expires_at) in [("pi-jti-live", T0 + 60), ("pi-jti-dead", T0 - 1), ("pi-jti-edge", T0)] {
        assert!(store.record_client_assertion(&portal.id, jti, expires_at).await.unwrap()); // 13, 14
    }

    // Logout deliveries: delivered a day ago goes, and so does anything a week old (given up);
    // recently delivered, and undelivered ones still being retried, stay.
    let delivered_old =
        LogoutDelivery { attempts: 1, delivered_at: Some(T0 - DAY), ..delivery(&portal, T0 - DAY - 10, T0 - DAY - 10) }; // 15
    let delivered_recent = LogoutDelivery {
        attempts: 1,
        delivered_at: Some(T0 - DAY + 1),
        ..delivery(&portal, T0 - DAY - 5, T0 - DAY - 5)
    };
    let retrying = LogoutDelivery {
        attempts: 20,
        last_error: Some("connection refused".into()),
        ..delivery(&portal, T0 - 3 * DAY, T0 + 60)
    };
    let abandoned = LogoutDelivery {
        attempts: 6,
        last_error: Some("HTTP 500".into()),
        ..delivery(&portal, T0 - 7 * DAY, i64::MAX)
    }; // 16
    store.create_logout_deliveries(&[delivered_old, delivered_recent, retrying.clone(), abandoned]).await.unwrap();

    let deleted = store.purge_expired(T0).await.unwrap();
    assert_eq!(
        deleted, 16,
        "3 expired refresh tokens of live grants, 2 grants with their code and 4 tokens, 2 pushed requests, \
         2 jti records, 1 delivered logout token, 1 given up a week ago"
    );

    // Exactly what should be left.
    for (table, left) in [
        ("grants", 3),
        ("auth_codes", 1),
        ("access_tokens", 1),
        ("refresh_tokens", 2),
        ("pushed_requests", 1),
        ("client_assertions", 1),
        ("logout_deliveries", 2),
    ] {
        assert_eq!(b.count(format!("SELECT COUNT(*) FROM {table}")).await, left, "rows left in {table}");
    }
    assert_eq!(store.get_grant(live.id).await.unwrap(), Some(live.clone()));
    assert_eq!(store.get_grant(ended.id).await.unwrap(), Some(ended));
    assert_eq!(store.get_grant(revoked.id).await.unwrap(), Some(revoked));
    assert_eq!(store.get_grant(old.id).await.unwrap(), None);
    assert_eq!(store.get_grant(cc.id).await.unwrap(), None);
    assert!(store.find_access_token("pi-at-live").await.unwrap().is_some());
    for hash in ["pi-at-dead", "pi-old-at", "pi-cc-at"] {
        assert_eq!(store.find_access_token(hash).await.unwrap(), None, "{hash}");
    }
    assert!(store.find_refresh_token("pi-rt-live").await.unwrap().is_some());
    assert_eq!(store.find_refresh_token("pi-rt-used").await.unwrap(), Some((used, live.clone())), "kept for replays");
    for hash in ["pi-rt-dead", "pi-rt-ended", "pi-old-rt-used", "pi-old-rt"] {
        assert_eq!(store.find_refresh_token(hash).await.unwrap(), None, "{hash}");
    }
    assert!(matches!(store.consume_auth_code("pi-live-code", T0).await.unwrap(), ConsumedCode::AlreadyUsed(..)));
    assert_eq!(store.consume_auth_code("pi-old-code", T0).await.unwrap(), ConsumedCode::NotFound);
    assert_eq!(store.due_logout_deliveries(T0 + 60, 10).await.unwrap(), vec![retrying]);
    assert!(!store.record_client_assertion(&portal.id, "pi-jti-live", T0 + 60).await.unwrap(), "still recorded");
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "idempotent");
    assert!(store.take_pushed_request("pi-par-live", &portal.id, T0).await.unwrap().is_some());

    // A grant's codes and tokens go with it even when their own expiry says otherwise.
    let short = GrantRecord { created_at: T0, expires_at: T0 + 10, ..grant(&citizen, &portal) };
    let far = T0 + 30 * DAY;
    store
        .create_grant_with_code(&short, &AuthCodeRecord { expires_at: far, ..code("pi-short-code", &short) })
        .await
        .unwrap();
    store.create_access_token(&access_token("pi-short-at", &short, far)).await.unwrap();
    store.create_refresh_token(&refresh_token("pi-short-rt", &short, far)).await.unwrap();
    assert!(store.purge_expired(T0 + 10 + DAY).await.unwrap() >= 1);
    assert_eq!(store.get_grant(short.id).await.unwrap(), None);
    assert_eq!(store.consume_auth_code("pi-short-code", T0).await.unwrap(), ConsumedCode::NotFound);
    assert_eq!(store.find_access_token("pi-short-at").await.unwrap(), None);
    assert_eq!(store.find_refresh_token("pi-short-rt").await.unwrap(), None);
    assert_eq!(store.get_grant(live.id).await.unwrap(), Some(live), "a live grant stays");
}

/// `claim_logout_delivery`: of several instances seeing the same due delivery, exactly one
/// claims (and sends) it; a delivered one is never claimed or changed again; and a session's
/// end queues its deliveries in the same transaction.
async fn logout_delivery_claims(b: &Backend) {
    let store = b.store.as_ref();
    let (citizen, portal) = seed(store).await;
    for round in 0..4 {
        let d = delivery(&portal, T0 + round, T0);
        store.create_logout_deliveries(std::slice::from_ref(&d)).await.unwrap();
        let barrier = Arc::new(Barrier::new(6));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (store, barrier) = (b.store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.claim_logout_delivery(d.id, T0, T0 + 60).await.unwrap()
                })
            })
            .collect();
        let mut claimed = 0;
        for t in tasks {
            claimed += usize::from(t.await.unwrap());
        }
        assert_eq!(claimed, 1, "round {round}");
        assert!(!store.due_logout_deliveries(T0 + 59, 10).await.unwrap().iter().any(|x| x.id == d.id), "leased");
        // Delivered: a later failure report from a slow instance cannot undo it.
        store.record_logout_attempt(d.id, Some(T0 + 1), None, T0 + 1, None).await.unwrap();
        store.record_logout_attempt(d.id, None, Some("late timeout"), T0 + 30, None).await.unwrap();
        assert!(!store.claim_logout_delivery(d.id, T0 + 10_000, T0 + 10_060).await.unwrap());
        assert!(store.due_logout_deliveries(T0 + 10_000, 10).await.unwrap().iter().all(|x| x.id != d.id));
    }
    // Not due yet: no claim.
    let later = delivery(&portal, T0, T0 + 100);
    store.create_logout_deliveries(std::slice::from_ref(&later)).await.unwrap();
    assert!(!store.claim_logout_delivery(later.id, T0, T0 + 60).await.unwrap());
    assert!(store.claim_logout_delivery(later.id, T0 + 100, T0 + 160).await.unwrap());

    // Ending a session queues its deliveries atomically; a missing session queues nothing.
    let session = SessionRecord {
        id: Uuid::new_v4(),
        token_hash: "claims-session".into(),
        account_id: citizen.id,
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 }],
        created_at: T0,
        expires_at: T0 + 3600,
    };
    store.create_session(&session, &event("login.succeeded")).await.unwrap();
    let queued = delivery(&portal, T0 + 500, T0 + 500);
    assert!(
        store
            .delete_session("claims-session", T0 + 500, &event("logout"), std::slice::from_ref(&queued))
            .await
            .unwrap()
    );
    assert!(store.due_logout_deliveries(T0 + 500, 100).await.unwrap().contains(&queued));
    let orphan = delivery(&portal, T0 + 600, T0 + 600);
    assert!(
        !store
            .delete_session("claims-session", T0 + 600, &event("logout"), std::slice::from_ref(&orphan))
            .await
            .unwrap()
    );
    assert!(!store.due_logout_deliveries(T0 + 600, 100).await.unwrap().contains(&orphan));
}

// ---------------------------------------------------------------------------------------------
// Second factors: the per-account switch, TOTP credentials, recovery codes, session step-up.

/// `always_second_factor` round-trips as a `bool`, defaults to off, and is switched (audited)
/// by `set_always_second_factor`.
async fn always_second_factor(store: &dyn Store) {
    let (plain, _) = seed(store).await;
    assert!(!store.get_account(plain.id).await.unwrap().unwrap().always_second_factor);
    let strict = Account { always_second_factor: true, ..account("cuong.le", None, AsLevel::As2) };
    store.create_account(&strict, &event("account.created").account(strict.id)).await.unwrap();
    assert_eq!(store.get_account(strict.id).await.unwrap(), Some(strict.clone()));
    assert_eq!(store.find_account_by_username("cuong.le").await.unwrap(), Some(strict.clone()));

    let before = audit_len(store).await;
    let e = event("account.second_factor_required").account(plain.id);
    store.set_always_second_factor(plain.id, true, T0 + 50, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    let on = store.get_account(plain.id).await.unwrap().unwrap();
    assert_eq!(on, Account { always_second_factor: true, updated_at: T0 + 50, ..plain.clone() });

    let e = event("account.second_factor_optional").account(strict.id);
    store.set_always_second_factor(strict.id, false, T0 + 60, &e).await.unwrap();
    assert_audited(store, before + 1, &e).await;
    assert_eq!(
        store.get_account(strict.id).await.unwrap(),
        Some(Account { always_second_factor: false, updated_at: T0 + 60, ..strict.clone() })
    );
    // Setting the same value again is fine (and recorded).
    store.set_always_second_factor(strict.id, false, T0 + 70, &event("again")).await.unwrap();
    assert_eq!(audit_len(store).await, before + 3);

    let unknown = store.set_always_second_factor(Uuid::new_v4(), true, T0, &event("nobody")).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    assert_eq!(audit_len(store).await, before + 3, "no event for an unknown account");
    assert!(store.get_account(plain.id).await.unwrap().unwrap().always_second_factor, "others untouched");
}

fn totp(account: &Account, name: &str, created_at: i64) -> TotpCredential {
    TotpCredential {
        id: Uuid::new_v4(),
        account_id: account.id,
        name: name.into(),
        secret_enc: format!("sealed:totp:{name}"),
        last_step: None,
        created_at,
        confirmed_at: None,
        last_used_at: None,
    }
}

async fn totp_by_id(store: &dyn Store, account: &Account, id: Uuid) -> Option<TotpCredential> {
    store.list_totp(account.id).await.unwrap().into_iter().find(|t| t.id == id)
}

async fn totp_credentials(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let (other, _) = seed(store).await;
    let before = audit_len(store).await;

    // Enrolment: stored as given, no audit event, listed oldest first, per account.
    let phone = totp(&citizen, "Điện thoại của tôi", T0 - 100);
    let tablet = totp(&citizen, "Máy tính bảng", T0 - 50);
    let foreign = totp(&other, "other", T0 - 200);
    store.create_totp(&tablet).await.unwrap();
    store.create_totp(&phone).await.unwrap();
    store.create_totp(&foreign).await.unwrap();
    assert_eq!(audit_len(store).await, before, "an enrolment is not audited");
    assert_eq!(store.list_totp(citizen.id).await.unwrap(), vec![phone.clone(), tablet.clone()]);
    assert_eq!(store.list_totp(other.id).await.unwrap(), vec![foreign.clone()]);
    assert_eq!(store.list_totp(Uuid::new_v4()).await.unwrap(), vec![]);
    assert!(store.create_totp(&phone).await.is_err(), "the id is unique");

    // The replay guard refuses an unconfirmed credential.
    assert!(!store.use_totp_step(phone.id, 100, T0).await.unwrap());
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(phone.clone()));

    // Confirmation: only by its account, only once; audited only when it happens.
    assert!(!store.confirm_totp(phone.id, other.id, 100, T0, &event("factor.enrolled")).await.unwrap());
    assert!(!store.confirm_totp(Uuid::new_v4(), citizen.id, 100, T0, &event("factor.enrolled")).await.unwrap());
    assert_eq!(audit_len(store).await, before, "a refused confirmation appends nothing");
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(phone.clone()), "nothing written");

    let e = event("factor.enrolled").account(citizen.id).detail("factor", "totp");
    assert!(store.confirm_totp(phone.id, citizen.id, 100, T0, &e).await.unwrap());
    assert_audited(store, before, &e).await;
    let confirmed =
        TotpCredential { last_step: Some(100), confirmed_at: Some(T0), last_used_at: Some(T0), ..phone.clone() };
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(confirmed.clone()));
    assert!(!store.confirm_totp(phone.id, citizen.id, 200, T0 + 30, &event("factor.enrolled")).await.unwrap());
    assert_eq!(audit_len(store).await, before + 1, "a second confirmation appends nothing");
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(confirmed.clone()), "nor changes anything");
    assert_eq!(store.list_totp(citizen.id).await.unwrap(), vec![confirmed.clone(), tablet.clone()], "order kept");

    // The replay guard: only a later step than any accepted before.
    assert!(!store.use_totp_step(phone.id, 100, T0 + 1).await.unwrap(), "the confirming step is spent");
    assert!(!store.use_totp_step(phone.id, 99, T0 + 1).await.unwrap(), "an earlier step");
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(confirmed.clone()), "refusals write nothing");
    assert!(store.use_totp_step(phone.id, 101, T0 + 30).await.unwrap());
    let used = TotpCredential { last_step: Some(101), last_used_at: Some(T0 + 30), ..confirmed.clone() };
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(used.clone()));
    assert!(!store.use_totp_step(phone.id, 101, T0 + 31).await.unwrap(), "a replay of the same step");
    assert!(store.use_totp_step(phone.id, 105, T0 + 150).await.unwrap(), "steps may be skipped");
    assert!(!store.use_totp_step(phone.id, 104, T0 + 151).await.unwrap());
    assert!(!store.use_totp_step(Uuid::new_v4(), 500, T0).await.unwrap(), "unknown credential");
    assert_eq!(audit_len(store).await, before + 1, "steps are not audited");
    let used = TotpCredential { last_step: Some(105), last_used_at: Some(T0 + 150), ..confirmed.clone() };
    assert_eq!(totp_by_id(store, &citizen, phone.id).await, Some(used.clone()));
    assert_eq!(totp_by_id(store, &citizen, tablet.id).await, Some(tablet.clone()), "others untouched");

    // Deletion: only by its account; audited only when it happens; unconfirmed ones too.
    assert!(!store.delete_totp(phone.id, other.id, &event("factor.removed")).await.unwrap());
    assert!(!store.delete_totp(Uuid::new_v4(), citizen.id, &event("factor.removed")).await.unwrap());
    assert_eq!(audit_len(store).await, before + 1, "a refused deletion appends nothing");
    assert_eq!(store.list_totp(citizen.id).await.unwrap(), vec![used.clone(), tablet.clone()]);
    let e = event("factor.removed").account(citizen.id).detail("factor", "totp");
    assert!(store.delete_totp(phone.id, citizen.id, &e).await.unwrap());
    assert_audited(store, before + 1, &e).await;
    assert_eq!(store.list_totp(citizen.id).await.unwrap(), vec![tablet.clone()]);
    assert!(!store.delete_totp(phone.id, citizen.id, &event("factor.removed")).await.unwrap());
    assert!(!store.use_totp_step(phone.id, 900, T0 + 300).await.unwrap(), "a deleted credential");
    let e = event("factor.removed").account(citizen.id);
    assert!(store.delete_totp(tablet.id, citizen.id, &e).await.unwrap());
    assert_audited(store, before + 2, &e).await;
    assert_eq!(store.list_totp(citizen.id).await.unwrap(), vec![]);
    assert_eq!(store.list_totp(other.id).await.unwrap(), vec![foreign], "the other account's stays");
}

/// Several sign-ins presenting the same code at once: exactly one advances the step.
async fn totp_steps_concurrent(b: &Backend) {
    const CALLERS: i64 = 8;
    let (citizen, _) = seed(b.store.as_ref()).await;
    let t = totp(&citizen, "race", T0 - 60);
    b.store.create_totp(&t).await.unwrap();
    assert!(b.store.confirm_totp(t.id, citizen.id, 1000, T0 - 30, &event("factor.enrolled")).await.unwrap());
    let id = t.id;
    for round in 0..4 {
        let step = 1001 + round;
        let barrier = Arc::new(Barrier::new(CALLERS as usize));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (store, barrier) = (b.store.clone(), barrier.clone());
                let at = T0 + 100 * round + i;
                tokio::spawn(async move {
                    barrier.wait().await;
                    (at, store.use_totp_step(id, step, at).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (at, ok) = task.await.unwrap();
            if ok {
                winners.push(at);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one caller accepts step {step}, got {winners:?}");
        let now = totp_by_id(b.store.as_ref(), &citizen, t.id).await.unwrap();
        assert_eq!((now.last_step, now.last_used_at), (Some(step), Some(winners[0])), "round {round}");
    }
}

fn recovery_hashes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-recovery-hash-{i}")).collect()
}

async fn recovery_codes(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let (other, _) = seed(store).await;
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 0);
    assert_eq!(store.count_recovery_codes(Uuid::new_v4()).await.unwrap(), 0);
    let before = audit_len(store).await;

    // A first set, audited.
    let first = recovery_hashes("first", 3);
    let e = event("factor.recovery_codes_issued").account(citizen.id);
    store.replace_recovery_codes(citizen.id, &first, T0, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 3);
    // The same hash may exist for another account.
    store.replace_recovery_codes(other.id, &first[..1], T0, &event("factor.recovery_codes_issued")).await.unwrap();
    assert_eq!(store.count_recovery_codes(other.id).await.unwrap(), 1);

    // Spending: once per code; the count goes down; only the account's own codes.
    let e = event("factor.recovery_code_used").account(citizen.id);
    assert_eq!(store.use_recovery_code(citizen.id, &first[1], T0 + 10, &e).await.unwrap(), Some(2));
    assert_audited(store, before + 2, &e).await;
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 2);
    assert_eq!(store.use_recovery_code(citizen.id, &first[1], T0 + 11, &event("again")).await.unwrap(), None);
    assert_eq!(store.use_recovery_code(citizen.id, "unknown-hash", T0 + 11, &event("unknown")).await.unwrap(), None);
    assert_eq!(
        store.use_recovery_code(Uuid::new_v4(), &first[0], T0 + 11, &event("nobody")).await.unwrap(),
        None,
        "another account's code"
    );
    assert_eq!(audit_len(store).await, before + 3, "a refused code appends nothing");
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 2);
    assert_eq!(store.use_recovery_code(other.id, &first[0], T0 + 12, &event("used")).await.unwrap(), Some(0));
    assert_eq!(store.count_recovery_codes(other.id).await.unwrap(), 0);
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 2, "per account");
    assert_eq!(store.use_recovery_code(citizen.id, &first[0], T0 + 13, &event("used")).await.unwrap(), Some(1));
    let before = audit_len(store).await;

    // A duplicate hash in a new set fails it whole: the old set, count and log are unchanged.
    let duplicated = vec!["dup-hash".to_string(), "fresh-hash".to_string(), "dup-hash".to_string()];
    assert!(store.replace_recovery_codes(citizen.id, &duplicated, T0 + 20, &event("issued")).await.is_err());
    assert_eq!(audit_len(store).await, before, "nothing written on failure");
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 1);
    assert_eq!(store.use_recovery_code(citizen.id, "fresh-hash", T0 + 21, &event("used")).await.unwrap(), None);

    // A new set replaces the old one, used and unused codes alike.
    let second = recovery_hashes("second", 10);
    let e = event("factor.recovery_codes_issued").account(citizen.id).detail("n", 10);
    store.replace_recovery_codes(citizen.id, &second, T0 + 30, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 10);
    assert_eq!(store.use_recovery_code(citizen.id, &first[2], T0 + 31, &event("old")).await.unwrap(), None);
    assert_eq!(store.use_recovery_code(citizen.id, &second[9], T0 + 32, &event("new")).await.unwrap(), Some(9));
    // Including a previously used hash: it comes back unused.
    store.replace_recovery_codes(citizen.id, &second[9..], T0 + 40, &event("issued")).await.unwrap();
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 1);
    assert_eq!(store.use_recovery_code(citizen.id, &second[9], T0 + 41, &event("used")).await.unwrap(), Some(0));

    // An empty set removes them all.
    let e = event("factor.recovery_codes_removed").account(citizen.id);
    let before = audit_len(store).await;
    store.replace_recovery_codes(citizen.id, &[], T0 + 50, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.count_recovery_codes(citizen.id).await.unwrap(), 0);
    assert_eq!(store.count_recovery_codes(other.id).await.unwrap(), 0);
}

/// The same recovery code presented several times at once: exactly one is accepted.
async fn recovery_codes_concurrent(b: &Backend) {
    const CALLERS: usize = 8;
    let (citizen, _) = seed(b.store.as_ref()).await;
    let codes = recovery_hashes("race", 4);
    b.store.replace_recovery_codes(citizen.id, &codes, T0, &event("issued")).await.unwrap();
    let account_id = citizen.id;
    for (round, code) in codes.iter().enumerate() {
        let before = audit_len(b.store.as_ref()).await;
        let barrier = Arc::new(Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (store, barrier, code) = (b.store.clone(), barrier.clone(), code.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .use_recovery_code(account_id, &code, T0 + 10, &event("used").account(account_id))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let spent: Vec<_> = results.iter().flatten().collect();
        let left = (codes.len() - round - 1) as i64;
        assert_eq!(spent, vec![&left], "round {round}: exactly one Some({left}), got {results:?}");
        assert_eq!(audit_len(b.store.as_ref()).await, before + 1, "round {round}: one event");
        assert_eq!(b.store.count_recovery_codes(citizen.id).await.unwrap(), left);
    }
    assert_eq!(verify_chain(&audit_all(b.store.as_ref()).await), Ok(()));
}

async fn session_step_up(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let s = session(&citizen, "step-up-1");
    store.create_session(&s, &event("login.succeeded")).await.unwrap();
    let bystander = session(&citizen, "step-up-bystander");
    store.create_session(&bystander, &event("login.succeeded")).await.unwrap();
    let before = audit_len(store).await;

    // Step up: the factor is appended and the token rotates.
    let totp_factor = VerifiedFactor { method: Method::Totp, at: T0 + 20 };
    let e = event("login.second_factor").account(citizen.id);
    assert!(store.add_session_factor("step-up-1", "step-up-2", &totp_factor, &e).await.unwrap());
    assert_audited(store, before, &e).await;
    assert_eq!(store.find_session("step-up-1", T0).await.unwrap(), None, "the old token no longer finds it");
    let stepped = SessionRecord {
        token_hash: "step-up-2".into(),
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 }, totp_factor],
        ..s.clone()
    };
    assert_eq!(store.find_session("step-up-2", T0).await.unwrap(), Some(stepped.clone()));

    // Again: factors stay in order.
    let recovery = VerifiedFactor { method: Method::RecoveryCode, at: T0 + 40 };
    assert!(store.add_session_factor("step-up-2", "step-up-3", &recovery, &event("again")).await.unwrap());
    let again = SessionRecord {
        token_hash: "step-up-3".into(),
        factors: vec![VerifiedFactor { method: Method::Password, at: T0 }, totp_factor, recovery],
        ..s.clone()
    };
    assert_eq!(store.find_session("step-up-3", T0).await.unwrap(), Some(again.clone()));
    assert_eq!(store.find_session("step-up-2", T0).await.unwrap(), None);
    let before = before + 2;

    // No such session (an old token, an unknown one): false, nothing written.
    assert!(!store.add_session_factor("step-up-1", "step-up-x", &totp_factor, &event("stale")).await.unwrap());
    assert!(!store.add_session_factor("step-up-2", "step-up-y", &totp_factor, &event("stale")).await.unwrap());
    assert!(!store.add_session_factor("nope", "step-up-z", &totp_factor, &event("unknown")).await.unwrap());
    assert_eq!(audit_len(store).await, before, "no session appends no event");
    for h in ["step-up-x", "step-up-y", "step-up-z"] {
        assert_eq!(store.find_session(h, T0).await.unwrap(), None);
    }

    // Rotating onto a token another session holds fails, and writes nothing.
    let clash = store.add_session_factor("step-up-3", "step-up-bystander", &totp_factor, &event("clash")).await;
    assert!(clash.is_err(), "{clash:?}");
    assert_eq!(audit_len(store).await, before, "nothing written on failure");
    assert_eq!(store.find_session("step-up-3", T0).await.unwrap(), Some(again.clone()));
    assert_eq!(store.find_session("step-up-bystander", T0).await.unwrap(), Some(bystander.clone()));

    // Expiry is the caller's check: an existing expired session is still stepped up.
    let expired = SessionRecord { expires_at: T0 - 1, ..session(&citizen, "step-up-expired") };
    store.create_session(&expired, &event("login.succeeded")).await.unwrap();
    assert!(store.add_session_factor("step-up-expired", "step-up-expired-2", &totp_factor, &event("x")).await.unwrap());
    let found = store.find_session("step-up-expired-2", T0 - 10).await.unwrap().unwrap();
    assert_eq!(found.factors.len(), 2);

    // Sign-out with the rotated token ends the session.
    assert!(store.delete_session("step-up-3", T0 + 50, &event("logout"), &[]).await.unwrap());
    assert!(!store.add_session_factor("step-up-3", "step-up-4", &totp_factor, &event("late")).await.unwrap());
    assert_eq!(store.find_session("step-up-bystander", T0).await.unwrap(), Some(bystander));
}

/// Two step-ups of the same session at once (two tabs): exactly one rotates it; the session
/// carries exactly that one's factor.
async fn session_step_up_concurrent(b: &Backend) {
    const CALLERS: i64 = 6;
    let (citizen, _) = seed(b.store.as_ref()).await;
    for round in 0..3 {
        let old = format!("concurrent-step-up-{round}");
        b.store.create_session(&session(&citizen, &old), &event("login.succeeded")).await.unwrap();
        let before = audit_len(b.store.as_ref()).await;
        let barrier = Arc::new(Barrier::new(CALLERS as usize));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (store, barrier, old) = (b.store.clone(), barrier.clone(), old.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let new = format!("{old}-by-{i}");
                    let factor = VerifiedFactor { method: Method::Totp, at: T0 + i };
                    let ok =
                        store.add_session_factor(&old, &new, &factor, &event("login.second_factor")).await.unwrap();
                    (i, ok)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (i, ok) = task.await.unwrap();
            if ok {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one step-up, got {winners:?}");
        let w = winners[0];
        assert_eq!(audit_len(b.store.as_ref()).await, before + 1, "round {round}: one event");
        assert_eq!(b.store.find_session(&old, T0).await.unwrap(), None);
        let found = b.store.find_session(&format!("{old}-by-{w}"), T0).await.unwrap().unwrap();
        assert_eq!(
            found.factors,
            vec![
                VerifiedFactor { method: Method::Password, at: T0 },
                VerifiedFactor { method: Method::Totp, at: T0 + w }
            ]
        );
    }
}

/// Unconfirmed TOTP enrolments go a day after their creation; confirmed ones stay.
async fn purge_totp_enrolments(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let abandoned = totp(&citizen, "abandoned", T0 - 86_400);
    let recent = totp(&citizen, "recent", T0 - 86_399);
    let old_confirmed = totp(&citizen, "old-confirmed", T0 - 30 * 86_400);
    for t in [&abandoned, &recent, &old_confirmed] {
        store.create_totp(t).await.unwrap();
    }
    assert!(store.confirm_totp(old_confirmed.id, citizen.id, 7, T0 - 30 * 86_400, &event("enrolled")).await.unwrap());
    assert_eq!(store.purge_expired(T0).await.unwrap(), 1, "the abandoned enrolment");
    let left: Vec<_> = store.list_totp(citizen.id).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(left, vec!["old-confirmed".to_string(), "recent".to_string()]);
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "idempotent");
    assert_eq!(store.purge_expired(T0 + 1).await.unwrap(), 1, "the recent one a second later");
}

/// `count_failure` / `locked_until` / `clear_failures`: a window of failures, a lock at the
/// `max`-th, expiry by time, per account and factor, and concurrent failures all counted.
async fn failure_counting(b: &Backend) {
    let store = b.store.as_ref();
    let (citizen, _) = seed(store).await;
    let other = account("failure-other", None, AsLevel::As1);
    store.create_account(&other, &event("account.created").account(other.id)).await.unwrap();
    let count = |t: i64| store.count_failure(citizen.id, "second_factor", t, 900, 3, 600);
    assert_eq!(count(T0).await.unwrap(), None);
    assert_eq!(count(T0 + 10).await.unwrap(), None);
    assert_eq!(store.locked_until(citizen.id, "second_factor", T0 + 10).await.unwrap(), None);
    assert_eq!(count(T0 + 20).await.unwrap(), Some(T0 + 620), "third failure in the window locks");
    assert_eq!(store.locked_until(citizen.id, "second_factor", T0 + 21).await.unwrap(), Some(T0 + 620));
    assert_eq!(store.locked_until(citizen.id, "second_factor", T0 + 620).await.unwrap(), None, "ends by time");
    assert_eq!(store.locked_until(citizen.id, "password", T0 + 21).await.unwrap(), None, "per factor");
    assert_eq!(store.locked_until(other.id, "second_factor", T0 + 21).await.unwrap(), None, "per account");
    // Failures outside the window do not add up.
    for t in [T0 + 2000, T0 + 3000, T0 + 4000] {
        assert_eq!(count(t).await.unwrap(), None, "window restarted at {t}");
    }
    // A success clears the count.
    count(T0 + 4010).await.unwrap();
    store.clear_failures(citizen.id, "second_factor").await.unwrap();
    assert_eq!(count(T0 + 4020).await.unwrap(), None);
    assert_eq!(count(T0 + 4030).await.unwrap(), None);
    // Concurrent failures are all counted: 9 at once with max 3 lock at least once.
    let tasks: Vec<_> = (0..9)
        .map(|_| {
            let (store, id) = (b.store.clone(), other.id);
            tokio::spawn(async move { store.count_failure(id, "second_factor", T0 + 5000, 900, 3, 600).await.unwrap() })
        })
        .collect();
    let mut locks = 0;
    for t in tasks {
        locks += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(locks, 3, "every third failure locks (again)");
}

// ---------------------------------------------------------------------------------------------
// One-time codes (email / SMS) and verified contacts.

fn otp(account: &Account, purpose: &str, created_at: i64) -> OtpChallenge {
    let (channel, destination) = match purpose {
        "verify_phone" => ("sms", "+84901234567".to_string()),
        _ => ("email", account.email.clone().unwrap_or_default()),
    };
    OtpChallenge {
        id: Uuid::new_v4(),
        account_id: account.id,
        purpose: purpose.into(),
        channel: channel.into(),
        destination,
        code_hash: format!("otp-hash-{}", Uuid::new_v4().simple()),
        attempts: 0,
        created_at,
        expires_at: created_at + 300,
        consumed_at: None,
    }
}

/// `create_otp_challenge` (audited, nothing written on failure), `latest_otp_challenge`,
/// `count_otp_challenges_since`.
async fn otp_challenges(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let (other, _) = seed(store).await;
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), None);
    assert_eq!(store.count_otp_challenges_since(citizen.id, 0).await.unwrap(), 0);
    let before = audit_len(store).await;

    // Created with its event, and read back as written.
    let first = otp(&citizen, "login", T0);
    let e = event("otp.sent").account(citizen.id).detail("channel", "email");
    store.create_otp_challenge(&first, &e).await.unwrap();
    assert_audited(store, before, &e).await;
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(first.clone()));
    assert_eq!(store.latest_otp_challenge(citizen.id, "verify_email").await.unwrap(), None, "per purpose");
    assert_eq!(store.latest_otp_challenge(other.id, "login").await.unwrap(), None, "per account");

    // The newest by created_at wins, whatever the insertion order; consumed or expired alike.
    let newer = OtpChallenge { attempts: 2, consumed_at: Some(T0 + 70), ..otp(&citizen, "login", T0 + 60) };
    let older = otp(&citizen, "login", T0 - 60);
    store.create_otp_challenge(&newer, &event("otp.sent")).await.unwrap();
    store.create_otp_challenge(&older, &event("otp.sent")).await.unwrap();
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(newer.clone()));
    let verify = otp(&citizen, "verify_phone", T0 + 30);
    store.create_otp_challenge(&verify, &event("otp.sent")).await.unwrap();
    assert_eq!(store.latest_otp_challenge(citizen.id, "verify_phone").await.unwrap(), Some(verify.clone()));
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(newer.clone()));
    // Still the latest long after it expired.
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap().unwrap().expires_at, T0 + 360);
    let theirs = otp(&other, "login", T0 + 90);
    store.create_otp_challenge(&theirs, &event("otp.sent")).await.unwrap();
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(newer.clone()));
    assert_eq!(audit_len(store).await, before + 5);

    // Counting: all purposes, created at or after `since`, per account.
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 - 60).await.unwrap(), 4);
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 - 59).await.unwrap(), 3);
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 + 30).await.unwrap(), 2);
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 + 61).await.unwrap(), 0);
    assert_eq!(store.count_otp_challenges_since(other.id, 0).await.unwrap(), 1);
    assert_eq!(store.count_otp_challenges_since(Uuid::new_v4(), 0).await.unwrap(), 0);

    // A taken id: Conflict(Other), nothing written, not even the event.
    let before = audit_len(store).await;
    let dup = OtpChallenge { created_at: T0 + 500, expires_at: T0 + 800, ..first.clone() };
    let r = store.create_otp_challenge(&dup, &event("otp.sent")).await;
    assert!(is_conflict(r, Conflict::Other), "duplicate challenge id");
    assert_eq!(audit_len(store).await, before, "a failed create_otp_challenge appends no audit event");
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(newer.clone()));
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 - 60).await.unwrap(), 4);

    // An unknown account: an error, nothing written.
    let ghost = Account { id: Uuid::new_v4(), ..citizen.clone() };
    let orphan = otp(&ghost, "login", T0);
    assert!(store.create_otp_challenge(&orphan, &event("otp.sent")).await.is_err(), "unknown account");
    assert_eq!(audit_len(store).await, before, "a failed create_otp_challenge appends no audit event");
    assert_eq!(store.latest_otp_challenge(ghost.id, "login").await.unwrap(), None);
    assert_eq!(store.record_otp_attempt(orphan.id, T0).await.unwrap(), None);
    assert_eq!(verify_chain(&audit_all(store).await), Ok(()));
}

/// `record_otp_attempt`: counts up on a live challenge; `None` once consumed or expired, or
/// for an unknown one; the count never moves then.
async fn otp_attempts(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let c = otp(&citizen, "login", T0);
    store.create_otp_challenge(&c, &event("otp.sent")).await.unwrap();
    let before = audit_len(store).await;
    assert_eq!(store.record_otp_attempt(c.id, T0 + 1).await.unwrap(), Some(1));
    assert_eq!(store.record_otp_attempt(c.id, T0 + 2).await.unwrap(), Some(2));
    // The last second before expiry still counts; at `expires_at` it is expired.
    assert_eq!(store.record_otp_attempt(c.id, c.expires_at - 1).await.unwrap(), Some(3));
    assert_eq!(store.record_otp_attempt(c.id, c.expires_at).await.unwrap(), None, "expired");
    assert_eq!(store.record_otp_attempt(c.id, c.expires_at + 100).await.unwrap(), None, "expired");
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap().unwrap().attempts, 3);
    assert_eq!(store.record_otp_attempt(Uuid::new_v4(), T0).await.unwrap(), None, "unknown");
    assert_eq!(audit_len(store).await, before, "attempts are not audited by the store");

    // Attempts start from the stored count, and stop once the challenge is consumed.
    let d = OtpChallenge { attempts: 4, ..otp(&citizen, "verify_email", T0 + 10) };
    store.create_otp_challenge(&d, &event("otp.sent")).await.unwrap();
    assert_eq!(store.record_otp_attempt(d.id, T0 + 11).await.unwrap(), Some(5));
    assert!(store.consume_otp_challenge(d.id, T0 + 12).await.unwrap());
    assert_eq!(store.record_otp_attempt(d.id, T0 + 13).await.unwrap(), None, "consumed");
    let stored = store.latest_otp_challenge(citizen.id, "verify_email").await.unwrap().unwrap();
    assert_eq!((stored.attempts, stored.consumed_at), (5, Some(T0 + 12)));
    // The other challenge was not touched.
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap().unwrap().attempts, 3);
}

/// Concurrent attempts at one challenge are all counted: the counts returned are 1..=n.
async fn otp_attempts_concurrent(b: &Backend) {
    const CALLERS: i64 = 16;
    let (citizen, _) = seed(b.store.as_ref()).await;
    let c = otp(&citizen, "login", T0);
    b.store.create_otp_challenge(&c, &event("otp.sent")).await.unwrap();
    let id = c.id;
    let barrier = Arc::new(Barrier::new(CALLERS as usize));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (store, barrier) = (b.store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.record_otp_attempt(id, T0 + 1 + i).await.unwrap()
            })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for task in tasks {
        let n = task.await.unwrap().expect("a live challenge counts every attempt");
        assert!(counts.insert(n), "count {n} returned twice");
    }
    assert_eq!(counts, (1..=CALLERS).collect::<BTreeSet<_>>());
    assert_eq!(b.store.latest_otp_challenge(citizen.id, "login").await.unwrap().unwrap().attempts, CALLERS);
}

/// `consume_otp_challenge`: once, only while unexpired; unknown ones are refused.
async fn otp_consumption(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let c = otp(&citizen, "login", T0);
    store.create_otp_challenge(&c, &event("otp.sent")).await.unwrap();
    let before = audit_len(store).await;
    assert!(!store.consume_otp_challenge(c.id, c.expires_at).await.unwrap(), "expired at expires_at");
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(c.clone()), "unchanged");
    assert!(store.consume_otp_challenge(c.id, c.expires_at - 1).await.unwrap(), "live until then");
    assert!(!store.consume_otp_challenge(c.id, c.expires_at - 1).await.unwrap(), "once");
    assert!(!store.consume_otp_challenge(c.id, T0 + 10).await.unwrap(), "once");
    let spent = OtpChallenge { consumed_at: Some(c.expires_at - 1), ..c.clone() };
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(spent), "first time kept");
    assert!(!store.consume_otp_challenge(Uuid::new_v4(), T0).await.unwrap(), "unknown");
    // Created already consumed: cannot be consumed again.
    let pre = OtpChallenge { consumed_at: Some(T0 + 1), ..otp(&citizen, "verify_email", T0) };
    store.create_otp_challenge(&pre, &event("otp.sent")).await.unwrap();
    assert!(!store.consume_otp_challenge(pre.id, T0 + 2).await.unwrap());
    // Consuming does not touch attempts or other challenges.
    let other = otp(&citizen, "verify_phone", T0);
    store.create_otp_challenge(&other, &event("otp.sent")).await.unwrap();
    assert_eq!(store.record_otp_attempt(other.id, T0 + 1).await.unwrap(), Some(1));
    assert!(store.consume_otp_challenge(other.id, T0 + 2).await.unwrap());
    assert_eq!(
        store.latest_otp_challenge(citizen.id, "verify_phone").await.unwrap(),
        Some(OtpChallenge { attempts: 1, consumed_at: Some(T0 + 2), ..other })
    );
    assert_eq!(audit_len(store).await, before + 2, "only the two creations were audited");
}

/// The same challenge consumed several times at once: exactly one caller gets `true`.
async fn otp_consumption_concurrent(b: &Backend) {
    const CALLERS: i64 = 8;
    let (citizen, _) = seed(b.store.as_ref()).await;
    for round in 0..4 {
        let c = otp(&citizen, "login", T0 + round);
        b.store.create_otp_challenge(&c, &event("otp.sent")).await.unwrap();
        let id = c.id;
        let barrier = Arc::new(Barrier::new(CALLERS as usize));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (store, barrier) = (b.store.clone(), barrier.clone());
                let at = T0 + 100 + i;
                tokio::spawn(async move {
                    barrier.wait().await;
                    (at, store.consume_otp_challenge(id, at).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (at, ok) = task.await.unwrap();
            if ok {
                winners.push(at);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one consumer, got {winners:?}");
        let stored = b.store.latest_otp_challenge(citizen.id, "login").await.unwrap().unwrap();
        assert_eq!((stored.id, stored.consumed_at), (id, Some(winners[0])), "round {round}");
    }
}

/// `mark_contact_verified`: only the account's current email / phone is marked, with its
/// event; anything else changes nothing and appends nothing.
async fn contact_verification(b: &Backend) {
    let store = b.store.as_ref();
    // Stored verification times round-trip through create/get.
    let pre = Account {
        phone: Some("+84912345678".into()),
        email_verified_at: Some(T0 - 10),
        phone_verified_at: Some(T0 - 20),
        ..account("dung.pham", None, AsLevel::As1)
    };
    store.create_account(&pre, &event("account.created")).await.unwrap();
    assert_eq!(store.get_account(pre.id).await.unwrap(), Some(pre.clone()));
    assert_eq!(store.find_account_by_username("dung.pham").await.unwrap(), Some(pre.clone()));

    let citizen = Account { phone: Some("+84901234567".into()), ..account("giang.vo", None, AsLevel::As1) };
    store.create_account(&citizen, &event("account.created")).await.unwrap();
    assert_eq!(store.get_account(citizen.id).await.unwrap().unwrap().email_verified_at, None);
    let before = audit_len(store).await;

    // The current email: marked, with updated_at, and audited.
    let e = event("account.email_verified").account(citizen.id);
    assert!(store.mark_contact_verified(citizen.id, "email", "giang.vo@example.vn", T0 + 10, &e).await.unwrap());
    assert_audited(store, before, &e).await;
    let email_ok = Account { email_verified_at: Some(T0 + 10), updated_at: T0 + 10, ..citizen.clone() };
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(email_ok.clone()));

    // The phone, through the sms channel.
    let e = event("account.phone_verified").account(citizen.id);
    assert!(store.mark_contact_verified(citizen.id, "sms", "+84901234567", T0 + 20, &e).await.unwrap());
    assert_audited(store, before + 1, &e).await;
    let both_ok = Account { phone_verified_at: Some(T0 + 20), updated_at: T0 + 20, ..email_ok.clone() };
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(both_ok.clone()));

    // Refusals: another destination, the email sent as a phone number, an unknown channel,
    // an unknown account, an account without a phone. Nothing changes, nothing is appended.
    let refused: [(Uuid, &str, &str); 7] = [
        (citizen.id, "email", "someone.else@example.vn"),
        (citizen.id, "email", "GIANG.VO@example.vn"),
        (citizen.id, "sms", "+84900000000"),
        (citizen.id, "sms", "giang.vo@example.vn"),
        (citizen.id, "phone", "+84901234567"),
        (Uuid::new_v4(), "email", "giang.vo@example.vn"),
        (pre.id, "email", "giang.vo@example.vn"),
    ];
    for (id, channel, destination) in refused {
        let r = store.mark_contact_verified(id, channel, destination, T0 + 30, &event("refused")).await.unwrap();
        assert!(!r, "{channel} {destination} must not be marked");
    }
    let (nophone, _) = seed(store).await;
    let before = audit_len(store).await;
    assert!(!store.mark_contact_verified(nophone.id, "sms", "", T0 + 30, &event("refused")).await.unwrap());
    assert_eq!(audit_len(store).await, before, "refusals append nothing");
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(both_ok.clone()));
    assert_eq!(store.get_account(pre.id).await.unwrap(), Some(pre.clone()));
    assert_eq!(store.get_account(nophone.id).await.unwrap(), Some(nophone.clone()));

    // The contact changed after the code was sent: the old destination is not marked.
    b.raw(&[
        "UPDATE accounts SET email = 'giang.new@example.vn', email_verified_at = NULL WHERE username = 'giang.vo'",
    ])
    .await;
    let changed = Account { email: Some("giang.new@example.vn".into()), email_verified_at: None, ..both_ok.clone() };
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(changed.clone()));
    assert!(
        !store.mark_contact_verified(citizen.id, "email", "giang.vo@example.vn", T0 + 40, &event("x")).await.unwrap()
    );
    assert_eq!(audit_len(store).await, before);
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(changed.clone()));
    assert!(
        store.mark_contact_verified(citizen.id, "email", "giang.new@example.vn", T0 + 50, &event("ok")).await.unwrap()
    );
    let remarked = Account { email_verified_at: Some(T0 + 50), updated_at: T0 + 50, ..changed };
    assert_eq!(store.get_account(citizen.id).await.unwrap(), Some(remarked.clone()));
    // Marking again moves the time.
    assert!(
        store.mark_contact_verified(citizen.id, "email", "giang.new@example.vn", T0 + 60, &event("ok")).await.unwrap()
    );
    assert_eq!(
        store.get_account(citizen.id).await.unwrap(),
        Some(Account { email_verified_at: Some(T0 + 60), updated_at: T0 + 60, ..remarked })
    );
    assert_eq!(audit_len(store).await, before + 2);
    assert_eq!(verify_chain(&audit_all(store).await), Ok(()));
}

/// `purge_expired` drops challenges two days past their expiry, and no others.
async fn purge_otp_challenges(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    // expires_at = created_at + 300.
    let gone = otp(&citizen, "login", T0 - 2 * 86_400 - 300);
    let kept = otp(&citizen, "login", T0 - 2 * 86_400 - 299);
    let recent = OtpChallenge { consumed_at: Some(T0 - 5), ..otp(&citizen, "verify_email", T0 - 10) };
    for c in [&gone, &kept, &recent] {
        store.create_otp_challenge(c, &event("otp.sent")).await.unwrap();
    }
    assert_eq!(store.count_otp_challenges_since(citizen.id, 0).await.unwrap(), 3);
    assert_eq!(store.purge_expired(T0).await.unwrap(), 1, "the challenge two days past expiry");
    assert_eq!(store.count_otp_challenges_since(citizen.id, 0).await.unwrap(), 2);
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), Some(kept.clone()));
    // A day's worth is always still there for the cap.
    assert_eq!(store.count_otp_challenges_since(citizen.id, T0 - 86_400).await.unwrap(), 1);
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "idempotent");
    assert_eq!(store.purge_expired(T0 + 1).await.unwrap(), 1, "the next one a second later");
    assert_eq!(store.latest_otp_challenge(citizen.id, "login").await.unwrap(), None);
    assert_eq!(store.latest_otp_challenge(citizen.id, "verify_email").await.unwrap(), Some(recent));
}

/// `rename_totp` only for the owner's app, audited; the development outbox lists newest first.
async fn totp_rename_and_outbox(store: &dyn Store) {
    let (citizen, _) = seed(store).await;
    let app = TotpCredential {
        id: Uuid::new_v4(),
        account_id: citizen.id,
        name: String::new(),
        secret_enc: "sealed".into(),
        last_step: None,
        created_at: T0,
        confirmed_at: None,
        last_used_at: None,
    };
    store.create_totp(&app).await.unwrap();
    let before = audit_len(store).await;
    assert!(!store.rename_totp(app.id, Uuid::new_v4(), "x", &event("factor.renamed")).await.unwrap(), "not the owner");
    assert_eq!(audit_len(store).await, before, "no event when nothing changed");
    let e = event("factor.renamed").account(citizen.id);
    assert!(store.rename_totp(app.id, citizen.id, "Điện thoại của Bình", &e).await.unwrap());
    assert_audited(store, before, &e).await;
    assert_eq!(store.list_totp(citizen.id).await.unwrap()[0].name, "Điện thoại của Bình");

    let msg = |n: i64| OutboxMessage {
        id: Uuid::new_v4(),
        channel: "sms".into(),
        recipient: "0901234289".into(),
        subject: String::new(),
        body: format!("Ma xac thuc {n}"),
        created_at: T0 + n,
    };
    for n in 0..5 {
        store.push_outbox(&msg(n)).await.unwrap();
    }
    let listed = store.list_outbox(3).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.created_at).collect::<Vec<_>>(), vec![T0 + 4, T0 + 3, T0 + 2]);
    assert_eq!(listed[0].body, "Ma xac thuc 4");
}
