//! "Verify online" (issue 8; docs/proofing.md, "AS-3 online"): the hub at `/account/verify`
//! listing the AS-3 methods offered to the signed-in citizen, AS-3 by certificate
//! (`/account/verify/certificate`: sign a challenge, as on the certificate pages) and AS-3 by
//! registry (`POST /account/verify/registry`). The review method (photos of the ID card) lives
//! at `/account/verify/review` (its own module); the hub links to it when enabled.

use super::ctx::WebCtx;
use super::ctx::{bad_form, parse};
use super::oidc::{csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::service::certificates::CertServiceError;
use crate::service::proofing::online::{self, OnlineError, Standing};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use minijinja::context;
use serde::Deserialize;

/// Pages about the citizen's identity: never cached.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct HubQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct SignedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    response: String,
}

/// The user-facing message of a refusal.
fn message(ctx: &WebCtx, e: &OnlineError) -> String {
    match e {
        OnlineError::Certificate(c) => super::certificates::message(ctx, c),
        OnlineError::Locked(until) => format!("{} {}", ctx.t("verify_err_locked"), super::web::dmy_time(*until)),
        e => ctx.t(&format!("verify_err_{}", e.code())),
    }
}

fn status_of(e: &OnlineError) -> StatusCode {
    match e {
        OnlineError::Disabled => StatusCode::NOT_FOUND,
        OnlineError::NoIdentity | OnlineError::AlreadyVerified | OnlineError::ChangedMeanwhile => StatusCode::CONFLICT,
        OnlineError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
        OnlineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        OnlineError::Certificate(CertServiceError::Cert(crate::certs::CertError::Malformed(_))) => {
            StatusCode::BAD_REQUEST
        }
        OnlineError::Certificate(CertServiceError::Disabled) => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A method that is switched off: a page saying so, with the way back to the hub.
fn disabled(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("verify_title"), ctx.t("verify_err_disabled"));
    ctx.page(
        StatusCode::NOT_FOUND,
        "notice.html",
        context! { title => title, message => message, next => "/account/verify" },
    )
}

/// Renders the hub, with an error (and its status) when a method just failed.
async fn hub(state: &AppState, ctx: WebCtx, status: StatusCode, error: String, done: bool) -> Response {
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let standing = match online::standing(&account) {
        Standing::NoIdentity => "no_identity",
        Standing::Verified => "verified",
        Standing::Eligible => "eligible",
    };
    let identity = account.identity.as_ref().map(|i| {
        context! {
            full_name => i.full_name.clone(),
            national_id => i.national_id_masked.clone(),
        }
    });
    let certificate_enabled = online::certificate_offered(state);
    let registry_enabled = online::registry_offered(state);
    let review_enabled = state.config.proofing.review.enabled;
    let page = ctx.page(
        status,
        "verify_hub.html",
        context! {
            standing => standing,
            as_level => account.as_level.number(),
            identity => identity,
            certificate_enabled => certificate_enabled,
            registry_enabled => registry_enabled,
            review_enabled => review_enabled,
            any_enabled => certificate_enabled || registry_enabled || review_enabled,
            error => error,
            done => done,
        },
    );
    no_store(page)
}

/// `GET /account/verify`: the hub.
pub async fn hub_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<HubQuery>) -> Response {
    let done = q.done.is_some();
    hub(&state, ctx, StatusCode::OK, String::new(), done).await
}

/// Issues a challenge and renders the certificate page.
async fn certificate_page(state: &AppState, ctx: WebCtx, status: StatusCode, error: String) -> Response {
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let t = now();
    let challenge = match online::certificate_challenge(state, &account, t).await {
        Ok(c) => c,
        Err(OnlineError::Disabled) => return disabled(ctx),
        Err(OnlineError::Service(e)) => return service_failure(ctx, e),
        // No identity, or verified already: the hub explains.
        Err(_) => return ctx.redirect("/account/verify"),
    };
    let download = format!(
        "data:application/json;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(challenge.bytes.as_bytes())
    );
    let minutes = (state.certificates.config.challenge_seconds + 59) / 60;
    let identity = account.identity.as_ref().map(|i| {
        context! { full_name => i.full_name.clone(), national_id => i.national_id_masked.clone() }
    });
    let page = ctx.page(
        status,
        "verify_certificate.html",
        context! {
            error => error,
            identity => identity,
            profile => state.config.proofing.certificate.profile.clone(),
            challenge_id => challenge.id,
            challenge_bytes => challenge.bytes,
            download => download,
            minutes => minutes,
        },
    );
    no_store(page)
}

/// `GET /account/verify/certificate`: sign a challenge with the citizen's certificate.
pub async fn certificate_get(State(state): State<AppState>, ctx: WebCtx) -> Response {
    certificate_page(&state, ctx, StatusCode::OK, String::new()).await
}

/// `POST /account/verify/certificate`: the signed challenge.
pub async fn certificate_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SignedForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match online::verify_by_certificate(&state, &account, &form.challenge, form.response.as_bytes(), now()).await {
        Ok(()) => ctx.redirect("/account/verify?done=certificate"),
        Err(OnlineError::Service(e)) => service_failure(ctx, e),
        Err(OnlineError::Disabled) => disabled(ctx),
        Err(e @ (OnlineError::NoIdentity | OnlineError::AlreadyVerified | OnlineError::ChangedMeanwhile)) => {
            let m = message(&ctx, &e);
            hub(&state, ctx, status_of(&e), m, false).await
        }
        Err(e) => {
            let m = message(&ctx, &e);
            certificate_page(&state, ctx, status_of(&e), m).await
        }
    }
}

/// `POST /account/verify/registry`: ask the registry about the declared identity.
pub async fn registry_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match online::verify_by_registry(&state, &account, now()).await {
        Ok(_) => ctx.redirect("/account/verify?done=registry"),
        Err(OnlineError::Service(e)) => service_failure(ctx, e),
        Err(OnlineError::Disabled) => disabled(ctx),
        Err(e @ OnlineError::Unavailable(_)) => {
            let (title, m) = (ctx.t("verify_registry_unavailable_title"), message(&ctx, &e));
            let mut page = ctx.page(
                status_of(&e),
                "notice.html",
                context! { title => title, message => m, next => "/account/verify" },
            );
            page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("300"));
            no_store(page)
        }
        Err(e) => {
            let m = message(&ctx, &e);
            hub(&state, ctx, status_of(&e), m, false).await
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::i18n::{Lang, t};
    use crate::service::proofing::online::OnlineError;
    use crate::service::proofing::registry::RegistryError;

    /// Every refusal has a message in both languages (keys are built at run time).
    #[test]
    fn every_refusal_has_a_message() {
        let all = [
            OnlineError::Disabled,
            OnlineError::NoIdentity,
            OnlineError::AlreadyVerified,
            OnlineError::WrongProfile,
            OnlineError::NoIdNumber,
            OnlineError::UidMismatch,
            OnlineError::NameMismatch,
            OnlineError::OtherAccount,
            OnlineError::NoMatch,
            OnlineError::Locked(0),
            OnlineError::Unavailable(RegistryError::Timeout),
            OnlineError::ChangedMeanwhile,
        ];
        for e in &all {
            let key = format!("verify_err_{}", e.code());
            for lang in [Lang::Vi, Lang::En] {
                let text = t(lang, &key);
                assert!(!text.is_empty() && text != key, "{key} missing in {lang:?}");
            }
        }
    }
}
