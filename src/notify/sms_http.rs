//! SMS through an HTTP gateway: a JSON `POST` built from a template, an optional credential
//! header, a timeout per attempt, and bounded retries with exponential back-off on 5xx,
//! timeouts and connection failures. A 4xx is the gateway saying no: never retried. Success is
//! any 2xx; redirects are not followed (the shared client has them off), so a 3xx fails.
//!
//! A retry after a timeout may send the SMS twice if the gateway did accept the first attempt;
//! for a one-time code that is harmless, and better than none.

use super::{Channel, NotifyError, Receipt, Via};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use std::time::Duration;

/// Resolved `[notify.sms_http]` (see `NotifyConfig::sms_http_settings`).
#[derive(Clone, Debug)]
pub struct SmsHttpSettings {
    pub url: reqwest::Url,
    /// Marked sensitive, so never shown in `Debug`.
    pub auth: Option<(HeaderName, HeaderValue)>,
    pub body_template: String,
    /// Limit for one attempt, the response body included.
    pub timeout: Duration,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one.
    pub backoff: Duration,
}

pub struct SmsHttpSender {
    http: reqwest::Client,
    settings: SmsHttpSettings,
}

/// At most this much of the gateway's response body is kept in the receipt.
const REFERENCE_CHARS: usize = 200;
const MAX_BODY_BYTES: usize = 4096;

impl SmsHttpSender {
    pub fn new(http: reqwest::Client, settings: SmsHttpSettings) -> SmsHttpSender {
        SmsHttpSender { http, settings }
    }

    pub async fn send(&self, to: &str, text: &str) -> Result<Receipt, NotifyError> {
        let s = &self.settings;
        let body = render_template(&s.body_template, to, text);
        let mut last = NotifyError::Unavailable("no attempt made".into());
        for attempt in 0..=s.retries {
            if attempt > 0 {
                let wait = s.backoff.saturating_mul(1 << (attempt - 1).min(10));
                tracing::debug!(attempt, ?wait, error = %last, "SMS gateway: retrying");
                tokio::time::sleep(wait).await;
            }
            let mut request = self
                .http
                .post(s.url.clone())
                .timeout(s.timeout)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(body.clone());
            if let Some((name, value)) = &s.auth {
                request = request.header(name.clone(), value.clone());
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let reference = read_reference(response).await;
                    return Ok(Receipt { channel: Channel::Sms, via: Via::SmsHttp, reference });
                }
                Ok(response) if response.status().is_server_error() => {
                    last = NotifyError::Unavailable(format!("gateway answered {}", response.status()));
                }
                Ok(response) => {
                    return Err(NotifyError::Rejected(format!("gateway answered {}", response.status())));
                }
                Err(e) if e.is_timeout() => last = NotifyError::Timeout,
                Err(e) if e.is_connect() || e.is_request() => {
                    last = NotifyError::Unavailable(format!("gateway unreachable: {e}"));
                }
                Err(e) => return Err(NotifyError::Unavailable(e.to_string())),
            }
        }
        Err(last)
    }
}

/// The start of a successful response's body (gateways often return a message id there).
async fn read_reference(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    let text: String = String::from_utf8_lossy(&bytes).trim().chars().take(REFERENCE_CHARS).collect();
    (!text.is_empty()).then_some(text)
}

/// Fills `{to}` and `{text}` in one pass (so a `{to}` inside the text stays as written) with
/// the values escaped for a JSON string; the template supplies the quotes.
pub fn render_template(template: &str, to: &str, text: &str) -> String {
    let mut out = String::with_capacity(template.len() + to.len() + text.len() * 2);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{to}") {
            out.push_str(&json_escape(to));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{text}") {
            out.push_str(&json_escape(text));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The contents of a JSON string literal for `s`, without the surrounding quotes.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_with_escaped_values_in_one_pass() {
        let t = r#"{"msisdn": "{to}", "content": "{text}", "brand": "XACTHUC"}"#;
        let body = render_template(t, "0901234289", "Mã \"OTP\": 123456\n{to} \\ {text}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| unreachable!("{e}: {body}"));
        assert_eq!(v["msisdn"], "0901234289");
        assert_eq!(v["content"], "Mã \"OTP\": 123456\n{to} \\ {text}");
        assert_eq!(v["brand"], "XACTHUC");
        assert_eq!(render_template("{x}{to", "a", "b"), "{x}{to");
        assert_eq!(json_escape("\u{1}"), "\\u0001");
    }
}
