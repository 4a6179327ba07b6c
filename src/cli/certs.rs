//! `xacthuc certs demo --out DIR`: a demo trust store and citizens' certificates to try
//! digital-signature sign-in with (docs/certificates.md); `xacthuc certs check [DIR]`: load a
//! trust directory as the gateway does and list every problem.
//!
//! The demo PKI imitates the real one (VIETNAM.md): a root named after the national root CA,
//! an issuing CA named after a licensed public CA, and end-entity certificates with a
//! Vietnamese CN and `UID=CCCD:…` / `CMND:` / `MST:` attributes, their keys in PKCS#12 files.
//! Everything is marked DEMO and must never be trusted by a production gateway.

use crate::certs::TrustStore;
use anyhow::Context;
use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    SerialNumber,
};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Write a demo trust store (root, issuing CA, CRL) and citizens' PKCS#12 files into DIR.
    Demo {
        /// Output directory (created; existing demo files are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// File whose first line is the PKCS#12 password (default: "1234", written to DIR/citizens/password.txt).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Load a trust directory (default: [certificates] trust_dir) as the gateway does and list
    /// every problem.
    Check { dir: Option<PathBuf> },
}

/// The UID attribute type (0.9.2342.19200300.100.1.1), where Vietnamese CAs put `CCCD:` etc.
pub const UID: [u64; 7] = [0, 9, 2342, 19200300, 100, 1, 1];

pub fn run(cmd: CertsCommand, trust_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Demo { out, password_file } => {
            let password = match password_file {
                Some(f) => super::sign::first_line(&f)?,
                None => "1234".to_string(),
            };
            let written = write_demo(&out, crate::app::now(), &password)?;
            for f in written {
                println!("{}", f.display());
            }
            println!(
                "demo trust store written; set [certificates] trust_dir = {:?} and restart the gateway",
                out.display().to_string()
            );
            Ok(())
        }
        CertsCommand::Check { dir } => {
            let dir = dir.or(trust_dir).unwrap_or_else(|| PathBuf::from("./certs"));
            match TrustStore::load(&dir, crate::app::now()) {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        println!("warning: {w}");
                    }
                    println!("trust store {} is valid; profiles: {:?}", dir.display(), loaded.store.profile_names());
                    Ok(())
                }
                Err(problems) => anyhow::bail!("trust store {} is unusable:\n{}", dir.display(), problems.join("\n")),
            }
        }
    }
}

fn dn(entries: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in entries {
        dn.push(t.clone(), *v);
    }
    dn
}

fn ca_params(name: DistinguishedName, path_len: Option<u8>, now: i64, years: i64) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = name;
    p.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = ::time::OffsetDateTime::from_unix_timestamp(now - 86_400)?;
    p.not_after = ::time::OffsetDateTime::from_unix_timestamp(now + years * 365 * 86_400)?;
    Ok(p)
}

/// A new RSA-2048 key (the `rsa` crate; ring cannot generate RSA keys) as an rcgen key pair.
pub fn rsa_key() -> anyhow::Result<KeyPair> {
    let der = crate::crypto::signing::generate_pkcs8(crate::crypto::signing::SigningAlg::RS256)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(&rustls_pki_types::PrivatePkcs8KeyDer::from(der), &PKCS_RSA_SHA256)?)
}

/// Packs a key and its chain (signer first) into a PKCS#12 file (PBES2 AES-256, HMAC-SHA256).
pub fn pkcs12(pkcs8: &[u8], chain: &[Vec<u8>], alias: &str, password: &str) -> anyhow::Result<Vec<u8>> {
    let key = p12_keystore::PrivateKey::from_der(pkcs8).map_err(|e| anyhow::anyhow!("private key: {e}"))?;
    let certs = chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c).map_err(|e| anyhow::anyhow!("certificate: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let local_key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0]).as_ref().to_vec();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        alias,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(local_key_id, key, certs)),
    );
    store
        .writer(password)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .write()
        .map_err(|e| anyhow::anyhow!("PKCS#12: {e}"))
}

struct DemoCitizen {
    file: &'static str,
    cn: &'static str,
    uids: &'static [&'static str],
    rsa: bool,
}

const CITIZENS: &[DemoCitizen] = &[
    // The development demo citizen (`congdan.demo`, AS-3, CCCD 001090012345).
    DemoCitizen { file: "nguyen-van-an", cn: "NGUYỄN VĂN AN", uids: &["CCCD:001090012345"], rsa: true },
    DemoCitizen { file: "tran-thi-binh", cn: "TRẦN THỊ BÌNH", uids: &["CCCD:079190012346"], rsa: false },
    DemoCitizen {
        file: "cong-ty-demo", cn: "CÔNG TY TNHH DỊCH VỤ CÔNG DEMO", uids: &["MST:0101234567"], rsa: false
    },
];

fn write(path: &Path, bytes: &[u8], written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path.to_path_buf());
    Ok(())
}

/// Writes the demo trust store into `out`:
///
/// ```text
/// out/profiles/public/demo-root.pem      the demo root (anchor of profile "public")
/// out/intermediates/demo-ca.pem          the demo issuing CA
/// out/crl/demo-ca.crl                    its CRL (empty; valid a year: the gateway fails closed without one)
/// out/citizens/<name>.p12, <name>.pem    end-entity certificates and keys; password in password.txt
/// ```
pub fn write_demo(out: &Path, now: i64, password: &str) -> anyhow::Result<Vec<PathBuf>> {
    for d in ["profiles/public", "intermediates", "crl", "citizens"] {
        std::fs::create_dir_all(out.join(d)).with_context(|| format!("cannot create {}", out.join(d).display()))?;
    }
    let mut written = Vec::new();
    let root_name = dn(&[
        (DnType::CountryName, "VN"),
        (DnType::OrganizationName, "DEMO - Trung tâm Chứng thực điện tử quốc gia"),
        (DnType::CommonName, "DEMO Vietnam National Root CA"),
    ]);
    let root = CertifiedIssuer::self_signed(
        ca_params(root_name, None, now, 20)?,
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
    )?;
    let ca_name = dn(&[
        (DnType::CountryName, "VN"),
        (DnType::OrganizationName, "DEMO VNPT Group"),
        (DnType::CommonName, "DEMO VNPT-CA SHA2"),
    ]);
    let ca = CertifiedIssuer::signed_by(
        ca_params(ca_name, Some(0), now, 10)?,
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        &root,
    )?;
    write(&out.join("profiles/public/demo-root.pem"), root.pem().as_bytes(), &mut written)?;
    write(&out.join("intermediates/demo-ca.pem"), ca.pem().as_bytes(), &mut written)?;
    let crl = CertificateRevocationListParams {
        this_update: ::time::OffsetDateTime::from_unix_timestamp(now - 60)?,
        next_update: ::time::OffsetDateTime::from_unix_timestamp(now + 365 * 86_400)?,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)?;
    write(&out.join("crl/demo-ca.crl"), crl.der().as_ref(), &mut written)?;
    for (i, c) in CITIZENS.iter().enumerate() {
        let key = if c.rsa { rsa_key()? } else { KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)? };
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let mut name =
            dn(&[(DnType::CountryName, "VN"), (DnType::StateOrProvinceName, "Hà Nội"), (DnType::CommonName, c.cn)]);
        // rcgen keeps one value per attribute type, so each demo certificate has one UID
        // (real ones may have several; the tests build such certificates with openssl).
        for u in c.uids {
            name.push(DnType::CustomDnType(UID.to_vec()), *u);
        }
        p.distinguished_name = name;
        p.serial_number = Some(SerialNumber::from(0x5445_0000 + i as u64));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::EmailProtection];
        p.not_before = ::time::OffsetDateTime::from_unix_timestamp(now - 86_400)?;
        p.not_after = ::time::OffsetDateTime::from_unix_timestamp(now + 2 * 365 * 86_400)?;
        let cert = p.signed_by(&key, &ca)?;
        let chain = vec![cert.der().to_vec(), ca.der().to_vec()];
        let p12 = pkcs12(&key.serialize_der(), &chain, c.file, password)?;
        write(&out.join(format!("citizens/{}.p12", c.file)), &p12, &mut written)?;
        write(&out.join(format!("citizens/{}.pem", c.file)), cert.pem().as_bytes(), &mut written)?;
    }
    write(&out.join("citizens/password.txt"), format!("{password}\n").as_bytes(), &mut written)?;
    Ok(written)
}
