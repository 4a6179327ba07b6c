//! The identity-registry adapter (AS-3 by registry; docs/proofing.md, "AS-3 online").
//!
//! One JSON `POST` to `[proofing.registry] url`, with the header `auth_header` set to the
//! contents of `auth_value_file` (trimmed), and a deadline of `timeout_ms`:
//!
//! ```json
//! {"id_number":"001190000123","full_name":"Phạm Thị Hoa","birth_date":"1985-11-20","sex":"female"}
//! ```
//!
//! The registry answers `200` with `{"result":"match","reference":"…"}` or
//! `{"result":"no_match","reference":"…"}` (`reference` optional for `no_match`). Anything
//! else — a timeout, a connection failure, another status, a body that is not that JSON, a
//! `match` without a reference — is [`RegistryError`]: the registry could not answer, and
//! nothing is concluded about the citizen.
//!
//! The ID number is personal data: it is sent in the body only, never in the URL, and never
//! logged (errors name the failure, not the request).

use super::config::RegistryConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest registry answer read.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// The longest reference kept (it goes into the evidence record).
const MAX_REFERENCE_CHARS: usize = 200;

/// What the gateway asks: the declared identity.
#[derive(Clone, Serialize)]
pub struct RegistryRequest {
    pub id_number: String,
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `male` | `female`.
    pub sex: String,
}

impl std::fmt::Debug for RegistryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryRequest")
            .field("id_number", &crate::identity::national_id::mask(&self.id_number))
            .finish()
    }
}

#[derive(Deserialize)]
struct RegistryResponse {
    result: String,
    #[serde(default)]
    reference: Option<String>,
}

/// The registry's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryAnswer {
    /// The registry holds this person with these details; `reference` identifies its answer.
    Match { reference: String },
    /// The details do not match a person in the registry.
    NoMatch { reference: Option<String> },
}

/// Why the registry gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry is not configured: {0}")]
    NotConfigured(String),
    #[error("the registry did not answer within the timeout")]
    Timeout,
    #[error("the registry could not be reached: {0}")]
    Transport(String),
    #[error("the registry answered HTTP {0}")]
    Status(u16),
    #[error("the registry's answer is not understood: {0}")]
    BadResponse(String),
}

impl RegistryError {
    /// A short code for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::NotConfigured(_) => "not_configured",
            RegistryError::Timeout => "timeout",
            RegistryError::Transport(_) => "transport",
            RegistryError::Status(_) => "status",
            RegistryError::BadResponse(_) => "bad_response",
        }
    }
}

/// Where to post, checked: an absolute `https` URL (`http` only in development).
pub fn endpoint(config: &RegistryConfig, development: bool) -> Result<url::Url, RegistryError> {
    let raw = config.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let raw = raw.ok_or_else(|| RegistryError::NotConfigured("proofing.registry.url is not set".into()))?;
    let url = url::Url::parse(raw).map_err(|e| RegistryError::NotConfigured(format!("proofing.registry.url: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if development => Ok(url),
        _ => Err(RegistryError::NotConfigured(
            "proofing.registry.url: must be https (http is allowed only with development = true)".into(),
        )),
    }
}

impl RegistryConfig {
    /// Configuration problems, each a full sentence naming the key (checked at start-up).
    pub fn problems(&self, development: bool) -> Vec<String> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if let Err(RegistryError::NotConfigured(m)) = endpoint(self, development) {
            p.push(m);
        }
        if self.auth_header.is_some() != self.auth_value_file.is_some() {
            p.push("proofing.registry: auth_header and auth_value_file go together".into());
        }
        if let Some(h) = &self.auth_header
            && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            p.push(format!("proofing.registry.auth_header: {h:?} is not a header name"));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            p.push("proofing.registry.timeout_ms: between 1 and 60000".into());
        }
        p
    }
}

fn auth(
    config: &RegistryConfig,
) -> Result<Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, RegistryError> {
    let (Some(name), Some(file)) = (&config.auth_header, &config.auth_value_file) else {
        return Ok(None);
    };
    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| RegistryError::NotConfigured("proofing.registry.auth_header is not a header name".into()))?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        RegistryError::NotConfigured(format!("proofing.registry.auth_value_file: cannot read {}: {e}", file.display()))
    })?;
    let mut value = reqwest::header::HeaderValue::from_str(text.trim())
        .map_err(|_| RegistryError::NotConfigured("proofing.registry.auth_value_file: not a header value".into()))?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// Asks the registry (see the module documentation).
pub async fn ask(
    http: &reqwest::Client,
    config: &RegistryConfig,
    development: bool,
    request: &RegistryRequest,
) -> Result<RegistryAnswer, RegistryError> {
    let url = endpoint(config, development)?;
    let mut builder = http
        .post(url)
        .timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .header(reqwest::header::ACCEPT, "application/json")
        .json(request);
    if let Some((name, value)) = auth(config)? {
        builder = builder.header(name, value);
    }
    let outcome = async {
        let resp = builder.send().await?;
        let status = resp.status();
        if !status.is_success() {
            return Ok(Err(RegistryError::Status(status.as_u16())));
        }
        if resp.content_length().is_some_and(|n| n as usize > MAX_RESPONSE_BYTES) {
            return Ok(Err(RegistryError::BadResponse("answer too large".into())));
        }
        let body = resp.bytes().await?;
        Ok(Ok(body))
    }
    .await;
    let body = match outcome {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(transport(e)),
    };
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(RegistryError::BadResponse("answer too large".into()));
    }
    interpret(&body)
}

fn transport(e: reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        RegistryError::Timeout
    } else {
        // Without the URL: the error is logged and audited, the URL is configuration.
        RegistryError::Transport(e.without_url().to_string())
    }
}

/// Reads the registry's JSON answer.
pub fn interpret(body: &[u8]) -> Result<RegistryAnswer, RegistryError> {
    let r: RegistryResponse =
        serde_json::from_slice(body).map_err(|e| RegistryError::BadResponse(format!("not the expected JSON: {e}")))?;
    let reference = r.reference.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(s) = &reference
        && (s.chars().count() > MAX_REFERENCE_CHARS || s.chars().any(char::is_control))
    {
        return Err(RegistryError::BadResponse("reference too long or with control characters".into()));
    }
    match (r.result.as_str(), reference) {
        ("match", Some(reference)) => Ok(RegistryAnswer::Match { reference }),
        ("match", None) => Err(RegistryError::BadResponse("a match without a reference".into())),
        ("no_match", reference) => Ok(RegistryAnswer::NoMatch { reference }),
        (other, _) => {
            Err(RegistryError::BadResponse(format!("unknown result {:?}", other.chars().take(40).collect::<String>())))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            interpret(br#"{"result":"match","reference":"DC-2026-000123"}"#).unwrap(),
            RegistryAnswer::Match { reference: "DC-2026-000123".into() }
        );
        assert_eq!(interpret(br#"{"result":"no_match"}"#).unwrap(), RegistryAnswer::NoMatch { reference: None });
        assert!(matches!(interpret(br#"{"result":"match"}"#), Err(RegistryError::BadResponse(_))));
        assert!(matches!(interpret(br#"{"result":"maybe","reference":"x"}"#), Err(RegistryError::BadResponse(_))));
        assert!(matches!(interpret(b"<html>"), Err(RegistryError::BadResponse(_))));
    }

    #[test]
    fn https_is_required_outside_development() {
        let mut c = RegistryConfig { enabled: true, url: Some("http://registry.test/v1".into()), ..Default::default() };
        assert!(endpoint(&c, true).is_ok());
        assert!(endpoint(&c, false).is_err());
        assert!(!c.problems(false).is_empty());
        c.url = Some("https://registry.test/v1".into());
        assert!(c.problems(false).is_empty());
        c.url = None;
        assert!(!c.problems(true).is_empty());
    }

    #[test]
    fn the_id_number_is_masked_in_debug_output() {
        let r = RegistryRequest {
            id_number: "001190000123".into(),
            full_name: "Phạm Thị Hoa".into(),
            birth_date: "1990-01-01".into(),
            sex: "female".into(),
        };
        assert!(!format!("{r:?}").contains("001190000123"));
    }
}
