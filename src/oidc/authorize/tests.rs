use super::*;
use crate::assurance::Method;

fn client(kind: ClientKind) -> ClientRecord {
    ClientRecord {
        id: "portal".into(),
        name: "Portal".into(),
        kind,
        secret_hash: None,
        redirect_uris: vec!["https://portal.example/cb".into()],
        id_token_alg: "PS256".into(),
        settings: Default::default(),
        created_at: 0,
    }
}

fn raw() -> RawAuthorizeRequest {
    RawAuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some("portal".into()),
        redirect_uri: Some("https://portal.example/cb".into()),
        scope: Some("openid profile unknown".into()),
        state: Some("st".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

fn code_of(r: Result<ValidatedAuthorize, AuthorizeError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(AuthorizeError::Page(e)) => format!("page:{}", e.code),
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!(state.as_deref(), Some("st"), "state echoed");
            format!("redirect:{}", error.code)
        }
    }
}

#[test]
fn validation_table() {
    let public = client(ClientKind::Public);
    let conf = client(ClientKind::Confidential);
    type Case = (&'static str, fn(&mut RawAuthorizeRequest), &'static str);
    let cases: &[Case] = &[
        ("valid", |_| {}, "ok"),
        (
            "redirect differs by a slash",
            |r| r.redirect_uri = Some("https://portal.example/cb/".into()),
            "page:invalid_request",
        ),
        ("redirect missing", |r| r.redirect_uri = None, "page:invalid_request"),
        ("token flow", |r| r.response_type = Some("token".into()), "redirect:unsupported_response_type"),
        ("no response_type", |r| r.response_type = None, "redirect:invalid_request"),
        ("no openid scope", |r| r.scope = Some("profile".into()), "redirect:invalid_scope"),
        ("no pkce for public", |r| r.code_challenge = None, "redirect:invalid_request"),
        ("plain pkce", |r| r.code_challenge_method = Some("plain".into()), "redirect:invalid_request"),
        ("prompt none+login", |r| r.prompt = Some("none login".into()), "redirect:invalid_request"),
        ("bad max_age", |r| r.max_age = Some("-1".into()), "redirect:invalid_request"),
        ("request object", |r| r.request = Some("eyJ".into()), "redirect:request_not_supported"),
        ("claims not json", |r| r.claims = Some("{".into()), "redirect:invalid_request"),
        (
            "essential unknown acr",
            |r| r.claims = Some(r#"{"id_token":{"acr":{"essential":true,"values":["LoA9"]}}}"#.into()),
            "redirect:unmet_authentication_requirements",
        ),
        ("form_post", |r| r.response_mode = Some("form_post".into()), "ok"),
        ("fragment", |r| r.response_mode = Some("fragment".into()), "redirect:invalid_request"),
        ("request_uri inside a push", |r| r.request_uri = Some("urn:x".into()), "redirect:invalid_request"),
    ];
    for (name, mutate, want) in cases {
        let mut r = raw();
        mutate(&mut r);
        assert_eq!(code_of(validate(&r, &public)), *want, "{name}");
    }
    let mut r = raw();
    r.code_challenge = None;
    r.code_challenge_method = None;
    assert_eq!(code_of(validate(&r, &conf)), "ok", "confidential client without PKCE");
}

#[test]
fn scopes_and_acr_are_normalised() {
    let mut r = raw();
    r.acr_values = Some("LoA1 urn:xacthuc:loa:as2:1fa urn:xacthuc:loa:as2:1fa urn:xacthuc:loa:as1:2fa".into());
    let v = validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!());
    assert_eq!(v.scopes, vec!["openid", "profile"]);
    assert_eq!(
        v.acr.values.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        vec!["urn:xacthuc:loa:as2:1fa", "urn:xacthuc:loa:as1:2fa"]
    );
    assert!(!v.acr.essential);
    let mut r = raw();
    r.claims = Some(r#"{"id_token":{"acr":{"essential":true,"value":"urn:xacthuc:loa:as3:2fa"}}}"#.into());
    let v = validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!());
    assert!(v.acr.essential);
    assert_eq!(v.acr.values[0].to_string(), "urn:xacthuc:loa:as3:2fa");
}

fn req(acr: &[&str], max_age: Option<i64>, prompt_login: bool) -> ValidatedAuthorize {
    let mut r = raw();
    r.acr_values = Some(acr.join(" "));
    let mut v = validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!());
    v.max_age = max_age;
    v.prompt_login = prompt_login;
    v
}

fn view(as_level: AsLevel, factors: &[VerifiedFactor]) -> SessionView<'_> {
    SessionView { account_id: "a1".into(), account_as: as_level, factors }
}

fn no_policies() -> PolicySet {
    PolicySet::default()
}

#[test]
fn decisions() {
    let pwd = [VerifiedFactor { method: Method::Password, at: 1000 }];
    let set = no_policies();
    let as1 = view(AsLevel::As1, &pwd);
    let as2 = view(AsLevel::As2, &pwd);
    let d = |r: &ValidatedAuthorize, s: Option<&SessionView<'_>>, after: Option<i64>, now: i64| {
        decide(r, &set, s, after, now)
    };

    assert_eq!(
        d(&req(&[], None, false), None, None, 1100),
        AuthorizeDecision::Authenticate { mechanism: Mechanism::OneFactor }
    );
    let AuthorizeDecision::Issue { acr, amr, auth_time } = d(&req(&[], None, false), Some(&as2), None, 1100) else {
        unreachable!()
    };
    assert_eq!((acr.to_string().as_str(), amr, auth_time), ("urn:xacthuc:loa:as2:1fa", vec!["pwd".to_string()], 1000));

    // AS too low is not a step-up.
    assert_eq!(
        d(&req(&["urn:xacthuc:loa:as2:1fa"], None, false), Some(&as1), None, 1100),
        AuthorizeDecision::InsufficientAssurance {
            required: AsLevel::As2,
            current: AsLevel::As1,
            rule: "acr_values:urn:xacthuc:loa:as2:1fa".into()
        }
    );
    // A preferred value out of reach, a second one satisfied: issue.
    assert!(matches!(
        d(&req(&["urn:xacthuc:loa:as3:1fa", "urn:xacthuc:loa:as1:1fa"], None, false), Some(&as2), None, 1100),
        AuthorizeDecision::Issue { .. }
    ));
    // 2fa asked with a password in the session: a step-up to 2fa (the service checks the
    // account can reach it).
    let AuthorizeDecision::StepUp { target } =
        d(&req(&["urn:xacthuc:loa:as2:2fa"], None, false), Some(&as2), None, 1100)
    else {
        unreachable!()
    };
    assert_eq!((target.mechanism, target.not_before), (Mechanism::TwoFactor, None));
    // max_age: the factor is 100 s old.
    assert!(matches!(d(&req(&[], Some(60), false), Some(&as2), None, 1100), AuthorizeDecision::Authenticate { .. }));
    assert!(matches!(d(&req(&[], Some(600), false), Some(&as2), None, 1100), AuthorizeDecision::Issue { .. }));
    // prompt=login: satisfied only by a sign-in made during this request.
    assert!(matches!(d(&req(&[], None, true), Some(&as2), None, 1100), AuthorizeDecision::Authenticate { .. }));
    assert!(matches!(d(&req(&[], None, true), Some(&as2), Some(1001), 1100), AuthorizeDecision::Authenticate { .. }));
    assert!(matches!(d(&req(&[], None, true), Some(&as2), Some(990), 1100), AuthorizeDecision::Issue { .. }));
    // max_age=0 is met by a sign-in during this request, even a second later.
    assert!(matches!(d(&req(&[], Some(0), false), Some(&as2), Some(1000), 1001), AuthorizeDecision::Issue { .. }));
    assert!(matches!(d(&req(&[], Some(0), false), Some(&as2), None, 1001), AuthorizeDecision::Authenticate { .. }));
    // Too low for every value: the lowest required level is named.
    assert!(matches!(
        d(&req(&["urn:xacthuc:loa:as4:1fa", "urn:xacthuc:loa:as3:1fa"], None, false), Some(&as1), None, 1100),
        AuthorizeDecision::InsufficientAssurance { required: AsLevel::As3, current: AsLevel::As1, .. }
    ));
}

/// A level-4 service whose payment needs a fresh second factor.
fn level4() -> PolicySet {
    crate::policy::parse_str(
        std::path::Path::new("p.toml"),
        r#"
        [service.s]
        name = "Đăng ký hộ kinh doanh"
        level = 4
        clients = ["portal"]
        login = { min_as = "as3", mechanism = "1fa" }
        [service.s.actions.payment]
        min_as = "as3"
        mechanism = "2fa"
        max_age = "5m"
        "#,
    )
    .unwrap_or_else(|e| unreachable!("{e}"))
}

fn payment_request(details: bool) -> ValidatedAuthorize {
    let mut r = raw();
    if details {
        r.authorization_details = Some(
            r#"[{"type":"payment","amount":"1250000","currency":"VND","payee":"UBND","reference":"HKD-1"}]"#.into(),
        );
    } else {
        r.acr_values = Some("urn:xacthuc:action:payment".into());
    }
    validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!())
}

#[test]
fn actions_step_up_and_approval() {
    let set = level4();
    let pwd = [VerifiedFactor { method: Method::Password, at: 1000 }];
    let both =
        [VerifiedFactor { method: Method::Password, at: 1000 }, VerifiedFactor { method: Method::Totp, at: 1090 }];
    let as3 = view(AsLevel::As3, &pwd);
    let as3_2fa = view(AsLevel::As3, &both);

    // The action comes from acr_values or from the type of the authorization detail.
    assert_eq!(payment_request(false).actions, vec!["payment"]);
    assert_eq!(payment_request(true).actions, vec!["payment"]);

    // Password only: a step-up to 2fa, fresh within 5 minutes.
    let AuthorizeDecision::StepUp { target } = decide(&payment_request(false), &set, Some(&as3), None, 1100) else {
        unreachable!()
    };
    assert_eq!((target.mechanism, target.not_before), (Mechanism::TwoFactor, Some(800)));
    // The password is 10 minutes old: nothing to build on, sign in again.
    assert!(matches!(
        decide(&payment_request(false), &set, Some(&as3), None, 1600),
        AuthorizeDecision::Authenticate { mechanism: Mechanism::TwoFactor }
    ));
    // With the second factor: issued at 2fa.
    let AuthorizeDecision::Issue { acr, .. } = decide(&payment_request(false), &set, Some(&as3_2fa), None, 1100) else {
        unreachable!()
    };
    assert_eq!(acr.to_string(), "urn:xacthuc:loa:as3:2fa");
    // Details: approval first, by this account.
    let mut req = payment_request(true);
    assert_eq!(decide(&req, &set, Some(&as3_2fa), None, 1100), AuthorizeDecision::Approve);
    req.approved_by = Some("someone else".into());
    assert_eq!(decide(&req, &set, Some(&as3_2fa), None, 1100), AuthorizeDecision::Approve);
    req.approved_by = Some("a1".into());
    assert!(matches!(decide(&req, &set, Some(&as3_2fa), None, 1100), AuthorizeDecision::Issue { .. }));
    // Registration is checked before the approval.
    let as2 = view(AsLevel::As2, &both);
    assert!(matches!(
        decide(&payment_request(true), &set, Some(&as2), None, 1100),
        AuthorizeDecision::InsufficientAssurance { required: AsLevel::As3, .. }
    ));
    // An action the service does not define is refused.
    let mut r = raw();
    r.acr_values = Some("urn:xacthuc:action:withdraw".into());
    let req = validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!());
    let AuthorizeDecision::Refuse(e) = decide(&req, &set, Some(&as3_2fa), None, 1100) else { unreachable!() };
    assert_eq!(e.code, "invalid_request");
}

#[test]
fn response_modes() {
    type Case = (Option<&'static str>, Result<ResponseMode, &'static str>);
    let cases: &[Case] = &[
        (None, Ok(ResponseMode::Query)),
        (Some("query"), Ok(ResponseMode::Query)),
        (Some("form_post"), Ok(ResponseMode::FormPost)),
        (Some("fragment"), Err("invalid_request")),
        (Some("FORM_POST"), Err("invalid_request")),
    ];
    for (mode, want) in cases {
        let mut r = raw();
        r.response_mode = mode.map(String::from);
        assert_eq!(check_response_mode(&r).map_err(|e| e.code), *want, "{mode:?}");
    }
    // The validated request carries the mode; so does an error found after it was read.
    let mut r = raw();
    r.response_mode = Some("form_post".into());
    let v = validate(&r, &client(ClientKind::Public)).unwrap_or_else(|_| unreachable!());
    assert_eq!(v.response_mode, ResponseMode::FormPost);
    r.prompt = Some("none login".into());
    let Err(AuthorizeError::Redirect { response_mode, error, .. }) = validate(&r, &client(ClientKind::Public)) else {
        unreachable!()
    };
    assert_eq!((response_mode, error.code), (ResponseMode::FormPost, "invalid_request"));
    // An unsupported mode is answered in the query.
    r.response_mode = Some("fragment".into());
    let Err(AuthorizeError::Redirect { response_mode, .. }) = validate(&r, &client(ClientKind::Public)) else {
        unreachable!()
    };
    assert_eq!(response_mode, ResponseMode::Query);
    // Requests parked before the mode existed still load, as query.
    let mut json = serde_json::to_value(&v).unwrap_or_default();
    json.as_object_mut().map(|o| o.remove("response_mode"));
    let old: ValidatedAuthorize = serde_json::from_value(json).unwrap_or_else(|_| unreachable!());
    assert_eq!(old.response_mode, ResponseMode::Query);
}

#[test]
fn scopes_are_limited_to_the_clients_registration() {
    let mut limited = client(ClientKind::Public);
    limited.settings.scopes = vec!["openid".into(), "email".into(), "unknown".into()];
    type Case = (&'static str, Result<Vec<&'static str>, &'static str>);
    let cases: &[Case] = &[
        ("openid profile email", Ok(vec!["openid", "email"])),
        ("email openid email", Ok(vec!["email", "openid"])),
        ("openid unknown national_id", Ok(vec!["openid"])),
        ("profile email", Err("invalid_scope")),
    ];
    for (scope, want) in cases {
        let mut r = raw();
        r.scope = Some((*scope).into());
        let got = check_scope(&r, &limited).map_err(|e| e.code);
        assert_eq!(got, want.clone().map(|v| v.into_iter().map(String::from).collect()), "{scope}");
    }
    // A client not registered for openid cannot make an OpenID Connect request.
    limited.settings.scopes = vec!["profile".into()];
    assert_eq!(check_scope(&raw(), &limited).map_err(|e| e.code), Err("invalid_scope"));
}

#[test]
fn par_required_and_pushed_requests() {
    let mut strict = client(ClientKind::Public);
    strict.settings.require_par = true;
    assert_eq!(check_par_required(&raw(), &client(ClientKind::Public)), Ok(()));
    assert_eq!(code_of(check_par_required(&raw(), &strict).map(|()| unreachable!())), "redirect:invalid_request");
    let mut r = raw();
    r.redirect_uri = Some("https://attacker.example/cb".into());
    assert_eq!(code_of(check_par_required(&r, &strict).map(|()| unreachable!())), "page:invalid_request");

    fn id(u: &str) -> Result<&str, &'static str> {
        pushed_request_id(u).map_err(|e| e.code)
    }
    assert_eq!(id("urn:ietf:params:oauth:request_uri:abc"), Ok("abc"));
    assert_eq!(id("urn:ietf:params:oauth:request_uri:"), Err("invalid_request_uri"));
    assert_eq!(id("https://portal.example/request.jwt"), Err("invalid_request_uri"));

    let pushed = validate(&raw(), &strict).unwrap_or_else(|_| unreachable!());
    assert_eq!(check_pushed_request(&pushed, "portal", &strict), Ok(()));
    let check = |by: &str, c: &ClientRecord| check_pushed_request(&pushed, by, c).map_err(|e| e.code);
    let mut other = strict.clone();
    other.id = "other".into();
    assert_eq!(check("portal", &other), Err("invalid_request_uri"), "pushed by another client");
    assert_eq!(check("other", &strict), Err("invalid_request_uri"), "record of another client");
    let mut moved = strict.clone();
    moved.redirect_uris = vec!["https://portal.example/new".into()];
    assert_eq!(check("portal", &moved), Err("invalid_request_uri"), "redirect URI unregistered since");
}
