//! Protocol endpoints: discovery, JWKS, authorize (with form_post), PAR, token, userinfo.

use super::ctx::{WebCtx, urlencoding};
use super::error::{OAuthJson, no_store};
use crate::app::{AppState, now};
use crate::oidc::authorize::RawAuthorizeRequest;
use crate::oidc::token::{TokenHintRequest, TokenRequest};
use crate::oidc::{OAuthError, discovery as disco};
use crate::service::authorize::{self, AuthorizeOutcome};
use crate::service::par::PushAuth;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

fn cacheable_json(body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body.into(),
    )
        .into_response()
}

/// The body of a cached document, shared with the key snapshot.
struct SharedBody(std::sync::Arc<str>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A document serialized once per key change (`service::keys::Document`), with its `ETag`;
/// `304 Not Modified` when the client already has it (`If-None-Match`).
fn cached_document(headers: &HeaderMap, doc: &crate::service::keys::Document) -> Response {
    let etag = HeaderValue::from_str(&doc.etag).ok();
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == doc.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // The snapshot's bytes themselves, not a copy.
        cacheable_json(Bytes::from_owner(SharedBody(std::sync::Arc::clone(&doc.body))))
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Some(etag) = etag {
        h.insert(header::ETAG, etag);
    }
    response
}

pub async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let issuer = state.issuer();
    let doc = state.keys.discovery_document(|algs| {
        disco::metadata(issuer, algs)
            .map_err(|e| e.to_string())
            .and_then(|m| serde_json::to_string(&m).map_err(|e| e.to_string()))
    });
    match doc {
        Ok(doc) => cached_document(&headers, &doc),
        Err(e) => OAuthJson::new(OAuthError::server_error("discovery unavailable").with_detail(e)).into_response(),
    }
}

pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    cached_document(&headers, &state.keys.jwks_document())
}

/// Parameters "MUST NOT be included more than once" (RFC 6749 §3.1): the derived
/// deserializer refuses duplicate fields, which we report as a malformed request.
fn parse_form<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, OAuthError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| OAuthError::invalid_request("malformed request parameters").with_detail(e.to_string()))
}

async fn authorize_with(state: AppState, ctx: WebCtx, raw: Result<RawAuthorizeRequest, OAuthError>) -> Response {
    let raw = match raw {
        Ok(r) => r,
        Err(e) => return outcome(ctx, AuthorizeOutcome::ErrorPage(e)),
    };
    let mut ctx = ctx;
    ctx.prefer(raw.ui_locales.as_deref());
    match authorize::start(&state, &raw, ctx.session.as_ref(), now()).await {
        Ok(o) => outcome(ctx, o),
        Err(e) => service_failure(ctx, e),
    }
}

pub async fn authorize_get(State(state): State<AppState>, ctx: WebCtx, RawQuery(q): RawQuery) -> Response {
    let raw = parse_form(q.unwrap_or_default().as_bytes());
    authorize_with(state, ctx, raw).await
}

/// OIDC Core §3.1.2.1: the authorization endpoint MUST support GET and POST.
pub async fn authorize_post(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let raw = parse_form(&body);
    authorize_with(state, ctx, raw).await
}

#[derive(Deserialize)]
pub struct PendingQuery {
    pub r: Option<String>,
}

pub async fn authorize_resume(State(state): State<AppState>, ctx: WebCtx, Query(q): Query<PendingQuery>) -> Response {
    let Some(r) = q.r else { return expired(ctx) };
    match authorize::resume(&state, &r, ctx.session.as_ref(), now()).await {
        Ok(Some(o)) => outcome(ctx, o),
        Ok(None) => expired(ctx),
        Err(e) => service_failure(ctx, e),
    }
}

#[derive(Deserialize)]
pub struct CancelForm {
    pub r: String,
    pub csrf: String,
    pub reason: Option<String>,
}

pub async fn authorize_cancel(State(state): State<AppState>, ctx: WebCtx, body: Bytes) -> Response {
    let Ok(form) = parse_form::<CancelForm>(&body) else { return expired(ctx) };
    if !ctx.csrf_ok(&form.csrf) {
        return csrf_failed(ctx);
    }
    let reason = match form.reason.as_deref() {
        // Name the unmet requirement for the portal (DESIGN.md: "a clear error_description").
        Some("insufficient_assurance") => {
            match authorize::insufficiency(&state, &form.r, ctx.session.as_ref(), now()).await {
                Ok(Some(why)) => why,
                Ok(None) => "the account's registration level is below what the service requires".to_string(),
                Err(e) => return service_failure(ctx, e),
            }
        }
        Some("declined") => "the citizen declined the authorization details".to_string(),
        _ => "the citizen cancelled the sign-in".to_string(),
    };
    match authorize::cancel(&state, &form.r, &reason, now()).await {
        Ok(Some(o)) => outcome(ctx, o),
        Ok(None) => expired(ctx),
        Err(e) => service_failure(ctx, e),
    }
}

pub(super) fn outcome(ctx: WebCtx, o: AuthorizeOutcome) -> Response {
    match o {
        AuthorizeOutcome::Redirect(url) => ctx.redirect(&url),
        AuthorizeOutcome::FormPost { action, fields } => {
            // The page carries a code or an error for the client: never cached.
            let mut page = ctx.page(StatusCode::OK, "form_post.html", context! { action => action, fields => fields });
            page.headers_mut().extend(no_store());
            page
        }
        AuthorizeOutcome::ErrorPage(e) => {
            tracing::info!(code = e.code, detail = e.detail.as_deref().unwrap_or(""), "authorization request refused");
            let title = ctx.t("err_authorize_title");
            let message = format!("{} ({}: {})", ctx.t("err_authorize_text"), e.code, e.description);
            ctx.error_page(StatusCode::BAD_REQUEST, title, message)
        }
        AuthorizeOutcome::SignIn { pending } => {
            let to = format!("/login?r={}", urlencoding(&pending));
            ctx.redirect(&to)
        }
        AuthorizeOutcome::SecondFactor { pending } => {
            let to = format!("/login/second?r={}", urlencoding(&pending));
            ctx.redirect(&to)
        }
        AuthorizeOutcome::Approve { pending } => {
            let to = format!("/authorize/approve?r={}", urlencoding(&pending));
            ctx.redirect(&to)
        }
        AuthorizeOutcome::Insufficient { pending, required, current, client_name } => ctx.page(
            StatusCode::FORBIDDEN,
            "insufficient.html",
            context! {
                pending => pending,
                required => required.number(),
                current => current.number(),
                client_name => client_name,
                can_self_declare => current.number() == 1 && required.number() == 2,
            },
        ),
    }
}

pub(super) fn expired(ctx: WebCtx) -> Response {
    let title = ctx.t("err_expired_title");
    let message = ctx.t("err_expired_text");
    ctx.error_page(StatusCode::BAD_REQUEST, title, message)
}

pub fn csrf_failed(ctx: WebCtx) -> Response {
    let title = ctx.t("err_csrf_title");
    let message = ctx.t("err_csrf_text");
    ctx.error_page(StatusCode::FORBIDDEN, title, message)
}

pub fn service_failure(ctx: WebCtx, e: crate::service::ServiceError) -> Response {
    if matches!(e, crate::service::ServiceError::Busy) {
        // Load shed by the hashing pool: not a failure, a "come back in a moment".
        let title = ctx.t("err_busy_title");
        let message = ctx.t("err_busy_text");
        let mut page = ctx.error_page(StatusCode::SERVICE_UNAVAILABLE, title, message);
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::service::hashing::RETRY_AFTER_SECONDS));
        page.headers_mut().extend(no_store());
        return page;
    }
    tracing::error!(error = %e, "request failed");
    let title = ctx.t("err_internal_title");
    let message = ctx.t("err_internal_text");
    ctx.error_page(StatusCode::INTERNAL_SERVER_ERROR, title, message)
}

pub async fn token_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // RFC 6749 §4.1.3: the request uses application/x-www-form-urlencoded.
    if !form_content_type(&headers) {
        return OAuthJson::new(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))
            .into_response();
    }
    let req: TokenRequest = match parse_form(&body) {
        Ok(r) => r,
        Err(e) => return OAuthJson::new(e).into_response(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match crate::service::token::exchange(&state, authorization, &req, now()).await {
        Ok(response) => (StatusCode::OK, no_store(), Json(response)).into_response(),
        Err(error) => client_error(error),
    }
}

/// RFC 9126 pushed authorization requests: 201 with the `request_uri`, or an OAuth JSON error
/// (§2.3), never a redirect.
pub async fn par_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // RFC 9126 §2: parameters "in the HTTP request message body using the
    // application/x-www-form-urlencoded format".
    if !form_content_type(&headers) {
        return OAuthJson::new(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))
            .into_response();
    }
    let (auth, raw) = match (parse_form::<PushAuth>(&body), parse_form::<RawAuthorizeRequest>(&body)) {
        (Ok(auth), Ok(raw)) => (auth, raw),
        (Err(e), _) | (_, Err(e)) => return OAuthJson::new(e).into_response(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match crate::service::par::push(&state, authorization, &auth, &raw, now()).await {
        Ok(response) => (StatusCode::CREATED, no_store(), Json(response)).into_response(),
        Err(error) => client_error(error),
    }
}

/// The form_post page's auto-submit (no inline script: the CSP is `script-src 'self'`).
pub async fn form_post_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        super::pages::FORM_POST_SCRIPT,
    )
        .into_response()
}

fn form_content_type(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    })
}

/// Errors of client-authenticated endpoints: 401 + `WWW-Authenticate` for invalid_client
/// (RFC 6749 §5.2).
fn client_error(error: OAuthError) -> Response {
    let challenge = (error.code == "invalid_client").then_some("Basic");
    OAuthJson { error, challenge }.into_response()
}

fn hint_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenHintRequest, OAuthError> {
    if !form_content_type(headers) {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    parse_form(body)
}

/// RFC 7662 token introspection.
pub async fn introspect_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match hint_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return OAuthJson::new(e).into_response(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match crate::service::token::introspect(&state, authorization, &req, now()).await {
        Ok(v) => (StatusCode::OK, no_store(), Json(v)).into_response(),
        Err(e) => client_error(e),
    }
}

/// RFC 7009 token revocation: 200 with an empty body, whether or not the token existed.
pub async fn revoke_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match hint_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return OAuthJson::new(e).into_response(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match crate::service::token::revoke_token(&state, authorization, &req, now()).await {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(e) => client_error(e),
    }
}

/// RFC 6750 §2.1 (header) and §2.2 (form body) bearer tokens.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string());
    #[derive(Deserialize)]
    struct Body {
        access_token: Option<String>,
    }
    let from_body = serde_urlencoded::from_bytes::<Body>(&body).ok().and_then(|b| b.access_token);
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return OAuthJson::new(OAuthError::invalid_request("use one way of sending the access token"))
                .into_response();
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => {
            // RFC 6750 §3.1: no error code when the request had no authentication at all.
            let mut h = no_store();
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"xacthuc\""));
            return (StatusCode::UNAUTHORIZED, h, Json(OAuthError::invalid_token("access token required").body()))
                .into_response();
        }
    };
    match crate::service::userinfo::userinfo(&state, &token, now()).await {
        Ok(claims) => (StatusCode::OK, no_store(), Json(claims)).into_response(),
        Err(error) => {
            let challenge = (error.status == 401).then_some("Bearer");
            OAuthJson { error, challenge }.into_response()
        }
    }
}

/// Where to send the browser after sign-in.
pub fn after_login(pending: Option<&str>) -> String {
    match pending {
        Some(r) if !r.is_empty() => format!("/authorize/resume?r={}", urlencoding(r)),
        _ => "/account".into(),
    }
}

pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
