//! The token endpoint and its companions: client authentication (shared by token, PAR,
//! introspection and revocation), the authorization_code, refresh_token and client_credentials
//! grants, access tokens (opaque or RFC 9068 JWT), introspection (RFC 7662) and revocation
//! (RFC 7009).

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::crypto::random::{constant_time_eq, hash_token};
use crate::crypto::signing::{self, SigningAlg};
use crate::oidc::client_auth::{self, Presented};
use crate::oidc::token::{self, Grant, TokenHintRequest, TokenRequest, TokenResponse};
use crate::oidc::{OAuthError, id_token};
use crate::store::{
    AccessTokenFormat, AccessTokenRecord, Account, AccountStatus, ClientRecord, ConsumedCode, ConsumedRefresh,
    GrantAuth, GrantRecord, RefreshTokenRecord,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// Client secrets are generated high-entropy values, so a SHA-256 hash suffices to store them
/// (no stretching needed); comparison is constant-time.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_token(presented).as_bytes(), stored_hash.as_bytes())
}

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::server_error("internal error").with_detail(e.to_string())
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        match e {
            // The hashing pool is full: retry later (503, `Retry-After` in `http::error`).
            ServiceError::Busy => OAuthError::temporarily_unavailable("the server is busy; retry shortly"),
            e => internal(e),
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        internal(e)
    }
}

/// The pairwise subject of an account at a client (OIDC Core §8.1), sector = client id.
pub fn pairwise_sub(state: &AppState, client_id: &str, account_id: &Uuid) -> String {
    state.data_key.pairwise_subject(client_id, &account_id.to_string())
}

/// The session id as one client sees it: pairwise too, so `sid` cannot join users either.
pub fn pairwise_sid(state: &AppState, client_id: &str, session_id: &Uuid) -> String {
    state.data_key.pairwise_subject(&format!("sid:{client_id}"), &session_id.to_string())
}

/// Credentials as they arrived at an endpoint.
pub struct ClientCredentials<'a> {
    pub authorization: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub assertion_type: Option<&'a str>,
    pub assertion: Option<&'a str>,
}

/// Authenticates the client calling `endpoint` (its URL is an accepted `aud` of a
/// `private_key_jwt` assertion, as is the issuer).
pub async fn authenticate_client(
    state: &AppState,
    creds: &ClientCredentials<'_>,
    endpoint: &str,
    now: i64,
) -> Result<ClientRecord, OAuthError> {
    let presented = client_auth::extract(
        creds.authorization,
        creds.client_id,
        creds.client_secret,
        (creds.assertion_type, creds.assertion),
    )?;
    let client = state
        .store
        .get_client(presented.client_id())
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    client_auth::check(&client, &presented, secret_matches)?;
    if let Presented::PrivateKeyJwt { assertion, .. } = &presented {
        let jwks = client.settings.jwks.as_ref().ok_or_else(|| OAuthError::invalid_client("no keys registered"))?;
        let claims = crate::crypto::jws::verify(assertion, jwks).map_err(|e| {
            OAuthError::invalid_client("client_assertion signature is not valid").with_detail(e.to_string())
        })?;
        let token_endpoint = format!("{}/token", state.issuer());
        let audiences = [endpoint, token_endpoint.as_str(), state.issuer()];
        let (jti, exp) = client_auth::check_assertion(&claims, &client.id, &audiences, now)?;
        if !state.store.record_client_assertion(&client.id, &jti, exp).await? {
            return Err(OAuthError::invalid_client("client_assertion was already used (jti replay)"));
        }
    }
    Ok(client)
}

pub async fn exchange(
    state: &AppState,
    authorization: Option<&str>,
    req: &TokenRequest,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    // A request without a usable grant is malformed whoever sent it (RFC 6749 §5.2).
    let grant = token::check_grant_type(req)?;
    let creds = ClientCredentials {
        authorization,
        client_id: req.client_id.as_deref(),
        client_secret: req.client_secret.as_deref(),
        assertion_type: req.client_assertion_type.as_deref(),
        assertion: req.client_assertion.as_deref(),
    };
    let client = authenticate_client(state, &creds, &format!("{}/token", state.issuer()), now).await?;
    // RFC 6749 §5.2 unauthorized_client: "not authorized to use this authorization grant type".
    if !client.settings.allows_grant(grant.name()) {
        return Err(OAuthError::unauthorized_client(format!("the client may not use {}", grant.name())));
    }
    let name = grant.name();
    let issued = match grant {
        Grant::AuthorizationCode { code } => authorization_code(state, &client, req, code, now).await,
        Grant::RefreshToken { token } => refresh(state, &client, req, token, now).await,
        Grant::ClientCredentials => client_credentials(state, &client, req, now).await,
    };
    if issued.is_ok() {
        state.metrics.tokens_issued.get_or_create(&crate::metrics::Grant { grant_type: name }).inc();
    }
    issued
}

async fn active_account(state: &AppState, grant: &GrantRecord) -> Result<Account, OAuthError> {
    let id = grant.account_id.ok_or_else(|| OAuthError::invalid_grant("the grant has no account"))?;
    state
        .store
        .get_account(id)
        .await?
        .filter(|a| a.status == AccountStatus::Active)
        .ok_or_else(|| OAuthError::invalid_grant("the account is not active"))
}

async fn authorization_code(
    state: &AppState,
    client: &ClientRecord,
    req: &TokenRequest,
    code: &str,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let (code, grant) = match state.store.consume_auth_code(&hash_token(code), now).await? {
        ConsumedCode::Fresh(c, g) => (c, g),
        ConsumedCode::AlreadyUsed(_, g) => {
            // RFC 6749 §4.1.2: "If an authorization code is used more than once, the
            // authorization server MUST deny the request and SHOULD revoke (when possible) all
            // tokens previously issued based on that authorization code."
            revoke(state, &g, "token.code_replayed", now).await?;
            return Err(OAuthError::invalid_grant("the code was already used; its tokens are revoked"));
        }
        ConsumedCode::NotFound => return Err(OAuthError::invalid_grant("unknown code")),
    };
    token::check_code(&code, &grant, &client.id, req, now)?;
    let account = active_account(state, &grant).await?;
    let scopes: Vec<&str> = grant.scope.split(' ').collect();
    // An approved transaction (authorization details) is a one-off: its access token is not
    // renewable, so the step-up it took cannot be stretched over hours by refreshing.
    let one_off = grant.auth.as_ref().is_some_and(|a| a.authorization_details.is_some());
    let with_refresh = client.settings.allows_grant("refresh_token")
        && (scopes.contains(&"offline_access") || client.settings.always_refresh)
        && !one_off;
    issue(state, client, &grant, Some(&account), &grant.scope, code.data.nonce.as_deref(), with_refresh, now).await
}

async fn refresh(
    state: &AppState,
    client: &ClientRecord,
    req: &TokenRequest,
    token: &str,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let (record, grant) = match state.store.consume_refresh_token(&hash_token(token), now).await? {
        ConsumedRefresh::Fresh(r, g) => (r, g),
        ConsumedRefresh::AlreadyUsed(_, g) => {
            // RFC 9700 §4.14.2: a rotated refresh token used again means it leaked; revoke the
            // whole grant, so neither the attacker nor the client keeps access.
            if g.client_id == client.id {
                revoke(state, &g, "token.refresh_reused", now).await?;
            }
            return Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"));
        }
        ConsumedRefresh::NotFound => return Err(OAuthError::invalid_grant("unknown refresh token")),
    };
    token::check_refresh(&record, &grant, &client.id, now)?;
    let account = active_account(state, &grant).await?;
    let granted: Vec<&str> = grant.scope.split(' ').collect();
    let scope = token::narrow_scope(req.scope.as_deref(), &granted)?.join(" ");
    // OIDC Core §12.2: the refreshed ID token keeps iss, sub, aud, auth_time, acr and amr, and
    // carries no nonce.
    issue(state, client, &grant, Some(&account), &scope, None, true, now).await
}

async fn client_credentials(
    state: &AppState,
    client: &ClientRecord,
    req: &TokenRequest,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
    if client.kind != crate::store::ClientKind::Confidential {
        return Err(OAuthError::unauthorized_client("client_credentials needs a confidential client"));
    }
    // No user is involved: user scopes (openid, profile…) make no sense here.
    let allowed: Vec<&str> = client
        .settings
        .scopes
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !crate::oidc::SUPPORTED_SCOPES.contains(s))
        .collect();
    let scope = token::narrow_scope(req.scope.as_deref().or(Some("")), &allowed)?.join(" ");
    let grant = GrantRecord {
        id: Uuid::now_v7(),
        client_id: client.id.clone(),
        account_id: None,
        session_id: None,
        scope: scope.clone(),
        auth: None,
        created_at: now,
        expires_at: now + access_seconds(state, client),
        revoked_at: None,
    };
    state.store.create_grant(&grant).await?;
    issue(state, client, &grant, None, &scope, None, false, now).await
}

fn access_seconds(state: &AppState, client: &ClientRecord) -> i64 {
    client.settings.access_token_seconds.unwrap_or(state.config.tokens.access_token_seconds)
}

fn signing_key(
    state: &AppState,
    client: &ClientRecord,
    now: i64,
) -> Result<std::sync::Arc<signing::SigningKey>, OAuthError> {
    let alg: SigningAlg = client
        .id_token_alg
        .parse()
        .map_err(|_| internal(format!("client {} has an unknown id_token_alg", client.id)))?;
    state.keys.signing_key(alg, now).ok_or_else(|| internal(format!("no {alg} signing key")))
}

/// Issues an access token (and an ID token when there is an account and `openid` is in scope,
/// and a rotated refresh token when asked) for `grant`.
#[allow(clippy::too_many_arguments)]
async fn issue(
    state: &AppState,
    client: &ClientRecord,
    grant: &GrantRecord,
    account: Option<&Account>,
    scope: &str,
    nonce: Option<&str>,
    with_refresh: bool,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let key = &signing_key(state, client, now)?;
    let expires_in = access_seconds(state, client).min((grant.expires_at - now).max(1));
    let sub = match account {
        Some(a) => pairwise_sub(state, &client.id, &a.id),
        None => client.id.clone(),
    };
    let access_token = match client.settings.access_token_format {
        AccessTokenFormat::Opaque => super::random_token()?,
        AccessTokenFormat::Jwt => {
            // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; plus the authentication
            // information of §2.2.1 (auth_time, acr, amr) when a user is involved.
            let mut claims = json!({
                "iss": state.issuer(),
                "aud": state.issuer(),
                "sub": sub,
                "client_id": client.id,
                "scope": scope,
                "iat": now,
                "exp": now + expires_in,
                "jti": Uuid::new_v4().to_string(),
            });
            if let Some(auth) = &grant.auth {
                claims["auth_time"] = auth.auth_time.into();
                claims["acr"] = auth.acr.clone().into();
                claims["amr"] = json!(auth.amr);
                claims["as_level"] = auth.as_level.into();
                if let Some(details) = &auth.authorization_details {
                    claims["authorization_details"] = details.clone();
                }
            }
            signing::sign_jwt(key, "at+jwt", &claims).map_err(internal)?
        }
    };
    state
        .store
        .create_access_token(&AccessTokenRecord {
            token_hash: hash_token(&access_token),
            grant_id: grant.id,
            scope: scope.to_string(),
            created_at: now,
            expires_at: now + expires_in,
        })
        .await?;
    let refresh_token = if with_refresh && grant.account_id.is_some() {
        let token = super::random_token()?;
        let sliding = client.settings.refresh_token_seconds.unwrap_or(state.config.tokens.refresh_token_seconds);
        state
            .store
            .create_refresh_token(&RefreshTokenRecord {
                token_hash: hash_token(&token),
                grant_id: grant.id,
                created_at: now,
                expires_at: (now + sliding).min(grant.expires_at),
                used_at: None,
            })
            .await?;
        Some(token)
    } else {
        None
    };
    let id_token = match (account, &grant.auth, scope.split(' ').any(|s| s == "openid")) {
        (Some(a), Some(auth), true) => {
            let verified = if scope.split(' ').any(|s| s == "verification") {
                super::proofing::verified_claims(state, a).await.map_err(internal)?
            } else {
                None
            };
            Some(sign_id_token(state, client, key, grant, auth, &sub, nonce, &access_token, verified, now)?)
        }
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in,
        id_token,
        refresh_token,
        scope: scope.to_string(),
        authorization_details: grant.auth.as_ref().and_then(|a| a.authorization_details.clone()),
    })
}

#[allow(clippy::too_many_arguments)]
fn sign_id_token(
    state: &AppState,
    client: &ClientRecord,
    key: &signing::SigningKey,
    grant: &GrantRecord,
    auth: &GrantAuth,
    sub: &str,
    nonce: Option<&str>,
    access_token: &str,
    verified_claims: Option<serde_json::Value>,
    now: i64,
) -> Result<String, OAuthError> {
    let sid = grant.session_id.map(|s| pairwise_sid(state, &client.id, &s)).unwrap_or_default();
    let lifetime = client.settings.id_token_seconds.unwrap_or(state.config.tokens.id_token_seconds);
    id_token::sign(
        key,
        &id_token::IdTokenInput {
            issuer: state.issuer(),
            client_id: &client.id,
            subject: sub,
            nonce,
            auth_time: auth.auth_time,
            acr: &auth.acr,
            amr: &auth.amr,
            as_level: auth.as_level,
            mechanism: &auth.mechanism,
            sid: &sid,
            issued_at: now,
            expires_at: now + lifetime,
            access_token,
            verified_claims,
        },
    )
}

async fn revoke(state: &AppState, grant: &GrantRecord, kind: &str, now: i64) -> Result<(), OAuthError> {
    let mut audit = AuditEvent::new(now, kind, format!("client:{}", grant.client_id))
        .client(&grant.client_id)
        .detail("grant", grant.id.to_string());
    if let Some(a) = grant.account_id {
        audit = audit.account(a);
    }
    state.store.revoke_grant(grant.id, now, &audit).await?;
    Ok(())
}

/// A token found by introspection or revocation.
enum Found {
    Access(AccessTokenRecord, GrantRecord),
    Refresh(RefreshTokenRecord, GrantRecord),
}

async fn find(state: &AppState, token: &str, hint: Option<&str>) -> Result<Option<Found>, OAuthError> {
    let hash = hash_token(token);
    // RFC 7009 §2.1 / RFC 7662 §2.1: the hint speeds the look-up; a wrong hint still finds it.
    let refresh_first = hint == Some("refresh_token");
    for refresh in [refresh_first, !refresh_first] {
        if refresh {
            if let Some((t, g)) = state.store.find_refresh_token(&hash).await? {
                return Ok(Some(Found::Refresh(t, g)));
            }
        } else if let Some((t, g)) = state.store.find_access_token(&hash).await? {
            return Ok(Some(Found::Access(t, g)));
        }
    }
    Ok(None)
}

fn hint_credentials<'a>(authorization: Option<&'a str>, req: &'a TokenHintRequest) -> ClientCredentials<'a> {
    ClientCredentials {
        authorization,
        client_id: req.client_id.as_deref(),
        client_secret: req.client_secret.as_deref(),
        assertion_type: req.client_assertion_type.as_deref(),
        assertion: req.client_assertion.as_deref(),
    }
}

/// RFC 7662: whether a token is active, and what it stands for. Only the client the token was
/// issued to learns anything; for any other client every token is inactive.
pub async fn introspect(
    state: &AppState,
    authorization: Option<&str>,
    req: &TokenHintRequest,
    now: i64,
) -> Result<Value, OAuthError> {
    let client = authenticate_client(
        state,
        &hint_credentials(authorization, req),
        &format!("{}/introspect", state.issuer()),
        now,
    )
    .await?;
    let token = req
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let inactive = json!({ "active": false });
    let Some(found) = find(state, token, req.token_type_hint.as_deref()).await? else {
        return Ok(inactive);
    };
    let (grant, exp, iat, scope, token_type) = match &found {
        Found::Access(t, g) => (g, t.expires_at, t.created_at, t.scope.clone(), "Bearer"),
        Found::Refresh(t, g) => (g, t.expires_at.min(g.expires_at), t.created_at, g.scope.clone(), "refresh_token"),
    };
    let used = matches!(&found, Found::Refresh(t, _) if t.used_at.is_some());
    if grant.client_id != client.id || grant.revoked_at.is_some() || exp <= now || used {
        return Ok(inactive);
    }
    let sub = match grant.account_id {
        Some(a) => {
            if active_account(state, grant).await.is_err() {
                return Ok(inactive);
            }
            pairwise_sub(state, &grant.client_id, &a)
        }
        None => grant.client_id.clone(),
    };
    let mut out = json!({
        "active": true,
        "iss": state.issuer(),
        "sub": sub,
        "client_id": grant.client_id,
        "scope": scope,
        "exp": exp,
        "iat": iat,
        "token_type": token_type,
    });
    if let Some(auth) = &grant.auth {
        out["acr"] = auth.acr.clone().into();
        out["amr"] = json!(auth.amr);
        out["auth_time"] = auth.auth_time.into();
        out["as_level"] = auth.as_level.into();
        // RFC 9396 §9.1: the introspection response carries the token's authorization details.
        if let Some(details) = &auth.authorization_details {
            out["authorization_details"] = details.clone();
        }
    }
    Ok(out)
}

/// RFC 7009: revokes a token of the calling client. Revoking a refresh token revokes its whole
/// grant (§2.1: "SHOULD also invalidate all access tokens based on the same authorization
/// grant"); revoking an access token removes that token. Unknown tokens and tokens of other
/// clients are answered the same way, so nothing is learned about them (§2.2).
pub async fn revoke_token(
    state: &AppState,
    authorization: Option<&str>,
    req: &TokenHintRequest,
    now: i64,
) -> Result<(), OAuthError> {
    let client =
        authenticate_client(state, &hint_credentials(authorization, req), &format!("{}/revoke", state.issuer()), now)
            .await?;
    let token = req
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    match find(state, token, req.token_type_hint.as_deref()).await? {
        Some(Found::Refresh(_, g)) if g.client_id == client.id => revoke(state, &g, "token.revoked", now).await,
        Some(Found::Access(t, g)) if g.client_id == client.id => {
            let mut audit = AuditEvent::new(now, "token.revoked", format!("client:{}", client.id))
                .client(&client.id)
                .detail("grant", g.id.to_string())
                .detail("token_type", "access_token");
            if let Some(a) = g.account_id {
                audit = audit.account(a);
            }
            state.store.delete_access_token(&t.token_hash, &audit).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}
