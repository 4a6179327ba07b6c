#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::crypto::signing::{SigningAlg, SigningKey, generate_pkcs8, jwks, sign_jwt};
use crate::model::{ClientKind, ClientSettings};
use std::sync::OnceLock;

const ISS: &str = "https://xacthuc.example.vn";

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pkcs8("es-1".into(), SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256).unwrap()).unwrap()
    })
}

fn stranger() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pkcs8("es-1".into(), SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256).unwrap()).unwrap()
    })
}

fn set() -> Value {
    jwks(&[key()])
}

/// A real ID token, as the token endpoint signs it (no `typ` header), issued long ago.
fn id_token(client_id: &str, sid: &str) -> String {
    crate::oidc::id_token::sign(
        key(),
        &crate::oidc::id_token::IdTokenInput {
            issuer: ISS,
            client_id,
            subject: "pairwise-sub",
            nonce: Some("n"),
            auth_time: 1_000,
            acr: "urn:xacthuc:loa:as1:1fa",
            amr: &["pwd".to_string()],
            as_level: 1,
            mechanism: "1fa",
            sid,
            issued_at: 1_000,
            expires_at: 1_300,
            access_token: "at",
            verified_claims: None,
        },
    )
    .unwrap()
}

fn client(uris: &[&str]) -> ClientRecord {
    ClientRecord {
        id: "portal".into(),
        name: "Portal".into(),
        kind: ClientKind::Confidential,
        secret_hash: None,
        redirect_uris: vec!["https://portal.example.vn/cb".into()],
        id_token_alg: "ES256".into(),
        settings: ClientSettings {
            post_logout_redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        },
        created_at: 0,
    }
}

fn outcome(r: Result<CheckedEndSession, OAuthError>) -> String {
    match r {
        Ok(c) => format!("ok:{}", c.client_id.unwrap_or_default()),
        Err(e) => format!("err:{}", e.code),
    }
}

#[test]
fn request_checks_table() {
    let valid = id_token("portal", "sid-1");
    let at_jwt = sign_jwt(key(), "at+jwt", &json!({"iss": ISS, "aud": "portal", "sub": "s"})).unwrap();
    let logout_jwt = sign_jwt(
        key(),
        "logout+jwt",
        &logout_token_claims(&LogoutTokenInput {
            issuer: ISS,
            client_id: "portal",
            sub: "s",
            sid: "sid-1",
            jti: "j",
            issued_at: 1,
        }),
    )
    .unwrap();
    let foreign = crate::oidc::id_token::sign(
        stranger(),
        &crate::oidc::id_token::IdTokenInput {
            issuer: ISS,
            client_id: "portal",
            subject: "s",
            nonce: None,
            auth_time: 1,
            acr: "a",
            amr: &[],
            as_level: 1,
            mechanism: "1fa",
            sid: "sid-1",
            issued_at: 1,
            expires_at: 2,
            access_token: "at",
            verified_claims: None,
        },
    )
    .unwrap();
    let two_audiences = sign_jwt(key(), "JWT", &json!({"iss": ISS, "aud": ["portal", "other"], "sub": "s"})).unwrap();
    let other_issuer = sign_jwt(key(), "JWT", &json!({"iss": "https://evil.example", "aud": "portal"})).unwrap();
    type Case<'a> = (&'a str, RawEndSessionRequest, &'a str);
    let hint = |t: &str| RawEndSessionRequest { id_token_hint: Some(t.into()), ..Default::default() };
    let cases: Vec<Case> = vec![
        ("nothing at all", RawEndSessionRequest::default(), "ok:"),
        // §2: "even when the exp time has passed" (this one expired at 1300).
        ("expired hint of ours", hint(&valid), "ok:portal"),
        // §2: "the OP MUST validate that it was the issuer of the ID Token".
        ("hint signed by another key", hint(&foreign), "err:invalid_request"),
        ("hint from another issuer", hint(&other_issuer), "err:invalid_request"),
        ("hint is not a JWT", hint("abc.def"), "err:invalid_request"),
        ("hint is an access token", hint(&at_jwt), "err:invalid_request"),
        ("hint is a logout token", hint(&logout_jwt), "err:invalid_request"),
        ("hint with two audiences", hint(&two_audiences), "err:invalid_request"),
        // §2: "the OP MUST verify that the Client Identifier matches the one used when issuing".
        (
            "client_id matches the hint",
            RawEndSessionRequest { client_id: Some("portal".into()), ..hint(&valid) },
            "ok:portal",
        ),
        (
            "client_id differs from the hint",
            RawEndSessionRequest { client_id: Some("other".into()), ..hint(&valid) },
            "err:invalid_request",
        ),
        ("client_id alone", RawEndSessionRequest { client_id: Some("other".into()), ..Default::default() }, "ok:other"),
        (
            "empty values count as absent",
            RawEndSessionRequest {
                id_token_hint: Some(String::new()),
                client_id: Some(String::new()),
                ..Default::default()
            },
            "ok:",
        ),
        (
            "state too long",
            RawEndSessionRequest { state: Some("x".repeat(MAX_PARAM_LEN + 1)), ..Default::default() },
            "err:invalid_request",
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(outcome(check(&raw, &set(), ISS)), want, "{name}");
    }
    let checked = check(&hint(&valid), &set(), ISS).unwrap();
    assert_eq!(
        checked.hint,
        Some(IdTokenHint { client_id: "portal".into(), sub: Some("pairwise-sub".into()), sid: Some("sid-1".into()) })
    );
}

#[test]
fn post_logout_redirect_uri_table() {
    let registered = client(&["https://portal.example.vn/bye", "https://portal.example.vn/bye?lang=vi"]);
    let empty = client(&[]);
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a ClientRecord>, Result<Option<&'a str>, &'a str>);
    let cases: Vec<Case> = vec![
        ("none asked", None, Some(&registered), Ok(None)),
        ("none asked, no client", None, None, Ok(None)),
        (
            "exact match",
            Some("https://portal.example.vn/bye"),
            Some(&registered),
            Ok(Some("https://portal.example.vn/bye")),
        ),
        // §3: "MUST NOT perform post-logout redirection if the post_logout_redirect_uri value
        // supplied does not exactly match one of the previously registered … values".
        ("trailing slash", Some("https://portal.example.vn/bye/"), Some(&registered), Err("invalid_request")),
        ("other query", Some("https://portal.example.vn/bye?lang=en"), Some(&registered), Err("invalid_request")),
        ("case differs", Some("https://PORTAL.example.vn/bye"), Some(&registered), Err("invalid_request")),
        (
            "a redirect_uri is not a logout uri",
            Some("https://portal.example.vn/cb"),
            Some(&registered),
            Err("invalid_request"),
        ),
        // §3: without id_token_hint "the OP MUST NOT perform post-logout redirection unless the OP
        // has other means of confirming the legitimacy of the post-logout redirection target".
        ("no client to check against", Some("https://portal.example.vn/bye"), None, Err("invalid_request")),
        ("client without registered uris", Some("https://portal.example.vn/bye"), Some(&empty), Err("invalid_request")),
    ];
    for (name, uri, client, want) in cases {
        let got = check_post_logout_redirect_uri(uri, client).map_err(|e| e.code);
        assert_eq!(got, want.map(|o| o.map(String::from)), "{name}");
    }
}

#[test]
fn state_is_passed_back() {
    assert_eq!(redirect_target("https://p.vn/bye", Some("a b&c")), "https://p.vn/bye?state=a+b%26c");
    assert_eq!(redirect_target("https://p.vn/bye?lang=vi", Some("s")), "https://p.vn/bye?lang=vi&state=s");
    assert_eq!(redirect_target("https://p.vn/bye", None), "https://p.vn/bye");
}

#[test]
fn confirmation_is_asked_unless_the_hint_names_this_session() {
    let hint = |sid: Option<&str>| IdTokenHint { client_id: "portal".into(), sub: None, sid: sid.map(String::from) };
    let cases = [
        ("no hint", None, Some("sid-1"), true),
        ("hint without sid", Some(hint(None)), Some("sid-1"), true),
        ("hint of another session", Some(hint(Some("sid-2"))), Some("sid-1"), true),
        ("hint of this session", Some(hint(Some("sid-1"))), Some("sid-1"), false),
        ("no current sid", Some(hint(Some("sid-1"))), None, true),
    ];
    for (name, h, current, want) in cases {
        assert_eq!(must_confirm(h.as_ref(), current), want, "{name}");
    }
}

#[test]
fn logout_token_has_the_required_claims_and_no_nonce() {
    let claims = logout_token_claims(&LogoutTokenInput {
        issuer: ISS,
        client_id: "portal",
        sub: "pairwise-sub",
        sid: "pairwise-sid",
        jti: "jti-1",
        issued_at: 5_000,
    });
    assert_eq!(
        claims,
        json!({
            "iss": ISS, "aud": "portal", "iat": 5_000, "exp": 5_000 + LOGOUT_TOKEN_SECONDS, "jti": "jti-1",
            "sub": "pairwise-sub", "sid": "pairwise-sid",
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        })
    );
    // §2.4: "A Logout Token MUST NOT contain a nonce Claim".
    assert!(claims.get("nonce").is_none());
    let token = sign_jwt(key(), LOGOUT_TOKEN_TYP, &claims).unwrap();
    let (header, _) = crate::crypto::jws::peek(&token).unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(crate::crypto::jws::verify(&token, &set()).unwrap(), claims);

    let renewed = renew_logout_token_claims(&claims, 9_000).unwrap();
    assert_eq!((renewed["iat"].clone(), renewed["exp"].clone()), (json!(9_000), json!(9_000 + LOGOUT_TOKEN_SECONDS)));
    assert_eq!(renewed["jti"], "jti-1");
    assert!(renew_logout_token_claims(&json!({"sub": "x"}), 1).is_err());
}

#[test]
fn confirmation_form_carries_the_parameters_given() {
    let raw = RawEndSessionRequest { client_id: Some("portal".into()), state: Some("s".into()), ..Default::default() };
    assert_eq!(raw.pairs(), vec![("client_id", "portal".to_string()), ("state", "s".to_string())]);
}
