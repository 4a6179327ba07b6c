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
