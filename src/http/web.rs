//! Pages for people: sign-in, registration, the account, sign-out, language.

use super::client_ip::ClientIp;
use super::ctx::{LANG_COOKIE, WebCtx, removal, safe_local_path, secret_cookie};
use super::ctx::{bad_form, parse};
use super::oidc::{after_login, csrf_failed, service_failure};
use crate::app::{AppState, now};
use crate::service::accounts::{self, FieldProblem, IdentityInput, RegistrationError, RegistrationInput};
use crate::service::authorize;
use crate::service::login::{self, LoginError};
use crate::service::throttle::{self, Refused};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;

pub async fn home(ctx: WebCtx) -> Response {
    let to = if ctx.session.is_some() { "/account" } else { "/login" };
    ctx.redirect(to)
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        super::pages::STYLESHEET,
    )
        .into_response()
}

pub async fn not_found(ctx: WebCtx) -> Response {
    let title = ctx.t("err_not_found_title");
    let message = ctx.t("err_not_found_text");
    ctx.error_page(StatusCode::NOT_FOUND, title, message)
}

#[derive(Deserialize)]
pub struct LangQuery {
    set: String,
    next: Option<String>,
}

pub async fn lang_get(ctx: WebCtx, Query(q): Query<LangQuery>) -> Response {
    let Some(lang) = crate::i18n::Lang::parse(&q.set) else {
        return ctx.redirect("/");
    };
    let mut c = Cookie::new(LANG_COOKIE, lang.code());
    c.set_path("/");
    c.set_same_site(SameSite::Lax);
    c.set_max_age(time::Duration::days(365));
    let next = q.next.as_deref().and_then(safe_local_path).unwrap_or("/").to_string();
    let mut ctx = ctx;
    ctx.jar = ctx.jar.add(c);
    ctx.redirect(&next)
}

fn problems_map(problems: &[FieldProblem]) -> BTreeMap<&'static str, Vec<String>> {
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for p in problems {
        m.entry(p.field).or_default().push(p.message.clone());
    }
    m
}

#[derive(Deserialize)]
pub struct PendingParam {
    r: Option<String>,
}

/// The context of a waiting portal request, for the sign-in and registration pages.
async fn pending_context(
    state: &AppState,
    ctx: &mut WebCtx,
    r: Option<&str>,
) -> Result<Value, crate::service::ServiceError> {
    let Some(r) = r.filter(|r| !r.is_empty()) else {
        return Ok(context! { pending => "", client_name => "", login_hint => "" });
    };
    match authorize::pending_info(state, r, now()).await? {
        Some(info) => {
            ctx.prefer(info.ui_locales.as_deref());
            Ok(
                context! { pending => r, client_name => info.client_name, login_hint => info.login_hint.unwrap_or_default() },
            )
        }
        None => Ok(context! { pending => "", client_name => "", login_hint => "" }),
    }
}

pub async fn login_get(State(state): State<AppState>, mut ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    if ctx.session.is_some() && q.r.is_none() {
        return ctx.redirect("/account");
    }
    match pending_context(&state, &mut ctx, q.r.as_deref()).await {
        Ok(p) => {
            let username = p.get_attr("login_hint").map(|v| v.to_string()).unwrap_or_default();
            ctx.page(
                StatusCode::OK,
                "login.html",
                context! { username => username, error => "", offer_certificate => state.certificates.enabled(), ..p },
            )
        }
        Err(e) => service_failure(ctx, e),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    r: Option<String>,
}

pub async fn login_post(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    mut ctx: WebCtx,
    body: Bytes,
) -> Response {
    let Some(form) = parse::<LoginForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let t = now();
    let account = login::check_password(&state, &form.username, &form.password, source, t).await;
    // The same citizen again: the current session is kept (re-authentication).
    if let (Ok(account), Some((session, current))) = (&account, ctx.session.as_ref())
        && current.id == account.id
    {
        match login::reauthenticate(&state, session, account, t).await {
            Ok(Some(token)) => {
                ctx.jar = ctx.jar.add(secret_cookie(&state, "session", token, None));
                let to = after_login(form.r.as_deref());
                return ctx.redirect(&to);
            }
            Ok(None) => {}
            Err(e) => return service_failure(ctx, e),
        }
    }
    match account {
        Ok(account) => match login::start_session(&state, &account, login::password_factor(t), t).await {
            Ok((token, _)) => {
                if let Some(old) = ctx.session_cookie.take() {
                    // A live session replaced by this sign-in ends everywhere too (portals told).
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
                ctx.redirect(&to)
            }
            Err(e) => service_failure(ctx, e),
        },
        Err(LoginError::BadCredentials) => {
            state.metrics.sign_in("failure", "pwd");
            let p = match pending_context(&state, &mut ctx, form.r.as_deref()).await {
                Ok(p) => p,
                Err(e) => return service_failure(ctx, e),
            };
            let error = ctx.t("err_bad_credentials");
            ctx.page(
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { username => form.username, error => error, offer_certificate => state.certificates.enabled(), ..p },
            )
        }
        Err(LoginError::Throttled(refused)) => {
            state.metrics.sign_in("locked", "pwd");
            let p = match pending_context(&state, &mut ctx, form.r.as_deref()).await {
                Ok(p) => p,
                Err(e) => return service_failure(ctx, e),
            };
            let error = throttled_message(&ctx, refused);
            let offer_unlock = refused == Refused::HardLocked;
            ctx.page(
                StatusCode::TOO_MANY_REQUESTS,
                "login.html",
                context! { username => form.username, error => error, offer_unlock => offer_unlock, offer_certificate => state.certificates.enabled(), ..p },
            )
        }
        Err(LoginError::Suspended) => {
            let (title, message) = (ctx.t("err_suspended_title"), ctx.t("err_suspended_text"));
            ctx.error_page(StatusCode::FORBIDDEN, title, message)
        }
        Err(LoginError::Service(e)) => service_failure(ctx, e),
    }
}

/// What a throttled citizen reads: when to try again, or how to unlock. Never whether the
/// account exists (an unknown name is throttled the same way).
pub(crate) fn throttled_message(ctx: &WebCtx, refused: Refused) -> String {
    match refused {
        Refused::Wait(until) | Refused::Address(until) => {
            format!("{} {}.", ctx.t("err_throttled_wait"), dmy_time_seconds(until))
        }
        Refused::HardLocked => ctx.t("err_throttled_locked"),
    }
}

/// Counts a request to send a one-time code from this address; `Some(page)` when refused.
pub(crate) async fn code_send_limited(
    state: &AppState,
    source: Option<std::net::IpAddr>,
    ctx: WebCtx,
) -> Result<WebCtx, Response> {
    match throttle::rate(state, throttle::Rate::CodeSent, source, now()).await {
        Ok(()) => Ok(ctx),
        Err(throttle::ThrottleError::Refused(refused)) => {
            let title = ctx.t("err_throttled_title");
            let message = throttled_message(&ctx, refused);
            Err(ctx.error_page(StatusCode::TOO_MANY_REQUESTS, title, message))
        }
        Err(throttle::ThrottleError::Service(e)) => Err(service_failure(ctx, e)),
    }
}

/// `dd/mm/yyyy hh:mm:ss` in Vietnam time: a delay of seconds must show its seconds.
fn dmy_time_seconds(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .map(|t| t.to_offset(time::macros::offset!(+7)))
        .and_then(|t| t.format(time::macros::format_description!("[hour]:[minute]:[second] [day]/[month]/[year]")).ok())
        .unwrap_or_default()
}

#[derive(Deserialize, Default, serde::Serialize)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default, skip_serializing)]
    password_confirm: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default, skip_serializing)]
    csrf: String,
    r: Option<String>,
}

pub async fn register_get(State(state): State<AppState>, mut ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    match pending_context(&state, &mut ctx, q.r.as_deref()).await {
        Ok(p) => {
            let form = RegisterForm { level: "as2".into(), ..Default::default() };
            ctx.page(
                StatusCode::OK,
                "register.html",
                context! { form => super::pages::ser(&form), errors => Value::from(()), ..p },
            )
        }
        Err(e) => service_failure(ctx, e),
    }
}

fn identity_of(national_id: &str, full_name: &str, birth_date: &str, sex: &str) -> IdentityInput {
    IdentityInput {
        national_id: national_id.into(),
        full_name: full_name.into(),
        birth_date: birth_date.into(),
        sex: sex.into(),
    }
}

pub async fn register_post(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    mut ctx: WebCtx,
    body: Bytes,
) -> Response {
    let Some(form) = parse::<RegisterForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let input = RegistrationInput {
        username: form.username.clone(),
        password: form.password.clone(),
        password_confirm: form.password_confirm.clone(),
        email: Some(form.email.clone()),
        phone: Some(form.phone.clone()),
        identity: (form.level == "as2")
            .then(|| identity_of(&form.national_id, &form.full_name, &form.birth_date, &form.sex)),
    };
    let t = now();
    match throttle::rate(&state, throttle::Rate::Registration, source, t).await {
        Ok(()) => {}
        Err(throttle::ThrottleError::Refused(refused)) => {
            let title = ctx.t("err_throttled_title");
            let message = throttled_message(&ctx, refused);
            return ctx.error_page(StatusCode::TOO_MANY_REQUESTS, title, message);
        }
        Err(throttle::ThrottleError::Service(e)) => return service_failure(ctx, e),
    }
    match accounts::register(&state, input, ctx.lang, "self", t).await {
        Ok(account) => match login::start_session(&state, &account, login::password_factor(t), t).await {
            Ok((token, _)) => {
                ctx.jar = ctx.jar.add(secret_cookie(&state, "session", token, None));
                let to = after_login(form.r.as_deref());
                ctx.redirect(&to)
            }
            Err(e) => service_failure(ctx, e),
        },
        Err(RegistrationError::Invalid(problems)) => {
            let p = match pending_context(&state, &mut ctx, form.r.as_deref()).await {
                Ok(p) => p,
                Err(e) => return service_failure(ctx, e),
            };
            let errors = super::pages::ser(problems_map(&problems));
            ctx.page(
                StatusCode::BAD_REQUEST,
                "register.html",
                context! { form => super::pages::ser(&form), errors => errors, ..p },
            )
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}

fn dmy(iso: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

pub(crate) fn dmy_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .map(|t| t.to_offset(time::macros::offset!(+7)))
        .and_then(|t| t.format(time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]")).ok())
        .unwrap_or_default()
}

async fn account_page(
    state: &AppState,
    ctx: WebCtx,
    status: StatusCode,
    pending: &str,
    errors: Value,
    form: Value,
) -> Response {
    let Some((session, account)) = &ctx.session else {
        return ctx.redirect("/login");
    };
    let sessions = match super::sessions::account_view(state, account, session).await {
        Ok(s) => s,
        Err(e) => return service_failure(ctx, e),
    };
    let overview = match crate::service::second_factor::overview(state, account).await {
        Ok(o) => o,
        Err(e) => return service_failure(ctx, e),
    };
    let apps: Vec<Value> = overview
        .apps
        .iter()
        .map(|t| {
            context! {
                id => t.id.to_string(),
                name => t.name.clone(),
                added => dmy_time(t.confirmed_at.unwrap_or(t.created_at)),
                last_used => t.last_used_at.map(dmy_time).unwrap_or_default(),
            }
        })
        .collect();
    let passkeys = match super::passkeys::account_view(state, account).await {
        Ok(p) => p,
        Err(e) => return service_failure(ctx, e),
    };
    let certificates = match super::certificates::account_view(state, account).await {
        Ok(c) => c,
        Err(e) => return service_failure(ctx, e),
    };
    let evidence = match super::staff::account_view(state, account).await {
        Ok(e) => e,
        Err(e) => return service_failure(ctx, e),
    };
    // The latest photo review, while it waits or after a refusal (its reason), so the citizen
    // sees it without opening /account/verify/review.
    let review = match state.store.latest_review_request(account.id).await {
        Ok(r) => r.filter(|r| r.status.as_str() != "approved").map(|r| {
            context! {
                status => r.status.as_str(),
                sent => dmy_time(r.created_at),
                decided => r.decided_at.map(dmy_time),
                reason => r.reason,
            }
        }),
        Err(e) => return service_failure(ctx, e.into()),
    };
    let second = context! {
        certificates => certificates,
        passkeys => passkeys,
        apps => apps,
        recovery_left => overview.recovery_left,
        always => account.always_second_factor,
    };
    let identity = account.identity.as_ref().map(|i| {
        context! {
            full_name => i.full_name.clone(),
            birth_date => dmy(&i.birth_date),
            sex => i.sex.clone(),
            national_id => i.national_id_masked.clone(),
        }
    });
    let view = context! {
        username => account.username.clone(),
        as_level => account.as_level.number(),
        email => account.email.clone(),
        phone => account.phone.clone(),
        email_verified => account.email_verified_at.is_some(),
        phone_verified => account.phone_verified_at.is_some(),
        identity => identity,
    };
    ctx.page(
        status,
        "account.html",
        context! { account => view, second => second, sessions => sessions, pending => pending, errors => errors, form => form, evidence => evidence, review => review },
    )
}

pub async fn account_get(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingParam>) -> Response {
    let pending = q.r.unwrap_or_default();
    let empty = super::pages::ser(IdentityForm::default());
    account_page(&state, ctx, StatusCode::OK, &pending, Value::from(()), empty).await
}

#[derive(Deserialize, serde::Serialize, Default)]
pub struct IdentityForm {
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default, skip_serializing)]
    csrf: String,
    r: Option<String>,
}

pub async fn identity_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Some(form) = parse::<IdentityForm>(&body) else {
        return bad_form(ctx);
    };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let Some((_, account)) = ctx.session.clone() else {
        return ctx.redirect("/login");
    };
    let input = identity_of(&form.national_id, &form.full_name, &form.birth_date, &form.sex);
    match accounts::declare_identity(&state, &account, input, ctx.lang, now()).await {
        Ok(()) => {
            let to = match form.r.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => after_login(Some(r)),
                None => "/account".into(),
            };
            ctx.redirect(&to)
        }
        Err(RegistrationError::Invalid(problems)) => {
            let pending = form.r.clone().unwrap_or_default();
            let errors = super::pages::ser(problems_map(&problems));
            account_page(&state, ctx, StatusCode::BAD_REQUEST, &pending, errors, super::pages::ser(&form)).await
        }
        Err(RegistrationError::Service(e)) => service_failure(ctx, e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout_post(State(state): State<AppState>, mut ctx: WebCtx, body: Bytes) -> Response {
    let form = parse::<CsrfForm>(&body).unwrap_or(CsrfForm { csrf: String::new() });
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    // Ends the session everywhere: its grants revoked, back-channel logout tokens sent.
    if let Some((session, _)) = ctx.session.clone()
        && let Err(e) = crate::service::logout::end_session(&state, &session, now()).await
    {
        return service_failure(ctx, e);
    }
    ctx.session = None;
    ctx.jar = ctx.jar.add(removal(&state, "session"));
    let (title, message) = (ctx.t("logged_out_title"), ctx.t("logged_out_text"));
    ctx.page(StatusCode::OK, "error.html", context! { title => title, message => message })
}
