//! `/login/unlock`: the citizen lifts the hard password lock (after `throttle.max_consecutive`
//! failures) with the password and a code from an authenticator app or a recovery code
//! (`service::throttle::unlock_with_second_factor`), and is signed in with both.

use super::client_ip::ClientIp;
use super::ctx::bad_form;
use super::ctx::{WebCtx, secret_cookie};
use super::oidc::{after_login, csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::service::login;
use crate::service::throttle::{self, Refused, UnlockError};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct PendingParam {
    r: Option<String>,
}

#[derive(Deserialize)]
pub struct UnlockForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
    r: Option<String>,
}

fn page(ctx: WebCtx, status: StatusCode, username: &str, pending: &str, error: String) -> Response {
    ctx.page(status, "login_unlock.html", context! { username => username, pending => pending, error => error })
}

pub async fn unlock_get(ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    let pending = q.r.unwrap_or_default();
    page(ctx, StatusCode::OK, "", &pending, String::new())
}

pub async fn unlock_post(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    mut ctx: WebCtx,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<UnlockForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let pending = form.r.clone().unwrap_or_default();
    let t = now();
    // A locked address stays locked here too.
    if let Err(e) = throttle::rate(&state, throttle::Rate::Unlock, source, t).await {
        return match e {
            throttle::ThrottleError::Refused(r) => {
                let message = super::web::throttled_message(&ctx, r);
                page(ctx, StatusCode::TOO_MANY_REQUESTS, &form.username, &pending, message)
            }
            throttle::ThrottleError::Service(e) => service_failure(ctx, e),
        };
    }
    match throttle::unlock_with_second_factor(&state, &form.username, &form.password, &form.code, t).await {
        Ok((account, factors)) => match login::start_session(&state, &account, factors, t).await {
            Ok((token, _)) => {
                if let Some((old, _)) = ctx.session.take() {
                    let _ = crate::service::logout::end_session(&state, &old, t).await;
                }
                ctx.jar = ctx.jar.add(secret_cookie(&state, "session", token, None));
                ctx.redirect(&after_login(form.r.as_deref()))
            }
            Err(e) => service_failure(ctx, e),
        },
        Err(UnlockError::NotLocked) => {
            let message = ctx.t("unlock_not_locked");
            page(ctx, StatusCode::BAD_REQUEST, &form.username, &pending, message)
        }
        Err(UnlockError::Wait(until)) => {
            let message = super::web::throttled_message(&ctx, Refused::Wait(until));
            page(ctx, StatusCode::TOO_MANY_REQUESTS, &form.username, &pending, message)
        }
        Err(UnlockError::Failed) => {
            let message = ctx.t("unlock_failed");
            page(ctx, StatusCode::UNAUTHORIZED, &form.username, &pending, message)
        }
        Err(UnlockError::Service(e)) => service_failure(ctx, e),
    }
}
