//! AS-3 by review over HTTP (issue 8): the citizen uploads photos of the ID card at
//! `/account/verify/review`; staff with an MFA session see them at `/staff/reviews` and approve
//! (the citizen is AS-3, the evidence `review` shows on the account page, a message goes to the
//! verified e-mail) or reject with a reason (shown to the citizen, the level stays). Upload
//! limits and type sniffing; CSRF and the console gate; one decision per request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use crate::staff::staff;
use serde_json::Value;
use xacthuc::assurance::AsLevel;
use xacthuc::audit::AuditEvent;
use xacthuc::store::StaffRole;

const EMAIL: &str = "hoa.pham@example.vn";
const AUTHORITY: &str = "Cục Cảnh sát quản lý hành chính về trật tự xã hội";

/// A citizen at AS-2 with a verified e-mail address, signed in with `http`.
async fn citizen(server: &TestServer, http: &reqwest::Client, username: &str, id: &str) -> uuid::Uuid {
    let page = http.get(server.url("/register")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("level", "as2".into()),
        ("username", username.into()),
        ("password", PASSWORD.into()),
        ("password_confirm", PASSWORD.into()),
        ("email", EMAIL.into()),
        ("national_id", id.into()),
        ("full_name", "Phạm Thị Hoa".into()),
        ("birth_date", "1985-11-20".into()),
        ("sex", "female".into()),
        ("r", String::new()),
    ];
    let resp = http.post(server.url("/register")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let account = server.state.store.find_account_by_username(username).await.unwrap().unwrap();
    assert_eq!(account.as_level, AsLevel::As2);
    // The address proven (the contact flow itself is tested in second_factor.rs).
    let audit = AuditEvent::new(xacthuc::app::now(), "contact.verified", "test").account(account.id);
    let store = &server.state.store;
    assert!(store.mark_contact_verified(account.id, "email", EMAIL, xacthuc::app::now(), &audit).await.unwrap());
    account.id
}

/// A JPEG (by its signature) of `size` bytes.
fn jpeg(size: usize) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00];
    b.resize(size, 0x5A);
    b
}

/// A PNG (by its signature) of `size` bytes.
fn png(size: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.resize(size, 0x11);
    b
}

/// One part of a multipart form: (field name, file name, declared type, bytes); a plain field
/// when the file name is empty.
type Part<'a> = (&'a str, &'a str, &'a str, Vec<u8>);

async fn upload(
    server: &TestServer,
    http: &reqwest::Client,
    csrf: Option<&str>,
    parts: Vec<Part<'_>>,
) -> reqwest::Response {
    let boundary = "----xacthuc-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    let mut all = Vec::new();
    if let Some(c) = csrf {
        all.push(("csrf", "", "", c.as_bytes().to_vec()));
    }
    all.extend(parts);
    for (name, filename, content_type, bytes) in all {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if filename.is_empty() {
            body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        } else {
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    http.post(server.url("/account/verify/review"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// GET; the page with `/` unescaped.
async fn get(server: &TestServer, http: &reqwest::Client, path: &str) -> (u16, String) {
    let resp = http.get(server.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap().replace("&#x2f;", "/"))
}

async fn csrf_of(server: &TestServer, http: &reqwest::Client, path: &str) -> String {
    hidden(&get(server, http, path).await.1, "csrf")
}

async fn post(server: &TestServer, http: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http.post(server.url(path)).form(form).send().await.unwrap()
}

/// Sends valid photos (JPEG front, PNG back); returns them.
async fn send_photos(server: &TestServer, http: &reqwest::Client) -> (Vec<u8>, Vec<u8>) {
    let (front, back) = (jpeg(80 * 1024), png(120 * 1024));
    let token = csrf_of(server, http, "/account/verify/review").await;
    let parts = vec![
        ("front", "mat-truoc.jpg", "image/jpeg", front.clone()),
        ("back", "mat-sau.png", "image/png", back.clone()),
    ];
    let resp = upload(server, http, Some(&token), parts).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp), "/account/verify/review?sent=1");
    (front, back)
}

/// The path of the newest pending request in the staff list.
async fn pending_path(server: &TestServer, officer: &reqwest::Client) -> String {
    let (status, list) = get(server, officer, "/staff/reviews").await;
    assert_eq!(status, 200);
    let start = list.find("href=\"/staff/reviews/").unwrap_or_else(|| panic!("no pending request: {list}")) + 6;
    let end = list[start..].find('"').unwrap() + start;
    list[start..end].to_string()
}

async fn audit(server: &TestServer) -> Vec<(String, String, Value)> {
    let events = server.state.store.list_audit(1, 10_000).await.unwrap();
    events
        .into_iter()
        .map(|e| (e.event.kind.clone(), e.event.actor.clone(), serde_json::to_value(&e.event.details).unwrap()))
        .collect()
}

#[tokio::test]
async fn photos_approved_by_staff_raise_the_citizen_to_as3() {
    approve_flow(None).await;
}

#[tokio::test]
async fn photos_approved_by_staff_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        println!("proofing_review: {POSTGRES_ENV} is unset; the PostgreSQL run was skipped");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { approve_flow(Some(&url)).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn approve_flow(database_url: Option<&str>) {
    let server = TestServer::start_with(database_url).await;
    let officer = staff(&server, "canbo.duyet", StaffRole::CounterOfficer).await;
    let http = client();
    let account_id = citizen(&server, &http, "hoa.pham", "001185000777").await;

    // The page states the rules and asks for both sides.
    let (status, page) = get(&server, &http, "/account/verify/review").await;
    assert_eq!(status, 200);
    assert!(page.contains("enctype=\"multipart/form-data\"") && page.contains("50 KB – 1024 KB"), "{page}");
    assert!(page.contains("Mặt trước thẻ") && page.contains("Mặt sau thẻ") && page.contains("0011******77"), "{page}");

    let (front, back) = send_photos(&server, &http).await;
    let (_, page) = get(&server, &http, "/account/verify/review?sent=1").await;
    assert!(page.contains("Đã gửi ảnh") && page.contains("Hồ sơ đang chờ cán bộ duyệt"), "{page}");
    assert!(!page.contains("enctype=\"multipart/form-data\""), "no second upload while one is pending");
    // A second request while one is pending is refused.
    let token = csrf_of(&server, &http, "/account/verify/review").await;
    let parts =
        vec![("front", "a.jpg", "image/jpeg", jpeg(60 * 1024)), ("back", "b.jpg", "image/jpeg", jpeg(60 * 1024))];
    let resp = upload(&server, &http, Some(&token), parts).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("Bạn đã có một hồ sơ đang chờ duyệt"));

    // Stored sealed, not in clear.
    let latest = server.state.store.latest_review_request(account_id).await.unwrap().unwrap();
    let (_, files) = server.state.store.get_review_request(latest.id).await.unwrap().unwrap();
    assert_eq!(files.len(), 2);
    let (_, sealed) = server.state.store.get_review_file(latest.id, files[0].id).await.unwrap().unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains("JFIF"), "sealed with the data key");

    // A password-only staff session sees neither the list nor the photos.
    let (status, page) = get(&server, &officer.weak, "/staff/reviews").await;
    assert_eq!(status, 403);
    assert!(page.contains("phiên đăng nhập đa yếu tố"), "{page}");
    let file_path = format!("/staff/reviews/{}/files/{}", latest.id, files[0].id);
    assert_eq!(get(&server, &officer.weak, &file_path).await.0, 403);
    // Nor does a citizen.
    assert_eq!(get(&server, &http, "/staff/reviews").await.0, 403);
    assert_eq!(get(&server, &http, &file_path).await.0, 403);

    // The console: the count on the home page, the list with the age and the masked number.
    let (_, home) = get(&server, &officer.mfa, "/staff").await;
    assert!(home.contains("Hồ sơ chờ duyệt (1)"), "{home}");
    let (_, list) = get(&server, &officer.mfa, "/staff/reviews").await;
    assert!(list.contains("Phạm Thị Hoa") && list.contains("0011******77") && list.contains("0 phút"), "{list}");
    let path = pending_path(&server, &officer.mfa).await;
    assert_eq!(path, format!("/staff/reviews/{}", latest.id));
    let resp = officer.mfa.get(server.url(&path)).send().await.unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let detail = resp.text().await.unwrap().replace("&#x2f;", "/");
    assert!(detail.contains("20/11/1985") && detail.contains("hoa.pham"), "{detail}");
    assert!(detail.contains(&format!("<img src=\"{file_path}\"")), "{detail}");
    // The photos, decrypted, with the sniffed type, never cached.
    for (f, original) in files.iter().zip([&front, &back]) {
        let resp = officer.mfa.get(server.url(&format!("{path}/files/{}", f.id))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let expected = if f.side == "front" { "image/jpeg" } else { "image/png" };
        assert_eq!(resp.headers()["content-type"], expected);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("inline"));
        assert_eq!(&resp.bytes().await.unwrap().to_vec(), original);
    }
    // Another request's file id does not open through this request.
    let stranger = format!("/staff/reviews/{}/files/{}", uuid::Uuid::now_v7(), files[0].id);
    assert_eq!(get(&server, &officer.mfa, &stranger).await.0, 404);

    // Approving without the CSRF field is refused and changes nothing.
    let form = [("doc_authority", AUTHORITY), ("doc_expiry", "2045-11-20")];
    let resp = post(&server, &officer.mfa, &format!("{path}/approve"), &form).await;
    assert_eq!(resp.status(), 403);
    let resp = post(&server, &officer.mfa, &format!("{path}/reject"), &[("reason", "Ảnh mờ, không đọc được")]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(server.state.store.get_account(account_id).await.unwrap().unwrap().as_level, AsLevel::As2);

    // Approved.
    let token = csrf_of(&server, &officer.mfa, &path).await;
    let form = [("csrf", token.as_str()), ("doc_authority", AUTHORITY), ("doc_expiry", "2045-11-20")];
    let resp = post(&server, &officer.mfa, &format!("{path}/approve"), &form).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp), "/staff/reviews?done=approved");
    let (_, list) = get(&server, &officer.mfa, "/staff/reviews?done=approved").await;
    assert!(list.contains("Đã duyệt hồ sơ") && list.contains("Không có hồ sơ nào chờ duyệt"), "{list}");

    // A second decision on the same request is refused, either way.
    let resp = post(&server, &officer.mfa, &format!("{path}/approve"), &form).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("Hồ sơ này đã được xử lý"));
    let reject = [("csrf", token.as_str()), ("reason", "Ảnh mờ, không đọc được")];
    assert_eq!(post(&server, &officer.mfa, &format!("{path}/reject"), &reject).await.status(), 409);

    // The citizen is AS-3, and the account page says how.
    let account = server.state.store.get_account(account_id).await.unwrap().unwrap();
    assert_eq!(account.as_level, AsLevel::As3);
    let (_, page) = get(&server, &http, "/account").await;
    assert!(page.contains("Mức độ đảm bảo: <strong>AS-3</strong>"), "{page}");
    assert!(page.contains("xác minh qua ảnh giấy tờ ngày") && page.contains("20/11/2045"), "{page}");
    let (_, page) = get(&server, &http, "/account/verify/review").await;
    assert!(page.contains("Hồ sơ đã được duyệt lúc") && page.contains("Tài khoản đã ở mức AS-3"), "{page}");
    let evidence = server.state.store.list_evidence(account_id).await.unwrap();
    let last = evidence.last().unwrap();
    assert_eq!((last.method.as_str(), last.to_level), ("review", AsLevel::As3));
    assert!(last.verifier.starts_with("staff:"));
    assert_eq!(last.documents[0].number_masked, "0011******77");

    // Told by e-mail (the development outbox).
    let outbox = server.state.store.list_outbox(20).await.unwrap();
    assert!(outbox.iter().any(|m| m.recipient == EMAIL && m.subject.contains("đã được duyệt")), "{outbox:?}");

    // Audited: the upload by the citizen, the raise by the staff member, in the same transaction.
    let events = audit(&server).await;
    assert!(events.iter().any(|(k, a, _)| k == "review.submitted" && a == &format!("account:{account_id}")));
    assert!(events.iter().any(|(k, a, d)| k == "account.level_raised"
        && a.starts_with("staff:")
        && d["method"] == "review"
        && d["to"] == 3
        && d["review"] == latest.id.to_string()));
    let viewed: Vec<_> = events.iter().filter(|(k, _, _)| k == "review.file_viewed").collect();
    assert_eq!(viewed.len(), 2, "each photo shown to staff is audited");
}

#[tokio::test]
async fn a_rejection_keeps_the_level_and_tells_the_citizen_why() {
    let server = TestServer::start().await;
    let officer = staff(&server, "canbo.tuchoi", StaffRole::CounterOfficer).await;
    let http = client();
    let account_id = citizen(&server, &http, "hoa.pham", "001185000777").await;
    send_photos(&server, &http).await;
    // The account page says a request is waiting.
    let (_, page) = get(&server, &http, "/account").await;
    assert!(page.contains("id=\"review-status\"") && page.contains("Hồ sơ đang chờ cán bộ duyệt"), "{page}");
    let path = pending_path(&server, &officer.mfa).await;
    let token = csrf_of(&server, &officer.mfa, &path).await;

    // The reason is mandatory.
    let resp =
        post(&server, &officer.mfa, &format!("{path}/reject"), &[("csrf", token.as_str()), ("reason", " ")]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Vui lòng ghi lý do"));
    let reason = "Ảnh mặt trước bị lóa, không đọc được số định danh";
    let resp =
        post(&server, &officer.mfa, &format!("{path}/reject"), &[("csrf", token.as_str()), ("reason", reason)]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/staff/reviews?done=rejected");

    assert_eq!(server.state.store.get_account(account_id).await.unwrap().unwrap().as_level, AsLevel::As2);
    let (_, page) = get(&server, &http, "/account/verify/review").await;
    assert!(page.contains("Hồ sơ không được duyệt lúc") && page.contains(reason), "{page}");
    assert!(page.contains("Gửi lại ảnh thẻ căn cước"), "a new request may be sent: {page}");
    let (_, page) = get(&server, &http, "/account").await;
    assert!(page.contains("Hồ sơ không được duyệt lúc") && page.contains(reason), "and on the account page: {page}");
    let outbox = server.state.store.list_outbox(20).await.unwrap();
    assert!(outbox.iter().any(|m| m.recipient == EMAIL && m.body.contains(reason)), "{outbox:?}");
    let events = audit(&server).await;
    assert!(events.iter().any(|(k, a, d)| k == "review.rejected" && a.starts_with("staff:") && d["reason"] == reason));

    // The citizen sends better photos; a new request is pending.
    send_photos(&server, &http).await;
    let (_, home) = get(&server, &officer.mfa, "/staff").await;
    assert!(home.contains("Hồ sơ chờ duyệt (1)"), "{home}");
}

#[tokio::test]
async fn staff_never_decide_on_their_own_account_or_a_colleagues() {
    let server = TestServer::start().await;
    let officer = staff(&server, "canbo.mot", StaffRole::CounterOfficer).await;
    let colleague = staff(&server, "canbo.hai", StaffRole::CounterOfficer).await;
    let store = &server.state.store;
    let me = store.find_account_by_username("canbo.mot").await.unwrap().unwrap();
    let at = xacthuc::app::now();
    // Staff accounts have no declared identity and cannot upload; a request is planted directly.
    let (_, page) = get(&server, &officer.mfa, "/account/verify/review").await;
    assert!(!page.contains("enctype=\"multipart/form-data\""), "{page}");
    let request = xacthuc::store::ReviewRequest {
        id: uuid::Uuid::now_v7(),
        account_id: me.id,
        status: xacthuc::store::ReviewStatus::Pending,
        created_at: at,
        full_name: "Cán Bộ Một".into(),
        birth_date: "1990-01-01".into(),
        sex: "male".into(),
        national_id_masked: "0010******99".into(),
        national_id_hash: "h".into(),
        decided_by: None,
        decided_at: None,
        reason: None,
    };
    store.create_review_request(&request, &[], &AuditEvent::new(at, "review.submitted", "test")).await.unwrap();
    let path = format!("/staff/reviews/{}", request.id);
    let (_, page) = get(&server, &officer.mfa, &path).await;
    assert!(page.contains("Cán bộ không được thay đổi tài khoản của chính mình"), "{page}");
    let (_, page) = get(&server, &colleague.mfa, &path).await;
    assert!(page.contains("Tài khoản cán bộ chỉ do quản trị hệ thống thay đổi"), "{page}");
    for (who, reason) in [(&officer, "Tự duyệt cho mình"), (&colleague, "Duyệt cho đồng nghiệp")] {
        let token = csrf_of(&server, &who.mfa, &path).await;
        let form = [("csrf", token.as_str()), ("doc_authority", AUTHORITY), ("reason", reason)];
        assert_eq!(post(&server, &who.mfa, &format!("{path}/approve"), &form).await.status(), 403);
        assert_eq!(post(&server, &who.mfa, &format!("{path}/reject"), &form).await.status(), 403);
    }
    assert_eq!(
        store.get_review_request(request.id).await.unwrap().unwrap().0.status,
        xacthuc::store::ReviewStatus::Pending
    );
    assert_eq!(store.get_account(me.id).await.unwrap().unwrap().as_level, AsLevel::As1);
}

#[tokio::test]
async fn uploads_too_small_too_large_or_not_images_are_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let http = client();
    let account_id = citizen(&server, &http, "hoa.pham", "001185000777").await;
    let token = csrf_of(&server, &http, "/account/verify/review").await;
    let good_back = || ("back", "mat-sau.png", "image/png", png(100 * 1024));

    let cases: Vec<(Vec<Part>, &str)> = vec![
        (vec![("front", "nho.jpg", "image/jpeg", jpeg(10 * 1024)), good_back()], "Ảnh mặt trước quá nhỏ (dưới 50 KB)"),
        (
            vec![("front", "lon.jpg", "image/jpeg", jpeg(1024 * 1024 + 1)), good_back()],
            "Ảnh mặt trước quá lớn (trên 1024 KB)",
        ),
        (
            vec![("front", "the.jpg", "image/jpeg", "Đây không phải ảnh. ".repeat(6000).into_bytes()), good_back()],
            "Tệp mặt trước không phải ảnh JPEG, PNG hay tệp PDF",
        ),
        (vec![("front", "mat-truoc.jpg", "image/jpeg", jpeg(80 * 1024))], "Vui lòng chọn ảnh mặt sau của thẻ"),
    ];
    for (parts, message) in cases {
        let resp = upload(&server, &http, Some(&token), parts).await;
        assert_eq!(resp.status(), 400);
        let page = resp.text().await.unwrap();
        assert!(page.contains(message), "{message}: {page}");
        assert!(page.contains("aria-invalid=\"true\""), "the field is marked");
    }
    // Over the request's own limit: refused before anything is read into a request.
    let parts = vec![
        ("front", "a.jpg", "image/jpeg", jpeg(1024 * 1024)),
        ("back", "b.jpg", "image/jpeg", jpeg(1024 * 1024)),
        ("extra", "c.jpg", "image/jpeg", jpeg(1024 * 1024)),
    ];
    let resp = upload(&server, &http, Some(&token), parts).await;
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.unwrap().contains("Các tệp gửi lên quá lớn"));
    // Without the CSRF field.
    let parts = vec![("front", "a.jpg", "image/jpeg", jpeg(60 * 1024)), good_back()];
    assert_eq!(upload(&server, &http, None, parts).await.status(), 403);
    // Not a multipart body at all.
    let resp = post(&server, &http, "/account/verify/review", &[("csrf", token.as_str())]).await;
    assert_eq!(resp.status(), 400);

    assert!(server.state.store.latest_review_request(account_id).await.unwrap().is_none(), "nothing stored");
    assert!(!audit(&server).await.iter().any(|(k, _, _)| k == "review.submitted"));
    // Signed out: to the sign-in page.
    let resp = client().get(server.url("/account/verify/review")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
}
