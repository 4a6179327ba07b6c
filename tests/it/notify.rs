//! Delivering one-time codes: SMTP against a real SMTP listener on loopback started here, the
//! SMS gateway against a real HTTP listener (axum) started here, and the development outbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use xacthuc::notify::{Channel, Message, Notifier, NotifyConfig, NotifyError, SmsHttpSender, SmsHttpSettings, Via};

// ---------------------------------------------------------------------------------------------
// A minimal SMTP server: one connection, recorded.

#[derive(Debug, Default)]
struct Received {
    ehlo: String,
    /// Decoded `AUTH PLAIN` response: authzid \0 user \0 password.
    auth: Option<String>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

async fn smtp_server() -> (u16, tokio::task::JoinHandle<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut got = Received::default();
        write.write_all(b"220 mx.test ESMTP ready\r\n").await.unwrap();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO ") {
                got.ehlo = line[5..].to_string();
                b"250-mx.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("HELO ") {
                got.ehlo = line[5..].to_string();
                b"250 mx.test\r\n"
            } else if upper.starts_with("AUTH PLAIN ") {
                let raw = B64.decode(line[11..].trim()).unwrap();
                got.auth = Some(String::from_utf8(raw).unwrap());
                b"235 2.7.0 Authentication successful\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                got.mail_from = line[10..].to_string();
                b"250 2.1.0 Ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                got.rcpt_to.push(line[8..].to_string());
                b"250 2.1.5 Ok\r\n"
            } else if upper == "DATA" {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.unwrap();
                loop {
                    let mut l = String::new();
                    assert!(lines.read_line(&mut l).await.unwrap() > 0, "connection closed in DATA");
                    if l == ".\r\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                    got.data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                b"250 2.0.0 Ok: queued as T1\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                break;
            } else if upper == "RSET" || upper == "NOOP" {
                b"250 2.0.0 Ok\r\n"
            } else {
                b"502 5.5.2 Command not recognized\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
        got
    });
    (port, task)
}

/// Headers (unfolded, names lower-cased) and the body of a message.
fn split_message(data: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = data.split_once("\r\n\r\n").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            headers.last_mut().unwrap().1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name}"))
}

/// Decodes RFC 2047 encoded words (B and Q); whitespace between two adjacent encoded words is
/// dropped (§6.2), elsewhere it reads as one space.
fn decode_rfc2047(value: &str) -> String {
    let mut bytes = Vec::new();
    let mut previous_encoded = None;
    for word in value.split_whitespace() {
        let parts: Vec<&str> = word.split('?').collect();
        let encoded = parts.len() == 5 && parts[0] == "=" && parts[4] == "=";
        if previous_encoded.is_some_and(|p| !(p && encoded)) {
            bytes.push(b' ');
        }
        previous_encoded = Some(encoded);
        if encoded {
            assert!(parts[1].eq_ignore_ascii_case("utf-8"), "charset {}", parts[1]);
            match parts[2] {
                "B" | "b" => bytes.extend(B64.decode(parts[3]).unwrap()),
                "Q" | "q" => bytes.extend(decode_qp(&parts[3].replace('_', " "))),
                other => panic!("encoding {other}"),
            }
        } else {
            bytes.extend(word.as_bytes());
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn decode_qp(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn decode_body(headers: &[(String, String)], body: &str) -> String {
    let cte = headers
        .iter()
        .find(|(n, _)| n == "content-transfer-encoding")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    let bytes = match cte.as_str() {
        "base64" => B64.decode(body.split_whitespace().collect::<String>()).unwrap(),
        "quoted-printable" => decode_qp(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes).unwrap()
}

/// A client as the application builds one: rustls with ring, installed once per process.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn notify_config(toml_text: &str) -> NotifyConfig {
    toml::from_str(toml_text).unwrap()
}

#[tokio::test]
async fn smtp_delivers_a_vietnamese_message_to_a_real_listener() {
    let (port, server) = smtp_server().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp.pw");
    std::fs::write(&pw, "mật khẩu\n").unwrap();
    let config = notify_config(&format!(
        "email = \"smtp\"\nsms = \"outbox\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         username = \"xacthuc\"\npassword_file = {:?}\nfrom = \"Cổng dịch vụ công <noreply@dichvucong.example.vn>\"\n\
         timeout_seconds = 5\n",
        pw.display().to_string()
    ));
    let notifier = Notifier::from_config(&config, true, http(), "id.example.vn").unwrap();
    let subject = "Mã OTP đăng nhập Cổng dịch vụ công";
    let text = "Mã OTP của bạn là 123456. Mã có hiệu lực trong 5 phút.\n.Không chia sẻ mã này với bất kỳ ai.";
    let receipt = notifier.send(&Message::email("nguyen.van.a@example.vn", subject, text)).await.unwrap();
    assert_eq!((receipt.channel, receipt.via), (Channel::Email, Via::Smtp));
    assert!(receipt.reference.as_deref().unwrap().contains("queued as T1"), "{receipt:?}");

    let got = tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_eq!(got.ehlo, "id.example.vn");
    assert_eq!(got.auth.as_deref(), Some("\0xacthuc\0mật khẩu"));
    assert_eq!(got.mail_from, "<noreply@dichvucong.example.vn>");
    assert_eq!(got.rcpt_to, vec!["<nguyen.van.a@example.vn>".to_string()]);
    let (headers, body) = split_message(&got.data);
    let raw_subject = header(&headers, "subject");
    assert!(raw_subject.contains("=?utf-8?") || raw_subject.contains("=?UTF-8?"), "not RFC 2047: {raw_subject}");
    assert_eq!(decode_rfc2047(raw_subject), subject, "{raw_subject}");
    assert!(header(&headers, "from").contains("<noreply@dichvucong.example.vn>"));
    assert_eq!(decode_rfc2047(header(&headers, "from")), "Cổng dịch vụ công <noreply@dichvucong.example.vn>");
    assert!(header(&headers, "to").contains("nguyen.van.a@example.vn"));
    assert!(header(&headers, "content-type").to_ascii_lowercase().contains("charset=utf-8"));
    assert!(header(&headers, "message-id").ends_with("@dichvucong.example.vn>"));
    assert_eq!(decode_body(&headers, &body).replace("\r\n", "\n").trim_end(), text);
}

#[tokio::test]
async fn smtp_reports_a_refused_connection_and_a_bad_address() {
    // A port with no listener: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = notify_config(&format!(
        "email = \"smtp\"\n[smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"none\"\nfrom = \"noreply@example.vn\"\n"
    ));
    let notifier = Notifier::from_config(&config, true, http(), "localhost").unwrap();
    let err = notifier.send(&Message::email("a@example.vn", "s", "t")).await.unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    let err = notifier.send(&Message::email("not an address", "s", "t")).await.unwrap_err();
    assert!(matches!(err, NotifyError::InvalidRecipient), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// A scripted SMS gateway: each request takes the next status (200 when the script is empty);
// status 0 means "answer 200 after 5 seconds".

#[derive(Clone, Default)]
struct Gateway {
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn gateway_send(State(g): State<Gateway>, headers: HeaderMap, body: String) -> (StatusCode, String) {
    g.seen.lock().unwrap().push((headers, body));
    let next = g.script.lock().unwrap().pop_front().unwrap_or(200);
    if next == 0 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return (StatusCode::OK, "late".into());
    }
    (StatusCode::from_u16(next).unwrap(), format!("{{\"status\": {next}, \"message_id\": \"msg-42\"}}"))
}

async fn gateway(script: &[u16]) -> (String, Gateway) {
    let g = Gateway::default();
    g.script.lock().unwrap().extend(script);
    let app = axum::Router::new().route("/send", axum::routing::post(gateway_send)).with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/send", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, g)
}

fn sender(url: &str, timeout: Duration, retries: u32) -> SmsHttpSender {
    SmsHttpSender::new(
        http(),
        SmsHttpSettings {
            url: url.parse().unwrap(),
            auth: None,
            body_template: r#"{"to": "{to}", "text": "{text}"}"#.into(),
            timeout,
            retries,
            backoff: Duration::from_millis(20),
        },
    )
}

#[tokio::test]
async fn sms_gateway_gets_the_rendered_template_and_the_auth_header() {
    let (url, g) = gateway(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sms.key");
    std::fs::write(&key, "Bearer sms-secret-1\n").unwrap();
    let config = notify_config(&format!(
        "email = \"outbox\"\nsms = \"http\"\n[sms_http]\nurl = \"{url}\"\nauth_header = \"X-Api-Key\"\n\
         auth_value_file = {:?}\nbody_template = '{{\"msisdn\": \"{{to}}\", \"content\": \"{{text}}\", \"brandname\": \"XACTHUC\"}}'\n",
        key.display().to_string()
    ));
    assert!(config.problems(true).is_empty(), "{:?}", config.problems(true));
    let notifier = Notifier::from_config(&config, true, http(), "localhost").unwrap();
    let text = "Ma OTP: 123456 \"dung chia se\"\n\\ {to} đã gửi";
    let receipt = notifier.send(&Message::sms("0901234289", text)).await.unwrap();
    assert_eq!((receipt.channel, receipt.via), (Channel::Sms, Via::SmsHttp));
    assert!(receipt.reference.unwrap().contains("msg-42"));

    let seen = g.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(headers.get("x-api-key").unwrap(), "Bearer sms-secret-1");
    assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json, serde_json::json!({ "msisdn": "0901234289", "content": text, "brandname": "XACTHUC" }));
}

#[tokio::test]
async fn sms_gateway_5xx_is_retried_until_success() {
    let (url, g) = gateway(&[500, 200]).await;
    let receipt = sender(&url, Duration::from_secs(5), 2).send("0901234289", "123456").await.unwrap();
    assert_eq!(receipt.via, Via::SmsHttp);
    assert_eq!(g.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn sms_gateway_retries_are_bounded() {
    let (url, g) = gateway(&[503, 502, 500, 200]).await;
    let err = sender(&url, Duration::from_secs(5), 2).send("0901234289", "123456").await.unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    assert_eq!(g.seen.lock().unwrap().len(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn sms_gateway_4xx_is_not_retried() {
    let (url, g) = gateway(&[400, 200]).await;
    let err = sender(&url, Duration::from_secs(5), 3).send("0901234289", "123456").await.unwrap_err();
    assert!(matches!(&err, NotifyError::Rejected(m) if m.contains("400")), "{err:?}");
    assert_eq!(g.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn sms_gateway_slow_answer_times_out() {
    let (url, g) = gateway(&[0, 0]).await;
    let started = std::time::Instant::now();
    let err = sender(&url, Duration::from_millis(300), 1).send("0901234289", "123456").await.unwrap_err();
    assert!(matches!(err, NotifyError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(g.seen.lock().unwrap().len(), 2, "a timeout is retried");
}

#[tokio::test]
async fn development_outbox_keeps_the_last_n() {
    let config = notify_config("outbox_capacity = 3\n");
    let notifier = Notifier::from_config(&config, true, http(), "localhost").unwrap();
    for i in 1..=5 {
        let r = notifier.send(&Message::sms("0901234289", format!("Mã OTP: 00000{i}"))).await.unwrap();
        assert_eq!(r.via, Via::Outbox);
    }
    notifier.send(&Message::email("an@example.vn", "Mã OTP", "654321")).await.unwrap();
    let outbox = notifier.outbox().unwrap();
    let texts: Vec<String> = outbox.recent().into_iter().map(|e| e.message.text).collect();
    assert_eq!(texts, vec!["654321", "Mã OTP: 000005", "Mã OTP: 000004"]);
    assert_eq!(outbox.latest_to("0901234289").unwrap().message.text, "Mã OTP: 000005");
    // Outside development nothing is chosen by default: both channels are off.
    let off = Notifier::from_config(&NotifyConfig::default(), false, http(), "localhost").unwrap();
    assert!(!off.can_send(Channel::Email) && !off.can_send(Channel::Sms));
}

#[tokio::test]
async fn the_server_state_has_a_development_outbox() {
    let server = crate::common::TestServer::start().await;
    let n = &server.state.notifier;
    assert!(n.can_send(Channel::Email) && n.can_send(Channel::Sms) && n.outbox().is_some());
}
