//! The trust store: anchors grouped into named profiles, intermediates, and CRL files.
//!
//! Layout of the trust directory (`[certificates] trust_dir`, default `./certs`):
//!
//! ```text
//! certs/
//!   profiles/<name>/*.pem|*.crt|*.cer|*.der   trust anchors of profile <name> (public, government, …)
//!   intermediates/*.pem|…                     issuing CAs (also accepted from the signer's chain)
//!   crl/*.crl|*.pem|*.der                     certificate revocation lists (RFC 5280 §5)
//! ```
//!
//! A file may hold several PEM certificates. Loading refuses, with one line per problem, any
//! file that does not parse, an anchor that is not a CA, has expired or is not yet valid, and
//! a CRL that does not parse: a gateway that silently trusts less (or more) than configured is
//! worse than one that does not start.

use super::pem_blocks;
use std::collections::BTreeMap;
use std::path::Path;
use x509_parser::prelude::*;

/// Profiles the policies know (`certificate` / `smart_card` requirements name them).
pub const KNOWN_PROFILES: &[&str] = &["public", "government"];

#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    profiles: BTreeMap<String, Vec<Vec<u8>>>,
    intermediates: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
}

/// A loaded trust store and what loading noticed without refusing (expired intermediates are
/// skipped, an empty store disables certificates).
pub struct Loaded {
    pub store: TrustStore,
    pub warnings: Vec<String>,
}

fn read_der_items(path: &Path, label: &[&str]) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: neither DER nor PEM", path.display()))?;
    let items = pem_blocks(&text, label);
    if items.is_empty() {
        return Err(format!("{}: no {} found (PEM or DER expected)", path.display(), label.join("/")));
    }
    Ok(items)
}

fn files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| ["pem", "crt", "cer", "der", "crl"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn date(t: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&::time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

impl TrustStore {
    /// A store from certificates in memory (tests, the CLI).
    pub fn from_parts(
        profiles: BTreeMap<String, Vec<Vec<u8>>>,
        intermediates: Vec<Vec<u8>>,
        crls: Vec<Vec<u8>>,
    ) -> TrustStore {
        TrustStore { profiles, intermediates, crls }
    }

    /// Loads and checks the trust directory at time `now`. A missing directory is an empty
    /// store. Errors list every problem found.
    pub fn load(dir: &Path, now: i64) -> Result<Loaded, Vec<String>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut store = TrustStore::default();
        if !dir.exists() {
            warnings.push(format!("{}: no trust directory; signing in with a certificate is off", dir.display()));
            return Ok(Loaded { store, warnings });
        }
        let profiles_dir = dir.join("profiles");
        let mut names: Vec<_> = match std::fs::read_dir(&profiles_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        for pdir in names {
            let name = pdir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut anchors = Vec::new();
            match files(&pdir) {
                Ok(list) => {
                    for f in list {
                        match read_der_items(&f, &["CERTIFICATE"]) {
                            Ok(items) => {
                                for der in items {
                                    match check_ca(&der, now) {
                                        Ok(()) => anchors.push(der),
                                        Err(e) => problems.push(format!("{}: trust anchor {e}", f.display())),
                                    }
                                }
                            }
                            Err(e) => problems.push(e),
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
            if anchors.is_empty() {
                warnings.push(format!("{}: profile {name:?} has no trust anchors", pdir.display()));
            }
            store.profiles.insert(name, anchors);
        }
        match files(&dir.join("intermediates")) {
            Ok(list) => {
                for f in list {
                    match read_der_items(&f, &["CERTIFICATE"]) {
                        Ok(items) => {
                            for der in items {
                                match check_ca(&der, now) {
                                    Ok(()) => store.intermediates.push(der),
                                    Err(e) if e.starts_with("expired") => {
                                        warnings.push(format!("{}: intermediate {e}; skipped", f.display()))
                                    }
                                    Err(e) => problems.push(format!("{}: intermediate {e}", f.display())),
                                }
                            }
                        }
                        Err(e) => problems.push(e),
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        match files(&dir.join("crl")) {
            Ok(list) => {
                for f in list {
                    match read_der_items(&f, &["X509 CRL"]) {
                        Ok(items) => {
                            for der in items {
                                match check_crl(&der) {
                                    Ok(()) => store.crls.push(der),
                                    Err(e) => problems.push(format!("{}: {e}", f.display())),
                                }
                            }
                        }
                        Err(e) => problems.push(e),
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        if store.profiles.values().all(|a| a.is_empty()) {
            warnings.push(format!("{}: no trust anchors; signing in with a certificate is off", dir.display()));
        }
        if problems.is_empty() { Ok(Loaded { store, warnings }) } else { Err(problems) }
    }

    /// Profiles that have at least one anchor.
    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles.iter().filter(|(_, a)| !a.is_empty()).map(|(n, _)| n.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.profile_names().is_empty()
    }

    pub fn anchors(&self, profile: &str) -> &[Vec<u8>] {
        self.profiles.get(profile).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.intermediates
    }

    pub fn crls(&self) -> &[Vec<u8>] {
        &self.crls
    }
}

/// A CA certificate usable at `now`: parses, is a CA, and is within its validity.
fn check_ca(der: &[u8], now: i64) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    let subject = cert.subject().to_string();
    let v = cert.validity();
    if v.not_after.timestamp() < now {
        return Err(format!("expired on {} ({subject})", date(v.not_after.timestamp())));
    }
    if v.not_before.timestamp() > now {
        return Err(format!("is not valid before {} ({subject})", date(v.not_before.timestamp())));
    }
    if !cert.is_ca() {
        return Err(format!("is not a CA certificate (basicConstraints cA is not set) ({subject})"));
    }
    webpki::anchor_from_trusted_cert(&rustls_pki_types::CertificateDer::from(der))
        .map_err(|e| format!("is not usable as an anchor: {e} ({subject})"))?;
    Ok(())
}

fn check_crl(der: &[u8]) -> Result<(), String> {
    x509_parser::parse_x509_crl(der).map_err(|e| format!("CRL does not parse: {e}"))?;
    webpki::OwnedCertRevocationList::from_der(der).map_err(|e| format!("CRL not usable: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};

    const NOW: i64 = 1_800_000_000;

    fn cert(ca: bool, from: i64, to: i64) -> String {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "Root");
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p.not_before = ::time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        p.not_after = ::time::OffsetDateTime::from_unix_timestamp(to).unwrap();
        p.self_signed(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()).unwrap().pem()
    }

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_good_directory_loads_its_profiles() {
        let dir = tempfile::tempdir().unwrap();
        // Two anchors in one file, and an empty profile.
        let two = format!("{}{}", cert(true, NOW - 10, NOW + 10), cert(true, NOW - 10, NOW + 10));
        write(dir.path(), "profiles/public/roots.pem", &two);
        std::fs::create_dir_all(dir.path().join("profiles/government")).unwrap();
        write(dir.path(), "intermediates/old.pem", &cert(true, NOW - 100, NOW - 10));
        let loaded = TrustStore::load(dir.path(), NOW).unwrap();
        assert_eq!(loaded.store.profile_names(), vec!["public"]);
        assert_eq!(loaded.store.anchors("public").len(), 2);
        assert!(loaded.store.intermediates().is_empty(), "the expired intermediate is skipped");
        assert!(
            loaded.warnings.iter().any(|w| w.contains("old.pem: intermediate expired on")),
            "{:?}",
            loaded.warnings
        );
        assert!(loaded.warnings.iter().any(|w| w.contains("\"government\" has no trust anchors")));
    }

    #[test]
    fn every_problem_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "profiles/public/expired.pem", &cert(true, NOW - 100, NOW - 10));
        write(dir.path(), "profiles/public/future.pem", &cert(true, NOW + 10, NOW + 100));
        write(dir.path(), "profiles/public/leaf.pem", &cert(false, NOW - 10, NOW + 10));
        write(dir.path(), "profiles/public/junk.pem", "hello");
        write(dir.path(), "crl/bad.crl", "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n");
        let problems = TrustStore::load(dir.path(), NOW).err().unwrap();
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(has("expired.pem: trust anchor expired on 2027-01-15T"), "{problems:?}");
        assert!(has("future.pem: trust anchor is not valid before"), "{problems:?}");
        assert!(has("leaf.pem: trust anchor is not a CA certificate"), "{problems:?}");
        assert!(has("junk.pem: no CERTIFICATE found"), "{problems:?}");
        assert!(has("bad.crl: CRL does not parse"), "{problems:?}");
    }

    #[test]
    fn a_missing_directory_is_an_empty_store() {
        let loaded = TrustStore::load(Path::new("/nonexistent/xacthuc-certs"), NOW).unwrap();
        assert!(loaded.store.is_empty());
    }
}
