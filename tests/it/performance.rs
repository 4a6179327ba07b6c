//! Issue 10: what the speed work changes for a user — a sign-in beyond the hashing pool's queue
//! is refused at once with a clear 503 page and `Retry-After` (never a 500 or a time-out), and
//! discovery and JWKS are the same bytes, with an `ETag`, until the keys change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;

/// One worker, one waiting place, and a hash expensive enough that a burst overlaps it.
async fn busy_server() -> TestServer {
    TestServer::start_full(
        None,
        false,
        &[
            ("XACTHUC_PASSWORD__WORKERS", "1"),
            ("XACTHUC_PASSWORD__QUEUE", "1"),
            ("XACTHUC_PASSWORD__MEMORY_KIB", "65536"),
            ("XACTHUC_PASSWORD__ITERATIONS", "3"),
        ],
    )
    .await
}

/// A fresh browser on the sign-in page, ready to post: (browser, form).
async fn ready_to_sign_in(server: &TestServer, username: &str, lang: &str) -> (reqwest::Client, Vec<(String, String)>) {
    let browser = client();
    let page =
        browser.get(server.url("/login")).header("Accept-Language", lang).send().await.unwrap().text().await.unwrap();
    let form = vec![
        ("csrf".to_string(), hidden(&page, "csrf")),
        ("username".to_string(), username.to_string()),
        ("password".to_string(), PASSWORD.to_string()),
    ];
    (browser, form)
}

#[tokio::test]
async fn sign_ins_beyond_the_hashing_queue_are_refused_with_a_503_page_not_an_error() {
    let server = busy_server().await;
    // Eight people (attempts on one user name take turns instead: `LoginGate`).
    let names: Vec<String> = (0..8).map(|i| format!("lan.nguyen.{i}")).collect();
    for name in &names {
        let citizen = Citizen { username: name, password: PASSWORD, identity: None };
        let resp = register(&server, &client(), &citizen).await;
        assert!(resp.status().is_redirection(), "registration: {}", resp.status());
    }

    // Eight people press "Đăng nhập" at the same moment (half with an English browser).
    let mut ready = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let lang = if i % 2 == 0 { "vi" } else { "en" };
        ready.push((name.clone(), lang, ready_to_sign_in(&server, name, lang).await));
    }
    let mut handles = Vec::new();
    for (name, lang, (browser, form)) in ready {
        let url = server.url("/login");
        handles.push(tokio::spawn(async move {
            let resp = browser.post(url).header("Accept-Language", lang).form(&form).send().await.unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (name, lang, status, retry_after, resp.text().await.unwrap())
        }));
    }
    let (mut signed_in, mut refused) = (0, 0);
    let mut refused_names = Vec::new();
    for h in handles {
        let (name, lang, status, retry_after, body) = h.await.unwrap();
        match status {
            303 => signed_in += 1,
            503 => {
                refused += 1;
                refused_names.push(name);
                assert_eq!(retry_after.as_deref(), Some("5"), "a refused sign-in says when to come back");
                let (title, text) = if lang == "vi" {
                    ("Hệ thống đang bận", "Hệ thống đang bận, vui lòng thử lại sau ít phút.")
                } else {
                    ("The system is busy", "The system is busy, please try again in a few minutes.")
                };
                assert!(body.contains(title) && body.contains(text), "{lang} busy page:\n{body}");
            }
            other => panic!("a sign-in answered {other} (expected 303 or 503):\n{body}"),
        }
    }
    // One hashing, one waiting: at least those two get through; the burst overflows the rest.
    assert!(signed_in >= 2, "signed in: {signed_in}, refused: {refused}");
    assert!(refused >= 1, "signed in: {signed_in}, refused: {refused}");
    let metrics = server.state.metrics.render();
    let shed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xacthuc_password_hashes_shed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(shed, Some(f64::from(refused)), "{metrics}");

    // Refused attempts count nowhere: once the burst is over, those citizens sign in.
    for name in refused_names {
        let (browser, form) = ready_to_sign_in(&server, &name, "vi").await;
        let resp = browser.post(server.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{name}");
    }
}

#[tokio::test]
async fn busy_maps_to_temporarily_unavailable_with_retry_after_on_protocol_endpoints() {
    use axum::response::IntoResponse;
    let error = xacthuc::oidc::OAuthError::from(xacthuc::service::ServiceError::Busy);
    assert_eq!((error.code, error.status), ("temporarily_unavailable", 503));
    let response = xacthuc::http::error::OAuthJson::new(error).into_response();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
}

#[tokio::test]
async fn discovery_and_jwks_are_served_once_serialized_with_an_etag() {
    let server = TestServer::start().await;
    for path in ["/.well-known/openid-configuration", "/jwks.json"] {
        let first = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers().get("cache-control").unwrap(), "public, max-age=300");
        let etag = first.headers().get("etag").expect("an ETag").to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let body = first.text().await.unwrap();
        serde_json::from_str::<serde_json::Value>(&body).unwrap();

        // A reload that finds the same keys changes nothing.
        xacthuc::service::keys::reload(&server.state, xacthuc::app::now()).await.unwrap();
        let again = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(again.headers().get("etag").unwrap().to_str().unwrap(), etag, "{path}");
        assert_eq!(again.text().await.unwrap(), body, "{path}");

        // A client holding it gets 304 with no body.
        let cached = server.http.get(server.url(path)).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(cached.status(), 304, "{path}");
        assert_eq!(cached.headers().get("etag").unwrap().to_str().unwrap(), etag);
        assert!(cached.text().await.unwrap().is_empty());
        let stale = server.http.get(server.url(path)).header("If-None-Match", "\"other\"").send().await.unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }

    // A rotation publishes a new key: a new JWKS with a new ETag.
    let before = server.http.get(server.url("/jwks.json")).send().await.unwrap();
    let before_etag = before.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let now = xacthuc::app::now();
    let rotated = xacthuc::service::keys::rotate(
        server.state.store.as_ref(),
        &server.state.data_key,
        &[xacthuc::crypto::signing::SigningAlg::ES256],
        "test",
        now,
        now + 3600,
    )
    .await
    .unwrap();
    xacthuc::service::keys::reload(&server.state, now).await.unwrap();
    let after = server.http.get(server.url("/jwks.json")).send().await.unwrap();
    assert_ne!(after.headers().get("etag").unwrap().to_str().unwrap(), before_etag);
    assert!(after.text().await.unwrap().contains(&rotated[0].kid));
}
