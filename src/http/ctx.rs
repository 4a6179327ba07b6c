//! Per-request context for pages: language, cookies, the signed-in session and CSRF.
//!
//! CSRF: a random `csrf` cookie (HttpOnly, SameSite=Lax) and, in every form, a token that is the
//! keyed hash of that cookie. A cross-site form cannot read the cookie nor compute the token, and
//! the check works before sign-in too (login CSRF).

use crate::app::{AppState, now};
use crate::crypto::random::constant_time_eq;
use crate::i18n::{self, Lang};
use crate::store::{Account, SessionRecord};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::{Value, context};

pub const LANG_COOKIE: &str = "xacthuc_lang";

/// Cookie names get the `__Host-` prefix when served over https (bound to this host, path /,
/// Secure), which a sibling subdomain cannot overwrite.
pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.config.secure_cookies() { format!("__Host-xacthuc_{base}") } else { format!("xacthuc_{base}") }
}

pub fn secret_cookie(state: &AppState, base: &str, value: String, max_age_secs: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::new(cookie_name(state, base), value);
    c.set_http_only(true);
    c.set_secure(state.config.secure_cookies());
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    if let Some(s) = max_age_secs {
        c.set_max_age(time::Duration::seconds(s));
    }
    c
}

pub fn removal(state: &AppState, base: &str) -> Cookie<'static> {
    let mut c = secret_cookie(state, base, String::new(), Some(0));
    c.make_removal();
    c
}

pub struct WebCtx {
    pub lang: Lang,
    pub jar: CookieJar,
    pub session: Option<(SessionRecord, Account)>,
    pub session_cookie: Option<String>,
    /// The signed-in account is staff (the navigation's console link; `proofing::counter::is_staff`).
    pub is_staff: bool,
    csrf_cookie: String,
    pub path: String,
    state: AppState,
}

impl FromRequestParts<AppState> for WebCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut jar = CookieJar::from_headers(&parts.headers);
        let accept = parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
        let default = Lang::parse(&state.config.default_language).unwrap_or_default();
        let lang = i18n::negotiate(jar.get(LANG_COOKIE).map(|c| c.value()), None, accept, default);
        let session_cookie = jar.get(&cookie_name(state, "session")).map(|c| c.value().to_string());
        let session = match &session_cookie {
            Some(v) => crate::service::login::current(
                state,
                v,
                parts.headers.get(header::USER_AGENT).and_then(|h| h.to_str().ok()),
                now(),
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "session look-up failed");
                (StatusCode::SERVICE_UNAVAILABLE, "service unavailable").into_response()
            })?,
            None => None,
        };
        let is_staff = match &session {
            Some((_, a)) => crate::service::proofing::counter::is_staff(state, a.id).await,
            None => false,
        };
        let csrf_name = cookie_name(state, "csrf");
        let csrf_cookie = match jar.get(&csrf_name) {
            Some(c) if c.value().len() >= 32 => c.value().to_string(),
            _ => {
                let v =
                    crate::service::random_token().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
                jar = jar.add(secret_cookie(state, "csrf", v.clone(), None));
                v
            }
        };
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(WebCtx { lang, jar, session, session_cookie, is_staff, csrf_cookie, path, state: state.clone() })
    }
}

impl WebCtx {
    pub fn csrf_token(&self) -> String {
        self.state.data_key.keyed_hash("csrf", self.csrf_cookie.as_bytes())
    }

    pub fn csrf_ok(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf_token().as_bytes(), presented.as_bytes())
    }

    /// Prefer the portal's `ui_locales` when the citizen has not chosen a language.
    pub fn prefer(&mut self, ui_locales: Option<&str>) {
        if self.jar.get(LANG_COOKIE).is_none()
            && let Some(l) = ui_locales.and_then(|u| u.split(' ').find_map(Lang::parse))
        {
            self.lang = l;
        }
    }

    pub fn t(&self, key: &str) -> String {
        i18n::t(self.lang, key)
    }

    /// Renders `template` with the common context plus `extra`.
    pub fn page(self, status: StatusCode, template: &str, extra: Value) -> Response {
        let user = self
            .session
            .as_ref()
            .map(|(_, a)| context! { username => a.username.clone(), as_level => a.as_level.number(), is_staff => self.is_staff });
        let other = self.lang.other();
        let ctx = context! {
            lang => self.lang.code(),
            t => super::pages::messages(self.lang),
            other_lang => other.code(),
            other_lang_name => i18n::t(other, "language_name"),
            switch_url => format!("/lang?set={}&next={}", other.code(), urlencoding(&self.path)),
            csrf => self.csrf_token(),
            user => user,
            ..extra
        };
        match self.state.pages.render(template, ctx) {
            Ok(html) => (status, self.jar, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template, "page rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
            }
        }
    }

    /// An error page: a title and a message, both already in the citizen's language.
    pub fn error_page(self, status: StatusCode, title: String, message: String) -> Response {
        self.page(status, "error.html", context! { title => title, message => message })
    }

    pub fn redirect(self, to: &str) -> Response {
        (self.jar, Redirect::to(to)).into_response()
    }
}

/// Percent-encodes a query value.
pub fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only local paths are accepted as a place to return to: no scheme, no host, no `//`.
pub fn safe_local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.contains("://");
    ok.then_some(next)
}

/// A URL-encoded form body, or `None` when it does not deserialise.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(body).ok()
}

/// The page for a form that could not be read (400), in the visitor's language.
pub fn bad_form(ctx: WebCtx) -> Response {
    let (title, message) = (ctx.t("err_form_title"), ctx.t("err_form_text"));
    ctx.error_page(StatusCode::BAD_REQUEST, title, message)
}
