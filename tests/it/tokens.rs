//! The token endpoint beyond the first code: refresh rotation and reuse detection,
//! client_credentials, JWT access tokens, private_key_jwt, introspection and revocation —
//! every negative case with its exact `error` and status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use xacthuc::crypto::signing::{SigningAlg, SigningKey, generate_pkcs8, jwks, sign_jwt};
use xacthuc::store::{AccessTokenFormat, ClientSettings, TokenAuthMethod};

const CB: &str = "https://portal.example.vn/cb";
const SECRET: &str = "portal-secret-0123456789abcdefghijklmnop";
const CITIZEN: Citizen = Citizen {
    username: "mai",
    password: PASSWORD,
    identity: Some(("087084000999", "Phan Thị Mai", "1984-05-17", "male")),
};

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn post(server: &TestServer, path: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// A server with a signed-up citizen and a confidential portal using `settings`; returns the
/// token response of a fresh code flow asking for `scope`.
async fn setup(settings: ClientSettings, scope: &str) -> (TestServer, Value) {
    let server = TestServer::start().await;
    register(&server, &client(), &CITIZEN).await;
    add_client_with(&server, "portal", CB, Some(SECRET), settings).await;
    let tokens = code_flow(&server, scope).await;
    (server, tokens)
}

async fn code_flow(server: &TestServer, scope: &str) -> Value {
    let params =
        [("response_type", "code"), ("client_id", "portal"), ("redirect_uri", CB), ("scope", scope), ("nonce", "n1")];
    let code = authorize_code(server, &client(), &params, CB, (CITIZEN.username, PASSWORD)).await;
    let (status, body) = post(
        server,
        "/token",
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
        Some(("portal", SECRET)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn refresh_rotates_keeps_the_authentication_and_reuse_kills_the_grant() {
    let (server, first) = setup(ClientSettings::default(), "openid profile offline_access").await;
    let rt1 = first["refresh_token"].as_str().expect("offline_access gives a refresh token").to_string();
    let id1 = claims_of(first["id_token"].as_str().unwrap());
    assert_eq!(id1["nonce"], "n1");

    let (status, second) =
        post(&server, "/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(("portal", SECRET)))
            .await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated on use");
    let id2 = claims_of(second["id_token"].as_str().unwrap());
    for claim in ["sub", "aud", "auth_time", "acr", "amr", "as_level", "sid"] {
        assert_eq!(id1[claim], id2[claim], "{claim} kept across refresh (OIDC Core §12.2)");
    }
    assert!(id2.get("nonce").is_none(), "no nonce in a refreshed ID token");

    // Narrowing the scope is allowed, widening is not.
    let (status, body) = post(
        &server,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("scope", "openid national_id")],
        Some(("portal", SECRET)),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    // That attempt spent rt2 (single use), and presenting it again is a reuse: the grant dies.
    let (status, body) =
        post(&server, "/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt2)], Some(("portal", SECRET)))
            .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let at = second["access_token"].as_str().unwrap();
    let resp = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), 401, "every token of the grant is dead");
    let events = server.state.store.list_audit(1, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.event.kind == "token.refresh_reused"));

    // Another client cannot use the portal's refresh token.
    let (_, fresh) = (0, code_flow(&server, "openid offline_access").await);
    add_client_with(&server, "other", "https://other.example.vn/cb", Some(SECRET), ClientSettings::default()).await;
    let rt = fresh["refresh_token"].as_str().unwrap();
    let (status, body) =
        post(&server, "/token", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(("other", SECRET)))
            .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn no_refresh_token_without_offline_access_or_the_grant_type() {
    let (server, tokens) = setup(ClientSettings::default(), "openid").await;
    assert!(tokens.get("refresh_token").is_none());
    let settings =
        ClientSettings { grant_types: vec!["authorization_code".into()], always_refresh: true, ..Default::default() };
    add_client_with(&server, "no-refresh", CB, Some(SECRET), settings).await;
    let params = [
        ("response_type", "code"),
        ("client_id", "no-refresh"),
        ("redirect_uri", CB),
        ("scope", "openid offline_access"),
    ];
    let code = authorize_code(&server, &client(), &params, CB, (CITIZEN.username, PASSWORD)).await;
    let (_, body) = post(
        &server,
        "/token",
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
        Some(("no-refresh", SECRET)),
    )
    .await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    let (status, body) = post(
        &server,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        Some(("no-refresh", SECRET)),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}

#[tokio::test]
async fn introspection_and_revocation() {
    let (server, tokens) = setup(ClientSettings::default(), "openid profile offline_access").await;
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (status, info) = post(&server, "/introspect", &[("token", at)], Some(("portal", SECRET))).await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "portal");
    assert_eq!(info["acr"], "urn:xacthuc:loa:as2:1fa");
    assert_eq!(info["scope"], "openid profile offline_access");
    assert_eq!(info["sub"], claims_of(tokens["id_token"].as_str().unwrap())["sub"]);
    for claim in ["exp", "iat", "auth_time"] {
        assert!(info[claim].is_i64(), "{claim}");
    }
    let (_, info) =
        post(&server, "/introspect", &[("token", rt), ("token_type_hint", "refresh_token")], Some(("portal", SECRET)))
            .await;
    assert_eq!(info["active"], true);
    // Another client learns nothing; a bad secret is 401.
    add_client_with(&server, "other", "https://other.example.vn/cb", Some(SECRET), ClientSettings::default()).await;
    let (_, info) = post(&server, "/introspect", &[("token", at)], Some(("other", SECRET))).await;
    assert_eq!(info, json!({"active": false}));
    let (status, body) =
        post(&server, "/introspect", &[("token", at)], Some(("portal", "wrong-secret-0123456789abcdefghijklmn"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) = post(&server, "/introspect", &[], Some(("portal", SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));

    // Revoking the access token: inactive; the refresh token still works.
    let (status, _) =
        post(&server, "/revoke", &[("token", at), ("token_type_hint", "access_token")], Some(("portal", SECRET))).await;
    assert_eq!(status, 200);
    let (_, info) = post(&server, "/introspect", &[("token", at)], Some(("portal", SECRET))).await;
    assert_eq!(info["active"], false);
    // Revoking a refresh token revokes the grant (RFC 7009 §2.1).
    let (status, _) = post(&server, "/revoke", &[("token", rt)], Some(("portal", SECRET))).await;
    assert_eq!(status, 200);
    let (status, body) =
        post(&server, "/token", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(("portal", SECRET)))
            .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // Unknown tokens: 200, nothing learned.
    let (status, _) = post(&server, "/revoke", &[("token", "never-issued")], Some(("portal", SECRET))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn jwt_access_tokens_carry_the_authentication_and_die_on_revocation() {
    let settings = ClientSettings { access_token_format: AccessTokenFormat::Jwt, ..Default::default() };
    let (server, tokens) = setup(settings, "openid profile").await;
    let at = tokens["access_token"].as_str().unwrap();
    let (header, claims) = xacthuc::crypto::jws::peek(at).unwrap();
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1");
    let published: Value = reqwest::get(server.url("/jwks.json")).await.unwrap().json().await.unwrap();
    assert_eq!(xacthuc::crypto::jws::verify(at, &published).unwrap(), claims, "verifiable against the JWKS");
    for claim in ["iss", "aud", "sub", "client_id", "iat", "exp", "jti", "auth_time", "acr", "amr"] {
        assert!(claims.get(claim).is_some(), "{claim} missing from {claims}");
    }
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:1fa");
    let resp = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    post(&server, "/revoke", &[("token", at)], Some(("portal", SECRET))).await;
    let (_, info) = post(&server, "/introspect", &[("token", at)], Some(("portal", SECRET))).await;
    assert_eq!(info["active"], false, "revoked JWT access token is inactive at introspection");
}

#[tokio::test]
async fn client_credentials_for_back_ends() {
    let server = TestServer::start().await;
    let settings = ClientSettings {
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["hoso.read".into(), "hoso.write".into()],
        ..Default::default()
    };
    add_client_with(&server, "backend", CB, Some(SECRET), settings).await;
    let (status, body) = post(
        &server,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", "hoso.read")],
        Some(("backend", SECRET)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "hoso.read");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let (_, info) =
        post(&server, "/introspect", &[("token", body["access_token"].as_str().unwrap())], Some(("backend", SECRET)))
            .await;
    assert_eq!((info["active"].as_bool(), info["sub"].as_str()), (Some(true), Some("backend")));
    let (status, body) = post(
        &server,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        Some(("backend", SECRET)),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    // A portal not allowed this grant.
    add_client_with(&server, "portal", CB, Some(SECRET), ClientSettings::default()).await;
    let (status, body) =
        post(&server, "/token", &[("grant_type", "client_credentials")], Some(("portal", SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let server = TestServer::start().await;
    register(&server, &client(), &CITIZEN).await;
    let key =
        SigningKey::from_pkcs8("portal-key-1".into(), SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256).unwrap())
            .unwrap();
    let stranger =
        SigningKey::from_pkcs8("portal-key-1".into(), SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256).unwrap())
            .unwrap();
    let settings = ClientSettings {
        token_auth_method: TokenAuthMethod::PrivateKeyJwt,
        jwks: Some(jwks(&[&key])),
        grant_types: vec!["authorization_code".into(), "client_credentials".into()],
        scopes: vec!["openid".into(), "hoso.read".into()],
        ..Default::default()
    };
    add_client_with(&server, "portal", CB, Some(SECRET), settings).await;
    let now = xacthuc::app::now();
    let token_url = server.url("/token");
    let assertion = |k: &SigningKey, jti: &str, aud: &str| {
        sign_jwt(
            k,
            "JWT",
            &json!({"iss": "portal", "sub": "portal", "aud": aud, "jti": jti, "iat": now, "exp": now + 60}),
        )
        .unwrap()
    };
    let cc = |a: String| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("scope", "hoso.read".to_string()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string()),
            ("client_assertion", a),
        ]
    };
    let send = |form: Vec<(&'static str, String)>| {
        let url = token_url.clone();
        async move {
            let resp = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send(cc(assertion(&key, "jti-1", &token_url))).await;
    assert_eq!(status, 200, "{body}");
    // The same jti again: a replay.
    let (status, body) = send(cc(assertion(&key, "jti-1", &token_url))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(body["error_description"].as_str().unwrap().contains("jti"));
    // Signed by a key that is not the client's; wrong audience; a secret instead of a JWT.
    let (status, body) = send(cc(assertion(&stranger, "jti-2", &token_url))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) = send(cc(assertion(&key, "jti-3", "https://elsewhere.example/token"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) =
        post(&server, "/token", &[("grant_type", "client_credentials")], Some(("portal", SECRET))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "secret refused for a private_key_jwt client"
    );
    // The issuer is an accepted audience too, and the code flow works with it.
    let params = [("response_type", "code"), ("client_id", "portal"), ("redirect_uri", CB), ("scope", "openid")];
    let code = authorize_code(&server, &client(), &params, CB, (CITIZEN.username, PASSWORD)).await;
    let mut form = cc(assertion(&key, "jti-4", &server.base));
    form[0] = ("grant_type", "authorization_code".into());
    form[1] = ("code", code);
    form.push(("redirect_uri", CB.into()));
    let (status, body) = send(form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn discovery_lists_the_new_endpoints() {
    let server = TestServer::start().await;
    let d: Value = reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["introspection_endpoint"], server.url("/introspect"));
    assert_eq!(d["revocation_endpoint"], server.url("/revoke"));
    assert_eq!(d["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials"]));
    let methods = d["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.contains(&json!("private_key_jwt")));
    assert!(d["scopes_supported"].as_array().unwrap().contains(&json!("offline_access")));
}
