//! `[certificates]`: the trust store and revocation checking (docs/configuration.md).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesConfig {
    /// The trust directory (`profiles/<name>/`, `intermediates/`, `crl/`; see certs/README.md).
    /// Missing or without anchors: signing in with a certificate is off.
    pub trust_dir: PathBuf,
    /// Profiles accepted when a service policy does not name one (`certificate` requirement).
    pub default_profiles: Vec<String>,
    /// Fetch CRLs from the certificate's CRL distribution point (plain `http://` only).
    pub fetch_crls: bool,
    /// Refuse a certificate whose revocation status cannot be established (no current CRL of
    /// its issuer, from `crl/` or fetched). On by default: the regulation asks for it from AS-3.
    pub fail_closed: bool,
    /// Time limit of one CRL download.
    pub fetch_timeout_seconds: u64,
    /// Largest CRL accepted, in bytes.
    pub max_crl_bytes: usize,
    /// How long a fetched CRL is reused when it names no `nextUpdate` (otherwise until then,
    /// at most this long).
    pub crl_cache_seconds: i64,
    /// Lifetime of a challenge.
    pub challenge_seconds: i64,
}

impl Default for CertificatesConfig {
    fn default() -> Self {
        CertificatesConfig {
            trust_dir: PathBuf::from("./certs"),
            default_profiles: vec!["public".into(), "government".into()],
            fetch_crls: false,
            fail_closed: true,
            fetch_timeout_seconds: 5,
            max_crl_bytes: 4 * 1024 * 1024,
            crl_cache_seconds: 3600,
            challenge_seconds: 300,
        }
    }
}

impl CertificatesConfig {
    /// Every problem with the values.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(30..=3600).contains(&self.challenge_seconds) {
            p.push("certificates: challenge_seconds must be between 30 and 3600".into());
        }
        if !(1..=60).contains(&self.fetch_timeout_seconds) {
            p.push("certificates: fetch_timeout_seconds must be between 1 and 60".into());
        }
        if self.max_crl_bytes < 1024 {
            p.push("certificates: max_crl_bytes must be at least 1024".into());
        }
        if self.crl_cache_seconds < 0 {
            p.push("certificates: crl_cache_seconds must not be negative".into());
        }
        if self.default_profiles.is_empty() {
            p.push("certificates: default_profiles must name at least one profile".into());
        }
        p
    }
}
