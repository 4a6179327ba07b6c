//! AS-3 online (issue 8; docs/proofing.md, "AS-3 online"): a citizen with a declared identity
//! verifies it by signing a challenge with a certificate naming them (a test PKI built with
//! rcgen, signatures made by `openssl dgst`), or through an identity registry (a real HTTP
//! service started by the test). Everything over HTTP against the real server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DistinguishedName, DnType,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xacthuc::app::now;

const UID: [u64; 7] = [0, 9, 2342, 19200300, 100, 1, 1];
const HOA_ID: &str = "001185001234";
const HOA: Citizen<'static> = Citizen {
    username: "hoa.pham",
    password: PASSWORD,
    identity: Some((HOA_ID, "Phạm Thị Hoa", "1985-03-02", "female")),
};
const REVOKED_SERIAL: u64 = 666;
const CB: &str = "https://portal.example.vn/cb";

// ---------------------------------------------------------------------------------------------
// A test PKI: `public` (root → licensed CA) and `government` (root → CA).

type Ca = CertifiedIssuer<'static, KeyPair>;

fn dn(cn: &str, uids: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "VN");
    dn.push(DnType::CommonName, cn);
    for u in uids {
        dn.push(DnType::CustomDnType(UID.to_vec()), *u);
    }
    dn
}

fn ca(cn: &str, parent: Option<&Ca>) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn, &[]);
    p.is_ca =
        IsCa::Ca(if parent.is_some() { BasicConstraints::Constrained(0) } else { BasicConstraints::Unconstrained });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time::OffsetDateTime::from_unix_timestamp(now() - 86_400).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(now() + 10 * 365 * 86_400).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    match parent {
        Some(parent) => CertifiedIssuer::signed_by(p, key, parent).unwrap(),
        None => CertifiedIssuer::self_signed(p, key).unwrap(),
    }
}

fn crl(issuer: &Ca, revoked: &[u64]) -> Vec<u8> {
    let t = now();
    CertificateRevocationListParams {
        this_update: time::OffsetDateTime::from_unix_timestamp(t - 60).unwrap(),
        next_update: time::OffsetDateTime::from_unix_timestamp(t + 7 * 86_400).unwrap(),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: time::OffsetDateTime::from_unix_timestamp(t - 30).unwrap(),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .der()
    .to_vec()
}

struct Pki {
    _files: tempfile::TempDir,
    dir: PathBuf,
    trust: PathBuf,
    ca: Ca,
    gov_ca: Ca,
}

fn pki() -> Pki {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().to_path_buf();
    let root = ca("Vietnam National Root CA (test)", None);
    let ca_ = ca("VNPT-CA SHA2 (test)", Some(&root));
    let gov_root = ca("Cơ quan chứng thực Chính phủ (test)", None);
    let gov_ca = ca("Ban Cơ yếu Chính phủ CA (test)", Some(&gov_root));
    let trust = dir.join("trust");
    for d in ["profiles/public", "profiles/government", "intermediates", "crl"] {
        std::fs::create_dir_all(trust.join(d)).unwrap();
    }
    std::fs::write(trust.join("profiles/public/root.pem"), root.pem()).unwrap();
    std::fs::write(trust.join("profiles/government/root.pem"), gov_root.pem()).unwrap();
    std::fs::write(trust.join("intermediates/cas.pem"), format!("{}{}", ca_.pem(), gov_ca.pem())).unwrap();
    std::fs::write(trust.join("crl/vnpt.crl"), crl(&ca_, &[REVOKED_SERIAL])).unwrap();
    std::fs::write(trust.join("crl/gov.crl"), crl(&gov_ca, &[])).unwrap();
    Pki { _files: files, dir, trust, ca: ca_, gov_ca }
}

/// A citizen's certificate (DER) and key file.
struct Leaf {
    der: Vec<u8>,
    key_pem: PathBuf,
}

fn leaf(dir: &Path, issuer: &Ca, cn: &str, uids: &[&str], serial: u64) -> Leaf {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn, uids);
    p.serial_number = Some(SerialNumber::from(serial));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
    p.not_before = time::OffsetDateTime::from_unix_timestamp(now() - 86_400).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(now() + 365 * 86_400).unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    let key_pem = dir.join(format!("leaf-{serial}.key"));
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    Leaf { der: cert.der().to_vec(), key_pem }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl is needed as the independent signer");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A signature package (ES256) that openssl made over `bytes`.
fn package(leaf: &Leaf, bytes: &[u8]) -> String {
    let data = leaf.key_pem.with_extension("data");
    let sig = leaf.key_pem.with_extension("sig");
    std::fs::write(&data, bytes).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        leaf.key_pem.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    json!({
        "format": "xacthuc-signature/1",
        "algorithm": "ES256",
        "signature": STANDARD.encode(std::fs::read(&sig).unwrap()),
        "certificates": [STANDARD.encode(&leaf.der)],
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Pages.

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#x2f;", "/").replace("&#x27;", "'").replace("&amp;", "&")
}

async fn get(server: &TestServer, http: &reqwest::Client, path: &str) -> (u16, String) {
    let resp = http.get(server.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, unescape(&resp.text().await.unwrap()))
}

async fn level(server: &TestServer, username: &str) -> u8 {
    server.state.store.find_account_by_username(username).await.unwrap().unwrap().as_level.number()
}

async fn start(pki: Option<&Pki>, extra: &[(&str, &str)]) -> TestServer {
    let mut env: Vec<(&str, &str)> = Vec::new();
    let trust;
    if let Some(p) = pki {
        trust = p.trust.to_string_lossy().to_string();
        env.push(("XACTHUC_CERTIFICATES__TRUST_DIR", &trust));
        env.push(("XACTHUC_CERTIFICATES__DEFAULT_PROFILES", "[\"public\"]"));
    }
    env.extend_from_slice(extra);
    TestServer::start_full(None, false, &env).await
}

/// Registers `c` (signed in with `http`).
async fn citizen(server: &TestServer, c: &Citizen<'_>) -> reqwest::Client {
    let http = client();
    let resp = register(server, &http, c).await;
    assert_eq!(resp.status(), 303, "registration failed: {}", resp.text().await.unwrap());
    http
}

/// Signs the challenge of `/account/verify/certificate` with `leaf` and posts it.
async fn verify_with(server: &TestServer, http: &reqwest::Client, leaf: &Leaf) -> reqwest::Response {
    let (status, page) = get(server, http, "/account/verify/certificate").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("download=\"challenge.json\""), "{page}");
    let marker = "data:application/json;charset=utf-8;base64,";
    let start = page.find(marker).unwrap() + marker.len();
    let end = start + page[start..].find('"').unwrap();
    let bytes = STANDARD.decode(&page[start..end]).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("\"purpose\":\"proofing\""));
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("challenge", hidden(&page, "challenge")),
        ("response", package(leaf, &bytes)),
    ];
    http.post(server.url("/account/verify/certificate")).form(&form).send().await.unwrap()
}

async fn audit_kinds(server: &TestServer) -> Vec<(String, Value)> {
    let events = server.state.store.list_audit(1, 10_000).await.unwrap();
    events.into_iter().map(|e| (e.event.kind.clone(), serde_json::to_value(&e.event.details).unwrap())).collect()
}

// ---------------------------------------------------------------------------------------------
// By certificate.

#[tokio::test]
async fn a_certificate_naming_the_declared_person_raises_the_account_to_as3() {
    let pki = pki();
    let server = start(Some(&pki), &[]).await;
    let secret = server.add_client("portal", CB, "ES256").await;
    let http = citizen(&server, &HOA).await;

    // The account page links to the hub; the hub offers the certificate.
    let (_, account) = get(&server, &http, "/account").await;
    assert!(account.contains("href=\"/account/verify\""), "{account}");
    let (status, hub) = get(&server, &http, "/account/verify").await;
    assert_eq!(status, 200);
    assert!(
        hub.contains("Xác minh bằng chứng thư số") && hub.contains("href=\"/account/verify/certificate\""),
        "{hub}"
    );
    assert!(!hub.contains("/account/verify/registry"), "the registry is not configured: {hub}");

    // Upper case, no diacritics: the same name.
    let cert = leaf(&pki.dir, &pki.ca, "PHAM THI HOA", &[&format!("CCCD:{HOA_ID}")], 101);
    let resp = verify_with(&server, &http, &cert).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp), "/account/verify?done=certificate");
    let (_, hub) = get(&server, &http, "/account/verify?done=certificate").await;
    assert!(hub.contains("Đã xác minh thành công") && hub.contains("AS-3"), "{hub}");
    assert_eq!(level(&server, "hoa.pham").await, 3);

    // The account page shows the level and how it was reached.
    let (_, account) = get(&server, &http, "/account").await;
    assert!(account.contains("Mức độ đảm bảo: <strong>AS-3</strong>"), "{account}");
    assert!(account.contains("xác minh bằng chứng thư số ngày"), "{account}");
    assert!(!account.contains("href=\"/account/verify\""), "no more link once verified");

    // The evidence record and the audit event.
    let a = server.state.store.find_account_by_username("hoa.pham").await.unwrap().unwrap();
    let evidence = server.state.store.list_evidence(a.id).await.unwrap();
    let last = evidence.last().unwrap();
    assert_eq!((last.method.as_str(), last.verifier.as_str(), last.to_level.number()), ("certificate", "system", 3));
    assert!(
        last.source.contains("VNPT-CA SHA2 (test)") && last.source.ends_with("65"),
        "issuer / serial: {}",
        last.source
    );
    let events = audit_kinds(&server).await;
    assert!(events.iter().any(|(k, d)| k == "account.level_raised" && d["method"] == "certificate" && d["to"] == 3));
    assert!(!format!("{events:?}").contains(HOA_ID), "the ID number is never in the audit log");

    // Verified already: the hub says so, and the method page sends back to it.
    let (_, hub) = get(&server, &http, "/account/verify").await;
    assert!(hub.contains("đã được xác minh"), "{hub}");
    let resp = http.get(server.url("/account/verify/certificate")).send().await.unwrap();
    assert_eq!(resp.status(), 303);

    // A portal asking for AS-3 gets it.
    let params = [
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", "urn:xacthuc:loa:as3:1fa"),
    ];
    let code = authorize_code(&server, &client(), &params, CB, ("hoa.pham", PASSWORD)).await;
    let body: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(claims["acr"].as_str().unwrap().contains(":as3:"), "{claims}");
}

#[tokio::test]
async fn a_certificate_of_another_person_is_refused_with_the_reason() {
    let pki = pki();
    let server = start(Some(&pki), &[]).await;
    let http = citizen(&server, &HOA).await;

    // Another ID number (well formed).
    let other = leaf(&pki.dir, &pki.ca, "Phạm Thị Hoa", &["CCCD:001185009999"], 201);
    let resp = verify_with(&server, &http, &other).await;
    assert_eq!(resp.status(), 422);
    let page = unescape(&resp.text().await.unwrap());
    assert!(page.contains("Số định danh cá nhân trong chứng thư số không trùng với số bạn đã khai"), "{page}");
    assert!(page.contains("name=\"challenge\""), "a new challenge to try again");

    // The right number, another name.
    let renamed = leaf(&pki.dir, &pki.ca, "PHẠM THỊ HOÀ BÌNH", &[&format!("CCCD:{HOA_ID}")], 202);
    let resp = verify_with(&server, &http, &renamed).await;
    assert_eq!(resp.status(), 422);
    let page = unescape(&resp.text().await.unwrap());
    assert!(page.contains("Họ và tên trong chứng thư số không trùng với họ và tên bạn đã khai"), "{page}");

    // No CCCD number at all.
    let no_id = leaf(&pki.dir, &pki.ca, "Phạm Thị Hoa", &["MST:8001234567"], 203);
    let resp = verify_with(&server, &http, &no_id).await;
    assert_eq!(resp.status(), 422);
    assert!(unescape(&resp.text().await.unwrap()).contains("không ghi số định danh cá nhân"));

    // A certificate of the government profile, not the public one.
    let gov = leaf(&pki.dir, &pki.gov_ca, "Phạm Thị Hoa", &[&format!("CCCD:{HOA_ID}")], 204);
    let resp = verify_with(&server, &http, &gov).await;
    assert_eq!(resp.status(), 422);
    assert!(unescape(&resp.text().await.unwrap()).contains("không phải chứng thư số công cộng"));

    // Revoked.
    let revoked = leaf(&pki.dir, &pki.ca, "Phạm Thị Hoa", &[&format!("CCCD:{HOA_ID}")], REVOKED_SERIAL);
    let resp = verify_with(&server, &http, &revoked).await;
    assert_ne!(resp.status(), 303);
    assert!(unescape(&resp.text().await.unwrap()).contains("thu hồi"), "revoked");

    // In English too.
    let en = http.get(server.url("/lang?set=en&next=/account")).send().await.unwrap();
    assert!(en.status().is_redirection());
    let resp = verify_with(&server, &http, &other).await;
    assert!(
        unescape(&resp.text().await.unwrap())
            .contains("The personal ID number in the certificate is not the one you declared")
    );

    assert_eq!(level(&server, "hoa.pham").await, 2, "nothing changed");
    let events = audit_kinds(&server).await;
    for reason in ["uid_mismatch", "name_mismatch", "no_id_number", "wrong_profile"] {
        assert!(
            events.iter().any(|(k, d)| k == "proofing.failed" && d["reason"] == reason && d["method"] == "certificate"),
            "{reason} audited"
        );
    }
    assert!(!events.iter().any(|(k, _)| k == "account.level_raised"));

    // A forged form (no CSRF token) is refused.
    let resp = http
        .post(server.url("/account/verify/certificate"))
        .form(&[("challenge", "x"), ("response", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn without_a_declared_identity_the_hub_says_what_to_do() {
    let pki = pki();
    let server = start(Some(&pki), &[]).await;
    let http = citizen(&server, &Citizen { username: "an.le", password: PASSWORD, identity: None }).await;
    let (status, hub) = get(&server, &http, "/account/verify").await;
    assert_eq!(status, 200);
    assert!(hub.contains("Bạn chưa khai thông tin cá nhân") && hub.contains("href=\"/account#declare\""), "{hub}");
    assert!(!hub.contains("href=\"/account/verify/certificate\""));
    let resp = http.get(server.url("/account/verify/certificate")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), location(&resp)), (303, "/account/verify".to_string()));
    // Not signed in: to the sign-in page.
    let resp = client().get(server.url("/account/verify")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(location(&resp).starts_with("/login"));
}

// ---------------------------------------------------------------------------------------------
// By registry: a real HTTP service on an ephemeral port.

/// What the registry received: the authorization header and the JSON body of each request.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct FakeRegistry {
    seen: Seen,
    answer: Value,
    delay: Duration,
    status: u16,
}

async fn fake_registry_handler(
    axum::extract::State(r): axum::extract::State<FakeRegistry>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
    r.seen.lock().unwrap().push((auth, body));
    tokio::time::sleep(r.delay).await;
    (axum::http::StatusCode::from_u16(r.status).unwrap(), axum::Json(r.answer.clone()))
}

/// Starts the registry; returns its URL and what it received.
async fn fake_registry(answer: Value, delay: Duration, status: u16) -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = FakeRegistry { seen: seen.clone(), answer, delay, status };
    let app = axum::Router::new().route("/v1/verify", axum::routing::post(fake_registry_handler)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/v1/verify", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// A gateway using the registry at `url` (with a bearer token from a file), and a signed-in
/// citizen with a declared identity.
async fn with_registry(url: &str, timeout_ms: &str) -> (TestServer, reqwest::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("registry-token");
    std::fs::write(&token, "Bearer registry-test-token\n").unwrap();
    let token = token.to_string_lossy().to_string();
    let server = start(
        None,
        &[
            ("XACTHUC_PROOFING__REGISTRY__ENABLED", "true"),
            ("XACTHUC_PROOFING__REGISTRY__URL", url),
            ("XACTHUC_PROOFING__REGISTRY__AUTH_HEADER", "Authorization"),
            ("XACTHUC_PROOFING__REGISTRY__AUTH_VALUE_FILE", &token),
            ("XACTHUC_PROOFING__REGISTRY__TIMEOUT_MS", timeout_ms),
        ],
    )
    .await;
    let http = citizen(&server, &HOA).await;
    (server, http, dir)
}

async fn ask_registry(server: &TestServer, http: &reqwest::Client) -> reqwest::Response {
    let (status, hub) = get(server, http, "/account/verify").await;
    assert_eq!(status, 200);
    assert!(hub.contains("action=\"/account/verify/registry\""), "the registry is offered: {hub}");
    http.post(server.url("/account/verify/registry")).form(&[("csrf", hidden(&hub, "csrf"))]).send().await.unwrap()
}

#[tokio::test]
async fn a_registry_match_raises_the_account_to_as3_with_its_reference() {
    let (url, seen) =
        fake_registry(json!({"result": "match", "reference": "DC-2026-000123"}), Duration::ZERO, 200).await;
    let (server, http, _dir) = with_registry(&url, "3000").await;
    let resp = ask_registry(&server, &http).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp), "/account/verify?done=registry");
    assert_eq!(level(&server, "hoa.pham").await, 3);

    // What the registry received: the declared identity, with the credential.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some("Bearer registry-test-token"));
    assert_eq!(
        seen[0].1,
        json!({"id_number": HOA_ID, "full_name": "Phạm Thị Hoa", "birth_date": "1985-03-02", "sex": "female"})
    );

    let (_, account) = get(&server, &http, "/account").await;
    assert!(account.contains("Mức độ đảm bảo: <strong>AS-3</strong>"), "{account}");
    assert!(account.contains("xác minh qua cơ sở dữ liệu dân cư ngày"), "{account}");
    let a = server.state.store.find_account_by_username("hoa.pham").await.unwrap().unwrap();
    let last = server.state.store.list_evidence(a.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.source.as_str(), last.verifier.as_str()),
        ("registry", "DC-2026-000123", "system")
    );
    let events = audit_kinds(&server).await;
    assert!(events.iter().any(|(k, d)| k == "account.level_raised" && d["method"] == "registry"));
    assert!(!format!("{events:?}").contains(HOA_ID), "the ID number is never in the audit log");
}

#[tokio::test]
async fn a_registry_no_match_changes_nothing() {
    let (url, seen) =
        fake_registry(json!({"result": "no_match", "reference": "DC-2026-000124"}), Duration::ZERO, 200).await;
    let (server, http, _dir) = with_registry(&url, "3000").await;
    let resp = ask_registry(&server, &http).await;
    assert_eq!(resp.status(), 422);
    let page = unescape(&resp.text().await.unwrap());
    assert!(page.contains("Cơ sở dữ liệu không xác nhận thông tin bạn đã khai"), "{page}");
    assert_eq!(level(&server, "hoa.pham").await, 2);
    let events = audit_kinds(&server).await;
    assert!(events.iter().any(|(k, d)| k == "proofing.failed" && d["reason"] == "no_match"));

    // Not an oracle: after five answers without a match in a day, the method waits.
    for _ in 0..4 {
        assert_eq!(ask_registry(&server, &http).await.status(), 422);
    }
    let resp = ask_registry(&server, &http).await;
    assert_eq!(resp.status(), 429);
    assert!(unescape(&resp.text().await.unwrap()).contains("quá nhiều lần"));
    assert_eq!(seen.lock().unwrap().len(), 5, "the registry is not asked while locked");
    assert_eq!(level(&server, "hoa.pham").await, 2);
}

#[tokio::test]
async fn a_slow_or_broken_registry_is_unavailable_and_changes_nothing() {
    // Slower than the timeout.
    let (url, seen) = fake_registry(json!({"result": "match", "reference": "late"}), Duration::from_secs(3), 200).await;
    let (server, http, _dir) = with_registry(&url, "300").await;
    let started = std::time::Instant::now();
    let resp = ask_registry(&server, &http).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout is kept");
    assert_eq!(resp.status(), 503);
    let page = unescape(&resp.text().await.unwrap());
    assert!(page.contains("Hiện chưa kết nối được tới cơ sở dữ liệu dân cư") && page.contains("thử lại sau"), "{page}");
    assert!(page.contains("href=\"/account/verify\""), "the way back: {page}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(level(&server, "hoa.pham").await, 2);
    let events = audit_kinds(&server).await;
    assert!(events.iter().any(|(k, d)| k == "proofing.failed"
        && d["reason"] == "registry_unavailable"
        && d["registry_error"] == "timeout"));

    // An error status, and an answer that is not the contract: unavailable too.
    for (answer, status) in [(json!({"error": "down"}), 500), (json!({"result": "perhaps"}), 200)] {
        let (url, _) = fake_registry(answer, Duration::ZERO, status).await;
        let (server, http, _dir) = with_registry(&url, "3000").await;
        let resp = ask_registry(&server, &http).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(level(&server, "hoa.pham").await, 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Switched off.

#[tokio::test]
async fn disabled_methods_are_not_offered_and_their_pages_say_so() {
    let pki = pki();
    let server = start(
        Some(&pki),
        &[("XACTHUC_PROOFING__CERTIFICATE__ENABLED", "false"), ("XACTHUC_PROOFING__REVIEW__ENABLED", "false")],
    )
    .await;
    let http = citizen(&server, &HOA).await;
    let (status, hub) = get(&server, &http, "/account/verify").await;
    assert_eq!(status, 200);
    assert!(!hub.contains("href=\"/account/verify/certificate\""), "{hub}");
    assert!(!hub.contains("/account/verify/registry") && !hub.contains("/account/verify/review"), "{hub}");
    assert!(hub.contains("Hiện chưa có cách xác minh trực tuyến nào"), "{hub}");

    let (status, page) = get(&server, &http, "/account/verify/certificate").await;
    assert_eq!(status, 404);
    assert!(page.contains("Cách xác minh này hiện không được cung cấp"), "{page}");
    let resp =
        http.post(server.url("/account/verify/registry")).form(&[("csrf", hidden(&hub, "csrf"))]).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(unescape(&resp.text().await.unwrap()).contains("Cách xác minh này hiện không được cung cấp"));
    assert_eq!(level(&server, "hoa.pham").await, 2);
}
