//! The authorization endpoint's use case: validate, decide for the current session, then issue
//! a code, park the request while the citizen signs in, or refuse.

use super::{ServiceError, random_token};
use crate::app::AppState;
use crate::assurance::{AsLevel, Mechanism};
use crate::audit::AuditEvent;
use crate::crypto::random::hash_token;
use crate::oidc::OAuthError;
use crate::oidc::authorize::{
    self, AuthorizeDecision, AuthorizeError, RawAuthorizeRequest, ResponseMode, SessionView, ValidatedAuthorize,
};
use crate::oidc::rar::{self, AuthorizationDetail};
use crate::policy::StepUpTarget;
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
    /// Signed in; the request needs more factors (the second step, or a step-up).
    SecondFactor { pending: String },
    /// Signed in; the citizen must see and approve the authorization details.
    Approve { pending: String },
    /// The account's registration level is too low; explain how to raise it.
    Insufficient { pending: String, required: AsLevel, current: AsLevel, client_name: String },
}

/// What the sign-in page shows about the waiting request.
pub struct PendingInfo {
    pub client_name: String,
    pub ui_locales: Option<String>,
    pub login_hint: Option<String>,
    pub required: Option<Mechanism>,
    /// The service the client acts for, from the policies.
    pub service_name: Option<String>,
    /// Policy actions asked for.
    pub actions: Vec<String>,
    pub details: Vec<AuthorizationDetail>,
}

/// What a step-up page needs: why, and what would do.
pub struct StepUpInfo {
    pub pending: PendingInfo,
    /// What the session must reach; `None` when the request needs nothing more now.
    pub target: Option<StepUpTarget>,
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
    if raw.request_uri.is_some() && raw.authorization_details.is_some() {
        // The pushed request fixes the transaction (RFC 9396 §6.1 with RFC 9126): details in the
        // URL beside it are an attempt to change what the citizen approves.
        return Ok(AuthorizeOutcome::ErrorPage(crate::oidc::rar::invalid(
            "authorization_details must be pushed with the request, not added to the request_uri",
        )));
    }
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
    Ok(Some(info(state, &req).await?))
}

async fn info(state: &AppState, req: &ValidatedAuthorize) -> Result<PendingInfo, ServiceError> {
    let client_name = state.store.get_client(&req.client_id).await?.map(|c| c.name).unwrap_or_default();
    let policies = state.policies();
    Ok(PendingInfo {
        client_name,
        ui_locales: req.ui_locales.clone(),
        login_hint: req.login_hint.clone(),
        required: req.acr.values.iter().map(|a| a.mechanism).min(),
        service_name: policies.for_client(&req.client_id).service.map(|s| s.name.clone()),
        actions: req.actions.clone(),
        details: req.authorization_details.clone(),
    })
}

fn view(session: &(SessionRecord, Account)) -> SessionView<'_> {
    let (s, a) = session;
    SessionView { account_id: a.id.to_string(), account_as: a.as_level, factors: &s.factors }
}

/// The step-up page's view of a parked request for the signed-in citizen.
pub async fn step_up_info(
    state: &AppState,
    pending: &str,
    session: &(SessionRecord, Account),
    now: i64,
) -> Result<Option<StepUpInfo>, ServiceError> {
    let Some((req, created_at)) = load_pending(state, pending, now).await? else {
        return Ok(None);
    };
    let policies = state.policies();
    let target = match authorize::decide(&req, &policies, Some(&view(session)), Some(created_at), now) {
        AuthorizeDecision::StepUp { target } => Some(target),
        _ => None,
    };
    Ok(Some(StepUpInfo { pending: info(state, &req).await?, target }))
}

/// The authorization details of a parked request as the tokens will carry them, if it has any:
/// what a certificate signature of its step-up must cover (dynamic linking).
pub async fn transaction(state: &AppState, pending: &str, now: i64) -> Result<Option<serde_json::Value>, ServiceError> {
    Ok(load_pending(state, pending, now)
        .await?
        .filter(|(req, _)| !req.authorization_details.is_empty())
        .map(|(req, _)| rar::to_json(&req.authorization_details)))
}

/// The citizen approves the authorization details of a parked request; then it goes on.
pub async fn approve(
    state: &AppState,
    pending: &str,
    session: &(SessionRecord, Account),
    now: i64,
) -> Result<Option<AuthorizeOutcome>, ServiceError> {
    let Some((mut req, _)) = load_pending(state, pending, now).await? else {
        return Ok(None);
    };
    let account = &session.1;
    req.approved_by = Some(account.id.to_string());
    let audit = AuditEvent::new(now, "authorize.details_approved", format!("account:{}", account.id))
        .account(account.id)
        .detail("client", req.client_id.clone())
        .detail("authorization_details", rar::to_json(&req.authorization_details));
    let json = serde_json::to_string(&req).map_err(ServiceError::internal)?;
    if !state.store.approve_pending_authorization(&hash_token(pending), &json, now, &audit).await? {
        return Ok(None);
    }
    resume(state, pending, Some(session), now).await
}

/// Why the request is refused for too low a registration level, for the portal's
/// `error_description`; `None` when it is not (any more).
pub async fn insufficiency(
    state: &AppState,
    pending: &str,
    session: Option<&(SessionRecord, Account)>,
    now: i64,
) -> Result<Option<String>, ServiceError> {
    let (Some((req, created_at)), Some(session)) = (load_pending(state, pending, now).await?, session) else {
        return Ok(None);
    };
    let policies = state.policies();
    Ok(match authorize::decide(&req, &policies, Some(&view(session)), Some(created_at), now) {
        AuthorizeDecision::InsufficientAssurance { required, current, rule } => Some(format!(
            "the account's registration level {current} is below {required}, required by {rule}{}",
            policies
                .for_client(&req.client_id)
                .service
                .map(|s| format!(" of the service {:?}", s.name))
                .unwrap_or_default()
        )),
        _ => None,
    })
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
    let policies = state.policies();
    let session_view = session.map(view);
    let mut decision = authorize::decide(&req, &policies, session_view.as_ref(), authenticated_after, now);
    let reachable = match session {
        Some((_, a)) => reachable_mechanism(state, a).await?,
        None => Mechanism::OneFactor,
    };
    // The citizen's own setting: a second factor at every sign-in, once one is enrolled.
    if let (AuthorizeDecision::Issue { acr, .. }, Some((_, a))) = (&decision, session)
        && a.always_second_factor
        && reachable >= Mechanism::TwoFactor
        && acr.mechanism < Mechanism::TwoFactor
    {
        decision = AuthorizeDecision::StepUp {
            target: StepUpTarget { mechanism: Mechanism::TwoFactor, kinds: Vec::new(), not_before: None },
        };
    }
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
                    authorization_details: (!req.authorization_details.is_empty())
                        .then(|| rar::to_json(&req.authorization_details)),
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
        (AuthorizeDecision::Refuse(e), _) => finish(e)?,
        // OIDC Core §3.1.2.1 prompt=none: "The Authorization Server MUST NOT display any
        // authentication or consent user interface pages."
        (AuthorizeDecision::Authenticate { .. } | AuthorizeDecision::StepUp { .. }, _)
        | (AuthorizeDecision::Issue { .. }, None)
            if req.prompt_none =>
        {
            finish(OAuthError::login_required("the citizen is not signed in at the required level"))?
        }
        (AuthorizeDecision::Approve, _) if req.prompt_none => {
            finish(OAuthError::interaction_required("the citizen must approve the authorization details"))?
        }
        (AuthorizeDecision::StepUp { target }, Some((_, a))) => {
            if let Some(unmet) = unreachable(state, a, &target, reachable).await? {
                finish(OAuthError::unmet_authentication_requirements(unmet))?
            } else {
                return Ok(AuthorizeOutcome::SecondFactor { pending: park(state, &req, pending, now).await? });
            }
        }
        (AuthorizeDecision::Approve, Some(_)) => {
            return Ok(AuthorizeOutcome::Approve { pending: park(state, &req, pending, now).await? });
        }
        (AuthorizeDecision::Authenticate { .. } | AuthorizeDecision::StepUp { .. } | AuthorizeDecision::Approve, _)
        | (AuthorizeDecision::Issue { .. }, None) => {
            return Ok(AuthorizeOutcome::SignIn { pending: park(state, &req, pending, now).await? });
        }
        (AuthorizeDecision::InsufficientAssurance { required, current, rule }, _) => {
            if req.prompt_none {
                return finish(OAuthError::access_denied(format!(
                    "the account's registration level {current} is below {required}, required by {rule}"
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
    };
    if let Some(p) = pending {
        state.store.delete_pending_authorization(&hash_token(p)).await?;
    }
    Ok(outcome)
}

/// Why the account cannot reach `target` with what it has enrolled, if it cannot: a step-up
/// page it could never complete is worse than a clear error to the portal.
async fn unreachable(
    state: &AppState,
    account: &Account,
    target: &StepUpTarget,
    reachable: Mechanism,
) -> Result<Option<String>, ServiceError> {
    // A required certificate the account can present is a second factor beside the password,
    // even when none is enrolled (matched by the ID number when signed).
    let certificate = target.kinds.contains(&crate::policy::FactorKind::Certificate)
        && account.password_hash.is_some()
        && super::second_factor::can_present(state, account, crate::policy::FactorKind::Certificate).await?;
    let reachable = if certificate { reachable.max(Mechanism::TwoFactor) } else { reachable };
    if reachable < target.mechanism {
        return Ok(Some(format!("the account has no authenticators that can reach {}", target.mechanism.as_str())));
    }
    for kind in &target.kinds {
        if !super::second_factor::can_present(state, account, *kind).await? {
            return Ok(Some(format!("the account has no authenticator of the kind {kind}")));
        }
    }
    Ok(None)
}
