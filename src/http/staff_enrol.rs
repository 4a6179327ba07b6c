//! Enrolling a citizen's security key or passkey at the counter (issue 8): the staff member's
//! browser runs the WebAuthn registration ceremony for the citizen's account while the citizen
//! touches their key. JSON like the citizen's own passkey endpoints (`static/passkey.js`, with
//! `data-base` pointing here), the page's CSRF token in the `X-CSRF-Token` header, and the
//! console's gate (`service::proofing::access`: staff with an `mfa` session) on each call.
//!
//! - `POST /staff/citizens/{id}/passkey/start` `{ "kind": "security_key" | "passkey" }`
//! - `POST /staff/citizens/{id}/passkey/finish` `{ ceremony, name, credential }`

use super::ctx::WebCtx;
use super::passkeys::{csrf_ok, failure, problem, reply, started};
use crate::app::{AppState, now};
use crate::service::passkeys::KeyKind;
use crate::service::proofing::counter::{self, EnrolError};
use crate::service::proofing::{self, Access, Staff};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

#[derive(Deserialize, Default)]
pub struct StartBody {
    /// `security_key` (user verification asked, not required) or `passkey` (required).
    #[serde(default)]
    kind: KeyKind,
}

#[derive(Deserialize)]
pub struct FinishBody {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// The console's gate, answering in JSON; then the citizen's id from the path.
async fn gate(state: &AppState, ctx: WebCtx, headers: &HeaderMap, id: &str) -> Result<(Staff, Uuid, WebCtx), Response> {
    if !csrf_ok(&ctx, headers) {
        return Err(problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text"));
    }
    let staff = match proofing::access(state, ctx.session.as_ref()).await {
        Ok(Access::Allowed(staff)) => *staff,
        Ok(Access::NotSignedIn) => {
            return Err(problem(ctx, StatusCode::UNAUTHORIZED, "login_required", "passkey_err_login"));
        }
        Ok(Access::NotStaff) => return Err(problem(ctx, StatusCode::FORBIDDEN, "not_staff", "staff_not_staff")),
        Ok(Access::WeakSession) => {
            return Err(problem(ctx, StatusCode::FORBIDDEN, "mfa_required", "staff_mfa_required"));
        }
        Err(e) => return Err(failure(ctx, e.into())),
    };
    match Uuid::parse_str(id) {
        Ok(id) => Ok((staff, id, ctx)),
        Err(_) => Err(problem(ctx, StatusCode::NOT_FOUND, "no_account", "err_staff_no_account")),
    }
}

fn enrol_failure(ctx: WebCtx, e: EnrolError) -> Response {
    match e {
        EnrolError::Refused(message) => {
            reply(ctx, StatusCode::FORBIDDEN, json!({ "error": "not_allowed", "message": message }))
        }
        EnrolError::Passkey(e) => failure(ctx, e),
    }
}

pub async fn start(
    State(state): State<AppState>,
    ctx: WebCtx,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let (staff, id, ctx) = match gate(&state, ctx, &headers, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body =
        if bytes.is_empty() { Some(StartBody::default()) } else { serde_json::from_slice::<StartBody>(&bytes).ok() };
    let Some(body) = body else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    match counter::start_enrolment(&state, &staff, id, body.kind, ctx.lang, now()).await {
        Ok(s) => started(ctx, s),
        Err(e) => enrol_failure(ctx, e),
    }
}

pub async fn finish(
    State(state): State<AppState>,
    ctx: WebCtx,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let (staff, id, ctx) = match gate(&state, ctx, &headers, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_slice::<FinishBody>(&bytes) else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    let r =
        counter::finish_enrolment(&state, &staff, id, &body.ceremony, &body.credential, &body.name, ctx.lang, now())
            .await;
    match r {
        Ok(p) => reply(
            ctx,
            StatusCode::OK,
            json!({ "id": p.id.to_string(), "redirect": format!("/staff/citizens/{id}?done=enrolled#enrol") }),
        ),
        Err(e) => enrol_failure(ctx, e),
    }
}
