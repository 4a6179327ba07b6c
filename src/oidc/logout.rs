//! Logout: the checks of an RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0
//! §2–3) and the contents of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0
//! §2.4).
//!
//! Pure: no axum, no sqlx, no clock, no randomness. The caller passes in our published JWKS, the
//! issuer, the client it loaded, the time and a fresh `jti`, and does the signing, the session
//! look-up and the persistence.

use super::OAuthError;
use crate::model::ClientRecord;
use serde::Deserialize;
use serde_json::{Value, json};

/// Back-Channel Logout 1.0 §2.4: the `events` member that declares a JWT a Logout Token.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Back-Channel Logout 1.0 §2.4: logout tokens are explicitly typed with the `typ` header
/// `logout+jwt`, so that no other JWT can pass for one (and one cannot pass for an ID token).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// Logout tokens are delivered at once (and re-signed for every retry), so they live briefly.
pub const LOGOUT_TOKEN_SECONDS: i64 = 120;
/// An ID token is a few kilobytes at most; other parameters are short.
const MAX_HINT_LEN: usize = 8192;
const MAX_PARAM_LEN: usize = 2048;

/// The parameters of a request to the end_session_endpoint, as received (GET query or POST
/// form). Unknown parameters are ignored; a parameter given twice is a parse error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RawEndSessionRequest {
    pub id_token_hint: Option<String>,
    pub logout_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
}

impl RawEndSessionRequest {
    /// The parameters present, as name–value pairs (to carry them through a confirmation form).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("id_token_hint", &self.id_token_hint),
            ("logout_hint", &self.logout_hint),
            ("client_id", &self.client_id),
            ("post_logout_redirect_uri", &self.post_logout_redirect_uri),
            ("state", &self.state),
            ("ui_locales", &self.ui_locales),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, v.clone())))
        .collect()
    }
}

/// What a verified `id_token_hint` tells: which client it was issued to, and the (pairwise)
/// session and subject that client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenHint {
    pub client_id: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

/// A request whose parameters passed every check that needs no stored client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedEndSession {
    pub hint: Option<IdTokenHint>,
    /// The client named by `client_id` or, failing that, by the hint's `aud`.
    pub client_id: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
}

/// Runs the checks that need no stored client, in order; the first failure wins.
pub fn check(raw: &RawEndSessionRequest, jwks: &Value, issuer: &str) -> Result<CheckedEndSession, OAuthError> {
    check_lengths(raw)?;
    let hint = match non_empty(&raw.id_token_hint) {
        Some(token) => Some(check_id_token_hint(token, jwks, issuer)?),
        None => None,
    };
    let client_id = check_client_id(non_empty(&raw.client_id), hint.as_ref())?;
    Ok(CheckedEndSession {
        hint,
        client_id,
        state: non_empty(&raw.state).map(String::from),
        ui_locales: non_empty(&raw.ui_locales).map(String::from),
    })
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Bounds what we parse and echo back.
pub fn check_lengths(raw: &RawEndSessionRequest) -> Result<(), OAuthError> {
    let short = [&raw.logout_hint, &raw.client_id, &raw.post_logout_redirect_uri, &raw.state, &raw.ui_locales];
    let too_long = short.iter().any(|f| f.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN))
        || raw.id_token_hint.as_ref().is_some_and(|v| v.len() > MAX_HINT_LEN);
    if too_long {
        return Err(OAuthError::invalid_request("a parameter is too long"));
    }
    Ok(())
}

/// RP-Initiated Logout §2 `id_token_hint`: "When an id_token_hint parameter is present, the OP
/// MUST validate that it was the issuer of the ID Token. The OP SHOULD accept ID Tokens when the
/// RP identified by the ID Token's aud claim and/or sid claim has a current session or had a
/// recent session at the OP, even when the exp time has passed." So: our signature (any key we
/// publish), `iss` = us, exactly one audience; `exp` is not checked. Our other JWTs (access
/// tokens `at+jwt`, logout tokens `logout+jwt`) are not ID tokens and are refused.
pub fn check_id_token_hint(token: &str, jwks: &Value, issuer: &str) -> Result<IdTokenHint, OAuthError> {
    let invalid = |why: &str| OAuthError::invalid_request("id_token_hint is not a valid ID token").with_detail(why);
    let claims = crate::crypto::jws::verify(token, jwks).map_err(|e| invalid(&e.to_string()))?;
    let (header, _) = crate::crypto::jws::peek(token).map_err(|e| invalid(&e.to_string()))?;
    if let Some(typ) = header.get("typ").and_then(|t| t.as_str())
        && !typ.eq_ignore_ascii_case("JWT")
    {
        return Err(invalid(&format!("typ {typ}")));
    }
    if claims.get("events").is_some() {
        return Err(invalid("a logout token"));
    }
    if claims.get("iss").and_then(|i| i.as_str()) != Some(issuer) {
        return Err(invalid("iss is not this provider"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let [client_id] = audiences.as_slice() else {
        return Err(invalid("aud must name exactly one client"));
    };
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(String::from);
    Ok(IdTokenHint { client_id: client_id.to_string(), sub: text("sub"), sid: text("sid") })
}

/// RP-Initiated Logout §2 `client_id`: "When both client_id and id_token_hint are present, the
/// OP MUST verify that the Client Identifier matches the one used when issuing the ID Token."
pub fn check_client_id(client_id: Option<&str>, hint: Option<&IdTokenHint>) -> Result<Option<String>, OAuthError> {
    match (client_id, hint) {
        (Some(id), Some(h)) if id != h.client_id => {
            Err(OAuthError::invalid_request("client_id does not match the id_token_hint"))
        }
        (Some(id), _) => Ok(Some(id.to_string())),
        (None, Some(h)) => Ok(Some(h.client_id.clone())),
        (None, None) => Ok(None),
    }
}

/// RP-Initiated Logout §3: "The OP also MUST NOT perform post-logout redirection if the
/// post_logout_redirect_uri value supplied does not exactly match one of the previously
/// registered post_logout_redirect_uris values." And, without an `id_token_hint`, "the OP MUST
/// NOT perform post-logout redirection unless the OP has other means of confirming the
/// legitimacy of the post-logout redirection target": a `client_id` whose registration lists
/// the URI is such a means; with neither there is no client to check against. `client` is the
/// client [`CheckedEndSession::client_id`] names, or `None` when it names none. An unusable URI
/// is an error (a page), never ignored, so the RP learns of its mistake.
pub fn check_post_logout_redirect_uri(
    requested: Option<&str>,
    client: Option<&ClientRecord>,
) -> Result<Option<String>, OAuthError> {
    let Some(uri) = requested.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let Some(client) = client else {
        return Err(OAuthError::invalid_request(
            "post_logout_redirect_uri needs an id_token_hint or a client_id to check it against",
        ));
    };
    if client.settings.post_logout_redirect_uris.iter().any(|r| r == uri) {
        Ok(Some(uri.to_string()))
    } else {
        Err(OAuthError::invalid_request("post_logout_redirect_uri is not registered for this client")
            .with_detail(uri.to_string()))
    }
}

/// RP-Initiated Logout §2 `state`: "If included in the logout request, the OP passes this value
/// back to the RP using the state parameter when redirecting the User Agent back to the RP."
/// The registered URI keeps its own query.
pub fn redirect_target(uri: &str, state: Option<&str>) -> String {
    match state {
        Some(s) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            format!("{uri}{sep}state={encoded}")
        }
        None => uri.to_string(),
    }
}

/// RP-Initiated Logout §2: "the OP MUST ask the End-User this question [whether to log out] if an
/// id_token_hint was not provided or if the supplied ID Token does not belong to the current OP
/// session with the RP and/or currently logged in End-User." `session_sid` is the current
/// session's `sid` as the hint's client sees it (pairwise); only an exact match skips the question.
pub fn must_confirm(hint: Option<&IdTokenHint>, session_sid: Option<&str>) -> bool {
    match (hint.and_then(|h| h.sid.as_deref()), session_sid) {
        (Some(hinted), Some(current)) => hinted != current,
        _ => true,
    }
}

/// What a back-channel logout token says: who, which session, for which client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// Pairwise, as in the client's ID tokens.
    pub sub: &'a str,
    /// Pairwise, as in the client's ID tokens.
    pub sid: &'a str,
    pub jti: &'a str,
    pub issued_at: i64,
}

/// Back-Channel Logout 1.0 §2.4: `iss`, `aud`, `iat`, `jti`, and a short `exp`; "A Logout Token
/// MUST contain either a sub or a sid Claim, and MAY contain both" (we send both, and advertise
/// `backchannel_logout_session_supported`); `events`, an object whose member
/// `http://schemas.openid.net/event/backchannel-logout` is a JSON object, the empty one `{}`; and
/// "A Logout Token MUST NOT contain a nonce Claim" (so it can never pass for an ID token). Sign
/// it with `typ` [`LOGOUT_TOKEN_TYP`].
pub fn logout_token_claims(input: &LogoutTokenInput<'_>) -> Value {
    json!({
        "iss": input.issuer,
        "aud": input.client_id,
        "iat": input.issued_at,
        "exp": input.issued_at + LOGOUT_TOKEN_SECONDS,
        "jti": input.jti,
        "sub": input.sub,
        "sid": input.sid,
        "events": { BACKCHANNEL_EVENT: {} },
    })
}

/// The same logout token re-dated for a later attempt: a retry hours later must not carry an
/// expired `exp`, and keeps its `jti` so the RP can tell a repeat.
pub fn renew_logout_token_claims(claims: &Value, issued_at: i64) -> Result<Value, OAuthError> {
    let mut claims = claims.clone();
    let Some(map) = claims.as_object_mut().filter(|m| m.contains_key("events") && m.contains_key("jti")) else {
        return Err(OAuthError::server_error("not a logout token"));
    };
    map.insert("iat".into(), issued_at.into());
    map.insert("exp".into(), (issued_at + LOGOUT_TOKEN_SECONDS).into());
    map.remove("nonce");
    Ok(claims)
}

#[cfg(test)]
mod tests;
