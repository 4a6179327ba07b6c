//! What a certificate says about its holder: the subject's common name and the `UID`
//! attributes (OID 0.9.2342.19200300.100.1.1) in which Vietnamese CAs write identifiers as
//! `PREFIX:value` — `CCCD:` (the 12-digit personal ID number), `CMND:` (the old 9- or 12-digit
//! ID card), `HC:` (passport), `MST:` (tax code), `MNS:` (budget-unit code). One certificate
//! may carry several; `organizationIdentifier` (2.5.4.97) sometimes carries `MST:`/`VATVN-`
//! (see /work/shared/VIETNAM.md, "Digital certificates").

use serde::Serialize;
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::*;

/// The kind of identifier a subject UID carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UidKind {
    /// Căn cước công dân / số định danh cá nhân: 12 digits.
    Cccd,
    /// Chứng minh nhân dân (old ID card): 9 or 12 digits.
    Cmnd,
    /// Hộ chiếu (passport).
    Passport,
    /// Mã số thuế (tax code): 10 digits, or 10 + `-NNN` for a branch.
    TaxCode,
    /// Mã đơn vị có quan hệ với ngân sách (budget-unit code).
    BudgetUnit,
    /// Anything else, kept as written.
    Other,
}

/// One parsed identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectUid {
    pub kind: UidKind,
    /// The value after the prefix, trimmed (e.g. the 12 digits).
    pub value: String,
    /// As written in the certificate.
    pub raw: String,
    /// The value has the documented format for its kind (digits and length).
    pub well_formed: bool,
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn tax_code(s: &str) -> bool {
    match s.split_once('-') {
        Some((main, branch)) => digits(main, &[10]) && digits(branch, &[3]),
        None => digits(s, &[10]),
    }
}

/// Parses `PREFIX:value` (prefix case-insensitive; `VATVN-` is a tax code as written in
/// `organizationIdentifier`, ETSI EN 319 412-1 §5.1.4).
pub fn parse_uid(raw: &str) -> SubjectUid {
    let trimmed = raw.trim();
    let (kind, value) = match trimmed.split_once(':') {
        Some((prefix, value)) => {
            let kind = match prefix.trim().to_ascii_uppercase().as_str() {
                "CCCD" => UidKind::Cccd,
                "CMND" => UidKind::Cmnd,
                "HC" => UidKind::Passport,
                "MST" => UidKind::TaxCode,
                "MNS" => UidKind::BudgetUnit,
                _ => UidKind::Other,
            };
            if kind == UidKind::Other { (kind, trimmed) } else { (kind, value.trim()) }
        }
        None => match trimmed.strip_prefix("VATVN-") {
            Some(v) => (UidKind::TaxCode, v.trim()),
            None => (UidKind::Other, trimmed),
        },
    };
    let well_formed = match kind {
        UidKind::Cccd => digits(value, &[12]) && crate::identity::national_id::province_name(&value[..3]).is_some(),
        UidKind::Cmnd => digits(value, &[9, 12]),
        UidKind::TaxCode => tax_code(value),
        UidKind::Passport | UidKind::BudgetUnit => !value.is_empty() && value.len() <= 20,
        UidKind::Other => true,
    };
    SubjectUid { kind, value: value.to_string(), raw: raw.to_string(), well_formed }
}

/// `organizationIdentifier` (X.520, 2.5.4.97).
fn oid_organization_identifier() -> Option<Oid<'static>> {
    Oid::from(&[2, 5, 4, 97]).ok()
}

/// The UID values of a subject, then any `organizationIdentifier` that names a tax code.
pub fn uids(name: &X509Name<'_>) -> Vec<String> {
    // The `UID` attribute type (RFC 4519 §2.39).
    let mut out: Vec<String> = name
        .iter_by_oid(&x509_parser::oid_registry::OID_USERID)
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    let Some(org) = oid_organization_identifier() else { return out };
    for a in name.iter_by_oid(&org) {
        if let Ok(v) = a.as_str() {
            let p = parse_uid(v);
            if p.kind == UidKind::TaxCode && !out.iter().any(|u| parse_uid(u).value == p.value) {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// The subject's common name (the holder's full name, often upper case), or an empty string.
pub fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name().filter_map(|a| a.as_str().ok()).next().unwrap_or_default().to_string()
}

/// The well-formed `CCCD:` numbers among `uids`.
pub fn cccd_numbers(uids: &[String]) -> Vec<String> {
    uids.iter().map(|u| parse_uid(u)).filter(|u| u.kind == UidKind::Cccd && u.well_formed).map(|u| u.value).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn prefixes_are_parsed() {
        let c = parse_uid("CCCD:001099012345");
        assert_eq!((c.kind, c.value.as_str(), c.well_formed), (UidKind::Cccd, "001099012345", true));
        assert_eq!(parse_uid("cccd: 001099012345").kind, UidKind::Cccd);
        // Not a province code (000) and wrong lengths are kept but marked.
        assert!(!parse_uid("CCCD:000099012345").well_formed);
        assert!(!parse_uid("CCCD:12345").well_formed);
        let m = parse_uid("CMND:012345678");
        assert_eq!((m.kind, m.well_formed), (UidKind::Cmnd, true));
        assert!(!parse_uid("CMND:01234567").well_formed);
        let t = parse_uid("MST:0101234567-001");
        assert_eq!((t.kind, t.value.as_str(), t.well_formed), (UidKind::TaxCode, "0101234567-001", true));
        assert!(!parse_uid("MST:01012345").well_formed);
        assert_eq!(parse_uid("VATVN-0101234567").kind, UidKind::TaxCode);
        assert_eq!(parse_uid("HC:C1234567").kind, UidKind::Passport);
        assert_eq!(parse_uid("MNS:1234567").kind, UidKind::BudgetUnit);
        let o = parse_uid("EMAIL:a@b");
        assert_eq!((o.kind, o.value.as_str()), (UidKind::Other, "EMAIL:a@b"));
    }

    #[test]
    fn cccd_numbers_skip_malformed_and_other_kinds() {
        let uids = vec!["MST:0101234567".to_string(), "CCCD:001099012345".into(), "CCCD:99".into()];
        assert_eq!(cccd_numbers(&uids), vec!["001099012345".to_string()]);
    }
}
