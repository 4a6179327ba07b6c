//! Logout against the running server: RP-initiated logout at the end_session_endpoint, and
//! back-channel logout tokens POSTed to a real listener standing in for a portal's back channel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use xacthuc::crypto::jws;
use xacthuc::store::{ClientSettings, LogoutDelivery};

const CB_A: &str = "https://a.example.vn/cb";
const BYE_A: &str = "https://a.example.vn/da-dang-xuat";
const CB_B: &str = "https://b.example.vn/cb";
const SECRET_A: &str = "portal-a-secret-0123456789abcdefghijkl";
const SECRET_B: &str = "portal-b-secret-0123456789abcdefghijkl";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

const LAN: Citizen = Citizen { username: "lan.tran", password: PASSWORD, identity: None };

/// What the portal's back channel received: the content type and the `logout_token`.
type Received = (String, String);

/// A portal's back-channel logout endpoint on 127.0.0.1:0, answering `status` to every POST.
async fn backchannel(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/backchannel-logout",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let content_type =
                    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let _ = tx.send((content_type, token));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/backchannel-logout", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

async fn next_token(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no logout token reached the back channel")
        .expect("back channel closed")
}

/// Portal A: a back channel and a post-logout URI; portal B: neither.
async fn portals(server: &TestServer, backchannel_uri: &str) {
    let a = ClientSettings {
        post_logout_redirect_uris: vec![BYE_A.into()],
        backchannel_logout_uri: Some(backchannel_uri.into()),
        ..Default::default()
    };
    add_client_with(server, "portal-a", CB_A, Some(SECRET_A), a).await;
    add_client_with(server, "portal-b", CB_B, Some(SECRET_B), ClientSettings::default()).await;
}

/// A code flow for `client_id` in `browser` (signed in already or signing in as LAN); returns
/// the token response.
async fn sign_in_to(server: &TestServer, browser: &reqwest::Client, client_id: &str, cb: &str, secret: &str) -> Value {
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", cb),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n-1"),
    ];
    let code = authorize_code(server, browser, &params, cb, (LAN.username, PASSWORD)).await;
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", cb)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn jwks(server: &TestServer) -> Value {
    reqwest::get(server.url("/jwks.json")).await.unwrap().json().await.unwrap()
}

async fn userinfo_status(server: &TestServer, access_token: &Value) -> u16 {
    let token = access_token.as_str().unwrap();
    reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn signed_in(server: &TestServer, browser: &reqwest::Client) -> bool {
    browser.get(server.url("/account")).send().await.unwrap().status() == 200
}

fn end_session_url(server: &TestServer, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/logout/end")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

async fn audit_kinds(server: &TestServer) -> Vec<xacthuc::audit::AuditEvent> {
    server.state.store.list_audit(1, 1000).await.unwrap().into_iter().map(|e| e.event).collect()
}

#[tokio::test]
async fn rp_initiated_logout_sends_a_verifiable_logout_token_and_redirects_with_state() {
    let server = TestServer::start().await;
    let (uri, mut rx) = backchannel(StatusCode::OK).await;
    portals(&server, &uri).await;
    let browser = client();
    assert_eq!(register(&server, &browser, &LAN).await.status(), 303);
    let a = sign_in_to(&server, &browser, "portal-a", CB_A, SECRET_A).await;
    let b = sign_in_to(&server, &browser, "portal-b", CB_B, SECRET_B).await;
    let id_token = a["id_token"].as_str().unwrap();
    let (_, id_claims) = jws::peek(id_token).unwrap();
    let sid = id_claims["sid"].as_str().unwrap();
    assert!(!sid.is_empty());

    let discovery: Value =
        reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["end_session_endpoint"], server.url("/logout/end"));
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);

    // The hint names this very session: no question asked, straight back to the portal.
    let url = end_session_url(
        &server,
        &[("id_token_hint", id_token), ("post_logout_redirect_uri", BYE_A), ("state", "tạm biệt")],
    );
    let resp = browser.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("{BYE_A}?state=t%E1%BA%A1m+bi%E1%BB%87t"));
    assert_eq!(query_param(&location(&resp), "state").as_deref(), Some("tạm biệt"));
    assert!(!signed_in(&server, &browser).await, "the gateway session is over");

    // Back-Channel Logout §2.5: a form POST with `logout_token`, verifiable against our JWKS.
    let (content_type, token) = next_token(&mut rx).await;
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let claims = jws::verify(&token, &jwks(&server).await).expect("signed with a published key");
    let (header, _) = jws::peek(&token).unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], "ES256", "the client's ID token algorithm");
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["aud"], "portal-a");
    assert_eq!(claims["sid"], sid, "the sid of the portal's ID token");
    assert_eq!(claims["sub"], id_claims["sub"], "the portal's (pairwise) sub");
    assert_eq!(claims["events"], serde_json::json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "§2.4: a Logout Token MUST NOT contain a nonce Claim");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(exp > iat && exp - iat <= 120, "short-lived: iat {iat}, exp {exp}");

    // The session's grants are revoked: both portals' access tokens are dead.
    assert_eq!(userinfo_status(&server, &a["access_token"]).await, 401);
    assert_eq!(userinfo_status(&server, &b["access_token"]).await, 401);

    // Portal B has no back channel: one delivery in all, recorded as delivered.
    let events = audit_kinds(&server).await;
    let logout = events.iter().find(|e| e.kind == "logout").expect("logout audited");
    assert_eq!(logout.details["clients_notified"], 1);
    let mut attempts = Vec::new();
    for _ in 0..200 {
        attempts = pending(&server).await;
        if attempts.is_empty() {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(attempts.is_empty(), "delivery not recorded: {attempts:?}");
    assert!(rx.try_recv().is_err(), "exactly one logout token");

    // Without a session the same request just goes back to the portal.
    let resp = browser.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
}

/// Deliveries still to be attempted (neither delivered nor given up).
async fn pending(server: &TestServer) -> Vec<LogoutDelivery> {
    server.state.store.due_logout_deliveries(i64::MAX - 1, 100).await.unwrap()
}

#[tokio::test]
async fn bad_logout_requests_get_an_error_page_and_no_redirect() {
    let server = TestServer::start().await;
    let (uri, _rx) = backchannel(StatusCode::OK).await;
    portals(&server, &uri).await;
    let browser = client();
    register(&server, &browser, &LAN).await;
    let a = sign_in_to(&server, &browser, "portal-a", CB_A, SECRET_A).await;
    let hint = a["id_token"].as_str().unwrap();
    let cases: &[(&str, Vec<(&str, &str)>)] = &[
        ("unregistered uri", vec![("id_token_hint", hint), ("post_logout_redirect_uri", "https://evil.example/x")]),
        ("uri of another portal", vec![("id_token_hint", hint), ("post_logout_redirect_uri", CB_A)]),
        ("uri without hint or client_id", vec![("post_logout_redirect_uri", BYE_A)]),
        ("client_id differs from the hint", vec![("id_token_hint", hint), ("client_id", "portal-b")]),
        ("hint tampered with", vec![("id_token_hint", &hint[..hint.len() - 4])]),
        ("unknown client", vec![("client_id", "nobody"), ("post_logout_redirect_uri", BYE_A)]),
    ];
    for (name, params) in cases {
        let resp = browser.get(end_session_url(&server, params)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{name}");
        assert!(resp.headers().get(header::LOCATION).is_none(), "{name}: never redirected");
        let page = resp.text().await.unwrap();
        assert!(page.contains("Yêu cầu đăng xuất không hợp lệ"), "{name}: {page}");
        assert!(signed_in(&server, &browser).await, "{name}: nothing was done");
    }
    // POST works the same way (RP-Initiated Logout §2: GET and POST).
    let resp = browser
        .post(server.url("/logout/end"))
        .form(&[("id_token_hint", hint), ("post_logout_redirect_uri", "https://evil.example/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(signed_in(&server, &browser).await);
    assert_eq!(userinfo_status(&server, &a["access_token"]).await, 200);
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_needs_the_csrf_token() {
    let server = TestServer::start().await;
    let (uri, mut rx) = backchannel(StatusCode::NO_CONTENT).await;
    portals(&server, &uri).await;
    let browser = client();
    register(&server, &browser, &LAN).await;
    let a = sign_in_to(&server, &browser, "portal-a", CB_A, SECRET_A).await;

    // No hint: §2 "the OP MUST ask the End-User". The page posts the parameters back.
    let url =
        end_session_url(&server, &[("client_id", "portal-a"), ("post_logout_redirect_uri", BYE_A), ("state", "s1")]);
    let resp = browser.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("action=\"/logout/end\""), "{page}");
    assert!(page.contains("Đăng xuất"), "{page}");
    assert!(page.contains("portal-a"), "names the portal: {page}");
    assert_eq!(hidden(&page, "post_logout_redirect_uri"), BYE_A);
    let csrf = hidden(&page, "csrf");
    assert!(signed_in(&server, &browser).await, "asking is not logging out");

    // An RP's POST without a hint is asked about too, not obeyed.
    let resp = browser.post(server.url("/logout/end")).form(&[("client_id", "portal-a")]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(signed_in(&server, &browser).await);

    // The confirmation without its CSRF token (a cross-site form) is refused.
    let answer = [("confirm", "yes"), ("client_id", "portal-a"), ("post_logout_redirect_uri", BYE_A), ("state", "s1")];
    let resp = browser.post(server.url("/logout/end")).form(&answer).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(signed_in(&server, &browser).await);
    let resp =
        browser.post(server.url("/logout/end")).form(&[("confirm", "yes"), ("csrf", "forged")]).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(signed_in(&server, &browser).await);

    // With it: signed out, back to the portal with its state (client_id confirmed the URI).
    let mut answer: Vec<(&str, &str)> = answer.to_vec();
    answer.push(("csrf", &csrf));
    let resp = browser.post(server.url("/logout/end")).form(&answer).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("{BYE_A}?state=s1"));
    assert!(!signed_in(&server, &browser).await);
    assert_eq!(userinfo_status(&server, &a["access_token"]).await, 401);
    let (_, token) = next_token(&mut rx).await;
    assert_eq!(jws::verify(&token, &jwks(&server).await).unwrap()["aud"], "portal-a");

    // Not signed in and nothing to redirect to: the signed-out page.
    let resp = browser.get(server.url("/logout/end")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Bạn đã đăng xuất"));
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_back_off_then_given_up_and_audited() {
    let server = TestServer::start().await;
    let (uri, mut rx) = backchannel(StatusCode::INTERNAL_SERVER_ERROR).await;
    portals(&server, &uri).await;
    let browser = client();
    register(&server, &browser, &LAN).await;
    sign_in_to(&server, &browser, "portal-a", CB_A, SECRET_A).await;

    // The sign-out button (POST /logout) notifies portals too.
    let page = browser.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    let resp = browser.post(server.url("/logout")).form(&[("csrf", hidden(&page, "csrf"))]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!signed_in(&server, &browser).await);

    // The immediate attempt fails (500) and is recorded with a retry time.
    next_token(&mut rx).await;
    let mut delivery = None;
    for _ in 0..500 {
        if let Some(d) = pending(&server).await.into_iter().find(|d| d.attempts == 1) {
            delivery = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut d = delivery.expect("first attempt recorded");
    assert_eq!(d.last_error.as_deref(), Some("HTTP 500"));
    assert!(d.next_attempt_at >= d.created_at + 30, "back-off before the first retry");

    // Not due yet: nothing sent.
    let report = xacthuc::service::logout::deliver_due(&server.state, d.next_attempt_at - 1).await.unwrap();
    assert_eq!(report, Default::default());

    let jwks = jwks(&server).await;
    let mut previous_delay = 0;
    for attempt in 2..=xacthuc::service::logout::MAX_ATTEMPTS {
        let at = d.next_attempt_at;
        let report = xacthuc::service::logout::deliver_due(&server.state, at).await.unwrap();
        let (_, token) = next_token(&mut rx).await;
        // Even hours later the token is current: re-dated and re-signed, same jti.
        let claims = jws::verify(&token, &jwks).expect("a retried token verifies too");
        assert!(claims["exp"].as_i64().unwrap() > at, "attempt {attempt}: not expired when sent");
        assert!(claims.get("nonce").is_none());
        if attempt < xacthuc::service::logout::MAX_ATTEMPTS {
            assert_eq!(report.retrying, 1, "attempt {attempt}");
            let next = pending(&server).await.into_iter().find(|x| x.id == d.id).unwrap();
            assert_eq!(next.attempts, attempt);
            let delay = next.next_attempt_at - at;
            assert!(delay > previous_delay, "attempt {attempt}: back-off grows ({previous_delay} → {delay})");
            previous_delay = delay;
            d = next;
        } else {
            assert_eq!(report.given_up, 1, "attempt {attempt}");
        }
    }
    // Given up: never due again, and audited.
    assert!(pending(&server).await.is_empty());
    let events = audit_kinds(&server).await;
    let failed = events.iter().find(|e| e.kind == "logout.delivery_failed").expect("give-up audited");
    assert_eq!(failed.client_id.as_deref(), Some("portal-a"));
    assert_eq!(failed.details["attempts"], xacthuc::service::logout::MAX_ATTEMPTS);
    assert!(rx.try_recv().is_err(), "no attempt after giving up");
}
