//! The authorization endpoint's parser and checks (OIDC Core §3.1.2.1, RFC 9396, RFC 7636):
//! a query string or form body → `RawAuthorizeRequest` → `validate` for a public and a
//! confidential client → `decide` under the built-in default policy. Any panic is a bug: every
//! bad request must end as an OAuth error page or redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::LazyLock;
use xacthuc::assurance::{AsLevel, Method, VerifiedFactor};
use xacthuc::model::{ClientKind, ClientRecord};
use xacthuc::oidc::authorize::{self, RawAuthorizeRequest, SessionView, ValidatedAuthorize};
use xacthuc::oidc::{pkce, rar};
use xacthuc::policy::{self, PolicySet};

const REDIRECT: &str = "https://portal.example/cb";
const NOW: i64 = 1_764_000_000;
/// The level-4 service of `policy::decide`'s tests.
const POLICY: &str = r#"
[service.fuzz]
name = "Đăng ký hộ kinh doanh"
level = 4
clients = ["portal"]
login = { min_as = "as3", mechanism = "1fa" }
actions.payment = { min_as = "as3", mechanism = "2fa", max_age = "5m" }
actions.result_receipt = { min_as = "as3", mechanism = "2fa", require = ["certificate"], max_age = "5m" }
"#;

static POLICIES: LazyLock<PolicySet> = LazyLock::new(|| match policy::parse_str(Path::new("fuzz.toml"), POLICY) {
    Ok(set) => set,
    Err(e) => panic!("the fixed fuzz policy must be valid: {e:?}"),
});

fn client(kind: ClientKind) -> ClientRecord {
    ClientRecord {
        id: "portal".into(),
        name: "Portal".into(),
        kind,
        secret_hash: None,
        redirect_uris: vec![REDIRECT.into(), "http://127.0.0.1:8080/cb".into()],
        id_token_alg: "PS256".into(),
        settings: Default::default(),
        created_at: 0,
    }
}

fn check(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Option<ValidatedAuthorize> {
    let _ = authorize::client_id(raw);
    let _ = authorize::check_par_required(raw, client);
    let _ = authorize::check_lengths(raw);
    let _ = authorize::check_request_object(raw);
    let _ = authorize::check_response_type(raw);
    let _ = authorize::check_response_mode(raw);
    let _ = authorize::check_scope(raw, client);
    let _ = authorize::check_pkce(raw, client);
    let _ = authorize::check_prompt(raw);
    let _ = authorize::check_max_age(raw);
    let _ = authorize::check_acr(raw);
    if let Some(uri) = raw.request_uri.as_deref() {
        let _ = authorize::pushed_request_id(uri);
    }
    authorize::validate(raw, client).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut raw) = serde_urlencoded::from_bytes::<RawAuthorizeRequest>(data) else { return };
    if let Ok(details) = rar::parse(raw.authorization_details.as_deref()) {
        let _ = rar::to_json(&details);
        let _ = authorize::check_actions(&raw, &details);
    }
    if let (Some(challenge), method) = (raw.code_challenge.as_deref(), raw.code_challenge_method.as_deref()) {
        let _ = pkce::check_challenge(challenge, method);
    }
    let public = client(ClientKind::Public);
    let confidential = client(ClientKind::Confidential);
    // As received, then with a registered redirect URI so the checks behind that first gate run.
    let mut validated = vec![check(&raw, &public), check(&raw, &confidential)];
    raw.redirect_uri = Some(REDIRECT.into());
    validated.push(check(&raw, &public));
    validated.push(check(&raw, &confidential));

    let policies = &*POLICIES;
    let factors = [
        VerifiedFactor { method: Method::Password, at: NOW - 600 },
        VerifiedFactor { method: Method::Totp, at: NOW - 30 },
    ];
    let session = SessionView { account_id: "a1".into(), account_as: AsLevel::As3, factors: &factors };
    for v in validated.into_iter().flatten() {
        // A validated request is parked in the database as JSON while the citizen signs in.
        let Ok(json) = serde_json::to_string(&v) else { panic!("a validated request must serialise") };
        let back: ValidatedAuthorize = match serde_json::from_str(&json) {
            Ok(b) => b,
            Err(e) => panic!("a parked request must read back: {e}: {json}"),
        };
        assert_eq!(back, v, "a parked request must read back unchanged");
        let _ = authorize::decide(&v, policies, None, None, NOW);
        let _ = authorize::decide(&v, policies, Some(&session), None, NOW);
        let _ = authorize::decide(&v, policies, Some(&session), Some(NOW - 5), NOW);
    }
});
