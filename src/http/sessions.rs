//! The account page's sessions section (`templates/sessions_account.html`), "sign out
//! everywhere else", and the readiness probe `/readyz` (issue 9).

use super::ctx::WebCtx;
use super::oidc::{csrf_failed, service_failure};
use super::web::dmy_time;
use crate::app::{AppState, now};
use crate::service::sessions;
use crate::store::{Account, SessionRecord};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Deserialize;

/// The citizen's usable sessions, the current one first and marked.
pub async fn account_view(
    state: &AppState,
    account: &Account,
    current: &SessionRecord,
) -> Result<Vec<Value>, crate::service::ServiceError> {
    Ok(sessions::list(state, account, current, now())
        .await?
        .into_iter()
        .map(|s| {
            context! {
                device => s.device.unwrap_or_default(),
                created => dmy_time(s.created_at),
                last_seen => dmy_time(s.last_seen_at),
                current => s.current,
            }
        })
        .collect())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends every other session of the account (portals told by back-channel logout).
pub async fn end_others_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let form = serde_urlencoded::from_bytes::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else {
        return ctx.redirect("/login");
    };
    match sessions::end_others(&state, &account, &session, now()).await {
        Ok(_) => ctx.redirect("/account#sessions"),
        Err(e) => service_failure(ctx, e),
    }
}

/// Readiness: 200 when this instance can serve sign-ins (the database answers, signing keys
/// are loaded, the service policies are valid), else 503; a small JSON body says which check
/// failed. `/healthz` only says the process is alive.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let report = crate::service::sessions::readiness(&state, now()).await;
    let status = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::to_string(&report).unwrap_or_else(|_| "{\"ready\":false}".into());
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}
