//! Registration, sign-in and the pages, as a citizen's browser sees them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;

async fn register_form(server: &TestServer, http: &reqwest::Client, fields: &[(&str, &str)]) -> (u16, String) {
    let page = http.get(server.url("/register")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend_from_slice(fields);
    let resp = http.post(server.url("/register")).form(&form).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn as2<'a>(username: &'a str, id: &'a str, birth: &'a str, sex: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("level", "as2"),
        ("national_id", id),
        ("full_name", "Lê Thị Hồng Nhung"),
        ("birth_date", birth),
        ("sex", sex),
    ]
}

#[tokio::test]
async fn as2_registration_stores_the_id_encrypted_and_shows_it_masked() {
    let server = TestServer::start().await;
    let http = client();
    let (status, _) = register_form(&server, &http, &as2("nhung", "001305012345", "2005-03-09", "female")).await;
    assert_eq!(status, 303);
    let page = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("AS-2"), "{page}");
    assert!(page.contains("0013******45"), "masked number shown: {page}");
    assert!(!page.contains("001305012345"), "number never shown in clear");
    assert!(page.contains("Lê Thị Hồng Nhung"));
    assert!(page.replace("&#x2f;", "/").contains("09/03/2005"), "dates as dd/mm/yyyy");
    assert!(page.contains("chưa được xác minh"), "AS-2 is self-declared, not verified");
    let account = server.state.store.find_account_by_username("nhung").await.unwrap().unwrap();
    let identity = account.identity.unwrap();
    assert!(!identity.national_id_enc.contains("001305012345"));
    assert!(!identity.national_id_hash.contains("001305012345"));
    // Events: the creation is audited, with the number masked.
    let events = server.state.store.list_audit(1, 100).await.unwrap();
    let created = events.iter().find(|e| e.event.kind == "account.created").unwrap();
    assert_eq!(created.event.details["national_id"], "0013******45");
    assert!(xacthuc::audit::verify_chain(&events).is_ok());
}

#[tokio::test]
async fn inconsistent_id_numbers_are_refused_saying_which_part_disagrees() {
    let server = TestServer::start().await;
    let http = client();
    let cases = [
        // (number, birth date, sex, text expected in the page)
        ("087084000999", "1985-05-17", "male", "1984"), // year digits say 1984
        ("087084000999", "1984-05-17", "female", "Nam"), // even sex digit = male
        ("003084000999", "1984-05-17", "male", "003"),  // no province 003
        ("087284000999", "1984-05-17", "male", "2000"), // century digit 2 = 2000s
        ("12345", "1984-05-17", "male", "12"),          // not 12 digits
    ];
    for (number, birth, sex, expect) in cases {
        let (status, page) = register_form(&server, &http, &as2("khang", number, birth, sex)).await;
        assert_eq!(status, 400, "{number} accepted");
        assert!(page.contains("Vui lòng sửa các lỗi"), "{page}");
        assert!(page.contains(expect), "{number}: expected {expect:?} in the message:\n{page}");
        assert!(page.contains("aria-invalid=\"true\""));
    }
    assert!(server.state.store.find_account_by_username("khang").await.unwrap().is_none(), "nothing created");
    // In English too.
    let en = client();
    en.get(server.url("/lang?set=en&next=/register")).send().await.unwrap();
    let (status, page) = register_form(&server, &en, &as2("khang", "087084000999", "1985-05-17", "male")).await;
    assert_eq!(status, 400);
    assert!(page.contains("1984") && page.contains("1985") && page.contains("birth"), "{page}");
}

#[tokio::test]
async fn one_account_per_id_number_and_per_user_name() {
    let server = TestServer::start().await;
    let (status, _) = register_form(&server, &client(), &as2("first", "087084000999", "1984-05-17", "male")).await;
    assert_eq!(status, 303);
    let (status, page) = register_form(&server, &client(), &as2("second", "087084000999", "1984-05-17", "male")).await;
    assert_eq!(status, 400);
    assert!(page.contains("đã được dùng cho một tài khoản khác"), "{page}");
    let (status, page) = register_form(&server, &client(), &as2("FIRST", "020093001656", "1993-01-01", "male")).await;
    assert_eq!(status, 400);
    assert!(page.contains("đã có người sử dụng"), "user names are case-insensitive: {page}");
    assert!(server.state.store.find_account_by_username("second").await.unwrap().is_none());
}

#[tokio::test]
async fn password_rules_follow_nist() {
    let server = TestServer::start().await;
    let http = client();
    for (pw, expect) in [("short", "8"), ("password123", "phổ biến"), ("iloveyou", "phổ biến")] {
        let fields = [("username", "minh"), ("password", pw), ("password_confirm", pw), ("level", "as1")];
        let (status, page) = register_form(&server, &http, &fields).await;
        assert_eq!(status, 400, "{pw}");
        assert!(page.contains(expect), "{pw}: {page}");
    }
    let long = "một câu mật khẩu rất dài không có quy tắc gì đặc biệt cả, hơn sáu mươi tư ký tự là được";
    let fields = [("username", "minh"), ("password", long), ("password_confirm", long), ("level", "as1")];
    let (status, _) = register_form(&server, &http, &fields).await;
    assert_eq!(status, 303, "long passphrases with diacritics are fine");
    // And the account signs in with it.
    let page = client().get(server.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let server = TestServer::start().await;
    let http = client();
    http.get(server.url("/login")).send().await.unwrap();
    for (path, form) in [
        ("/login", vec![("username", "a"), ("password", "b")]),
        (
            "/register",
            vec![("username", "abc"), ("password", PASSWORD), ("password_confirm", PASSWORD), ("level", "as1")],
        ),
        ("/logout", vec![]),
        ("/login", vec![("username", "a"), ("password", "b"), ("csrf", "forged-token")]),
    ] {
        let resp = http.post(server.url(path)).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        assert!(resp.text().await.unwrap().contains("Biểu mẫu đã hết hạn"));
    }
    assert!(server.state.store.find_account_by_username("abc").await.unwrap().is_none());
}

#[tokio::test]
async fn sign_in_sign_out_and_session_cookies() {
    let server = TestServer::start().await;
    let lan = Citizen { username: "lan", password: PASSWORD, identity: None };
    register(&server, &client(), &lan).await;
    let http = client();
    let page = http.get(server.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    // Wrong password and unknown user: the same message.
    for (user, pw) in [("lan", "wrong password here"), ("nobody", PASSWORD)] {
        let resp = http
            .post(server.url("/login"))
            .form(&[("csrf", csrf.as_str()), ("username", user), ("password", pw)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.text().await.unwrap().contains("Tên đăng nhập hoặc mật khẩu không đúng."));
    }
    let failures = server.state.store.list_audit(1, 100).await.unwrap();
    assert_eq!(failures.iter().filter(|e| e.event.kind == "login.failed").count(), 2);
    let resp = http
        .post(server.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "LAN"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account");
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let cookie = cookies.iter().find(|c| c.starts_with("xacthuc_session=")).unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    let account = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("AS-1"));
    let resp = http.post(server.url("/logout")).form(&[("csrf", hidden(&account, "csrf"))]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.get(server.url("/account")).send().await.unwrap();
    assert_eq!(location(&resp), "/login", "signed out");
}

#[tokio::test]
async fn as1_upgrades_to_as2_by_self_declaration() {
    let server = TestServer::start().await;
    let http = client();
    register(&server, &http, &Citizen { username: "tuan", password: PASSWORD, identity: None }).await;
    let page = http.get(server.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Nâng tài khoản lên AS-2"));
    let bad = http
        .post(server.url("/account/identity"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("national_id", "079012345678"),
            ("full_name", "Phạm Anh Tuấn"),
            ("birth_date", "1990-01-01"),
            ("sex", "male"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "079 0 12 … says born 2012");
    let ok = http
        .post(server.url("/account/identity"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("national_id", "079090345678"),
            ("full_name", "Phạm Anh Tuấn"),
            ("birth_date", "1990-01-01"),
            ("sex", "male"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let account = server.state.store.find_account_by_username("tuan").await.unwrap().unwrap();
    assert_eq!(account.as_level, xacthuc::assurance::AsLevel::As2);
    let events = server.state.store.list_audit(1, 100).await.unwrap();
    assert!(events.iter().any(|e| e.event.kind == "account.level_raised" && e.event.details["to"] == 2));
}

#[tokio::test]
async fn language_choice_headers_and_safe_redirects() {
    let server = TestServer::start().await;
    let http = client();
    let vi = http.get(server.url("/login")).send().await.unwrap();
    let csp = vi.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(vi.headers()["x-content-type-options"], "nosniff");
    let vi = vi.text().await.unwrap();
    assert!(vi.contains("<html lang=\"vi\">") && vi.contains("Đăng nhập"));
    // Accept-Language is honoured until the citizen chooses.
    let en = client()
        .get(server.url("/login"))
        .header("accept-language", "en-GB,en;q=0.8")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("<html lang=\"en\">") && en.contains("Sign in"));
    // The switch is remembered and only returns to local paths.
    let resp = http.get(server.url("/lang?set=en&next=//evil.example/x")).send().await.unwrap();
    assert_eq!(location(&resp), "/");
    let resp = http.get(server.url("/lang?set=en&next=/register")).send().await.unwrap();
    assert_eq!(location(&resp), "/register");
    let page = http.get(server.url("/register")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Register an account"));
    let missing = http.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn https_issuer_makes_cookies_secure_and_host_bound() {
    let server = TestServer::start_opts(None, true).await;
    let resp = client().get(server.url("/login")).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-xacthuc_csrf=") && cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(resp.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
    let plain = TestServer::start().await;
    let resp = client().get(plain.url("/login")).send().await.unwrap();
    assert!(!resp.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    assert!(resp.headers().get("strict-transport-security").is_none());
}
