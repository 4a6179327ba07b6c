//! Per-service policies over HTTP: a level-4 service's payment asks only for the missing second
//! factor, a stale step-up is asked again, too low a registration level is explained (never a
//! step-up), authorization details are approved, bound into the tokens and cannot be altered
//! beside a pushed request, and a policy reload swaps the set or keeps the old one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use serde_json::{Value, json};

const CB: &str = "https://hkd.example.vn/cb";
const CLIENT: &str = "portal-hkd";
const SECRET: &str = "portal-hkd-secret-0123456789abcdefghij";

/// A level-4 service whose payment and result receipt need a fresh second factor (`max_age`
/// given), and a level-3 service that takes fees online (`portal-l3`).
fn policies(max_age: &str) -> String {
    format!(
        r#"
[service.dang-ky-ho-kinh-doanh]
name = "Đăng ký hộ kinh doanh"
level = 4
clients = ["{CLIENT}"]
login = {{ min_as = "as3", mechanism = "1fa" }}

[service.dang-ky-ho-kinh-doanh.actions.payment]
min_as = "as3"
mechanism = "2fa"
max_age = "{max_age}"

[service.dang-ky-ho-kinh-doanh.actions.result_receipt]
min_as = "as3"
mechanism = "2fa"
max_age = "{max_age}"

[service.cap-ban-sao]
name = "Cấp bản sao trích lục hộ tịch"
level = 3
clients = ["portal-l3"]
login = {{ min_as = "as2", mechanism = "1fa" }}

[service.cap-ban-sao.actions.payment]
min_as = "as3"
mechanism = "2fa"
max_age = "5m"
"#
    )
}

const MAI: Citizen = Citizen {
    username: "mai",
    password: PASSWORD,
    identity: Some(("001185001234", "Trần Thị Mai", "1985-03-02", "female")),
};

async fn server_with(max_age: &str) -> TestServer {
    let server = TestServer::start_with_policies(None, &[("services.toml", &policies(max_age))]).await;
    let settings = xacthuc::store::ClientSettings { always_refresh: true, ..Default::default() };
    add_client_with(&server, CLIENT, CB, Some(SECRET), settings.clone()).await;
    add_client_with(&server, "portal-l3", CB, Some(SECRET), settings).await;
    server
}

/// Registers Mai (AS-2 by declaration), raises her to `level` as counter staff would, and
/// enrols an authenticator app; returns her browser (signed in) and her recovery codes.
async fn citizen(server: &TestServer, level: xacthuc::assurance::AsLevel) -> (reqwest::Client, Vec<String>) {
    let http = client();
    assert_eq!(register(server, &http, &MAI).await.status(), 303);
    let account = server.state.store.find_account_by_username("mai").await.unwrap().unwrap();
    let identity = account.identity.clone().unwrap();
    let audit = xacthuc::audit::AuditEvent::new(xacthuc::app::now(), "test.as_level", "test").account(account.id);
    server.state.store.update_identity(account.id, &identity, level, xacthuc::app::now(), &audit).await.unwrap();
    let (_, codes) = crate::second_factor::enrol(server, &http).await;
    (http, codes)
}

fn authorize_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("state", "st"),
    ]);
    url.query_pairs_mut().extend_pairs(extra);
    url.to_string()
}

/// Follows redirects until the portal's callback or a page of the gateway; returns the last URL
/// and, for a page, its body.
async fn follow(server: &TestServer, http: &reqwest::Client, mut url: String) -> (String, Option<String>) {
    for _ in 0..8 {
        if url.starts_with(CB) {
            return (url, None);
        }
        let resp = http.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            url = absolute(&server.base, &location(&resp));
            continue;
        }
        return (url, Some(resp.text().await.unwrap().replace("&#x2f;", "/")));
    }
    panic!("too many redirects: {url}");
}

/// Signs in with the password on the sign-in page at `login_url`; returns where that leads.
async fn password(server: &TestServer, http: &reqwest::Client, page: &str) -> String {
    let resp = http
        .post(server.url("/login"))
        .form(&[
            ("csrf", hidden(page, "csrf")),
            ("r", hidden(page, "r")),
            ("username", MAI.username.into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in refused");
    absolute(&server.base, &location(&resp))
}

/// Submits a recovery code on the second-step page `page`; returns where that leads.
async fn second_factor(server: &TestServer, http: &reqwest::Client, page: &str, code: &str) -> String {
    let resp = http
        .post(server.url("/login/second"))
        .form(&[
            ("csrf", hidden(page, "csrf")),
            ("r", hidden(page, "r")),
            ("method", "recovery_code".into()),
            ("code", code.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the recovery-code notice");
    let notice = resp.text().await.unwrap().replace("&#x2f;", "/");
    let start = notice.find("href=\"/authorize/resume").expect("continue link") + "href=\"".len();
    server.url(&notice[start..start + notice[start..].find('"').unwrap()].replace("&amp;", "&"))
}

async fn tokens(server: &TestServer, client_id: &str, callback: &str) -> Value {
    let code = query_param(callback, "code").unwrap_or_else(|| panic!("no code: {callback}"));
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(client_id, Some(SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn payment_details(amount: &str) -> String {
    json!([{"type": "payment", "amount": amount, "currency": "VND", "payee": "UBND quận Ba Đình", "reference": "HKD-2026-0042"}])
        .to_string()
}

#[tokio::test]
async fn a_payment_asks_only_for_the_missing_second_factor_and_the_token_carries_its_details() {
    let server = server_with("5m").await;
    let (http, codes) = citizen(&server, xacthuc::assurance::AsLevel::As3).await;
    // Sign in to the level-4 service at 1FA (a fresh browser session: the password only).
    let http = {
        drop(http);
        client()
    };
    let (login, page) = follow(&server, &http, authorize_url(&server, CLIENT, &[])).await;
    assert!(login.contains("/login?r="), "{login}");
    let resume = password(&server, &http, &page.unwrap()).await;
    let (cb, _) = follow(&server, &http, resume).await;
    let id = claims(tokens(&server, CLIENT, &cb).await["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:xacthuc:loa:as3:1fa");

    // "Nộp lệ phí": the password still counts, so only a second factor is asked.
    let details = payment_details("1250000");
    let (approve, page) =
        follow(&server, &http, authorize_url(&server, CLIENT, &[("authorization_details", &details)])).await;
    assert!(approve.contains("/authorize/approve?r="), "the details are approved first: {approve}");
    let page = page.unwrap();
    assert!(page.contains("1.250.000 ₫"), "the amount in Vietnamese format");
    assert!(page.contains("UBND quận Ba Đình") && page.contains("HKD-2026-0042"));
    let resp = http
        .post(server.url("/authorize/approve"))
        .form(&[("csrf", hidden(&page, "csrf")), ("r", hidden(&page, "r"))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (second, page) = follow(&server, &http, absolute(&server.base, &location(&resp))).await;
    assert!(second.contains("/login/second?r="), "not the whole sign-in again: {second}");
    let page = page.unwrap();
    assert!(page.contains("Nộp lệ phí"), "the page says why");
    assert!(page.contains("trong vòng 5 phút"), "and how fresh");
    let resume = second_factor(&server, &http, &page, &codes[0]).await;
    let (cb, _) = follow(&server, &http, resume).await;
    let body = tokens(&server, CLIENT, &cb).await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:xacthuc:loa:as3:2fa");
    let expected: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(body["authorization_details"], expected, "the token response carries the approved details");
    assert!(body.get("refresh_token").is_none(), "a one-off transaction is not renewable");
    let introspected: Value = reqwest::Client::new()
        .post(server.url("/introspect"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["authorization_details"], expected);

    // A later plain request gets a token without the transaction.
    let (cb, _) = follow(&server, &http, authorize_url(&server, CLIENT, &[])).await;
    let body = tokens(&server, CLIENT, &cb).await;
    assert!(body.get("authorization_details").is_none());

    // The audit log records the approval with the details.
    let events = server.state.store.list_audit(1, 1_000_000).await.unwrap();
    let approved = events.iter().find(|e| e.event.kind == "authorize.details_approved").expect("approval audited");
    assert_eq!(approved.event.details["authorization_details"], expected);
}

#[tokio::test]
async fn a_step_up_older_than_the_actions_max_age_is_asked_again() {
    let server = server_with("6s").await;
    let (_, codes) = citizen(&server, xacthuc::assurance::AsLevel::As3).await;
    let http = client();
    let payment = [("acr_values", "urn:xacthuc:action:payment")];
    // A payment straight away: the password, then the second factor.
    let (login, page) = follow(&server, &http, authorize_url(&server, CLIENT, &payment)).await;
    assert!(login.contains("/login?r="), "{login}");
    let resume = password(&server, &http, &page.unwrap()).await;
    let (second, page) = follow(&server, &http, resume).await;
    assert!(second.contains("/login/second?r="), "{second}");
    let resume = second_factor(&server, &http, &page.unwrap(), &codes[0]).await;
    let (cb, _) = follow(&server, &http, resume).await;
    let first = tokens(&server, CLIENT, &cb).await;
    assert_eq!(claims(first["id_token"].as_str().unwrap())["acr"], "urn:xacthuc:loa:as3:2fa");

    // Seven seconds later both factors are too old for the payment: nothing fresh to build on,
    // so a new sign-in, then the second factor again.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let (login, page) = follow(&server, &http, authorize_url(&server, CLIENT, &payment)).await;
    assert!(login.contains("/login?r="), "{login}");
    let resume = password(&server, &http, &page.unwrap()).await;
    let (second, page) = follow(&server, &http, resume).await;
    assert!(second.contains("/login/second?r="), "the step-up again: {second}");
    let resume = second_factor(&server, &http, &page.unwrap(), &codes[1]).await;
    let (cb, _) = follow(&server, &http, resume).await;
    let second = tokens(&server, CLIENT, &cb).await;
    let second_claims = claims(second["id_token"].as_str().unwrap());
    assert_eq!(second_claims["acr"], "urn:xacthuc:loa:as3:2fa");
    // Signing in again as the same citizen re-authenticated the session rather than replacing
    // it: the same `sid`, and the portal's earlier tokens still work (no logout was sent).
    assert_eq!(second_claims["sid"], claims(first["id_token"].as_str().unwrap())["sid"]);
    let refreshed = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200, "the earlier grant is alive");

    // A plain request needs no freshness: no step-up, no sign-in.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let (cb, _) = follow(&server, &http, authorize_url(&server, CLIENT, &[])).await;
    assert!(cb.starts_with(CB), "{cb}");
    // prompt=none on a stale payment: no page, login_required to the portal.
    let (cb, _) = follow(&server, &http, authorize_url(&server, CLIENT, &[payment[0], ("prompt", "none")])).await;
    assert_eq!(query_param(&cb, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn too_low_a_registration_level_for_a_payment_is_explained_not_stepped_up() {
    let server = server_with("5m").await;
    let (http, _) = citizen(&server, xacthuc::assurance::AsLevel::As2).await;
    // The level-3 service signs an AS-2 citizen in...
    let (cb, _) = follow(&server, &http, authorize_url(&server, "portal-l3", &[])).await;
    assert!(cb.starts_with(CB), "{cb}");
    // ...but its payment needs AS-3: an explanation, not a step-up.
    let url = authorize_url(&server, "portal-l3", &[("acr_values", "urn:xacthuc:action:payment")]);
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(page.contains("AS-3") && page.contains("AS-2"), "the levels are named");
    assert!(page.contains("action=\"/authorize/cancel\""));
    let resp = http
        .post(server.url("/authorize/cancel"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("reason", "insufficient_assurance".into()),
        ])
        .send()
        .await
        .unwrap();
    let cb = location(&resp);
    assert!(cb.starts_with(CB), "{cb}");
    assert_eq!(query_param(&cb, "error").as_deref(), Some("access_denied"));
    let description = query_param(&cb, "error_description").unwrap();
    assert!(description.contains("AS-3") && description.contains("action:payment"), "{description}");
}

#[tokio::test]
async fn authorization_details_beside_a_pushed_request_are_refused() {
    let server = server_with("5m").await;
    let settings = xacthuc::store::ClientSettings { require_par: true, ..Default::default() };
    add_client_with(&server, "portal-par", CB, Some(SECRET), settings).await;
    let (http, _) = citizen(&server, xacthuc::assurance::AsLevel::As3).await;
    let details = payment_details("1250000");
    // Without PAR, a PAR-only client is refused.
    let resp =
        http.get(authorize_url(&server, "portal-par", &[("authorization_details", &details)])).send().await.unwrap();
    let cb = location(&resp);
    assert_eq!(query_param(&cb, "error").as_deref(), Some("invalid_request"), "{cb}");
    // Pushed: the details are fixed.
    let resp = reqwest::Client::new()
        .post(server.url("/par"))
        .basic_auth("portal-par", Some(SECRET))
        .form(&[
            ("response_type", "code"),
            ("client_id", "portal-par"),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("authorization_details", &details),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let pushed: Value = resp.json().await.unwrap();
    let request_uri = pushed["request_uri"].as_str().unwrap();
    // An attacker adds cheaper details beside the request_uri: refused, nothing shown to approve.
    let mut tampered = url::Url::parse(&server.url("/authorize")).unwrap();
    tampered.query_pairs_mut().extend_pairs([
        ("client_id", "portal-par"),
        ("request_uri", request_uri),
        ("authorization_details", &payment_details("1000")),
    ]);
    let resp = http.get(tampered.as_str()).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("invalid_authorization_details"));
    // Details of a type the gateway does not know are refused back to the portal.
    let odd = json!([{"type": "account_information", "iban": "x"}]).to_string();
    let (cb, _) = follow(&server, &http, authorize_url(&server, CLIENT, &[("authorization_details", &odd)])).await;
    assert_eq!(query_param(&cb, "error").as_deref(), Some("invalid_authorization_details"), "{cb}");
}

#[tokio::test]
async fn a_policy_reload_swaps_the_set_and_keeps_it_when_the_new_one_is_invalid() {
    let server = server_with("5m").await;
    let dir = server.state.config.policies_dir.clone();
    assert_eq!(server.state.policies().services.len(), 2);
    // A level-4 payment below the floor: refused, the old set stays.
    let weak = policies("5m").replace(
        "mechanism = \"2fa\"\nmax_age = \"5m\"\n\n[service.dang-ky-ho-kinh-doanh.actions.result_receipt]",
        "mechanism = \"1fa\"\nmax_age = \"5m\"\n\n[service.dang-ky-ho-kinh-doanh.actions.result_receipt]",
    );
    assert_ne!(weak, policies("5m"));
    std::fs::write(dir.join("services.toml"), &weak).unwrap();
    let e = server.state.reload_policies().unwrap_err();
    assert!(e.to_string().contains("floor.payment"), "{e}");
    assert_eq!(server.state.policies().services.len(), 2);
    // A valid new set is swapped in: portal-l3 no longer named, so the defaults apply to it.
    let only_hkd = policies("5m");
    let only_hkd = &only_hkd[..only_hkd.find("[service.cap-ban-sao]").unwrap()];
    std::fs::write(dir.join("services.toml"), only_hkd).unwrap();
    let set = server.state.reload_policies().unwrap();
    assert_eq!(set.services.len(), 1);
    assert_eq!(server.state.policies().services.len(), 1);
    assert!(server.state.policies().for_client("portal-l3").service.is_none());
}

/// The issue's "done when": at the demo's level-4 service the AS-3 demo citizen signs in at
/// 1FA, pays the fee — approves 1.250.000 ₫, gives an e-mail code — and the portal shows
/// `…:as3:2fa` and the payment details from its token.
#[tokio::test]
async fn the_demo_level4_service_steps_up_for_the_fee_and_shows_the_details() {
    let server = TestServer::start().await;
    xacthuc::service::accounts::ensure_demo_citizen(&server.state, xacthuc::app::now()).await.unwrap();
    let browser = client();
    let user = xacthuc::service::accounts::DEMO_CITIZEN;
    let pw = xacthuc::service::accounts::DEMO_CITIZEN_PASSWORD;
    let home = browser.get(server.url("/demo")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("/demo/login?svc=hkd&amp;action=payment") && home.contains("1.250.000 ₫"));

    // Sign in at 1FA.
    let (login, page) = follow(&server, &browser, server.url("/demo/login?svc=hkd")).await;
    assert!(login.contains("/login?r="), "{login}");
    let page = page.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", user.into()),
        ("password", pw.into()),
    ];
    let resp = browser.post(server.url("/login")).form(&form).send().await.unwrap();
    let (_, result) = follow(&server, &browser, absolute(&server.base, &location(&resp))).await;
    assert!(result.unwrap().contains("<code id=\"acr\">urn:xacthuc:loa:as3:1fa</code>"));

    // "Nộp lệ phí": approve the details, then only an e-mail code.
    let (approve, page) = follow(&server, &browser, server.url("/demo/login?svc=hkd&action=payment")).await;
    assert!(approve.contains("/authorize/approve?r="), "{approve}");
    let page = page.unwrap();
    assert!(page.contains("1.250.000 ₫"));
    let form = [("csrf", hidden(&page, "csrf")), ("r", hidden(&page, "r"))];
    let resp = browser.post(server.url("/authorize/approve")).form(&form).send().await.unwrap();
    let (second, page) = follow(&server, &browser, absolute(&server.base, &location(&resp))).await;
    assert!(second.contains("/login/second?r="), "{second}");
    let page = page.unwrap();
    let form = [("csrf", hidden(&page, "csrf")), ("r", hidden(&page, "r")), ("channel", "email".into())];
    let resp = browser.post(server.url("/login/second/send")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let entry = server.state.notifier.outbox().unwrap().latest_to("congdan.demo@example.invalid").expect("a code");
    let text = entry.message.text;
    let start = text.find(|c: char| c.is_ascii_digit()).unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("method", "email".into()),
        ("code", text[start..start + 6].to_string()),
    ];
    let resp = browser.post(server.url("/login/second")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let (_, result) = follow(&server, &browser, absolute(&server.base, &location(&resp))).await;
    let result = result.unwrap();
    assert!(result.contains("<code id=\"acr\">urn:xacthuc:loa:as3:2fa</code>"), "{result}");
    assert!(result.contains("id=\"authorization-details\""), "the token's details are shown");
    assert!(result.contains("1250000") && result.contains("HKD-2026-0042"));
}
