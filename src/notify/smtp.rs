//! E-mail through an SMTP relay with `lettre`: STARTTLS (required, not opportunistic), implicit
//! TLS, or plain to a loopback relay; TLS is rustls with the ring provider and the platform's
//! certificate verifier. One connection per message: codes are few and a pool would hold idle
//! connections the relay may drop.

use super::config::SmtpTls;
use super::{Channel, NotifyError, Receipt, Via};
use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Mailbox, Message as Email};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// Resolved `[notify.smtp]` (see `NotifyConfig::smtp_settings`).
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    /// Limit for one delivery, connection included.
    pub timeout: Duration,
    /// Name given in `EHLO`.
    pub hello_name: String,
}

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl SmtpSender {
    pub fn new(s: SmtpSettings) -> Result<SmtpSender, NotifyError> {
        let tls_params =
            || TlsParameters::new(s.host.clone()).map_err(|e| NotifyError::Config(format!("notify.smtp: TLS: {e}")));
        let tls = match s.tls {
            SmtpTls::StartTls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::Plain => Tls::None,
        };
        let hello = match s.hello_name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(s.hello_name.clone()),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout))
            .hello_name(hello);
        if let Some((user, password)) = s.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(SmtpSender { transport: builder.build(), from: s.from, timeout: s.timeout })
    }

    /// Sends a plain-text UTF-8 message; the subject is RFC 2047-encoded when not ASCII.
    pub async fn send(&self, to: &str, subject: &str, text: &str) -> Result<Receipt, NotifyError> {
        let to: Mailbox = to.trim().parse().map_err(|_| NotifyError::InvalidRecipient)?;
        let domain = self.from.email.domain().to_string();
        let email = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(MessageId::from(format!("<{}@{domain}>", uuid::Uuid::new_v4().simple())))
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| NotifyError::Config(format!("cannot build the e-mail: {e}")))?;
        let response = match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Err(_) => return Err(NotifyError::Timeout),
            Ok(Err(e)) if e.is_timeout() => return Err(NotifyError::Timeout),
            Ok(Err(e)) if e.is_permanent() => return Err(NotifyError::Rejected(e.to_string())),
            Ok(Err(e)) => return Err(NotifyError::Unavailable(e.to_string())),
            Ok(Ok(r)) => r,
        };
        let reply = response.message().collect::<Vec<_>>().join(" ");
        Ok(Receipt {
            channel: Channel::Email,
            via: Via::Smtp,
            reference: Some(format!("{} {reply}", response.code()).trim().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: SmtpTls) -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example.vn".into(),
            port: 587,
            tls,
            credentials: Some(("u".into(), "p".into())),
            from: "Cổng dịch vụ công <noreply@example.vn>".parse().unwrap_or_else(|e| unreachable!("{e}")),
            timeout: Duration::from_secs(5),
            hello_name: "127.0.0.1".into(),
        }
    }

    #[test]
    fn tls_parameters_build_with_rustls_and_ring() {
        for tls in [SmtpTls::StartTls, SmtpTls::Implicit, SmtpTls::Plain] {
            assert!(SmtpSender::new(settings(tls)).is_ok(), "{tls:?}");
        }
    }
}
