//! Pushed authorization requests (RFC 9126), clients that must push, `response_mode=form_post`
//! and the client's scope limits, against the running server. Error paths over raw HTTP with the
//! exact `error` and status asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use reqwest::header::HeaderMap;
use serde_json::Value;
use xacthuc::store::ClientSettings;

const CB: &str = "https://portal.example.vn/callback";
const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

const HOA: Citizen = Citizen {
    username: "hoa.tran",
    password: PASSWORD,
    identity: Some(("087084000999", "Nguyễn Thị Giang", "1984-05-17", "male")),
};

/// A server with `portal` (confidential), `strict` (confidential, must push), `app` (public)
/// and `limited` (confidential, openid and email only), and HOA registered.
async fn setup() -> (TestServer, String) {
    let server = TestServer::start().await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let strict = ClientSettings { require_par: true, ..Default::default() };
    add_client_with(&server, "strict", CB, Some(&secret_of("strict")), strict).await;
    add_client_with(&server, "app", CB, None, ClientSettings::default()).await;
    let limited = ClientSettings { scopes: vec!["openid".into(), "email".into()], ..Default::default() };
    add_client_with(&server, "limited", CB, Some(&secret_of("limited")), limited).await;
    assert_eq!(register(&server, &client(), &HOA).await.status(), 303);
    (server, secret)
}

fn secret_of(id: &str) -> String {
    format!("{id}-secret-0123456789abcdefghijklmnop")
}

/// The usual authorization parameters of `client_id`; `extra` replaces or adds parameters.
fn params<'a>(client_id: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", "openid profile"),
        ("state", "st-pushed"),
        ("nonce", "n-pushed"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        match p.iter_mut().find(|(name, _)| name == k) {
            Some(existing) => existing.1 = v,
            None => p.push((k, v)),
        }
    }
    p
}

async fn push(server: &TestServer, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(server.url("/par")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

/// Pushes and returns the `request_uri`, asserting the RFC 9126 §2.2 response.
async fn pushed(server: &TestServer, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> String {
    let (status, headers, body) = push(server, form, basic).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with(PREFIX) && uri.len() > PREFIX.len() + 40, "{uri}");
    uri
}

fn authorize_url(server: &TestServer, query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    url.to_string()
}

async fn token(server: &TestServer, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(server.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn exchange(server: &TestServer, code: &str, basic: Option<(&str, &str)>, client_id: Option<&str>) -> Value {
    let mut form =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB), ("code_verifier", VERIFIER)];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let (status, body) = token(server, &form, basic).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Follows redirects from `url` with `http` until the portal's callback or a page; returns the
/// last URL and, for a page, its status and body.
async fn browse(server: &TestServer, http: &reqwest::Client, url: &str) -> (String, Option<(u16, String)>) {
    let mut url = url.to_string();
    for _ in 0..8 {
        if url.starts_with(CB) {
            return (url, None);
        }
        let resp = http.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            url = absolute(&server.base, &location(&resp));
            continue;
        }
        let status = resp.status().as_u16();
        return (url, Some((status, resp.text().await.unwrap())));
    }
    panic!("too many redirects, last {url}");
}

/// An error page for `code` (never a redirect).
async fn assert_error_page(server: &TestServer, url: &str, code: &str) {
    let (last, page) = browse(server, &client(), url).await;
    let (status, body) = page.unwrap_or_else(|| panic!("redirected to {last}, expected a page"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(&format!("({code}:")), "expected {code} in:\n{body}");
}

/// The ID token's payload (the signature is checked by the oidc_flow tests).
fn id_token_claims(tokens: &Value) -> Value {
    use base64::Engine;
    let jwt = tokens["id_token"].as_str().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The form_post form's action and its fields, unescaped.
fn form_post_fields(page: &str) -> (String, Vec<(String, String)>) {
    let start = page.find("<form id=\"form-post\"").unwrap_or_else(|| panic!("no form_post form in:\n{page}"));
    let form = &page[start..start + page[start..].find("</form>").unwrap()];
    let attr = |s: &str, name: &str| {
        let marker = format!("{name}=\"");
        let at = s.find(&marker).unwrap() + marker.len();
        s[at..at + s[at..].find('"').unwrap()]
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let fields = form.split("<input ").skip(1).map(|input| (attr(input, "name"), attr(input, "value"))).collect();
    (attr(form, "action"), fields)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn par_happy_path_through_code_and_token() {
    let (server, secret) = setup().await;
    // Discovery advertises the endpoint; pushing is not required of every client.
    let meta: Value =
        reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(meta["pushed_authorization_request_endpoint"], server.url("/par"));
    assert_eq!(meta["require_pushed_authorization_requests"], false);
    assert_eq!(meta["response_modes_supported"], serde_json::json!(["query", "form_post"]));

    // A confidential client, with client_secret_basic.
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    let browser = client();
    let code = authorize_code(
        &server,
        &browser,
        &[("client_id", "portal"), ("request_uri", &uri)],
        CB,
        (HOA.username, PASSWORD),
    )
    .await;
    let tokens = exchange(&server, &code, Some(("portal", &secret)), None).await;
    assert_eq!(tokens["scope"], "openid profile");
    assert_eq!(id_token_claims(&tokens)["nonce"], "n-pushed", "the pushed nonce");
    assert_eq!(id_token_claims(&tokens)["aud"], serde_json::json!(["portal"]));

    // The callback carries the pushed state and iss (RFC 9207).
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    let (cb, _) =
        browse(&server, &browser, &authorize_url(&server, &[("client_id", "portal"), ("request_uri", &uri)])).await;
    assert_eq!(query_param(&cb, "state").as_deref(), Some("st-pushed"));
    assert_eq!(query_param(&cb, "iss").as_deref(), Some(server.base.as_str()));

    // client_secret_post works too.
    let form = [params("portal", &[]), vec![("client_secret", secret.as_str())]].concat();
    pushed(&server, &form, None).await;

    // A public client pushes with its client_id alone (RFC 9126 §2) and redeems with PKCE.
    let uri = pushed(&server, &params("app", &[]), None).await;
    let code = authorize_code(&server, &browser, &[("client_id", "app"), ("request_uri", &uri)], CB, ("", "")).await;
    let tokens = exchange(&server, &code, None, Some("app")).await;
    assert!(tokens["access_token"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn request_uri_is_single_use_and_bound_to_its_client() {
    let (server, secret) = setup().await;
    let browser = client();
    register(&server, &browser, &Citizen { username: "lan.le", password: PASSWORD, identity: None }).await;

    // Single use: the second visit finds nothing.
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    let url = authorize_url(&server, &[("client_id", "portal"), ("request_uri", &uri)]);
    let (cb, page) = browse(&server, &browser, &url).await;
    assert!(page.is_none() && query_param(&cb, "code").is_some(), "first use issues a code: {cb}");
    assert_error_page(&server, &url, "invalid_request_uri").await;

    // Another client's request_uri is refused, and never redirected anywhere.
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    let url = authorize_url(&server, &[("client_id", "app"), ("request_uri", &uri)]);
    assert_error_page(&server, &url, "invalid_request_uri").await;

    // Unknown and foreign request_uri values.
    for bad in [format!("{PREFIX}does-not-exist"), "https://portal.example.vn/request.jwt".to_string()] {
        let url = authorize_url(&server, &[("client_id", "portal"), ("request_uri", &bad)]);
        assert_error_page(&server, &url, "invalid_request_uri").await;
    }

    // client_id is still required next to request_uri (RFC 9126 §4).
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    assert_error_page(&server, &authorize_url(&server, &[("request_uri", &uri)]), "invalid_request").await;
}

#[tokio::test]
async fn expired_request_uri_is_refused() {
    use xacthuc::oidc::authorize::{RawAuthorizeRequest, validate};
    let (server, _) = setup().await;
    let portal = server.state.store.get_client("portal").await.unwrap().unwrap();
    let raw: RawAuthorizeRequest =
        serde_urlencoded::from_str(&serde_urlencoded::to_string(params("portal", &[])).unwrap()).unwrap();
    let req = validate(&raw, &portal).unwrap();
    let now = xacthuc::app::now();
    for (id, expires_at) in [("expired-one", now - 1), ("expiring-now", now)] {
        server
            .state
            .store
            .create_pushed_request(&xacthuc::store::PushedRequest {
                uri_hash: xacthuc::crypto::random::hash_token(id),
                client_id: "portal".into(),
                request_json: serde_json::to_string(&req).unwrap(),
                created_at: now - 60,
                expires_at,
            })
            .await
            .unwrap();
        let url = authorize_url(&server, &[("client_id", "portal"), ("request_uri", &format!("{PREFIX}{id}"))]);
        assert_error_page(&server, &url, "invalid_request_uri").await;
    }
}

#[tokio::test]
async fn par_required_client_is_refused_without_par() {
    let (server, _) = setup().await;
    let secret = secret_of("strict");
    let browser = client();
    register(&server, &browser, &Citizen { username: "lan.le", password: PASSWORD, identity: None }).await;

    // A plain request with a registered redirect URI: invalid_request back to the client.
    let url = authorize_url(&server, &params("strict", &[]));
    let resp = browser.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert!(to.starts_with(CB), "{to}");
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        query_param(&to, "error_description").as_deref(),
        Some("this client must push its authorization requests (PAR, RFC 9126)")
    );
    assert_eq!(query_param(&to, "state").as_deref(), Some("st-pushed"));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(server.base.as_str()));
    assert!(query_param(&to, "code").is_none());

    // With an unregistered redirect URI: a page, never a redirect.
    let url = authorize_url(&server, &params("strict", &[("redirect_uri", "https://evil.example/cb")]));
    assert_error_page(&server, &url, "invalid_request").await;

    // The same client, pushing: a code.
    let uri = pushed(&server, &params("strict", &[]), Some(("strict", &secret))).await;
    let (cb, _) =
        browse(&server, &browser, &authorize_url(&server, &[("client_id", "strict"), ("request_uri", &uri)])).await;
    let code = query_param(&cb, "code").unwrap_or_else(|| panic!("no code in {cb}"));
    exchange(&server, &code, Some(("strict", &secret)), None).await;
}

#[tokio::test]
async fn pushed_request_errors_are_json() {
    let (server, secret) = setup().await;
    let basic = Some(("portal", secret.as_str()));
    let wrong = Some(("portal", "not-the-secret"));
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>, u16, &'a str);
    let without = |name: &str| params("portal", &[]).into_iter().filter(|(k, _)| *k != name).collect::<Vec<_>>();
    let no_pkce = params("app", &[]).into_iter().filter(|(k, _)| !k.starts_with("code_")).collect();
    let cases: Vec<Case> = vec![
        ("no client authentication", without("client_id"), None, 401, "invalid_client"),
        ("wrong secret", params("portal", &[]), wrong, 401, "invalid_client"),
        ("confidential client without its secret", params("portal", &[]), None, 401, "invalid_client"),
        ("public client with a secret", params("app", &[("client_secret", "x")]), None, 401, "invalid_client"),
        ("unknown client", params("nobody", &[]), None, 401, "invalid_client"),
        ("client_id missing from the body", without("client_id"), basic, 400, "invalid_request"),
        ("client_id of another client", params("app", &[]), basic, 400, "invalid_request"),
        ("request_uri in a push", params("portal", &[("request_uri", "urn:x")]), basic, 400, "invalid_request"),
        ("request object", params("portal", &[("request", "eyJ.eyJ.sig")]), basic, 400, "request_not_supported"),
        (
            "unregistered redirect_uri",
            params("portal", &[("redirect_uri", "https://evil.example/cb")]),
            basic,
            400,
            "invalid_request",
        ),
        ("no redirect_uri", without("redirect_uri"), basic, 400, "invalid_request"),
        ("implicit flow", params("portal", &[("response_type", "token")]), basic, 400, "unsupported_response_type"),
        ("no openid", params("portal", &[("scope", "profile")]), basic, 400, "invalid_scope"),
        ("public client without PKCE", no_pkce, None, 400, "invalid_request"),
        ("fragment mode", params("portal", &[("response_mode", "fragment")]), basic, 400, "invalid_request"),
        ("parameter twice", [params("portal", &[]), vec![("scope", "openid")]].concat(), basic, 400, "invalid_request"),
    ];
    for (name, form, auth, status, error) in cases {
        let (got, headers, body) = push(&server, &form, auth).await;
        assert_eq!((got, body["error"].as_str().unwrap_or("")), (status, error), "{name}: {body}");
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        assert!(headers.get("location").is_none(), "{name}: never a redirect");
        if status == 401 {
            assert!(headers.contains_key("www-authenticate"), "{name}");
        }
    }
    // Not a form body.
    let resp = reqwest::Client::new()
        .post(server.url("/par"))
        .basic_auth("portal", Some(&secret))
        .json(&serde_json::json!({"client_id": "portal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Only POST.
    assert_eq!(reqwest::get(server.url("/par")).await.unwrap().status(), 405);
}

#[tokio::test]
async fn parameters_next_to_request_uri_are_ignored() {
    let (server, secret) = setup().await;
    let browser = client();
    register(&server, &browser, &Citizen { username: "lan.le", password: PASSWORD, identity: None }).await;
    let uri = pushed(&server, &params("portal", &[]), Some(("portal", &secret))).await;
    // Altered in the browser: state, scope, redirect (unregistered), mode, prompt, PKCE. Only
    // the pushed values count.
    let url = authorize_url(
        &server,
        &[
            ("client_id", "portal"),
            ("request_uri", &uri),
            ("state", "tampered"),
            ("scope", "openid national_id"),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_mode", "form_post"),
            ("prompt", "login"),
            ("code_challenge", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ],
    );
    let (cb, page) = browse(&server, &browser, &url).await;
    assert!(page.is_none(), "no sign-in page (prompt=login ignored), no form_post page: {page:?}");
    assert!(cb.starts_with(CB), "{cb}");
    assert_eq!(query_param(&cb, "state").as_deref(), Some("st-pushed"));
    let code = query_param(&cb, "code").unwrap();
    let tokens = exchange(&server, &code, Some(("portal", &secret)), None).await;
    assert_eq!(tokens["scope"], "openid profile", "the pushed scope, without national_id");
}

#[tokio::test]
async fn form_post_returns_a_page_with_the_form() {
    let (server, secret) = setup().await;
    // The script the page loads is served by the gateway.
    let js = reqwest::get(server.url("/static/form_post.js")).await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(js.text().await.unwrap().contains("form-post"));

    // Not signed in: the sign-in page, then the form (the mode survives the parked request).
    let browser = client();
    let url = authorize_url(&server, &params("portal", &[("response_mode", "form_post")]));
    let (_, page) = browse(&server, &browser, &url).await;
    let (_, login) = page.unwrap();
    let resp = browser
        .post(server.url("/login"))
        .form(&[
            ("csrf", hidden(&login, "csrf")),
            ("r", hidden(&login, "r")),
            ("username", HOA.username.into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let resp = browser.get(absolute(&server.base, &location(&resp))).send().await.unwrap();
    assert_eq!(resp.status(), 200, "a page, not a redirect");
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("<script src=\"/static/form_post.js\""), "{page}");
    assert!(page.contains("method=\"post\""));
    assert!(page.contains("<button type=\"submit\""), "a button for browsers without script");
    let (action, fields) = form_post_fields(&page);
    assert_eq!(action, CB);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"]);
    assert_eq!(field(&fields, "state"), Some("st-pushed"));
    assert_eq!(field(&fields, "iss"), Some(server.base.as_str()));
    exchange(&server, field(&fields, "code").unwrap(), Some(("portal", &secret)), None).await;

    // Errors in form_post mode are posted too: prompt=none without a session.
    let url = authorize_url(&server, &params("portal", &[("response_mode", "form_post"), ("prompt", "none")]));
    let (_, page) = browse(&server, &client(), &url).await;
    let (status, page) = page.unwrap();
    assert_eq!(status, 200);
    let (action, fields) = form_post_fields(&page);
    assert_eq!(action, CB);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["error", "error_description", "state", "iss"]);
    assert_eq!(field(&fields, "error"), Some("login_required"));

    // A pushed form_post request.
    let uri = pushed(&server, &params("portal", &[("response_mode", "form_post")]), Some(("portal", &secret))).await;
    let (_, page) =
        browse(&server, &browser, &authorize_url(&server, &[("client_id", "portal"), ("request_uri", &uri)])).await;
    let (status, page) = page.unwrap();
    assert_eq!(status, 200);
    assert!(field(&form_post_fields(&page).1, "code").is_some());
}

#[tokio::test]
async fn scopes_outside_the_clients_list_are_dropped() {
    let (server, _) = setup().await;
    let secret = secret_of("limited");
    let browser = client();
    let query = params("limited", &[("scope", "openid profile email national_id")]);
    let code = authorize_code(&server, &browser, &query, CB, (HOA.username, PASSWORD)).await;
    let tokens = exchange(&server, &code, Some(("limited", &secret)), None).await;
    assert_eq!(tokens["scope"], "openid email");
    let info: Value = reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.get("sub").is_some(), "{info}");
    assert!(info.get("name").is_none() && info.get("national_id").is_none(), "{info}");

    // Through PAR the same limit applies.
    let uri = pushed(&server, &query, Some(("limited", &secret))).await;
    let code =
        authorize_code(&server, &browser, &[("client_id", "limited"), ("request_uri", &uri)], CB, ("", "")).await;
    assert_eq!(exchange(&server, &code, Some(("limited", &secret)), None).await["scope"], "openid email");
}
