//! Verifying a signed challenge: the signature over the exact challenge bytes, the chain to
//! an anchor of an allowed profile (RFC 5280 path building by webpki, with the signer's and
//! the store's intermediates), validity at the verification time, the key usage, and
//! revocation from CRLs. Pure: the caller passes the time and any CRLs it fetched.

use super::challenge::{PackageAlgorithm, SignedResponse};
use super::subject;
use super::trust::TrustStore;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator, KeyPurposeIdIter,
    OwnedCertRevocationList, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::*;

/// Why a signed challenge was refused. Each has its own message (`cert_err_<code>` in the
/// locales).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a signature package or CMS signature: {0}")]
    Malformed(String),
    #[error("the signature does not match the challenge")]
    WrongSignature,
    #[error("unsupported key or signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("the certificate does not chain to a trusted issuer of the allowed profiles")]
    Untrusted,
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate has been revoked")]
    Revoked,
    #[error("the certificate's revocation status is unknown")]
    RevocationUnknown,
    #[error("the certificate's key usage allows neither digitalSignature nor nonRepudiation")]
    KeyUsage,
}

impl CertError {
    /// A stable code: audit details and the message key `cert_err_<code>`.
    pub fn code(&self) -> &'static str {
        match self {
            CertError::Malformed(_) => "malformed",
            CertError::WrongSignature => "wrong_signature",
            CertError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            CertError::Untrusted => "untrusted",
            CertError::Expired => "expired",
            CertError::NotYetValid => "not_yet_valid",
            CertError::Revoked => "revoked",
            CertError::RevocationUnknown => "revocation_unknown",
            CertError::KeyUsage => "key_usage",
        }
    }
}

/// What the gateway shows and records about a certificate.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CertificateInfo {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub subject_cn: String,
    pub subject: String,
    pub issuer: String,
    /// Lower-case hex.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub uids: Vec<String>,
    /// `http://` CRL distribution points (RFC 5280 §4.2.1.13).
    pub crl_urls: Vec<String>,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err(CertError::Malformed("trailing data after the certificate".into())),
        Err(e) => Err(CertError::Malformed(format!("certificate: {e}"))),
    }
}

/// Reads the fields of a certificate.
pub fn describe(der: &[u8]) -> Result<CertificateInfo, CertError> {
    let cert = parse(der)?;
    let mut crl_urls = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n
                            && u.starts_with("http://")
                        {
                            crl_urls.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(CertificateInfo {
        fingerprint: fingerprint(der),
        subject_cn: subject::common_name(cert.subject()),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        uids: subject::uids(cert.subject()),
        crl_urls,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Rsa,
    EcP256,
}

fn key_type(cert: &X509Certificate<'_>) -> Result<KeyType, CertError> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
        Ok(KeyType::Rsa)
    } else if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()) == Some(OID_EC_P256)
    {
        Ok(KeyType::EcP256)
    } else {
        Err(CertError::UnsupportedAlgorithm(spki.algorithm.algorithm.to_id_string()))
    }
}

/// Checks `signature` over `message` with the certificate's key. `alg` picks the RSA padding;
/// for EC keys it must be ES256.
fn check_signature(
    cert: &X509Certificate<'_>,
    alg: PackageAlgorithm,
    message: &[u8],
    sig: &[u8],
) -> Result<(), CertError> {
    let key = &cert.public_key().subject_public_key.data;
    let algorithm: &'static dyn VerificationAlgorithm = match (key_type(cert)?, alg) {
        (KeyType::Rsa, PackageAlgorithm::RS256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeyType::Rsa, PackageAlgorithm::PS256) => &signature::RSA_PSS_2048_8192_SHA256,
        (KeyType::EcP256, PackageAlgorithm::ES256) if sig.len() == 64 => &signature::ECDSA_P256_SHA256_FIXED,
        (KeyType::EcP256, PackageAlgorithm::ES256) => &signature::ECDSA_P256_SHA256_ASN1,
        (k, a) => return Err(CertError::UnsupportedAlgorithm(format!("{} with a {k:?} key", a.as_str()))),
    };
    UnparsedPublicKey::new(algorithm, key.as_ref()).verify(message, sig).map_err(|_| CertError::WrongSignature)
}

/// The revocation check's outcome, kept as evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    /// A current CRL of the issuer does not list the certificate.
    Good,
    /// Only an out-of-date CRL of the issuer was available, and it does not list it (allowed
    /// when not failing closed).
    GoodStaleCrl,
    /// No CRL of the issuer was available (allowed when not failing closed).
    Unknown,
}

/// How to verify.
pub struct VerifyOptions<'a> {
    /// Profiles whose anchors are acceptable, in order of preference.
    pub profiles: &'a [&'a str],
    pub now: i64,
    /// Refuse when no current CRL of the issuer is available.
    pub fail_closed: bool,
    /// CRLs (DER) fetched from distribution points, in addition to the store's.
    pub extra_crls: &'a [Vec<u8>],
}

/// A verified signature.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    pub certificate: CertificateInfo,
    /// The signer's certificate, DER.
    #[serde(skip)]
    pub der: Vec<u8>,
    pub profile: String,
    pub key_type: KeyType,
    /// `RS256`, `PS256`, `ES256`, or `CMS/…` for a CMS signature.
    pub algorithm: String,
    pub revocation: RevocationStatus,
    /// Fingerprints of the validated path, the signer's first, the anchor's last.
    pub path: Vec<String>,
}

/// Accepts any extended key usage: signing certificates carry varied EKUs (or none); the key
/// usage bits are what the gateway checks (see [`check_key_usage`]).
struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// The key usage extension must be present and allow `digitalSignature` or
/// `nonRepudiation` (`contentCommitment`), RFC 5280 §4.2.1.3.
fn check_key_usage(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() || ku.value.non_repudiation() => Ok(()),
        Ok(_) => Err(CertError::KeyUsage),
        Err(e) => Err(CertError::Malformed(format!("key usage: {e}"))),
    }
}

/// Verifies `response` over `challenge`.
pub fn verify(
    store: &TrustStore,
    challenge: &[u8],
    response: &SignedResponse,
    opts: &VerifyOptions<'_>,
) -> Result<Verified, CertError> {
    let (chain, algorithm) = match response {
        SignedResponse::Package { algorithm, signature, certificates } => {
            let leaf = certificates.first().ok_or_else(|| CertError::Malformed("no certificate".into()))?;
            check_signature(&parse(leaf)?, *algorithm, challenge, signature)?;
            (certificates.clone(), algorithm.as_str().to_string())
        }
        SignedResponse::Cms(der) => super::cms::verify_detached(der, challenge, check_signature)?,
    };
    let leaf_der = chain.first().ok_or_else(|| CertError::Malformed("no certificate".into()))?;
    let leaf = parse(leaf_der)?;
    let key_type = key_type(&leaf)?;
    check_key_usage(&leaf)?;
    let validity = leaf.validity();
    if validity.not_after.timestamp() < opts.now {
        return Err(CertError::Expired);
    }
    if validity.not_before.timestamp() > opts.now {
        return Err(CertError::NotYetValid);
    }
    let (profile, revocation, path) = validate_path(store, &chain, opts)?;
    Ok(Verified {
        certificate: describe(leaf_der)?,
        der: leaf_der.clone(),
        profile,
        key_type,
        algorithm,
        revocation,
        path,
    })
}

fn map_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as W;
    match e {
        W::CertExpired { .. } => CertError::Expired,
        W::CertNotValidYet { .. } => CertError::NotYetValid,
        W::CertRevoked => CertError::Revoked,
        W::UnknownRevocationStatus | W::CrlExpired { .. } => CertError::RevocationUnknown,
        W::UnsupportedSignatureAlgorithmContext(_) | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertError::UnsupportedAlgorithm(format!("{e:?}"))
        }
        _ => CertError::Untrusted,
    }
}

fn validate_path(
    store: &TrustStore,
    chain: &[Vec<u8>],
    opts: &VerifyOptions<'_>,
) -> Result<(String, RevocationStatus, Vec<String>), CertError> {
    let leaf_der = CertificateDer::from(chain[0].as_slice());
    let ee = EndEntityCert::try_from(&leaf_der).map_err(|e| CertError::Malformed(format!("certificate: {e}")))?;
    let mut intermediates: Vec<CertificateDer<'_>> =
        chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    intermediates.extend(store.intermediates().iter().map(|c| CertificateDer::from(c.as_slice())));
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(opts.now.max(0) as u64));
    let crls: Vec<CertRevocationList<'static>> = store
        .crls()
        .iter()
        .chain(opts.extra_crls.iter())
        .filter_map(|d| OwnedCertRevocationList::from_der(d).ok())
        .map(CertRevocationList::from)
        .collect();
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
    let mut first_error = CertError::Untrusted;
    for profile in opts.profiles {
        let anchor_ders: Vec<CertificateDer<'_>> =
            store.anchors(profile).iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        // Anchors that parse, with the fingerprint of their certificate (for the evidence).
        let (anchors, anchor_prints): (Vec<_>, Vec<_>) = anchor_ders
            .iter()
            .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok().map(|a| (a, fingerprint(d.as_ref()))))
            .unzip();
        if anchors.is_empty() {
            continue;
        }
        let run = |status: UnknownStatusPolicy, expiry: ExpirationPolicy| {
            let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
                b.with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(status)
                    .with_expiration_policy(expiry)
                    .build()
            });
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                time,
                AnyPurpose,
                revocation,
                None,
            )
            .map(|p| {
                let mut path = vec![fingerprint(&chain[0])];
                path.extend(p.intermediate_certificates().map(|c| fingerprint(c.der().as_ref())));
                if let Some(i) = anchors.iter().position(|a| a == p.anchor()) {
                    path.push(anchor_prints[i].clone());
                }
                path
            })
        };
        // Without any CRL, webpki checks no revocation at all (the builder needs one CRL).
        let outcome = match run(UnknownStatusPolicy::Deny, ExpirationPolicy::Enforce) {
            Ok(_) if crl_refs.is_empty() && opts.fail_closed => return Err(CertError::RevocationUnknown),
            Ok(path) if crl_refs.is_empty() => Ok((RevocationStatus::Unknown, path)),
            Ok(path) => Ok((RevocationStatus::Good, path)),
            Err(webpki::Error::UnknownRevocationStatus) if !opts.fail_closed => {
                run(UnknownStatusPolicy::Allow, ExpirationPolicy::Enforce).map(|p| (RevocationStatus::Unknown, p))
            }
            Err(webpki::Error::CrlExpired { .. }) if !opts.fail_closed => {
                run(UnknownStatusPolicy::Allow, ExpirationPolicy::Ignore).map(|p| (RevocationStatus::GoodStaleCrl, p))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((status, path)) => return Ok((profile.to_string(), status, path)),
            Err(webpki::Error::UnknownIssuer) => continue,
            Err(e) => {
                let mapped = map_webpki(e);
                if mapped != CertError::Untrusted {
                    return Err(mapped);
                }
                first_error = mapped;
            }
        }
    }
    Err(first_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::certs::challenge::PackageAlgorithm;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256, SigningKey,
    };
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;

    fn params(cn: &str, ca: bool, from: i64, to: i64) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = ::time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        p.not_after = ::time::OffsetDateTime::from_unix_timestamp(to).unwrap();
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        } else {
            p.key_usages = vec![KeyUsagePurpose::ContentCommitment];
            p.distinguished_name.push(DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]), "CCCD:001090012345");
        }
        p
    }

    struct Fixture {
        store: TrustStore,
        root: CertifiedIssuer<'static, KeyPair>,
    }

    fn fixture() -> Fixture {
        let root = CertifiedIssuer::self_signed(
            params("Root", true, NOW - 1000, NOW + 100_000),
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        )
        .unwrap();
        let mut profiles = BTreeMap::new();
        profiles.insert("public".to_string(), vec![root.der().to_vec()]);
        Fixture { store: TrustStore::from_parts(profiles, Vec::new(), Vec::new()), root }
    }

    fn leaf(f: &Fixture, p: CertificateParams) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        (p.signed_by(&key, &f.root).unwrap().der().to_vec(), key)
    }

    fn run(
        store: &TrustStore,
        der: &[u8],
        key: &KeyPair,
        signed: &[u8],
        profiles: &[&str],
        fail_closed: bool,
    ) -> Result<Verified, CertError> {
        let response = SignedResponse::Package {
            algorithm: PackageAlgorithm::ES256,
            signature: key.sign(signed).unwrap(),
            certificates: vec![der.to_vec()],
        };
        verify(store, b"challenge", &response, &VerifyOptions { profiles, now: NOW, fail_closed, extra_crls: &[] })
    }

    #[test]
    fn a_good_signature_verifies_and_describes_the_certificate() {
        let f = fixture();
        let (der, key) = leaf(&f, params("NGUYỄN VĂN AN", false, NOW - 10, NOW + 10));
        let v = run(&f.store, &der, &key, b"challenge", &["public"], false).unwrap();
        assert_eq!(v.profile, "public");
        assert_eq!(v.revocation, RevocationStatus::Unknown, "no CRL, not failing closed");
        assert_eq!(v.certificate.subject_cn, "NGUYỄN VĂN AN");
        assert_eq!(v.certificate.uids, vec!["CCCD:001090012345".to_string()]);
        assert_eq!(v.certificate.fingerprint, fingerprint(&der));
        assert_eq!(v.path, vec![fingerprint(&der), fingerprint(f.root.der())], "leaf and anchor");
    }

    #[test]
    fn each_failure_is_named() {
        let f = fixture();
        let (der, key) = leaf(&f, params("A", false, NOW - 10, NOW + 10));
        assert_eq!(run(&f.store, &der, &key, b"other", &["public"], false).unwrap_err(), CertError::WrongSignature);
        assert_eq!(run(&f.store, &der, &key, b"challenge", &["government"], false).unwrap_err(), CertError::Untrusted);
        assert_eq!(
            run(&f.store, &der, &key, b"challenge", &["public"], true).unwrap_err(),
            CertError::RevocationUnknown
        );
        let (old, key) = leaf(&f, params("A", false, NOW - 100, NOW - 10));
        assert_eq!(run(&f.store, &old, &key, b"challenge", &["public"], false).unwrap_err(), CertError::Expired);
        let (early, key) = leaf(&f, params("A", false, NOW + 10, NOW + 100));
        assert_eq!(run(&f.store, &early, &key, b"challenge", &["public"], false).unwrap_err(), CertError::NotYetValid);
        let mut p = params("A", false, NOW - 10, NOW + 10);
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        let (enc, key) = leaf(&f, p);
        assert_eq!(run(&f.store, &enc, &key, b"challenge", &["public"], false).unwrap_err(), CertError::KeyUsage);
        // An EC key presented as RSA-PSS.
        let (der, key) = leaf(&f, params("A", false, NOW - 10, NOW + 10));
        let response = SignedResponse::Package {
            algorithm: PackageAlgorithm::PS256,
            signature: key.sign(b"challenge").unwrap(),
            certificates: vec![der],
        };
        let opts = VerifyOptions { profiles: &["public"], now: NOW, fail_closed: false, extra_crls: &[] };
        assert!(matches!(verify(&f.store, b"challenge", &response, &opts), Err(CertError::UnsupportedAlgorithm(_))));
    }

    fn with_crl(f: &Fixture, revoked: &[u64], next_update: i64) -> TrustStore {
        let crl = rcgen::CertificateRevocationListParams {
            this_update: ::time::OffsetDateTime::from_unix_timestamp(NOW - 100_000).unwrap(),
            next_update: ::time::OffsetDateTime::from_unix_timestamp(next_update).unwrap(),
            crl_number: rcgen::SerialNumber::from(7u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: ::time::OffsetDateTime::from_unix_timestamp(NOW - 50_000).unwrap(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&f.root)
        .unwrap();
        let mut profiles = BTreeMap::new();
        profiles.insert("public".to_string(), vec![f.root.der().to_vec()]);
        TrustStore::from_parts(profiles, Vec::new(), vec![crl.der().to_vec()])
    }

    #[test]
    fn revocation_follows_the_crl_and_the_fail_closed_setting() {
        let f = fixture();
        let mut p = params("A", false, NOW - 10, NOW + 10);
        p.serial_number = Some(rcgen::SerialNumber::from(42u64));
        let (der, key) = leaf(&f, p);
        let check = |store: TrustStore, fail_closed: bool| {
            run(&store, &der, &key, b"challenge", &["public"], fail_closed).map(|v| v.revocation)
        };
        assert_eq!(check(with_crl(&f, &[42], NOW + 100), false), Err(CertError::Revoked));
        assert_eq!(check(with_crl(&f, &[41], NOW + 100), true), Ok(RevocationStatus::Good));
        // A CRL past its nextUpdate: unknown status when failing closed, otherwise still read.
        assert_eq!(check(with_crl(&f, &[41], NOW - 100), true), Err(CertError::RevocationUnknown));
        assert_eq!(check(with_crl(&f, &[41], NOW - 100), false), Ok(RevocationStatus::GoodStaleCrl));
        assert_eq!(check(with_crl(&f, &[42], NOW - 100), false), Err(CertError::Revoked));
    }

    #[test]
    fn garbage_is_malformed() {
        let f = fixture();
        let response = SignedResponse::Cms(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let opts = VerifyOptions { profiles: &["public"], now: NOW, fail_closed: false, extra_crls: &[] };
        assert!(matches!(verify(&f.store, b"x", &response, &opts), Err(CertError::Malformed(_))));
        assert!(describe(b"\x30\x00").is_err());
    }
}
