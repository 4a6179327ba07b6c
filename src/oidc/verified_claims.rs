//! OpenID Connect for Identity Assurance 1.0 (OIDC4IDA): the `verified_claims` object released
//! under the `verification` scope, built from the evidence record that gave the account its
//! current level (issue 8). Only verified levels (AS-3 and AS-4) have one: a self-declared AS-2
//! identity was never checked by anyone, so there is nothing to attest.

use serde_json::{Value, json};

/// The trust framework named in every `verification` object (OIDC4IDA §5.4.1): the rules of
/// this gateway, i.e. Decree 69/2024/ND-CP levels as implemented (docs/proofing.md).
pub const TRUST_FRAMEWORK: &str = "vn_xacthuc";
/// Evidence types this provider can attest (`evidence_supported` in discovery).
pub const EVIDENCE_SUPPORTED: &[&str] = &["document"];
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
    let evidence: Vec<Value> = v
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
            json!({
                "type": "document",
                // OIDC4IDA predefined check method: physical in-person validation of the document.
                "check_details": [{ "check_method": if v.method == "in_person" { "vpip" } else { "data" } }],
                "time": rfc3339(v.time),
                "document_details": details,
            })
        })
        .collect();
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
            "time": rfc3339(v.time),
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
}
