//! The only module that knows axum: routes, extractors, responses, pages. Handlers are thin:
//! extract, call one service function, map the outcome.

pub mod approve;
pub mod certificates;
pub mod client_ip;
pub mod ctx;
pub mod demo;
pub mod error;
pub mod logout;
pub mod oidc;
pub mod pages;
pub mod passkeys;
pub mod review;
pub mod second_factor;
pub mod sessions;
pub mod staff;
pub mod staff_audit;
pub mod staff_enrol;
pub mod staff_review;
pub mod tls;
pub mod unlock;
pub mod verify;
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
        .route("/authorize/approve", get(approve::approve_get).post(approve::approve_post))
        .route("/par", post(oidc::par_post))
        .route("/token", post(oidc::token_post))
        .route("/introspect", post(oidc::introspect_post))
        .route("/revoke", post(oidc::revoke_post))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/login", get(web::login_get).post(web::login_post))
        .route("/register", get(web::register_get).post(web::register_post))
        .route("/account", get(web::account_get))
        .route("/account/identity", post(web::identity_post))
        .route("/account/sessions/end-others", post(sessions::end_others_post))
        .route("/login/unlock", get(unlock::unlock_get).post(unlock::unlock_post))
        .route("/readyz", get(sessions::readyz))
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
        .route("/static/form_post.js", get(oidc::form_post_script))
        .route("/static/passkey.js", get(passkeys::script))
        .route("/static/certificate.js", get(certificates::script))
        .route("/login/certificate", get(certificates::login_get).post(certificates::login_post))
        .route("/login/second/certificate", get(certificates::second_get).post(certificates::second_post))
        .route("/account/certificates/new", get(certificates::enrol_get))
        .route("/account/certificates", post(certificates::enrol_post))
        .route("/account/certificates/{id}/remove", post(certificates::remove_post))
        .route("/passkey/register/start", post(passkeys::register_start))
        .route("/passkey/register/finish", post(passkeys::register_finish))
        .route("/passkey/login/start", post(passkeys::login_start))
        .route("/passkey/login/finish", post(passkeys::login_finish))
        .route("/passkey/second/start", post(passkeys::second_start))
        .route("/passkey/second/finish", post(passkeys::second_finish))
        .route("/account/passkeys/{id}/rename", post(passkeys::rename))
        .route("/account/passkeys/{id}/remove", post(passkeys::remove))
        .route("/staff", get(staff::home))
        .route("/staff/search", post(staff::search))
        .route("/staff/citizens", post(staff::create))
        .route("/staff/citizens/{id}", get(staff::citizen_get))
        .route("/staff/citizens/{id}/verify", post(staff::verify))
        .route("/staff/citizens/{id}/letter", post(staff::letter))
        .route("/staff/citizens/{id}/lower", post(staff::lower))
        .route("/staff/citizens/{id}/suspend", post(staff::suspend))
        .route("/staff/citizens/{id}/audit", get(staff_audit::audit_get))
        .route("/staff/citizens/{id}/passkey/start", post(staff_enrol::start))
        .route("/staff/citizens/{id}/passkey/finish", post(staff_enrol::finish))
        .route("/account/verify", get(verify::hub_get))
        .route("/account/verify/certificate", get(verify::certificate_get).post(verify::certificate_post))
        .route("/account/verify/registry", post(verify::registry_post))
        .route(
            "/account/verify/review",
            get(review::review_get).post(review::review_post).layer(DefaultBodyLimit::max(review::BODY_LIMIT)),
        )
        .route("/staff/reviews", get(staff_review::list))
        .route("/staff/reviews/{id}", get(staff_review::detail))
        .route("/staff/reviews/{id}/files/{file_id}", get(staff_review::file))
        .route("/staff/reviews/{id}/approve", post(staff_review::approve))
        .route("/staff/reviews/{id}/reject", post(staff_review::reject))
        .route("/activate", get(staff::activate_get).post(staff::activate_post));
    if state.demo.is_some() {
        r = r
            .route("/demo", get(demo::home))
            .route("/demo/login", get(demo::login))
            .route("/demo/callback", get(demo::callback));
    }
    let hsts = state.config.secure_cookies();
    let r = r
        .fallback(web::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    security_headers(with_request_ids(r), hsts)
}

/// Every request gets an `x-request-id` (a proxy's is kept), echoed in the response and carried
/// by every log line written while serving it. The request's span names the method and route
/// pattern only: never the query string, which can hold codes and tokens.
fn with_request_ids(router: Router) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    let header = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::extract::Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
            tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route)
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG));
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// Records each request's latency under its route pattern (`crate::metrics`).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let labels = crate::metrics::Route { method, route, status: crate::metrics::status_class(resp.status().as_u16()) };
    state.metrics.requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    resp
}

/// The metrics listener's router: `GET /metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|axum::extract::State(state): axum::extract::State<AppState>| async move {
                ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.render())
            }),
        )
        .with_state(state)
}
