//! Passkeys (WebAuthn Level 3): the relying party's configuration (`[webauthn]`) and the
//! `webauthn-rs` instance built from it. The ceremonies themselves are `service::passkeys`.
//!
//! Relying party ID and origins: a credential is bound to the RP ID, a registrable suffix of
//! the page's host (W3C WebAuthn L3 §5.1.3 step 8, §5.1.4.1 step 7), and every assertion is
//! checked against the allowed origins (§7.2 step 9). By default both come from the issuer, so
//! `http://localhost:8080` in development gives RP ID `localhost` (browsers refuse an IP
//! address as RP ID).

use serde::Deserialize;
use std::path::PathBuf;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{AttestationCaList, AttestationCaListBuilder, Webauthn, WebauthnBuilder};

/// `[webauthn]`. Every key is optional; the defaults derive from `issuer`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    /// Relying party ID. Empty: the issuer's host. Otherwise the issuer's host or a registrable
    /// suffix of it (`example.gov.vn` for `https://id.example.gov.vn`).
    pub rp_id: String,
    /// The name an authenticator shows when a passkey is created.
    pub rp_name: String,
    /// Further origins whose pages may run ceremonies (the issuer's origin always may),
    /// e.g. `https://dichvucong.example.gov.vn`. Each must be within the RP ID.
    pub origins: Vec<String>,
    /// How long a ceremony (challenge) stays valid, in seconds (30–600).
    pub ceremony_seconds: i64,
    /// Optional allow-list of authenticator models. When non-empty, registration asks for
    /// attestation and accepts only an authenticator whose attestation chains to one of these
    /// CAs with one of these AAGUIDs.
    pub authenticators: Vec<AllowedAuthenticator>,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        WebauthnConfig {
            rp_id: String::new(),
            rp_name: "xacthuc".into(),
            origins: Vec::new(),
            ceremony_seconds: 300,
            authenticators: Vec::new(),
        }
    }
}

/// One certified authenticator model: its AAGUID and the PEM file of its attestation root CA.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedAuthenticator {
    /// The model's AAGUID, e.g. `ee882879-721c-4913-9775-3dfcce97072a` (YubiKey 5 NFC).
    pub aaguid: String,
    /// A description for operators and logs.
    #[serde(default)]
    pub name: String,
    /// PEM file of the vendor's attestation root CA.
    pub ca_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum WebauthnConfigError {
    #[error("webauthn: {0}")]
    Invalid(String),
}

impl WebauthnConfig {
    /// The RP ID in force: configured, or the issuer's host. An IP address cannot be an RP ID
    /// (§5.1.3 needs a domain), so in development an issuer like `http://127.0.0.1:8080` falls
    /// back to `localhost`: passkeys then work on pages opened at `http://localhost:<port>`.
    pub fn rp_id(&self, issuer: &str, development: bool) -> String {
        if !self.rp_id.is_empty() {
            return self.rp_id.to_ascii_lowercase();
        }
        let host = Url::parse(issuer).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default();
        let is_ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok();
        if is_ip && development { "localhost".into() } else { host }
    }

    /// The origins whose pages may run ceremonies: the issuer's when it lies within the RP ID,
    /// the configured ones, and in development `http://localhost` on any port.
    fn allowed_origins(&self, issuer: &str, development: bool) -> Vec<String> {
        let rp_id = self.rp_id(issuer, development);
        let mut all: Vec<String> = Vec::new();
        if Url::parse(issuer).ok().is_some_and(|u| within(&u, &rp_id)) {
            all.push(issuer.to_string());
        }
        all.extend(self.origins.iter().cloned());
        if development && rp_id == "localhost" {
            all.push("http://localhost".into());
        }
        all
    }

    /// Every problem, each naming its key (for `Config::validate`).
    pub fn problems(&self, issuer: &str, development: bool) -> Vec<String> {
        let mut p = Vec::new();
        let rp_id = self.rp_id(issuer, development);
        if rp_id.is_empty() || rp_id.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok() {
            p.push("webauthn.rp_id: must be a domain name (browsers refuse an IP address as RP ID)".into());
        }
        if !development && !Url::parse(issuer).ok().is_some_and(|u| within(&u, &rp_id)) {
            p.push(format!("webauthn.rp_id: the issuer's host must be {rp_id:?} or a subdomain of it"));
        }
        for (i, o) in self.origins.iter().enumerate() {
            let key = format!("webauthn.origins[{i}]");
            match Url::parse(o) {
                Ok(u) => {
                    if !within(&u, &rp_id) {
                        let host = u.host_str().unwrap_or_default();
                        p.push(format!("{key}: host {host:?} is not within webauthn.rp_id {rp_id:?}"));
                    }
                    if u.scheme() != "https" && !(development && u.scheme() == "http") {
                        p.push(format!("{key}: must be https (http only with development = true)"));
                    }
                }
                Err(e) => p.push(format!("{key}: not a URL ({e})")),
            }
        }
        if !(30..=600).contains(&self.ceremony_seconds) {
            p.push("webauthn.ceremony_seconds: must be between 30 and 600".into());
        }
        if let Err(WebauthnConfigError::Invalid(e)) = self.attestation_cas() {
            p.push(e);
        }
        p
    }

    /// The attestation allow-list, `None` when no model is configured (any authenticator).
    pub fn attestation_cas(&self) -> Result<Option<AttestationCaList>, WebauthnConfigError> {
        if self.authenticators.is_empty() {
            return Ok(None);
        }
        let mut builder = AttestationCaListBuilder::new();
        for (i, a) in self.authenticators.iter().enumerate() {
            let key = format!("webauthn.authenticators[{i}]");
            let aaguid = Uuid::parse_str(&a.aaguid)
                .map_err(|e| WebauthnConfigError::Invalid(format!("{key}.aaguid: not a UUID ({e})")))?;
            let pem = std::fs::read(&a.ca_file).map_err(|e| {
                WebauthnConfigError::Invalid(format!("{key}.ca_file: cannot read {}: {e}", a.ca_file.display()))
            })?;
            // webauthn_attestation_ca's error is not a std error: map it by hand.
            builder.insert_device_pem(&pem, aaguid, a.name.clone(), Default::default()).map_err(|e| {
                WebauthnConfigError::Invalid(format!("{key}.ca_file: not a PEM CA certificate ({e:?})"))
            })?;
        }
        Ok(Some(builder.build()))
    }

    /// The relying party for `issuer`.
    pub fn relying_party(&self, issuer: &str, development: bool) -> Result<Webauthn, WebauthnConfigError> {
        let invalid = |e: &dyn std::fmt::Debug| WebauthnConfigError::Invalid(format!("{e:?}"));
        let rp_id = self.rp_id(issuer, development);
        let origins = self
            .allowed_origins(issuer, development)
            .iter()
            .map(|o| Url::parse(o).map_err(|e| invalid(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = origins.first() else {
            return Err(WebauthnConfigError::Invalid("webauthn: no origin lies within the RP ID".into()));
        };
        let mut builder = WebauthnBuilder::new(&rp_id, first).map_err(|e| invalid(&e))?.rp_name(&self.rp_name);
        for o in &origins[1..] {
            builder = builder.append_allowed_origin(o);
        }
        builder
            // Development pages run on any local port (the tests' ephemeral ones included).
            .allow_any_port(development)
            .timeout(std::time::Duration::from_secs(self.ceremony_seconds.clamp(30, 600) as u64))
            .build()
            .map_err(|e| invalid(&e))
    }
}

/// Whether the URL's host is `rp_id` or a subdomain of it (the RP ID rule of §5.1.3).
fn within(url: &Url, rp_id: &str) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    !rp_id.is_empty() && (host == rp_id || host.ends_with(&format!(".{rp_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issuer() {
        let c = WebauthnConfig::default();
        assert_eq!(c.rp_id("http://localhost:8080", true), "localhost");
        assert!(c.problems("http://localhost:8080", true).is_empty());
        assert!(c.relying_party("http://localhost:8080", true).is_ok());
        // An IP issuer in development: passkeys on http://localhost:<port>.
        assert_eq!(c.rp_id("http://127.0.0.1:8080", true), "localhost");
        assert!(c.relying_party("http://127.0.0.1:8080", true).is_ok());
    }

    #[test]
    fn an_ip_address_or_a_foreign_origin_is_refused() {
        let c = WebauthnConfig::default();
        assert!(c.problems("https://10.0.0.1", false).join(" ").contains("webauthn.rp_id"));
        let c = WebauthnConfig {
            rp_id: "example.gov.vn".into(),
            origins: vec!["https://other.vn".into(), "http://dvc.example.gov.vn".into()],
            ..WebauthnConfig::default()
        };
        let all = c.problems("https://id.example.gov.vn", false).join("\n");
        assert!(all.contains("webauthn.origins[0]: host"), "{all}");
        assert!(all.contains("webauthn.origins[1]: must be https"), "{all}");
    }

    #[test]
    fn an_unreadable_allow_list_is_reported() {
        let c = WebauthnConfig {
            authenticators: vec![AllowedAuthenticator {
                aaguid: "not-a-uuid".into(),
                name: String::new(),
                ca_file: "/nonexistent".into(),
            }],
            ..WebauthnConfig::default()
        };
        assert!(c.problems("http://localhost:8080", true).join(" ").contains("webauthn.authenticators[0].aaguid"));
    }
}
