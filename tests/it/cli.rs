//! The operator's command line, run as the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn xacthuc(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xacthuc"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
        .env("XACTHUC_PASSWORD__ITERATIONS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn check_config_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ok = xacthuc(dir.path(), &["check-config"], &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    let bad = xacthuc(
        dir.path(),
        &["check-config", "--listen", "nowhere"],
        &[("XACTHUC_DEVELOPMENT", "false"), ("XACTHUC_TOKENS__CODE_SECONDS", "-5"), ("XACTHUC_ISSUER", "http://plain")],
    );
    assert!(!bad.status.success());
    let out = text(&bad);
    for key in ["listen:", "issuer:", "tokens.code_seconds:", "data_key_file:"] {
        assert!(out.contains(key), "{key} missing from:\n{out}");
    }
    let typo = xacthuc(dir.path(), &["check-config"], &[("XACTHUC_ISUER", "x")]);
    assert!(!typo.status.success() && text(&typo).contains("isuer"), "{}", text(&typo));
}

#[test]
fn clients_and_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let added = xacthuc(
        dir.path(),
        &[
            "client",
            "add",
            "--id",
            "cong-tinh",
            "--redirect-uri",
            "https://dichvucong.example.vn/cb",
            "--alg",
            "ES256",
            "--name",
            "Cổng dịch vụ công tỉnh",
        ],
        &[],
    );
    assert!(added.status.success(), "{}", text(&added));
    let out = text(&added);
    let secret_line = out.lines().find(|l| l.contains("client secret")).expect("secret printed once");
    assert!(secret_line.split_whitespace().last().unwrap().len() >= 32);
    let listed = xacthuc(dir.path(), &["client", "list"], &[]);
    let list = text(&listed);
    assert!(list.contains("cong-tinh") && list.contains("ES256") && list.contains("https://dichvucong.example.vn/cb"));
    assert!(!list.contains(secret_line.split_whitespace().last().unwrap()), "secret never shown again");
    let dup =
        xacthuc(dir.path(), &["client", "add", "--id", "cong-tinh", "--redirect-uri", "https://x.example.vn/cb"], &[]);
    assert!(!dup.status.success());
    let insecure = xacthuc(
        dir.path(),
        &["client", "add", "--id", "x", "--redirect-uri", "http://portal.example.vn/cb", "--public"],
        &[],
    );
    assert!(!insecure.status.success() && text(&insecure).contains("loopback"), "{}", text(&insecure));

    let pw = dir.path().join("pw");
    std::fs::write(&pw, "một mật khẩu đủ dài cho cán bộ\n").unwrap();
    let pw = pw.to_str().unwrap();
    let as2 = xacthuc(
        dir.path(),
        &[
            "account",
            "add",
            "--username",
            "hoa",
            "--password-file",
            pw,
            "--as-level",
            "2",
            "--national-id",
            "001305012345",
            "--full-name",
            "Đỗ Thị Hoa",
            "--birth-date",
            "2005-03-09",
            "--sex",
            "female",
        ],
        &[],
    );
    assert!(as2.status.success(), "{}", text(&as2));
    assert!(text(&as2).contains("AS-2"));
    let wrong = xacthuc(
        dir.path(),
        &[
            "account",
            "add",
            "--username",
            "hoa2",
            "--password-file",
            pw,
            "--as-level",
            "2",
            "--national-id",
            "001305012345",
            "--full-name",
            "Đỗ Thị Hoa",
            "--birth-date",
            "2005-03-09",
            "--sex",
            "male",
        ],
        &[],
    );
    assert!(!wrong.status.success(), "inconsistent sex accepted");
    let missing =
        xacthuc(dir.path(), &["account", "add", "--username", "x1", "--password-file", pw, "--as-level", "2"], &[]);
    assert!(!missing.status.success());
}

#[test]
fn generated_data_key_is_usable() {
    let dir = tempfile::tempdir().unwrap();
    let out = xacthuc(dir.path(), &["keys", "generate-data-key"], &[]);
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let file = dir.path().join("data.key.prod");
    std::fs::write(&file, &key).unwrap();
    let ok = xacthuc(
        dir.path(),
        &["check-config"],
        &[
            ("XACTHUC_DEVELOPMENT", "false"),
            ("XACTHUC_DEMO__ENABLED", "false"),
            ("XACTHUC_ISSUER", "https://id.example.vn"),
            ("XACTHUC_DATA_KEY_FILE", file.to_str().unwrap()),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
}

/// Runs the binary and returns its output, asserting success.
fn cli_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let o = xacthuc(dir, args, &[]);
    assert!(o.status.success(), "{args:?} failed:\n{}", text(&o));
    text(&o)
}

/// Runs the binary, asserting failure with `expect` in the output.
fn cli_fails(dir: &std::path::Path, args: &[&str], expect: &str) {
    let o = xacthuc(dir, args, &[]);
    assert!(
        !o.status.success() && text(&o).contains(expect),
        "{args:?}: expected failure with {expect:?}:\n{}",
        text(&o)
    );
}

fn shown_secret(out: &str) -> Option<String> {
    out.lines().find(|l| l.contains("client secret")).map(|l| l.split_whitespace().last().unwrap().to_string())
}

fn show(dir: &std::path::Path, id: &str) -> (String, serde_json::Value) {
    let out = cli_ok(dir, &["client", "show", id]);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (out, json)
}

#[tokio::test]
async fn clients_are_shown_updated_with_a_new_secret_and_removed() {
    use serde_json::json;
    use xacthuc::crypto::random::hash_token;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    let added = cli_ok(
        d,
        &[
            "client",
            "add",
            "--id",
            "ho-tich",
            "--redirect-uri",
            "https://hotich.example.vn/cb",
            "--alg",
            "RS256",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "client_credentials",
            "--scope",
            "openid",
            "--scope",
            "hotich.read",
            "--access-token-seconds",
            "300",
        ],
    );
    let first = shown_secret(&added).expect("a generated secret is shown at registration");
    let list = cli_ok(d, &["client", "list"]);
    let line = list.lines().find(|l| l.starts_with("ho-tich\t")).unwrap();
    assert_eq!(
        line,
        "ho-tich\tconfidential\tRS256\tauthorization_code,client_credentials\thttps://hotich.example.vn/cb"
    );
    let (out, c) = show(d, "ho-tich");
    assert!(!out.contains(&first) && !out.contains(&hash_token(&first)), "neither the secret nor its hash: {out}");
    assert_eq!((c["has_secret"].clone(), c["settings"]["access_token_seconds"].clone()), (json!(true), json!(300)));

    // Only what is given changes; a repeated flag replaces the list.
    let updated = cli_ok(
        d,
        &[
            "client",
            "update",
            "ho-tich",
            "--name",
            "Hộ tịch",
            "--redirect-uri",
            "https://hotich.example.vn/cb2",
            "--redirect-uri",
            "http://127.0.0.1:8081/cb",
            "--id-token-seconds",
            "900",
            "--access-token-seconds",
            "default",
            "--always-refresh",
            "--require-par",
            "--access-token-format",
            "jwt",
            "--post-logout-redirect-uri",
            "https://hotich.example.vn/bye",
            "--backchannel-logout-uri",
            "https://hotich.example.vn/logout",
        ],
    );
    assert_eq!(shown_secret(&updated), None, "no new secret unless asked");
    let (_, c) = show(d, "ho-tich");
    assert_eq!(c["name"], "Hộ tịch");
    assert_eq!(c["redirect_uris"], json!(["https://hotich.example.vn/cb2", "http://127.0.0.1:8081/cb"]));
    assert_eq!(c["id_token_alg"], "RS256");
    let s = &c["settings"];
    assert_eq!(s["grant_types"], json!(["authorization_code", "client_credentials"]));
    assert_eq!(s["scopes"], json!(["openid", "hotich.read"]));
    assert_eq!((s["id_token_seconds"].clone(), s["access_token_seconds"].clone()), (json!(900), json!(null)));
    assert_eq!((s["always_refresh"].clone(), s["require_par"].clone()), (json!(true), json!(true)));
    assert_eq!(s["access_token_format"], "jwt");
    assert_eq!(s["post_logout_redirect_uris"], json!(["https://hotich.example.vn/bye"]));
    assert_eq!(s["backchannel_logout_uri"], "https://hotich.example.vn/logout");
    cli_ok(d, &["client", "update", "ho-tich", "--always-refresh=false", "--backchannel-logout-uri", ""]);
    let (_, c) = show(d, "ho-tich");
    assert_eq!(
        (c["settings"]["always_refresh"].clone(), c["settings"]["backchannel_logout_uri"].clone()),
        (json!(false), json!(null))
    );

    // Refused updates change nothing.
    cli_fails(d, &["client", "update", "ho-tich", "--id-token-seconds", "0"], "positive");
    cli_fails(d, &["client", "update", "ho-tich", "--redirect-uri", "http://hotich.example.vn/cb"], "loopback");
    cli_fails(d, &["client", "update", "ho-tich", "--redirect-uri", "https://hotich.example.vn/cb#top"], "fragment");
    cli_fails(
        d,
        &["client", "update", "ho-tich", "--token-auth", "none"],
        "public clients cannot use client_credentials",
    );
    cli_fails(d, &["client", "update", "ho-tich", "--post-logout-redirect-uri", "http://x.example.vn/"], "loopback");
    cli_fails(d, &["client", "update", "nobody", "--name", "x"], "no client nobody");
    assert_eq!(show(d, "ho-tich").1["settings"]["id_token_seconds"], 900);

    // A new secret, shown once; the old one stops working.
    let rotated = cli_ok(d, &["client", "update", "ho-tich", "--rotate-secret"]);
    let second = shown_secret(&rotated).expect("the new secret is shown");
    assert_ne!(first, second);
    assert!(!show(d, "ho-tich").0.contains(&second));
    let server = crate::common::TestServer::start_in(dir).await;
    let token = |secret: String| {
        let url = server.url("/token");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .basic_auth("ho-tich", Some(secret))
                .form(&[("grant_type", "client_credentials"), ("scope", "hotich.read")])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = token(first).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) = token(second).await;
    assert_eq!(status, 200, "{body}");
    let at_hash = hash_token(body["access_token"].as_str().unwrap());
    assert!(server.state.store.find_access_token(&at_hash).await.unwrap().is_some());

    // Removal takes everything issued to the client with it.
    let removed = cli_ok(d, &["client", "remove", "ho-tich"]);
    assert!(removed.contains("removed"), "{removed}");
    assert!(server.state.store.find_access_token(&at_hash).await.unwrap().is_none());
    cli_fails(d, &["client", "show", "ho-tich"], "no client ho-tich");
    cli_fails(d, &["client", "remove", "ho-tich"], "no client ho-tich");
    let kinds: Vec<String> =
        server.state.store.list_audit(0, 1000).await.unwrap().into_iter().map(|e| e.event.kind).collect();
    assert!(kinds.contains(&"client.updated".to_string()) && kinds.contains(&"client.removed".to_string()));
}

#[test]
fn private_key_jwt_clients_register_public_keys_only() {
    use xacthuc::crypto::signing::{SigningAlg, SigningKey, generate_pkcs8, jwks};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key =
        SigningKey::from_pkcs8("k1".into(), SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256).unwrap()).unwrap();
    let public = jwks(&[&key]);
    let mut private = public.clone();
    private["keys"][0]["d"] = "c2VjcmV0LXNjYWxhcg".into();
    let file = |name: &str, content: String| {
        let path = d.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = file("good.json", public.to_string());
    let bad_json = file("bad.json", "{\"keys\": [".into());
    let with_d = file("private.json", private.to_string());
    let symmetric = file("oct.json", r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into());
    let no_keys = file("empty.json", r#"{"keys":[]}"#.into());
    let add = ["client", "add", "--id", "portal", "--redirect-uri", "https://portal.example.vn/cb"];
    fn joined<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
        [a, b].concat()
    }
    cli_fails(d, &joined(&add, &["--token-auth", "private_key_jwt"]), "--jwks-file");
    cli_fails(d, &joined(&add, &["--token-auth", "private_key_jwt", "--jwks-file", &bad_json]), "not a JSON document");
    cli_fails(d, &joined(&add, &["--token-auth", "private_key_jwt", "--jwks-file", &with_d]), "private member \"d\"");
    cli_fails(
        d,
        &joined(&add, &["--token-auth", "private_key_jwt", "--jwks-file", &symmetric]),
        "private member \"k\"",
    );
    cli_fails(d, &joined(&add, &["--token-auth", "private_key_jwt", "--jwks-file", &no_keys]), "no keys");
    cli_fails(
        d,
        &joined(&add, &["--public", "--grant-type", "client_credentials"]),
        "public clients cannot use client_credentials",
    );
    let added = cli_ok(d, &joined(&add, &["--token-auth", "private_key_jwt", "--jwks-file", &good]));
    assert_eq!(shown_secret(&added), None, "a private_key_jwt client has no secret");
    let (_, c) = show(d, "portal");
    assert_eq!((c["kind"].as_str(), c["has_secret"].as_bool()), (Some("confidential"), Some(false)));
    assert_eq!(c["settings"]["token_auth_method"], "private_key_jwt");
    assert_eq!(c["settings"]["jwks"], public);
    cli_fails(d, &["client", "update", "portal", "--jwks-file", &with_d], "private member");
    cli_fails(d, &["client", "update", "portal", "--rotate-secret"], "no secret");
    // Moving to client_secret generates the secret it needs, shown once.
    let moved = cli_ok(d, &["client", "update", "portal", "--token-auth", "client_secret"]);
    assert!(shown_secret(&moved).is_some_and(|s| s.len() >= 32), "{moved}");
}

#[test]
fn policy_check_accepts_the_shipped_policies_and_lists_every_floor_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ok = xacthuc(dir.path(), &["policy", "check"], &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("valid") && text(&ok).contains("dang-ky-ho-kinh-doanh"), "{}", text(&ok));

    let bad = xacthuc(dir.path(), &["policy", "check", "policies/examples/invalid"], &[]);
    assert!(!bad.status.success(), "{}", text(&bad));
    let out = text(&bad);
    for expected in [
        "policies/examples/invalid/level3-below-as2.toml:6: service dang-ky-khai-tu: floor.level3.login:",
        "policies/examples/invalid/level4-weak-step-up.toml:7: service cap-giay-phep-xay-dung: floor.level4.login:",
        "policies/examples/invalid/level4-weak-step-up.toml:11: service cap-giay-phep-xay-dung: floor.payment:",
        "policies/examples/invalid/level4-weak-step-up.toml:16: service cap-giay-phep-xay-dung: floor.result_receipt:",
        "policies/examples/invalid/non-repudiation-unsigned.toml:7: service cap-ban-sao-trich-luc: floor.non_repudiation:",
        "policies/examples/invalid/malformed.toml:7: service cap-ho-chieu: schema: unknown field `max_agee`",
        "policies/examples/invalid/syntax-error.toml:3: syntax:",
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }

    // serve refuses to start on an invalid set.
    let serve = xacthuc(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("XACTHUC_POLICIES_DIR", "policies/examples/invalid")],
    );
    assert!(!serve.status.success());
    assert!(text(&serve).contains("invalid service policies"), "{}", text(&serve));

    // A policies_dir given explicitly must exist.
    let missing = dir.path().join("no-such-dir");
    let config = xacthuc(dir.path(), &["check-config"], &[("XACTHUC_POLICIES_DIR", missing.to_str().unwrap())]);
    assert!(!config.status.success() && text(&config).contains("policies_dir:"), "{}", text(&config));
}

/// `serve` reloads its policies on SIGHUP, sent by `xacthuc policy reload`; an invalid set is
/// refused by the command before any signal, and refused by the gateway if it gets one.
#[test]
fn policy_reload_signals_the_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let level3 = "[service.s]\nname = \"Đăng ký khai sinh\"\nlevel = 3\nclients = [\"p\"]\nlogin = { min_as = \"as2\", mechanism = \"1fa\" }\n";
    std::fs::write(policies.join("s.toml"), level3).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let env = [("XACTHUC_POLICIES_DIR", policies.to_str().unwrap()), ("XACTHUC_LISTEN", "127.0.0.1:0")];
    let mut serve = Command::new(env!("CARGO_BIN_EXE_xacthuc"));
    serve
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
        .env("XACTHUC_PASSWORD__ITERATIONS", "1")
        .envs(env)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut child = serve.spawn().unwrap();
    let read_log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let wait_for = |needle: &str| {
        for _ in 0..600 {
            if read_log().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    let result = std::panic::catch_unwind(|| {
        assert!(wait_for("xacthuc is serving"), "{}", read_log());
        assert!(dir.path().join("xacthuc.pid").is_file(), "the pid file");
        // Valid: signalled and reloaded.
        let ok = xacthuc(dir.path(), &["policy", "reload"], &env);
        assert!(ok.status.success(), "{}", text(&ok));
        assert!(wait_for("service policies reloaded"), "{}", read_log());
        // Below the floor: the command refuses and sends nothing.
        std::fs::write(policies.join("s.toml"), level3.replace("as2", "as1")).unwrap();
        let bad = xacthuc(dir.path(), &["policy", "reload"], &env);
        assert!(!bad.status.success() && text(&bad).contains("floor.level3.login"), "{}", text(&bad));
        // A signal anyway (kill -HUP): the gateway keeps its set.
        let pid = std::fs::read_to_string(dir.path().join("xacthuc.pid")).unwrap();
        assert!(Command::new("kill").args(["-HUP", pid.trim()]).status().unwrap().success());
        assert!(wait_for("policy reload refused"), "{}", read_log());
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn self_signed(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.pem().into_bytes()
}

/// `[tls]`: the gateway serves HTTPS itself (HSTS on), redirects plain HTTP to https, and takes
/// a new certificate on SIGHUP without a restart.
#[tokio::test]
async fn the_gateway_serves_tls_redirects_http_and_reloads_its_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let first = self_signed(&tls, "xacthuc test 1");
    let (port, plain) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let redirect_from = format!("127.0.0.1:{plain}");
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    let env = [
        ("XACTHUC_LISTEN", listen.as_str()),
        ("XACTHUC_ISSUER", "https://localhost"),
        ("XACTHUC_TLS__CERT_FILE", cert.to_str().unwrap()),
        ("XACTHUC_TLS__KEY_FILE", key.to_str().unwrap()),
        ("XACTHUC_TLS__REDIRECT_HTTP_FROM", redirect_from.as_str()),
    ];
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_xacthuc"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
        .env("XACTHUC_PASSWORD__ITERATIONS", "1")
        .envs(env)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Stopped however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Killed(child);
    let read_log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let trusting = |pem: &[u8]| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
            .resolve("localhost", addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let outcome = async {
        let url = format!("https://localhost:{port}/healthz");
        let mut up = None;
        for _ in 0..600 {
            if let Ok(r) = trusting(&first).get(&url).send().await {
                up = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let resp = up.unwrap_or_else(|| panic!("no HTTPS answer:\n{}", read_log()));
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("strict-transport-security"), "HSTS over https");
        // Plain HTTP on the redirect listener goes to the same path on the https issuer.
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{plain}/authorize?client_id=a"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], "https://localhost/authorize?client_id=a");
        // A new certificate, then SIGHUP: new connections get it.
        let second = self_signed(&tls, "xacthuc test 2");
        assert!(Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap().success());
        for _ in 0..300 {
            if read_log().contains("TLS certificate reloaded") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(read_log().contains("TLS certificate reloaded"), "{}", read_log());
        assert_eq!(trusting(&second).get(&url).send().await.unwrap().status(), 200);
        assert!(trusting(&first).get(&url).send().await.is_err(), "the old certificate is no longer served");
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), outcome).await.expect("timed out");
    drop(child);
}
