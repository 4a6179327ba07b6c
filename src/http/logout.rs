//! The end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0), `GET` and `POST
//! /logout/end`, and the sign-out pages it shows.

use super::ctx::{WebCtx, removal};
use super::oidc::{csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::oidc::OAuthError;
use crate::oidc::logout::RawEndSessionRequest;
use crate::service::logout::{self, EndSessionOutcome};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

/// RP-Initiated Logout §2: "OPs MUST support the use of the HTTP GET and POST methods … at the
/// Logout Endpoint" (query string for GET, form body for POST).
pub async fn end_session_get(State(state): State<AppState>, ctx: WebCtx, RawQuery(q): RawQuery) -> Response {
    let raw = parse(q.unwrap_or_default().as_bytes());
    end_session(state, ctx, raw, false).await
}

/// The confirmation form's own fields; absent when an RP posts a logout request.
#[derive(Deserialize, Default)]
struct Confirmation {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// An RP's logout request, or the citizen's answer to the confirmation page (which carries
/// `confirm` and a CSRF token, so no other site can sign the citizen out through it).
pub async fn end_session_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let answer: Confirmation = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let confirmed = answer.confirm.is_some();
    if confirmed && !ctx.csrf_ok(answer.csrf.as_deref().unwrap_or_default()) {
        return csrf_failed(ctx);
    }
    end_session(state, ctx, parse(&body), confirmed).await
}

/// A parameter given twice is malformed (as at /authorize); unknown ones are ignored.
fn parse(bytes: &[u8]) -> Result<RawEndSessionRequest, OAuthError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| OAuthError::invalid_request("malformed logout parameters").with_detail(e.to_string()))
}

async fn end_session(
    state: AppState,
    mut ctx: WebCtx,
    raw: Result<RawEndSessionRequest, OAuthError>,
    confirmed: bool,
) -> Response {
    let raw = match raw {
        Ok(r) => r,
        Err(e) => return refused(ctx, e),
    };
    ctx.prefer(raw.ui_locales.as_deref());
    let session = ctx.session.as_ref().map(|(s, _)| s.clone());
    match logout::end_session_request(&state, &raw, session.as_ref(), confirmed, now()).await {
        Ok(EndSessionOutcome::ErrorPage(e)) => refused(ctx, e),
        Ok(EndSessionOutcome::Confirm { client_name }) => ctx.page(
            StatusCode::OK,
            "logout_confirm.html",
            context! { client_name => client_name, params => super::pages::ser(raw.pairs()) },
        ),
        Ok(EndSessionOutcome::LoggedOut { redirect }) => {
            ctx.session = None;
            ctx.jar = ctx.jar.add(removal(&state, "session"));
            match redirect {
                Some(url) => ctx.redirect(&url),
                None => logged_out(ctx),
            }
        }
        Err(e) => service_failure(ctx, e),
    }
}

/// A request that failed a check: a page, never a redirect to the RP.
fn refused(ctx: WebCtx, e: OAuthError) -> Response {
    tracing::info!(code = e.code, detail = e.detail.as_deref().unwrap_or(""), "logout request refused");
    let title = ctx.t("err_logout_title");
    let message = format!("{} ({}: {})", ctx.t("err_logout_text"), e.code, e.description);
    ctx.error_page(StatusCode::BAD_REQUEST, title, message)
}

/// The "you have signed out" page (also after `POST /logout`).
pub fn logged_out(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("logged_out_title"), ctx.t("logged_out_text"));
    ctx.page(StatusCode::OK, "error.html", context! { title => title, message => message })
}
