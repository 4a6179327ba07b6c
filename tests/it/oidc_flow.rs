//! OpenID Connect flows against the running server: the `openidconnect` crate as relying party
//! for the happy path; raw HTTP for the error paths, with exact `error` and status asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use xacthuc::crypto::signing::SigningAlg;
use xacthuc::oidc::discovery::XacthucProviderMetadata;

const CB: &str = "https://portal.example.vn/callback";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

/// The relying-party library's HTTP contract, over reqwest.
async fn send(req: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let resp = reqwest::Client::new()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut b = axum::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        b = b.header(k, v);
    }
    b.body(resp.bytes().await.map_err(|e| HttpError(e.to_string()))?.to_vec()).map_err(|e| HttpError(e.to_string()))
}

const GIANG: Citizen = Citizen {
    username: "giang.nguyen",
    password: PASSWORD,
    identity: Some(("087084000999", "Nguyễn Thị Giang", "1984-05-17", "male")),
};

/// Follows the browser part of the code flow from an authorization URL: the sign-in page (when
/// asked) and the redirects, until the portal's callback. Returns the callback URL.
async fn browse_to_callback(
    server: &TestServer,
    http: &reqwest::Client,
    auth_url: &str,
    login: Option<(&str, &str)>,
) -> String {
    let mut url = auth_url.to_string();
    for _ in 0..8 {
        if url.starts_with(CB) || url.starts_with("https://other.example.vn") {
            return url;
        }
        let resp = http.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            url = absolute(&server.base, &location(&resp));
            continue;
        }
        let page = resp.text().await.unwrap();
        let (user, pw) = login.unwrap_or_else(|| panic!("unexpected page at {url}:\n{page}"));
        assert!(page.contains("name=\"username\""), "expected the sign-in page at {url}:\n{page}");
        let resp = http
            .post(server.url("/login"))
            .form(&[
                ("csrf", hidden(&page, "csrf")),
                ("r", hidden(&page, "r")),
                ("username", user.into()),
                ("password", pw.into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "sign-in failed");
        url = absolute(&server.base, &location(&resp));
    }
    panic!("too many redirects, last {url}");
}

#[tokio::test]
async fn openidconnect_rp_completes_code_flow_with_pkce_for_every_algorithm() {
    let server = TestServer::start().await;
    let browser = client();
    assert_eq!(register(&server, &browser, &GIANG).await.status(), 303);
    let mut subjects = Vec::new();
    for alg in SigningAlg::ALL {
        let id = format!("portal-{}", alg.as_str().to_lowercase());
        let secret = server.add_client(&id, CB, alg.as_str()).await;
        let metadata =
            XacthucProviderMetadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), &send).await.unwrap();
        let rp =
            CoreClient::from_provider_metadata(metadata, ClientId::new(id.clone()), Some(ClientSecret::new(secret)))
                .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = rp
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_auth_context_value(AuthenticationContextClass::new("urn:xacthuc:loa:as2:1fa".into()))
            .set_pkce_challenge(challenge)
            .url();
        let callback = browse_to_callback(&server, &browser, url.as_str(), None).await;
        assert_eq!(query_param(&callback, "state").as_deref(), Some(state.secret().as_str()));
        assert_eq!(query_param(&callback, "iss").as_deref(), Some(server.base.as_str()), "RFC 9207 iss");
        let code = query_param(&callback, "code").unwrap();
        let tokens = rp
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&send)
            .await
            .unwrap();
        let id_token = tokens.id_token().unwrap();
        let verifier = rp.id_token_verifier().set_allowed_algs([alg.to_core()]);
        let claims = id_token.claims(&verifier, &nonce).expect("signature, issuer, audience and nonce check");
        assert_eq!(claims.auth_context_ref().unwrap().as_str(), "urn:xacthuc:loa:as2:1fa");
        let amr: Vec<&str> = claims.auth_method_refs().unwrap().iter().map(|a| a.as_str()).collect();
        assert_eq!(amr, vec!["pwd"]);
        assert!(claims.auth_time().is_some());
        // Our extra claims, read with our own claims type.
        let ours: xacthuc::oidc::id_token::XacthucIdToken = id_token.to_string().parse().unwrap();
        let extra = ours.claims(&verifier, &nonce).unwrap().additional_claims().clone();
        assert_eq!((extra.as_level, extra.auth_mechanism.as_str()), (2, "1fa"));
        assert!(!extra.sid.is_empty());
        subjects.push(claims.subject().as_str().to_string());
        // The access token works at userinfo; profile scope gives the name, not the ID number.
        let info: Value = reqwest::Client::new()
            .get(server.url("/userinfo"))
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], claims.subject().as_str());
        assert_eq!(info["name"], "Nguyễn Thị Giang");
        assert!(info.get("national_id").is_none());
    }
    // Pairwise subjects: each portal sees a different `sub`, never the ID number.
    subjects.dedup();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects.iter().all(|s| !s.contains("087084000999")));
}

/// A confidential client's authorization request, as raw parameters.
fn auth_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CB)
        .append_pair("scope", "openid national_id")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn token(
    server: &TestServer,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(server.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

/// Signs GIANG in (fresh browser) and returns a code issued with PKCE.
async fn code_for(server: &TestServer, browser: &reqwest::Client, client_id: &str) -> String {
    let url = auth_url(server, client_id, &[("code_challenge", CHALLENGE), ("code_challenge_method", "S256")]);
    let cb = browse_to_callback(server, browser, &url, Some((GIANG.username, PASSWORD))).await;
    query_param(&cb, "code").unwrap_or_else(|| panic!("no code in {cb}"))
}

#[tokio::test]
async fn token_endpoint_errors_are_exact() {
    let server = TestServer::start().await;
    register(&server, &client(), &GIANG).await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let browser = client();

    // Wrong PKCE verifier → invalid_grant.
    let code = code_for(&server, &browser, "portal").await;
    let wrong = VERIFIER.replace('d', "x");
    let (status, headers, body) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &wrong)],
        Some(("portal", &secret)),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(headers["cache-control"], "no-store");

    // Wrong client secret → 401 invalid_client with WWW-Authenticate.
    let code = code_for(&server, &browser, "portal").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    let (status, headers, body) =
        token(&server, &form, Some(("portal", "not-the-secret-0123456789abcdefghijkl"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(headers.get("www-authenticate").unwrap().to_str().unwrap().starts_with("Basic"));

    // Code replay → invalid_grant, and the first access token stops working.
    let code = code_for(&server, &browser, "portal").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, first) = token(&server, &form, Some(("portal", &secret))).await;
    assert_eq!(status, 200, "{first}");
    let at = first["access_token"].as_str().unwrap();
    let info = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["national_id"], "087084000999", "national_id scope releases the number");
    let (status, _, body) = token(&server, &form, Some(("portal", &secret))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let info = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(info.status(), 401);
    assert!(info.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    // client_secret_post works too; redirect_uri must match exactly.
    let code = code_for(&server, &browser, "portal").await;
    let (status, _, body) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://portal.example.vn/callback/"),
            ("code_verifier", VERIFIER),
            ("client_id", "portal"),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Garbage and malformed bodies → invalid_request JSON, never 422 or 500.
    for body in ["%%%garbage=&&==%zz", "grant_type=authorization_code&grant_type=authorization_code"] {
        let resp = reqwest::Client::new()
            .post(server.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{body}");
    }
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .json(&serde_json::json!({"grant_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    let (status, _, body) = token(&server, &[("grant_type", "password")], Some(("portal", &secret))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (status, _, body) =
        token(&server, &[("grant_type", "authorization_code"), ("code", "nope")], Some(("portal", &secret))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // No credentials at all.
    let (status, _, body) = token(&server, &[("grant_type", "authorization_code"), ("code", "nope")], None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    // Userinfo without a token: 401 and a bare Bearer challenge.
    let resp = reqwest::Client::new().get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"xacthuc\"");
}

#[tokio::test]
async fn public_client_needs_pkce_and_no_secret() {
    let server = TestServer::start().await;
    register(&server, &client(), &GIANG).await;
    server.add_public_client("app", CB).await;
    let browser = client();
    // Without PKCE: error redirected back to the client with state.
    let resp = browser.get(auth_url(&server, "app", &[])).send().await.unwrap();
    let loc = location(&resp);
    assert!(loc.starts_with(CB), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"));
    let code = code_for(&server, &browser, "app").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
        ("client_id", "app"),
    ];
    let (status, _, body) = token(&server, &form, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].as_str().unwrap().split('.').count() == 3);
}

#[tokio::test]
async fn bad_client_or_redirect_shows_a_page_and_never_redirects() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let browser = client();
    for url in [
        auth_url(&server, "portal", &[]).replace("portal.example.vn", "evil.example"),
        auth_url(&server, "nobody", &[]),
        server.url("/authorize?client_id=portal&response_type=code&scope=openid"),
    ] {
        let resp = browser.get(&url).header("accept-language", "vi").send().await.unwrap();
        assert_eq!(resp.status(), 400, "{url}");
        assert!(resp.headers().get("location").is_none(), "{url} redirected");
        let page = resp.text().await.unwrap();
        assert!(page.contains("Yêu cầu đăng nhập không hợp lệ"), "{page}");
    }
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let resp = client().get(auth_url(&server, "portal", &[("prompt", "none")])).send().await.unwrap();
    let loc = location(&resp);
    assert!(loc.starts_with(CB), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(server.base.as_str()));
}

#[tokio::test]
async fn session_is_reused_and_prompt_login_forces_sign_in() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let browser = client();
    register(&server, &browser, &GIANG).await;
    // Signed in by registration: a code without any page.
    let cb = browse_to_callback(&server, &browser, &auth_url(&server, "portal", &[]), None).await;
    assert!(query_param(&cb, "code").is_some());
    // prompt=login shows the sign-in page again.
    let resp = browser.get(auth_url(&server, "portal", &[("prompt", "login")])).send().await.unwrap();
    assert!(location(&resp).starts_with("/login?r="));
    let cb = browse_to_callback(
        &server,
        &browser,
        &auth_url(&server, "portal", &[("prompt", "login")]),
        Some((GIANG.username, PASSWORD)),
    )
    .await;
    assert!(query_param(&cb, "code").is_some());
}

#[tokio::test]
async fn as1_account_asking_for_as2_is_denied_with_an_explanation() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let browser = client();
    let lan = Citizen { username: "lan", password: PASSWORD, identity: None };
    register(&server, &browser, &lan).await;
    let resp =
        browser.get(auth_url(&server, "portal", &[("acr_values", "urn:xacthuc:loa:as2:1fa")])).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Tài khoản chưa đủ mức độ đảm bảo"), "{page}");
    assert!(page.contains("AS-2"));
    let resp = browser
        .post(server.url("/authorize/cancel"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("reason", "insufficient_assurance".into()),
        ])
        .send()
        .await
        .unwrap();
    let loc = location(&resp);
    assert!(loc.starts_with(CB));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert!(query_param(&loc, "error_description").unwrap().contains("registration level"));

    // The citizen can instead declare their identity and continue: the code then says as2.
    let resp =
        browser.get(auth_url(&server, "portal", &[("acr_values", "urn:xacthuc:loa:as2:1fa")])).send().await.unwrap();
    let page = resp.text().await.unwrap();
    let r = hidden(&page, "r");
    let account = browser.get(server.url(&format!("/account?r={r}"))).send().await.unwrap().text().await.unwrap();
    let resp = browser
        .post(server.url("/account/identity"))
        .form(&[
            ("csrf", hidden(&account, "csrf")),
            ("r", r.clone()),
            ("national_id", "020093001656".into()),
            ("full_name", "Trần Văn Lân".into()),
            ("birth_date", "1993-02-01".into()),
            ("sex", "male".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cb = browse_to_callback(&server, &browser, &absolute(&server.base, &location(&resp)), None).await;
    let code = query_param(&cb, "code").unwrap();
    let secret = "portal-secret-0123456789abcdefghijklmnop".to_string();
    let (status, _, body) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
        Some(("portal", &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let payload = body["id_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:1fa");
    assert_eq!(claims["as_level"], 2);
}

#[tokio::test]
async fn unknown_essential_acr_fails_and_unreachable_mechanism_is_unmet() {
    let server = TestServer::start().await;
    server.add_client("portal", CB, "PS256").await;
    let browser = client();
    register(&server, &browser, &GIANG).await;
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["LoA3"]}}}"#;
    let resp = browser.get(auth_url(&server, "portal", &[("claims", claims)])).send().await.unwrap();
    let loc = location(&resp);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unmet_authentication_requirements"));
    let resp =
        browser.get(auth_url(&server, "portal", &[("acr_values", "urn:xacthuc:loa:as2:2fa")])).send().await.unwrap();
    let loc = location(&resp);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unmet_authentication_requirements"));
    // An unknown voluntary value is ignored.
    let cb = browse_to_callback(&server, &browser, &auth_url(&server, "portal", &[("acr_values", "LoA1")]), None).await;
    assert!(query_param(&cb, "code").is_some());
}

#[tokio::test]
async fn discovery_advertises_what_is_implemented() {
    let server = TestServer::start().await;
    let d: Value = reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], server.base.as_str());
    assert_eq!(d["acr_values_supported"].as_array().unwrap().len(), 12);
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["subject_types_supported"], serde_json::json!(["pairwise"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["PS256", "ES256", "RS256"]));
    assert_eq!(d["request_uri_parameter_supported"], false);
    let jwks: Value = reqwest::get(server.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs.len(), 3);
    assert!(jwks.to_string().find("\"d\"").is_none(), "no private parts in the JWKS");
}

#[tokio::test]
async fn demo_portal_signs_a_registered_as2_citizen_in() {
    let server = TestServer::start().await;
    let browser = client();
    register(&server, &browser, &GIANG).await;
    let mut url = server.url("/demo/login?acr=urn%3Axacthuc%3Aloa%3Aas2%3A1fa");
    let mut page = String::new();
    for _ in 0..6 {
        let resp = browser.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            url = absolute(&server.base, &location(&resp));
        } else {
            assert_eq!(resp.status(), 200);
            page = resp.text().await.unwrap();
            break;
        }
    }
    assert!(page.contains("<code id=\"acr\">urn:xacthuc:loa:as2:1fa</code>"), "{page}");
    assert!(page.contains("AS-2"));
    assert!(page.contains("087084000999"), "national_id scope shown in the demo's userinfo");
}

/// The whole flow with PostgreSQL as the store (CI sets `XACTHUC_TEST_POSTGRES_URL`).
#[tokio::test]
async fn code_flow_and_replay_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        eprintln!("{POSTGRES_ENV} unset: the PostgreSQL half of this test did not run");
        return;
    };
    let server = TestServer::start_with(Some(&db.url)).await;
    assert_eq!(register(&server, &client(), &GIANG).await.status(), 303);
    let secret = server.add_client("portal", CB, "PS256").await;
    let code = code_for(&server, &client(), "portal").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, body) = token(&server, &form, Some(("portal", &secret))).await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap().to_string();
    let info: Value = reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["national_id"], "087084000999");
    let (status, _, body) = token(&server, &form, Some(("portal", &secret))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let resp = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let events = server.state.store.list_audit(1, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.event.kind == "token.code_replayed"));
    assert_eq!(xacthuc::audit::verify_chain(&events), Ok(()));
    db.cleanup().await;
}
