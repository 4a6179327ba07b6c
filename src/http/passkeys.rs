//! Passkey endpoints. The ceremonies are JSON (`static/passkey.js` calls them around
//! `navigator.credentials.create()` / `.get()`); each POST carries the page's CSRF token in the
//! `X-CSRF-Token` header. Renaming and removing are ordinary forms on the account page.
//!
//! - `POST /passkey/register/start|finish`: enrol a passkey (signed in, fresh sign-in).
//! - `POST /passkey/login/start|finish`: passwordless sign-in (discoverable credential).
//! - `POST /passkey/second/start|finish`: a passkey as the second step (signed in).

use super::ctx::bad_form;
use super::ctx::{WebCtx, secret_cookie};
use super::oidc::{after_login, csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::service::login;
use crate::service::passkeys::{self, PasskeyError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// The browser side of the ceremonies (no inline script: CSP `script-src 'self'`).
pub const PASSKEY_SCRIPT: &str = include_str!("../../static/passkey.js");

pub const CSRF_HEADER: &str = "x-csrf-token";

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        PASSKEY_SCRIPT,
    )
        .into_response()
}

/// A JSON answer: never cached, cookies (session, CSRF) carried along.
pub(super) fn reply(ctx: WebCtx, status: StatusCode, body: serde_json::Value) -> Response {
    (status, ctx.jar, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body)).into_response()
}

pub(super) fn problem(ctx: WebCtx, status: StatusCode, code: &str, message_key: &str) -> Response {
    let message = ctx.t(message_key);
    reply(ctx, status, json!({ "error": code, "message": message }))
}

pub(super) fn csrf_ok(ctx: &WebCtx, headers: &HeaderMap) -> bool {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|t| ctx.csrf_ok(t))
}

/// Maps a ceremony failure to a JSON error in the citizen's language.
pub(super) fn failure(ctx: WebCtx, e: PasskeyError) -> Response {
    use PasskeyError::*;
    let (status, code, key) = match &e {
        Ceremony => (StatusCode::BAD_REQUEST, "ceremony_expired", "passkey_err_expired"),
        Rejected(_) | UnknownCredential => (StatusCode::UNAUTHORIZED, "passkey_refused", "passkey_err_refused"),
        Duplicate => (StatusCode::CONFLICT, "passkey_duplicate", "passkey_err_duplicate"),
        CounterRegression => (StatusCode::UNAUTHORIZED, "passkey_cloned", "passkey_err_cloned"),
        NoPasskey | NotFound => (StatusCode::BAD_REQUEST, "no_passkey", "passkey_err_none"),
        NotFresh => (StatusCode::FORBIDDEN, "not_fresh", "err_not_fresh_text"),
        LastWayIn => (StatusCode::CONFLICT, "last_way_in", "passkey_err_last"),
        Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "locked", "err_too_many_attempts"),
        Suspended => (StatusCode::FORBIDDEN, "suspended", "err_suspended_text"),
        Service(err) => {
            tracing::error!(error = %err, "passkey request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "err_internal_text")
        }
    };
    if let Rejected(detail) = &e {
        tracing::info!(detail, "passkey assertion or attestation refused");
    }
    problem(ctx, status, code, key)
}

pub(super) fn started<T: serde::Serialize>(ctx: WebCtx, s: passkeys::Started<T>) -> Response {
    reply(ctx, StatusCode::OK, json!({ "ceremony": s.ceremony, "options": s.options }))
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

#[derive(Deserialize)]
pub struct AssertionFinish {
    #[serde(default)]
    ceremony: String,
    credential: PublicKeyCredential,
    /// The parked portal request, if any (`r`).
    #[serde(default)]
    r: Option<String>,
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[derive(Deserialize, Default)]
pub struct RegisterStart {
    /// `passkey` (default) or `security_key`.
    #[serde(default)]
    kind: passkeys::KeyKind,
}

pub async fn register_start(State(state): State<AppState>, ctx: WebCtx, headers: HeaderMap, bytes: Bytes) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    let Some((session, account)) = ctx.session.clone() else {
        return problem(ctx, StatusCode::UNAUTHORIZED, "login_required", "passkey_err_login");
    };
    let start = if bytes.is_empty() { Some(RegisterStart::default()) } else { body::<RegisterStart>(&bytes) };
    let Some(start) = start else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    match passkeys::start_registration(&state, &account, &session, start.kind, now()).await {
        Ok(s) => started(ctx, s),
        Err(e) => failure(ctx, e),
    }
}

pub async fn register_finish(State(state): State<AppState>, ctx: WebCtx, headers: HeaderMap, bytes: Bytes) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    let Some((_, account)) = ctx.session.clone() else {
        return problem(ctx, StatusCode::UNAUTHORIZED, "login_required", "passkey_err_login");
    };
    let Some(form) = body::<RegisterFinish>(&bytes) else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    match passkeys::finish_registration(&state, &account, &form.ceremony, &form.credential, &form.name, now()).await {
        Ok(p) => reply(ctx, StatusCode::OK, json!({ "id": p.id.to_string(), "redirect": "/account#passkeys" })),
        Err(e) => failure(ctx, e),
    }
}

pub async fn login_start(State(state): State<AppState>, ctx: WebCtx, headers: HeaderMap) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    match passkeys::start_sign_in(&state, now()).await {
        Ok(s) => started(ctx, s),
        Err(e) => failure(ctx, e),
    }
}

/// Passwordless sign-in: a new session whose one factor is the passkey (with UV: `mfa`).
pub async fn login_finish(
    State(state): State<AppState>,
    mut ctx: WebCtx,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    let Some(form) = body::<AssertionFinish>(&bytes) else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    let t = now();
    let (account, factor) = match passkeys::finish_sign_in(&state, &form.ceremony, &form.credential, t).await {
        Ok(ok) => ok,
        Err(e) => return failure(ctx, e),
    };
    let token = match login::start_session(&state, &account, vec![factor], t).await {
        Ok((token, _)) => token,
        Err(e) => return failure(ctx, e.into()),
    };
    // A live session replaced by this sign-in ends everywhere too (as for a password sign-in).
    if let Some(old) = ctx.session_cookie.take() {
        match ctx.session.take() {
            Some((old_session, _)) => {
                let _ = crate::service::logout::end_session(&state, &old_session, t).await;
            }
            None => {
                let _ = login::logout(&state, &old, account.id, t).await;
            }
        }
    }
    ctx.jar = ctx.jar.add(secret_cookie(&state, "session", token, None));
    let to = after_login(form.r.as_deref());
    reply(ctx, StatusCode::OK, json!({ "redirect": to }))
}

pub async fn second_start(State(state): State<AppState>, ctx: WebCtx, headers: HeaderMap) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    let Some((_, account)) = ctx.session.clone() else {
        return problem(ctx, StatusCode::UNAUTHORIZED, "login_required", "passkey_err_login");
    };
    match passkeys::start_second_step(&state, &account, now()).await {
        Ok(s) => started(ctx, s),
        Err(e) => failure(ctx, e),
    }
}

/// The passkey as the second step: the factor joins the session and its cookie rotates.
pub async fn second_finish(
    State(state): State<AppState>,
    mut ctx: WebCtx,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if !csrf_ok(&ctx, &headers) {
        return problem(ctx, StatusCode::FORBIDDEN, "csrf", "err_csrf_text");
    }
    let Some((session, account)) = ctx.session.clone() else {
        return problem(ctx, StatusCode::UNAUTHORIZED, "login_required", "passkey_err_login");
    };
    let Some(form) = body::<AssertionFinish>(&bytes) else {
        return problem(ctx, StatusCode::BAD_REQUEST, "invalid_request", "err_form_text");
    };
    match passkeys::finish_second_step(&state, &session, &account, &form.ceremony, &form.credential, now()).await {
        Ok(cookie) => {
            ctx.jar = ctx.jar.add(secret_cookie(&state, "session", cookie, None));
            let to = after_login(form.r.as_deref());
            reply(ctx, StatusCode::OK, json!({ "redirect": to }))
        }
        Err(e) => failure(ctx, e),
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

fn form<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(bytes).ok()
}

pub async fn rename(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, bytes: Bytes) -> Response {
    let Some(f) = form::<NameForm>(&bytes) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&f.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match passkeys::rename(&state, &account, id, &f.name, now()).await {
        Err(PasskeyError::Service(e)) => service_failure(ctx, e),
        _ => ctx.redirect("/account#passkeys"),
    }
}

pub async fn remove(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, bytes: Bytes) -> Response {
    let Some(f) = form::<NameForm>(&bytes) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&f.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match passkeys::remove(&state, &account, &session, id, now()).await {
        Ok(()) | Err(PasskeyError::NotFound) => ctx.redirect("/account#passkeys"),
        Err(PasskeyError::NotFresh) => {
            let (title, message) = (ctx.t("err_not_fresh_title"), ctx.t("err_not_fresh_text"));
            ctx.error_page(StatusCode::FORBIDDEN, title, message)
        }
        Err(PasskeyError::LastWayIn) => {
            let (title, message) = (ctx.t("passkey_err_last_title"), ctx.t("passkey_err_last"));
            ctx.error_page(StatusCode::CONFLICT, title, message)
        }
        Err(PasskeyError::Service(e)) => service_failure(ctx, e),
        Err(_) => ctx.redirect("/account#passkeys"),
    }
}

/// The account page's passkey list, for `templates/passkey_account.html`.
pub async fn account_view(
    state: &AppState,
    account: &crate::store::Account,
) -> Result<minijinja::Value, crate::service::ServiceError> {
    let keys = passkeys::list(state, account).await?;
    Ok(super::pages::ser(
        keys.iter()
            .map(|k| {
                json!({
                    "id": k.id.to_string(),
                    "name": k.name,
                    "added": super::web::dmy_time(k.created_at),
                    "last_used": k.last_used_at.map(super::web::dmy_time).unwrap_or_default(),
                    "user_verified": k.user_verified,
                    "backed_up": k.backed_up,
                    "backup_eligible": k.backup_eligible,
                })
            })
            .collect::<Vec<_>>(),
    ))
}
