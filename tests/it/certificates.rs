//! Digital-certificate sign-in and signing (issue 6): a test PKI built with rcgen (a root and
//! issuing CA per profile, citizens' certificates with `UID=CCCD:…`), signatures made by an
//! independent signer (`openssl dgst` / `openssl cms -sign`) or by the `xacthuc sign` binary,
//! and the gateway spoken to over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, CrlDistributionPoint,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SerialNumber,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use xacthuc::app::{AppState, now};
use xacthuc::certs::ChallengePurpose;
use xacthuc::config::Config;
use xacthuc::service::certificates::{self as certsvc, CertServiceError};

const CB: &str = "https://portal.example.vn/cb";
const PORTAL_SECRET: &str = "portal-secret-0123456789abcdefghijklmnop";
const UID: [u64; 7] = [0, 9, 2342, 19200300, 100, 1, 1];

// ---------------------------------------------------------------------------------------------
// The test PKI.

type Ca = CertifiedIssuer<'static, KeyPair>;

fn name(cn: &str, uids: &[&str]) -> DistinguishedName {
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
    p.distinguished_name = name(cn, &[]);
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

/// A citizen's certificate and key, with the files openssl needs.
struct Leaf {
    der: Vec<u8>,
    cert_pem: PathBuf,
    key_pem: PathBuf,
    rsa: bool,
}

struct LeafSpec<'a> {
    cn: &'a str,
    uids: &'a [&'a str],
    rsa: bool,
    serial: u64,
    expired: bool,
    key_usages: Vec<KeyUsagePurpose>,
    crl_url: Option<String>,
}

impl<'a> LeafSpec<'a> {
    fn new(cn: &'a str, uids: &'a [&'a str], serial: u64) -> Self {
        LeafSpec {
            cn,
            uids,
            rsa: false,
            serial,
            expired: false,
            key_usages: vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment],
            crl_url: None,
        }
    }
}

fn leaf(dir: &Path, issuer: &Ca, spec: LeafSpec<'_>) -> Leaf {
    let key = if spec.rsa {
        xacthuc::cli::certs::rsa_key().unwrap()
    } else {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = name(spec.cn, spec.uids);
    p.serial_number = Some(SerialNumber::from(spec.serial));
    p.key_usages = spec.key_usages;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let t = now();
    let (from, to) = if spec.expired { (t - 400 * 86_400, t - 86_400) } else { (t - 86_400, t + 365 * 86_400) };
    p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
    if let Some(url) = spec.crl_url {
        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![url] }];
    }
    let cert = p.signed_by(&key, issuer).unwrap();
    let cert_pem = dir.join(format!("leaf-{}.pem", spec.serial));
    let key_pem = dir.join(format!("leaf-{}.key", spec.serial));
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    Leaf { der: cert.der().to_vec(), cert_pem, key_pem, rsa: spec.rsa }
}

/// An RSA certificate issued by openssl (`req` + `x509 -req`) with several UIDs in its subject
/// (rcgen keeps one value per attribute type).
fn openssl_leaf(pki: &Pki, cn: &str, uids: &[&str], serial: u64) -> Leaf {
    let d = &pki.dir;
    let key_pem = d.join(format!("leaf-{serial}.key"));
    let csr = d.join(format!("leaf-{serial}.csr"));
    let cert_pem = d.join(format!("leaf-{serial}.pem"));
    let ca_key = d.join("ca.key");
    std::fs::write(&ca_key, pki.ca.key().serialize_pem()).unwrap();
    let ext = d.join("leaf.ext");
    std::fs::write(
        &ext,
        "keyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=clientAuth,emailProtection\n",
    )
    .unwrap();
    let mut subject = format!("/C=VN/CN={cn}");
    for u in uids {
        subject.push_str(&format!("/UID={u}"));
    }
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key_pem.to_str().unwrap()]);
    openssl(&[
        "req",
        "-new",
        "-utf8",
        "-key",
        key_pem.to_str().unwrap(),
        "-subj",
        &subject,
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        pki.ca_pem.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        &serial.to_string(),
        "-days",
        "365",
        "-sha256",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        cert_pem.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(&cert_pem).unwrap();
    let der = xacthuc::certs::pem_blocks(&pem, &["CERTIFICATE"]).remove(0);
    Leaf { der, cert_pem, key_pem, rsa: true }
}

fn crl(issuer: &Ca, revoked: &[u64], next_update_in: i64) -> Vec<u8> {
    let t = now();
    CertificateRevocationListParams {
        this_update: time::OffsetDateTime::from_unix_timestamp(t - 60).unwrap(),
        next_update: time::OffsetDateTime::from_unix_timestamp(t + next_update_in).unwrap(),
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

/// Two profiles: `public` (a national root and a licensed CA) and `government`; only
/// `public` is accepted by the test gateway. The public CA's CRL revokes serial 666.
struct Pki {
    _files: tempfile::TempDir,
    dir: PathBuf,
    trust: PathBuf,
    ca: Ca,
    ca_pem: PathBuf,
    gov_ca: Ca,
    foreign_ca: Ca,
}

const REVOKED_SERIAL: u64 = 666;

fn pki() -> Pki {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().to_path_buf();
    let root = ca("Vietnam National Root CA (test)", None);
    let ca_ = ca("VNPT-CA SHA2 (test)", Some(&root));
    let gov_root = ca("Cơ quan chứng thực Chính phủ (test)", None);
    let gov_ca = ca("Ban Cơ yếu Chính phủ CA (test)", Some(&gov_root));
    let foreign_root = ca("Unknown Root", None);
    let foreign_ca = ca("Unknown CA", Some(&foreign_root));
    let trust = dir.join("trust");
    for d in ["profiles/public", "profiles/government", "intermediates", "crl"] {
        std::fs::create_dir_all(trust.join(d)).unwrap();
    }
    std::fs::write(trust.join("profiles/public/root.pem"), root.pem()).unwrap();
    std::fs::write(trust.join("profiles/government/root.pem"), gov_root.pem()).unwrap();
    // Intermediates both in the store and, for CMS, sent along by the signer.
    std::fs::write(trust.join("intermediates/cas.pem"), format!("{}{}", ca_.pem(), gov_ca.pem())).unwrap();
    std::fs::write(trust.join("crl/vnpt.crl"), crl(&ca_, &[REVOKED_SERIAL], 7 * 86_400)).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca_.pem()).unwrap();
    Pki { _files: files, dir, trust, ca: ca_, ca_pem, gov_ca, foreign_ca }
}

// ---------------------------------------------------------------------------------------------
// Signers.

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl is needed as the independent signer");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[derive(Clone, Copy, Debug)]
enum Alg {
    Rs256,
    Ps256,
    Es256,
}

/// A signature package whose signature openssl made over `bytes`.
fn package(leaf: &Leaf, alg: Alg, bytes: &[u8], extra: &[&[u8]]) -> String {
    let data = leaf.key_pem.with_extension("data");
    let sig = leaf.key_pem.with_extension("sig");
    std::fs::write(&data, bytes).unwrap();
    let (key, data_s, sig_s) = (leaf.key_pem.to_str().unwrap(), data.to_str().unwrap(), sig.to_str().unwrap());
    match alg {
        Alg::Ps256 => openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            key,
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-out",
            sig_s,
            data_s,
        ]),
        Alg::Rs256 | Alg::Es256 => openssl(&["dgst", "-sha256", "-sign", key, "-out", sig_s, data_s]),
    }
    let name = match alg {
        Alg::Rs256 => "RS256",
        Alg::Ps256 => "PS256",
        Alg::Es256 => "ES256",
    };
    let mut certificates = vec![STANDARD.encode(&leaf.der)];
    certificates.extend(extra.iter().map(|c| STANDARD.encode(c)));
    json!({
        "format": "xacthuc-signature/1",
        "algorithm": name,
        "signature": STANDARD.encode(std::fs::read(&sig).unwrap()),
        "certificates": certificates,
    })
    .to_string()
}

/// A detached CMS signature (PEM) that `openssl cms -sign -binary` made over `bytes`.
fn cms(leaf: &Leaf, ca_pem: &Path, bytes: &[u8]) -> String {
    cms_with(leaf, ca_pem, bytes, &[])
}

fn cms_with(leaf: &Leaf, ca_pem: &Path, bytes: &[u8], options: &[&str]) -> String {
    let data = leaf.key_pem.with_extension("cmsdata");
    let out = leaf.key_pem.with_extension("p7s");
    std::fs::write(&data, bytes).unwrap();
    let (data, out_s) = (data.to_str().unwrap().to_string(), out.to_str().unwrap().to_string());
    let mut args = vec!["cms", "-sign", "-binary", "-md", "sha256", "-in", &data];
    args.extend(["-signer", leaf.cert_pem.to_str().unwrap(), "-inkey", leaf.key_pem.to_str().unwrap()]);
    args.extend(["-certfile", ca_pem.to_str().unwrap(), "-outform", "PEM", "-out", &out_s]);
    args.extend(options);
    openssl(&args);
    std::fs::read_to_string(&out).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The gateway.

struct Gateway {
    base: String,
    state: AppState,
    _dir: Arc<tempfile::TempDir>,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn gateway(trust: &Path, tweak: impl FnOnce(&mut Config)) -> Gateway {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut config = test_config(dir.path(), &base, None);
    config.certificates.trust_dir = trust.to_path_buf();
    config.certificates.default_profiles = vec!["public".into()];
    tweak(&mut config);
    let state = xacthuc::app::build_state(config, now()).await.unwrap();
    let app = xacthuc::app::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let new = xacthuc::service::clients::NewClient {
        id: "portal".into(),
        name: "Cổng portal".into(),
        redirect_uris: vec![CB.into()],
        secret: Some(PORTAL_SECRET.into()),
        alg: "ES256".parse().unwrap(),
        settings: Default::default(),
    };
    xacthuc::service::clients::add_client(state.store.as_ref(), &new, "test", now()).await.unwrap();
    Gateway { base, state, _dir: dir }
}

/// A signing page: (challenge id, exact challenge bytes from the download link, page).
async fn challenge_page(gw: &Gateway, http: &reqwest::Client, url: &str) -> (String, Vec<u8>, String) {
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let page = unescape(&resp.text().await.unwrap());
    let _ = gw;
    assert!(page.contains("download=\"challenge.json\""), "a download link");
    assert!(page.contains("/static/certificate.js"), "the copy/file script");
    let marker = "data:application/json;charset=utf-8;base64,";
    let start = page.find(marker).unwrap() + marker.len();
    let end = start + page[start..].find('"').unwrap();
    let bytes = STANDARD.decode(&page[start..end]).unwrap();
    (hidden(&page, "challenge"), bytes, page)
}

async fn post_signed(
    gw: &Gateway,
    http: &reqwest::Client,
    action: &str,
    page: &str,
    challenge: &str,
    response: &str,
) -> reqwest::Response {
    http.post(gw.url(action))
        .form(&[
            ("csrf", hidden(page, "csrf")),
            ("r", hidden(page, "r")),
            ("challenge", challenge.to_string()),
            ("response", response.to_string()),
        ])
        .send()
        .await
        .unwrap()
}

async fn token_claims(gw: &Gateway, code: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(gw.url("/token"))
        .basic_auth("portal", Some(PORTAL_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn follow_to_code(gw: &Gateway, http: &reqwest::Client, resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "refused: {}", resp.text().await.unwrap_or_default());
    let mut url = absolute(&gw.base, &location(&resp));
    for _ in 0..6 {
        if url.starts_with(CB) {
            return query_param(&url, "code").unwrap();
        }
        let resp = http.get(&url).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{url}: {}", resp.status());
        url = absolute(&gw.base, &location(&resp));
    }
    panic!("no code: {url}");
}

fn authorize_url(gw: &Gateway, acr: Option<&str>) -> String {
    let mut url = url::Url::parse(&gw.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
    ]);
    if let Some(acr) = acr {
        url.query_pairs_mut().append_pair("acr_values", acr);
    }
    url.to_string()
}

async fn audit(gw: &Gateway, kind: &str) -> Vec<xacthuc::audit::AuditEvent> {
    gw.state
        .store
        .list_audit(1, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.kind == kind)
        .collect()
}

const BINH_CCCD: &str = "079190012346";

async fn register_binh(gw: &Gateway, http: &reqwest::Client) {
    let page = http.get(gw.url("/register")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("username", "binh".into()),
        ("password", PASSWORD.into()),
        ("password_confirm", PASSWORD.into()),
        ("r", String::new()),
        ("level", "as2".into()),
        ("national_id", BINH_CCCD.into()),
        ("full_name", "Trần Thị Bình".into()),
        ("birth_date", "1990-03-02".into()),
        ("sex", "female".into()),
    ];
    let resp = http.post(gw.url("/register")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303, "registered");
}

/// Enrols `response_for(bytes)` on the signed-in account; returns the response.
async fn enrol(gw: &Gateway, http: &reqwest::Client, sign: impl Fn(&[u8]) -> String) -> reqwest::Response {
    let (id, bytes, page) = challenge_page(gw, http, &gw.url("/account/certificates/new")).await;
    let view: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((view["purpose"].as_str(), view["origin"].as_str()), (Some("enrol"), Some(gw.base.as_str())));
    post_signed(gw, http, "/account/certificates", &page, &id, &sign(&bytes)).await
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Enrolment on the account page, then password + a CMS signature at a portal asking for
/// `2fa`: the ID token says `…:2fa` with `x509` in `amr`, and the audit log holds the evidence.
#[tokio::test]
async fn password_then_certificate_signature_reaches_2fa() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    let binh = openssl_leaf(&pki, "TRẦN THỊ BÌNH", &["CCCD:079190012346", "CMND:025123456", "MST:8001234567-001"], 101);
    let http = client();
    register_binh(&gw, &http).await;
    let account_page = http.get(gw.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account_page.contains("/account/certificates/new"), "the account page offers to add a certificate");

    let resp = enrol(&gw, &http, |b| package(&binh, Alg::Rs256, b, &[])).await;
    assert_eq!(resp.status(), 303, "enrolled: {}", resp.text().await.unwrap_or_default());
    let account_page = http.get(gw.url("/account")).send().await.unwrap().text().await.unwrap();
    for shown in [
        "TRẦN THỊ BÌNH",
        "VNPT-CA SHA2 (test)",
        "079190012346",
        "025123456",
        "8001234567-001",
        "Mã số thuế",
        "Số chứng minh nhân dân",
    ] {
        assert!(account_page.contains(shown), "account page shows {shown}: {account_page}");
    }
    // The same certificate again is refused.
    let again = enrol(&gw, &http, |b| package(&binh, Alg::Rs256, b, &[])).await;
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("Chứng thư số này đã được đăng ký."));

    // A portal asking for 2fa: password, then the certificate.
    let browser = client();
    let resp = browser.get(authorize_url(&gw, Some("urn:xacthuc:loa:as2:2fa"))).send().await.unwrap();
    let login = absolute(&gw.base, &location(&resp));
    let page = browser.get(&login).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Đăng nhập bằng chữ ký số"), "the sign-in page links to certificate sign-in");
    let resp = browser
        .post(gw.url("/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("username", "binh".into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    let resume = absolute(&gw.base, &location(&resp));
    let second = absolute(&gw.base, &location(&browser.get(&resume).send().await.unwrap()));
    assert!(second.contains("/login/second?r="), "{second}");
    let step = browser.get(&second).send().await.unwrap().text().await.unwrap();
    assert!(step.contains("/login/second/certificate?r="), "the second step offers the certificate");
    let r = hidden(&step, "r");
    let (id, bytes, page) = challenge_page(&gw, &browser, &gw.url(&format!("/login/second/certificate?r={r}"))).await;
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["purpose"], "second-factor");
    let signature = cms(&binh, &pki.ca_pem, &bytes);
    let resp = post_signed(&gw, &browser, "/login/second/certificate", &page, &id, &signature).await;
    let code = follow_to_code(&gw, &browser, resp).await;
    let claims = token_claims(&gw, &code).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as2:2fa");
    assert_eq!(claims["amr"], json!(["pwd", "x509", "mfa"]));

    // Evidence: the exact challenge, the sealed response, fingerprint, issuer, serial, revocation.
    let fingerprint = xacthuc::certs::verify::fingerprint(&binh.der);
    let evidence = audit(&gw, "certificate.signature_verified").await;
    let e = evidence.iter().find(|e| e.details["purpose"] == "second-factor").expect("evidence recorded");
    assert_eq!(e.details["challenge"], String::from_utf8(bytes.clone()).unwrap());
    assert_eq!(e.details["fingerprint"], fingerprint);
    assert_eq!(e.details["serial"], "65");
    assert!(e.details["issuer"].as_str().unwrap().contains("VNPT-CA SHA2 (test)"));
    assert_eq!(e.details["revocation"], "good", "the CRL in certs/crl/ was consulted");
    assert_eq!(e.details["algorithm"], "CMS/RS256");
    let digest = e.details["challenge_sha256"].as_str().unwrap();
    let sealed = e.details["response_sealed"].as_str().unwrap();
    let opened = gw.state.data_key.decrypt(sealed, certsvc::evidence_aad(digest).as_bytes()).unwrap();
    assert_eq!(String::from_utf8(opened).unwrap(), signature, "the signature as submitted can be recovered");
    assert!(!serde_json::to_string(&e.details).unwrap().contains(BINH_CCCD), "no ID number in clear in the audit log");
    let step_events = audit(&gw, "login.second_factor").await;
    assert!(step_events.iter().any(|s| s.details["fingerprint"] == fingerprint && s.details["amr"] == json!(["x509"])));
}

/// A certificate alone signs in with one factor: enrolled, or naming a verified (AS-3) ID
/// number; a number merely declared is not enough.
#[tokio::test]
async fn certificate_alone_signs_in_with_one_factor() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    let binh = leaf(&pki.dir, &pki.ca, LeafSpec::new("TRẦN THỊ BÌNH", &["CCCD:079190012346"], 201));
    register_binh(&gw, &client()).await;

    let browser = client();
    let resp = browser.get(authorize_url(&gw, None)).send().await.unwrap();
    let login = absolute(&gw.base, &location(&resp));
    let r = query_param(&login, "r").unwrap();
    let url = gw.url(&format!("/login/certificate?r={}", urlencode(&r)));
    let (id, bytes, page) = challenge_page(&gw, &browser, &url).await;
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["purpose"], "sign-in");
    let resp =
        post_signed(&gw, &browser, "/login/certificate", &page, &id, &package(&binh, Alg::Es256, &bytes, &[])).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("Không có tài khoản nào dùng chứng thư số này."), "declared ID only");

    // Verified identity (AS-3): the CCCD in the certificate now identifies the account.
    let account = gw.state.store.find_account_by_username("binh").await.unwrap().unwrap();
    let identity = account.identity.clone().unwrap();
    let verified = xacthuc::audit::AuditEvent::new(now(), "account.identity_verified", "test").account(account.id);
    gw.state
        .store
        .update_identity(account.id, &identity, xacthuc::assurance::AsLevel::As3, now(), &verified)
        .await
        .unwrap();
    let (id, bytes, page) = challenge_page(&gw, &browser, &url).await;
    let resp =
        post_signed(&gw, &browser, "/login/certificate", &page, &id, &package(&binh, Alg::Es256, &bytes, &[])).await;
    let code = follow_to_code(&gw, &browser, resp).await;
    let claims = token_claims(&gw, &code).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as3:1fa");
    assert_eq!(claims["amr"], json!(["x509"]));
    let logins = audit(&gw, "login.succeeded").await;
    assert!(logins.iter().any(|e| e.details["amr"] == json!(["x509"]) && e.account_id == Some(account.id)));
}

/// Every refusal has its own message, and is in the audit log with its reason.
#[tokio::test]
async fn refused_signatures_say_why() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    let good = leaf(&pki.dir, &pki.ca, LeafSpec::new("LÊ VĂN CƯỜNG", &["CCCD:001085004321"], 301));
    let foreign = leaf(&pki.dir, &pki.foreign_ca, LeafSpec::new("LÊ VĂN CƯỜNG", &["CCCD:001085004321"], 302));
    let gov = leaf(&pki.dir, &pki.gov_ca, LeafSpec::new("CÁN BỘ", &["CCCD:001085004322"], 303));
    let expired = leaf(&pki.dir, &pki.ca, LeafSpec { expired: true, ..LeafSpec::new("LÊ VĂN CƯỜNG", &[], 304) });
    let revoked = leaf(&pki.dir, &pki.ca, LeafSpec::new("LÊ VĂN CƯỜNG", &[], REVOKED_SERIAL));
    let encipher_only = leaf(
        &pki.dir,
        &pki.ca,
        LeafSpec { key_usages: vec![KeyUsagePurpose::KeyEncipherment], ..LeafSpec::new("X", &[], 305) },
    );
    let browser = client();
    let url = gw.url("/login/certificate");

    async fn attempt(
        gw: &Gateway,
        browser: &reqwest::Client,
        url: &str,
        sign: impl Fn(&[u8]) -> String,
    ) -> (u16, String) {
        let (id, bytes, page) = challenge_page(gw, browser, url).await;
        let resp = post_signed(gw, browser, "/login/certificate", &page, &id, &sign(&bytes)).await;
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    type Signer<'a> = Box<dyn Fn(&[u8]) -> String + 'a>;
    let cases: Vec<(&str, Signer<'_>, &str, &str)> = vec![
        (
            "unknown CA",
            Box::new(|b| package(&foreign, Alg::Es256, b, &[])),
            "không do tổ chức cung cấp dịch vụ chứng thực chữ ký số được tin cậy cấp",
            "untrusted",
        ),
        (
            "another profile",
            Box::new(|b| package(&gov, Alg::Es256, b, &[pki.gov_ca.der().as_ref()])),
            "không do tổ chức cung cấp dịch vụ chứng thực chữ ký số được tin cậy cấp",
            "untrusted",
        ),
        ("expired", Box::new(|b| package(&expired, Alg::Es256, b, &[])), "Chứng thư số đã hết hạn.", "expired"),
        ("revoked", Box::new(|b| package(&revoked, Alg::Es256, b, &[])), "Chứng thư số đã bị thu hồi.", "revoked"),
        (
            "key usage",
            Box::new(|b| package(&encipher_only, Alg::Es256, b, &[])),
            "không được phép dùng để ký số",
            "key_usage",
        ),
        (
            "tampered bytes",
            Box::new(|b| {
                let tampered = String::from_utf8(b.to_vec()).unwrap().replace("sign-in", "sign-In");
                package(&good, Alg::Es256, tampered.as_bytes(), &[])
            }),
            "Chữ ký không khớp với chuỗi cần ký.",
            "wrong_signature",
        ),
        (
            "another key",
            Box::new(|b| {
                let mut p: Value = serde_json::from_str(&package(&foreign, Alg::Es256, b, &[])).unwrap();
                p["certificates"] = json!([STANDARD.encode(&good.der)]);
                p.to_string()
            }),
            "Chữ ký không khớp với chuỗi cần ký.",
            "wrong_signature",
        ),
        (
            "not a signature",
            Box::new(|_| "xin chào".to_string()),
            "không phải gói chữ ký hay chữ ký CMS hợp lệ",
            "malformed",
        ),
    ];
    for (what, sign, message, reason) in &cases {
        let (status, page) = attempt(&gw, &browser, &url, sign).await;
        assert!(status == 401 || status == 400, "{what}: {status}");
        assert!(page.contains(message), "{what}: expected {message:?}");
        let refused = audit(&gw, "certificate.signature_refused").await;
        assert_eq!(refused.last().unwrap().details["reason"], *reason, "{what}");
    }
    // English too.
    let en = client();
    en.get(gw.url("/lang?set=en")).send().await.unwrap();
    let (_, page) = attempt(&gw, &en, &url, &|b: &[u8]| package(&revoked, Alg::Es256, b, &[])).await;
    assert!(page.contains("The certificate has been revoked."), "in English");

    // A challenge is single use: replaying a good signature is refused.
    let (id, bytes, page) = challenge_page(&gw, &browser, &url).await;
    let signed = package(&good, Alg::Es256, &bytes, &[]);
    let first = post_signed(&gw, &browser, "/login/certificate", &page, &id, &signed).await;
    assert!(first.text().await.unwrap().contains("Không có tài khoản nào"), "verified, but nobody's");
    let replay = post_signed(&gw, &browser, "/login/certificate", &page, &id, &signed).await;
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("Chuỗi cần ký không tồn tại hoặc đã được dùng."));
    // An expired challenge is refused.
    let old = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::SignIn, None, now() - 3600).await.unwrap();
    let signed = package(&good, Alg::Es256, old.bytes.as_bytes(), &[]);
    let resp = post_signed(&gw, &browser, "/login/certificate", &page, &old.id, &signed).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("Chuỗi cần ký đã hết hạn."));
    // A challenge for another purpose is refused.
    let other = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::Enrol, None, now()).await.unwrap();
    let signed = package(&good, Alg::Es256, other.bytes.as_bytes(), &[]);
    let resp = post_signed(&gw, &browser, "/login/certificate", &page, &other.id, &signed).await;
    assert!(resp.text().await.unwrap().contains("Chuỗi cần ký này dành cho việc khác."));
}

/// RSA PKCS#1 v1.5 and PSS with SHA-256, ECDSA P-256, and CMS detached signatures, all from
/// openssl; the transaction embedded in a challenge comes back with the verification.
#[tokio::test]
async fn every_supported_signature_verifies() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    let rsa =
        leaf(&pki.dir, &pki.ca, LeafSpec { rsa: true, ..LeafSpec::new("NGUYỄN VĂN BA", &["CCCD:001085004323"], 401) });
    let ec = leaf(&pki.dir, &pki.ca, LeafSpec::new("NGUYỄN VĂN BA", &["CCCD:001085004323"], 402));
    let tx =
        json!([{"type": "payment_initiation", "amount": "1500000", "currency": "VND", "creditor": "Kho bạc Nhà nước"}]);
    for (leaf, how) in
        [(&rsa, "RS256"), (&rsa, "PS256"), (&rsa, "CMS"), (&rsa, "CMS-PSS"), (&ec, "ES256"), (&ec, "CMS")]
    {
        let c = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::Transaction, Some(tx.clone()), now())
            .await
            .unwrap();
        assert!(c.bytes.contains("Kho bạc Nhà nước"), "the transaction is in the signed bytes");
        let response = match how {
            "RS256" => package(leaf, Alg::Rs256, c.bytes.as_bytes(), &[]),
            "PS256" => package(leaf, Alg::Ps256, c.bytes.as_bytes(), &[]),
            "ES256" => package(leaf, Alg::Es256, c.bytes.as_bytes(), &[]),
            "CMS-PSS" => cms_with(
                leaf,
                &pki.ca_pem,
                c.bytes.as_bytes(),
                &["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32", "-keyopt", "rsa_mgf1_md:sha256"],
            ),
            _ => cms(leaf, &pki.ca_pem, c.bytes.as_bytes()),
        };
        let v = certsvc::verify_response(
            &gw.state,
            &c.id,
            response.as_bytes(),
            &[ChallengePurpose::Transaction],
            &["public"],
            now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{how} ({} key): {e}", if leaf.rsa { "RSA" } else { "EC" }));
        assert_eq!(v.transaction, Some(tx.clone()), "{how}");
        assert_eq!(v.fingerprint(), xacthuc::certs::verify::fingerprint(&leaf.der));
        assert_eq!(v.verified.profile, "public");
        assert_eq!(v.verified.certificate.uids, vec!["CCCD:001085004323".to_string()]);
        assert_eq!(v.verified.certificate.subject_cn, "NGUYỄN VĂN BA");
        // PKCS#1 padding presented as PSS (and vice versa) does not verify.
        if how == "RS256" {
            let c =
                certsvc::issue_challenge(&gw.state, None, ChallengePurpose::Transaction, None, now()).await.unwrap();
            let mut p: Value = serde_json::from_str(&package(leaf, Alg::Rs256, c.bytes.as_bytes(), &[])).unwrap();
            p["algorithm"] = json!("PS256");
            let e = certsvc::verify_response(
                &gw.state,
                &c.id,
                p.to_string().as_bytes(),
                &[ChallengePurpose::Transaction],
                &["public"],
                now(),
            )
            .await;
            assert!(matches!(e, Err(CertServiceError::Cert(xacthuc::certs::CertError::WrongSignature))), "{e:?}");
        }
    }
    // A PSS salt ring cannot check (OpenSSL's default, the maximum) is unsupported, not "wrong".
    let c = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::SignIn, None, now()).await.unwrap();
    let response = cms_with(&rsa, &pki.ca_pem, c.bytes.as_bytes(), &["-keyopt", "rsa_padding_mode:pss"]);
    let e = certsvc::verify_response(
        &gw.state,
        &c.id,
        response.as_bytes(),
        &[ChallengePurpose::SignIn],
        &["public"],
        now(),
    )
    .await;
    assert!(matches!(e, Err(CertServiceError::Cert(xacthuc::certs::CertError::UnsupportedAlgorithm(_)))), "{e:?}");
    // A CMS signature over other bytes is refused.
    let c = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::SignIn, None, now()).await.unwrap();
    let response = cms(&ec, &pki.ca_pem, b"{\"something\":\"else\"}");
    let e = certsvc::verify_response(
        &gw.state,
        &c.id,
        response.as_bytes(),
        &[ChallengePurpose::SignIn],
        &["public"],
        now(),
    )
    .await;
    assert!(matches!(e, Err(CertServiceError::Cert(xacthuc::certs::CertError::WrongSignature))), "{e:?}");
}

async fn check(gw: &Gateway, l: &Leaf, issuer: &Ca) -> Result<certsvc::VerifiedCertificate, CertServiceError> {
    let c = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::SignIn, None, now()).await.unwrap();
    let p = package(l, Alg::Es256, c.bytes.as_bytes(), &[issuer.der().as_ref()]);
    certsvc::verify_response(&gw.state, &c.id, p.as_bytes(), &[ChallengePurpose::SignIn], &["public"], now()).await
}

/// CRLs from the certificate's distribution point, fetched over HTTP from a real listener on
/// loopback: a listed certificate is refused, an unlisted one passes, and without a reachable
/// CRL the gateway fails closed.
#[tokio::test]
async fn crl_fetched_from_the_distribution_point() {
    let pki = pki();
    // A second licensed CA with no CRL file: only its distribution point knows.
    let root2 = ca("Vietnam National Root CA G3 (test)", None);
    let ca2 = ca("Viettel-CA (test)", Some(&root2));
    std::fs::write(pki.trust.join("profiles/public/root-g3.pem"), root2.pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let crl_der = crl(&ca2, &[777], 3600);
    let served = (crl_der.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/viettel.crl",
        axum::routing::get(move || {
            let (body, hits) = served.clone();
            async move {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                body
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let cdp = format!("http://127.0.0.1:{port}/viettel.crl");
    let revoked = leaf(&pki.dir, &ca2, LeafSpec { crl_url: Some(cdp.clone()), ..LeafSpec::new("A", &[], 777) });
    let fine = leaf(&pki.dir, &ca2, LeafSpec { crl_url: Some(cdp.clone()), ..LeafSpec::new("B", &[], 778) });
    let unreachable = leaf(
        &pki.dir,
        &ca2,
        LeafSpec { crl_url: Some("http://127.0.0.1:9/none.crl".into()), ..LeafSpec::new("C", &[], 779) },
    );
    let gw = gateway(&pki.trust, |c| {
        c.certificates.fetch_crls = true;
        c.certificates.fail_closed = true;
        c.certificates.fetch_timeout_seconds = 2;
    })
    .await;
    let e = check(&gw, &revoked, &ca2).await;
    assert!(matches!(e, Err(CertServiceError::Cert(xacthuc::certs::CertError::Revoked))), "{e:?}");
    let ok = check(&gw, &fine, &ca2).await.unwrap();
    assert_eq!(ok.verified.revocation, xacthuc::certs::RevocationStatus::Good);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "the CRL was fetched once and cached");
    let e = check(&gw, &unreachable, &ca2).await;
    assert!(
        matches!(e, Err(CertServiceError::Cert(xacthuc::certs::CertError::RevocationUnknown))),
        "fails closed: {e:?}"
    );
    // Not failing closed, the same certificate passes with its status recorded as unknown.
    let open = gateway(&pki.trust, |c| {
        c.certificates.fetch_crls = true;
        c.certificates.fail_closed = false;
        c.certificates.fetch_timeout_seconds = 2;
    })
    .await;
    let c = certsvc::issue_challenge(&open.state, None, ChallengePurpose::SignIn, None, now()).await.unwrap();
    let p = package(&unreachable, Alg::Es256, c.bytes.as_bytes(), &[ca2.der().as_ref()]);
    let v = certsvc::verify_response(&open.state, &c.id, p.as_bytes(), &[ChallengePurpose::SignIn], &["public"], now())
        .await
        .unwrap();
    assert_eq!(v.verified.revocation, xacthuc::certs::RevocationStatus::Unknown);
    let evidence = audit(&open, "certificate.signature_verified").await;
    assert_eq!(evidence.last().unwrap().details["revocation"], "unknown");
}

/// A certificate naming another person's ID number is refused at enrolment and at the
/// second step.
#[tokio::test]
async fn another_persons_certificate_is_refused() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    let other = leaf(&pki.dir, &pki.ca, LeafSpec::new("LÊ VĂN CƯỜNG", &["CCCD:001085004321"], 501));
    let http = client();
    register_binh(&gw, &http).await;
    let resp = enrol(&gw, &http, |b| package(&other, Alg::Es256, b, &[])).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("Chứng thư số này thuộc về người khác, không phải chủ tài khoản."));
    // The second step directly (the account page's session): refused too, and counted.
    let (id, bytes, page) = challenge_page(&gw, &http, &gw.url("/login/second/certificate")).await;
    let resp =
        post_signed(&gw, &http, "/login/second/certificate", &page, &id, &package(&other, Alg::Es256, &bytes, &[]))
            .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("thuộc về người khác"));
    let failed = audit(&gw, "login.second_factor_failed").await;
    assert!(failed.iter().any(|e| e.details["factor"] == "x509"));
    // Removing an enrolled certificate.
    let mine = leaf(&pki.dir, &pki.ca, LeafSpec::new("TRẦN THỊ BÌNH", &["CCCD:079190012346"], 502));
    assert_eq!(enrol(&gw, &http, |b| package(&mine, Alg::Es256, b, &[])).await.status(), 303);
    let account = gw.state.store.find_account_by_username("binh").await.unwrap().unwrap();
    let listed = gw.state.store.list_certificates(account.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    let page = http.get(gw.url("/account")).send().await.unwrap().text().await.unwrap();
    let resp = http
        .post(gw.url(&format!("/account/certificates/{}/remove", listed[0].id)))
        .form(&[("csrf", hidden(&page, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(gw.state.store.list_certificates(account.id).await.unwrap().is_empty());
}

/// Undoes minijinja's HTML escaping (`&#x2f;`, `&amp;` …).
fn unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e < 10);
        let decoded = end.and_then(|e| match &rest[1..e] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            ent if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
            ent if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn xacthuc_bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xacthuc")).args(args).env("XACTHUC_LOG", "warn").output().unwrap()
}

/// `xacthuc sign` with a PKCS#12 file made by openssl: the printed package is accepted.
#[tokio::test]
async fn xacthuc_sign_round_trip() {
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    for (serial, rsa, alg) in [(601, true, "PS256"), (602, true, "RS256"), (603, false, "PS256")] {
        let l =
            leaf(&pki.dir, &pki.ca, LeafSpec { rsa, ..LeafSpec::new("PHẠM THỊ DUNG", &["CCCD:001085004324"], serial) });
        let p12 = pki.dir.join(format!("{serial}.p12"));
        let password = pki.dir.join("pw.txt");
        std::fs::write(&password, "mật khẩu 1234\n").unwrap();
        openssl(&[
            "pkcs12",
            "-export",
            "-inkey",
            l.key_pem.to_str().unwrap(),
            "-in",
            l.cert_pem.to_str().unwrap(),
            "-certfile",
            pki.ca_pem.to_str().unwrap(),
            "-passout",
            "pass:mật khẩu 1234",
            "-out",
            p12.to_str().unwrap(),
        ]);
        let c = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::SignIn, None, now()).await.unwrap();
        let file = pki.dir.join("challenge.json");
        std::fs::write(&file, &c.bytes).unwrap();
        let out = xacthuc_bin(&[
            "sign",
            "--key",
            p12.to_str().unwrap(),
            "--password-file",
            password.to_str().unwrap(),
            "--alg",
            alg,
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&gw.base), "shows which gateway asked");
        let package: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = if rsa { alg } else { "ES256" };
        assert_eq!(package["algorithm"], expected);
        assert_eq!(package["certificates"].as_array().unwrap().len(), 2, "the chain from the PKCS#12 file");
        let v =
            certsvc::verify_response(&gw.state, &c.id, &out.stdout, &[ChallengePurpose::SignIn], &["public"], now())
                .await
                .unwrap_or_else(|e| panic!("{serial}: {e}"));
        assert_eq!(v.verified.algorithm, expected);
    }
    // A wrong password, and a file that is not a challenge, are errors with a message.
    let out = xacthuc_bin(&[
        "sign",
        "--key",
        pki.dir.join("601.p12").to_str().unwrap(),
        pki.dir.join("challenge.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    let out = xacthuc_bin(&["sign", "--key", pki.dir.join("601.p12").to_str().unwrap(), pki.ca_pem.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an xacthuc challenge"));
}

/// `xacthuc certs demo` writes a trust store the gateway loads, and the demo citizen (AS-3,
/// CCCD 001090012345) signs in with its PKCS#12 file through the web page.
#[tokio::test]
async fn certs_demo_trust_store_loads_and_its_keys_sign_in() {
    let out_dir = tempfile::tempdir().unwrap();
    let demo = out_dir.path().join("certs");
    let out = xacthuc_bin(&["certs", "demo", "--out", demo.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = xacthuc_bin(&["certs", "check", demo.to_str().unwrap()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let gw = gateway(&demo, |_| {}).await;
    xacthuc::service::accounts::ensure_demo_citizen(&gw.state, now()).await.unwrap();
    let browser = client();
    let resp = browser.get(authorize_url(&gw, None)).send().await.unwrap();
    let r = query_param(&absolute(&gw.base, &location(&resp)), "r").unwrap();
    let (id, bytes, page) =
        challenge_page(&gw, &browser, &gw.url(&format!("/login/certificate?r={}", urlencode(&r)))).await;
    let file = out_dir.path().join("challenge.json");
    std::fs::write(&file, &bytes).unwrap();
    let citizens = demo.join("citizens");
    let signed = xacthuc_bin(&[
        "sign",
        "--key",
        citizens.join("nguyen-van-an.p12").to_str().unwrap(),
        "--password-file",
        citizens.join("password.txt").to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let resp =
        post_signed(&gw, &browser, "/login/certificate", &page, &id, &String::from_utf8(signed.stdout).unwrap()).await;
    let code = follow_to_code(&gw, &browser, resp).await;
    let claims = token_claims(&gw, &code).await;
    assert_eq!(claims["amr"], json!(["x509"]));
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as3:1fa");

    // The demo's story: password, then the demo certificate as the second step, reaches 2fa.
    let browser = client();
    let resp = browser.get(authorize_url(&gw, Some("urn:xacthuc:loa:as3:2fa"))).send().await.unwrap();
    let login = absolute(&gw.base, &location(&resp));
    let page = browser.get(&login).send().await.unwrap().text().await.unwrap();
    let resp = browser
        .post(gw.url("/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("username", xacthuc::service::accounts::DEMO_CITIZEN.into()),
            ("password", xacthuc::service::accounts::DEMO_CITIZEN_PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    let resume = absolute(&gw.base, &location(&resp));
    let second = absolute(&gw.base, &location(&browser.get(&resume).send().await.unwrap()));
    let r = query_param(&second, "r").expect("the second step");
    let url = gw.url(&format!("/login/second/certificate?r={}", urlencode(&r)));
    let (id, bytes, page) = challenge_page(&gw, &browser, &url).await;
    std::fs::write(&file, &bytes).unwrap();
    let signed = xacthuc_bin(&[
        "sign",
        "--key",
        citizens.join("nguyen-van-an.p12").to_str().unwrap(),
        "--password-file",
        citizens.join("password.txt").to_str().unwrap(),
        "--alg",
        "RS256",
        file.to_str().unwrap(),
    ]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let resp =
        post_signed(&gw, &browser, "/login/second/certificate", &page, &id, &String::from_utf8(signed.stdout).unwrap())
            .await;
    let code = follow_to_code(&gw, &browser, resp).await;
    let claims = token_claims(&gw, &code).await;
    assert_eq!(claims["acr"], "urn:xacthuc:loa:as3:2fa");
    assert_eq!(claims["amr"], json!(["pwd", "x509", "mfa"]));

    // A broken trust store stops start-up with a clear message.
    std::fs::write(
        demo.join("profiles/public/broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let check = xacthuc_bin(&["certs", "check", demo.to_str().unwrap()]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("broken.pem: trust anchor does not parse"));
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), "http://127.0.0.1:1", None);
    config.certificates.trust_dir = demo.clone();
    let err = xacthuc::app::build_state(config, now()).await.err().expect("refused");
    assert!(err.to_string().contains("broken.pem"), "{err}");
}

/// An expired trust anchor stops start-up, naming the file and the date.
#[tokio::test]
async fn an_expired_anchor_is_refused_at_start_up() {
    let files = tempfile::tempdir().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = name("Old Root", &[]);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = time::OffsetDateTime::from_unix_timestamp(now() - 800 * 86_400).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(now() - 86_400).unwrap();
    let old = p.self_signed(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()).unwrap();
    std::fs::create_dir_all(files.path().join("profiles/public")).unwrap();
    std::fs::write(files.path().join("profiles/public/old.pem"), old.pem()).unwrap();
    let problems = xacthuc::certs::TrustStore::load(files.path(), now()).err().expect("refused");
    assert!(problems.iter().any(|p| p.contains("old.pem: trust anchor expired on")), "{problems:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), "http://127.0.0.1:1", None);
    config.certificates.trust_dir = files.path().to_path_buf();
    assert!(xacthuc::app::build_state(config, now()).await.is_err());
}

/// The step-up API (issue 7 builds on it): a transaction challenge issued to the signed-in
/// account, signed, adds `x509` to the session; a challenge issued to someone else does not.
#[tokio::test]
async fn step_up_with_a_transaction_challenge_adds_the_factor() {
    use xacthuc::service::login;
    let pki = pki();
    let gw = gateway(&pki.trust, |_| {}).await;
    register_binh(&gw, &client()).await;
    let account = gw.state.store.find_account_by_username("binh").await.unwrap().unwrap();
    let binh = leaf(&pki.dir, &pki.ca, LeafSpec::new("TRẦN THỊ BÌNH", &["CCCD:079190012346"], 701));
    let (_, session) = login::start_session(&gw.state, &account, login::password_factor(now()), now()).await.unwrap();
    let tx = json!([{"type": "payment_initiation", "amount": "250000", "currency": "VND"}]);
    let c =
        certsvc::issue_challenge(&gw.state, Some(account.id), ChallengePurpose::Transaction, Some(tx.clone()), now())
            .await
            .unwrap();
    let response = package(&binh, Alg::Es256, c.bytes.as_bytes(), &[]);
    let (cookie, v) = certsvc::step_up(
        &gw.state,
        &session,
        &account,
        &c.id,
        response.as_bytes(),
        &[ChallengePurpose::Transaction],
        Some(&tx),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(v.transaction, Some(tx.clone()));
    assert_eq!(v.account_match, certsvc::AccountMatch::NationalId { account_id: account.id, verified: false });
    let hash = xacthuc::crypto::random::hash_token(&cookie);
    let stepped = gw.state.store.find_session(&hash, now()).await.unwrap().expect("the rotated cookie works");
    let amr = xacthuc::assurance::amr(&stepped.factors);
    assert_eq!(amr, vec!["pwd", "x509", "mfa"]);
    // A challenge issued without the account (or to another one) cannot step this session up.
    let other = certsvc::issue_challenge(&gw.state, None, ChallengePurpose::Transaction, None, now()).await.unwrap();
    let response = package(&binh, Alg::Es256, other.bytes.as_bytes(), &[]);
    let e = certsvc::step_up(
        &gw.state,
        &stepped,
        &account,
        &other.id,
        response.as_bytes(),
        &[ChallengePurpose::Transaction],
        None,
        now(),
    )
    .await;
    assert!(matches!(e, Err(CertServiceError::ChallengeUnknown)), "{e:?}");
    // A signature over another transaction does not approve this one (dynamic linking).
    let cheaper = json!([{"type": "payment_initiation", "amount": "1000", "currency": "VND"}]);
    let c = certsvc::issue_challenge(&gw.state, Some(account.id), ChallengePurpose::Transaction, Some(cheaper), now())
        .await
        .unwrap();
    let response = package(&binh, Alg::Es256, c.bytes.as_bytes(), &[]);
    let e = certsvc::step_up(
        &gw.state,
        &stepped,
        &account,
        &c.id,
        response.as_bytes(),
        &[ChallengePurpose::Transaction],
        Some(&tx),
        now(),
    )
    .await;
    assert!(matches!(e, Err(CertServiceError::ChallengeUnknown)), "{e:?}");
}

/// Dynamic linking (issue 7): receiving a result under non-repudiation needs a certificate. The
/// citizen approves the details, the step-up offers only the signature, the challenge signed
/// carries exactly the approved details, a plain second-factor challenge does not count, and
/// the token carries the details.
#[tokio::test]
async fn a_result_receipt_is_signed_over_its_approved_details() {
    let pki = pki();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("ly-lich.toml"),
        r#"
[service.ly-lich]
name = "Cấp phiếu lý lịch tư pháp"
level = 4
clients = ["portal"]
non_repudiation = true
login = { min_as = "as3", mechanism = "1fa" }

[service.ly-lich.actions.submit]
min_as = "as3"
mechanism = "2fa"
require = ["certificate"]
max_age = "10m"

[service.ly-lich.actions.result_receipt]
min_as = "as3"
mechanism = "2fa"
require = ["certificate"]
max_age = "5m"
"#,
    )
    .unwrap();
    let dir = policies.path().to_path_buf();
    let gw = gateway(&pki.trust, move |c| c.policies_dir = dir).await;
    let binh = openssl_leaf(&pki, "TRẦN THỊ BÌNH", &["CCCD:079190012346"], 801);
    let http = client();
    register_binh(&gw, &http).await;
    let account = gw.state.store.find_account_by_username("binh").await.unwrap().unwrap();
    let audit_event = xacthuc::audit::AuditEvent::new(now(), "test.as_level", "test").account(account.id);
    let identity = account.identity.clone().unwrap();
    gw.state
        .store
        .update_identity(account.id, &identity, xacthuc::assurance::AsLevel::As3, now(), &audit_event)
        .await
        .unwrap();

    let details = json!([{"type": "result_receipt", "dossier_id": "000.00.31.H29-261122-0007", "service": "Cấp phiếu lý lịch tư pháp"}]);
    let mut url = url::Url::parse(&authorize_url(&gw, None)).unwrap();
    url.query_pairs_mut().append_pair("authorization_details", &details.to_string());
    let resp = http.get(url.as_str()).send().await.unwrap();
    let approve = absolute(&gw.base, &location(&resp));
    assert!(approve.contains("/authorize/approve?r="), "{approve}");
    let page = unescape(&http.get(&approve).send().await.unwrap().text().await.unwrap());
    assert!(page.contains("000.00.31.H29-261122-0007"));
    let resp = http
        .post(gw.url("/authorize/approve"))
        .form(&[("csrf", hidden(&page, "csrf")), ("r", hidden(&page, "r"))])
        .send()
        .await
        .unwrap();
    let second = absolute(&gw.base, &location(&resp));
    assert!(second.contains("/login/second?r="), "{second}");
    let step = unescape(&http.get(&second).send().await.unwrap().text().await.unwrap());
    assert!(step.contains("/login/second/certificate?r="), "the signature is offered");
    assert!(!step.contains("name=\"method\" value=\"recovery_code\""), "only the required kind is offered");
    let r = query_param(&second, "r").unwrap();
    let sign_url = gw.url(&format!("/login/second/certificate?r={}", urlencode(&r)));

    // The challenge carries the approved details.
    let (id, bytes, page) = challenge_page(&gw, &http, &sign_url).await;
    let view: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(view["purpose"], "transaction");
    assert_eq!(view["transaction"], details);
    // A plain second-factor challenge, though signed by the right person, does not approve it.
    let plain = certsvc::second_step_challenge(&gw.state, &account, now()).await.unwrap();
    let resp = post_signed(
        &gw,
        &http,
        "/login/second/certificate",
        &page,
        &plain.id,
        &package(&binh, Alg::Es256, plain.bytes.as_bytes(), &[]),
    )
    .await;
    assert_eq!(resp.status(), 401);
    // The transaction's own challenge does.
    let resp = post_signed(&gw, &http, "/login/second/certificate", &page, &id, &cms(&binh, &pki.ca_pem, &bytes)).await;
    let code = follow_to_code(&gw, &http, resp).await;
    let body: Value = reqwest::Client::new()
        .post(gw.url("/token"))
        .basic_auth("portal", Some(PORTAL_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["authorization_details"], details);
    let id_token: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(body["id_token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(id_token["acr"], "urn:xacthuc:loa:as3:2fa");
    assert_eq!(id_token["amr"], json!(["pwd", "x509", "mfa"]));
    // The evidence is the signature over the details.
    let evidence = audit(&gw, "certificate.signature_verified").await;
    let e = evidence.iter().find(|e| e.details["purpose"] == "transaction").expect("evidence");
    assert_eq!(e.details["challenge"], String::from_utf8(bytes).unwrap());
}
