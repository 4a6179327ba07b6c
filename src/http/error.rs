//! OAuth error responses as JSON (`Cache-Control: no-store`, 401 with `WWW-Authenticate`
//! where the RFCs say). The other two kinds live with their users: redirects back to the client
//! in `service::authorize`, and error pages in the citizen's language in `ctx::WebCtx::error_page`.

use crate::oidc::OAuthError;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Headers every protocol JSON response carries (RFC 6749 §5.1).
pub fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

/// An OAuth error as JSON. `challenge` is the `WWW-Authenticate` scheme to send, if any.
pub struct OAuthJson {
    pub error: OAuthError,
    pub challenge: Option<&'static str>,
}

impl OAuthJson {
    pub fn new(error: OAuthError) -> Self {
        OAuthJson { error, challenge: None }
    }
}

impl From<OAuthError> for OAuthJson {
    fn from(error: OAuthError) -> Self {
        OAuthJson::new(error)
    }
}

fn log(e: &OAuthError) {
    if e.status >= 500 {
        tracing::error!(code = e.code, detail = e.detail.as_deref().unwrap_or(""), "{}", e.description);
    } else {
        tracing::info!(code = e.code, detail = e.detail.as_deref().unwrap_or(""), "{}", e.description);
    }
}

impl IntoResponse for OAuthJson {
    fn into_response(self) -> Response {
        log(&self.error);
        let status = StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut headers = no_store();
        if self.error.code == "temporarily_unavailable" {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(crate::service::hashing::RETRY_AFTER_SECONDS));
        }
        if let Some(scheme) = self.challenge {
            let value = if scheme == "Bearer" {
                // RFC 6750 §3: the error code goes in the challenge too.
                format!(
                    "Bearer realm=\"xacthuc\", error=\"{}\", error_description=\"{}\"",
                    self.error.code,
                    self.error.description.replace(['"', '\\'], "'")
                )
            } else {
                format!("{scheme} realm=\"xacthuc\"")
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        (status, headers, Json(self.error.body())).into_response()
    }
}
