//! CMS `SignedData` (RFC 5652) with a detached signature over the challenge bytes, as made by
//! `openssl cms -sign -binary` and Vietnamese signing tools. Decoding by the RustCrypto `cms`
//! crate; the signature itself is checked by ring (through the caller's closure).
//!
//! Accepted: one `SignerInfo` whose certificate is in the `certificates` set (by issuer and
//! serial number, or subject key identifier); digest SHA-256; signed attributes, when present,
//! must hold `contentType` = `id-data` and `messageDigest` = SHA-256 of the challenge, and the
//! signature is then over their DER encoding as a `SET OF` (RFC 5652 §5.4); without signed
//! attributes the signature is over the challenge itself. Encapsulated content, if present
//! (an attached signature), must equal the challenge.

use super::challenge::PackageAlgorithm;
use super::verify::CertError;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_parser::prelude::*;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const ID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";

fn malformed(what: &str, e: impl std::fmt::Display) -> CertError {
    CertError::Malformed(format!("CMS {what}: {e}"))
}

/// Verifies a detached CMS signature over `content`; returns the certificates, the signer's
/// first, and a label of the algorithm (`CMS/RS256` …). `check` verifies one signature with a
/// certificate's key.
pub fn verify_detached(
    der: &[u8],
    content: &[u8],
    check: impl Fn(&X509Certificate<'_>, PackageAlgorithm, &[u8], &[u8]) -> Result<(), CertError>,
) -> Result<(Vec<Vec<u8>>, String), CertError> {
    let ci = ContentInfo::from_der(der).map_err(|e| malformed("ContentInfo", e))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(CertError::Malformed(format!("CMS content type {} is not signedData", ci.content_type)));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| malformed("SignedData", e))?;
    if let Some(econtent) = &sd.encap_content_info.econtent {
        let attached: OctetString = econtent.decode_as().map_err(|e| malformed("eContent", e))?;
        if attached.as_bytes() != content {
            return Err(CertError::WrongSignature);
        }
    }
    let mut certs: Vec<Vec<u8>> = Vec::new();
    if let Some(set) = &sd.certificates {
        for choice in set.0.iter() {
            if let cms::cert::CertificateChoices::Certificate(c) = choice {
                certs.push(c.to_der().map_err(|e| malformed("certificate", e))?);
            }
        }
    }
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(CertError::Malformed("CMS must have exactly one signer".into()));
    };
    if si.digest_alg.oid.to_string() != ID_SHA256 {
        return Err(CertError::UnsupportedAlgorithm(format!("CMS digest {}", si.digest_alg.oid)));
    }
    // Find the signer's certificate.
    let signer_index = certs
        .iter()
        .position(|c| {
            let Ok((_, x)) = X509Certificate::from_der(c) else { return false };
            match &si.sid {
                SignerIdentifier::IssuerAndSerialNumber(ias) => {
                    ias.issuer.to_der().is_ok_and(|i| i == x.issuer().as_raw())
                        && ias.serial_number.as_bytes() == x.raw_serial()
                }
                SignerIdentifier::SubjectKeyIdentifier(ski) => x.extensions().iter().any(|e| {
                    matches!(e.parsed_extension(), x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k)
                        if k.0 == ski.0.as_bytes())
                }),
            }
        })
        .ok_or_else(|| CertError::Malformed("CMS has no certificate for its signer".into()))?;
    let signer_der = certs.remove(signer_index);
    certs.insert(0, signer_der);
    let (_, signer) = X509Certificate::from_der(&certs[0]).map_err(|e| malformed("certificate", e))?;

    let signed_bytes: Vec<u8> = match &si.signed_attrs {
        Some(attrs) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, content);
            let mut content_type_ok = false;
            let mut digest_ok = false;
            for a in attrs.iter() {
                let values: Vec<_> = a.values.iter().collect();
                match a.oid.to_string().as_str() {
                    ID_CONTENT_TYPE => {
                        content_type_ok = values.len() == 1
                            && values[0]
                                .decode_as::<der::asn1::ObjectIdentifier>()
                                .is_ok_and(|o| o.to_string() == ID_DATA)
                    }
                    ID_MESSAGE_DIGEST => {
                        digest_ok = values.len() == 1
                            && values[0].decode_as::<OctetString>().is_ok_and(|d| d.as_bytes() == digest.as_ref())
                    }
                    _ => {}
                }
            }
            if !digest_ok {
                return Err(CertError::WrongSignature);
            }
            if !content_type_ok {
                return Err(CertError::Malformed("CMS contentType attribute must be id-data".into()));
            }
            attrs.to_der().map_err(|e| malformed("signed attributes", e))?
        }
        None => content.to_vec(),
    };
    let sig_oid = si.signature_algorithm.oid.to_string();
    let alg = match sig_oid.as_str() {
        RSA_ENCRYPTION | SHA256_WITH_RSA => PackageAlgorithm::RS256,
        RSASSA_PSS => {
            check_pss_params(si.signature_algorithm.parameters.as_ref())?;
            PackageAlgorithm::PS256
        }
        EC_PUBLIC_KEY | ECDSA_WITH_SHA256 => PackageAlgorithm::ES256,
        other => return Err(CertError::UnsupportedAlgorithm(format!("CMS signature {other}"))),
    };
    check(&signer, alg, &signed_bytes, si.signature.as_bytes())?;
    Ok((certs, format!("CMS/{}", alg.as_str())))
}

/// ring verifies RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 4055 §3.1
/// recommends the salt as long as the hash). Other parameters (OpenSSL's default salt is the
/// maximum) are refused as unsupported rather than reported as a wrong signature.
fn check_pss_params(params: Option<&der::Any>) -> Result<(), CertError> {
    use rsa::pkcs1::der::Decode as _;
    let unsupported = |what: String| {
        CertError::UnsupportedAlgorithm(format!(
            "RSASSA-PSS {what}; SHA-256, MGF1-SHA-256 and a 32-byte salt are supported"
        ))
    };
    let der = params
        .ok_or_else(|| unsupported("without parameters".into()))?
        .to_der()
        .map_err(|e| malformed("PSS parameters", e))?;
    let p = rsa::pkcs1::RsaPssParams::from_der(&der).map_err(|e| unsupported(format!("parameters ({e})")))?;
    let mgf_hash = p.mask_gen.parameters.map(|h| h.oid.to_string());
    if p.hash.oid.to_string() != ID_SHA256 || mgf_hash.as_deref() != Some(ID_SHA256) || p.salt_len != 32 {
        return Err(unsupported(format!("with hash {}, salt length {}", p.hash.oid, p.salt_len)));
    }
    Ok(())
}
