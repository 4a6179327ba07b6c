//! Hardening (issue 9) against the running server: throttling of password guessing per user name
//! and per source address (shared by instances on one database), rate limits on registration and
//! code sending, the citizen's sessions (idle timeout, list, sign out everywhere), `/readyz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use xacthuc::store::ClientSettings;

const LAN: Citizen = Citizen { username: "lan.tran", password: PASSWORD, identity: None };
const FIREFOX_ANDROID: &str = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0";
const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

fn browser(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

/// Posts the sign-in form; returns the status and the page (or Location).
async fn sign_in(server: &TestServer, http: &reqwest::Client, username: &str, password: &str) -> (u16, String) {
    sign_in_from(server, http, username, password, None).await
}

async fn sign_in_from(
    server: &TestServer,
    http: &reqwest::Client,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, String) {
    let page = http.get(server.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", hidden(&page, "csrf")), ("username", username.into()), ("password", password.into())];
    let mut req = http.post(server.url("/login")).form(&form);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = if status == 303 { location(&resp) } else { resp.text().await.unwrap() };
    (status, text)
}

async fn audit_kinds(server: &TestServer) -> Vec<String> {
    server.state.store.list_audit(1, 10_000).await.unwrap().into_iter().map(|e| e.event.kind).collect()
}

/// Registers LAN in a browser of its own and signs it out again (its cookie jar is dropped).
async fn with_lan(server: &TestServer) {
    let resp = register(server, &client(), &LAN).await;
    assert_eq!(resp.status(), 303, "registration failed");
}

/// A gateway that lets two failures pass and then makes each wait ten minutes, with LAN
/// registered.
async fn lan_with_two_free_failures() -> TestServer {
    let server = TestServer::start_full(
        None,
        false,
        &[("XACTHUC_THROTTLE__FREE_FAILURES", "2"), ("XACTHUC_THROTTLE__DELAY_SECONDS", "600")],
    )
    .await;
    with_lan(&server).await;
    server
}

#[tokio::test]
async fn a_few_typos_cost_nothing_then_each_failure_makes_the_next_attempt_wait() {
    let server = lan_with_two_free_failures().await;
    let http = client();
    // Two typos, then the right password: signed in, and the count starts again.
    assert_eq!(sign_in(&server, &http, "lan.tran", "sai mật khẩu 1").await.0, 401);
    assert_eq!(sign_in(&server, &http, "lan.tran", "sai mật khẩu 2").await.0, 401);
    assert_eq!(sign_in(&server, &http, "lan.tran", PASSWORD).await.0, 303);
    for known_or_not in ["lan.tran", "khong.ton.tai"] {
        let http = client();
        for i in 0..3 {
            let (status, _) = sign_in(&server, &http, known_or_not, &format!("đoán sai {i}")).await;
            assert_eq!(status, 401, "{known_or_not}: failure {i} is answered at once");
        }
        // The third failure set a wait: even the right password is not checked now.
        let (status, page) = sign_in(&server, &http, known_or_not, PASSWORD).await;
        assert_eq!(status, 429, "{known_or_not}");
        assert!(page.contains("Quá nhiều lần thử không thành công. Vui lòng thử lại sau"), "{page}");
        assert!(!page.contains("Tên đăng nhập hoặc mật khẩu không đúng"), "no password verdict while waiting");
    }
}

/// Posts the sign-in form from `n` browsers at the same moment; returns the statuses, sorted.
async fn sign_in_together(server: &TestServer, username: &str, passwords: &[String]) -> Vec<u16> {
    let mut ready = Vec::new();
    for password in passwords {
        let http = client();
        let page = http.get(server.url("/login")).send().await.unwrap().text().await.unwrap();
        let form =
            [("csrf", hidden(&page, "csrf")), ("username", username.to_string()), ("password", password.clone())];
        ready.push((http, form));
    }
    let posts = ready.into_iter().map(|(http, form)| {
        let url = server.url("/login");
        tokio::spawn(async move { http.post(url).form(&form).send().await.unwrap().status().as_u16() })
    });
    let mut statuses = Vec::new();
    for post in posts.collect::<Vec<_>>() {
        statuses.push(post.await.unwrap());
    }
    statuses.sort_unstable();
    statuses
}

#[tokio::test]
async fn attempts_on_one_user_name_take_turns() {
    let server = lan_with_two_free_failures().await;
    // The citizen signing in on eight devices at once: every one gets in, none is taken for a
    // guesser (successes are not counted as attempts).
    let right = vec![PASSWORD.to_string(); 8];
    assert_eq!(sign_in_together(&server, "lan.tran", &right).await, vec![303; 8]);
    // Eight guesses at once are no faster than one after the other: the two free failures and
    // the third, which sets the wait, are checked; the other five find the wait.
    let wrong: Vec<String> = (0..8).map(|i| format!("đoán sai {i}")).collect();
    assert_eq!(sign_in_together(&server, "lan.tran", &wrong).await, [vec![401; 3], vec![429; 5]].concat());
    let failed = audit_kinds(&server).await.iter().filter(|k| *k == "login.failed").count();
    assert_eq!(failed, 3, "only the passwords actually checked are audited as failures");
}

#[tokio::test]
async fn the_lock_looks_the_same_for_an_unknown_user_name_and_is_audited() {
    let server = TestServer::start_full(
        None,
        false,
        &[("XACTHUC_THROTTLE__FREE_FAILURES", "2"), ("XACTHUC_THROTTLE__LOCK_AFTER", "3")],
    )
    .await;
    with_lan(&server).await;
    let mut pages = Vec::new();
    for name in ["lan.tran", "khong.ton.tai"] {
        let http = client();
        for i in 0..3 {
            assert_eq!(sign_in(&server, &http, name, &format!("sai {i}")).await.0, 401);
        }
        let (status, page) = sign_in(&server, &http, name, PASSWORD).await;
        assert_eq!(status, 429);
        // The page differs only by the name typed in and the time shown.
        let message = page.split("role=\"alert\"").nth(1).unwrap().split("</div>").next().unwrap().to_string();
        pages.push(message.chars().filter(|c| !c.is_ascii_digit()).collect::<String>());
    }
    assert_eq!(pages[0], pages[1], "the lock must not tell whether the account exists");
    let events = server.state.store.list_audit(1, 10_000).await.unwrap();
    let locks: Vec<_> = events.iter().filter(|e| e.event.kind == "login.locked").collect();
    assert_eq!(locks.len(), 2, "one lock per user name");
    assert!(locks.iter().any(|e| e.event.account_id.is_some()), "the known account's lock names it");
    assert!(
        locks.iter().any(|e| e.event.account_id.is_none() && e.event.details.get("username_hash").is_some()),
        "an unknown name is kept only as a keyed hash"
    );
}

#[tokio::test]
async fn after_the_hard_limit_only_staff_or_a_second_factor_unlock() {
    // max_consecutive = 4 stands in for 100 (the same rule, a shorter test).
    let server = TestServer::start_full(
        None,
        false,
        &[
            ("XACTHUC_THROTTLE__FREE_FAILURES", "3"),
            ("XACTHUC_THROTTLE__LOCK_AFTER", "10"),
            ("XACTHUC_THROTTLE__MAX_CONSECUTIVE", "4"),
        ],
    )
    .await;
    with_lan(&server).await;
    let http = client();
    for i in 0..4 {
        assert_eq!(sign_in(&server, &http, "lan.tran", &format!("sai {i}")).await.0, 401);
    }
    let (status, page) = sign_in(&server, &http, "lan.tran", PASSWORD).await;
    assert_eq!(status, 429);
    assert!(page.contains("khóa truy cập (passkey) hoặc chứng thư số"), "{page}");
    assert!(audit_kinds(&server).await.contains(&"login.locked_hard".to_string()));

    // Staff unlock from the command line.
    let state = &server.state;
    let account = state.store.find_account_by_username("lan.tran").await.unwrap().unwrap();
    let out = cli(&state.config.data_dir, &["account", "unlock", "--username", "lan.tran"]).await;
    assert!(out.status.success() && text(&out).contains("unlocked"), "{}", text(&out));
    assert_eq!(sign_in(&server, &http, "lan.tran", PASSWORD).await.0, 303);

    // Locked again; a sign-in with another factor (a passkey, a certificate) unlocks it.
    let other = client();
    for i in 0..4 {
        assert_eq!(sign_in(&server, &other, "lan.tran", &format!("lại sai {i}")).await.0, 401);
    }
    assert_eq!(sign_in(&server, &other, "lan.tran", PASSWORD).await.0, 429);
    let factor = xacthuc::assurance::VerifiedFactor {
        method: xacthuc::assurance::Method::WebAuthn { user_verified: true },
        at: xacthuc::app::now(),
    };
    xacthuc::service::login::start_session(state, &account, vec![factor], xacthuc::app::now()).await.unwrap();
    assert_eq!(sign_in(&server, &other, "lan.tran", PASSWORD).await.0, 303);
    let kinds = audit_kinds(&server).await;
    assert_eq!(kinds.iter().filter(|k| *k == "login.unlocked").count(), 2, "{kinds:?}");

    // Locked a third time: the citizen unlocks with the password and a recovery code, once the
    // lock's time has passed.
    let codes =
        xacthuc::service::second_factor::new_recovery_codes(state, &account, xacthuc::app::now()).await.unwrap();
    let third = client();
    for i in 0..4 {
        assert_eq!(sign_in(&server, &third, "lan.tran", &format!("lần ba sai {i}")).await.0, 401);
    }
    let (status, page) = sign_in(&server, &third, "lan.tran", PASSWORD).await;
    assert_eq!(status, 429);
    assert!(page.contains("href=\"/login/unlock\""), "the locked page offers the unlock page");
    let unlock = |code: &str, password: &str, name: &str| {
        let (third, code, password, name) = (third.clone(), code.to_string(), password.to_string(), name.to_string());
        let url = server.url("/login/unlock");
        async move {
            let page = third.get(&url).send().await.unwrap().text().await.unwrap();
            let form = [("csrf", hidden(&page, "csrf")), ("username", name), ("password", password), ("code", code)];
            let resp = third.post(&url).form(&form).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };
    let (status, page) = unlock(&codes[0], PASSWORD, "lan.tran").await;
    assert_eq!(status, 429, "not before the lock's time has passed: {page}");
    let pool = sqlx::SqlitePool::connect(&state.config.database_url()).await.unwrap();
    sqlx::query("UPDATE throttle SET locked_until = 0 WHERE hard_locked = 1").execute(&pool).await.unwrap();
    assert_eq!(unlock("0000-0000-0000-0000", PASSWORD, "lan.tran").await.0, 401, "a wrong code");
    assert_eq!(unlock(&codes[0], "sai mật khẩu", "lan.tran").await.0, 401, "a wrong password");
    assert_eq!(unlock(&codes[1], PASSWORD, "chua.tung.khoa").await.0, 400, "not locked: sign in as usual");
    assert_eq!(unlock(&codes[1], PASSWORD, "lan.tran").await.0, 303);
    assert_eq!(third.get(server.url("/account")).send().await.unwrap().status(), 200, "signed in");
    assert_eq!(sign_in(&server, &client(), "lan.tran", PASSWORD).await.0, 303, "the password works again");
    let kinds = audit_kinds(&server).await;
    assert_eq!(kinds.iter().filter(|k| *k == "login.unlocked").count(), 3, "{kinds:?}");
}

#[tokio::test]
async fn a_source_address_is_locked_after_many_failures_and_forwarded_for_counts_only_from_trusted_proxies() {
    let server = TestServer::start_full(None, false, &[("XACTHUC_THROTTLE__ADDRESS_FAILURES", "3")]).await;
    with_lan(&server).await;
    let http = client();
    // Different names each time (no per-name delay), and a forged X-Forwarded-For that an
    // untrusted peer cannot use to escape.
    for i in 0..3 {
        let xff = format!("198.51.100.{i}");
        assert_eq!(sign_in_from(&server, &http, &format!("ten{i}"), "sai", Some(&xff)).await.0, 401);
    }
    let (status, page) = sign_in(&server, &http, "lan.tran", PASSWORD).await;
    assert_eq!(status, 429, "the address is locked, whatever the name");
    assert!(page.contains("Vui lòng thử lại sau"));
    assert!(audit_kinds(&server).await.contains(&"login.address_locked".to_string()));

    // Behind a trusted proxy, each client address is counted on its own.
    let server = TestServer::start_full(
        None,
        false,
        &[("XACTHUC_THROTTLE__ADDRESS_FAILURES", "3"), ("XACTHUC_THROTTLE__TRUSTED_PROXIES", "[\"127.0.0.1\"]")],
    )
    .await;
    with_lan(&server).await;
    for i in 0..3 {
        let (status, _) = sign_in_from(&server, &http, &format!("ten{i}"), "sai", Some("203.0.113.9")).await;
        assert_eq!(status, 401);
    }
    assert_eq!(sign_in_from(&server, &client(), "lan.tran", PASSWORD, Some("203.0.113.9")).await.0, 429);
    assert_eq!(sign_in_from(&server, &client(), "lan.tran", PASSWORD, Some("192.0.2.44")).await.0, 303);
}

/// Two gateway instances on one database: failures at either count for both.
async fn two_instances_agree(url: &str) {
    // One data key for both, as in a real deployment (it keys the counters and seals the keys).
    let key = xacthuc::crypto::secretbox::DataKey::generate().unwrap().to_base64();
    let extra =
        [("XACTHUC_THROTTLE__FREE_FAILURES", "3"), ("XACTHUC_THROTTLE__LOCK_AFTER", "4"), ("XACTHUC_DATA_KEY", &key)];
    let a = TestServer::start_full(Some(url), false, &extra).await;
    let b = TestServer::start_full(Some(url), false, &extra).await;
    with_lan(&a).await;
    let http = client();
    // Alternate instances: 4 failures in all lock the name on both.
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(sign_in(server, &http, "lan.tran", &format!("sai {i}")).await.0, 401, "failure {i}");
    }
    for server in [&a, &b] {
        assert_eq!(sign_in(server, &client(), "lan.tran", PASSWORD).await.0, 429, "locked on both instances");
    }
    // Unknown names too, with identical answers on both.
    for (i, server) in [&b, &a, &b, &a].into_iter().enumerate() {
        assert_eq!(sign_in(server, &http, "chua.dang.ky", &format!("sai {i}")).await.0, 401);
    }
    for server in [&a, &b] {
        assert_eq!(sign_in(server, &client(), "chua.dang.ky", PASSWORD).await.0, 429);
    }
    let locks =
        a.state.store.list_audit(1, 10_000).await.unwrap().into_iter().filter(|e| e.event.kind == "login.locked");
    assert_eq!(locks.count(), 2, "each lock recorded once, whichever instance saw the failure");
}

#[tokio::test]
async fn two_instances_sharing_one_sqlite_database_agree_on_locks() {
    let dir = tempfile::tempdir().unwrap();
    two_instances_agree(&format!("sqlite:{}", dir.path().join("shared.db").display())).await;
}

#[tokio::test]
async fn two_instances_sharing_one_postgres_database_agree_on_locks() {
    let Some(db) = PgDatabase::create().await else {
        println!("{POSTGRES_ENV} is unset; the PostgreSQL test was not run");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { two_instances_agree(&url).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn registrations_are_limited_per_source_address() {
    let server = TestServer::start_full(None, false, &[("XACTHUC_THROTTLE__REGISTRATIONS_PER_ADDRESS", "2")]).await;
    for name in ["mot.nguoi", "hai.nguoi"] {
        let c = Citizen { username: name, password: PASSWORD, identity: None };
        assert_eq!(register(&server, &client(), &c).await.status(), 303);
    }
    let c = Citizen { username: "ba.nguoi", password: PASSWORD, identity: None };
    let resp = register(&server, &client(), &c).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.text().await.unwrap().contains("Quá nhiều lần thử"));
    assert!(server.state.store.find_account_by_username("ba.nguoi").await.unwrap().is_none());
    assert!(audit_kinds(&server).await.contains(&"rate.limited".to_string()));
}

#[tokio::test]
async fn code_sending_is_limited_per_source_address() {
    let server = TestServer::start_full(None, false, &[("XACTHUC_THROTTLE__CODES_PER_ADDRESS", "1")]).await;
    let http = client();
    assert_eq!(register(&server, &http, &LAN).await.status(), 303);
    let page = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let send = || http.post(server.url("/account/contact/send")).form(&[("csrf", csrf.as_str()), ("channel", "email")]);
    let throttled = "Quá nhiều lần thử không thành công";
    let first = send().send().await.unwrap().text().await.unwrap();
    assert!(!first.contains(throttled), "the first request is not rate-limited");
    let resp = send().send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.text().await.unwrap().contains(throttled));
}

/// A portal's back-channel logout endpoint on 127.0.0.1:0 that reports each POST.
async fn backchannel() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(move |_: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/bc", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_signs_out_everywhere_else_telling_portals() {
    let server = TestServer::start().await;
    let (bc, mut received) = backchannel().await;
    let cb = "https://a.example.vn/cb";
    let settings = ClientSettings { backchannel_logout_uri: Some(bc), ..Default::default() };
    add_client_with(&server, "portal-a", cb, Some("portal-a-secret-0123456789abcdefghijkl"), settings).await;

    let phone = browser(FIREFOX_ANDROID);
    assert_eq!(register(&server, &phone, &LAN).await.status(), 303);
    // The phone signs in to a portal, which gets tokens.
    let params = [("response_type", "code"), ("client_id", "portal-a"), ("redirect_uri", cb), ("scope", "openid")];
    let code = authorize_code(&server, &phone, &params, cb, (LAN.username, PASSWORD)).await;
    let tokens: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal-a", Some("portal-a-secret-0123456789abcdefghijkl"))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", cb)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    let laptop = browser(CHROME_WINDOWS);
    assert_eq!(sign_in(&server, &laptop, "lan.tran", PASSWORD).await.0, 303);
    let page = laptop.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Phiên đăng nhập"), "the sessions section is on the account page");
    assert!(page.contains("Firefox · Android") && page.contains("Chrome · Windows"), "{page}");
    let current = page.split("aria-current=\"true\"").nth(1).unwrap().split("</li>").next().unwrap();
    assert!(current.contains("Chrome · Windows") && current.contains("Phiên này"), "the current session is marked");

    let csrf = hidden(&page, "csrf");
    let resp = laptop.post(server.url("/account/sessions/end-others")).form(&[("csrf", csrf)]).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    // The phone is signed out, its portal told by back channel, its tokens dead.
    assert_eq!(phone.get(server.url("/account")).send().await.unwrap().status(), 303);
    let body = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
    assert!(body.starts_with("logout_token="), "{body}");
    let status =
        reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(&access).send().await.unwrap().status();
    assert_eq!(status, 401);
    // The laptop stays signed in, alone in the list.
    let page = laptop.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Firefox · Android"));
    assert!(!page.contains("/account/sessions/end-others"), "nothing else to sign out");
    let kinds = audit_kinds(&server).await;
    assert!(kinds.contains(&"session.signed_out_everywhere".to_string()), "{kinds:?}");
    // The form needs the CSRF token.
    let resp = laptop.post(server.url("/account/sessions/end-others")).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn an_idle_session_ends_and_so_does_one_past_its_absolute_lifetime() {
    let server = TestServer::start().await;
    let http = browser(FIREFOX_ANDROID);
    assert_eq!(register(&server, &http, &LAN).await.status(), 303);
    assert_eq!(http.get(server.url("/account")).send().await.unwrap().status(), 200);
    let pool = sqlx::SqlitePool::connect(&server.state.config.database_url()).await.unwrap();
    let idle = server.state.config.session.idle_seconds;
    // Unused for longer than the idle timeout (but well within the absolute lifetime).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE sessions SET created_at = created_at - {0}, last_seen_at = last_seen_at - {0}",
        idle + 5
    )))
    .execute(&pool)
    .await
    .unwrap();
    let resp = http.get(server.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "an idle session no longer signs in");
    assert!(location(&resp).starts_with("/login"));

    // Active, but past the absolute lifetime.
    let http = browser(CHROME_WINDOWS);
    assert_eq!(sign_in(&server, &http, "lan.tran", PASSWORD).await.0, 303);
    assert_eq!(http.get(server.url("/account")).send().await.unwrap().status(), 200);
    sqlx::query("UPDATE sessions SET expires_at = created_at").execute(&pool).await.unwrap();
    assert_eq!(http.get(server.url("/account")).send().await.unwrap().status(), 303);
}

#[tokio::test]
async fn readyz_reports_the_database_keys_and_policies() {
    let policy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/ho-kinh-doanh.toml")).unwrap();
    let server = TestServer::start_with_policies(None, &[("ho-kinh-doanh.toml", &policy)]).await;
    let resp = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"ready": true, "database": "ok", "signing_keys": "ok", "policies": "ok"}));

    // An operator breaks a policy file: not ready (a restart would refuse it).
    std::fs::write(server.state.config.policies_dir.join("ho-kinh-doanh.toml"), "service = [").unwrap();
    let resp = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "ok");
    assert_ne!(body["policies"], "ok");
    // Liveness is unaffected.
    assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
}

// ---------------------------------------------------------------------------------------------
// The command line: account unlock, audit verify/export, backup/restore.

/// Runs the real binary on `dir` (off the async runtime: the server under test keeps serving).
async fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xacthuc"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
        .env("XACTHUC_PASSWORD__ITERATIONS", "1");
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A server with a few citizens (each registration and sign-in is an audit event).
async fn server_with_history() -> TestServer {
    let server = TestServer::start().await;
    for name in ["an.nguyen", "binh.le", "chi.pham"] {
        let c = Citizen { username: name, password: PASSWORD, identity: None };
        assert_eq!(register(&server, &client(), &c).await.status(), 303);
    }
    assert_eq!(sign_in(&server, &client(), "an.nguyen", "sai").await.0, 401);
    server
}

/// A copy of the server's database (taken with `xacthuc backup`) in a data directory of its own,
/// changed with `tamper` (raw SQL, as an intruder with file access would).
async fn tampered_copy(server: &TestServer, tamper: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("xacthuc.db");
    let out = cli(&server.state.config.data_dir, &["backup", "--out", db.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display())).await.unwrap();
    for sql in tamper {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
    }
    pool.close().await;
    dir
}

#[tokio::test]
async fn audit_verify_names_the_first_edited_deleted_or_reordered_event() {
    let server = server_with_history().await;
    let n = server.state.store.list_audit(1, 10_000).await.unwrap().len() as i64;
    assert!(n >= 7, "{n} events");
    let ok = cli(&server.state.config.data_dir, &["audit", "verify"]).await;
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains(&format!("audit chain intact: {n} events")), "{}", text(&ok));

    let last = format!("first bad event is {}", n);
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["UPDATE audit_events SET details = '{\"amr\":[\"pwd\",\"otp\"]}' WHERE seq = 4"],
            "broken at event 4",
            "edited",
        ),
        (vec!["DELETE FROM audit_events WHERE seq = 3"], "broken at event 3", "deleted or reordered"),
        (
            vec![
                "UPDATE audit_events SET seq = -1 WHERE seq = 2",
                "UPDATE audit_events SET seq = 2 WHERE seq = 5",
                "UPDATE audit_events SET seq = 5 WHERE seq = -1",
            ],
            "broken at event 2",
            "deleted or reordered",
        ),
        (vec!["DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)"], &last, "deleted"),
    ];
    for (tamper, first_bad, reason) in cases {
        let copy = tampered_copy(&server, &tamper).await;
        let out = cli(copy.path(), &["audit", "verify"]).await;
        let says = text(&out);
        assert!(!out.status.success(), "{tamper:?} not detected: {says}");
        assert!(says.contains(first_bad) && says.contains(reason), "{tamper:?}: {says}");
    }
}

#[tokio::test]
async fn audit_export_writes_json_lines_since_a_time() {
    let server = server_with_history().await;
    let dir = server.state.config.data_dir.clone();
    let all = cli(&dir, &["audit", "export"]).await;
    assert!(all.status.success(), "{}", text(&all));
    let lines: Vec<Value> =
        String::from_utf8(all.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stored = server.state.store.list_audit(1, 10_000).await.unwrap();
    assert_eq!(lines.len(), stored.len());
    for (line, e) in lines.iter().zip(&stored) {
        assert_eq!(line["seq"], e.seq);
        assert_eq!(line["kind"], e.event.kind.as_str());
        assert_eq!(line["hash"], e.hash.as_str());
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }
    assert!(lines.iter().any(|l| l["kind"] == "login.failed"));
    // --since: unix seconds or RFC 3339; nothing after the future.
    let first_at = stored[0].event.at;
    let later = cli(&dir, &["audit", "export", "--since", &(first_at + 3600).to_string()]).await;
    assert!(later.status.success() && later.stdout.is_empty(), "{}", text(&later));
    let rfc = cli(&dir, &["audit", "export", "--since", "2020-01-01T07:00:00+07:00"]).await;
    assert_eq!(String::from_utf8(rfc.stdout).unwrap().lines().count(), stored.len());
    let bad = cli(&dir, &["audit", "export", "--since", "hôm qua"]).await;
    assert!(!bad.status.success() && text(&bad).contains("RFC 3339"), "{}", text(&bad));
}

#[tokio::test]
async fn a_backup_taken_under_write_load_restores_every_account() {
    let server = std::sync::Arc::new(
        TestServer::start_full(None, false, &[("XACTHUC_THROTTLE__REGISTRATIONS_PER_ADDRESS", "10000")]).await,
    );
    let dir = server.state.config.data_dir.clone();
    let registered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The write load: registrations (account, password, audit event, session), one after another.
    let writer = {
        let (registered, stop, server) = (registered.clone(), stop.clone(), server.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let name = format!("cong.dan.{i}");
                let c = Citizen { username: &name, password: PASSWORD, identity: None };
                assert_eq!(register(&server, &client(), &c).await.status(), 303);
                registered.lock().unwrap().push(name);
                i += 1;
            }
        })
    };
    while registered.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<String> = registered.lock().unwrap().clone();
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("xacthuc-backup.db");
    let out = cli(&dir, &["backup", "--out", backup.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let during = registered.lock().unwrap().len();
    assert!(during > before.len(), "the backup ran while accounts were being written");
    // A backup never overwrites.
    let again = cli(&dir, &["backup", "--out", backup.to_str().unwrap()]).await;
    assert!(!again.status.success());

    // Restore into a new data directory, with the data key kept alongside (docs/operations.md).
    let target = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("data.key"), target.path().join("data.key")).unwrap();
    let out = cli(target.path(), &["restore", "--from", backup.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("audit chain intact"));
    // An existing database is replaced only with --force.
    let out = cli(target.path(), &["restore", "--from", backup.to_str().unwrap()]).await;
    assert!(!out.status.success() && text(&out).contains("--force"), "{}", text(&out));
    let out = cli(target.path(), &["restore", "--from", backup.to_str().unwrap(), "--force"]).await;
    assert!(out.status.success(), "{}", text(&out));

    let restored = TestServer::start_in(target).await;
    for name in &before {
        let a = restored.state.store.find_account_by_username(name).await.unwrap();
        assert!(a.is_some_and(|a| a.password_hash.is_some()), "{name} lost");
    }
    // Every account in the backup is whole: it signs in with its password.
    let mut n = 0;
    for i in 0..during {
        let name = format!("cong.dan.{i}");
        if restored.state.store.find_account_by_username(&name).await.unwrap().is_some() {
            assert_eq!(sign_in(&restored, &client(), &name, PASSWORD).await.0, 303, "{name}");
            n += 1;
        }
    }
    assert!(n >= before.len());
    xacthuc::audit::verify_chain(&restored.state.store.list_audit(1, 100_000).await.unwrap()).unwrap();
}

#[tokio::test]
async fn restore_refuses_a_tampered_backup_and_postgres_is_sent_to_pg_dump() {
    let server = server_with_history().await;
    let copy = tampered_copy(&server, &["DELETE FROM audit_events WHERE seq = 2"]).await;
    let target = tempfile::tempdir().unwrap();
    let from = copy.path().join("xacthuc.db");
    let out = cli(target.path(), &["restore", "--from", from.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("audit chain broken at event 2"), "{}", text(&out));
    assert!(!target.path().join("xacthuc.db").exists(), "nothing restored");
    let out = cli(
        target.path(),
        &["backup", "--out", "/tmp/never-written.db", "--database-url", "postgres://postgres@127.0.0.1:5432/none"],
    )
    .await;
    assert!(!out.status.success() && text(&out).contains("pg_dump"), "{}", text(&out));
}
