//! Pages for second factors: the second step of a sign-in, enrolling an authenticator app,
//! recovery codes, and the "always ask" setting.

use super::ctx::{WebCtx, secret_cookie};
use super::ctx::{bad_form, parse};
use super::oidc::{after_login, csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::notify::Channel;
use crate::policy::FactorKind;
use crate::service::authorize;
use crate::service::otp;
use crate::service::second_factor::{self, SecondFactorError, SecondFactorInput};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
pub struct PendingParam {
    r: Option<String>,
}

fn channel_of(s: &str) -> Option<Channel> {
    match s {
        "sms" => Some(Channel::Sms),
        "email" => Some(Channel::Email),
        _ => None,
    }
}

/// The second-step page: the app and recovery-code forms, and a "send a code" button per
/// verified contact; `sent` is the channel a code just went to and its masked destination.
/// For a step-up it also says why (the service, the action and its details) and offers only the
/// kinds of factor the policy accepts.
async fn step_page(
    state: &AppState,
    ctx: WebCtx,
    status: StatusCode,
    pending: &str,
    error: String,
    sent: Option<(&str, String)>,
) -> Response {
    let decided_at = now();
    let step_up = match ctx.session.as_ref().filter(|_| !pending.is_empty()) {
        Some(session) => match authorize::step_up_info(state, pending, session, decided_at).await {
            Ok(info) => info,
            Err(e) => return service_failure(ctx, e),
        },
        None => None,
    };
    let kinds = step_up.as_ref().and_then(|s| s.target.as_ref()).map(|t| t.kinds.clone()).unwrap_or_default();
    // With required kinds, only the methods of those kinds; otherwise any second factor.
    let offer = |kind: FactorKind| kinds.is_empty() || kinds.contains(&kind);
    // The app form only for an account with a confirmed app.
    let has_app = match ctx.session.as_ref() {
        Some((_, a)) => match state.store.list_totp(a.id).await {
            Ok(apps) => apps.iter().any(|t| t.confirmed_at.is_some()),
            Err(e) => return service_failure(ctx, e.into()),
        },
        None => false,
    };
    // Offer only the channels that can deliver a code now.
    let contact = |channel: Channel| {
        ctx.session
            .as_ref()
            .filter(|_| state.notifier.can_send(channel) && offer(FactorKind::Otp))
            .and_then(|(_, a)| otp::destination(a, otp::Purpose::Login, channel))
            .map(|d| otp::masked(channel, &d))
    };
    let (sms_to, email_to) = (contact(Channel::Sms), contact(Channel::Email));
    let (sent_channel, sent_to) = sent.map(|(c, to)| (c.to_string(), to)).unwrap_or_default();
    // A passkey (templates/passkey_step.html) when the account has one and the step accepts it.
    let offer_passkey = match &ctx.session {
        Some((_, a)) if offer(FactorKind::Webauthn) || offer(FactorKind::Biometric) => {
            state.store.list_passkeys(a.id).await.is_ok_and(|k| !k.is_empty())
        }
        _ => false,
    };
    let why = step_up.as_ref().map(|s| super::approve::why(&ctx, &s.pending, s.target.as_ref(), decided_at));
    ctx.page(
        status,
        "second_factor.html",
        context! {
            pending => pending,
            error => error,
            sms_to => sms_to,
            email_to => email_to,
            sent_channel => sent_channel,
            sent_to => sent_to,
            why => why,
            offer_totp => has_app && offer(FactorKind::Otp),
            offer_recovery => offer(FactorKind::RecoveryCode),
            offer_passkey => offer_passkey,
            // A digital signature (templates/certificate_step.html); never claims a smart card.
            offer_certificate => state.certificates.enabled() && offer(FactorKind::Certificate),
        },
    )
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
    r: Option<String>,
}

/// Sends a sign-in code by SMS or e-mail, then shows the page with its code form.
pub async fn second_send(
    State(state): State<AppState>,
    super::client_ip::ClientIp(source): super::client_ip::ClientIp,
    ctx: WebCtx,
    body: Bytes,
) -> Response {
    let Some(form) = parse::<SendForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    // Codes cost money and reach people: limited per source address too (issue 9).
    let ctx = match super::web::code_send_limited(&state, source, ctx).await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let Some(channel) = channel_of(&form.channel) else { return bad_form(ctx) };
    let pending = form.r.clone().unwrap_or_default();
    match second_factor::send_code(&state, &account, channel, ctx.lang, now()).await {
        Ok(to) => step_page(&state, ctx, StatusCode::OK, &pending, String::new(), Some((&form.channel, to))).await,
        Err(SecondFactorError::Otp(e)) => {
            let message = e.message(ctx.lang);
            step_page(&state, ctx, StatusCode::TOO_MANY_REQUESTS, &pending, message, None).await
        }
        Err(SecondFactorError::Locked(_)) => {
            let message = ctx.t("err_too_many_attempts");
            step_page(&state, ctx, StatusCode::TOO_MANY_REQUESTS, &pending, message, None).await
        }
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        Err(_) => step_page(&state, ctx, StatusCode::BAD_REQUEST, &pending, String::new(), None).await,
    }
}

/// The second step: the citizen has signed in with a password; the request needs more.
pub async fn second_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    if ctx.session.is_none() {
        let to = format!("/login?r={}", super::ctx::urlencoding(q.r.as_deref().unwrap_or("")));
        return ctx.redirect(&to);
    }
    let pending = q.r.unwrap_or_default();
    step_page(&state, ctx, StatusCode::OK, &pending, String::new(), None).await
}

#[derive(Deserialize)]
pub struct SecondForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
    r: Option<String>,
}

pub async fn second_post(State(state): State<AppState>, mut ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<SecondForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else {
        return ctx.redirect("/login");
    };
    let input = match (form.method.as_str(), channel_of(&form.method)) {
        ("recovery_code", _) => SecondFactorInput::RecoveryCode(&form.code),
        (_, Some(channel)) => SecondFactorInput::SentCode(channel, &form.code),
        _ => SecondFactorInput::Totp(&form.code),
    };
    let pending = form.r.clone().unwrap_or_default();
    match second_factor::verify(&state, &session, &account, input, now()).await {
        Ok(stepped) => {
            ctx.jar = ctx.jar.add(secret_cookie(&state, "session", stepped.cookie, None));
            let to = after_login(form.r.as_deref());
            match stepped.recovery_left {
                // A recovery code was used: say how many remain before going on.
                Some(left) => {
                    let title = ctx.t("recovery_used_title");
                    let message = format!("{} {left}", ctx.t("recovery_left"));
                    ctx.page(StatusCode::OK, "notice.html", context! { title => title, message => message, next => to })
                }
                None => ctx.redirect(&to),
            }
        }
        Err(SecondFactorError::Totp(e)) => {
            let message = e.message(ctx.lang).to_string();
            step_page(&state, ctx, StatusCode::UNAUTHORIZED, &pending, message, None).await
        }
        Err(SecondFactorError::RecoveryCode) => {
            let message = ctx.t("err_recovery_code");
            step_page(&state, ctx, StatusCode::UNAUTHORIZED, &pending, message, None).await
        }
        Err(SecondFactorError::Otp(e)) => {
            let message = e.message(ctx.lang);
            let sent = channel_of(&form.method).map(|_| (form.method.as_str(), String::new()));
            step_page(&state, ctx, StatusCode::UNAUTHORIZED, &pending, message, sent).await
        }
        Err(SecondFactorError::Locked(_)) => {
            let message = ctx.t("err_too_many_attempts");
            step_page(&state, ctx, StatusCode::TOO_MANY_REQUESTS, &pending, message, None).await
        }
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        Err(_) => step_page(&state, ctx, StatusCode::UNAUTHORIZED, &pending, String::new(), None).await,
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Starts enrolling an authenticator app.
pub async fn totp_new(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match second_factor::start_totp(&state, &account, now()).await {
        Ok(id) => ctx.redirect(&format!("/account/totp/{id}")),
        Err(e) => service_failure(ctx, e),
    }
}

async fn enrol_page(state: &AppState, ctx: WebCtx, id: Uuid, status: StatusCode, error: String) -> Response {
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match second_factor::totp_enrolment(state, &account, id, ctx.lang).await {
        Ok(Some(e)) => ctx.page(
            status,
            "totp_enrol.html",
            context! {
                id => id.to_string(),
                qr_svg => Value::from_safe_string(e.qr_svg),
                secret => e.base32_secret,
                uri => e.otpauth_uri,
                error => error,
            },
        ),
        Ok(None) => ctx.redirect("/account"),
        Err(e) => service_failure(ctx, e),
    }
}

pub async fn totp_get(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>) -> Response {
    enrol_page(&state, ctx, id, StatusCode::OK, String::new()).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub async fn totp_rename(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let Some(form) = parse::<NameForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match second_factor::rename_totp(&state, &account, id, &form.name, now()).await {
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        _ => ctx.redirect("/account"),
    }
}

fn codes_page(ctx: WebCtx, codes: Vec<String>) -> Response {
    ctx.page(StatusCode::OK, "recovery_codes.html", context! { codes => codes })
}

pub async fn totp_confirm(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let Some(form) = parse::<CodeForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let t = now();
    let confirmed = second_factor::confirm_totp(&state, &account, id, &form.code, t).await;
    if confirmed.is_ok() && !form.name.trim().is_empty() {
        let _ = second_factor::rename_totp(&state, &account, id, &form.name, t).await;
    }
    match confirmed {
        Ok(Some(codes)) => codes_page(ctx, codes),
        Ok(None) => ctx.redirect("/account"),
        Err(SecondFactorError::Totp(e)) => {
            let message = e.message(ctx.lang).to_string();
            enrol_page(&state, ctx, id, StatusCode::BAD_REQUEST, message).await
        }
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        Err(_) => ctx.redirect("/account"),
    }
}

fn not_fresh(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("err_not_fresh_title"), ctx.t("err_not_fresh_text"));
    ctx.error_page(StatusCode::FORBIDDEN, title, message)
}

pub async fn totp_remove(State(state): State<AppState>, ctx: WebCtx, Path(id): Path<Uuid>, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match second_factor::remove_totp(&state, &account, &session, id, now()).await {
        Ok(()) | Err(SecondFactorError::NotFound) => ctx.redirect("/account"),
        Err(SecondFactorError::NotFresh) => not_fresh(ctx),
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        Err(_) => ctx.redirect("/account"),
    }
}

pub async fn recovery_new(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((session, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let t = now();
    if !session.factors.iter().any(|f| f.at >= t - second_factor::FRESH_SIGN_IN_SECONDS) {
        return not_fresh(ctx);
    }
    match second_factor::new_recovery_codes(&state, &account, t).await {
        Ok(codes) => codes_page(ctx, codes),
        Err(SecondFactorError::Service(e)) => service_failure(ctx, e),
        Err(_) => ctx.redirect("/account"),
    }
}

#[derive(Deserialize)]
pub struct AlwaysForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    always: String,
}

pub async fn always_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<AlwaysForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    match second_factor::set_always(&state, &account, form.always == "on", now()).await {
        Ok(()) => ctx.redirect("/account"),
        Err(e) => service_failure(ctx, e),
    }
}

fn contact_page(ctx: WebCtx, status: StatusCode, channel: &str, sent_to: String, error: String) -> Response {
    ctx.page(status, "contact_verify.html", context! { channel => channel, sent_to => sent_to, error => error })
}

fn verify_purpose(channel: Channel) -> otp::Purpose {
    match channel {
        Channel::Email => otp::Purpose::VerifyEmail,
        Channel::Sms => otp::Purpose::VerifyPhone,
    }
}

/// Sends a code to a contact to verify it (it cannot receive sign-in codes before).
pub async fn contact_send(
    State(state): State<AppState>,
    super::client_ip::ClientIp(source): super::client_ip::ClientIp,
    ctx: WebCtx,
    body: Bytes,
) -> Response {
    let Some(form) = parse::<SendForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    // Codes cost money and reach people: limited per source address too (issue 9).
    let ctx = match super::web::code_send_limited(&state, source, ctx).await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let Some(channel) = channel_of(&form.channel) else { return bad_form(ctx) };
    match otp::send(&state, &account, verify_purpose(channel), channel, ctx.lang, now()).await {
        Ok(to) => contact_page(ctx, StatusCode::OK, &form.channel, to, String::new()),
        Err(otp::OtpError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let message = e.message(ctx.lang);
            contact_page(ctx, StatusCode::TOO_MANY_REQUESTS, &form.channel, String::new(), message)
        }
    }
}

#[derive(Deserialize)]
pub struct ContactCodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    code: String,
}

pub async fn contact_confirm(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<ContactCodeForm>(&body) else { return bad_form(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else { return ctx.redirect("/login") };
    let Some(channel) = channel_of(&form.channel) else { return bad_form(ctx) };
    match otp::confirm_contact(&state, &account, channel, &form.code, now()).await {
        Ok(_) => ctx.redirect("/account"),
        Err(otp::OtpError::Service(e)) => service_failure(ctx, e),
        Err(e) => {
            let message = e.message(ctx.lang);
            contact_page(ctx, StatusCode::BAD_REQUEST, &form.channel, String::new(), message)
        }
    }
}

/// `/dev/outbox`: the messages the development outbox kept (development mode only).
pub async fn dev_outbox(State(state): State<AppState>, ctx: WebCtx) -> Response {
    if !state.config.development {
        return super::web::not_found(ctx).await;
    }
    let kept = match state.store.list_outbox(100).await {
        Ok(k) => k,
        Err(e) => return service_failure(ctx, e.into()),
    };
    let messages: Vec<Value> = kept
        .into_iter()
        .map(|m| {
            context! {
                at => m.created_at,
                channel => if m.channel == "sms" { "SMS" } else { "E-mail" },
                to => m.recipient,
                subject => m.subject,
                text => m.body,
            }
        })
        .collect();
    ctx.page(StatusCode::OK, "outbox.html", context! { messages => messages })
}
