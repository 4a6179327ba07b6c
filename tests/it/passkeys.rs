//! Passkeys over HTTP with a software authenticator (`webauthn-authenticator-rs` SoftPasskey):
//! enrolment from the account page, passwordless sign-in reaching `mfa`, a passkey as the
//! second step after a password, assertions without user verification refused, counter
//! regression (a cloned authenticator) refused and audited, single-use challenges, management.
//!
//! The test server's issuer is `http://127.0.0.1:<port>`; in development the relying party is
//! then `localhost` with `http://localhost` on any port as origin (an IP cannot be an RP ID),
//! so the authenticator is told the page was `http://localhost:<port>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const CB: &str = "https://portal.example.vn/cb";
const SECRET: &str = "portal-secret-0123456789abcdefghijklmnop";
const MAI: Citizen = Citizen {
    username: "mai",
    password: PASSWORD,
    identity: Some(("001190000123", "Nguyễn Thị Mai", "1990-03-08", "female")),
};
const MFA: &str = "urn:xacthuc:loa:as2:mfa";

fn origin(server: &TestServer) -> Url {
    let port = server.base.rsplit(':').next().unwrap();
    Url::parse(&format!("http://localhost:{port}")).unwrap()
}

/// The CSRF token of any page `http` can see (the login page works signed in or not).
async fn csrf(server: &TestServer, http: &reqwest::Client, page: &str) -> String {
    hidden(&http.get(server.url(page)).send().await.unwrap().text().await.unwrap(), "csrf")
}

async fn post_json(server: &TestServer, http: &reqwest::Client, path: &str, csrf: &str, body: Value) -> (u16, Value) {
    let resp = http.post(server.url(path)).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// What an enrolment left behind: the credential id and the user handle, as the authenticator
/// keeps them (SoftPasskey does not return the user handle itself, a browser does).
pub(crate) struct Enrolled {
    credential_id: String,
    user_handle: String,
}

pub(crate) async fn enrol(server: &TestServer, http: &reqwest::Client, key: &mut SoftPasskey, name: &str) -> Enrolled {
    enrol_kind(server, http, key, name, "passkey").await
}

async fn enrol_kind(
    server: &TestServer,
    http: &reqwest::Client,
    key: &mut SoftPasskey,
    name: &str,
    kind: &str,
) -> Enrolled {
    let token = csrf(server, http, "/account").await;
    let (status, started) = post_json(server, http, "/passkey/register/start", &token, json!({ "kind": kind })).await;
    assert_eq!(status, 200, "{started}");
    let options = &started["options"]["publicKey"];
    let uv = if kind == "passkey" { "required" } else { "preferred" };
    assert_eq!(options["authenticatorSelection"]["userVerification"], uv);
    if kind == "passkey" {
        assert_eq!(options["authenticatorSelection"]["residentKey"], "preferred");
    }
    assert_eq!(options["rp"]["id"], "localhost");
    let user_handle = options["user"]["id"].as_str().unwrap().to_string();
    let ccr: CreationChallengeResponse = serde_json::from_value(started["options"].clone()).unwrap();
    let credential = key.do_registration(origin(server), ccr).unwrap();
    let credential_id = serde_json::to_value(&credential).unwrap()["id"].as_str().unwrap().to_string();
    let body = json!({ "ceremony": started["ceremony"], "name": name, "credential": credential });
    let (status, done) = post_json(server, http, "/passkey/register/finish", &token, body.clone()).await;
    assert_eq!(status, 200, "{done}");
    // The same answer again: the ceremony was spent.
    let (status, again) = post_json(server, http, "/passkey/register/finish", &token, body).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("ceremony_expired")));
    Enrolled { credential_id, user_handle }
}

/// Starts a passwordless ceremony; the browser's discoverable-credential choice is played by
/// naming the credential, and `uv` false asks the authenticator not to verify the user.
pub(crate) async fn passwordless_assertion(
    server: &TestServer,
    http: &reqwest::Client,
    key: &mut SoftPasskey,
    enrolled: &Enrolled,
    uv: bool,
) -> (String, Value) {
    let token = csrf(server, http, "/register").await;
    let (status, started) = post_json(server, http, "/passkey/login/start", &token, json!({})).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["options"]["publicKey"]["userVerification"], "required");
    assert!(started["options"]["publicKey"]["allowCredentials"].as_array().is_none_or(|a| a.is_empty()));
    let mut options = started["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": enrolled.credential_id }]);
    if !uv {
        options["publicKey"]["userVerification"] = json!("discouraged");
    }
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = key.do_authentication(origin(server), rcr).unwrap();
    let mut assertion = serde_json::to_value(&assertion).unwrap();
    assertion["response"]["userHandle"] = json!(enrolled.user_handle);
    (started["ceremony"].as_str().unwrap().to_string(), assertion)
}

pub(crate) async fn finish_passwordless(
    server: &TestServer,
    http: &reqwest::Client,
    ceremony: &str,
    assertion: &Value,
    r: &str,
) -> (u16, Value) {
    let token = csrf(server, http, "/register").await;
    let body = json!({ "ceremony": ceremony, "credential": assertion, "r": r });
    post_json(server, http, "/passkey/login/finish", &token, body).await
}

/// `/authorize` for the portal asking `acr`; returns the pending `r` of the sign-in page it
/// leads to (or the code when the session already satisfies the request).
async fn authorize(server: &TestServer, http: &reqwest::Client, acr: &str) -> Result<String, String> {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", acr),
    ]);
    follow(server, http, url.to_string()).await
}

/// Follows redirects: `Ok(code)` at the portal, `Err(url)` at a gateway page.
async fn follow(server: &TestServer, http: &reqwest::Client, mut url: String) -> Result<String, String> {
    for _ in 0..8 {
        if url.starts_with(CB) {
            return Ok(query_param(&url, "code").unwrap_or_else(|| panic!("no code: {url}")));
        }
        let resp = http.get(&url).send().await.unwrap();
        if !resp.status().is_redirection() {
            return Err(url);
        }
        url = absolute(&server.base, &location(&resp));
    }
    panic!("too many redirects: {url}");
}

async fn claims(server: &TestServer, code: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn audit_kinds(server: &TestServer) -> Vec<(String, Value)> {
    let events = server.state.store.list_audit(1, 10_000).await.unwrap();
    events.into_iter().map(|e| (e.event.kind.clone(), serde_json::to_value(&e.event.details).unwrap())).collect()
}

async fn setup(database_url: Option<&str>) -> (TestServer, reqwest::Client, SoftPasskey, Enrolled) {
    let server = TestServer::start_with(database_url).await;
    server.add_client("portal", CB, "ES256").await;
    let http = client();
    assert_eq!(register(&server, &http, &MAI).await.status(), 303);
    // SoftPasskey::new(true): the software authenticator claims to have verified the user.
    let mut key = SoftPasskey::new(true);
    let enrolled = enrol(&server, &http, &mut key, "Điện thoại của tôi").await;
    (server, http, key, enrolled)
}

async fn passwordless_reaches_mfa(database_url: Option<&str>) {
    let (server, enroller, mut key, enrolled) = setup(database_url).await;
    let page = enroller.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Điện thoại của tôi") && page.contains("có xác minh người dùng"), "listed: {page}");

    // A new browser: the portal asks for mfa; the sign-in page offers the passkey.
    let http = client();
    let login = authorize(&server, &http, MFA).await.unwrap_err();
    assert!(login.contains("/login?r="), "{login}");
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Đăng nhập bằng khóa truy cập") && page.contains("/static/passkey.js"));
    let r = hidden(&page, "r");
    let (ceremony, assertion) = passwordless_assertion(&server, &http, &mut key, &enrolled, true).await;
    let (status, done) = finish_passwordless(&server, &http, &ceremony, &assertion, &r).await;
    assert_eq!(status, 200, "{done}");
    let code = follow(&server, &http, absolute(&server.base, done["redirect"].as_str().unwrap())).await.unwrap();
    let c = claims(&server, &code).await;
    assert_eq!(c["acr"], MFA, "one passkey with user verification is multi-factor: {c}");
    assert_eq!(c["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(c["auth_mechanism"], "mfa");

    // The same assertion again: the challenge was single use.
    let (status, again) = finish_passwordless(&server, &http, &ceremony, &assertion, &r).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("ceremony_expired")));
    let kinds = audit_kinds(&server).await;
    assert!(
        kinds.iter().any(|(k, d)| k == "factor.enrolled" && d["factor"] == "passkey" && d["user_verified"] == true)
    );
    assert!(kinds.iter().any(|(k, d)| k == "login.succeeded" && d["amr"] == json!(["hwk", "user"])));
}

#[tokio::test]
async fn passwordless_passkey_sign_in_reaches_mfa_and_challenges_are_single_use() {
    passwordless_reaches_mfa(None).await;
}

#[tokio::test]
async fn passwordless_passkey_sign_in_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        println!("passkeys: {POSTGRES_ENV} is unset; the PostgreSQL run was skipped");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { passwordless_reaches_mfa(Some(&url)).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn without_user_verification_a_passkey_is_refused_and_mfa_not_reached() {
    let (server, _, mut key, enrolled) = setup(None).await;
    let http = client();
    let login = authorize(&server, &http, MFA).await.unwrap_err();
    let r = hidden(&http.get(&login).send().await.unwrap().text().await.unwrap(), "r");
    let (ceremony, assertion) = passwordless_assertion(&server, &http, &mut key, &enrolled, false).await;
    let (status, refused) = finish_passwordless(&server, &http, &ceremony, &assertion, &r).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("passkey_refused")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("không được chấp nhận"));
    // No session: the portal's request for mfa still waits at the sign-in page.
    let still = follow(&server, &http, server.url(&format!("/authorize/resume?r={r}"))).await.unwrap_err();
    assert!(still.contains("/login"), "{still}");
    assert!(
        audit_kinds(&server)
            .await
            .iter()
            .any(|(k, d)| k == "login.failed" && d["method"] == "passkey" && d["reason"] == "user_not_verified")
    );

    // As a second step after the password: the same refusal, counted as a failed attempt, and
    // the session stays at the password.
    let second = password_then_second(&server, &http, MFA).await;
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    let (status, refused) = second_step(&server, &http, &page, &mut key, false).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("passkey_refused")), "{refused}");
    let kinds = audit_kinds(&server).await;
    assert!(kinds.iter().any(|(k, d)| k == "login.second_factor_failed" && d["factor"] == "passkey"));
    let r = query_param(&second, "r").unwrap();
    let again = follow(&server, &http, server.url(&format!("/authorize/resume?r={r}"))).await.unwrap_err();
    assert!(again.contains("/login/second"), "mfa not reached: {again}");
}

/// Password sign-in for MAI at the portal asking `acr`; returns the second-step page URL.
async fn password_then_second(server: &TestServer, http: &reqwest::Client, acr: &str) -> String {
    let login = authorize(server, http, acr).await.unwrap_err();
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", MAI.username.into()),
        ("password", PASSWORD.into()),
    ];
    let resp = http.post(server.url("/login")).form(&form).send().await.unwrap();
    let second = follow(server, http, absolute(&server.base, &location(&resp))).await.unwrap_err();
    assert!(second.contains("/login/second?r="), "{second}");
    second
}

async fn second_step(
    server: &TestServer,
    http: &reqwest::Client,
    page: &str,
    key: &mut SoftPasskey,
    uv: bool,
) -> (u16, Value) {
    let token = hidden(page, "csrf");
    let (status, started) = post_json(server, http, "/passkey/second/start", &token, json!({})).await;
    assert_eq!(status, 200, "{started}");
    let mut options = started["options"].clone();
    if !uv {
        options["publicKey"]["userVerification"] = json!("discouraged");
    }
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = key.do_authentication(origin(server), rcr).unwrap();
    let body = json!({ "ceremony": started["ceremony"], "credential": assertion, "r": hidden(page, "r") });
    post_json(server, http, "/passkey/second/finish", &token, body).await
}

#[tokio::test]
async fn passkey_as_the_second_step_after_a_password() {
    let (server, _, mut key, _) = setup(None).await;
    let http = client();
    let second = password_then_second(&server, &http, MFA).await;
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-passkey=\"second\"") && page.contains("Xác nhận bằng khóa truy cập"), "{page}");
    // Without the CSRF header: refused.
    let resp = http.post(server.url("/passkey/second/start")).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let (status, done) = second_step(&server, &http, &page, &mut key, true).await;
    assert_eq!(status, 200, "{done}");
    let code = follow(&server, &http, absolute(&server.base, done["redirect"].as_str().unwrap())).await.unwrap();
    let c = claims(&server, &code).await;
    assert_eq!(c["acr"], MFA);
    assert_eq!(c["amr"], json!(["pwd", "hwk", "user", "mfa"]));
}

#[tokio::test]
async fn a_cloned_authenticator_is_refused_by_its_counter_and_audited() {
    let (server, _, mut key, enrolled) = setup(None).await;
    let (original, clone) = (client(), client());
    // Two ceremonies; the authenticator signs the first (counter 1) and then the second
    // (counter 2). The second arrives first; the first, with an older counter, is what a copy of
    // the key would send.
    let (c1, a1) = passwordless_assertion(&server, &clone, &mut key, &enrolled, true).await;
    let (c2, a2) = passwordless_assertion(&server, &original, &mut key, &enrolled, true).await;
    let (status, done) = finish_passwordless(&server, &original, &c2, &a2, "").await;
    assert_eq!(status, 200, "{done}");
    let (status, refused) = finish_passwordless(&server, &clone, &c1, &a1, "").await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("passkey_cloned")), "{refused}");
    assert!(clone.get(server.url("/account")).send().await.unwrap().status().is_redirection(), "not signed in");
    let kinds = audit_kinds(&server).await;
    assert!(kinds.iter().any(|(k, d)| k == "factor.passkey_counter_regression" && d["method"] == "passkey"));
    let stored = server.state.store.find_passkey(&enrolled.credential_id).await.unwrap().unwrap();
    assert_eq!(stored.sign_count, 2, "the counter of the accepted assertion was kept");
    assert!(stored.last_used_at.is_some());
}

#[tokio::test]
async fn passkeys_are_renamed_and_removed_but_the_last_way_in_stays() {
    let (server, http, _, _) = setup(None).await;
    let account = server.state.store.find_account_by_username("mai").await.unwrap().unwrap();
    let keys = server.state.store.list_passkeys(account.id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].user_verified, "registered with user verification");
    let id = keys[0].id;
    let token = csrf(&server, &http, "/account").await;

    // Rename (collapsing spaces); an empty name is refused and changes nothing.
    let rename = server.url(&format!("/account/passkeys/{id}/rename"));
    let resp = http.post(&rename).form(&[("csrf", token.as_str()), ("name", "  Máy tính   bảng ")]).send().await;
    assert!(resp.unwrap().status().is_redirection());
    http.post(&rename).form(&[("csrf", token.as_str()), ("name", "   ")]).send().await.unwrap();
    assert_eq!(server.state.store.list_passkeys(account.id).await.unwrap()[0].name, "Máy tính bảng");
    // A form without the CSRF token changes nothing.
    let resp = http.post(&rename).form(&[("csrf", "forged"), ("name", "x")]).send().await.unwrap();
    assert_eq!(resp.status(), 403);

    // With "always ask for a second factor" on, the only second factor cannot be removed.
    let resp = http
        .post(server.url("/account/second-factor"))
        .form(&[("csrf", token.as_str()), ("always", "on")])
        .send()
        .await;
    assert!(resp.unwrap().status().is_redirection());
    let remove = server.url(&format!("/account/passkeys/{id}/remove"));
    let resp = http.post(&remove).form(&[("csrf", token.as_str())]).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("cách đăng nhập còn lại"));
    assert_eq!(server.state.store.list_passkeys(account.id).await.unwrap().len(), 1);

    // Without that setting the password remains a way in: removal works and is audited.
    http.post(server.url("/account/second-factor")).form(&[("csrf", token.as_str())]).send().await.unwrap();
    let resp = http.post(&remove).form(&[("csrf", token.as_str())]).send().await.unwrap();
    assert!(resp.status().is_redirection());
    assert!(server.state.store.list_passkeys(account.id).await.unwrap().is_empty());
    let kinds = audit_kinds(&server).await;
    for kind in ["factor.enrolled", "factor.renamed", "factor.removed"] {
        assert!(kinds.iter().any(|(k, d)| k == kind && d["factor"] == "passkey"), "{kind} audited");
    }
    // With no passkey left the account reaches only 1fa again.
    let mechanism = xacthuc::service::second_factor::reachable_mechanism(&server.state, &account).await.unwrap();
    assert_eq!(mechanism, xacthuc::assurance::Mechanism::OneFactor);
}

#[tokio::test]
async fn a_second_account_cannot_finish_someone_elses_ceremony() {
    let (server, http, mut key, _) = setup(None).await;
    let token = csrf(&server, &http, "/account").await;
    let (_, started) = post_json(&server, &http, "/passkey/register/start", &token, json!({})).await;
    let ccr: CreationChallengeResponse = serde_json::from_value(started["options"].clone()).unwrap();
    let credential = key.do_registration(origin(&server), ccr).unwrap();
    // Another citizen presents mai's ceremony and answer.
    let other = client();
    let lan = Citizen { username: "lan", password: PASSWORD, identity: None };
    register(&server, &other, &lan).await;
    let other_token = csrf(&server, &other, "/account").await;
    let body = json!({ "ceremony": started["ceremony"], "name": "", "credential": credential });
    let (status, refused) = post_json(&server, &other, "/passkey/register/finish", &other_token, body).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("ceremony_expired")));
    let lan_account = server.state.store.find_account_by_username("lan").await.unwrap().unwrap();
    assert!(server.state.store.list_passkeys(lan_account.id).await.unwrap().is_empty());
    // Signed out, enrolment is refused outright.
    let (status, _) = post_json(&server, &client(), "/passkey/register/start", "x", json!({})).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn failed_passkey_assertions_count_towards_the_second_factor_lock() {
    let (server, _, mut key, _) = setup(None).await;
    let http = client();
    let second = password_then_second(&server, &http, MFA).await;
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    // Five assertions without user verification: each refused, the fifth locks.
    for _ in 0..5 {
        let (status, refused) = second_step(&server, &http, &page, &mut key, false).await;
        assert_eq!((status, refused["error"].as_str()), (401, Some("passkey_refused")));
    }
    let token = hidden(&page, "csrf");
    let (status, locked) = post_json(&server, &http, "/passkey/second/start", &token, json!({})).await;
    assert_eq!((status, locked["error"].as_str()), (429, Some("locked")), "{locked}");
    assert!(locked["message"].as_str().unwrap().contains("Quá nhiều lần thử sai"), "{locked}");
    // One counter for every second factor: an authenticator code is refused too.
    let form =
        [("csrf", token.clone()), ("r", hidden(&page, "r")), ("method", "totp".into()), ("code", "123456".into())];
    let resp = http.post(server.url("/login/second")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(audit_kinds(&server).await.iter().any(|(k, _)| k == "factor.locked"));
}

#[tokio::test]
async fn a_security_key_without_user_verification_is_a_second_factor_never_mfa() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "ES256").await;
    let enroller = client();
    register(&server, &enroller, &MAI).await;
    // SoftPasskey::new(false): an authenticator that cannot verify the user (no PIN, no sensor).
    let mut key = SoftPasskey::new(false);
    enrol_kind(&server, &enroller, &mut key, "Khóa USB", "security_key").await;
    let account = server.state.store.find_account_by_username("mai").await.unwrap().unwrap();
    let stored = server.state.store.list_passkeys(account.id).await.unwrap();
    assert!(!stored[0].user_verified, "registered without user verification");
    let page = enroller.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Khóa USB") && page.contains("không xác minh người dùng"));
    let mechanism = xacthuc::service::second_factor::reachable_mechanism(&server.state, &account).await.unwrap();
    assert_eq!(mechanism, xacthuc::assurance::Mechanism::TwoFactor, "possession + password, no inherence");

    // Password, then the key: two factors (knowledge, possession), amr without `user`.
    let http = client();
    let second = password_then_second(&server, &http, "urn:xacthuc:loa:as2:2fa").await;
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    let (status, done) = second_step(&server, &http, &page, &mut key, false).await;
    assert_eq!(status, 200, "{done}");
    let code = follow(&server, &http, absolute(&server.base, done["redirect"].as_str().unwrap())).await.unwrap();
    let c = claims(&server, &code).await;
    assert_eq!(c["acr"], "urn:xacthuc:loa:as2:2fa");
    assert_eq!(c["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(c["auth_mechanism"], "2fa");

    // Asking for mfa: this account cannot reach it, so the portal never gets an mfa token.
    let other = client();
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", MFA),
    ]);
    let login = follow(&server, &other, url.to_string()).await.unwrap_err();
    let page = other.get(&login).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", MAI.username.into()),
        ("password", PASSWORD.into()),
    ];
    let resp = other.post(server.url("/login")).form(&form).send().await.unwrap();
    let mut next = absolute(&server.base, &location(&resp));
    for _ in 0..6 {
        if next.starts_with(CB) {
            break;
        }
        let resp = other.get(&next).send().await.unwrap();
        if !resp.status().is_redirection() {
            break;
        }
        next = absolute(&server.base, &location(&resp));
    }
    assert!(next.starts_with(CB), "{next}");
    assert_eq!(query_param(&next, "error").as_deref(), Some("unmet_authentication_requirements"), "{next}");
    assert_eq!(query_param(&next, "code"), None);
}
