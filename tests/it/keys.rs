//! Signing key rotation: the next key is published before it signs, exactly one key signs per
//! algorithm at a time, a retired key stays published until its tokens expire, and instances
//! sharing a database agree. Time is passed in, so nothing sleeps: a rotation "in the past" is
//! one whose activation time has already come.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use serde_json::Value;
use std::process::{Command, Output};
use xacthuc::app::{AppState, now};
use xacthuc::crypto::signing::SigningAlg;
use xacthuc::service::keys;
use xacthuc::store::ClientSettings;

const CB: &str = "https://portal.example.vn/cb";
const SECRET: &str = "portal-secret-0123456789abcdefghijklmnop";
const CITIZEN: Citizen = Citizen { username: "lan", password: PASSWORD, identity: None };

async fn post_token(server: &TestServer, form: &[(&str, &str)]) -> Value {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A signed-up citizen and an ES256 portal; returns the first token response (with a refresh
/// token, so later ID tokens need no new sign-in).
async fn portal(server: &TestServer) -> Value {
    register(server, &client(), &CITIZEN).await;
    add_client_with(server, "portal", CB, Some(SECRET), ClientSettings::default()).await;
    let params = [
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid offline_access"),
        ("nonce", "n1"),
    ];
    let code = authorize_code(server, &client(), &params, CB, (CITIZEN.username, PASSWORD)).await;
    post_token(server, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await
}

/// A fresh ID token through the refresh grant; returns its `kid` and the new token response.
async fn refreshed(server: &TestServer, tokens: &Value) -> (String, Value) {
    let rt = tokens["refresh_token"].as_str().unwrap();
    let next = post_token(server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    (id_token_kid(server, &next).await, next)
}

/// The `kid` of the response's ID token, after checking it verifies against the served JWKS.
async fn id_token_kid(server: &TestServer, tokens: &Value) -> String {
    let id_token = tokens["id_token"].as_str().unwrap();
    let jwks: Value = reqwest::get(server.url("/jwks.json")).await.unwrap().json().await.unwrap();
    xacthuc::crypto::jws::verify(id_token, &jwks).expect("the ID token verifies against the published JWKS");
    let (header, _) = xacthuc::crypto::jws::peek(id_token).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn published(server: &TestServer) -> Vec<String> {
    let jwks: Value = reqwest::get(server.url("/jwks.json")).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

fn signer(state: &AppState, alg: SigningAlg, at: i64) -> String {
    state.keys.signing_key(alg, at).unwrap().kid().to_string()
}

async fn rotate(state: &AppState, alg: SigningAlg, at: i64, activates_at: i64) -> keys::Rotated {
    let mut r = keys::rotate(state.store.as_ref(), &state.data_key, &[alg], "test", at, activates_at).await.unwrap();
    r.pop().unwrap()
}

#[tokio::test]
async fn the_next_key_is_published_before_it_signs() {
    let server = TestServer::start().await;
    let tokens = portal(&server).await;
    let t = now();
    let old = id_token_kid(&server, &tokens).await;
    assert_eq!(old, signer(&server.state, SigningAlg::ES256, t));

    let next = rotate(&server.state, SigningAlg::ES256, t, t + 600).await;
    assert_eq!(next.retiring, vec![old.clone()]);
    assert!(!published(&server).await.contains(&next.kid), "not seen before the reload");
    keys::reload(&server.state, t).await.unwrap();
    let kids = published(&server).await;
    assert!(kids.contains(&old) && kids.contains(&next.kid), "both published: {kids:?}");
    let (kid, _) = refreshed(&server, &tokens).await;
    assert_eq!(kid, old, "the old key signs until the next one activates");
    // Decided by time at each use: the next key signs from its activation, reload or not.
    assert_eq!(signer(&server.state, SigningAlg::ES256, t + 599), old);
    assert_eq!(signer(&server.state, SigningAlg::ES256, t + 600), next.kid);
    // One rotation at a time: a second one waits for the next key to sign.
    let again =
        keys::rotate(server.state.store.as_ref(), &server.state.data_key, &[SigningAlg::ES256], "test", t, t + 900)
            .await;
    assert!(matches!(again, Err(keys::RotateError::Pending { .. })), "{again:?}");
    let audit = server.state.store.list_audit(0, 1000).await.unwrap();
    assert!(audit.iter().any(|e| e.event.kind == "key.rotated"), "rotation audited");
}

#[tokio::test]
async fn after_activation_the_new_key_signs_and_the_old_one_leaves_once_its_tokens_expire() {
    let server = TestServer::start().await;
    let tokens = portal(&server).await;
    let old = id_token_kid(&server, &tokens).await;
    let t = now();
    // An immediate rotation (the service allows it; the CLI insists on 600 s of notice): the
    // new key signs from t, the old one retires at t.
    let next = rotate(&server.state, SigningAlg::ES256, t, t).await;
    keys::reload(&server.state, t).await.unwrap();
    let (kid, tokens) = refreshed(&server, &tokens).await;
    assert_eq!(kid, next.kid);
    assert!(published(&server).await.contains(&old), "the retired key still verifies its tokens");

    // The window: the longest ID/access token lifetime (600 s by default) plus the margin.
    let window = keys::verification_window(server.state.store.as_ref(), &server.state.config.tokens).await.unwrap();
    assert_eq!(window, 600 + keys::RETIRED_MARGIN_SECONDS);
    keys::reload(&server.state, t + window - 1).await.unwrap();
    assert!(published(&server).await.contains(&old));
    keys::reload(&server.state, t + window).await.unwrap();
    let kids = published(&server).await;
    assert!(!kids.contains(&old) && kids.contains(&next.kid), "{kids:?}");
    let states = keys::list(server.state.store.as_ref(), &server.state.config.tokens, t + window).await.unwrap();
    let state_of = |kid: &str| states.iter().find(|(r, _)| r.kid == kid).map(|(_, s)| *s).unwrap();
    assert_eq!((state_of(&old), state_of(&next.kid)), (keys::KeyState::Expired, keys::KeyState::Current));

    // A client whose tokens live longer keeps retired keys published longer.
    let changes = xacthuc::service::clients::ClientChanges { id_token_seconds: Some(Some(7200)), ..Default::default() };
    xacthuc::service::clients::update_client(server.state.store.as_ref(), "portal", &changes, false, "test", t)
        .await
        .unwrap();
    keys::reload(&server.state, t + window).await.unwrap();
    assert!(published(&server).await.contains(&old), "7200 s ID tokens may still be signed by it");
    keys::reload(&server.state, t).await.unwrap();
    let (kid, _) = refreshed(&server, &tokens).await;
    assert_eq!(kid, next.kid);
}

async fn two_instances_agree(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let config = || test_config(dir.path(), "http://127.0.0.1:9", database_url);
    let a = xacthuc::app::build_state(config(), now()).await.unwrap();
    let b = xacthuc::app::build_state(config(), now()).await.unwrap();
    assert_eq!(a.keys.jwks_json(), b.keys.jwks_json(), "the second instance uses the keys of the first");
    let t = now();
    let rotated = keys::rotate(a.store.as_ref(), &a.data_key, &SigningAlg::ALL, "test", t, t + 600).await.unwrap();
    assert_eq!(rotated.len(), 3);
    keys::reload(&b, t).await.unwrap();
    assert!(b.keys.jwks_json().contains(&rotated[0].kid), "b sees a's rotation at its next reload");
    keys::reload(&a, t).await.unwrap();
    assert_eq!(a.keys.jwks_json(), b.keys.jwks_json());
    for alg in SigningAlg::ALL {
        for at in [t, t + 599, t + 600, t + 86_400] {
            assert_eq!(signer(&a, alg, at), signer(&b, alg, at), "{alg} at {at}");
        }
    }
    assert_eq!(signer(&b, SigningAlg::PS256, t + 600), rotated[0].kid);
}

#[tokio::test]
async fn two_instances_on_one_database_agree() {
    two_instances_agree(None).await;
    if let Some(db) = PgDatabase::create().await {
        two_instances_agree(Some(&db.url)).await;
        db.cleanup().await;
    }
}

fn xacthuc(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xacthuc"));
    cmd.args(args).arg("--data-dir").arg(dir);
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `keys list` lines as (kid, alg, state).
fn listed(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let out = xacthuc(dir, &["keys", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "{l}");
            assert!(f[2].ends_with('Z') && f[3].contains('T'), "ISO 8601 UTC times: {l}");
            (f[0].to_string(), f[1].to_string(), f[5].to_string())
        })
        .collect()
}

#[tokio::test]
async fn keys_rotate_and_list_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let first = listed(dir.path());
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|(_, _, s)| s == "current"), "{first:?}");
    let old_es = first.iter().find(|(_, a, _)| a == "ES256").unwrap().0.clone();

    let short = xacthuc(dir.path(), &["keys", "rotate", "--alg", "ES256", "--activate-in", "60"]);
    assert!(!short.status.success(), "less than 600 s of notice refused");
    let rotated = xacthuc(dir.path(), &["keys", "rotate", "--alg", "ES256"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("signs from"), "{}", text(&rotated));
    let now_listed = listed(dir.path());
    let es: Vec<_> = now_listed.iter().filter(|(_, a, _)| a == "ES256").collect();
    assert_eq!(es.len(), 2);
    assert_eq!((es[0].0.as_str(), es[0].2.as_str()), (old_es.as_str(), "current"));
    assert_eq!(es[1].2, "next");
    let next_es = es[1].0.clone();
    // All algorithms at once is refused while ES256 has a key waiting, and changes nothing.
    let again = xacthuc(dir.path(), &["keys", "rotate"]);
    assert!(!again.status.success() && text(&again).contains("rotate again once it signs"), "{}", text(&again));
    assert_eq!(listed(dir.path()).len(), 4);

    // A server on the same data directory publishes the next key and signs with the current one.
    let server = TestServer::start_in(dir).await;
    let kids = published(&server).await;
    assert!(kids.contains(&old_es) && kids.contains(&next_es), "{kids:?}");
    let tokens = portal(&server).await;
    assert_eq!(id_token_kid(&server, &tokens).await, old_es);
}
