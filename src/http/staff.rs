//! The staff console at `/staff` (issue 8): find or register a citizen, verify them in person
//! (AS-4), print an activation letter; supervisors lower a level or suspend an account. Only
//! for staff whose session reached `mfa` (or `2fa` with a certificate): `service::proofing::access`.
//! Also `/activate` (the citizen's side of the letter) and the evidence block of the account page.

use super::ctx::{WebCtx, secret_cookie};
use super::ctx::{bad_form, parse};
use super::oidc::{csrf_failed, service_failure};
use super::web::dmy_time;
use crate::app::{AppState, now};
use crate::assurance::AsLevel;
use crate::service::accounts::{FieldProblem, IdentityInput, RegistrationError};
use crate::service::proofing::{self, Access, DocumentInput, Staff};
use crate::service::{ServiceError, login};
use crate::store::{Account, AccountStatus, EvidenceRecord};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

fn problems_map(problems: &[FieldProblem]) -> BTreeMap<&'static str, Vec<String>> {
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for p in problems {
        m.entry(p.field).or_default().push(p.message.clone());
    }
    m
}

/// Console pages show personal data: never kept in a cache (shared counter computers).
pub(super) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// `YYYY-MM-DD` as `dd/mm/yyyy`.
fn dmy(iso: &str) -> String {
    match iso.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

/// The day's date only (`dd/mm/yyyy`, Vietnam time).
fn dmy_date(t: i64) -> String {
    dmy_time(t).split(' ').next().unwrap_or_default().to_string()
}

/// Midnight today, Vietnam time (GMT+7), as unix seconds.
fn start_of_today(t: i64) -> i64 {
    let local = t + 7 * 3600;
    local - local.rem_euclid(86_400) - 7 * 3600
}

/// The console's gate: the signed-in staff member, or the response that refuses.
pub(super) async fn staff_or_refuse(state: &AppState, ctx: WebCtx) -> Result<(Staff, WebCtx), Response> {
    match proofing::access(state, ctx.session.as_ref()).await {
        Ok(Access::Allowed(staff)) => Ok((*staff, ctx)),
        Ok(Access::NotSignedIn) => Err(ctx.redirect("/login")),
        Ok(Access::NotStaff) => {
            let (title, message) = (ctx.t("staff_refused_title"), ctx.t("staff_not_staff"));
            Err(ctx.error_page(StatusCode::FORBIDDEN, title, message))
        }
        Ok(Access::WeakSession) => {
            let (title, message) = (ctx.t("staff_refused_title"), ctx.t("staff_mfa_required"));
            Err(ctx.error_page(StatusCode::FORBIDDEN, title, message))
        }
        Err(e) => Err(service_failure(ctx, e)),
    }
}

fn staff_view(staff: &Staff) -> Value {
    context! {
        username => staff.account.username.clone(),
        role => staff.member.role.as_str(),
        office => staff.member.office.clone(),
        supervisor => staff.is_supervisor(),
    }
}

/// One evidence record for a page (the citizen's or the console's).
pub fn evidence_view(r: &EvidenceRecord) -> Value {
    let documents: Vec<Value> = r
        .documents
        .iter()
        .map(|d| {
            context! {
                kind => d.kind.clone(),
                number => d.number_masked.clone(),
                authority => d.authority.clone(),
                expires => d.expires_on.as_deref().map(dmy),
            }
        })
        .collect();
    context! {
        level => r.to_level.number(),
        from_level => r.from_level.map(|l| l.number()),
        date => dmy_date(r.at),
        when => dmy_time(r.at),
        method => r.method.clone(),
        source => r.source.clone(),
        by_staff => r.verifier.starts_with("staff:"),
        office => r.office.clone(),
        reason => r.reason.clone(),
        documents => documents,
    }
}

/// The account page's evidence block (`templates/evidence_account.html`): the record that
/// gave the current level, and the history, newest first.
pub async fn account_view(state: &AppState, account: &Account) -> Result<Value, ServiceError> {
    let records = state.store.list_evidence(account.id).await?;
    let current = records.iter().rev().find(|r| r.to_level == account.as_level).map(evidence_view);
    let history: Vec<Value> = records.iter().rev().map(evidence_view).collect();
    Ok(context! { current => current, history => history })
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    days: Option<i64>,
}

pub async fn home(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<HomeQuery>) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = now();
    let days = q.days.unwrap_or(0).clamp(0, 90);
    let since = start_of_today(t) - days * 86_400;
    let records = match proofing::staff_records_since(&state, since).await {
        Ok(r) => r,
        Err(e) => return service_failure(ctx, e),
    };
    let rows: Vec<Value> = records
        .iter()
        .map(|(r, a)| {
            context! {
                evidence => evidence_view(r),
                account_id => r.account_id.to_string(),
                username => a.as_ref().map(|a| a.username.clone()),
                full_name => a.as_ref().and_then(|a| a.identity.as_ref().map(|i| i.full_name.clone())),
                national_id => a.as_ref().and_then(|a| a.identity.as_ref().map(|i| i.national_id_masked.clone())),
            }
        })
        .collect();
    let registrations = records.iter().filter(|(r, _)| r.method == "in_person" && r.from_level.is_none()).count();
    let pending_reviews = match state.store.count_pending_reviews().await {
        Ok(n) => n,
        Err(e) => return service_failure(ctx, e.into()),
    };
    no_store(ctx.page(
        StatusCode::OK,
        "staff_home.html",
        context! {
            staff => staff_view(&staff),
            rows => rows,
            days => days,
            registrations => registrations,
            pending_reviews => pending_reviews,
        },
    ))
}

#[derive(Deserialize, Serialize, Default)]
pub struct CitizenForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    doc_kind: String,
    #[serde(default)]
    doc_number: String,
    #[serde(default)]
    doc_authority: String,
    #[serde(default)]
    doc_expiry: String,
}

impl CitizenForm {
    fn identity(&self) -> IdentityInput {
        IdentityInput {
            national_id: self.national_id.clone(),
            full_name: self.full_name.clone(),
            birth_date: self.birth_date.clone(),
            sex: self.sex.clone(),
        }
    }

    fn document(&self) -> DocumentInput {
        DocumentInput {
            kind: self.doc_kind.clone(),
            number: self.doc_number.clone(),
            authority: self.doc_authority.clone(),
            expires_on: self.doc_expiry.clone(),
        }
    }
}

/// The citizen page: `account` found (verify, letter, supervisor actions) or `None` (the form
/// that registers a new citizen, `form` prefilled).
#[allow(clippy::too_many_arguments)]
async fn citizen_page(
    state: &AppState,
    ctx: WebCtx,
    staff: &Staff,
    status: StatusCode,
    account: Option<&Account>,
    form: &CitizenForm,
    problems: &[FieldProblem],
    notice: Option<String>,
) -> Response {
    let citizen = match account {
        Some(a) => {
            let evidence = match state.store.list_evidence(a.id).await {
                Ok(e) => e,
                Err(e) => return service_failure(ctx, e.into()),
            };
            Some(context! {
                id => a.id.to_string(),
                username => a.username.clone(),
                as_level => a.as_level.number(),
                suspended => a.status == AccountStatus::Suspended,
                activated => a.password_hash.is_some(),
                own => a.id == staff.account.id,
                full_name => a.identity.as_ref().map(|i| i.full_name.clone()),
                national_id => a.identity.as_ref().map(|i| i.national_id_masked.clone()),
                birth_date => a.identity.as_ref().map(|i| dmy(&i.birth_date)),
                history => evidence.iter().rev().map(evidence_view).collect::<Vec<_>>(),
                lower_to => (1..a.as_level.number()).collect::<Vec<_>>(),
            })
        }
        None => None,
    };
    let errors = problems_map(problems);
    no_store(ctx.page(
        status,
        "staff_citizen.html",
        context! {
            staff => staff_view(staff),
            citizen => citizen,
            form => super::pages::ser(form),
            errors => if errors.is_empty() { None } else { Some(super::pages::ser(errors)) },
            doc_kinds => proofing::DOCUMENT_KINDS.to_vec(),
            notice => notice,
        },
    ))
}

#[derive(Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    national_id: String,
}

/// Exact look-up by ID number (POST: the number stays out of URLs and logs).
pub async fn search(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SearchForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match proofing::find_by_national_id(&state, &form.national_id).await {
        Ok(Some(a)) => ctx.redirect(&format!("/staff/citizens/{}", a.id)),
        Ok(None) => {
            let prefill = CitizenForm { national_id: form.national_id.trim().to_string(), ..Default::default() };
            let notice = Some(ctx.t("staff_not_found"));
            citizen_page(&state, ctx, &staff, StatusCode::OK, None, &prefill, &[], notice).await
        }
        Err(e) => service_failure(ctx, e),
    }
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn citizen_get(
    State(state): State<AppState>,
    ctx: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let account = match Uuid::parse_str(&id).ok() {
        Some(id) => match state.store.get_account(id).await {
            Ok(a) => a,
            Err(e) => return service_failure(ctx, e.into()),
        },
        None => None,
    };
    let Some(account) = account else {
        let (title, message) = (ctx.t("err_not_found_title"), ctx.t("err_staff_no_account"));
        return ctx.error_page(StatusCode::NOT_FOUND, title, message);
    };
    let notice = match q.done.as_deref() {
        Some("created") => Some(ctx.t("staff_done_created")),
        Some("verified") => Some(ctx.t("staff_done_verified")),
        Some("lowered") => Some(ctx.t("staff_done_lowered")),
        Some("suspended") => Some(ctx.t("staff_done_suspended")),
        Some("enrolled") => Some(ctx.t("staff_done_enrolled")),
        _ => None,
    };
    let form = prefill(&account);
    citizen_page(&state, ctx, &staff, StatusCode::OK, Some(&account), &form, &[], notice).await
}

/// The verify form starts from what the account declared (the officer corrects it from the card).
fn prefill(account: &Account) -> CitizenForm {
    match &account.identity {
        Some(i) => CitizenForm {
            full_name: i.full_name.clone(),
            birth_date: i.birth_date.clone(),
            sex: i.sex.clone(),
            doc_kind: "cccd".into(),
            ..Default::default()
        },
        None => CitizenForm { doc_kind: "cccd".into(), ..Default::default() },
    }
}

pub async fn create(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<CitizenForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let r = proofing::register_in_person(
        &state,
        &staff,
        &form.username,
        &form.identity(),
        &form.document(),
        ctx.lang,
        now(),
    )
    .await;
    match r {
        Ok(a) => ctx.redirect(&format!("/staff/citizens/{}?done=created", a.id)),
        Err(RegistrationError::Invalid(p)) => {
            citizen_page(&state, ctx, &staff, StatusCode::BAD_REQUEST, None, &form, &p, None).await
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}

/// Loads the account of a `/staff/citizens/{id}/…` action, or the not-found page.
pub(super) async fn path_account(state: &AppState, ctx: WebCtx, id: &str) -> Result<(Account, WebCtx), Response> {
    let found = match Uuid::parse_str(id).ok() {
        Some(id) => state.store.get_account(id).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(a)) => Ok((a, ctx)),
        Ok(None) => {
            let (title, message) = (ctx.t("err_not_found_title"), ctx.t("err_staff_no_account"));
            Err(ctx.error_page(StatusCode::NOT_FOUND, title, message))
        }
        Err(e) => Err(service_failure(ctx, e.into())),
    }
}

/// After a refused action: the citizen page again, with the problems.
async fn refused(
    state: &AppState,
    ctx: WebCtx,
    staff: &Staff,
    account: &Account,
    form: &CitizenForm,
    e: RegistrationError,
) -> Response {
    match e {
        RegistrationError::Invalid(p) => {
            let status =
                if p.iter().any(|p| p.field == "account") { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
            citizen_page(state, ctx, staff, status, Some(account), form, &p, None).await
        }
        RegistrationError::Service(e) => service_failure(ctx, e),
    }
}

pub async fn verify(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(form) = parse::<CitizenForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (account, ctx) = match path_account(&state, ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let r =
        proofing::upgrade_in_person(&state, &staff, account.id, &form.identity(), &form.document(), ctx.lang, now())
            .await;
    match r {
        Ok(()) => ctx.redirect(&format!("/staff/citizens/{}?done=verified", account.id)),
        Err(e) => refused(&state, ctx, &staff, &account, &form, e).await,
    }
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    to_level: String,
}

pub async fn lower(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    reason_action(state, ctx, id, body, "lowered").await
}

pub async fn suspend(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    reason_action(state, ctx, id, body, "suspended").await
}

async fn reason_action(state: AppState, ctx: WebCtx, id: String, body: Bytes, action: &str) -> Response {
    let Some(form) = parse::<ReasonForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (account, ctx) = match path_account(&state, ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = now();
    let r = if action == "lowered" {
        match form.to_level.parse::<i64>().ok().and_then(AsLevel::from_number) {
            Some(to) => proofing::lower_level(&state, &staff, account.id, to, &form.reason, ctx.lang, t).await,
            None => Err(RegistrationError::Invalid(vec![FieldProblem {
                field: "to_level",
                message: ctx.t("err_staff_not_lower"),
            }])),
        }
    } else {
        proofing::suspend(&state, &staff, account.id, &form.reason, ctx.lang, t).await
    };
    match r {
        Ok(()) => ctx.redirect(&format!("/staff/citizens/{}?done={action}", account.id)),
        Err(e) => refused(&state, ctx, &staff, &account, &prefill(&account), e).await,
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// Issues the letter and shows it once, for printing (A4) or reading out (phone view). Not
/// stored in any cache: the code exists only on this page and the paper.
pub async fn letter(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(form) = parse::<CsrfOnly>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (account, ctx) = match path_account(&state, ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = now();
    let (account, letter) = match proofing::issue_letter(&state, &staff, account.id, ctx.lang, t).await {
        Ok(v) => v,
        Err(e) => return refused(&state, ctx, &staff, &account, &prefill(&account), e).await,
    };
    let url = format!("{}/activate?code={}", state.issuer(), letter.code);
    let qr = match crate::authn::totp::qr_svg(&url, &ctx.t("letter_qr_title")) {
        Ok(svg) => svg,
        Err(e) => return service_failure(ctx, ServiceError::internal(e)),
    };
    no_store(ctx.page(
        StatusCode::OK,
        "activation_letter.html",
        context! {
            code => letter.code,
            url => format!("{}/activate", state.issuer()),
            qr => Value::from_safe_string(qr),
            expires => dmy_time(letter.expires_at),
            issued => dmy_time(t),
            username => account.username.clone(),
            full_name => account.identity.as_ref().map(|i| i.full_name.clone()),
            national_id => account.identity.as_ref().map(|i| i.national_id_masked.clone()),
            as_level => account.as_level.number(),
            office => staff.member.office.clone(),
            account_id => account.id.to_string(),
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct ActivateQuery {
    code: Option<String>,
}

pub async fn activate_get(ctx: WebCtx, Query(q): Query<ActivateQuery>) -> Response {
    let code = q.code.unwrap_or_default();
    ctx.page(StatusCode::OK, "activate.html", context! { code => code, errors => Value::from(()) })
}

#[derive(Deserialize)]
pub struct ActivateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

pub async fn activate_post(State(state): State<AppState>, mut ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<ActivateForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let t = now();
    match proofing::activate(&state, &form.code, &form.password, &form.password_confirm, ctx.lang, t).await {
        Ok(account) => match login::start_session(&state, &account, login::password_factor(t), t).await {
            Ok((token, _)) => {
                if let Some((old, _)) = ctx.session.take() {
                    let _ = crate::service::logout::end_session(&state, &old, t).await;
                }
                ctx.jar = ctx.jar.add(secret_cookie(&state, "session", token, None));
                ctx.redirect("/account")
            }
            Err(e) => service_failure(ctx, e),
        },
        Err(RegistrationError::Invalid(p)) => {
            let errors = super::pages::ser(problems_map(&p));
            ctx.page(StatusCode::BAD_REQUEST, "activate.html", context! { code => form.code, errors => errors })
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}
