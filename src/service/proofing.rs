//! Identity proofing (issue 8): the evidence behind every change of an account's registration
//! level, staff accounts, in-person verification at a counter (AS-4), supervisors lowering a
//! level or suspending an account, and activation letters.
//!
//! Every change writes its evidence record and its audit event in the same transaction as the
//! change itself (`Store::change_level`, `create_account_with_evidence`); staff actions carry
//! the actor `staff:<account id>`. The console itself is only for sessions that reached `mfa`,
//! or `2fa` with a certificate (DESIGN.md: staff who can raise anyone to AS-4 must be at least
//! as well authenticated as the citizens they vouch for).

pub mod config;
pub mod counter;
pub mod online;
pub mod registry;
pub mod review;

use super::accounts::{FieldProblem, IdentityInput, RegistrationError, check_identity, check_username, taken, today};
use super::{ServiceError, blocking};
use crate::app::AppState;
use crate::assurance::{self, AsLevel, Mechanism, Method, VerifiedFactor};
use crate::audit::AuditEvent;
use crate::authn::password;
use crate::crypto::random::{hash_token, random_bytes};
use crate::i18n::{Lang, t};
use crate::store::{
    Account, AccountStatus, ActivationCode, EvidenceDocument, EvidenceRecord, SessionRecord, StaffMember, StaffRole,
    StoreError,
};
use uuid::Uuid;

/// How long an activation letter's code works.
pub const ACTIVATION_SECONDS: i64 = 7 * 24 * 3600;

/// A new evidence record without documents, office or reason.
pub fn evidence(
    account_id: Uuid,
    at: i64,
    from_level: Option<AsLevel>,
    to_level: AsLevel,
    method: &str,
    source: &str,
    verifier: &str,
) -> EvidenceRecord {
    EvidenceRecord {
        id: Uuid::now_v7(),
        account_id,
        at,
        from_level,
        to_level,
        method: method.into(),
        source: source.into(),
        verifier: verifier.into(),
        office: None,
        documents: Vec::new(),
        reason: None,
    }
}

/// A staff member acting in the console.
#[derive(Clone, Debug)]
pub struct Staff {
    pub account: Account,
    pub member: StaffMember,
}

impl Staff {
    /// The audit actor and evidence verifier.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.account.id)
    }

    pub fn is_supervisor(&self) -> bool {
        self.member.role == StaffRole::Supervisor
    }
}

/// Who may open the console.
pub enum Access {
    NotSignedIn,
    NotStaff,
    /// Staff, but the session is weaker than `mfa` (or `2fa` with a certificate).
    WeakSession,
    Allowed(Box<Staff>),
}

/// Strong enough for the console: `mfa` (a passkey with user verification), or `2fa` in which
/// one factor is a certificate (password + certificate).
pub fn strong_enough(factors: &[VerifiedFactor]) -> bool {
    match assurance::mechanism(factors) {
        Some(Mechanism::MultiFactor) => true,
        Some(Mechanism::TwoFactor) => factors.iter().any(|f| matches!(f.method, Method::Certificate { .. })),
        _ => false,
    }
}

pub async fn access(state: &AppState, session: Option<&(SessionRecord, Account)>) -> Result<Access, ServiceError> {
    let Some((session, account)) = session else {
        return Ok(Access::NotSignedIn);
    };
    let Some(member) = state.store.get_staff(account.id).await? else {
        return Ok(Access::NotStaff);
    };
    if !strong_enough(&session.factors) {
        return Ok(Access::WeakSession);
    }
    Ok(Access::Allowed(Box::new(Staff { account: account.clone(), member })))
}

/// `xacthuc staff add`: a new account with a password, made staff, in one transaction.
pub async fn add_staff(
    state: &AppState,
    username: &str,
    password_text: &str,
    role: StaffRole,
    office: Option<String>,
    now: i64,
) -> Result<Account, RegistrationError> {
    let lang = Lang::En;
    let username = super::accounts::canonical_username(username);
    let mut problems = Vec::new();
    check_username(&username, lang, &mut problems);
    if let Err(p) = password::check_new_password(password_text, &username) {
        problems.push(FieldProblem { field: "password", message: p.message(lang) });
    }
    if !problems.is_empty() {
        return Err(RegistrationError::Invalid(problems));
    }
    let params = state.password_params;
    let pw = password_text.to_string();
    let hash = blocking(state, move || password::hash_password(&pw, params)).await?.map_err(ServiceError::internal)?;
    let account = Account {
        id: Uuid::now_v7(),
        username,
        password_hash: Some(hash),
        as_level: AsLevel::As1,
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity: None,
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: now,
        updated_at: now,
    };
    let office = office.map(|o| o.trim().to_string()).filter(|o| !o.is_empty());
    let member = StaffMember { account_id: account.id, role, office: office.clone(), created_at: now };
    let mut audit = AuditEvent::new(now, "staff.added", "operator").account(account.id).detail("role", role.as_str());
    if let Some(o) = &office {
        audit = audit.detail("office", o);
    }
    match state.store.create_staff(&member, Some(&account), &audit).await {
        Ok(()) => Ok(account),
        Err(StoreError::Conflict(c)) => Err(taken(c, lang)),
        Err(e) => Err(e.into()),
    }
}

/// The citizen with this ID number (exact match through the keyed hash), if any.
pub async fn find_by_national_id(state: &AppState, number: &str) -> Result<Option<Account>, ServiceError> {
    let number: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if number.is_empty() {
        return Ok(None);
    }
    let hash = super::accounts::national_id_hash(state, &number);
    Ok(state.store.find_account_by_national_id_hash(&hash).await?)
}

/// One document as typed at the counter.
#[derive(Clone, Debug, Default)]
pub struct DocumentInput {
    /// `cccd` | `cmnd` | `passport`.
    pub kind: String,
    /// For a `cccd`, empty means the declared ID number.
    pub number: String,
    pub authority: String,
    /// `YYYY-MM-DD`, or empty for a card without expiry.
    pub expires_on: String,
}

pub const DOCUMENT_KINDS: &[&str] = &["cccd", "cmnd", "passport"];

/// Masks a document number for the evidence record: all but the last 3 characters hidden (the
/// 12-digit ID number keeps its province and century digits, as everywhere else).
pub fn mask_document_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() == 12 && chars.iter().all(|c| c.is_ascii_digit()) {
        return crate::identity::national_id::mask(number);
    }
    let n = chars.len();
    chars.iter().enumerate().map(|(i, c)| if i + 3 >= n { *c } else { '*' }).collect()
}

fn check_document(
    doc: &DocumentInput,
    national_id: &str,
    lang: Lang,
    now: i64,
    problems: &mut Vec<FieldProblem>,
) -> Option<EvidenceDocument> {
    let kind = doc.kind.trim();
    if !DOCUMENT_KINDS.contains(&kind) {
        problems.push(FieldProblem { field: "doc_kind", message: t(lang, "err_doc_kind") });
    }
    let mut number: String = doc.number.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    if number.is_empty() && kind == "cccd" {
        number = national_id.chars().filter(|c| !c.is_whitespace()).collect();
    }
    if !(6..=20).contains(&number.chars().count()) || !number.chars().all(|c| c.is_ascii_alphanumeric()) {
        problems.push(FieldProblem { field: "doc_number", message: t(lang, "err_doc_number") });
    }
    let authority = doc.authority.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(2..=200).contains(&authority.chars().count()) {
        problems.push(FieldProblem { field: "doc_authority", message: t(lang, "err_doc_authority") });
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let expires_on = match doc.expires_on.trim() {
        "" => None,
        s => match time::Date::parse(s, format) {
            Ok(d) if d >= today(now) => Some(s.to_string()),
            Ok(_) => {
                problems.push(FieldProblem { field: "doc_expiry", message: t(lang, "err_doc_expired") });
                None
            }
            Err(_) => {
                problems.push(FieldProblem { field: "doc_expiry", message: t(lang, "err_doc_expiry") });
                None
            }
        },
    };
    problems.is_empty().then(|| EvidenceDocument {
        kind: kind.to_string(),
        number_masked: mask_document_number(&number),
        authority,
        expires_on,
    })
}

fn one_problem(field: &'static str, lang: Lang, key: &str) -> RegistrationError {
    RegistrationError::Invalid(vec![FieldProblem { field, message: t(lang, key) }])
}

fn in_person_evidence(
    staff: &Staff,
    account_id: Uuid,
    from: Option<AsLevel>,
    doc: EvidenceDocument,
    now: i64,
) -> EvidenceRecord {
    EvidenceRecord {
        office: staff.member.office.clone(),
        documents: vec![doc],
        ..evidence(account_id, now, from, AsLevel::As4, "in_person", "counter", &staff.actor())
    }
}

/// Registers a citizen at the counter directly at AS-4: identity checked with the same rules as
/// self-registration, the document recorded. No password yet: the activation letter sets it.
pub async fn register_in_person(
    state: &AppState,
    staff: &Staff,
    username: &str,
    identity: &IdentityInput,
    doc: &DocumentInput,
    lang: Lang,
    now: i64,
) -> Result<Account, RegistrationError> {
    let username = super::accounts::canonical_username(username);
    let id = Uuid::now_v7();
    let mut problems = Vec::new();
    check_username(&username, lang, &mut problems);
    let checked = check_identity(state, id, identity, lang, today(now), &mut problems)?;
    let doc = check_document(doc, &identity.national_id, lang, now, &mut problems);
    let (Some(checked), Some(doc), true) = (checked, doc, problems.is_empty()) else {
        return Err(RegistrationError::Invalid(problems));
    };
    let account = Account {
        id,
        username,
        password_hash: None,
        as_level: AsLevel::As4,
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity: Some(checked),
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: now,
        updated_at: now,
    };
    let evidence = in_person_evidence(staff, id, None, doc.clone(), now);
    let audit = staff_audit(staff, now, "account.created", id)
        .detail("as_level", 4)
        .detail("method", "in_person")
        .detail("document", &doc.kind)
        .detail("evidence", evidence.id.to_string());
    match state.store.create_account_with_evidence(&account, &evidence, &audit).await {
        Ok(()) => Ok(account),
        Err(StoreError::Conflict(c)) => Err(taken(c, lang)),
        Err(e) => Err(e.into()),
    }
}

fn staff_audit(staff: &Staff, now: i64, kind: &str, account: Uuid) -> AuditEvent {
    let mut e =
        AuditEvent::new(now, kind, staff.actor()).account(account).detail("staff_role", staff.member.role.as_str());
    if let Some(o) = &staff.member.office {
        e = e.detail("office", o);
    }
    e
}

/// Loads the citizen a staff action is about, refusing the staff member's own account and any
/// other staff account (those are the operator's: an officer printing a colleague's activation
/// letter would take the colleague's account over).
async fn target(state: &AppState, staff: &Staff, id: Uuid, lang: Lang) -> Result<Account, RegistrationError> {
    if id == staff.account.id {
        return Err(one_problem("account", lang, "err_staff_own_account"));
    }
    if state.store.get_staff(id).await?.is_some() {
        return Err(one_problem("account", lang, "err_staff_other_staff"));
    }
    state.store.get_account(id).await?.ok_or_else(|| one_problem("account", lang, "err_staff_no_account"))
}

/// Upgrades an existing account to AS-4 after checking the citizen's documents in person. The
/// identity typed at the counter replaces the declared one; the ID number must stay the same.
pub async fn upgrade_in_person(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    identity: &IdentityInput,
    doc: &DocumentInput,
    lang: Lang,
    now: i64,
) -> Result<(), RegistrationError> {
    let account = target(state, staff, account_id, lang).await?;
    if account.as_level == AsLevel::As4 {
        return Err(one_problem("account", lang, "err_staff_already_as4"));
    }
    let mut problems = Vec::new();
    let checked = check_identity(state, account.id, identity, lang, today(now), &mut problems)?;
    let doc = check_document(doc, &identity.national_id, lang, now, &mut problems);
    let (Some(checked), Some(doc), true) = (checked, doc, problems.is_empty()) else {
        return Err(RegistrationError::Invalid(problems));
    };
    if let Some(old) = &account.identity
        && old.national_id_hash != checked.national_id_hash
    {
        return Err(one_problem("national_id", lang, "err_staff_id_mismatch"));
    }
    let evidence = in_person_evidence(staff, account.id, Some(account.as_level), doc.clone(), now);
    let audit = staff_audit(staff, now, "account.level_raised", account.id)
        .detail("from", account.as_level.number())
        .detail("to", 4)
        .detail("method", "in_person")
        .detail("document", &doc.kind)
        .detail("evidence", evidence.id.to_string());
    match state.store.change_level(&evidence, Some(&checked), &audit).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(one_problem("account", lang, "err_staff_changed_meanwhile")),
        Err(StoreError::Conflict(c)) => Err(taken(c, lang)),
        Err(e) => Err(e.into()),
    }
}

fn reason_of(reason: &str, lang: Lang) -> Result<String, RegistrationError> {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(5..=500).contains(&reason.chars().count()) {
        return Err(one_problem("reason", lang, "err_staff_reason"));
    }
    Ok(reason)
}

/// A supervisor lowers an account's level, with a mandatory reason.
pub async fn lower_level(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    to: AsLevel,
    reason: &str,
    lang: Lang,
    now: i64,
) -> Result<(), RegistrationError> {
    if !staff.is_supervisor() {
        return Err(one_problem("account", lang, "err_staff_supervisor_only"));
    }
    let account = target(state, staff, account_id, lang).await?;
    let reason = reason_of(reason, lang)?;
    if to >= account.as_level {
        return Err(one_problem("to_level", lang, "err_staff_not_lower"));
    }
    let evidence = EvidenceRecord {
        reason: Some(reason.clone()),
        office: staff.member.office.clone(),
        ..evidence(account.id, now, Some(account.as_level), to, "lowered", "counter", &staff.actor())
    };
    let audit = staff_audit(staff, now, "account.level_lowered", account.id)
        .detail("from", account.as_level.number())
        .detail("to", to.number())
        .detail("reason", &reason)
        .detail("evidence", evidence.id.to_string());
    match state.store.change_level(&evidence, None, &audit).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(one_problem("account", lang, "err_staff_changed_meanwhile")),
        Err(e) => Err(e.into()),
    }
}

/// A supervisor suspends an account (its sessions stop working at once: `login::current`
/// accepts active accounts only), with a mandatory reason.
pub async fn suspend(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    reason: &str,
    lang: Lang,
    now: i64,
) -> Result<(), RegistrationError> {
    if !staff.is_supervisor() {
        return Err(one_problem("account", lang, "err_staff_supervisor_only"));
    }
    let account = target(state, staff, account_id, lang).await?;
    let reason = reason_of(reason, lang)?;
    let audit = staff_audit(staff, now, "account.suspended", account.id).detail("reason", &reason);
    state.store.set_account_status(account.id, AccountStatus::Suspended, now, &audit).await?;
    Ok(())
}

/// An activation letter just issued: the code exists only here and on the paper.
pub struct Letter {
    pub code: String,
    pub expires_at: i64,
}

/// Crockford's base32 alphabet: no I, L, O, U, so a code read off paper is unambiguous.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A code as typed: upper case, without spaces or dashes, the look-alikes mapped back.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// Issues an activation letter for the account: 80 random bits as 16 base32 characters, valid
/// 7 days, single use, stored hashed; an earlier unused letter stops working.
pub async fn issue_letter(
    state: &AppState,
    staff: &Staff,
    account_id: Uuid,
    lang: Lang,
    now: i64,
) -> Result<(Account, Letter), RegistrationError> {
    let account = target(state, staff, account_id, lang).await?;
    if account.status != AccountStatus::Active {
        return Err(one_problem("account", lang, "err_staff_suspended"));
    }
    let bytes = random_bytes::<10>().map_err(ServiceError::internal)?;
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let raw: String = (0..16).rev().map(|i| CROCKFORD[((bits >> (i * 5)) & 31) as usize] as char).collect();
    let code = raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-");
    let record = ActivationCode {
        code_hash: hash_token(&raw),
        account_id: account.id,
        issued_by: staff.actor(),
        created_at: now,
        expires_at: now + ACTIVATION_SECONDS,
        used_at: None,
    };
    let audit = staff_audit(staff, now, "activation.issued", account.id).detail("expires_at", record.expires_at);
    state.store.create_activation_code(&record, &audit).await?;
    Ok((account, Letter { code, expires_at: record.expires_at }))
}

/// The citizen activates the account with the letter's code and chooses a password (NIST SP
/// 800-63B rules of `authn::password`). Returns the account, ready for a new session.
pub async fn activate(
    state: &AppState,
    code: &str,
    new_password: &str,
    confirm: &str,
    lang: Lang,
    now: i64,
) -> Result<Account, RegistrationError> {
    let code_hash = hash_token(&normalize_code(code));
    let bad_code = || one_problem("code", lang, "err_activation_code");
    let Some(record) = state.store.find_activation_code(&code_hash).await? else {
        return Err(bad_code());
    };
    if record.used_at.is_some() || record.expires_at <= now {
        return Err(bad_code());
    }
    let Some(account) = state.store.get_account(record.account_id).await? else {
        return Err(bad_code());
    };
    if account.status != AccountStatus::Active {
        return Err(bad_code());
    }
    if let Err(p) = password::check_new_password(new_password, &account.username) {
        return Err(RegistrationError::Invalid(vec![FieldProblem { field: "password", message: p.message(lang) }]));
    }
    if new_password != confirm {
        return Err(one_problem("password_confirm", lang, "err_password_mismatch"));
    }
    let params = state.password_params;
    let pw = new_password.to_string();
    let hash = blocking(state, move || password::hash_password(&pw, params)).await?.map_err(ServiceError::internal)?;
    let audit = AuditEvent::new(now, "account.activated", format!("account:{}", account.id))
        .account(account.id)
        .detail("issued_by", &record.issued_by);
    if !state.store.activate_account(&code_hash, &hash, now, &audit).await? {
        return Err(bad_code());
    }
    Ok(account)
}

/// Evidence records made at or after `since` by staff (in-person registrations and upgrades,
/// lowered levels), newest first, with the accounts they are about.
pub async fn staff_records_since(
    state: &AppState,
    since: i64,
) -> Result<Vec<(EvidenceRecord, Option<Account>)>, ServiceError> {
    let records = state.store.list_evidence_since(since, 500).await?;
    let mut out = Vec::new();
    for r in records.into_iter().filter(|r| r.verifier.starts_with("staff:")) {
        let account = state.store.get_account(r.account_id).await?;
        out.push((r, account));
    }
    Ok(out)
}

/// The OIDC4IDA `verified_claims` for the account (`verification` scope): from the evidence
/// record that gave the current level; `None` below AS-3 or without such a record.
pub async fn verified_claims(state: &AppState, account: &Account) -> Result<Option<serde_json::Value>, ServiceError> {
    use crate::oidc::verified_claims::{CheckedDocument, Verification};
    let records = state.store.list_evidence(account.id).await?;
    let Some(r) = records.iter().rev().find(|r| r.to_level == account.as_level) else {
        return Ok(None);
    };
    let identity = account.identity.as_ref();
    let v = Verification {
        as_level: account.as_level.number(),
        time: r.at,
        method: r.method.clone(),
        process: r.id.to_string(),
        source: r.source.clone(),
        documents: r
            .documents
            .iter()
            .map(|d| CheckedDocument {
                kind: d.kind.clone(),
                authority: d.authority.clone(),
                expires_on: d.expires_on.clone(),
            })
            .collect(),
        name: identity.map(|i| i.full_name.clone()),
        birthdate: identity.map(|i| i.birth_date.clone()),
    };
    Ok(crate::oidc::verified_claims::verified_claims(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assurance::Method;

    fn f(method: Method) -> VerifiedFactor {
        VerifiedFactor { method, at: 0 }
    }

    #[test]
    fn the_console_wants_mfa_or_a_certificate() {
        assert!(!strong_enough(&[f(Method::Password)]));
        assert!(!strong_enough(&[f(Method::Password), f(Method::Totp)]));
        assert!(strong_enough(&[f(Method::WebAuthn { user_verified: true })]));
        assert!(strong_enough(&[f(Method::Password), f(Method::Certificate { hardware: false })]));
        assert!(!strong_enough(&[f(Method::Certificate { hardware: false })]));
    }

    #[test]
    fn codes_read_off_paper_are_forgiving() {
        assert_eq!(normalize_code("abcd-efgh ijkl-mnop"), "ABCDEFGH1JK1MN0P");
        assert_eq!(mask_document_number("001190000123"), "0011******23");
        assert_eq!(mask_document_number("C1234567"), "*****567");
    }
}
