//! The counter's remaining pieces (issues 8 and 9): enrolling a citizen's security key or
//! passkey on the staff member's computer, browsing one account's audit events with personal
//! data masked, and the "is this signed-in person staff" flag of the page navigation.
//!
//! - **Enrolment at the counter**: the citizen touches their key at the counter while the
//!   staff member's browser runs the WebAuthn registration ceremony *for the citizen's
//!   account*. Only for an active AS-4 account (verified in person, so the officer has just
//!   checked the person the key is bound to), never the staff member's own account nor any
//!   staff account (`super::target`). The ceremony is parked under the kind
//!   `counter_register:<staff account id>`: neither the citizen's own finish endpoint nor
//!   another staff member can spend it. The credential and its audit event
//!   (`passkey.enrolled_at_counter`, actor `staff:<id>`) are written in one transaction.
//! - **Audit browsing**: newest first, [`AUDIT_PAGE`] per page, each view audited
//!   (`staff.audit_viewed`) before anything is shown.

use super::{Staff, staff_audit, target};
use crate::app::AppState;
use crate::assurance::AsLevel;
use crate::audit::StoredAuditEvent;
use crate::i18n::{Lang, t};
use crate::service::ServiceError;
use crate::service::accounts::RegistrationError;
use crate::service::passkeys::{self, KeyKind, PasskeyError, Started};
use crate::store::{Account, AccountStatus, PasskeyCredential};
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

/// Audit events per page of the staff console's audit view.
pub const AUDIT_PAGE: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The account may not get a key at the counter; the message is in the staff's language.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
}

impl From<RegistrationError> for EnrolError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::Invalid(p) => {
                EnrolError::Refused(p.into_iter().next().map(|p| p.message).unwrap_or_default())
            }
            RegistrationError::Service(e) => EnrolError::Passkey(PasskeyError::Service(e)),
        }
    }
}

impl From<ServiceError> for EnrolError {
    fn from(e: ServiceError) -> Self {
        EnrolError::Passkey(PasskeyError::Service(e))
    }
}

/// The ceremony kind only this staff member's finish takes.
fn ceremony_kind(staff: &Staff) -> String {
    format!("counter_register:{}", staff.account.id)
}

/// The citizen a key may be enrolled for at the counter: not staff, active, at AS-4.
async fn enrollable(state: &AppState, staff: &Staff, id: Uuid, lang: Lang) -> Result<Account, EnrolError> {
    let account = target(state, staff, id, lang).await?;
    if account.status != AccountStatus::Active {
        return Err(EnrolError::Refused(t(lang, "err_staff_suspended")));
    }
    if account.as_level != AsLevel::As4 {
        return Err(EnrolError::Refused(t(lang, "err_staff_enrol_needs_as4")));
    }
    Ok(account)
}

/// Starts a registration ceremony for the citizen's account: `KeyKind::SecurityKey` asks for
/// user verification but accepts a key without it (possession only), `KeyKind::Passkey`
/// requires it. The citizen's existing credentials are excluded.
pub async fn start_enrolment(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    kind: KeyKind,
    lang: Lang,
    now: i64,
) -> Result<Started<Value>, EnrolError> {
    let account = enrollable(state, staff, account_id, lang).await?;
    Ok(passkeys::start_registration_for(state, &account, kind, &ceremony_kind(staff), now).await?)
}

/// Finishes the ceremony started by the same staff member for the same account and stores the
/// credential on the citizen's account, audited `passkey.enrolled_at_counter` in the same
/// transaction. The account is checked again (it may have been suspended or lowered meanwhile).
#[allow(clippy::too_many_arguments)]
pub async fn finish_enrolment(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    ceremony: &str,
    response: &RegisterPublicKeyCredential,
    name: &str,
    lang: Lang,
    now: i64,
) -> Result<PasskeyCredential, EnrolError> {
    let account = enrollable(state, staff, account_id, lang).await?;
    let audit = staff_audit(staff, now, "passkey.enrolled_at_counter", account.id);
    Ok(passkeys::finish_registration_for(state, &account, &ceremony_kind(staff), ceremony, response, name, audit, now)
        .await?)
}

/// One page of an account's audit events, newest first (`before`: the sequence number the
/// page ends before), and the cursor of the next, older page if there is one. The view is
/// audited first: nothing is shown unless it was recorded.
pub async fn browse_audit(
    state: &AppState,
    staff: &Staff,
    account: &Account,
    before: Option<i64>,
    now: i64,
) -> Result<(Vec<StoredAuditEvent>, Option<i64>), ServiceError> {
    let mut viewed = staff_audit(staff, now, "staff.audit_viewed", account.id);
    if let Some(b) = before {
        viewed = viewed.detail("before", b);
    }
    state.store.append_audit(&viewed).await?;
    let mut events = state.store.list_account_audit(account.id, before, AUDIT_PAGE + 1).await?;
    let older = if events.len() as i64 > AUDIT_PAGE {
        events.truncate(AUDIT_PAGE as usize);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok((events, older))
}

/// Detail keys whose values are personal data: always shown masked.
const PERSONAL_KEYS: &[&str] = &[
    "national_id",
    "id_number",
    "document_number",
    "number",
    "full_name",
    "name",
    "birth_date",
    "email",
    "phone",
    "address",
    "ip",
    "username",
    "subject",
    "cn",
];

fn mask_middle(s: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n <= keep_start + keep_end {
        return "*".repeat(n.max(1));
    }
    chars.iter().enumerate().map(|(i, c)| if i < keep_start || i + keep_end >= n { *c } else { '*' }).collect()
}

fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_middle(local, 1, 0)),
        None => mask_middle(s, 1, 0),
    }
}

fn looks_like_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !s.contains(' '))
}

/// Nine or more digits (an ID or phone number), possibly with spaces, dots, dashes or `+`.
fn looks_like_number(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    digits >= 9 && s.chars().all(|c| c.is_ascii_digit() || " .-+()".contains(c))
}

/// A personal value as shown: values already masked (with `*`) stay; a 12-digit ID number
/// is masked as everywhere else; an e-mail keeps its first letter and domain; anything else
/// keeps its first character and, for numbers, the last 3 digits.
pub fn mask_personal(s: &str) -> String {
    let s = s.trim();
    if s.contains('*') {
        return s.to_string();
    }
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 12 && compact.chars().all(|c| c.is_ascii_digit()) {
        return crate::identity::national_id::mask(&compact);
    }
    if looks_like_email(s) {
        return mask_email(s);
    }
    if looks_like_number(s) {
        return mask_middle(&compact, 0, 3);
    }
    mask_middle(s, 1, 0)
}

fn shown_string(key: &str, s: &str) -> String {
    if PERSONAL_KEYS.contains(&key) || looks_like_email(s) || looks_like_number(s) {
        return mask_personal(s);
    }
    let count = s.chars().count();
    if (key.ends_with("_hash") || key == "fingerprint") && count > 16 {
        return format!("{}…", s.chars().take(12).collect::<String>());
    }
    let s = mask_embedded(s);
    if count > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s }
}

/// Free text (a reason, an error): words that are e-mail addresses or ID/phone numbers masked.
fn mask_embedded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let core = word.trim_matches(|c: char| ",;:()\"'".contains(c) || c == '.' && !word.contains('@'));
        if !core.is_empty() && (looks_like_email(core) || looks_like_number(core)) {
            out.push_str(&word.replace(core, &mask_personal(core)));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn masked_value(key: &str, v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(shown_string(key, s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| masked_value(key, i)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), masked_value(k, v))).collect()),
        other => other.clone(),
    }
}

/// An event's details for a staff member's eyes: `(key, value)` in key order, personal data
/// masked (by key, and any value that looks like an e-mail address or an ID/phone number),
/// long hashes shortened, nulls left out.
pub fn masked_details(details: &Value) -> Vec<(String, String)> {
    let Value::Object(map) = details else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let shown = match masked_value(k, v) {
                Value::String(s) => s,
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                }
                other => other.to_string(),
            };
            (k.clone(), shown)
        })
        .collect();
    out.sort();
    out
}

/// Whether the signed-in account is staff, for the navigation's console link: one primary-key
/// look-up per page for signed-in accounts (no process-wide cache, so no lock on the request
/// path and no disagreement between instances). Only a link depends on it; the console itself
/// checks `super::access` on every request. A failed look-up shows no link.
pub async fn is_staff(state: &AppState, account_id: Uuid) -> bool {
    match state.store.get_staff(account_id).await {
        Ok(member) => member.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "staff look-up for the navigation failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn personal_data_in_details_is_masked() {
        let details = json!({
            "national_id": "0011******23",
            "email": "mai.nguyen@example.vn",
            "phone": "+84 912 345 678",
            "reason": "Giấy tờ giả, liên hệ 0912345678",
            "note": "mai@example.vn",
            "username_hash": "a1b2c3d4e5f6a7b8c9d0e1f2",
            "factor": "passkey",
            "user_verified": true,
            "gone": null,
            "id_number": "001190000123",
            "amr": ["pwd", "hwk"],
        });
        let shown: HashMap<String, String> = masked_details(&details).into_iter().collect();
        assert_eq!(shown["national_id"], "0011******23", "already masked: unchanged");
        assert_eq!(shown["id_number"], "0011******23");
        assert_eq!(shown["email"], "m*********@example.vn");
        assert_eq!(shown["phone"], "*********678");
        assert_eq!(shown["note"], "m**@example.vn", "an e-mail under any key");
        assert_eq!(shown["username_hash"], "a1b2c3d4e5f6…");
        assert_eq!(shown["factor"], "passkey");
        assert_eq!(shown["amr"], "pwd, hwk");
        assert_eq!(shown["user_verified"], "true");
        assert!(!shown.contains_key("gone"));
        assert_eq!(shown["reason"], "Giấy tờ giả, liên hệ *******678", "free text stays readable, numbers masked");
    }

    #[test]
    fn numbers_and_names_are_masked() {
        assert_eq!(mask_personal("Nguyễn Thị Mai"), "N*************");
        assert_eq!(mask_personal("001190000123"), "0011******23");
        assert_eq!(mask_personal("0912.345.678"), "*********678");
        assert_eq!(mask_personal(""), "*");
    }
}
