//! The only module that knows axum: routes, extractors, responses, pages. Handlers are thin:
//! extract, call one service function, map the outcome.

pub mod ctx;
pub mod demo;
pub mod error;
pub mod logout;
pub mod oidc;
pub mod pages;
pub mod second_factor;
pub mod web;

use crate::app::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

/// Security headers on every response. No inline script anywhere, so `script-src 'self'`.
/// `form-action` is left out on purpose: Chrome applies it to the redirect chain after a form
/// post, which would block the final redirect to the portal.
fn security_headers(router: Router, hsts: bool) -> Router {
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
    let mut r = router
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        ));
    if hsts {
        r = r.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    r
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/", get(web::home))
        .route("/healthz", get(web::healthz))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/jwks.json", get(oidc::jwks))
        .route("/authorize", get(oidc::authorize_get).post(oidc::authorize_post))
        .route("/authorize/resume", get(oidc::authorize_resume))
        .route("/authorize/cancel", post(oidc::authorize_cancel))
        .route("/par", post(oidc::par_post))
        .route("/token", post(oidc::token_post))
        .route("/introspect", post(oidc::introspect_post))
        .route("/revoke", post(oidc::revoke_post))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/login", get(web::login_get).post(web::login_post))
        .route("/register", get(web::register_get).post(web::register_post))
        .route("/account", get(web::account_get))
        .route("/account/identity", post(web::identity_post))
        .route("/login/second", get(second_factor::second_get).post(second_factor::second_post))
        .route("/account/totp", post(second_factor::totp_new))
        .route("/account/totp/{id}", get(second_factor::totp_get))
        .route("/account/totp/{id}/confirm", post(second_factor::totp_confirm))
        .route("/account/totp/{id}/remove", post(second_factor::totp_remove))
        .route("/account/totp/{id}/rename", post(second_factor::totp_rename))
        .route("/account/recovery-codes", post(second_factor::recovery_new))
        .route("/account/second-factor", post(second_factor::always_post))
        .route("/login/second/send", post(second_factor::second_send))
        .route("/account/contact/send", post(second_factor::contact_send))
        .route("/account/contact/confirm", post(second_factor::contact_confirm))
        .route("/dev/outbox", get(second_factor::dev_outbox))
        .route("/logout", post(web::logout_post))
        .route("/logout/end", get(logout::end_session_get).post(logout::end_session_post))
        .route("/lang", get(web::lang_get))
        .route("/static/app.css", get(web::stylesheet))
        .route("/static/form_post.js", get(oidc::form_post_script));
    if state.demo.is_some() {
        r = r
            .route("/demo", get(demo::home))
            .route("/demo/login", get(demo::login))
            .route("/demo/callback", get(demo::callback));
    }
    let hsts = state.config.secure_cookies();
    let r = r.fallback(web::not_found).layer(DefaultBodyLimit::max(64 * 1024)).with_state(state);
    security_headers(r, hsts)
}
