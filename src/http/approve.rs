//! The approval of a transaction (RFC 9396 authorization details): the citizen sees what the
//! portal asks to do in their name — a fee to pay, a result to receive — in Vietnamese formats,
//! and approves or refuses it. Also the "why" block of a step-up page.

use super::ctx::{WebCtx, urlencoding};
use super::oidc::{csrf_failed, expired, outcome, service_failure};
use crate::app::{AppState, now};
use crate::oidc::rar::{AuthorizationDetail, format_vnd};
use crate::policy::StepUpTarget;
use crate::service::authorize::{self, PendingInfo};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Row {
    label: String,
    value: String,
}

#[derive(Serialize)]
struct DetailView {
    title: String,
    rows: Vec<Row>,
}

/// `dd/mm/yyyy` in Vietnam's time (UTC+7), as Vietnamese forms write dates.
pub fn vn_date(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(7);
    format!("{:02}/{:02}/{}", t.day(), u8::from(t.month()), t.year())
}

/// `dd/mm/yyyy HH:MM` in Vietnam's time (UTC+7).
pub fn vn_date_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(7);
    format!("{} {:02}:{:02}", vn_date(unix), t.hour(), t.minute())
}

/// `300` → "5 phút" / "5 minutes"; whole hours and minutes where exact.
fn duration_words(ctx: &WebCtx, seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "unit_hours"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "unit_minutes"),
        s => (s, "unit_seconds"),
    };
    format!("{n} {}", ctx.t(unit))
}

fn action_title(ctx: &WebCtx, action: &str) -> String {
    match action {
        crate::policy::PAYMENT => ctx.t("action_payment"),
        crate::policy::RESULT_RECEIPT => ctx.t("action_result_receipt"),
        crate::policy::SUBMIT => ctx.t("action_submit"),
        other => other.to_string(),
    }
}

/// The details as label/value rows in the page's language.
fn details(ctx: &WebCtx, details: &[AuthorizationDetail]) -> Vec<DetailView> {
    details
        .iter()
        .map(|d| match d {
            AuthorizationDetail::Payment(p) => DetailView {
                title: action_title(ctx, crate::policy::PAYMENT),
                rows: vec![
                    Row { label: ctx.t("detail_amount"), value: format_vnd(p.amount.0) },
                    Row { label: ctx.t("detail_payee"), value: p.payee.clone() },
                    Row { label: ctx.t("detail_reference"), value: p.reference.clone() },
                ],
            },
            AuthorizationDetail::ResultReceipt(r) => {
                let mut rows = vec![Row { label: ctx.t("detail_dossier"), value: r.dossier_id.clone() }];
                if let Some(s) = &r.service {
                    rows.push(Row { label: ctx.t("detail_procedure"), value: s.clone() });
                }
                DetailView { title: action_title(ctx, crate::policy::RESULT_RECEIPT), rows }
            }
        })
        .collect()
}

/// What a step-up page says about the request: the service, the actions and their details, and
/// what must be reached (e.g. "2 yếu tố, trong vòng 5 phút").
/// `now` must be the time the target was decided at, so the window reads exactly (`5 phút`).
pub fn why(ctx: &WebCtx, info: &PendingInfo, target: Option<&StepUpTarget>, now: i64) -> Value {
    let actions: Vec<String> = info.actions.iter().map(|a| action_title(ctx, a)).collect();
    let need = target.map(|t| {
        let mut s = ctx.t(&format!("mechanism_{}", t.mechanism.as_str()));
        for k in &t.kinds {
            s.push_str(&format!(", {}", ctx.t(&format!("kind_{}", k.as_str()))));
        }
        s
    });
    let within = target.and_then(|t| t.not_before).map(|nb| duration_words(ctx, (now - nb).max(0)));
    context! {
        client_name => info.client_name.clone(),
        service_name => info.service_name.clone(),
        actions => actions,
        details => super::pages::ser(details(ctx, &info.details)),
        need => need,
        within => within,
    }
}

#[derive(Deserialize)]
pub struct PendingParam {
    r: Option<String>,
}

pub async fn approve_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    let Some(r) = q.r else { return expired(ctx) };
    if ctx.session.is_none() {
        return ctx.redirect(&format!("/login?r={}", urlencoding(&r)));
    }
    let info = match authorize::pending_info(&state, &r, now()).await {
        Ok(Some(info)) => info,
        Ok(None) => return expired(ctx),
        Err(e) => return service_failure(ctx, e),
    };
    let rows = super::pages::ser(details(&ctx, &info.details));
    let today = vn_date(now());
    ctx.page(
        StatusCode::OK,
        "approve.html",
        context! {
            pending => r,
            client_name => info.client_name,
            service_name => info.service_name,
            details => rows,
            today => today,
        },
    )
}

#[derive(Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    r: String,
}

pub async fn approve_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<ApproveForm>(&body) else { return expired(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some(session) = ctx.session.clone() else {
        return ctx.redirect(&format!("/login?r={}", urlencoding(&form.r)));
    };
    match authorize::approve(&state, &form.r, &session, now()).await {
        Ok(Some(o)) => outcome(ctx, o),
        Ok(None) => expired(ctx),
        Err(e) => service_failure(ctx, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_the_vietnamese_way_in_vietnam_time() {
        // 2026-11-22 20:30 UTC is 23/11/2026 03:30 in Hà Nội.
        assert_eq!(vn_date(1_795_379_400), "23/11/2026");
        assert_eq!(vn_date_time(1_795_379_400), "23/11/2026 03:30");
        assert_eq!(vn_date(0), "01/01/1970");
    }
}
