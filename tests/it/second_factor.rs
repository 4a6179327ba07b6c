//! Two-step sign-in: enrolling an authenticator app from the account page, then password +
//! code at a portal that asks for `2fa`. Codes come from an independent RFC 6238
//! implementation (Python's standard library), never from the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use serde_json::Value;

const CB: &str = "https://portal.example.vn/cb";
const SECRET: &str = "portal-secret-0123456789abcdefghijklmnop";
const HUNG: Citizen = Citizen {
    username: "hung",
    password: PASSWORD,
    identity: Some(("087084000999", "Võ Văn Hùng", "1984-05-17", "male")),
};

/// RFC 6238 (SHA-1, 6 digits, 30 s) in Python's standard library, for time `t`.
fn python_totp(secret_b32: &str, t: i64) -> String {
    let script = r#"
import base64, hashlib, hmac, struct, sys
key = base64.b32decode(sys.argv[1].replace(" ", "").upper() + "=" * (-len(sys.argv[1].replace(" ", "")) % 8))
counter = int(sys.argv[2]) // 30
mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
o = mac[-1] & 0x0F
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, secret_b32, &t.to_string()])
        .output()
        .expect("python3 is needed for the independent TOTP implementation");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Enrols an authenticator app for the signed-in `http`; returns (secret, recovery codes).
pub(crate) async fn enrol(server: &TestServer, http: &reqwest::Client) -> (String, Vec<String>) {
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    let resp = http.post(server.url("/account/totp")).form(&[("csrf", hidden(&account, "csrf"))]).send().await.unwrap();
    let enrol_url = absolute(&server.base, &location(&resp));
    let page = http.get(&enrol_url).send().await.unwrap().text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("<svg") && page.contains("<title>"), "inline, labelled QR code");
    assert!(page.contains("otpauth://totp/"), "the otpauth link");
    assert!(page.contains("autocomplete=\"one-time-code\"") && page.contains("inputmode=\"numeric\""));
    let start = page.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let secret = page[start..start + page[start..].find('<').unwrap()].to_string();
    // A wrong code is refused, the right one confirms.
    let confirm = format!("{enrol_url}/confirm");
    let resp =
        http.post(&confirm).form(&[("csrf", hidden(&page, "csrf")), ("code", "000000".into())]).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let code = python_totp(&secret, xacthuc::app::now());
    let resp = http.post(&confirm).form(&[("csrf", hidden(&page, "csrf")), ("code", code)]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let codes_page = resp.text().await.unwrap();
    let codes: Vec<String> =
        codes_page.split("<li><code>").skip(1).map(|s| s[..s.find('<').unwrap()].to_string()).collect();
    assert_eq!(codes.len(), 10, "ten recovery codes shown once");
    (secret, codes)
}

async fn token_claims(server: &TestServer, code: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs in with the password at a portal asking for 2fa; returns the second-step page URL.
async fn to_second_step(server: &TestServer, http: &reqwest::Client) -> String {
    to_second_step_asking(server, http, Some("urn:xacthuc:loa:as2:2fa")).await
}

/// The same, with the portal sending `acr_values` (or none).
async fn to_second_step_asking(server: &TestServer, http: &reqwest::Client, acr_values: Option<&str>) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
    ]);
    if let Some(acr) = acr_values {
        url.query_pairs_mut().append_pair("acr_values", acr);
    }
    let resp = http.get(url.as_str()).send().await.unwrap();
    let login = absolute(&server.base, &location(&resp));
    assert!(login.contains("/login?r="), "{login}");
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    let resp = http
        .post(server.url("/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("username", HUNG.username.into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    let resume = absolute(&server.base, &location(&resp));
    let resp = http.get(&resume).send().await.unwrap();
    let second = absolute(&server.base, &location(&resp));
    assert!(second.contains("/login/second?r="), "only the second factor is asked: {second}");
    second
}

async fn submit_second(
    server: &TestServer,
    http: &reqwest::Client,
    second: &str,
    method: &str,
    code: &str,
) -> reqwest::Response {
    let page = http.get(second).send().await.unwrap().text().await.unwrap();
    http.post(server.url("/login/second"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("method", method.into()),
            ("code", code.into()),
        ])
        .send()
        .await
        .unwrap()
}

async fn follow_to_code(server: &TestServer, http: &reqwest::Client, resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "second step refused");
    let mut url = absolute(&server.base, &location(&resp));
    for _ in 0..4 {
        if url.starts_with(CB) {
            return query_param(&url, "code").unwrap();
        }
        url = absolute(&server.base, &location(&http.get(&url).send().await.unwrap()));
    }
    panic!("no code: {url}");
}

#[tokio::test]
async fn password_then_authenticator_code_reaches_2fa_and_codes_work_once() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let enroller = client();
    register(&server, &enroller, &HUNG).await;
    let (secret, recovery) = enrol(&server, &enroller).await;

    // Password + a code from the app: the ID token says as2:2fa with pwd and otp.
    let http = client();
    let second = to_second_step(&server, &http).await;
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Xác thực hai yếu tố") && page.contains("autocomplete=\"one-time-code\""));
    // The enrolment used the current time step; the next one (+1, within the allowed skew) is fresh.
    let code = python_totp(&secret, xacthuc::app::now() + 30);
    let resp = submit_second(&server, &http, &second, "totp", "000000").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("Mã OTP không hợp lệ"));
    let resp = submit_second(&server, &http, &second, "totp", &code).await;
    let claims = token_claims(&server, &follow_to_code(&server, &http, resp).await).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:2fa");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["auth_mechanism"], "2fa");

    // The same code again, in another sign-in: a replay.
    let other = client();
    let second = to_second_step(&server, &other).await;
    let resp = submit_second(&server, &other, &second, "totp", &code).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("đã được sử dụng"), "replay refused");
    // Two steps ahead is outside the allowed skew.
    let far = python_totp(&secret, xacthuc::app::now() + 90);
    assert_eq!(submit_second(&server, &other, &second, "totp", &far).await.status(), 401);

    // A recovery code works once, and the citizen is told how many remain.
    let resp = submit_second(&server, &other, &second, "recovery_code", &recovery[3].to_lowercase()).await;
    assert_eq!(resp.status(), 200);
    let notice = resp.text().await.unwrap().replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(notice.contains("Số mã khôi phục còn lại: 9"), "{notice}");
    let start = notice.find("href=\"/authorize/resume").unwrap() + "href=\"".len();
    let next = &notice[start..start + notice[start..].find('"').unwrap()];
    let resp = other.get(server.url(next)).send().await.unwrap();
    let mut url = absolute(&server.base, &location(&resp));
    while !url.starts_with(CB) {
        url = absolute(&server.base, &location(&other.get(&url).send().await.unwrap()));
    }
    let claims = token_claims(&server, &query_param(&url, "code").unwrap()).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:2fa");
    let third = client();
    let second = to_second_step(&server, &third).await;
    let resp = submit_second(&server, &third, &second, "recovery_code", &recovery[3]).await;
    assert_eq!(resp.status(), 401, "recovery code single use");
    let events = server.state.store.list_audit(1, 1000).await.unwrap();
    for kind in ["factor.enrolled", "login.second_factor", "login.second_factor_failed", "factor.recovery_code_used"] {
        assert!(events.iter().any(|e| e.event.kind == kind), "{kind} audited");
    }
    assert_eq!(xacthuc::audit::verify_chain(&events), Ok(()));
}

#[tokio::test]
async fn the_citizen_can_ask_for_a_second_factor_at_every_sign_in() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let http = client();
    register(&server, &http, &HUNG).await;
    let (secret, _) = enrol(&server, &http).await;
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("Ứng dụng xác thực"));
    // Renamed, so the citizen recognises the device.
    let marker = "/account/totp/";
    let start = account.replace("&#x2f;", "/").find(marker).unwrap() + marker.len();
    let id = account.replace("&#x2f;", "/")[start..start + 36].to_string();
    let resp = http
        .post(server.url(&format!("/account/totp/{id}/rename")))
        .form(&[("csrf", hidden(&account, "csrf")), ("name", "  Điện thoại   của Hùng ".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("Điện thoại của Hùng"), "renamed, whitespace folded");
    let resp = http
        .post(server.url("/account/second-factor"))
        .form(&[("csrf", hidden(&account, "csrf")), ("always", "on".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);

    // A plain request (no acr_values) now asks for the second step too.
    let fresh = client();
    let second = to_second_step_asking(&server, &fresh, None).await;
    let code = python_totp(&secret, xacthuc::app::now() + 30);
    let resp = submit_second(&server, &fresh, &second, "totp", &code).await;
    let claims = token_claims(&server, &follow_to_code(&server, &fresh, resp).await).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:2fa");
}

#[tokio::test]
async fn repeated_wrong_codes_lock_the_second_factor() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let enroller = client();
    register(&server, &enroller, &HUNG).await;
    let (secret, recovery) = enrol(&server, &enroller).await;
    let http = client();
    let second = to_second_step(&server, &http).await;
    // Wrong codes, alternating methods: one counter for both.
    for (i, (method, code)) in
        [("totp", "111111"), ("recovery_code", "AAAA-BBBB-CCCC-DDDD"), ("totp", "222222"), ("totp", "333333")]
            .iter()
            .enumerate()
    {
        let resp = submit_second(&server, &http, &second, method, code).await;
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    let resp = submit_second(&server, &http, &second, "totp", "444444").await;
    assert_eq!(resp.status(), 401, "the fifth failure locks");
    // Now even the right code and a valid recovery code are refused, with the lock message.
    let good = python_totp(&secret, xacthuc::app::now() + 30);
    let resp = submit_second(&server, &http, &second, "totp", &good).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.text().await.unwrap().contains("Quá nhiều lần thử sai"));
    let resp = submit_second(&server, &http, &second, "recovery_code", &recovery[0]).await;
    assert_eq!(resp.status(), 429);
    let events = server.state.store.list_audit(1, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event.kind == "login.second_factor_failed").count(), 5);
    assert!(events.iter().any(|e| e.event.kind == "factor.locked"));
    // The lock ends by time: after it, the right code works and the counter is cleared.
    let id = server.state.store.find_account_by_username("hung").await.unwrap().unwrap().id;
    let later = xacthuc::app::now() + xacthuc::service::second_factor::LOCK_SECONDS + 1;
    assert_eq!(server.state.store.locked_until(id, "second_factor", later).await.unwrap(), None);
}

/// The 6-digit code in the last message the development outbox kept for `to`.
fn code_sent_to(server: &TestServer, to: &str) -> String {
    let entry = server.state.notifier.outbox().unwrap().latest_to(to).unwrap_or_else(|| panic!("nothing sent to {to}"));
    let text = entry.message.text;
    let start = text.find(|c: char| c.is_ascii_digit()).unwrap();
    text[start..start + 6].to_string()
}

#[tokio::test]
async fn a_verified_phone_receives_sign_in_codes_by_sms() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let http = client();
    let page = http.get(server.url("/register")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("level", "as2".into()),
        ("username", HUNG.username.into()),
        ("password", PASSWORD.into()),
        ("password_confirm", PASSWORD.into()),
        ("phone", "0901234289".into()),
        ("email", "hung@example.vn".into()),
        ("national_id", "087084000999".into()),
        ("full_name", "Võ Văn Hùng".into()),
        ("birth_date", "1984-05-17".into()),
        ("sex", "male".into()),
    ];
    assert_eq!(http.post(server.url("/register")).form(&form).send().await.unwrap().status(), 303);

    // An unverified phone is no second factor: a 2fa request is unmet.
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid phone"),
        ("acr_values", "urn:xacthuc:loa:as2:2fa"),
    ]);
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("chưa xác minh"));
    let resp = http.get(url.as_str()).send().await.unwrap();
    assert_eq!(query_param(&location(&resp), "error").as_deref(), Some("unmet_authentication_requirements"));

    // Verify the phone with the code sent to it (wrong code first, then too soon a resend).
    let send = [("csrf", hidden(&account, "csrf")), ("channel", "sms".into())];
    let resp = http.post(server.url("/account/contact/send")).form(&send).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let verify_page = resp.text().await.unwrap();
    assert!(
        verify_page.contains("Mã OTP đã được gửi đến số điện thoại") && verify_page.contains("090****289"),
        "{verify_page}"
    );
    let again = http.post(server.url("/account/contact/send")).form(&send).send().await.unwrap();
    assert_eq!(again.status(), 429, "resend cooldown");
    assert!(again.text().await.unwrap().contains("Vui lòng đợi"));
    let confirm = |code: String| [("csrf", hidden(&account, "csrf")), ("channel", "sms".into()), ("code", code)];
    let wrong = http.post(server.url("/account/contact/confirm")).form(&confirm("000000".into())).send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("Mã OTP không hợp lệ"));
    let code = code_sent_to(&server, "0901234289");
    let ok = http.post(server.url("/account/contact/confirm")).form(&confirm(code.clone())).send().await.unwrap();
    assert_eq!(ok.status(), 303);
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("đã xác minh"), "phone verified");
    // A spent code does not work twice.
    let reuse = http.post(server.url("/account/contact/confirm")).form(&confirm(code)).send().await.unwrap();
    assert_eq!(reuse.status(), 400);

    // Now the phone is a second factor: password, then a code by SMS.
    let browser = client();
    let second = to_second_step(&server, &browser).await;
    let page = browser.get(&second).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("090****289"), "the masked phone is offered");
    let resp = browser
        .post(server.url("/login/second/send"))
        .form(&[("csrf", hidden(&page, "csrf")), ("r", hidden(&page, "r")), ("channel", "sms".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sent_page = resp.text().await.unwrap();
    assert!(sent_page.contains("Mã OTP đã được gửi đến số điện thoại"));
    let code = code_sent_to(&server, "0901234289");
    let resp = submit_second(&server, &browser, &second, "sms", &code).await;
    let claims = token_claims(&server, &follow_to_code(&server, &browser, resp).await).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:2fa");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "sms", "otp", "mfa"]));
    let events = server.state.store.list_audit(1, 1000).await.unwrap();
    for kind in ["otp.sent", "contact.verified", "login.second_factor"] {
        assert!(events.iter().any(|e| e.event.kind == kind), "{kind} audited");
    }
    // The outbox page shows what was sent, in development only.
    let outbox = http.get(server.url("/dev/outbox")).send().await.unwrap();
    assert_eq!(outbox.status(), 200);
    assert!(outbox.text().await.unwrap().contains("0901234289"));
}

#[tokio::test]
async fn a_failed_attempt_is_answered_slowly() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let enroller = client();
    register(&server, &enroller, &HUNG).await;
    enrol(&server, &enroller).await;
    let http = client();
    let second = to_second_step(&server, &http).await;
    let started = std::time::Instant::now();
    assert_eq!(submit_second(&server, &http, &second, "totp", "123456").await.status(), 401);
    assert!(started.elapsed() >= xacthuc::service::second_factor::FAILURE_DELAY, "slowed down");
}

/// Outside development with no SMS sender configured, a verified phone is no second factor
/// (it could not receive a code).
#[tokio::test]
async fn a_contact_whose_channel_is_off_is_no_second_factor() {
    use xacthuc::config::{Config, Overrides};
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("data.key");
    std::fs::write(&key, xacthuc::crypto::secretbox::DataKey::generate().unwrap().to_base64()).unwrap();
    let env = vec![
        ("XACTHUC_DEVELOPMENT".to_string(), "false".to_string()),
        ("XACTHUC_DATA_KEY_FILE".to_string(), key.display().to_string()),
        ("XACTHUC_PASSWORD__MEMORY_KIB".to_string(), "1024".to_string()),
        ("XACTHUC_PASSWORD__ITERATIONS".to_string(), "1".to_string()),
    ];
    let flags = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        issuer: Some("https://id.example.vn".into()),
        ..Default::default()
    };
    let state = xacthuc::app::build_state(Config::load(None, env, &flags).unwrap(), xacthuc::app::now()).await.unwrap();
    assert!(!state.notifier.can_send(xacthuc::notify::Channel::Sms));
    let input = xacthuc::service::accounts::RegistrationInput {
        username: "lan".into(),
        password: PASSWORD.into(),
        password_confirm: PASSWORD.into(),
        phone: Some("0901234289".into()),
        ..Default::default()
    };
    let now = xacthuc::app::now();
    let account =
        xacthuc::service::accounts::register(&state, input, xacthuc::i18n::Lang::Vi, "test", now).await.unwrap();
    let audit = xacthuc::audit::AuditEvent::new(now, "contact.verified", "test").account(account.id);
    assert!(state.store.mark_contact_verified(account.id, "sms", "0901234289", now, &audit).await.unwrap());
    let account = state.store.get_account(account.id).await.unwrap().unwrap();
    assert!(account.phone_verified_at.is_some());
    let reachable = xacthuc::service::second_factor::reachable_mechanism(&state, &account).await.unwrap();
    assert_eq!(reachable, xacthuc::assurance::Mechanism::OneFactor);
}
