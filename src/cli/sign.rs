//! `xacthuc sign --key cert.p12 [--password-file F] [--alg PS256|RS256] challenge.json`: signs
//! a challenge with the key of a PKCS#12 file and prints the signature package (JSON; format
//! in `certs::challenge` and docs/certificates.md) to paste or upload on the gateway's page.
//!
//! Before signing it shows (on stderr) which gateway asked and what for, and refuses an
//! expired challenge or a file that is not a challenge: a citizen should see what they sign.

use crate::certs::challenge::{self, PackageAlgorithm, SignaturePackage};
use anyhow::{Context, bail};
use clap::Args;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct SignArgs {
    /// PKCS#12 file (.p12/.pfx) with the private key and its certificate chain.
    #[arg(long)]
    pub key: PathBuf,
    /// File whose first line is the PKCS#12 password (default: $XACTHUC_P12_PASSWORD, or empty).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// RSA padding: PS256 (RSASSA-PSS, the national standards' profile) or RS256 (PKCS#1 v1.5).
    /// Ignored for EC keys (ES256).
    #[arg(long, value_parser = ["PS256", "RS256"], default_value = "PS256")]
    pub alg: String,
    /// Sign even if the challenge has expired (for tests of the gateway).
    #[arg(long, hide = true)]
    pub allow_expired: bool,
    /// The challenge file (challenge.json) as downloaded; `-` reads standard input.
    pub challenge: PathBuf,
}

/// The first line of a file (passwords), without the line end.
pub fn first_line(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let password = match &args.password_file {
        Some(f) => first_line(f)?,
        None => std::env::var("XACTHUC_P12_PASSWORD").unwrap_or_default(),
    };
    let bytes = if args.challenge == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(&args.challenge).with_context(|| format!("cannot read {}", args.challenge.display()))?
    };
    // Sign exactly the bytes shown, minus a line end a text editor or a pipe may have added.
    let mut bytes = bytes.as_slice();
    while let Some(rest) = bytes.strip_suffix(b"\n").or_else(|| bytes.strip_suffix(b"\r")) {
        bytes = rest;
    }
    let Some(view) = challenge::read_challenge(bytes) else {
        bail!("{} is not an xacthuc challenge", args.challenge.display());
    };
    let now = crate::app::now();
    eprintln!("gateway: {}\npurpose: {}", view.origin, view.purpose);
    if let Some(t) = &view.transaction {
        eprintln!("transaction: {t}");
    }
    if view.exp <= now && !args.allow_expired {
        bail!("the challenge expired {} s ago; get a new one", now - view.exp);
    }
    let p12 = std::fs::read(&args.key).with_context(|| format!("cannot read {}", args.key.display()))?;
    let rsa_alg = if args.alg == "RS256" { PackageAlgorithm::RS256 } else { PackageAlgorithm::PS256 };
    let package = sign_with_p12(&p12, &password, bytes, rsa_alg)?;
    println!("{}", serde_json::to_string_pretty(&package)?);
    Ok(())
}

/// Signs `message` with the PKCS#12 file's key; `rsa_alg` picks the RSA padding.
pub fn sign_with_p12(
    p12: &[u8],
    password: &str,
    message: &[u8],
    rsa_alg: PackageAlgorithm,
) -> anyhow::Result<SignaturePackage> {
    let store = p12_keystore::KeyStore::from_pkcs12(p12, password, p12_keystore::Pkcs12ImportPolicy::Strict)
        .or_else(|_| p12_keystore::KeyStore::from_pkcs12(p12, password, p12_keystore::Pkcs12ImportPolicy::Relaxed))
        .map_err(|e| anyhow::anyhow!("cannot open the PKCS#12 file (wrong password?): {e}"))?;
    let (_, chain) = store.private_key_chain().context("the PKCS#12 file holds no private key with a certificate")?;
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        bail!("the PKCS#12 file holds no certificate for its key");
    }
    let (alg, sig) = sign_pkcs8(chain.key().as_der(), message, rsa_alg)?;
    Ok(SignaturePackage::new(alg, &sig, &certs))
}

/// Signs with a PKCS#8 key: RSA (PS256 or RS256 as asked) or ECDSA P-256 (ES256, DER).
pub fn sign_pkcs8(
    pkcs8: &[u8],
    message: &[u8],
    rsa_alg: PackageAlgorithm,
) -> anyhow::Result<(PackageAlgorithm, Vec<u8>)> {
    let rng = SystemRandom::new();
    if let Ok(key) = RsaKeyPair::from_pkcs8(pkcs8) {
        let padding: &dyn signature::RsaEncoding = match rsa_alg {
            PackageAlgorithm::RS256 => &signature::RSA_PKCS1_SHA256,
            _ => &signature::RSA_PSS_SHA256,
        };
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(padding, &rng, message, &mut sig).map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        let alg = if rsa_alg == PackageAlgorithm::RS256 { PackageAlgorithm::RS256 } else { PackageAlgorithm::PS256 };
        return Ok((alg, sig));
    }
    if let Ok(key) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng) {
        let sig = key.sign(&rng, message).map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?;
        return Ok((PackageAlgorithm::ES256, sig.as_ref().to_vec()));
    }
    bail!("unsupported private key: RSA (2048 bits or more) or ECDSA P-256 expected")
}
