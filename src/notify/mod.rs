//! Delivering one-time codes: e-mail through SMTP ([`smtp`]), SMS through an HTTP gateway
//! ([`sms_http`]), or, in development, into an in-memory outbox ([`outbox`]). The sender of each
//! channel is chosen in `[notify]` (see [`config`]); [`Notifier`] dispatches a [`Message`] to it.
//!
//! This module only moves text: it does not make codes, count attempts or decide who may receive
//! one. Recipients are personal data: log them masked ([`mask_phone`], [`mask_email`]).

pub mod config;
pub mod outbox;
pub mod sms_http;
pub mod smtp;

pub use config::{EmailSenderKind, NotifyConfig, SmsSenderKind, SmtpTls};
pub use outbox::{Outbox, OutboxEntry};
pub use sms_http::{SmsHttpSender, SmsHttpSettings};
pub use smtp::{SmtpSender, SmtpSettings};

use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

/// One message to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    /// An e-mail address, or a phone number (`0901234289`, `+84901234289`).
    pub to: String,
    /// E-mail only; empty for SMS.
    pub subject: String,
    /// Plain text. For SMS keep it short: with Vietnamese diacritics a segment holds 70
    /// characters (UCS-2), without them 160.
    pub text: String,
}

impl Message {
    pub fn email(to: impl Into<String>, subject: impl Into<String>, text: impl Into<String>) -> Message {
        Message { channel: Channel::Email, to: to.into(), subject: subject.into(), text: text.into() }
    }

    pub fn sms(to: impl Into<String>, text: impl Into<String>) -> Message {
        Message { channel: Channel::Sms, to: to.into(), subject: String::new(), text: text.into() }
    }

    /// The recipient as it may be shown or logged.
    pub fn masked_to(&self) -> String {
        match self.channel {
            Channel::Email => mask_email(&self.to),
            Channel::Sms => mask_phone(&self.to),
        }
    }
}

/// Which sender delivered a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Smtp,
    SmsHttp,
    Outbox,
}

/// Proof of hand-over: the message was accepted by the next hop (the SMTP server, the SMS
/// gateway, the outbox). Delivery to the citizen is not confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub channel: Channel,
    pub via: Via,
    /// What the next hop said: the SMTP reply text, the start of the gateway's response body,
    /// or the outbox entry number. For logs and audit details.
    pub reference: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The address or number cannot be used (malformed); retrying will not help.
    #[error("invalid recipient")]
    InvalidRecipient,
    /// No sender is configured for this channel (outside development, when `[notify]` does
    /// not choose one).
    #[error("no sender is configured for {0:?} messages")]
    Disabled(Channel),
    /// The next hop refused the message (SMTP permanent error, HTTP 4xx).
    #[error("refused by the server: {0}")]
    Rejected(String),
    /// The next hop did not answer in time (after the retries, for the SMS gateway).
    #[error("timed out")]
    Timeout,
    /// The next hop could not be reached or failed (SMTP transient error, HTTP 5xx,
    /// connection refused), after the retries for the SMS gateway.
    #[error("delivery failed: {0}")]
    Unavailable(String),
    #[error("notify configuration: {0}")]
    Config(String),
}

/// The e-mail sender chosen in `notify.email`.
pub enum EmailSender {
    Smtp(Box<SmtpSender>),
    Outbox(Arc<Outbox>),
    Disabled,
}

/// The SMS sender chosen in `notify.sms`.
pub enum SmsSender {
    Http(Box<SmsHttpSender>),
    Outbox(Arc<Outbox>),
    Disabled,
}

/// Sends messages on either channel through the sender configured for it.
pub struct Notifier {
    pub email: EmailSender,
    pub sms: SmsSender,
}

impl Notifier {
    /// Builds the senders from `[notify]`: reads the secret files, parses addresses and URLs.
    /// `http` is the application's shared client (its per-request timeout is overridden);
    /// `hello_name` is the name given in SMTP `EHLO` (the issuer's host).
    pub fn from_config(
        config: &NotifyConfig,
        development: bool,
        http: reqwest::Client,
        hello_name: &str,
    ) -> Result<Notifier, NotifyError> {
        let email_kind = config.email_kind(development);
        let sms_kind = config.sms_kind(development);
        let outbox = (email_kind == Some(EmailSenderKind::Outbox) || sms_kind == Some(SmsSenderKind::Outbox))
            .then(|| Arc::new(Outbox::new(config.outbox_capacity)));
        let email = match (email_kind, &outbox) {
            (Some(EmailSenderKind::Smtp), _) => {
                EmailSender::Smtp(Box::new(SmtpSender::new(config.smtp_settings(hello_name).map_err(joined)?)?))
            }
            (Some(EmailSenderKind::Outbox), Some(o)) => EmailSender::Outbox(o.clone()),
            _ => EmailSender::Disabled,
        };
        let sms = match (sms_kind, &outbox) {
            (Some(SmsSenderKind::Http), _) => {
                SmsSender::Http(Box::new(SmsHttpSender::new(http, config.sms_http_settings().map_err(joined)?)))
            }
            (Some(SmsSenderKind::Outbox), Some(o)) => SmsSender::Outbox(o.clone()),
            _ => SmsSender::Disabled,
        };
        // Debug only: every command that opens the state builds the notifier, and some print
        // JSON that must not be followed by log lines. Use of the outbox or of a disabled
        // channel is logged when it happens.
        tracing::debug!(email = ?email_kind, sms = ?sms_kind, "notify senders");
        Ok(Notifier { email, sms })
    }

    /// A notifier that keeps everything in a fresh outbox of `capacity` messages (tests, demos).
    pub fn outbox_only(capacity: usize) -> Notifier {
        let o = Arc::new(Outbox::new(capacity));
        Notifier { email: EmailSender::Outbox(o.clone()), sms: SmsSender::Outbox(o) }
    }

    /// Whether messages on `channel` can be sent at all (else offer no factor that needs it).
    pub fn can_send(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => !matches!(self.email, EmailSender::Disabled),
            Channel::Sms => !matches!(self.sms, SmsSender::Disabled),
        }
    }

    /// The development outbox, when either channel uses it.
    pub fn outbox(&self) -> Option<&Outbox> {
        match (&self.email, &self.sms) {
            (EmailSender::Outbox(o), _) | (_, SmsSender::Outbox(o)) => Some(o),
            _ => None,
        }
    }

    pub async fn send(&self, msg: &Message) -> Result<Receipt, NotifyError> {
        let result = match (msg.channel, &self.email, &self.sms) {
            (Channel::Email, EmailSender::Smtp(s), _) => s.send(&msg.to, &msg.subject, &msg.text).await,
            (Channel::Sms, _, SmsSender::Http(s)) => {
                check_phone(&msg.to)?;
                s.send(&msg.to, &msg.text).await
            }
            (Channel::Email, EmailSender::Outbox(o), _) | (Channel::Sms, _, SmsSender::Outbox(o)) => {
                if msg.channel == Channel::Sms {
                    check_phone(&msg.to)?;
                }
                Ok(o.push(msg.clone(), crate::app::now()))
            }
            (channel, _, _) => Err(NotifyError::Disabled(channel)),
        };
        match &result {
            Ok(r) => tracing::info!(channel = ?msg.channel, via = ?r.via, to = %msg.masked_to(), "message handed over"),
            Err(e) => tracing::warn!(channel = ?msg.channel, to = %msg.masked_to(), error = %e, "message not sent"),
        }
        result
    }
}

fn joined(problems: Vec<String>) -> NotifyError {
    NotifyError::Config(problems.join("; "))
}

/// A phone number for the gateway: an optional `+`, then 8 to 15 digits (E.164 allows 15).
fn check_phone(to: &str) -> Result<(), NotifyError> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(NotifyError::InvalidRecipient)
    }
}

/// Masks a phone number the way VNeID shows it: the first three and last three digits stay,
/// each other digit becomes `*` ("0901234289" → "090****289"). Spaces, dots and dashes are
/// dropped first; a number shorter than eight characters is masked whole.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().filter(|c| !matches!(c, ' ' | '.' | '-')).collect();
    let n = chars.len();
    if n < 8 {
        return "*".repeat(n);
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(n - 6));
    out.extend(&chars[n - 3..]);
    out
}

/// Masks an e-mail address: the first two characters of the local part stay (one when it is
/// shorter than three), then always eight `*` so the length is not revealed; the domain stays
/// ("nguyen.van.a@example.vn" → "ng********@example.vn").
pub fn mask_email(address: &str) -> String {
    const STARS: &str = "********";
    let Some((local, domain)) = address.trim().rsplit_once('@') else {
        return STARS.into();
    };
    let keep = if local.chars().count() >= 3 { 2 } else { 1 };
    let shown: String = local.chars().take(keep).collect();
    format!("{shown}{STARS}@{domain}")
}

/// Reads a secret from a file: the whole content without its trailing line break.
pub(crate) fn read_secret_file(key: &str, path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(format!("{key}: {} is empty", path.display()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_like_vneid() {
        assert_eq!(mask_phone("0901234289"), "090****289");
        assert_eq!(mask_phone("090 123 4289"), "090****289");
        assert_eq!(mask_phone("+84901234289"), "+84******289");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn emails_are_masked_without_revealing_length() {
        assert_eq!(mask_email("nguyen.van.a@example.vn"), "ng********@example.vn");
        assert_eq!(mask_email("an@example.vn"), "a********@example.vn");
        assert_eq!(mask_email("đức@bộ.vn"), "đứ********@bộ.vn");
        assert_eq!(mask_email("not-an-address"), "********");
    }

    #[test]
    fn phone_numbers_are_checked() {
        for ok in ["0901234289", "+84901234289", "84901234289"] {
            assert!(check_phone(ok).is_ok(), "{ok}");
        }
        for bad in ["", "090-123", "+", "0901234289\"", "1234567", "+1234567890123456"] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_outbox_notifier_keeps_both_channels() {
        let n = Notifier::outbox_only(10);
        assert!(n.can_send(Channel::Email) && n.can_send(Channel::Sms));
        let r = n.send(&Message::sms("0901234289", "Mã OTP: 123456")).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((r.channel, r.via), (Channel::Sms, Via::Outbox));
        n.send(&Message::email("a@b.vn", "Mã OTP", "123456")).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(n.send(&Message::sms("abc", "x")).await, Err(NotifyError::InvalidRecipient)));
        let kept = n.outbox().map(|o| o.recent()).unwrap_or_default();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].message.to, "a@b.vn");
    }

    #[tokio::test]
    async fn a_disabled_channel_refuses() {
        let n = Notifier { email: EmailSender::Disabled, sms: SmsSender::Disabled };
        assert!(!n.can_send(Channel::Sms));
        assert!(n.outbox().is_none());
        assert!(matches!(n.send(&Message::sms("0901234289", "x")).await, Err(NotifyError::Disabled(Channel::Sms))));
    }

    #[test]
    fn secret_files_lose_only_the_line_break() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let f = dir.path().join("s");
        std::fs::write(&f, " p@ss word \n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(read_secret_file("k", &f).as_deref(), Ok(" p@ss word "));
        std::fs::write(&f, "\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(read_secret_file("k", &f).is_err());
        assert!(read_secret_file("k", &dir.path().join("missing")).is_err());
    }
}
