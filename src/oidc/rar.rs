//! Rich Authorization Requests (RFC 9396): the `authorization_details` parameter, with the two
//! types this gateway understands, `payment` and `result_receipt`.
//!
//! "The AS MUST refuse to process any unknown authorization details type or authorization
//! details not conforming to the respective type definition" (RFC 9396 §5): every field is
//! known, typed and bounded, and anything else is `invalid_authorization_details`. Each detail
//! names the policy action of the same name, so asking for a payment's details also asks for the
//! `payment` action's authentication (docs/policies.md).
//!
//! Pure: parsing, checks and the Vietnamese display (`1.250.000 ₫`).

use super::OAuthError;
use serde::{Deserialize, Serialize};

/// At most this many details in one request.
pub const MAX_DETAILS: usize = 5;
/// Longest text field.
const MAX_TEXT: usize = 200;
/// Largest amount accepted (10^13 ₫: more than any fee).
const MAX_AMOUNT: u64 = 10_000_000_000_000;

/// One authorization detail (RFC 9396 §2), normalised. Serialises back to the JSON the portal
/// sent (same member names), which is what the tokens carry once the citizen approved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthorizationDetail {
    /// Paying a fee: "Nộp lệ phí".
    Payment(Payment),
    /// Receiving the electronic result of a dossier: "Nhận kết quả".
    ResultReceipt(ResultReceipt),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// In whole units of `currency` (the đồng has no minor unit in use).
    pub amount: Amount,
    pub currency: String,
    /// Who is paid, e.g. "UBND quận Ba Đình".
    pub payee: String,
    /// The portal's reference for the payment (dossier or invoice number).
    pub reference: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultReceipt {
    /// The dossier whose result is received ("mã hồ sơ").
    pub dossier_id: String,
    /// The procedure, e.g. "Đăng ký hộ kinh doanh".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// An amount given as a JSON number or a string of digits ("1250000"): portals do both, and a
/// string keeps large values exact. Serialised as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub u64);

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(s) if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map_err(serde::de::Error::custom)?
            }
            Raw::Text(_) => return Err(serde::de::Error::custom("amount must be a whole number of đồng")),
        };
        Ok(Amount(value))
    }
}

impl AuthorizationDetail {
    /// The policy action this detail asks for.
    pub fn action(&self) -> &'static str {
        match self {
            AuthorizationDetail::Payment(_) => crate::policy::PAYMENT,
            AuthorizationDetail::ResultReceipt(_) => crate::policy::RESULT_RECEIPT,
        }
    }

    fn check(&self) -> Result<(), String> {
        let text = |name: &str, v: &str| -> Result<(), String> {
            if v.trim().is_empty() {
                return Err(format!("{name} is empty"));
            }
            if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
                return Err(format!("{name} is too long or has control characters"));
            }
            Ok(())
        };
        match self {
            AuthorizationDetail::Payment(p) => {
                if p.currency != "VND" {
                    return Err("currency must be VND".into());
                }
                if p.amount.0 == 0 || p.amount.0 > MAX_AMOUNT {
                    return Err("amount is out of range".into());
                }
                text("payee", &p.payee)?;
                text("reference", &p.reference)
            }
            AuthorizationDetail::ResultReceipt(r) => {
                text("dossier_id", &r.dossier_id)?;
                r.service.as_deref().map_or(Ok(()), |s| text("service", s))
            }
        }
    }
}

/// RFC 9396 §5: the error for details the server cannot process.
pub fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError { code: "invalid_authorization_details", description: description.into(), status: 400, detail: None }
}

/// Parses `authorization_details`: "a JSON array of JSON objects" (RFC 9396 §2), each of a
/// type we know and conforming to it. `None` or an empty string: no details.
pub fn parse(raw: Option<&str>) -> Result<Vec<AuthorizationDetail>, OAuthError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let values: Vec<serde_json::Value> =
        serde_json::from_str(raw).map_err(|_| invalid("authorization_details must be a JSON array of objects"))?;
    if values.is_empty() {
        return Err(invalid("authorization_details is an empty array"));
    }
    if values.len() > MAX_DETAILS {
        return Err(invalid(format!("at most {MAX_DETAILS} authorization details are accepted")));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let Some(kind) = v.get("type").and_then(|t| t.as_str()).map(str::to_string) else {
            return Err(invalid(format!("authorization_details[{i}] has no type")));
        };
        let detail: AuthorizationDetail = serde_json::from_value(v).map_err(|e| {
            if kind == "payment" || kind == "result_receipt" {
                invalid(format!("authorization_details[{i}] ({kind}) does not conform to its type: {e}"))
            } else {
                invalid(format!("authorization_details[{i}] has an unknown type {kind:?}"))
            }
        })?;
        detail.check().map_err(|e| invalid(format!("authorization_details[{i}] ({kind}): {e}")))?;
        out.push(detail);
    }
    Ok(out)
}

/// The JSON the tokens carry (`authorization_details` of the token response, the JWT access
/// token and introspection, RFC 9396 §7 and §9).
pub fn to_json(details: &[AuthorizationDetail]) -> serde_json::Value {
    serde_json::to_value(details).unwrap_or(serde_json::Value::Null)
}

/// `1250000` → `"1.250.000 ₫"`: the Vietnamese convention (dot between thousands, the đồng sign
/// after the number, TCVN and the State Bank's usage).
pub fn format_vnd(amount: u64) -> String {
    let digits = amount.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out.push_str(" ₫");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn vietnamese_amounts() {
        assert_eq!(format_vnd(1_250_000), "1.250.000 ₫");
        assert_eq!(format_vnd(0), "0 ₫");
        assert_eq!(format_vnd(999), "999 ₫");
        assert_eq!(format_vnd(1000), "1.000 ₫");
        assert_eq!(format_vnd(12_345_678_901), "12.345.678.901 ₫");
    }

    #[test]
    fn payment_and_result_receipt_parse_and_round_trip() {
        let raw = r#"[{"type":"payment","amount":1250000,"currency":"VND","payee":"UBND quận Ba Đình","reference":"HKD-1"},
                      {"type":"result_receipt","dossier_id":"000.00.01.H26-261122-0001"}]"#;
        let details = parse(Some(raw)).unwrap();
        assert_eq!(details.len(), 2);
        assert_eq!(details[0].action(), "payment");
        assert_eq!(details[1].action(), "result_receipt");
        let json = to_json(&details);
        assert_eq!(json[0]["amount"], "1250000");
        assert_eq!(json[0]["type"], "payment");
        assert_eq!(json[1]["type"], "result_receipt");
        assert!(json[1].get("service").is_none());
        // The normalised form parses to the same details.
        assert_eq!(parse(Some(&json.to_string())).unwrap(), details);
        assert_eq!(parse(None).unwrap(), vec![]);
        assert_eq!(parse(Some("  ")).unwrap(), vec![]);
    }

    #[test]
    fn nonconforming_details_are_refused() {
        let cases = [
            ("{}", "JSON array"),
            ("[]", "empty"),
            ("[1]", "no type"),
            (r#"[{"amount":1}]"#, "no type"),
            (r#"[{"type":"account_information"}]"#, "unknown type"),
            (r#"[{"type":"payment","amount":1,"currency":"VND","payee":"x"}]"#, "does not conform"),
            (
                r#"[{"type":"payment","amount":1,"currency":"VND","payee":"x","reference":"r","extra":1}]"#,
                "does not conform",
            ),
            (r#"[{"type":"payment","amount":"1.5","currency":"VND","payee":"x","reference":"r"}]"#, "does not conform"),
            (r#"[{"type":"payment","amount":-1,"currency":"VND","payee":"x","reference":"r"}]"#, "does not conform"),
            (r#"[{"type":"payment","amount":0,"currency":"VND","payee":"x","reference":"r"}]"#, "out of range"),
            (r#"[{"type":"payment","amount":5,"currency":"USD","payee":"x","reference":"r"}]"#, "VND"),
            (r#"[{"type":"payment","amount":5,"currency":"VND","payee":" ","reference":"r"}]"#, "payee is empty"),
            (r#"[{"type":"result_receipt","dossier_id":"a\u0007"}]"#, "control"),
        ];
        for (raw, needle) in cases {
            let e = parse(Some(raw)).unwrap_err();
            assert_eq!(e.code, "invalid_authorization_details", "{raw}");
            assert!(e.description.contains(needle), "{raw}: {}", e.description);
        }
        let many = format!("[{}]", [r#"{"type":"result_receipt","dossier_id":"d"}"#; 6].join(","));
        assert!(parse(Some(&many)).unwrap_err().description.contains("at most 5"));
    }
}
