//! Self-registration (AS-1 and AS-2), the AS-1 → AS-2 self-declaration, and the operator's
//! `account add`. The declared ID number is checked for *consistency* only (it has no check
//! digit); it is stored encrypted, with a keyed hash for the one-account-per-number rule.

use super::{ServiceError, blocking};
use crate::app::AppState;
use crate::assurance::AsLevel;
use crate::audit::AuditEvent;
use crate::authn::password;
use crate::i18n::{Lang, t};
use crate::identity::national_id::{self, Sex};
use crate::store::{Account, AccountStatus, Conflict, IdentityData, StoreError};
use uuid::Uuid;

#[derive(Clone, Debug, Default)]
pub struct RegistrationInput {
    pub username: String,
    pub password: String,
    pub password_confirm: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Present for AS-2.
    pub identity: Option<IdentityInput>,
}

#[derive(Clone, Debug, Default)]
pub struct IdentityInput {
    pub national_id: String,
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `male` | `female`.
    pub sex: String,
}

/// A problem with one form field, already in the citizen's language.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("invalid input")]
    Invalid(Vec<FieldProblem>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for RegistrationError {
    fn from(e: StoreError) -> Self {
        RegistrationError::Service(ServiceError::Store(e))
    }
}

/// User names are compared lower-cased and trimmed.
pub fn canonical_username(s: &str) -> String {
    s.trim().to_lowercase()
}

pub(crate) fn check_username(u: &str, lang: Lang, problems: &mut Vec<FieldProblem>) {
    let ok = (3..=64).contains(&u.chars().count())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        problems.push(FieldProblem { field: "username", message: t(lang, "err_username_format") });
    }
}

fn optional(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn check_contacts(input: &RegistrationInput, lang: Lang, problems: &mut Vec<FieldProblem>) {
    if let Some(e) = optional(&input.email)
        && (e.len() > 254 || !e.contains('@') || e.starts_with('@') || e.ends_with('@') || e.contains(' '))
    {
        problems.push(FieldProblem { field: "email", message: t(lang, "err_email_format") });
    }
    if let Some(p) = optional(&input.phone) {
        let digits: String = p.chars().filter(|c| !matches!(c, ' ' | '.' | '-')).collect();
        let body = digits.strip_prefix('+').unwrap_or(&digits);
        if !(9..=15).contains(&body.len()) || !body.chars().all(|c| c.is_ascii_digit()) {
            problems.push(FieldProblem { field: "phone", message: t(lang, "err_phone_format") });
        }
    }
}

/// Checks the declared identity and returns what to store, or the problems found.
pub(crate) fn check_identity(
    state: &AppState,
    account_id: Uuid,
    input: &IdentityInput,
    lang: Lang,
    today: time::Date,
    problems: &mut Vec<FieldProblem>,
) -> Result<Option<IdentityData>, ServiceError> {
    let full_name = input.full_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let name_ok = (2..=100).contains(&full_name.chars().count())
        && full_name.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.'));
    if !name_ok {
        problems.push(FieldProblem { field: "full_name", message: t(lang, "err_full_name") });
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let birth = time::Date::parse(input.birth_date.trim(), format).ok().filter(|d| d.year() >= 1900);
    if birth.is_none() {
        problems.push(FieldProblem { field: "birth_date", message: t(lang, "err_birth_date") });
    }
    let sex = input.sex.parse::<Sex>().ok();
    if sex.is_none() {
        problems.push(FieldProblem { field: "sex", message: t(lang, "err_sex") });
    }
    let (Some(birth), Some(sex)) = (birth, sex) else {
        return Ok(None);
    };
    match national_id::check_consistency(&input.national_id, birth, sex, today) {
        Ok(id) => {
            if !problems.is_empty() {
                return Ok(None);
            }
            let aad = format!("account:{account_id}:national_id");
            Ok(Some(IdentityData {
                full_name,
                birth_date: birth.format(format).map_err(ServiceError::internal)?,
                sex: sex.as_str().to_string(),
                national_id_enc: state
                    .data_key
                    .encrypt(id.as_str().as_bytes(), aad.as_bytes())
                    .map_err(ServiceError::internal)?,
                national_id_hash: national_id_hash(state, id.as_str()),
                national_id_masked: id.masked(),
            }))
        }
        Err(found) => {
            for p in found {
                problems.push(FieldProblem { field: "national_id", message: p.message(lang) });
            }
            Ok(None)
        }
    }
}

/// The look-up key for an ID number: a keyed hash, so the database alone reveals nothing.
pub fn national_id_hash(state: &AppState, number: &str) -> String {
    state.data_key.keyed_hash("national_id", number.as_bytes())
}

pub(crate) fn today(now: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(now).map(|t| t.date()).unwrap_or(time::Date::MIN)
}

pub(crate) fn taken(conflict: Conflict, lang: Lang) -> RegistrationError {
    let (field, key) = match conflict {
        Conflict::NationalId => ("national_id", "err_national_id_taken"),
        _ => ("username", "err_username_taken"),
    };
    RegistrationError::Invalid(vec![FieldProblem { field, message: t(lang, key) }])
}

/// Registers a citizen: AS-2 when identity data is declared, AS-1 otherwise. `actor` is
/// `self` for the web form or `operator` for the CLI.
pub async fn register(
    state: &AppState,
    input: RegistrationInput,
    lang: Lang,
    actor: &str,
    now: i64,
) -> Result<Account, RegistrationError> {
    let username = canonical_username(&input.username);
    let mut problems = Vec::new();
    check_username(&username, lang, &mut problems);
    if let Err(p) = password::check_new_password(&input.password, &username) {
        problems.push(FieldProblem { field: "password", message: p.message(lang) });
    } else if input.password != input.password_confirm {
        problems.push(FieldProblem { field: "password_confirm", message: t(lang, "err_password_mismatch") });
    }
    check_contacts(&input, lang, &mut problems);
    let id = Uuid::now_v7();
    let identity = match &input.identity {
        Some(i) => check_identity(state, id, i, lang, today(now), &mut problems)?,
        None => None,
    };
    if !problems.is_empty() {
        return Err(RegistrationError::Invalid(problems));
    }
    let params = state.password_params;
    let hash = super::hashing::hash(state, input.password.clone(), params).await?.map_err(ServiceError::internal)?;
    let as_level = if identity.is_some() { AsLevel::As2 } else { AsLevel::As1 };
    let account = Account {
        id,
        username,
        password_hash: Some(hash),
        as_level,
        email: optional(&input.email),
        phone: optional(&input.phone),
        email_verified_at: None,
        phone_verified_at: None,
        identity,
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: now,
        updated_at: now,
    };
    let mut audit = AuditEvent::new(now, "account.created", actor)
        .account(id)
        .detail("as_level", as_level.number())
        .detail("method", "self_declared");
    if let Some(i) = &account.identity {
        audit = audit.detail("national_id", &i.national_id_masked);
    }
    // A declared identity is the account's first level change: it gets its evidence record.
    let written = if account.identity.is_some() {
        let source = if actor == "self" { "web_form" } else { "cli" };
        let evidence = super::proofing::evidence(id, now, None, as_level, "self_declared", source, actor);
        state.store.create_account_with_evidence(&account, &evidence, &audit).await
    } else {
        state.store.create_account(&account, &audit).await
    };
    match written {
        Ok(()) => Ok(account),
        Err(StoreError::Conflict(c)) => Err(taken(c, lang)),
        Err(e) => Err(e.into()),
    }
}

/// AS-1 → AS-2: a signed-in citizen declares their identity data.
pub async fn declare_identity(
    state: &AppState,
    account: &Account,
    input: IdentityInput,
    lang: Lang,
    now: i64,
) -> Result<(), RegistrationError> {
    if account.identity.is_some() || account.as_level >= AsLevel::As2 {
        return Err(RegistrationError::Invalid(vec![FieldProblem {
            field: "national_id",
            message: t(lang, "err_identity_already_declared"),
        }]));
    }
    let mut problems = Vec::new();
    let identity = check_identity(state, account.id, &input, lang, today(now), &mut problems)?;
    let Some(identity) = identity.filter(|_| problems.is_empty()) else {
        return Err(RegistrationError::Invalid(problems));
    };
    let audit = AuditEvent::new(now, "account.level_raised", format!("account:{}", account.id))
        .account(account.id)
        .detail("from", account.as_level.number())
        .detail("to", 2)
        .detail("method", "self_declared")
        .detail("national_id", &identity.national_id_masked);
    let evidence = super::proofing::evidence(
        account.id,
        now,
        Some(account.as_level),
        AsLevel::As2,
        "self_declared",
        "web_form",
        "self",
    );
    match state.store.change_level(&evidence, Some(&identity), &audit).await {
        Ok(true) => Ok(()),
        // The level changed meanwhile (another tab, a counter visit): nothing was written.
        Ok(false) => Err(RegistrationError::Invalid(vec![FieldProblem {
            field: "national_id",
            message: t(lang, "err_identity_already_declared"),
        }])),
        Err(StoreError::Conflict(c)) => Err(taken(c, lang)),
        Err(e) => Err(e.into()),
    }
}

/// The national ID number in clear, for the `national_id` scope.
pub fn decrypt_national_id(state: &AppState, account: &Account) -> Option<String> {
    let identity = account.identity.as_ref()?;
    let aad = format!("account:{}:national_id", account.id);
    state.data_key.decrypt(&identity.national_id_enc, aad.as_bytes()).ok().and_then(|b| String::from_utf8(b).ok())
}

/// The development demo's citizen: user name, password, and the identity it is registered with.
pub const DEMO_CITIZEN: &str = "congdan.demo";
pub const DEMO_CITIZEN_PASSWORD: &str = "thử nghiệm cổng dịch vụ công";
const DEMO_CITIZEN_EMAIL: &str = "congdan.demo@example.invalid";

/// Creates, once, the demo citizen the `/demo` portal's level-4 service needs: AS-3 with a
/// verified e-mail address (sign-in codes go to the development outbox). AS-3 normally takes
/// online verification or a counter visit; here the development demo grants it, says so in the
/// audit log, and is refused outside development.
pub async fn ensure_demo_citizen(state: &AppState, now: i64) -> Result<(), ServiceError> {
    if !state.config.development {
        return Err(ServiceError::Internal("the demo citizen exists only in development".into()));
    }
    if state.store.find_account_by_username(DEMO_CITIZEN).await?.is_some() {
        return Ok(());
    }
    let id = Uuid::now_v7();
    let input = IdentityInput {
        national_id: "001090012345".into(),
        full_name: "Nguyễn Văn An".into(),
        birth_date: "1990-05-14".into(),
        sex: "male".into(),
    };
    let mut problems = Vec::new();
    let Some(identity) = check_identity(state, id, &input, Lang::Vi, today(now), &mut problems)? else {
        return Err(ServiceError::Internal(format!("demo identity rejected: {problems:?}")));
    };
    let params = state.password_params;
    let hash = blocking(state, move || password::hash_password(DEMO_CITIZEN_PASSWORD, params))
        .await?
        .map_err(ServiceError::internal)?;
    let account = Account {
        id,
        username: DEMO_CITIZEN.into(),
        password_hash: Some(hash),
        as_level: AsLevel::As3,
        email: Some(DEMO_CITIZEN_EMAIL.into()),
        phone: None,
        email_verified_at: Some(now),
        phone_verified_at: None,
        identity: Some(identity),
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEvent::new(now, "account.created", "system")
        .account(id)
        .detail("as_level", 3)
        .detail("method", "development_demo")
        .detail("note", "AS-3 granted by the development demo without proofing");
    let evidence = super::proofing::evidence(id, now, None, AsLevel::As3, "development_demo", "cli", "system");
    match state.store.create_account_with_evidence(&account, &evidence, &audit).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
