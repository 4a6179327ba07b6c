//! Logout: ending a browser session everywhere it was used, and RP-initiated logout.
//!
//! - [`end_session`]: the session's grants are revoked with the session, and every client that
//!   registered a `backchannel_logout_uri` gets a logout token (OpenID Connect Back-Channel
//!   Logout 1.0), queued in the store and sent at once.
//! - [`deliver_due`]: sends queued logout tokens; a failed delivery is retried with back-off and
//!   given up (logged and audited) after [`MAX_ATTEMPTS`].
//! - [`end_session_request`]: the end_session_endpoint (RP-Initiated Logout 1.0), deciding
//!   between logging out at once, asking the citizen, or refusing the request.

use super::ServiceError;
use super::token::{pairwise_sid, pairwise_sub};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::crypto::jws;
use crate::crypto::signing::{self, SigningAlg};
use crate::oidc::OAuthError;
use crate::oidc::logout::{self as core, LogoutTokenInput, RawEndSessionRequest};
use crate::store::{LogoutDelivery, SessionRecord};
use std::time::Duration;
use uuid::Uuid;

/// Seconds to wait after the 1st, 2nd, … failed attempt before the next one.
pub const RETRY_DELAYS: [i64; 5] = [30, 120, 600, 3_600, 21_600];
/// Attempts before a delivery is given up: the first and one per retry delay.
pub const MAX_ATTEMPTS: i64 = RETRY_DELAYS.len() as i64 + 1;
/// How long one POST to a portal may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed delivery is reserved for its sender (well above the POST timeout).
const CLAIM_SECONDS: i64 = 60;
/// Deliveries sent per call of [`deliver_due`] (concurrently).
const BATCH: i64 = 50;
/// `next_attempt_at` of a delivery given up: never due again. The store has no separate state
/// for it, and keeps the row (with its `last_error`) for the operator.
const NEVER: i64 = i64::MAX;

/// Ends `session`: builds one logout token per client of the session that has a back-channel
/// logout URI, deletes the session and revokes its grants (audited as `logout` with the number
/// of clients notified), queues the tokens and starts delivering them at once. Returns the number
/// of clients notified (0 when the session was already gone).
pub async fn end_session(state: &AppState, session: &SessionRecord, now: i64) -> Result<usize, ServiceError> {
    let deliveries = logout_deliveries(state, session, now).await?;
    let audit = AuditEvent::new(now, "logout", format!("account:{}", session.account_id))
        .account(session.account_id)
        .detail("session", session.id.to_string())
        .detail("clients_notified", deliveries.len());
    // The tokens are queued in the same transaction that ends the session: a crash cannot
    // end a session and lose its logout tokens.
    if !state.store.delete_session(&session.token_hash, now, &audit, &deliveries).await? {
        // Someone else ended it (another tab): they notify the clients.
        return Ok(0);
    }
    if deliveries.is_empty() {
        return Ok(0);
    }
    let notified = deliveries.len();
    // Portals should learn quickly; the periodic `deliver_due` picks up whatever this misses.
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = deliver(&state, deliveries, now).await {
            tracing::warn!(error = %e, "recording a logout delivery failed");
        }
    });
    Ok(notified)
}

/// One delivery per client (not per grant) with a back-channel logout URI. Their first "retry"
/// is due only after [`RETRY_DELAYS`]`[0]`, so the periodic sender leaves them to the immediate
/// attempt of [`end_session`] unless that never happened.
async fn logout_deliveries(
    state: &AppState,
    session: &SessionRecord,
    now: i64,
) -> Result<Vec<LogoutDelivery>, ServiceError> {
    let mut client_ids: Vec<String> = Vec::new();
    for grant in state.store.list_session_grants(session.id).await? {
        if !client_ids.contains(&grant.client_id) {
            client_ids.push(grant.client_id);
        }
    }
    let mut deliveries = Vec::new();
    for client_id in client_ids {
        let Some(client) = state.store.get_client(&client_id).await? else { continue };
        let Some(uri) = client.settings.backchannel_logout_uri.clone().filter(|u| !u.is_empty()) else { continue };
        let jti = Uuid::new_v4().to_string();
        let claims = core::logout_token_claims(&LogoutTokenInput {
            issuer: state.issuer(),
            client_id: &client.id,
            sub: &pairwise_sub(state, &client.id, &session.account_id),
            sid: &pairwise_sid(state, &client.id, &session.id),
            jti: &jti,
            issued_at: now,
        });
        // Signing cannot fail for a configured key; if it does, the sign-out still happens.
        let token = match sign(state, &client.id_token_alg, &claims, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(client = %client.id, error = %e, "cannot sign a logout token; client not notified");
                continue;
            }
        };
        deliveries.push(LogoutDelivery {
            id: Uuid::now_v7(),
            client_id: client.id.clone(),
            uri,
            token,
            attempts: 0,
            // Due at once: the immediate sender claims it; whoever claims first sends it.
            next_attempt_at: now,
            created_at: now,
            delivered_at: None,
            last_error: None,
        });
    }
    Ok(deliveries)
}

/// Signs logout token claims with the current key for `alg` (the client's ID token algorithm).
fn sign(state: &AppState, alg: &str, claims: &serde_json::Value, now: i64) -> Result<String, ServiceError> {
    let alg: SigningAlg = alg.parse().map_err(ServiceError::internal)?;
    let key =
        state.keys.signing_key(alg, now).ok_or_else(|| ServiceError::Internal(format!("no {alg} signing key")))?;
    signing::sign_jwt(&key, core::LOGOUT_TOKEN_TYP, claims).map_err(ServiceError::internal)
}

/// What one call of [`deliver_due`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retrying: usize,
    pub given_up: usize,
}

/// Sends the logout tokens due at `now` (at most a batch per call), records each attempt, and
/// schedules retries or gives up.
pub async fn deliver_due(state: &AppState, now: i64) -> Result<DeliveryReport, ServiceError> {
    let due = state.store.due_logout_deliveries(now, BATCH).await?;
    deliver(state, due, now).await
}

async fn deliver(state: &AppState, deliveries: Vec<LogoutDelivery>, now: i64) -> Result<DeliveryReport, ServiceError> {
    let mut tasks = tokio::task::JoinSet::new();
    for d in deliveries {
        let state = state.clone();
        tasks.spawn(async move {
            // Several instances (and the immediate sender) may see the same due delivery: only
            // the one that claims it sends it.
            if !state.store.claim_logout_delivery(d.id, now, now + CLAIM_SECONDS).await? {
                return Ok(Settled::Skipped);
            }
            let result = post(&state, &d, now).await;
            settle(&state, &d, result, now).await
        });
    }
    let mut report = DeliveryReport::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(ServiceError::internal).and_then(|r| r) {
            Ok(Settled::Delivered) => report.delivered += 1,
            Ok(Settled::Retrying) => report.retrying += 1,
            Ok(Settled::GivenUp) => report.given_up += 1,
            Ok(Settled::Skipped) => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Back-Channel Logout 1.0 §2.5: an HTTP POST to the registered back-channel logout URI, the
/// token in the `logout_token` parameter of an application/x-www-form-urlencoded body. §2.8: "If
/// the logout succeeded, the RP MUST respond with HTTP 200 OK", and some frameworks answer 204.
/// Anything else (a redirect included: the client follows none) is a failure.
async fn post(state: &AppState, d: &LogoutDelivery, now: i64) -> Result<(), String> {
    let token = fresh_token(state, &d.token, now)?;
    let response = state
        .http
        .post(&d.uri)
        .timeout(DELIVERY_TIMEOUT)
        .form(&[("logout_token", token)])
        .send()
        .await
        .map_err(|e| describe(&e.without_url()))?;
    match response.status().as_u16() {
        200 | 204 => Ok(()),
        status => Err(format!("HTTP {status}")),
    }
}

/// The error and its causes ("error sending request: … connection refused"), for the log and
/// `last_error`.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The queued token if it has most of its life left, else the same claims re-dated and signed
/// with the current key of its algorithm (a retry hours later must not be expired).
fn fresh_token(state: &AppState, stored: &str, now: i64) -> Result<String, String> {
    let (header, claims) = jws::peek(stored).map_err(|e| format!("stored logout token: {e}"))?;
    let exp = claims.get("exp").and_then(|e| e.as_i64()).unwrap_or(0);
    if exp - now >= core::LOGOUT_TOKEN_SECONDS / 2 {
        return Ok(stored.to_string());
    }
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or_default();
    let claims = core::renew_logout_token_claims(&claims, now).map_err(|e: OAuthError| e.description)?;
    sign(state, alg, &claims, now).map_err(|e| e.to_string())
}

enum Settled {
    /// Claimed by someone else.
    Skipped,
    Delivered,
    Retrying,
    GivenUp,
}

async fn settle(
    state: &AppState,
    d: &LogoutDelivery,
    result: Result<(), String>,
    now: i64,
) -> Result<Settled, ServiceError> {
    let attempts = d.attempts + 1;
    let store = &state.store;
    match result {
        Ok(()) => {
            store.record_logout_attempt(d.id, Some(now), None, d.next_attempt_at, None).await?;
            Ok(Settled::Delivered)
        }
        Err(error) if attempts >= MAX_ATTEMPTS => {
            tracing::warn!(client = %d.client_id, delivery = %d.id, attempts, %error, "back-channel logout delivery given up");
            let audit = AuditEvent::new(now, "logout.delivery_failed", "system")
                .client(&d.client_id)
                .detail("delivery", d.id.to_string())
                .detail("attempts", attempts)
                .detail("error", &error);
            store.record_logout_attempt(d.id, None, Some(&error), NEVER, Some(&audit)).await?;
            Ok(Settled::GivenUp)
        }
        Err(error) => {
            let delay = RETRY_DELAYS.get((attempts - 1) as usize).copied().unwrap_or(RETRY_DELAYS[0]);
            tracing::info!(client = %d.client_id, delivery = %d.id, attempts, %error, retry_in = delay, "back-channel logout delivery failed");
            store.record_logout_attempt(d.id, None, Some(&error), now + delay, None).await?;
            Ok(Settled::Retrying)
        }
    }
}

/// What the end_session_endpoint does with a request.
#[derive(Debug)]
pub enum EndSessionOutcome {
    /// RP-Initiated Logout §4: "When the OP detects errors in the RP-Initiated Logout request, the
    /// OP MUST NOT perform post-logout redirection": a page, nothing else done.
    ErrorPage(OAuthError),
    /// Ask the citizen first (a form that posts the same parameters back with `confirm`).
    Confirm { client_name: Option<String> },
    /// Signed out (or was not signed in); go to the RP's post-logout URI (with `state`) if any.
    LoggedOut { redirect: Option<String> },
}

/// RP-Initiated Logout 1.0 at the end_session_endpoint. `session` is the browser's current
/// session; `confirmed` is true when the citizen answered the confirmation form (its CSRF token
/// already checked by the caller).
pub async fn end_session_request(
    state: &AppState,
    raw: &RawEndSessionRequest,
    session: Option<&SessionRecord>,
    confirmed: bool,
    now: i64,
) -> Result<EndSessionOutcome, ServiceError> {
    let jwks = state.keys.jwks();
    let checked = match core::check(raw, &jwks, state.issuer()) {
        Ok(c) => c,
        Err(e) => return Ok(EndSessionOutcome::ErrorPage(e)),
    };
    let client = match &checked.client_id {
        Some(id) => match state.store.get_client(id).await? {
            Some(c) => Some(c),
            None => return Ok(EndSessionOutcome::ErrorPage(OAuthError::invalid_request("unknown client"))),
        },
        None => None,
    };
    let redirect = match core::check_post_logout_redirect_uri(raw.post_logout_redirect_uri.as_deref(), client.as_ref())
    {
        Ok(uri) => uri.map(|u| core::redirect_target(&u, checked.state.as_deref())),
        Err(e) => return Ok(EndSessionOutcome::ErrorPage(e)),
    };
    let Some(session) = session else {
        return Ok(EndSessionOutcome::LoggedOut { redirect });
    };
    let session_sid = checked.hint.as_ref().map(|h| pairwise_sid(state, &h.client_id, &session.id));
    if !confirmed && core::must_confirm(checked.hint.as_ref(), session_sid.as_deref()) {
        return Ok(EndSessionOutcome::Confirm { client_name: client.map(|c| c.name) });
    }
    end_session(state, session, now).await?;
    Ok(EndSessionOutcome::LoggedOut { redirect })
}
