//! The authorization endpoint: `RawAuthorizeRequest` → checks → `ValidatedAuthorize`, then the
//! decision for a given session (issue a code, ask the citizen to sign in, or refuse).
//!
//! Errors before the redirect URI is known to be registered are shown as a page and never
//! redirected (RFC 6749 §4.1.2.1); every later error goes back to the client.

use super::rar::{self, AuthorizationDetail};
use super::{OAuthError, SUPPORTED_SCOPES, pkce};
use crate::assurance::{self, Acr, AsLevel, Mechanism, RequestedAcr, VerifiedFactor};
use crate::model::{ClientKind, ClientRecord};
use crate::policy::{self, PolicySet, StepUpTarget};
use serde::{Deserialize, Serialize};

/// The parameters as received (query string or form body); nothing checked yet.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawAuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub acr_values: Option<String>,
    pub claims: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub response_mode: Option<String>,
    pub ui_locales: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// RFC 9396 rich authorization request: a JSON array.
    pub authorization_details: Option<String>,
}

/// A request that passed every check; safe to store while the citizen signs in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatedAuthorize {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub max_age: Option<i64>,
    pub acr: AcrRequest,
    pub code_challenge: Option<String>,
    pub ui_locales: Option<String>,
    pub login_hint: Option<String>,
    /// How the response goes back; absent in requests parked before form_post existed.
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// Policy actions asked for (`urn:xacthuc:action:<name>` in `acr_values`, and the type of
    /// every authorization detail), each once, in request order.
    #[serde(default)]
    pub actions: Vec<String>,
    /// RFC 9396 details the citizen must see and approve before the code is issued.
    #[serde(default)]
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The account that approved `authorization_details` (set on the parked request).
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// How the authorization response reaches the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (RFC 6749 §4.1.2).
    #[default]
    Query,
    /// An auto-submitted HTML form POSTed to the redirect URI (OAuth 2.0 Form Post Response Mode).
    FormPost,
}

/// The prefix of the `request_uri` values the PAR endpoint hands out (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// What the client asked of the authentication, from `acr_values` and the `claims` parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AcrRequest {
    /// Known level-of-assurance values, in the client's order of preference. Any one of them
    /// satisfies the request.
    pub values: Vec<Acr>,
    /// Requested as an essential claim (OIDC Core §5.5.1.1).
    pub essential: bool,
}

/// Where an authorization error goes.
#[derive(Debug, PartialEq)]
pub enum AuthorizeError {
    /// Unknown client or unregistered redirect URI: shown to the user, never redirected.
    Page(OAuthError),
    /// Sent back to the client's redirect URI with `state`, in the response mode asked for.
    Redirect { redirect_uri: String, state: Option<String>, response_mode: ResponseMode, error: OAuthError },
}

const MAX_PARAM_LEN: usize = 2048;

/// Step 1, before anything else: the client must exist. The caller looks it up by
/// `client_id()` and passes it to [`validate`].
pub fn client_id(raw: &RawAuthorizeRequest) -> Result<&str, AuthorizeError> {
    match raw.client_id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= 255 => Ok(id),
        _ => Err(AuthorizeError::Page(OAuthError::invalid_request("client_id is missing"))),
    }
}

/// How errors go back before `response_mode` is checked: form_post when the client asked for it
/// (OAuth 2.0 Form Post Response Mode §2 covers error responses too), else the query.
fn error_mode(raw: &RawAuthorizeRequest) -> ResponseMode {
    match raw.response_mode.as_deref() {
        Some("form_post") => ResponseMode::FormPost,
        _ => ResponseMode::Query,
    }
}

/// RFC 9126 §4: "Authorization server policy MAY dictate, either globally or on a per-client
/// basis, that PAR be the only means for a client to pass authorization request data. In this
/// case, the authorization server will refuse, using the invalid_request error code, to process
/// any request to the authorization endpoint that does not have a request_uri parameter with a
/// value obtained from the PAR endpoint."
///
/// For a request sent straight to the authorization endpoint (not pushed). The redirect URI is
/// checked first: a registered one gets the error back (the client learns it must push), any
/// other gets a page, as for every authorization error.
pub fn check_par_required(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Result<(), AuthorizeError> {
    if !client.settings.require_par {
        return Ok(());
    }
    let redirect_uri = check_redirect_uri(raw, client).map_err(AuthorizeError::Page)?;
    Err(AuthorizeError::Redirect {
        redirect_uri,
        state: raw.state.clone(),
        response_mode: error_mode(raw),
        error: OAuthError::invalid_request("this client must push its authorization requests (PAR, RFC 9126)"),
    })
}

/// The random part of a `request_uri` handed out by the PAR endpoint; anything else is not one
/// of ours.
pub fn pushed_request_id(request_uri: &str) -> Result<&str, OAuthError> {
    match request_uri.strip_prefix(REQUEST_URI_PREFIX) {
        Some(id) if !id.is_empty() && id.len() <= 256 => Ok(id),
        _ => Err(OAuthError::invalid_request_uri("request_uri was not issued by this provider")),
    }
}

/// A pushed request found under its `request_uri`, about to be used for `client`.
///
/// RFC 9101 §5 (which RFC 9126 §4 builds on): `client_id` "MUST match the request or
/// request_uri Request Object's client_id". RFC 9126 §4: the server "MAY omit validation steps
/// that it performed when the request was pushed, provided that … the authorization server's
/// policy has not been modified in a way that would affect the outcome": the redirect URI, the
/// one check whose failure would send the browser elsewhere, is checked again.
pub fn check_pushed_request(
    req: &ValidatedAuthorize,
    pushed_by: &str,
    client: &ClientRecord,
) -> Result<(), OAuthError> {
    if pushed_by != client.id || req.client_id != client.id {
        return Err(OAuthError::invalid_request_uri("request_uri was issued to another client")
            .with_detail(format!("pushed by {pushed_by}, used by {}", client.id)));
    }
    if !client.redirect_uris.iter().any(|r| r == &req.redirect_uri) {
        return Err(OAuthError::invalid_request_uri("the pushed redirect_uri is no longer registered"));
    }
    Ok(())
}

/// Runs every check in order; the first failure wins.
pub fn validate(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Result<ValidatedAuthorize, AuthorizeError> {
    let redirect_uri = check_redirect_uri(raw, client).map_err(AuthorizeError::Page)?;
    let back = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: raw.state.clone(),
        response_mode: error_mode(raw),
        error,
    };
    check_lengths(raw).map_err(back)?;
    check_request_object(raw).map_err(back)?;
    check_response_type(raw).map_err(back)?;
    let response_mode = check_response_mode(raw).map_err(back)?;
    let scopes = check_scope(raw, client).map_err(back)?;
    let code_challenge = check_pkce(raw, client).map_err(back)?;
    let (prompt_none, prompt_login) = check_prompt(raw).map_err(back)?;
    let max_age = check_max_age(raw).map_err(back)?;
    let acr = check_acr(raw).map_err(back)?;
    let authorization_details = rar::parse(raw.authorization_details.as_deref()).map_err(back)?;
    let actions = check_actions(raw, &authorization_details);
    Ok(ValidatedAuthorize {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        scopes,
        state: raw.state.clone(),
        nonce: raw.nonce.clone().filter(|n| !n.is_empty()),
        prompt_none,
        prompt_login,
        max_age,
        acr,
        code_challenge,
        ui_locales: raw.ui_locales.clone(),
        login_hint: raw.login_hint.clone(),
        response_mode,
        actions,
        authorization_details,
        approved_by: None,
    })
}

/// OIDC Core §3.1.2.1: redirect_uri is REQUIRED and "MUST exactly match one of the Redirection
/// URI values for the Client pre-registered at the OpenID Provider" (simple string comparison).
pub fn check_redirect_uri(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Result<String, OAuthError> {
    let Some(uri) = raw.redirect_uri.as_deref() else {
        return Err(OAuthError::invalid_request("redirect_uri is missing"));
    };
    if client.redirect_uris.iter().any(|r| r == uri) {
        Ok(uri.to_string())
    } else {
        Err(OAuthError::invalid_request("redirect_uri is not registered for this client").with_detail(uri.to_string()))
    }
}

/// Bounds what we store and echo back.
pub fn check_lengths(raw: &RawAuthorizeRequest) -> Result<(), OAuthError> {
    let fields = [
        &raw.state,
        &raw.nonce,
        &raw.scope,
        &raw.acr_values,
        &raw.claims,
        &raw.login_hint,
        &raw.ui_locales,
        &raw.authorization_details,
    ];
    if fields.iter().any(|f| f.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN)) {
        return Err(OAuthError::invalid_request("a parameter is too long"));
    }
    Ok(())
}

/// OIDC Core §6: an OP that does not support request objects returns `request_not_supported`.
/// A `request_uri` from the PAR endpoint is resolved before validation (the pushed request was
/// validated when pushed), so one reaching this check is inside a push, where RFC 9126 §2.1
/// says: "The request_uri authorization request parameter is one exception, and it MUST NOT be
/// provided."
pub fn check_request_object(raw: &RawAuthorizeRequest) -> Result<(), OAuthError> {
    if raw.request.is_some() {
        return Err(OAuthError::request_not_supported("request objects are not supported"));
    }
    if raw.request_uri.is_some() {
        return Err(OAuthError::invalid_request("request_uri must not be sent in a pushed authorization request"));
    }
    Ok(())
}

/// Only the authorization code flow (OIDC Core §3.1): `response_type=code`.
pub fn check_response_type(raw: &RawAuthorizeRequest) -> Result<(), OAuthError> {
    match raw.response_type.as_deref() {
        Some("code") => Ok(()),
        None => Err(OAuthError::invalid_request("response_type is missing")),
        Some(_) => Err(OAuthError::unsupported_response_type("only response_type=code is supported")),
    }
}

/// `query` (the default for `code`, OAuth 2.0 Multiple Response Types §2.1) or `form_post`
/// (OAuth 2.0 Form Post Response Mode §2). `fragment` would put the code where scripts and
/// history can read it; it is not offered.
pub fn check_response_mode(raw: &RawAuthorizeRequest) -> Result<ResponseMode, OAuthError> {
    match raw.response_mode.as_deref() {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(_) => Err(OAuthError::invalid_request("only response_mode=query or form_post is supported")),
    }
}

/// OIDC Core §3.1.2.1: "OpenID Connect requests MUST contain the openid scope value."
/// RFC 6749 §3.3: "The authorization server MAY fully or partially ignore the scope requested by
/// the client, based on the authorization server policy": scopes we do not know and scopes the
/// client is not registered for (`settings.scopes`) are dropped. A client not registered for
/// `openid` cannot make an OpenID Connect request at all.
pub fn check_scope(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = raw.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&"openid") {
        return Err(OAuthError::invalid_scope("the openid scope is required"));
    }
    let allowed = |s: &str| SUPPORTED_SCOPES.contains(&s) && client.settings.scopes.iter().any(|c| c == s);
    if !allowed("openid") {
        return Err(OAuthError::invalid_scope("the client is not registered for the openid scope"));
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in requested {
        if allowed(s) && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    }
    Ok(scopes)
}

/// RFC 7636 and RFC 9700 §2.1.1: public clients MUST use PKCE; confidential clients may.
pub fn check_pkce(raw: &RawAuthorizeRequest, client: &ClientRecord) -> Result<Option<String>, OAuthError> {
    match raw.code_challenge.as_deref() {
        Some(challenge) => {
            pkce::check_challenge(challenge, raw.code_challenge_method.as_deref())?;
            Ok(Some(challenge.to_string()))
        }
        None if client.kind == ClientKind::Public => {
            Err(OAuthError::invalid_request("code_challenge (PKCE, S256) is required for public clients"))
        }
        None if raw.code_challenge_method.is_some() => {
            Err(OAuthError::invalid_request("code_challenge_method without code_challenge"))
        }
        None => Ok(None),
    }
}

/// OIDC Core §3.1.2.1: "If this parameter contains none with any other value, an error is
/// returned." Values we do not know are refused rather than silently ignored.
pub fn check_prompt(raw: &RawAuthorizeRequest) -> Result<(bool, bool), OAuthError> {
    let values: Vec<&str> = raw.prompt.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    let none = values.contains(&"none");
    if none && values.len() > 1 {
        return Err(OAuthError::invalid_request("prompt=none cannot be combined with other values"));
    }
    if let Some(bad) = values.iter().find(|v| !["none", "login", "consent", "select_account"].contains(*v)) {
        return Err(OAuthError::invalid_request(format!("unsupported prompt value {bad}")));
    }
    Ok((none, values.contains(&"login")))
}

/// OIDC Core §3.1.2.1: max_age is a number of seconds.
pub fn check_max_age(raw: &RawAuthorizeRequest) -> Result<Option<i64>, OAuthError> {
    match raw.max_age.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(OAuthError::invalid_request("max_age must be a non-negative integer")),
        },
    }
}

/// `acr_values` (OIDC Core §3.1.2.1) and an `acr` member of `claims.id_token` (§5.5.1.1).
/// "If the acr Claim is requested as an Essential Claim … the Authorization Server MUST treat
/// that as a failed authentication attempt" when it cannot satisfy it: an essential request
/// with no value we know fails here.
pub fn check_acr(raw: &RawAuthorizeRequest) -> Result<AcrRequest, OAuthError> {
    let mut request = AcrRequest::default();
    let add = |values: &mut Vec<Acr>, v: &str| {
        if let RequestedAcr::Loa(acr) = RequestedAcr::parse(v)
            && !values.contains(&acr)
        {
            values.push(acr);
        }
    };
    if let Some(claims) = raw.claims.as_deref().filter(|c| !c.is_empty()) {
        let parsed: serde_json::Value =
            serde_json::from_str(claims).map_err(|_| OAuthError::invalid_request("claims is not valid JSON"))?;
        if !parsed.is_object() {
            return Err(OAuthError::invalid_request("claims must be a JSON object"));
        }
        if let Some(acr) = parsed.get("id_token").and_then(|t| t.get("acr")).filter(|a| !a.is_null()) {
            let essential = acr.get("essential").and_then(|e| e.as_bool()).unwrap_or(false);
            let mut listed: Vec<String> = Vec::new();
            if let Some(v) = acr.get("value").and_then(|v| v.as_str()) {
                listed.push(v.to_string());
            }
            if let Some(vs) = acr.get("values").and_then(|v| v.as_array()) {
                listed.extend(vs.iter().filter_map(|v| v.as_str().map(String::from)));
            }
            for v in &listed {
                add(&mut request.values, v);
            }
            if essential {
                if !listed.is_empty() && request.values.is_empty() {
                    return Err(OAuthError::unmet_authentication_requirements(
                        "none of the essential acr values is supported by this provider",
                    ));
                }
                request.essential = !request.values.is_empty();
            }
        }
    }
    if request.values.is_empty() {
        for v in raw.acr_values.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            add(&mut request.values, v);
        }
    }
    Ok(request)
}

/// The actions a request asks for: `urn:xacthuc:action:<name>` values of `acr_values`, then the
/// type of each authorization detail (a payment's details ask for the `payment` action).
pub fn check_actions(raw: &RawAuthorizeRequest, details: &[AuthorizationDetail]) -> Vec<String> {
    let mut actions: Vec<String> = Vec::new();
    let from_acr = raw.acr_values.as_deref().unwrap_or("").split(' ').filter_map(|v| match RequestedAcr::parse(v) {
        RequestedAcr::Action(a) => Some(a),
        _ => None,
    });
    for a in from_acr.chain(details.iter().map(|d| d.action().to_string())) {
        if !actions.contains(&a) {
            actions.push(a);
        }
    }
    actions
}

/// What the gateway knows of the citizen's current sign-in, for the decision.
#[derive(Clone, Debug)]
pub struct SessionView<'a> {
    /// The account's id, as the approval of authorization details records it.
    pub account_id: String,
    pub account_as: AsLevel,
    pub factors: &'a [VerifiedFactor],
}

#[derive(Clone, Debug, PartialEq)]
pub enum AuthorizeDecision {
    /// The session satisfies the request: issue a code with these values.
    Issue { acr: Acr, amr: Vec<String>, auth_time: i64 },
    /// The citizen must sign in (again) reaching at least `mechanism`: no session, `prompt=login`,
    /// or no factor of the session is fresh enough to build on.
    Authenticate { mechanism: Mechanism },
    /// Signed in, and some factors still count: add what `target` needs (the step-up).
    StepUp { target: StepUpTarget },
    /// The account's registration level is too low: not a step-up (DESIGN.md), the citizen
    /// must raise it first; the client gets `access_denied` naming `rule`.
    InsufficientAssurance { required: AsLevel, current: AsLevel, rule: String },
    /// The citizen must see and approve the authorization details first.
    Approve,
    /// The request cannot be served (an action the client's service does not define).
    Refuse(OAuthError),
}

/// Decides for a validated request under the client's service policy and the current session
/// (`None`: not signed in). `authenticated_after`: the citizen signed in during this very
/// request (so `prompt=login` and `max_age` are satisfied by that sign-in).
///
/// The requirement is the strictest of the service's sign-in rule, every requested action,
/// `acr_values` and an essential `acr` (all in [`policy::decide`]); registration comes first,
/// then the approval of the details, then authentication.
pub fn decide(
    req: &ValidatedAuthorize,
    policies: &PolicySet,
    session: Option<&SessionView<'_>>,
    authenticated_after: Option<i64>,
    now: i64,
) -> AuthorizeDecision {
    let login = policies.for_client(&req.client_id).login.mechanism;
    let want_floor = req.acr.values.iter().map(|a| a.mechanism).min().unwrap_or(login).max(login);
    let Some(s) = session else {
        return AuthorizeDecision::Authenticate { mechanism: want_floor };
    };
    let auth_time = s.factors.iter().map(|f| f.at).max().unwrap_or(0);
    // prompt=login: "The Authorization Server SHOULD prompt the End-User for reauthentication."
    if req.prompt_login && authenticated_after.is_none_or(|t| auth_time < t) {
        return AuthorizeDecision::Authenticate { mechanism: want_floor };
    }
    // max_age: "If the elapsed time is greater than this value, the OP MUST attempt to actively
    // re-authenticate the End-User." A sign-in made during this very request is fresh whatever
    // max_age says, or a small max_age would send the citizen back to the sign-in page in a loop.
    let max_age = req.max_age.map(|m| authenticated_after.map_or(m, |t| m.max(now - t)));
    let (acr_values, essential_acr): (&[Acr], &[Acr]) =
        if req.acr.essential { (&[], &req.acr.values) } else { (&req.acr.values, &[]) };
    let request =
        policy::Request { client_id: &req.client_id, actions: &req.actions, acr_values, essential_acr, max_age, now };
    let view = policy::SessionView { as_level: s.account_as, factors: s.factors };
    let approved = req.authorization_details.is_empty() || req.approved_by.as_deref() == Some(&s.account_id);
    match policy::decide(policies, &request, &view) {
        policy::Decision::Deny { reason: policy::DenyReason::RegistrationTooLow { have, need, rule } } => {
            AuthorizeDecision::InsufficientAssurance { required: need, current: have, rule: rule.to_string() }
        }
        policy::Decision::Deny { reason: reason @ policy::DenyReason::UnknownAction { .. } } => {
            AuthorizeDecision::Refuse(OAuthError::invalid_request(reason.to_string()))
        }
        _ if !approved => AuthorizeDecision::Approve,
        policy::Decision::StepUp { missing } => {
            let Some(target) = StepUpTarget::covering(&missing) else {
                return AuthorizeDecision::Authenticate { mechanism: want_floor };
            };
            let fresh = match target.not_before {
                Some(t) => assurance::fresh_factors(s.factors, t),
                None => s.factors.to_vec(),
            };
            if assurance::mechanism(&fresh).is_none() {
                // Nothing left to build on: a full sign-in, then the step-up if still needed.
                return AuthorizeDecision::Authenticate { mechanism: target.mechanism };
            }
            AuthorizeDecision::StepUp { target }
        }
        policy::Decision::Allow { acr } => {
            let factors = match max_age {
                Some(m) => assurance::fresh_factors(s.factors, now - m),
                None => s.factors.to_vec(),
            };
            AuthorizeDecision::Issue { acr, amr: assurance::amr(&factors), auth_time }
        }
    }
}

#[cfg(test)]
mod tests;
