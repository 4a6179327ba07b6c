//! The staff console's remaining pieces over HTTP (issues 8 and 9): a counter officer enrols the
//! citizen's passkey or security key from the counter computer (the software authenticator of
//! `passkeys.rs` plays the citizen's key) and the citizen then signs in with it; refusals (own
//! account, other staff, below AS-4, weak session, CSRF, another officer's ceremony); staff
//! browse an account's audit events (labels, names, Vietnam time, masking, pages, the view
//! itself audited); the navigation's console link shown to staff only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use crate::staff::{CB, CITIZEN_PASSWORD, OFFICE, csrf, get, register_at_counter, staff};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use xacthuc::audit::AuditEvent;
use xacthuc::store::StaffRole;

async fn post_json(server: &TestServer, http: &reqwest::Client, path: &str, csrf: &str, body: Value) -> (u16, Value) {
    let resp = http.post(server.url(path)).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The test issuer is `http://127.0.0.1:<port>`; in development the RP is `localhost`.
fn origin(server: &TestServer) -> Url {
    let port = server.base.rsplit(':').next().unwrap();
    Url::parse(&format!("http://localhost:{port}")).unwrap()
}

/// What the counter enrolment left: the credential id and the user handle (a browser returns
/// the handle with a discoverable credential; SoftPasskey does not, so the test keeps it).
struct CounterKey {
    credential_id: String,
    user_handle: String,
}

/// The officer's browser runs the registration ceremony for the citizen; `key` is the
/// citizen's authenticator. Returns the finish answer's status and body.
async fn enrol_at_counter(
    server: &TestServer,
    officer: &reqwest::Client,
    citizen: &str,
    key: &mut SoftPasskey,
    kind: &str,
    citizen_username: &str,
) -> CounterKey {
    let page = get(server, officer, citizen).await.1;
    assert!(page.contains(&format!("data-base=\"{citizen}/passkey\"")), "the enrol buttons: {page}");
    let token = hidden(&page, "csrf");
    let start = format!("{citizen}/passkey/start");
    let (status, started) = post_json(server, officer, &start, &token, json!({ "kind": kind })).await;
    assert_eq!(status, 200, "{started}");
    let options = &started["options"]["publicKey"];
    assert_eq!(options["user"]["name"], citizen_username, "registered for the citizen, not the officer");
    let uv = if kind == "passkey" { "required" } else { "preferred" };
    assert_eq!(options["authenticatorSelection"]["userVerification"], uv);
    let user_handle = options["user"]["id"].as_str().unwrap().to_string();
    let ccr: CreationChallengeResponse = serde_json::from_value(started["options"].clone()).unwrap();
    let credential = key.do_registration(origin(server), ccr).unwrap();
    let credential_id = serde_json::to_value(&credential).unwrap()["id"].as_str().unwrap().to_string();
    let body = json!({ "ceremony": started["ceremony"], "name": "Khóa của bà Hoa", "credential": credential });
    let finish = format!("{citizen}/passkey/finish");
    let (status, done) = post_json(server, officer, &finish, &token, body.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["redirect"].as_str().unwrap(), format!("{citizen}?done=enrolled#enrol"));
    // The same answer again: the ceremony was spent.
    let (status, again) = post_json(server, officer, &finish, &token, body).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("ceremony_expired")));
    CounterKey { credential_id, user_handle }
}

async fn claims(server: &TestServer, secret: &str, code: &str) -> Value {
    let body: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// `/authorize` for the portal asking `acr`, followed to a gateway page: its URL.
async fn authorize(server: &TestServer, http: &reqwest::Client, acr: &str) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", acr),
    ]);
    follow(server, http, url.to_string()).await.unwrap_err()
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

async fn events(server: &TestServer) -> Vec<xacthuc::audit::StoredAuditEvent> {
    server.state.store.list_audit(1, 100_000).await.unwrap()
}

fn citizen_id(path: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(path.rsplit('/').next().unwrap()).unwrap()
}

#[tokio::test]
async fn staff_enrol_a_citizens_passkey_at_the_counter_and_the_citizen_signs_in_with_it_passwordless() {
    let server = TestServer::start().await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let officer = staff(&server, "canbo.mot", StaffRole::CounterOfficer).await;
    let citizen = register_at_counter(&server, &officer.mfa, "hoa.pham", "001185000777").await;
    let (_, page) = get(&server, &officer.mfa, &citizen).await;
    assert!(page.contains("Đăng ký khóa truy cập của công dân") && page.contains("Đăng ký khóa bảo mật của công dân"));

    let mut key = SoftPasskey::new(true);
    let enrolled = enrol_at_counter(&server, &officer.mfa, &citizen, &mut key, "passkey", "hoa.pham").await;
    let (_, page) = get(&server, &officer.mfa, &format!("{citizen}?done=enrolled")).await;
    assert!(page.contains("Đã đăng ký khóa cho công dân"), "{page}");

    // On the citizen's account, not the officer's; audited with the officer as actor.
    let id = citizen_id(&citizen);
    let keys = server.state.store.list_passkeys(id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].user_verified);
    assert_eq!(keys[0].name, "Khóa của bà Hoa");
    let officer_id = uuid::Uuid::parse_str(&officer.id).unwrap();
    assert_eq!(server.state.store.list_passkeys(officer_id).await.unwrap().len(), 1, "only the officer's own");
    let all = events(&server).await;
    let e = all.iter().find(|e| e.event.kind == "passkey.enrolled_at_counter").expect("audited");
    assert_eq!(e.event.actor, format!("staff:{}", officer.id));
    assert_eq!(e.event.account_id, Some(id));
    assert_eq!(e.event.details["office"], OFFICE);
    assert_eq!(e.event.details["user_verified"], true);
    assert_eq!(e.event.details["credential"], keys[0].id.to_string());

    // The citizen, never activated (no password), signs in at the portal with the key alone.
    let phone = client();
    let login = authorize(&server, &phone, "urn:xacthuc:loa:as4:mfa").await;
    let r = hidden(&get(&server, &phone, &login.replace(&server.base, "")).await.1, "r");
    let token = hidden(&get(&server, &phone, "/register").await.1, "csrf");
    let (status, started) = post_json(&server, &phone, "/passkey/login/start", &token, json!({})).await;
    assert_eq!(status, 200, "{started}");
    let mut options = started["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": enrolled.credential_id }]);
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let mut assertion = serde_json::to_value(key.do_authentication(origin(&server), rcr).unwrap()).unwrap();
    assertion["response"]["userHandle"] = json!(enrolled.user_handle);
    let body = json!({ "ceremony": started["ceremony"], "credential": assertion, "r": r });
    let (status, done) = post_json(&server, &phone, "/passkey/login/finish", &token, body).await;
    assert_eq!(status, 200, "{done}");
    let code = follow(&server, &phone, absolute(&server.base, done["redirect"].as_str().unwrap())).await.unwrap();
    let c = claims(&server, &secret, &code).await;
    assert_eq!(c["acr"], "urn:xacthuc:loa:as4:mfa", "{c}");
    assert_eq!(c["amr"], json!(["hwk", "user", "mfa"]));
}

#[tokio::test]
async fn a_security_key_without_user_verification_enrolled_at_the_counter_is_the_step_after_the_password() {
    let server = TestServer::start().await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let officer = staff(&server, "canbo.mot", StaffRole::CounterOfficer).await;
    let citizen = register_at_counter(&server, &officer.mfa, "hoa.pham", "001185000777").await;
    // SoftPasskey::new(false): a key without PIN or fingerprint; accepted (possession).
    let mut key = SoftPasskey::new(false);
    enrol_at_counter(&server, &officer.mfa, &citizen, &mut key, "security_key", "hoa.pham").await;
    let id = citizen_id(&citizen);
    let keys = server.state.store.list_passkeys(id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].user_verified, "possession only");

    // The letter sets a password; the portal asks for AS-4 with two factors.
    let token = csrf(&server, &officer.mfa).await;
    let resp = officer.mfa.post(server.url(&format!("{citizen}/letter"))).form(&[("csrf", &token)]).send().await;
    let letter = resp.unwrap().text().await.unwrap();
    let start = letter.find("class=\"code\"").unwrap();
    let code_at = &letter[start..];
    let code = code_at[code_at.find("<strong>").unwrap() + 8..code_at.find("</strong>").unwrap()].to_string();
    let phone = client();
    let page = get(&server, &phone, "/activate").await.1;
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("code", code),
        ("password", CITIZEN_PASSWORD.into()),
        ("password_confirm", CITIZEN_PASSWORD.into()),
    ];
    assert_eq!(phone.post(server.url("/activate")).form(&form).send().await.unwrap().status(), 303);

    let http = client();
    let login = authorize(&server, &http, "urn:xacthuc:loa:as4:2fa").await;
    let page = get(&server, &http, &login.replace(&server.base, "")).await.1;
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", "hoa.pham".into()),
        ("password", CITIZEN_PASSWORD.into()),
    ];
    let resp = http.post(server.url("/login")).form(&form).send().await.unwrap();
    let second = follow(&server, &http, absolute(&server.base, &location(&resp))).await.unwrap_err();
    assert!(second.contains("/login/second?r="), "{second}");
    let page = get(&server, &http, &second.replace(&server.base, "")).await.1;
    let token = hidden(&page, "csrf");
    let (status, started) = post_json(&server, &http, "/passkey/second/start", &token, json!({})).await;
    assert_eq!(status, 200, "{started}");
    let mut options = started["options"].clone();
    options["publicKey"]["userVerification"] = json!("discouraged");
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = key.do_authentication(origin(&server), rcr).unwrap();
    let body = json!({ "ceremony": started["ceremony"], "credential": assertion, "r": hidden(&page, "r") });
    let (status, done) = post_json(&server, &http, "/passkey/second/finish", &token, body).await;
    assert_eq!(status, 200, "{done}");
    let code = follow(&server, &http, absolute(&server.base, done["redirect"].as_str().unwrap())).await.unwrap();
    let c = claims(&server, &secret, &code).await;
    assert_eq!(c["acr"], "urn:xacthuc:loa:as4:2fa", "{c}");
    assert_eq!(c["amr"], json!(["pwd", "hwk", "mfa"]));
}

#[tokio::test]
async fn counter_enrolment_is_refused_for_own_and_staff_accounts_below_as4_weak_sessions_and_without_csrf() {
    let server = TestServer::start().await;
    let officer = staff(&server, "canbo.hai", StaffRole::CounterOfficer).await;
    let colleague = staff(&server, "canbo.ba", StaffRole::Supervisor).await;
    let citizen = register_at_counter(&server, &officer.mfa, "hoa.pham", "001185000777").await;
    let token = csrf(&server, &officer.mfa).await;
    let start = |path: &str| format!("{path}/passkey/start");

    // The officer's own account and a colleague's: refused, in the officer's language.
    let own = format!("/staff/citizens/{}", officer.id);
    let (status, body) = post_json(&server, &officer.mfa, &start(&own), &token, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_allowed")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("không được thay đổi tài khoản của chính mình"), "{body}");
    let other = format!("/staff/citizens/{}", colleague.id);
    let (status, body) = post_json(&server, &officer.mfa, &start(&other), &token, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_allowed")), "{body}");

    // A self-registered AS-2 account: verify at the counter first.
    let mai = client();
    let c = Citizen {
        username: "mai",
        password: PASSWORD,
        identity: Some(("001190000123", "Nguyễn Thị Mai", "1990-03-08", "female")),
    };
    assert_eq!(register(&server, &mai, &c).await.status(), 303);
    let mai_id = server.state.store.find_account_by_username("mai").await.unwrap().unwrap().id;
    let (status, page) = get(&server, &officer.mfa, &format!("/staff/citizens/{mai_id}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("/passkey\""), "no enrol buttons below AS-4: {page}");
    let (status, body) =
        post_json(&server, &officer.mfa, &start(&format!("/staff/citizens/{mai_id}")), &token, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("AS-4"), "{body}");

    // The staff member's password-only session, a citizen, no CSRF header, a forged one.
    let weak_token = csrf(&server, &officer.weak).await;
    let (status, body) = post_json(&server, &officer.weak, &start(&citizen), &weak_token, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("mfa_required")), "{body}");
    let mai_token = csrf(&server, &mai).await;
    let (status, body) = post_json(&server, &mai, &start(&citizen), &mai_token, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_staff")), "{body}");
    let resp = officer.mfa.post(server.url(&start(&citizen))).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let (status, body) = post_json(&server, &officer.mfa, &start(&citizen), "forged", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("csrf")));
    let (status, _) =
        post_json(&server, &officer.mfa, "/staff/citizens/not-a-uuid/passkey/start", &token, json!({})).await;
    assert_eq!(status, 404);

    // A ceremony started by one staff member cannot be finished by another.
    let (status, started) = post_json(&server, &officer.mfa, &start(&citizen), &token, json!({})).await;
    assert_eq!(status, 200, "{started}");
    let ccr: CreationChallengeResponse = serde_json::from_value(started["options"].clone()).unwrap();
    let credential = SoftPasskey::new(true).do_registration(origin(&server), ccr).unwrap();
    let body = json!({ "ceremony": started["ceremony"], "name": "", "credential": credential });
    let colleague_token = csrf(&server, &colleague.mfa).await;
    let finish = format!("{citizen}/passkey/finish");
    let (status, refused) = post_json(&server, &colleague.mfa, &finish, &colleague_token, body.clone()).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("ceremony_expired")), "{refused}");
    // Nor without the CSRF header by the officer who started it.
    let resp = officer.mfa.post(server.url(&finish)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 403);

    assert!(server.state.store.list_passkeys(citizen_id(&citizen)).await.unwrap().is_empty());
    assert!(server.state.store.list_passkeys(mai_id).await.unwrap().is_empty());
    assert!(!events(&server).await.iter().any(|e| e.event.kind == "passkey.enrolled_at_counter"));
}

async fn audit_browsing(database_url: Option<&str>) {
    let server = TestServer::start_with(database_url).await;
    let officer = staff(&server, "canbo.mot", StaffRole::CounterOfficer).await;
    let mai = client();
    let c = Citizen {
        username: "mai",
        password: PASSWORD,
        identity: Some(("001190000123", "Nguyễn Thị Mai", "1990-03-08", "female")),
    };
    assert_eq!(register(&server, &mai, &c).await.status(), 303);
    let id = server.state.store.find_account_by_username("mai").await.unwrap().unwrap().id;
    // An event carrying personal data in clear (as a careless writer might): shown masked.
    let now = xacthuc::app::now();
    let careless = AuditEvent::new(now, "contact.verified", format!("account:{id}"))
        .account(id)
        .detail("email", "mai.nguyen@example.vn")
        .detail("reason", "gọi lại số 0912345678");
    server.state.store.append_audit(&careless).await.unwrap();

    let citizen = format!("/staff/citizens/{id}");
    let (_, page) = get(&server, &officer.mfa, &citizen).await;
    assert!(page.contains(&format!("href=\"{citizen}/audit\"")), "linked from the citizen page: {page}");

    let resp = officer.mfa.get(server.url(&format!("{citizen}/audit"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("Nhật ký kiểm tra của tài khoản"), "{page}");
    for label in ["Tạo tài khoản", "Đăng nhập thành công", "Xác minh email hoặc số điện thoại", "Cán bộ xem nhật ký"]
    {
        assert!(page.contains(label), "{label}: {page}");
    }
    // Newest first: the view itself, by the officer by name, then the careless event.
    let viewed = page.find("Cán bộ xem nhật ký").unwrap();
    let careless_at = page.find("Xác minh email hoặc số điện thoại").unwrap();
    let created = page.find("Tạo tài khoản").unwrap();
    assert!(viewed < careless_at && careless_at < created, "newest first");
    assert!(page.contains("canbo.mot (cán bộ)") && page.contains("mai (chủ tài khoản)"), "{page}");
    let time = regex_like_time(&page);
    assert!(time, "dd/mm/yyyy HH:MM: {page}");
    assert!(page.contains("0011******23") && page.contains("m*********@example.vn"), "{page}");
    assert!(page.contains("gọi lại số *******678"), "{page}");
    assert!(page.contains("<code>amr</code>: pwd<"), "a list shown as words: {page}");
    for clear in ["001190000123", "mai.nguyen@example.vn", "0912345678"] {
        assert!(!page.contains(clear), "{clear} in clear: {page}");
    }

    // 60 more events: 50 a page, the older ones behind a link.
    for i in 0..60 {
        let e = AuditEvent::new(now, "login.failed", "anonymous").account(id).detail("n", i);
        server.state.store.append_audit(&e).await.unwrap();
    }
    let (_, first) = get(&server, &officer.mfa, &format!("{citizen}/audit")).await;
    assert_eq!(first.matches("<td><time>").count(), 50);
    let marker = format!("{citizen}/audit?before=");
    let at = first.find(&marker).unwrap_or_else(|| panic!("no older link: {first}")) + marker.len();
    let before: String = first[at..].chars().take_while(char::is_ascii_digit).collect();
    let (status, older) = get(&server, &officer.mfa, &format!("{citizen}/audit?before={before}")).await;
    assert_eq!(status, 200);
    let total = server.state.store.list_account_audit(id, None, 1_000).await.unwrap().len();
    // Everything but the first page (and the view of this page, newer than the cursor).
    assert_eq!(older.matches("<td><time>").count(), total - 50 - 1, "{older}");
    assert!(older.contains("Tạo tài khoản") && older.contains("← Mới nhất") && !older.contains(&marker));
    assert_eq!(get(&server, &officer.mfa, &format!("{citizen}/audit?before=nonsense")).await.0, 200);

    // Each view audited with the officer as actor.
    let views: Vec<_> = events(&server).await.into_iter().filter(|e| e.event.kind == "staff.audit_viewed").collect();
    assert_eq!(views.len(), 4);
    assert!(views.iter().all(|e| e.event.actor == format!("staff:{}", officer.id) && e.event.account_id == Some(id)));
    assert_eq!(views[2].event.details["before"], before.parse::<i64>().unwrap());

    // Refused: a weak staff session, a citizen, an unknown account.
    assert_eq!(get(&server, &officer.weak, &format!("{citizen}/audit")).await.0, 403);
    assert_eq!(get(&server, &mai, &format!("{citizen}/audit")).await.0, 403);
    let unknown = format!("/staff/citizens/{}/audit", uuid::Uuid::now_v7());
    assert_eq!(get(&server, &officer.mfa, &unknown).await.0, 404);
    assert_eq!(events(&server).await.iter().filter(|e| e.event.kind == "staff.audit_viewed").count(), 4);

    // In English on request.
    officer.mfa.get(server.url("/lang?set=en&next=/account")).send().await.unwrap();
    let (_, page) = get(&server, &officer.mfa, &format!("{citizen}/audit")).await;
    assert!(
        page.contains("Account audit log") && page.contains("Sign-in failed") && page.contains("canbo.mot (staff)")
    );
}

/// Whether the page shows a time as `dd/mm/yyyy HH:MM` inside `<time>`.
fn regex_like_time(page: &str) -> bool {
    page.match_indices("<td><time>").any(|(i, m)| {
        let s: Vec<char> = page[i + m.len()..].chars().take(17).collect();
        s.len() == 17
            && s[16] == '<'
            && s.iter().enumerate().all(|(j, c)| match j {
                2 | 5 => *c == '/',
                10 => *c == ' ',
                13 => *c == ':',
                16 => true,
                _ => c.is_ascii_digit(),
            })
    })
}

#[tokio::test]
async fn staff_browse_an_accounts_audit_events_newest_first_masked_paged_and_audited() {
    audit_browsing(None).await;
}

#[tokio::test]
async fn staff_browse_audit_events_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        println!("staff_console: {POSTGRES_ENV} is unset; the PostgreSQL run was skipped");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { audit_browsing(Some(&url)).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn the_navigation_links_the_staff_console_for_staff_only() {
    let server = TestServer::start().await;
    let officer = staff(&server, "canbo.mot", StaffRole::CounterOfficer).await;
    let (_, page) = get(&server, &officer.mfa, "/account").await;
    assert!(page.contains("<a href=\"/staff\">Quầy tiếp nhận</a>"), "{page}");
    officer.mfa.get(server.url("/lang?set=en&next=/account")).send().await.unwrap();
    let (_, page) = get(&server, &officer.mfa, "/account").await;
    assert!(page.contains("<a href=\"/staff\">Staff console</a>"), "{page}");

    let citizen = client();
    let c = Citizen { username: "lan", password: PASSWORD, identity: None };
    assert_eq!(register(&server, &citizen, &c).await.status(), 303);
    let (_, page) = get(&server, &citizen, "/account").await;
    assert!(page.contains("/account") && !page.contains("href=\"/staff\"") && !page.contains("Quầy tiếp nhận"));
    let (_, page) = get(&server, &client(), "/login").await;
    assert!(!page.contains("href=\"/staff\""));
}
