//! Pages for digital certificates (issue 6; docs/certificates.md): the certificate form of
//! the second step (`/login/second/certificate`), signing in with a certificate alone
//! (`/login/certificate`), and enrolling and removing certificates on the account page.
//!
//! Each page issues a fresh one-time challenge, shows it (copy button and download, by
//! `static/certificate.js`; the download also works without script), and takes back a
//! signature package or a CMS signature pasted into a text area (or read from a file by the
//! script). A refused signature shows its reason and a new challenge.

use super::ctx::{WebCtx, secret_cookie};
use super::ctx::{bad_form, parse};
use super::oidc::{after_login, csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::certs::ChallengePurpose;
use crate::service::authorize;
use crate::service::certificates::{self, CertServiceError, Challenge};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use minijinja::{Value, context};
use serde::Deserialize;
use uuid::Uuid;

const SCRIPT: &str = include_str!("../../static/certificate.js");

/// `static/certificate.js`: copy, and read a file into the text area.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        SCRIPT,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct PendingParam {
    r: Option<String>,
}

#[derive(Deserialize)]
pub struct SignedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    response: String,
    r: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Which page: the form's target and its texts.
#[derive(Clone, Copy)]
enum Mode {
    Second,
    SignIn,
    Enrol,
}

impl Mode {
    fn action(self) -> &'static str {
        match self {
            Mode::Second => "/login/second/certificate",
            Mode::SignIn => "/login/certificate",
            Mode::Enrol => "/account/certificates",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Second => "second",
            Mode::SignIn => "sign_in",
            Mode::Enrol => "enrol",
        }
    }
}

/// The user-facing message of a refusal.
pub fn message(ctx: &WebCtx, e: &CertServiceError) -> String {
    ctx.t(&format!("cert_err_{}", e.code()))
}

fn status_of(e: &CertServiceError) -> StatusCode {
    match e {
        CertServiceError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
        CertServiceError::Disabled | CertServiceError::NotFound => StatusCode::NOT_FOUND,
        CertServiceError::NotFresh => StatusCode::FORBIDDEN,
        CertServiceError::Cert(crate::certs::CertError::Malformed(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn disabled(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("cert_title"), ctx.t("cert_err_disabled"));
    ctx.error_page(StatusCode::NOT_FOUND, title, message)
}

/// Issues a challenge for `mode` and renders the signing page.
async fn sign_page(
    state: &AppState,
    ctx: WebCtx,
    mode: Mode,
    status: StatusCode,
    pending: &str,
    error: String,
) -> Response {
    if !state.certificates.enabled() {
        return disabled(ctx);
    }
    let t = now();
    let issued = match (mode, ctx.session.as_ref()) {
        (Mode::SignIn, _) => certificates::sign_in_challenge(state, t).await,
        // A step-up for a transaction: the challenge carries its approved details, so the
        // signature is over them (dynamic linking) and kept as evidence.
        (Mode::Second, Some((_, a))) => match authorize::transaction(state, pending, t).await {
            Ok(Some(tx)) => {
                certificates::issue_challenge(state, Some(a.id), ChallengePurpose::Transaction, Some(tx), t).await
            }
            Ok(None) => certificates::second_step_challenge(state, a, t).await,
            Err(e) => Err(e),
        },
        (Mode::Enrol, Some((_, a))) => certificates::enrol_challenge(state, a, t).await,
        (_, None) => {
            let to = format!("/login?r={}", super::ctx::urlencoding(pending));
            return ctx.redirect(&to);
        }
    };
    let challenge: Challenge = match issued {
        Ok(c) => c,
        Err(e) => return service_failure(ctx, e),
    };
    let download = format!(
        "data:application/json;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(challenge.bytes.as_bytes())
    );
    let minutes = (state.certificates.config.challenge_seconds + 59) / 60;
    ctx.page(
        status,
        "certificate_sign.html",
        context! {
            mode => mode.name(),
            action => mode.action(),
            pending => pending,
            error => error,
            challenge_id => challenge.id,
            challenge_bytes => challenge.bytes,
            download => download,
            minutes => minutes,
        },
    )
}

/// `GET /login/second/certificate`: the second step with a certificate.
pub async fn second_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    let pending = q.r.unwrap_or_default();
    sign_page(&state, ctx, Mode::Second, StatusCode::OK, &pending, String::new()).await
}

pub async fn second_post(State(state): State<AppState>, mut ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SignedForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let pending = form.r.clone().unwrap_or_default();
    let Some((session, account)) = ctx.session.clone() else {
        return ctx.redirect(&format!("/login?r={}", super::ctx::urlencoding(&pending)));
    };
    let transaction = match authorize::transaction(&state, &pending, now()).await {
        Ok(tx) => tx,
        Err(e) => return service_failure(ctx, e),
    };
    let stepped = match &transaction {
        Some(tx) => certificates::step_up(
            &state,
            &session,
            &account,
            &form.challenge,
            form.response.as_bytes(),
            &[ChallengePurpose::Transaction],
            Some(tx),
            now(),
        )
        .await
        .map(|(cookie, _)| cookie),
        None => {
            certificates::second_step(&state, &session, &account, &form.challenge, form.response.as_bytes(), now())
                .await
        }
    };
    match stepped {
        Ok(cookie) => {
            ctx.jar = ctx.jar.add(secret_cookie(&state, "session", cookie, None));
            let to = after_login(form.r.as_deref());
            ctx.redirect(&to)
        }
        Err(CertServiceError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let m = message(&ctx, &e);
            sign_page(&state, ctx, Mode::Second, status_of(&e), &pending, m).await
        }
    }
}

/// `GET /login/certificate`: signing in with a certificate alone.
pub async fn login_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    let pending = q.r.unwrap_or_default();
    sign_page(&state, ctx, Mode::SignIn, StatusCode::OK, &pending, String::new()).await
}

pub async fn login_post(State(state): State<AppState>, mut ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SignedForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let pending = form.r.clone().unwrap_or_default();
    let t = now();
    match certificates::sign_in(&state, &form.challenge, form.response.as_bytes(), t).await {
        Ok((cookie, account)) => {
            if let Some(old) = ctx.session_cookie.take() {
                // A live session replaced by this sign-in ends everywhere too (portals told).
                match ctx.session.take() {
                    Some((old_session, _)) => {
                        let _ = crate::service::logout::end_session(&state, &old_session, t).await;
                    }
                    None => {
                        let _ = crate::service::login::logout(&state, &old, account.id, t).await;
                    }
                }
            }
            ctx.jar = ctx.jar.add(secret_cookie(&state, "session", cookie, None));
            let to = after_login(form.r.as_deref());
            ctx.redirect(&to)
        }
        Err(CertServiceError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let m = message(&ctx, &e);
            sign_page(&state, ctx, Mode::SignIn, status_of(&e), &pending, m).await
        }
    }
}

/// `GET /account/certificates/new`: enrolling a certificate.
pub async fn enrol_get(State(state): State<AppState>, ctx: WebCtx) -> Response {
    sign_page(&state, ctx, Mode::Enrol, StatusCode::OK, "", String::new()).await
}

pub async fn enrol_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SignedForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match certificates::enrol(&state, &account, &form.challenge, form.response.as_bytes(), now()).await {
        Ok(_) => ctx.redirect("/account#certificates"),
        Err(CertServiceError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let m = message(&ctx, &e);
            sign_page(&state, ctx, Mode::Enrol, status_of(&e), "", m).await
        }
    }
}

/// `POST /account/certificates/{id}/remove`.
pub async fn remove_post(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match certificates::remove(&state, &account, &session, id, now()).await {
        Ok(()) => ctx.redirect("/account#certificates"),
        Err(CertServiceError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let (title, m) = (ctx.t("cert_title"), message(&ctx, &e));
            ctx.error_page(status_of(&e), title, m)
        }
    }
}

/// The account page's certificate list (`templates/certificate_account.html`).
pub async fn account_view(
    state: &AppState,
    account: &crate::store::Account,
) -> Result<Value, crate::service::ServiceError> {
    let list = certificates::list(state, account).await?;
    let items: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            let uids: Vec<serde_json::Value> = c
                .uids
                .iter()
                .map(|u| {
                    let p = crate::certs::subject::parse_uid(u);
                    serde_json::json!({ "kind": p.kind, "value": p.value, "well_formed": p.well_formed })
                })
                .collect();
            serde_json::json!({
                "id": c.id.to_string(),
                "subject_cn": c.subject_cn,
                "issuer": c.issuer,
                "serial": c.serial,
                "not_before": super::web::dmy_time(c.not_before),
                "not_after": super::web::dmy_time(c.not_after),
                "expired": c.not_after < now(),
                "uids": uids,
                "profile": c.profile,
                "added": super::web::dmy_time(c.created_at),
                "last_used": c.last_used_at.map(super::web::dmy_time).unwrap_or_default(),
            })
        })
        .collect();
    Ok(context! { enabled => state.certificates.enabled(), items => super::pages::ser(items) })
}

#[cfg(test)]
mod tests {
    use crate::certs::CertError;
    use crate::i18n::{Lang, t};
    use crate::service::certificates::CertServiceError;

    /// Every refusal has a message in both languages (keys are built at run time, so the
    /// template key check cannot see them).
    #[test]
    fn every_refusal_has_a_message() {
        let all = [
            CertServiceError::Cert(CertError::Malformed(String::new())),
            CertServiceError::Cert(CertError::WrongSignature),
            CertServiceError::Cert(CertError::UnsupportedAlgorithm(String::new())),
            CertServiceError::Cert(CertError::Untrusted),
            CertServiceError::Cert(CertError::Expired),
            CertServiceError::Cert(CertError::NotYetValid),
            CertServiceError::Cert(CertError::Revoked),
            CertServiceError::Cert(CertError::RevocationUnknown),
            CertServiceError::Cert(CertError::KeyUsage),
            CertServiceError::ChallengeUnknown,
            CertServiceError::ChallengeExpired,
            CertServiceError::WrongPurpose,
            CertServiceError::OtherPerson,
            CertServiceError::NoAccount,
            CertServiceError::AlreadyEnrolled,
            CertServiceError::Disabled,
            CertServiceError::NotFresh,
            CertServiceError::NotFound,
            CertServiceError::Locked(0),
            CertServiceError::Service(crate::service::ServiceError::Internal(String::new())),
        ];
        for e in &all {
            let key = format!("cert_err_{}", e.code());
            for lang in [Lang::Vi, Lang::En] {
                let text = t(lang, &key);
                assert!(!text.is_empty() && text != key, "{key} missing in {lang:?}");
            }
        }
        assert_ne!(t(Lang::Vi, "cert_err_revoked"), t(Lang::En, "cert_err_revoked"));
    }
}
