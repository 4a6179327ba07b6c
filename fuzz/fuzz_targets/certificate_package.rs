//! What a citizen hands back after signing a challenge (docs/certificates.md): a JSON signature
//! package, a CMS `SignedData` (DER, base64 or PEM), and the certificates inside. Input: the
//! pasted or uploaded bytes. Runs `parse_response`, the CMS decoding (with every signature
//! accepted, so the checks behind it run too), `describe` of every certificate and the full
//! `verify` against a one-anchor trust store. Any panic is a bug: a bad response must end as a
//! `CertError` shown to the citizen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use xacthuc::certs::{self, SignedResponse, TrustStore, VerifyOptions, challenge, subject, verify};

/// The challenge the seed corpus signs (`fuzz/fixtures/challenge.json`).
const CHALLENGE: &[u8] = include_bytes!("../fixtures/challenge.json");
/// Inside the validity of the seed certificates (2026–2126).
const NOW: i64 = 1_800_000_000;

static STORE: LazyLock<TrustStore> = LazyLock::new(|| {
    let anchors = vec![include_bytes!("../fixtures/ca.der").to_vec()];
    TrustStore::from_parts(BTreeMap::from([("citizen".to_string(), anchors)]), Vec::new(), Vec::new())
});

fn describe_all(ders: &[Vec<u8>]) {
    for der in ders {
        if let Ok(info) = verify::describe(der) {
            let _ = subject::cccd_numbers(&info.uids);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = challenge::read_challenge(data);
    let _ = verify::describe(data);
    if let Ok(text) = std::str::from_utf8(data) {
        describe_all(&certs::pem_blocks(text, &["CERTIFICATE", "PKCS7", "CMS"]));
        for line in text.lines().take(4) {
            let _ = subject::parse_uid(line);
        }
    }
    let Some(response) = challenge::parse_response(data) else { return };
    match &response {
        SignedResponse::Package { certificates, .. } => describe_all(certificates),
        SignedResponse::Cms(der) => {
            if let Ok((chain, _)) = certs::cms::verify_detached(der, CHALLENGE, |_, _, _, _| Ok(())) {
                describe_all(&chain);
            }
        }
    }
    let profiles = ["citizen", "no-such-profile"];
    for fail_closed in [false, true] {
        let opts = VerifyOptions { profiles: &profiles, now: NOW, fail_closed, extra_crls: &[] };
        if let Ok(v) = verify::verify(&STORE, CHALLENGE, &response, &opts) {
            assert!(!v.path.is_empty(), "a verified signature has a path");
        }
    }
});
