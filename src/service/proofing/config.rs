//! `[proofing]`: which online AS-3 verification methods are offered, and their settings.
//!
//! ```toml
//! [proofing.certificate]          # a signature with a `public` certificate whose UID is the ID number
//! enabled = true
//! profile = "public"
//!
//! [proofing.registry]             # ask a population / identity registry over HTTPS
//! enabled = true
//! url = "https://registry.example.gov.vn/v1/verify"
//! auth_header = "Authorization"   # sent with the value read from `auth_value_file`
//! auth_value_file = "/etc/xacthuc/registry-token"
//! timeout_ms = 5000
//!
//! [proofing.review]               # uploaded photos of the ID card, approved by staff
//! enabled = true
//! min_bytes = 51200
//! max_bytes = 1048576
//! ```

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProofingConfig {
    pub certificate: CertificateMethodConfig,
    pub registry: RegistryConfig,
    pub review: ReviewConfig,
}

/// AS-3 by a signature with a certificate from `profile` (subject UID `CCCD:<declared ID>`, CN
/// equal to the declared full name, case- and diacritic-insensitive).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateMethodConfig {
    pub enabled: bool,
    /// The trust profile (a directory under the certificates trust dir) the certificate must chain to.
    pub profile: String,
}

impl Default for CertificateMethodConfig {
    fn default() -> Self {
        CertificateMethodConfig { enabled: true, profile: "public".into() }
    }
}

/// AS-3 by an external registry asked over HTTPS (http only in development).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub enabled: bool,
    pub url: Option<String>,
    /// Header carrying the credential, e.g. `Authorization`.
    pub auth_header: Option<String>,
    /// File holding the header's value (e.g. `Bearer …`); never put the secret in the config.
    pub auth_value_file: Option<PathBuf>,
    pub timeout_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { enabled: false, url: None, auth_header: None, auth_value_file: None, timeout_ms: 5000 }
    }
}

/// AS-3 by review: photos of the ID card uploaded by the citizen, approved by staff.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    pub enabled: bool,
    /// Each file's size bounds, in bytes (the circular recommends 50 KB–1 MB).
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig { enabled: true, min_bytes: 50 * 1024, max_bytes: 1024 * 1024 }
    }
}
