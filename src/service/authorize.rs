//! The authorization endpoint's use case: validate, decide for the current session, then issue
//! a code, park the request while the citizen signs in, or refuse.

use super::{ServiceError, random_token};
use crate::app::AppState;
use crate::assurance::{AsLevel, Mechanism, Method};
use crate::crypto::random::hash_token;
use crate::oidc::OAuthError;
use crate::oidc::authorize::{
    self, AuthorizeDecision, AuthorizeError, RawAuthorizeRequest, ResponseMode, SessionView, ValidatedAuthorize,
};
use crate::store::{
    Account, AuthCodeRecord, ClientRecord, CodeData, GrantAuth, GrantRecord, PendingAuthorization, SessionRecord,
};
use uuid::Uuid;

#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Back to the client: a code, or an error (URL ready to use).
    Redirect(String),
    /// Back to the client with `response_mode=form_post`: a page whose form POSTs `fields` to
    /// `action` (the redirect URI).
    FormPost { action: String, fields: Vec<(String, String)> },
    /// Unknown client or bad redirect URI: a page, never a redirect.
    ErrorPage(OAuthError),
    /// The citizen must sign in; the request waits under `pending`.
    SignIn { pending: String },
    /// Signed in with a password; the request needs a second factor (the second step).
    SecondFactor { pending: String },
    /// The account's registration level is too low; explain how to raise it.
    Insufficient { pending: String, required: AsLevel, current: AsLevel, client_name: String },
}

/// What the sign-in page shows about the waiting request.
pub struct PendingInfo {
    pub client_name: String,
    pub ui_locales: Option<String>,
    pub login_hint: Option<String>,
    pub required: Option<Mechanism>,
}

/// Adds parameters to a redirect URI, keeping its own query (RFC 6749 §3.1.2).
fn redirect_with(redirect_uri: &str, params: &[(&str, Option<&str>)]) -> Result<String, ServiceError> {
    let mut url = url::Url::parse(redirect_uri).map_err(ServiceError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    Ok(url.to_string())
}

/// The authorization response (a code or an error) in the request's response mode: the query
/// of a redirect, or (form_post) "HTML form values that are auto-submitted in the User Agent,
/// and thus are transmitted via the HTTP POST method to the Client" (Form Post Response Mode §2).
fn respond(
    mode: ResponseMode,
    redirect_uri: &str,
    params: &[(&str, Option<&str>)],
) -> Result<AuthorizeOutcome, ServiceError> {
    match mode {
        ResponseMode::Query => redirect_with(redirect_uri, params).map(AuthorizeOutcome::Redirect),
        ResponseMode::FormPost => Ok(AuthorizeOutcome::FormPost {
            action: redirect_uri.to_string(),
            fields: params.iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string()))).collect(),
        }),
    }
}

fn error_response(
    state: &AppState,
    mode: ResponseMode,
    redirect_uri: &str,
    st: Option<&str>,
    e: &OAuthError,
) -> Result<AuthorizeOutcome, ServiceError> {
    respond(
        mode,
        redirect_uri,
        &[
            ("error", Some(e.code)),
            ("error_description", Some(&e.description)),
            ("state", st),
            // RFC 9207: the issuer identifies who answered (mix-up defence).
            ("iss", Some(state.issuer())),
        ],
    )
}

/// The strongest mechanism an account can reach with what it has enrolled.
pub use super::second_factor::reachable_mechanism;

pub async fn start(
    state: &AppState,
    raw: &RawAuthorizeRequest,
    session: Option<&(SessionRecord, Account)>,
    now: i64,
) -> Result<AuthorizeOutcome, ServiceError> {
    let client_id = match authorize::client_id(raw) {
        Ok(id) => id,
        Err(AuthorizeError::Page(e)) => return Ok(AuthorizeOutcome::ErrorPage(e)),
        Err(AuthorizeError::Redirect { error, .. }) => return Ok(AuthorizeOutcome::ErrorPage(error)),
    };
    let Some(client) = state.store.get_client(client_id).await? else {
        return Ok(AuthorizeOutcome::ErrorPage(OAuthError::invalid_request("unknown client_id")));
    };
    let req = if let Some(request_uri) = raw.request_uri.as_deref() {
        // A pushed request: its parameters replace every other one of this request. Its errors
        // are pages, since only the pushed request knows where to send the browser.
        match pushed(state, &client, request_uri, now).await? {
            Ok(req) => req,
            Err(e) => return Ok(AuthorizeOutcome::ErrorPage(e)),
        }
    } else {
        match authorize::check_par_required(raw, &client).and_then(|()| authorize::validate(raw, &client)) {
            Ok(req) => req,
            Err(AuthorizeError::Page(e)) => return Ok(AuthorizeOutcome::ErrorPage(e)),
            Err(AuthorizeError::Redirect { redirect_uri, state: st, response_mode, error }) => {
                return error_response(state, response_mode, &redirect_uri, st.as_deref(), &error);
            }
        }
    };
    proceed(state, req, None, session, None, now).await
}

/// Takes the request pushed under `request_uri` (RFC 9126 §4): single use ("Authorization
/// servers SHOULD treat request_uri values as one-time use"), and "An expired request_uri MUST
/// be rejected as invalid."
async fn pushed(
    state: &AppState,
    client: &ClientRecord,
    request_uri: &str,
    now: i64,
) -> Result<Result<ValidatedAuthorize, OAuthError>, ServiceError> {
    let id = match authorize::pushed_request_id(request_uri) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    let Some(pushed) = state.store.take_pushed_request(&hash_token(id), &client.id, now).await? else {
        return Ok(Err(OAuthError::invalid_request_uri("request_uri is unknown, expired or already used")));
    };
    let req: ValidatedAuthorize = serde_json::from_str(&pushed.request_json).map_err(ServiceError::internal)?;
    Ok(authorize::check_pushed_request(&req, &pushed.client_id, client).map(|()| req))
}

/// Continues a parked request after the citizen signed in.
pub async fn resume(
    state: &AppState,
    pending: &str,
    session: Option<&(SessionRecord, Account)>,
    now: i64,
) -> Result<Option<AuthorizeOutcome>, ServiceError> {
    let Some((req, created_at)) = load_pending(state, pending, now).await? else {
        return Ok(None);
    };
    proceed(state, req, Some(pending), session, Some(created_at), now).await.map(Some)
}

/// The citizen gives up (or cannot meet the requirement): `access_denied` to the client.
pub async fn cancel(
    state: &AppState,
    pending: &str,
    reason: &str,
    now: i64,
) -> Result<Option<AuthorizeOutcome>, ServiceError> {
    let Some((req, _)) = load_pending(state, pending, now).await? else {
        return Ok(None);
    };
    state.store.delete_pending_authorization(&hash_token(pending)).await?;
    let e = OAuthError::access_denied(reason);
    error_response(state, req.response_mode, &req.redirect_uri, req.state.as_deref(), &e).map(Some)
}

pub async fn pending_info(state: &AppState, pending: &str, now: i64) -> Result<Option<PendingInfo>, ServiceError> {
    let Some((req, _)) = load_pending(state, pending, now).await? else {
        return Ok(None);
    };
    let client_name = state.store.get_client(&req.client_id).await?.map(|c| c.name).unwrap_or_default();
    Ok(Some(PendingInfo {
        client_name,
        ui_locales: req.ui_locales.clone(),
        login_hint: req.login_hint.clone(),
        required: req.acr.values.iter().map(|a| a.mechanism).min(),
    }))
}

async fn load_pending(
    state: &AppState,
    pending: &str,
    now: i64,
) -> Result<Option<(ValidatedAuthorize, i64)>, ServiceError> {
    let Some(p) = state.store.find_pending_authorization(&hash_token(pending), now).await? else {
        return Ok(None);
    };
    let req: ValidatedAuthorize = serde_json::from_str(&p.request_json).map_err(ServiceError::internal)?;
    Ok(Some((req, p.created_at)))
}

async fn park(
    state: &AppState,
    req: &ValidatedAuthorize,
    existing: Option<&str>,
    now: i64,
) -> Result<String, ServiceError> {
    if let Some(id) = existing {
        return Ok(id.to_string());
    }
    let id = random_token()?;
    state
        .store
        .create_pending_authorization(&PendingAuthorization {
            id_hash: hash_token(&id),
            request_json: serde_json::to_string(req).map_err(ServiceError::internal)?,
            created_at: now,
            expires_at: now + state.config.session.interaction_seconds,
        })
        .await?;
    Ok(id)
}

async fn proceed(
    state: &AppState,
    req: ValidatedAuthorize,
    pending: Option<&str>,
    session: Option<&(SessionRecord, Account)>,
    authenticated_after: Option<i64>,
    now: i64,
) -> Result<AuthorizeOutcome, ServiceError> {
    let reachable = match session {
        Some((_, a)) => reachable_mechanism(state, a).await?,
        None => Mechanism::OneFactor,
    };
    let view = session.map(|(s, a)| SessionView { account_as: a.as_level, factors: &s.factors, reachable });
    let mut decision = authorize::decide(&req, view.as_ref(), authenticated_after, now);
    // The citizen's own setting: a second factor at every sign-in, once one is enrolled.
    if let (AuthorizeDecision::Issue { acr, .. }, Some((_, a))) = (&decision, session)
        && a.always_second_factor
        && reachable >= Mechanism::TwoFactor
        && acr.mechanism < Mechanism::TwoFactor
    {
        decision = AuthorizeDecision::Authenticate { mechanism: Mechanism::TwoFactor };
    }
    // The password already given counts toward the step (only the second factor is asked)
    // unless prompt=login or max_age asks for a new one.
    let password_counts = |s: &SessionRecord| {
        s.factors.iter().any(|f| {
            let this_request = authenticated_after.is_some_and(|t| f.at >= t);
            f.method == Method::Password
                && (!req.prompt_login || this_request)
                && req.max_age.is_none_or(|m| f.at >= now - m || this_request)
        })
    };
    let finish = |e: OAuthError| -> Result<AuthorizeOutcome, ServiceError> {
        error_response(state, req.response_mode, &req.redirect_uri, req.state.as_deref(), &e)
    };
    let outcome = match (decision, session) {
        (AuthorizeDecision::Issue { acr, amr, auth_time }, Some((s, a))) => {
            let code = random_token()?;
            let grant = GrantRecord {
                id: Uuid::now_v7(),
                client_id: req.client_id.clone(),
                account_id: Some(a.id),
                session_id: Some(s.id),
                scope: req.scopes.join(" "),
                auth: Some(GrantAuth {
                    acr: acr.to_string(),
                    amr,
                    auth_time,
                    as_level: acr.as_level.number(),
                    mechanism: acr.mechanism.as_str().to_string(),
                }),
                created_at: now,
                expires_at: now + state.config.tokens.refresh_absolute_seconds,
                revoked_at: None,
            };
            let record = AuthCodeRecord {
                code_hash: hash_token(&code),
                grant_id: grant.id,
                data: CodeData {
                    redirect_uri: req.redirect_uri.clone(),
                    nonce: req.nonce.clone(),
                    code_challenge: req.code_challenge.clone(),
                },
                created_at: now,
                expires_at: now + state.config.tokens.code_seconds,
                used_at: None,
            };
            state.store.create_grant_with_code(&grant, &record).await?;
            respond(
                req.response_mode,
                &req.redirect_uri,
                &[("code", Some(&code)), ("state", req.state.as_deref()), ("iss", Some(state.issuer()))],
            )?
        }
        // OIDC Core §3.1.2.1 prompt=none: "The Authorization Server MUST NOT display any
        // authentication or consent user interface pages."
        (AuthorizeDecision::Authenticate { .. }, _) | (AuthorizeDecision::Issue { .. }, None) if req.prompt_none => {
            return finish(OAuthError::login_required("the citizen is not signed in at the required level"));
        }
        (AuthorizeDecision::Authenticate { mechanism }, Some((s, _)))
            if mechanism >= Mechanism::TwoFactor && reachable >= mechanism && password_counts(s) =>
        {
            return Ok(AuthorizeOutcome::SecondFactor { pending: park(state, &req, pending, now).await? });
        }
        (AuthorizeDecision::Authenticate { .. }, _) | (AuthorizeDecision::Issue { .. }, None) => {
            return Ok(AuthorizeOutcome::SignIn { pending: park(state, &req, pending, now).await? });
        }
        (AuthorizeDecision::InsufficientAssurance { required, current }, _) => {
            if req.prompt_none {
                return finish(OAuthError::access_denied(format!(
                    "the account's registration level {current} is below the required {required}"
                )));
            }
            let client_name = state.store.get_client(&req.client_id).await?.map(|c| c.name).unwrap_or_default();
            return Ok(AuthorizeOutcome::Insufficient {
                pending: park(state, &req, pending, now).await?,
                required,
                current,
                client_name,
            });
        }
        (AuthorizeDecision::Unmet { required }, _) => finish(OAuthError::unmet_authentication_requirements(format!(
            "the account has no authenticators that can reach {}",
            required.as_str()
        )))?,
    };
    if let Some(p) = pending {
        state.store.delete_pending_authorization(&hash_token(p)).await?;
    }
    Ok(outcome)
}
