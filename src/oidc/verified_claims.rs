//! OpenID Connect for Identity Assurance 1.0 (OIDC4IDA): the `verified_claims` object released
//! under the `verification` scope, built from the evidence record that gave the account its
//! current level (issue 8). Only verified levels (AS-3 and AS-4) have one: a self-declared AS-2
//! identity was never checked by anyone, so there is nothing to attest.

use serde_json::{Value, json};

/// The trust framework named in every `verification` object (OIDC4IDA §5.4.1): the rules of
/// this gateway, i.e. Decree 69/2024/ND-CP levels as implemented (docs/proofing.md).
pub const TRUST_FRAMEWORK: &str = "vn_xacthuc";
/// Evidence types this provider can attest (`evidence_supported` in discovery).
pub const EVIDENCE_SUPPORTED: &[&str] = &["document", "electronic_record", "electronic_signature"];
/// Document types (`documents_supported`).
pub const DOCUMENTS_SUPPORTED: &[&str] = &["idcard", "passport"];

/// One document checked, as recorded in the evidence.
#[derive(Clone, Debug, Default)]
pub struct CheckedDocument {
    /// Our kind: `cccd` | `cmnd` | `passport`.
    pub kind: String,
    pub authority: String,
    /// `YYYY-MM-DD`.
    pub expires_on: Option<String>,
}

/// What the evidence record says, plus the verified claims themselves.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    pub as_level: u8,
    /// Unix seconds of the verification.
    pub time: i64,
    /// Our method: `in_person`, `development_demo`, …
    pub method: String,
    /// The evidence record's id (OIDC4IDA `verification_process`: a reference for audits).
    pub process: String,
    /// The evidence record's source: `<issuer DN> / <serial>` for `certificate`, the registry's
    /// reference for `registry`.
    pub source: String,
    pub documents: Vec<CheckedDocument>,
    pub name: Option<String>,
    pub birthdate: Option<String>,
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The `verified_claims` object, or `None` below AS-3.
pub fn verified_claims(v: &Verification) -> Option<Value> {
    if v.as_level < 3 {
        return None;
    }
    let time = rfc3339(v.time);
    let mut evidence: Vec<Value> = v
        .documents
        .iter()
        .map(|d| {
            let mut details = json!({
                "type": if d.kind == "passport" { "passport" } else { "idcard" },
                "issuer": { "name": d.authority, "country_code": "VNM" },
            });
            if let Some(e) = &d.expires_on {
                details["date_of_expiry"] = json!(e);
            }
            // OIDC4IDA predefined check methods: `vpip` physical inspection in person (the
            // counter), `vri` inspection of images taken remotely (reviewed uploads).
            let check = match v.method.as_str() {
                "in_person" => "vpip",
                "review" => "vri",
                _ => "data",
            };
            json!({
                "type": "document",
                "check_details": [{ "check_method": check }],
                "time": time,
                "document_details": details,
            })
        })
        .collect();
    match v.method.as_str() {
        // A signature checked against a certificate chaining to a public trust profile.
        "certificate" => {
            let (issuer, serial) = v.source.rsplit_once(" / ").unwrap_or((v.source.as_str(), ""));
            evidence.push(json!({
                "type": "electronic_signature",
                "signature_type": "certificate",
                "issuer": issuer,
                "serial_number": serial,
                "created_at": time,
            }));
        }
        // A match found in the population / identity registry.
        "registry" => evidence.push(json!({
            "type": "electronic_record",
            "check_details": [{ "check_method": "data", "txn": v.source }],
            "time": time,
            "record": { "type": "population_register", "source": { "country_code": "VNM" } },
        })),
        _ => {}
    }
    let mut claims = serde_json::Map::new();
    if let Some(n) = &v.name {
        claims.insert("name".into(), json!(n));
    }
    if let Some(b) = &v.birthdate {
        claims.insert("birthdate".into(), json!(b));
    }
    Some(json!({
        "verification": {
            "trust_framework": TRUST_FRAMEWORK,
            "assurance_level": format!("as{}", v.as_level),
            "time": time,
            "verification_process": v.process,
            "evidence": evidence,
        },
        "claims": claims,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_levels_get_verified_claims() {
        let mut v = Verification {
            as_level: 2,
            time: 1_750_000_000,
            method: "in_person".into(),
            process: "e1".into(),
            source: "counter".into(),
            documents: vec![CheckedDocument {
                kind: "cccd".into(),
                authority: "Bộ Công an".into(),
                expires_on: Some("2045-01-01".into()),
            }],
            name: Some("Phạm Thị Hoa".into()),
            birthdate: Some("1985-11-20".into()),
        };
        assert!(verified_claims(&v).is_none());
        v.as_level = 4;
        let out = verified_claims(&v).unwrap();
        assert_eq!(out["verification"]["trust_framework"], "vn_xacthuc");
        assert_eq!(out["verification"]["time"], "2025-06-15T15:06:40Z");
        assert_eq!(out["verification"]["evidence"][0]["document_details"]["type"], "idcard");
        assert_eq!(out["verification"]["evidence"][0]["check_details"][0]["check_method"], "vpip");
        assert_eq!(out["claims"]["name"], "Phạm Thị Hoa");
    }

    #[test]
    fn online_methods_name_their_evidence() {
        let mut v = Verification {
            as_level: 3,
            time: 1_750_000_000,
            method: "certificate".into(),
            process: "e2".into(),
            source: "CN=VNPT-CA, C=VN / 0a1b".into(),
            ..Verification::default()
        };
        let out = verified_claims(&v).unwrap();
        let e = &out["verification"]["evidence"][0];
        assert_eq!(e["type"], "electronic_signature");
        assert_eq!(e["issuer"], "CN=VNPT-CA, C=VN");
        assert_eq!(e["serial_number"], "0a1b");
        v.method = "registry".into();
        v.source = "REG-42".into();
        let out = verified_claims(&v).unwrap();
        let e = &out["verification"]["evidence"][0];
        assert_eq!(e["type"], "electronic_record");
        assert_eq!(e["check_details"][0]["txn"], "REG-42");
        v.method = "review".into();
        v.documents =
            vec![CheckedDocument { kind: "cccd".into(), authority: "Bộ Công an".into(), expires_on: None }];
        let out = verified_claims(&v).unwrap();
        assert_eq!(out["verification"]["evidence"][0]["check_details"][0]["check_method"], "vri");
    }
}
