//! The staff side of AS-3 by review (issue 8): `/staff/reviews` (pending requests, oldest
//! first), one request with the declared identity next to the photos, the photos themselves
//! (decrypted, never cached), approve and reject (a reason required). The console's gate
//! (`staff::staff_or_refuse`: staff with an MFA session) and CSRF on every form, as the rest of
//! `/staff`; the rules are `service::proofing::review`.

use super::ctx::WebCtx;
use super::ctx::{bad_form, parse};
use super::oidc::{csrf_failed, service_failure};
use super::staff::{no_store, staff_or_refuse};
use super::web::dmy_time;
use crate::app::{AppState, now};
use crate::service::accounts::{FieldProblem, RegistrationError};
use crate::service::proofing::review;
use crate::service::proofing::{DocumentInput, Staff};
use crate::store::{ReviewFile, ReviewRequest, ReviewStatus};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

fn not_found(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("err_not_found_title"), ctx.t("err_review_not_found"));
    ctx.error_page(StatusCode::NOT_FOUND, title, message)
}

/// `YYYY-MM-DD` as `dd/mm/yyyy`.
fn dmy(iso: &str) -> String {
    match iso.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

/// How long a request has waited, in the largest whole unit.
fn age(ctx: &WebCtx, seconds: i64) -> String {
    let s = seconds.max(0);
    let (n, unit) = if s < 3600 {
        (s / 60, "review_age_minutes")
    } else if s < 86_400 {
        (s / 3600, "review_age_hours")
    } else {
        (s / 86_400, "review_age_days")
    };
    ctx.t(unit).replace("{n}", &n.to_string())
}

fn staff_view(staff: &Staff) -> Value {
    context! {
        username => staff.account.username.clone(),
        supervisor => staff.is_supervisor(),
        office => staff.member.office.clone(),
    }
}

fn request_view(ctx: &WebCtx, r: &ReviewRequest, t: i64) -> Value {
    context! {
        id => r.id.to_string(),
        account_id => r.account_id.to_string(),
        status => r.status.as_str(),
        sent => dmy_time(r.created_at),
        age => age(ctx, t - r.created_at),
        full_name => r.full_name.clone(),
        birth_date => dmy(&r.birth_date),
        sex => r.sex.clone(),
        national_id => r.national_id_masked.clone(),
        decided => r.decided_at.map(dmy_time),
        reason => r.reason.clone(),
    }
}

fn file_view(r: &ReviewRequest, f: &ReviewFile) -> Value {
    context! {
        url => format!("/staff/reviews/{}/files/{}", r.id, f.id),
        side => f.side.clone(),
        pdf => f.content_type == "application/pdf",
        content_type => f.content_type.clone(),
        kb => (f.size + 1023) / 1024,
    }
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /staff/reviews`: the pending requests, oldest first.
pub async fn list(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<DoneQuery>) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let pending = match state.store.list_pending_reviews(review::PENDING_LIST_LIMIT).await {
        Ok(p) => p,
        Err(e) => return service_failure(ctx, e.into()),
    };
    let t = now();
    let rows: Vec<Value> = pending.iter().map(|r| request_view(&ctx, r, t)).collect();
    let notice = match q.done.as_deref() {
        Some("approved") => Some(ctx.t("staff_review_done_approved")),
        Some("rejected") => Some(ctx.t("staff_review_done_rejected")),
        _ => None,
    };
    no_store(ctx.page(
        StatusCode::OK,
        "staff_reviews.html",
        context! { staff => staff_view(&staff), rows => rows, notice => notice },
    ))
}

/// The request page; `problems` after a refused decision.
async fn detail_page(
    state: &AppState,
    ctx: WebCtx,
    staff: &Staff,
    id: Uuid,
    status: StatusCode,
    problems: &[FieldProblem],
) -> Response {
    let found = match state.store.get_review_request(id).await {
        Ok(f) => f,
        Err(e) => return service_failure(ctx, e.into()),
    };
    let Some((request, files)) = found else {
        return not_found(ctx);
    };
    let account = match state.store.get_account(request.account_id).await {
        Ok(a) => a,
        Err(e) => return service_failure(ctx, e.into()),
    };
    let is_staff = match state.store.get_staff(request.account_id).await {
        Ok(s) => s.is_some(),
        Err(e) => return service_failure(ctx, e.into()),
    };
    let changed = account
        .as_ref()
        .is_none_or(|a| a.identity.as_ref().is_none_or(|i| i.national_id_hash != request.national_id_hash));
    let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for p in problems {
        errors.entry(p.field).or_default().push(p.message.clone());
    }
    let request_v = request_view(&ctx, &request, now());
    no_store(ctx.page(
        status,
        "staff_review.html",
        context! {
            staff => staff_view(staff),
            request => request_v,
            pending => request.status == ReviewStatus::Pending,
            files => files.iter().map(|f| file_view(&request, f)).collect::<Vec<_>>(),
            username => account.as_ref().map(|a| a.username.clone()),
            as_level => account.as_ref().map(|a| a.as_level.number()),
            own => request.account_id == staff.account.id,
            staff_account => is_staff,
            identity_changed => changed,
            errors => if errors.is_empty() { None } else { Some(super::pages::ser(errors)) },
        },
    ))
}

fn request_id(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

/// `GET /staff/reviews/{id}`.
pub async fn detail(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = request_id(&id) else {
        return not_found(ctx);
    };
    detail_page(&state, ctx, &staff, id, StatusCode::OK, &[]).await
}

/// `GET /staff/reviews/{id}/files/{file_id}`: the decrypted file with its sniffed type, shown
/// inline, never stored by a cache (shared counter computers).
pub async fn file(State(state): State<AppState>, ctx: WebCtx, Path((id, file_id)): Path<(String, String)>) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Some(id), Some(file_id)) = (request_id(&id), request_id(&file_id)) else {
        return not_found(ctx);
    };
    let (file, bytes) = match review::open_file(&state, &staff, id, file_id, now()).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(ctx),
        Err(e) => return service_failure(ctx, e),
    };
    let extension = match file.content_type.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "pdf",
    };
    let disposition = format!("inline; filename=\"{}.{extension}\"", file.side);
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    let content_type =
        HeaderValue::from_str(&file.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    doc_authority: String,
    #[serde(default)]
    doc_expiry: String,
    #[serde(default)]
    reason: String,
}

async fn decide(state: AppState, ctx: WebCtx, id: String, body: Bytes, approve: bool) -> Response {
    let Some(form) = parse::<DecisionForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = request_id(&id) else {
        return not_found(ctx);
    };
    match state.store.get_review_request(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(ctx),
        Err(e) => return service_failure(ctx, e.into()),
    }
    let t = now();
    let r = if approve {
        let doc = DocumentInput {
            kind: "cccd".into(),
            number: String::new(),
            authority: form.doc_authority.clone(),
            expires_on: form.doc_expiry.clone(),
        };
        review::approve(&state, &staff, id, &doc, ctx.lang, t).await
    } else {
        review::reject(&state, &staff, id, &form.reason, ctx.lang, t).await
    };
    match r {
        Ok(_) => ctx.redirect(if approve { "/staff/reviews?done=approved" } else { "/staff/reviews?done=rejected" }),
        Err(RegistrationError::Invalid(p)) => {
            let status = if p.iter().any(|p| p.field == "account") {
                StatusCode::FORBIDDEN
            } else if p.iter().any(|p| p.field == "request") {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            detail_page(&state, ctx, &staff, id, status, &p).await
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}

/// `POST /staff/reviews/{id}/approve`.
pub async fn approve(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    decide(state, ctx, id, body, true).await
}

/// `POST /staff/reviews/{id}/reject`.
pub async fn reject(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<String>, body: Bytes) -> Response {
    decide(state, ctx, id, body, false).await
}
