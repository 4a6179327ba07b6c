//! Digital certificates (chứng thư số): signing a one-time challenge with a citizen's
//! certificate as a possession factor (issue 6; docs/certificates.md).
//!
//! This module is pure — no HTTP, no database, no clock, no randomness: time comes in as unix
//! seconds and CRLs fetched over HTTP come in as bytes. The use cases (issuing and spending
//! challenges, CRL fetching, enrolment, sign-in) are in `service::certificates`.
//!
//! - [`challenge`]: the canonical challenge document and the signature package format
//! - [`verify`]: signature, chain to a profile's anchor, validity, key usage, revocation
//! - [`cms`]: detached CMS `SignedData` signatures
//! - [`trust`]: the trust store (`certs/` layout: profiles, intermediates, CRLs)
//! - [`subject`]: the subject's name and UIDs (`CCCD:`, `CMND:`, `MST:` …)

pub mod challenge;
pub mod cms;
pub mod config;
pub mod subject;
pub mod trust;
pub mod verify;

pub use challenge::{ChallengePurpose, PackageAlgorithm, SignaturePackage, SignedResponse};
pub use config::CertificatesConfig;
pub use trust::TrustStore;
pub use verify::{CertError, CertificateInfo, RevocationStatus, Verified, VerifyOptions};

/// The DER bodies of the PEM blocks labelled with one of `labels` (RFC 7468).
pub fn pem_blocks(text: &str, labels: &[&str]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            body = labels.contains(&label).then(String::new);
        } else if line.starts_with("-----END ") {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b.as_bytes())
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}
