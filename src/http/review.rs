//! `/account/verify/review` (issue 8, AS-3 by review): the citizen uploads photos of the front
//! and back of their ID card (multipart; this route alone accepts [`BODY_LIMIT`] bytes), and
//! sees where their request stands: pending, approved, or rejected with the reviewer's reason.
//! The checks, sealing and storage are `service::proofing::review`.

use super::ctx::WebCtx;
use super::oidc::{csrf_failed, service_failure};
use super::web::dmy_time;
use crate::app::{AppState, now};
use crate::service::accounts::{FieldProblem, RegistrationError};
use crate::service::proofing::review::{self, Standing, Upload};
use crate::store::Account;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The request body limit of the upload: two files of at most 1 MiB each, the form's other
/// fields and the multipart framing, with room to spare (the files' own limits are checked
/// one by one, with a clear message).
pub const BODY_LIMIT: usize = 2560 * 1024;

fn errors_view(problems: &[FieldProblem]) -> Value {
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for p in problems {
        m.entry(p.field).or_default().push(p.message.clone());
    }
    if m.is_empty() { Value::from(()) } else { super::pages::ser(m) }
}

fn standing_str(s: Standing) -> &'static str {
    match s {
        Standing::Disabled => "disabled",
        Standing::NoIdentity => "no_identity",
        Standing::Verified => "verified",
        Standing::Staff => "staff",
        Standing::Pending => "pending",
        Standing::Open => "open",
    }
}

async fn page(
    state: &AppState,
    ctx: WebCtx,
    account: &Account,
    status: StatusCode,
    problems: &[FieldProblem],
    notice: Option<String>,
) -> Response {
    let latest = match state.store.latest_review_request(account.id).await {
        Ok(l) => l,
        Err(e) => return service_failure(ctx, e.into()),
    };
    let standing = match review::standing(state, account, latest.as_ref()).await {
        Ok(s) => s,
        Err(e) => return service_failure(ctx, e),
    };
    let latest = latest.map(|r| {
        context! {
            status => r.status.as_str(),
            sent => dmy_time(r.created_at),
            decided => r.decided_at.map(dmy_time),
            reason => r.reason,
        }
    });
    let cfg = &state.config.proofing.review;
    let identity = account.identity.as_ref().map(|i| {
        context! { full_name => i.full_name.clone(), national_id => i.national_id_masked.clone() }
    });
    let mut response = ctx.page(
        status,
        "review_upload.html",
        context! {
            standing => standing_str(standing),
            latest => latest,
            identity => identity,
            as_level => account.as_level.number(),
            min_kb => cfg.min_bytes / 1024,
            max_kb => cfg.max_bytes / 1024,
            errors => errors_view(problems),
            notice => notice,
        },
    );
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize, Default)]
pub struct SentQuery {
    sent: Option<String>,
}

pub async fn review_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<SentQuery>) -> Response {
    let Some((_, account)) = ctx.session.clone() else {
        return ctx.redirect("/login");
    };
    let notice = q.sent.is_some().then(|| ctx.t("review_sent_notice"));
    page(&state, ctx, &account, StatusCode::OK, &[], notice).await
}

/// What the multipart body held.
struct Received {
    csrf: String,
    uploads: Vec<Upload>,
}

/// Reads the form. `Err(status)`: 413 when the body is over the limit, 400 when it is not a
/// multipart form at all.
async fn receive(mut multipart: Multipart) -> Result<Received, StatusCode> {
    let mut received = Received { csrf: String::new(), uploads: Vec::new() };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(received),
            Err(e) => return Err(e.status()),
        };
        let name = field.name().unwrap_or_default().to_string();
        // The bytes only: the file name and the declared Content-Type are not trusted.
        let bytes = field.bytes().await.map_err(|e| e.status())?;
        match name.as_str() {
            "csrf" => received.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "front" | "back" if !received.uploads.iter().any(|u| u.side == name) => {
                received.uploads.push(Upload { side: name, bytes: bytes.to_vec() })
            }
            _ => {}
        }
    }
}

pub async fn review_post(
    State(state): State<AppState>,
    ctx: WebCtx,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let received = match multipart {
        Ok(m) => receive(m).await,
        Err(_) => Err(StatusCode::BAD_REQUEST),
    };
    let received = match received {
        Ok(r) => r,
        Err(status) => {
            let Some((_, account)) = ctx.session.clone() else {
                return ctx.redirect("/login");
            };
            let key =
                if status == StatusCode::PAYLOAD_TOO_LARGE { "err_review_body_too_large" } else { "err_form_text" };
            let problem = FieldProblem { field: "request", message: ctx.t(key) };
            let status = if status == StatusCode::PAYLOAD_TOO_LARGE { status } else { StatusCode::BAD_REQUEST };
            return page(&state, ctx, &account, status, &[problem], None).await;
        }
    };
    if !ctx.csrf_ok(&received.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else {
        return ctx.redirect("/login");
    };
    match review::submit(&state, &account, &received.uploads, ctx.lang, now()).await {
        Ok(_) => ctx.redirect("/account/verify/review?sent=1"),
        Err(RegistrationError::Invalid(p)) => {
            let status =
                if p.iter().any(|p| p.field == "request") { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
            page(&state, ctx, &account, status, &p, None).await
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}
