//! The challenge document and the signature package (docs/certificates.md).
//!
//! A **challenge** is a small JSON object serialised canonically — object keys sorted by code
//! point, no insignificant white space, UTF-8 (the JSON Canonicalization Scheme of RFC 8785
//! for the values used here: strings and integers) — so the bytes a citizen downloads, signs
//! and the gateway stores are the same on every platform:
//!
//! ```json
//! {"exp":1764000300,"iat":1764000000,"id":"…","nonce":"…","origin":"https://id.example.vn",
//!  "purpose":"sign-in","transaction":[…],"type":"xacthuc-challenge","v":1}
//! ```
//!
//! `transaction` is present only when a transaction is being approved (RFC 9396
//! `authorization_details`), which links the signature to it ("dynamic linking").
//!
//! A **signature package** is what `xacthuc sign` prints:
//!
//! ```json
//! {"format":"xacthuc-signature/1","algorithm":"PS256","signature":"<base64>",
//!  "certificates":["<base64 DER, signer first>","<base64 DER intermediate>"]}
//! ```
//!
//! `algorithm` is `RS256` (RSASSA-PKCS1-v1_5 with SHA-256), `PS256` (RSASSA-PSS with SHA-256,
//! MGF1-SHA-256, 32-byte salt) or `ES256` (ECDSA P-256 with SHA-256, the signature DER-encoded
//! as X9.62 `Ecdsa-Sig-Value`, or the 64-byte `r‖s`); base64 is the standard alphabet with
//! padding (RFC 4648 §4). The signature is over the exact challenge bytes.
//! Instead of a package, a CMS `SignedData` (RFC 5652) with a detached signature over the same
//! bytes is accepted (DER, base64 or PEM), as produced by `openssl cms -sign -binary` and by
//! Vietnamese signing tools.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a challenge is for. Part of the signed bytes, so a signature made for one purpose is
/// useless for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Signing in with a certificate alone.
    SignIn,
    /// The second step of a sign-in (or a step-up) of a signed-in session.
    SecondFactor,
    /// Enrolling a certificate on the account.
    Enrol,
    /// Approving a transaction (`transaction` carries its authorization details).
    Transaction,
    /// Verifying the declared identity online (AS-3 by certificate, `service::proofing::online`).
    Proofing,
}

impl ChallengePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::SignIn => "sign-in",
            ChallengePurpose::SecondFactor => "second-factor",
            ChallengePurpose::Enrol => "enrol",
            ChallengePurpose::Transaction => "transaction",
            ChallengePurpose::Proofing => "proofing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::SignIn, Self::SecondFactor, Self::Enrol, Self::Transaction, Self::Proofing]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The `type` member of every challenge.
pub const CHALLENGE_TYPE: &str = "xacthuc-challenge";
/// The `format` member of every signature package.
pub const PACKAGE_FORMAT: &str = "xacthuc-signature/1";

/// Builds the canonical challenge bytes.
pub fn challenge_bytes(
    id: &str,
    nonce: &str,
    origin: &str,
    purpose: ChallengePurpose,
    iat: i64,
    exp: i64,
    transaction: Option<&Value>,
) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("type".into(), CHALLENGE_TYPE.into());
    doc.insert("v".into(), 1.into());
    doc.insert("id".into(), id.into());
    doc.insert("nonce".into(), nonce.into());
    doc.insert("origin".into(), origin.into());
    doc.insert("purpose".into(), purpose.as_str().into());
    doc.insert("iat".into(), iat.into());
    doc.insert("exp".into(), exp.into());
    if let Some(t) = transaction {
        doc.insert("transaction".into(), t.clone());
    }
    canonical_json(&Value::Object(doc))
}

/// Serialises `value` with object keys sorted (RFC 8785 ordering for the BMP: UTF-16 code
/// units; keys here are ASCII) and no white space. Independent of serde_json's map order.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The fields of a challenge the gateway reads back (`id` to find it; the rest is for display
/// and for the signer's own checks: `xacthuc sign` refuses an expired challenge).
#[derive(Clone, Debug, Deserialize)]
pub struct ChallengeView {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub origin: String,
    pub purpose: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub transaction: Option<Value>,
}

pub fn read_challenge(bytes: &[u8]) -> Option<ChallengeView> {
    serde_json::from_slice::<ChallengeView>(bytes).ok().filter(|c| c.kind == CHALLENGE_TYPE)
}

/// The signature algorithms of a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PackageAlgorithm {
    RS256,
    PS256,
    ES256,
}

impl PackageAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageAlgorithm::RS256 => "RS256",
            PackageAlgorithm::PS256 => "PS256",
            PackageAlgorithm::ES256 => "ES256",
        }
    }
}

/// The JSON signature package.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignaturePackage {
    pub format: String,
    pub algorithm: PackageAlgorithm,
    /// base64
    pub signature: String,
    /// base64 DER certificates, the signer's first.
    pub certificates: Vec<String>,
}

impl SignaturePackage {
    pub fn new(algorithm: PackageAlgorithm, signature: &[u8], chain: &[Vec<u8>]) -> Self {
        SignaturePackage {
            format: PACKAGE_FORMAT.into(),
            algorithm,
            signature: STANDARD.encode(signature),
            certificates: chain.iter().map(|c| STANDARD.encode(c)).collect(),
        }
    }
}

/// What the citizen handed back, decoded.
#[derive(Clone, Debug)]
pub enum SignedResponse {
    Package {
        algorithm: PackageAlgorithm,
        signature: Vec<u8>,
        certificates: Vec<Vec<u8>>,
    },
    /// DER `ContentInfo` of a CMS `SignedData`.
    Cms(Vec<u8>),
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(clean.as_bytes()).ok()
}

/// Decodes a pasted or uploaded response: a JSON package, a PEM block (`PKCS7`, `CMS`), raw
/// DER, or base64 of the DER. `None` when it is none of these.
pub fn parse_response(input: &[u8]) -> Option<SignedResponse> {
    if input.first() == Some(&0x30) {
        return Some(SignedResponse::Cms(input.to_vec()));
    }
    let text = std::str::from_utf8(input).ok()?.trim();
    if text.starts_with('{') {
        let p: SignaturePackage = serde_json::from_str(text).ok()?;
        if p.format != PACKAGE_FORMAT {
            return None;
        }
        let certificates = p.certificates.iter().map(|c| b64(c)).collect::<Option<Vec<_>>>()?;
        return Some(SignedResponse::Package { algorithm: p.algorithm, signature: b64(&p.signature)?, certificates });
    }
    if text.starts_with("-----BEGIN") {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        return b64(&body).filter(|d| d.first() == Some(&0x30)).map(SignedResponse::Cms);
    }
    b64(text).filter(|d| d.first() == Some(&0x30)).map(SignedResponse::Cms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn challenge_is_canonical_and_embeds_the_transaction() {
        let tx = serde_json::json!([{"type": "payment", "amount": 1500000, "currency": "VND"}]);
        let s = challenge_bytes("abc", "n1", "https://id.example.vn", ChallengePurpose::Transaction, 10, 20, Some(&tx));
        assert_eq!(
            s,
            "{\"exp\":20,\"iat\":10,\"id\":\"abc\",\"nonce\":\"n1\",\"origin\":\"https://id.example.vn\",\
             \"purpose\":\"transaction\",\"transaction\":[{\"amount\":1500000,\"currency\":\"VND\",\"type\":\"payment\"}],\
             \"type\":\"xacthuc-challenge\",\"v\":1}"
        );
        let view = read_challenge(s.as_bytes()).unwrap();
        assert_eq!((view.id.as_str(), view.exp, view.transaction), ("abc", 20, Some(tx)));
        let plain = challenge_bytes("abc", "n1", "https://x", ChallengePurpose::SignIn, 1, 2, None);
        assert!(!plain.contains("transaction") && plain.contains("\"purpose\":\"sign-in\""));
    }

    #[test]
    fn responses_decode_in_every_accepted_form() {
        let p = SignaturePackage::new(PackageAlgorithm::ES256, b"sig", &[vec![0x30, 1]]);
        let json = serde_json::to_string(&p).unwrap();
        match parse_response(json.as_bytes()) {
            Some(SignedResponse::Package { algorithm, signature, certificates }) => {
                assert_eq!(
                    (algorithm, signature, certificates),
                    (PackageAlgorithm::ES256, b"sig".to_vec(), vec![vec![0x30, 1]])
                );
            }
            other => panic!("{other:?}"),
        }
        let der = vec![0x30, 3, 1, 2, 3];
        let pem = format!("-----BEGIN PKCS7-----\n{}\n-----END PKCS7-----\n", STANDARD.encode(&der));
        assert!(matches!(parse_response(pem.as_bytes()), Some(SignedResponse::Cms(d)) if d == der));
        assert!(matches!(parse_response(STANDARD.encode(&der).as_bytes()), Some(SignedResponse::Cms(d)) if d == der));
        assert!(matches!(parse_response(&der), Some(SignedResponse::Cms(d)) if d == der));
        assert!(parse_response(b"hello").is_none());
        assert!(parse_response(b"{\"format\":\"other\"}").is_none());
    }
}
