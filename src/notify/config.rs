//! `[notify]`: which sender each channel uses, and the SMTP and SMS gateway settings. Part of
//! [`crate::config::Config`]; the settings are checked here so that `check-config` and start-up
//! agree (both go through [`NotifyConfig::smtp_settings`] / [`NotifyConfig::sms_http_settings`]).

use super::read_secret_file;
use super::sms_http::{SmsHttpSettings, render_template};
use super::smtp::SmtpSettings;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailSenderKind {
    Outbox,
    Smtp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsSenderKind {
    Outbox,
    Http,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte (port 465).
    #[serde(rename = "tls")]
    Implicit,
    /// No encryption: only to a relay on the loopback interface.
    #[serde(rename = "none")]
    Plain,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `"outbox"` or `"smtp"`. Unset: the outbox in development, no e-mail otherwise.
    pub email: Option<EmailSenderKind>,
    /// `"outbox"` or `"http"`. Unset: the outbox in development, no SMS otherwise.
    pub sms: Option<SmsSenderKind>,
    /// How many messages the development outbox keeps.
    pub outbox_capacity: usize,
    pub smtp: SmtpConfig,
    pub sms_http: SmsHttpConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email: None,
            sms: None,
            outbox_capacity: 100,
            smtp: SmtpConfig::default(),
            sms_http: SmsHttpConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: Option<String>,
    /// Unset: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// File holding the password for `username`.
    pub password_file: Option<PathBuf>,
    /// The `From` mailbox: `noreply@example.gov.vn` or `Tên <noreply@example.gov.vn>`.
    pub from: Option<String>,
    /// Limit for one delivery, connection included.
    pub timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: None,
            tls: SmtpTls::StartTls,
            username: None,
            password_file: None,
            from: None,
            timeout_seconds: 10,
        }
    }
}

pub const DEFAULT_BODY_TEMPLATE: &str = r#"{"to": "{to}", "text": "{text}"}"#;
pub const MAX_RETRIES: u32 = 5;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsHttpConfig {
    /// The gateway's endpoint, receiving a JSON `POST`. `https` (`http` only on loopback).
    pub url: Option<String>,
    /// Name of the header carrying the credential, e.g. `Authorization` or `X-Api-Key`.
    pub auth_header: Option<String>,
    /// File holding that header's value, e.g. `Bearer …`.
    pub auth_value_file: Option<PathBuf>,
    /// JSON body; `{to}` and `{text}` are replaced by the JSON-escaped values (place them inside
    /// quotes).
    pub body_template: String,
    /// Limit for one attempt.
    pub timeout_seconds: u64,
    /// Further attempts after a 5xx, a timeout or a connection failure (never after a 4xx).
    pub retries: u32,
}

impl Default for SmsHttpConfig {
    fn default() -> Self {
        SmsHttpConfig {
            url: None,
            auth_header: None,
            auth_value_file: None,
            body_template: DEFAULT_BODY_TEMPLATE.into(),
            timeout_seconds: 10,
            retries: 2,
        }
    }
}

impl NotifyConfig {
    /// The e-mail sender in effect: as configured, else the outbox in development.
    pub fn email_kind(&self, development: bool) -> Option<EmailSenderKind> {
        self.email.or(development.then_some(EmailSenderKind::Outbox))
    }

    pub fn sms_kind(&self, development: bool) -> Option<SmsSenderKind> {
        self.sms.or(development.then_some(SmsSenderKind::Outbox))
    }

    /// Every problem with `[notify]`, each naming its key. Secret files are read.
    pub fn problems(&self, development: bool) -> Vec<String> {
        let mut p = Vec::new();
        if !development {
            if self.email == Some(EmailSenderKind::Outbox) {
                p.push("notify.email: the outbox is for development only (choose \"smtp\")".into());
            }
            if self.sms == Some(SmsSenderKind::Outbox) {
                p.push("notify.sms: the outbox is for development only (choose \"http\")".into());
            }
        }
        if !(1..=10_000).contains(&self.outbox_capacity) {
            p.push("notify.outbox_capacity: between 1 and 10000".into());
        }
        if self.email_kind(development) == Some(EmailSenderKind::Smtp)
            && let Err(e) = self.smtp_settings("localhost")
        {
            p.extend(e);
        }
        if self.sms_kind(development) == Some(SmsSenderKind::Http)
            && let Err(e) = self.sms_http_settings()
        {
            p.extend(e);
        }
        p
    }

    /// The SMTP sender's settings, or every problem with `[notify.smtp]`.
    pub fn smtp_settings(&self, hello_name: &str) -> Result<SmtpSettings, Vec<String>> {
        let c = &self.smtp;
        let mut p = Vec::new();
        let host = c.host.clone().filter(|h| !h.trim().is_empty());
        if host.is_none() {
            p.push("notify.smtp.host: required when notify.email = \"smtp\"".into());
        }
        if let Some(h) = &host
            && c.tls == SmtpTls::Plain
            && !is_loopback(h)
        {
            p.push(format!(
                "notify.smtp.tls: \"none\" is allowed only to a loopback host (localhost, 127.0.0.1, ::1), not {h:?}"
            ));
        }
        let from = match &c.from {
            None => {
                p.push("notify.smtp.from: required when notify.email = \"smtp\"".into());
                None
            }
            Some(f) => match f.parse::<lettre::message::Mailbox>() {
                Ok(m) => Some(m),
                Err(e) => {
                    p.push(format!("notify.smtp.from: {f:?} is not a mailbox ({e})"));
                    None
                }
            },
        };
        let credentials = match (&c.username, &c.password_file) {
            (Some(u), Some(f)) => match read_secret_file("notify.smtp.password_file", f) {
                Ok(pw) => Some((u.clone(), pw)),
                Err(e) => {
                    p.push(e);
                    None
                }
            },
            (None, None) => None,
            _ => {
                p.push("notify.smtp.username and notify.smtp.password_file: give both or neither".into());
                None
            }
        };
        if !(1..=300).contains(&c.timeout_seconds) {
            p.push("notify.smtp.timeout_seconds: between 1 and 300".into());
        }
        match (host, from) {
            (Some(host), Some(from)) if p.is_empty() => Ok(SmtpSettings {
                port: c.port.unwrap_or(match c.tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Implicit => 465,
                    SmtpTls::Plain => 25,
                }),
                host,
                tls: c.tls,
                credentials,
                from,
                timeout: Duration::from_secs(c.timeout_seconds),
                hello_name: hello_name.to_string(),
            }),
            _ => Err(p),
        }
    }

    /// The SMS gateway's settings, or every problem with `[notify.sms_http]`.
    pub fn sms_http_settings(&self) -> Result<SmsHttpSettings, Vec<String>> {
        let c = &self.sms_http;
        let mut p = Vec::new();
        let url = match &c.url {
            None => {
                p.push("notify.sms_http.url: required when notify.sms = \"http\"".into());
                None
            }
            Some(u) => match reqwest::Url::parse(u) {
                Ok(url) if url.scheme() == "https" => Some(url),
                Ok(url) if url.scheme() == "http" && url.host_str().is_some_and(is_loopback) => Some(url),
                Ok(_) => {
                    p.push("notify.sms_http.url: must be https (http only to a loopback host)".into());
                    None
                }
                Err(e) => {
                    p.push(format!("notify.sms_http.url: not a URL ({e})"));
                    None
                }
            },
        };
        let auth = match (&c.auth_header, &c.auth_value_file) {
            (Some(name), Some(file)) => {
                let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("notify.sms_http.auth_header: {name:?} is not a header name"));
                let value = read_secret_file("notify.sms_http.auth_value_file", file).and_then(|v| {
                    reqwest::header::HeaderValue::from_str(v.trim())
                        .map_err(|_| "notify.sms_http.auth_value_file: not a valid header value".to_string())
                });
                match (name, value) {
                    (Ok(n), Ok(mut v)) => {
                        v.set_sensitive(true);
                        Some((n, v))
                    }
                    (n, v) => {
                        p.extend(n.err());
                        p.extend(v.err());
                        None
                    }
                }
            }
            (None, None) => None,
            _ => {
                p.push("notify.sms_http.auth_header and notify.sms_http.auth_value_file: give both or neither".into());
                None
            }
        };
        if !(c.body_template.contains("{to}") && c.body_template.contains("{text}")) {
            p.push("notify.sms_http.body_template: must contain {to} and {text}".into());
        } else if serde_json::from_str::<serde_json::Value>(&render_template(
            &c.body_template,
            "0901234289",
            "\"Mã\" \\ {to}\n",
        ))
        .is_err()
        {
            p.push("notify.sms_http.body_template: not JSON once filled in (put {to} and {text} inside quotes)".into());
        }
        if !(1..=120).contains(&c.timeout_seconds) {
            p.push("notify.sms_http.timeout_seconds: between 1 and 120".into());
        }
        if c.retries > MAX_RETRIES {
            p.push(format!("notify.sms_http.retries: at most {MAX_RETRIES}"));
        }
        match url {
            Some(url) if p.is_empty() => Ok(SmsHttpSettings {
                url,
                auth,
                body_template: c.body_template.clone(),
                timeout: Duration::from_secs(c.timeout_seconds),
                retries: c.retries,
                backoff: Duration::from_millis(500),
            }),
            _ => Err(p),
        }
    }
}

/// `localhost` (or a name under it), or a loopback IP address.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> NotifyConfig {
        toml::from_str(toml_text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn defaults_are_the_outbox_in_development_only() {
        let c = NotifyConfig::default();
        assert_eq!(c.email_kind(true), Some(EmailSenderKind::Outbox));
        assert_eq!(c.sms_kind(true), Some(SmsSenderKind::Outbox));
        assert_eq!(c.email_kind(false), None);
        assert!(c.problems(true).is_empty() && c.problems(false).is_empty());
        let explicit = parse("email = \"outbox\"\nsms = \"outbox\"\n");
        let all = explicit.problems(false).join("\n");
        assert!(all.contains("notify.email:") && all.contains("notify.sms:"), "{all}");
    }

    #[test]
    fn chosen_senders_need_their_settings() {
        let c = parse("email = \"smtp\"\nsms = \"http\"\n");
        let all = c.problems(true).join("\n");
        for key in ["notify.smtp.host:", "notify.smtp.from:", "notify.sms_http.url:"] {
            assert!(all.contains(key), "{key} missing in {all}");
        }
    }

    #[test]
    fn plain_smtp_only_to_loopback() {
        let bad = parse("email = \"smtp\"\n[smtp]\nhost = \"mail.example.vn\"\ntls = \"none\"\nfrom = \"a@b.vn\"\n");
        assert!(bad.problems(true).join(" ").contains("notify.smtp.tls:"));
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let ok =
                parse(&format!("email = \"smtp\"\n[smtp]\nhost = \"{host}\"\ntls = \"none\"\nfrom = \"a@b.vn\"\n"));
            let s = ok.smtp_settings("x").unwrap_or_else(|e| unreachable!("{e:?}"));
            assert_eq!(s.port, 25);
        }
    }

    #[test]
    fn smtp_settings_are_read_with_the_password_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "bí mật\n").unwrap_or_else(|e| unreachable!("{e}"));
        let c = parse(&format!(
            "email = \"smtp\"\n[smtp]\nhost = \"smtp.example.vn\"\nusername = \"u\"\npassword_file = {:?}\nfrom = \"Cổng dịch vụ công <noreply@example.gov.vn>\"\n",
            pw.display().to_string()
        ));
        let s = c.smtp_settings("id.example.vn").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!((s.port, s.tls), (587, SmtpTls::StartTls));
        assert_eq!(s.credentials, Some(("u".into(), "bí mật".into())));
        assert_eq!(s.from.email.to_string(), "noreply@example.gov.vn");
        let half = parse("email = \"smtp\"\n[smtp]\nhost = \"h\"\nusername = \"u\"\nfrom = \"a@b.vn\"\n");
        assert!(half.problems(true).join(" ").contains("give both or neither"));
    }

    #[test]
    fn sms_gateway_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let key = dir.path().join("key");
        std::fs::write(&key, "Bearer abc\n").unwrap_or_else(|e| unreachable!("{e}"));
        let ok = parse(&format!(
            "sms = \"http\"\n[sms_http]\nurl = \"https://sms.example.vn/send\"\nauth_header = \"Authorization\"\nauth_value_file = {:?}\n",
            key.display().to_string()
        ));
        let s = ok.sms_http_settings().unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(s.retries, 2);
        assert_eq!(
            s.auth.as_ref().map(|(n, v)| (n.as_str(), v.as_bytes())),
            Some(("authorization", &b"Bearer abc"[..]))
        );
        let bad = parse(
            "sms = \"http\"\n[sms_http]\nurl = \"http://sms.example.vn/send\"\nauth_header = \"Bad Header\"\nauth_value_file = \"/nonexistent\"\nbody_template = \"{to} {text}\"\nretries = 9\ntimeout_seconds = 0\n",
        );
        let all = bad.problems(true).join("\n");
        for key in [
            "notify.sms_http.url:",
            "notify.sms_http.auth_header:",
            "notify.sms_http.auth_value_file:",
            "notify.sms_http.body_template:",
            "notify.sms_http.retries:",
            "notify.sms_http.timeout_seconds:",
        ] {
            assert!(all.contains(key), "{key} missing in {all}");
        }
        let local = parse("sms = \"http\"\n[sms_http]\nurl = \"http://127.0.0.1:9/send\"\n");
        assert!(local.problems(false).is_empty());
    }
}
