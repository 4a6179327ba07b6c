//! Prometheus metrics on their own listener: what a sign-in, a failed one, a second step and a
//! token exchange add, and that the citizens' port does not serve them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;

const CB: &str = "https://portal.example.vn/cb";
const LAN: Citizen = Citizen {
    username: "lan",
    password: PASSWORD,
    identity: Some(("001186002345", "Phạm Thị Lan", "1986-08-12", "female")),
};

async fn metrics(server: &TestServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = xacthuc::http::metrics_router(server.state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let resp = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    resp.text().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn sign_ins_second_steps_and_tokens_are_counted_on_the_metrics_listener() {
    let server = TestServer::start().await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let http = client();
    assert_eq!(register(&server, &http, &LAN).await.status(), 303);
    let (_, codes) = crate::second_factor::enrol(&server, &http).await;

    // A wrong password, then password + recovery code at a portal asking for 2fa.
    let browser = client();
    let page = browser.get(server.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", hidden(&page, "csrf")), ("username", "lan".into()), ("password", "sai mật khẩu".into())];
    assert_eq!(browser.post(server.url("/login")).form(&form).send().await.unwrap().status(), 401);
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", "urn:xacthuc:loa:as2:2fa"),
    ]);
    let login = absolute(&server.base, &location(&browser.get(url.as_str()).send().await.unwrap()));
    let page = browser.get(&login).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", "lan".into()),
        ("password", PASSWORD.into()),
    ];
    let resume =
        absolute(&server.base, &location(&browser.post(server.url("/login")).form(&form).send().await.unwrap()));
    let second = absolute(&server.base, &location(&browser.get(&resume).send().await.unwrap()));
    let page = browser.get(&second).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("method", "recovery_code".into()),
        ("code", codes[0].clone()),
    ];
    let notice = browser.post(server.url("/login/second")).form(&form).send().await.unwrap().text().await.unwrap();
    let notice = notice.replace("&#x2f;", "/").replace("&amp;", "&");
    let start = notice.find("/authorize/resume").unwrap();
    let mut next = server.url(&notice[start..start + notice[start..].find('"').unwrap()]);
    let code = loop {
        if next.starts_with(CB) {
            break query_param(&next, "code").unwrap();
        }
        next = absolute(&server.base, &location(&browser.get(&next).send().await.unwrap()));
    };
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let text = metrics(&server).await;
    // The registration's session and the sign-in: two password sign-ins.
    assert_eq!(value(&text, "xacthuc_sign_ins_total{result=\"success\",method=\"pwd\"}"), 2.0);
    assert_eq!(value(&text, "xacthuc_sign_ins_total{result=\"failure\",method=\"pwd\"}"), 1.0);
    assert_eq!(value(&text, "xacthuc_step_ups_total{factor=\"otp\"}"), 1.0, "the recovery code");
    assert_eq!(value(&text, "xacthuc_tokens_issued_total{grant_type=\"authorization_code\"}"), 1.0);
    assert!(
        value(&text, "xacthuc_http_request_duration_seconds_count{method=\"POST\",route=\"/login\",status=\"4xx\"}")
            >= 1.0
    );
    assert!(
        value(&text, "xacthuc_http_request_duration_seconds_count{method=\"POST\",route=\"/token\",status=\"2xx\"}")
            >= 1.0
    );
    // Not on the citizens' port.
    assert_eq!(http.get(server.url("/metrics")).send().await.unwrap().status(), 404);
}

/// Every answer carries a request id for the logs: a new one, or the proxy's.
#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestServer::start().await;
    let resp = reqwest::get(server.url("/healthz")).await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let again = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), id, "one per request");
    let resp =
        reqwest::Client::new().get(server.url("/nowhere")).header("x-request-id", "proxy-7f3a").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "proxy-7f3a", "a proxy's id is kept");
}
