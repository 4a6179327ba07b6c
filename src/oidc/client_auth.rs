//! Client authentication at the token, introspection, revocation and PAR endpoints
//! (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523), and `none` for public clients.

use super::OAuthError;
use crate::model::{ClientKind, ClientRecord, TokenAuthMethod};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Assertions valid further ahead than this are refused (bounds the `jti` memory).
pub const MAX_ASSERTION_LIFETIME: i64 = 600;

/// Credentials as presented; not yet checked against the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    /// Only `client_id`: a public client.
    None {
        client_id: String,
    },
    /// A signed JWT (RFC 7523); `client_id` is read from its (not yet verified) `sub`.
    PrivateKeyJwt {
        client_id: String,
        assertion: String,
    },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::None { client_id }
            | Presented::PrivateKeyJwt { client_id, .. } => client_id,
        }
    }

    pub fn secret(&self) -> Option<&str> {
        match self {
            Presented::Basic { secret, .. } | Presented::Post { secret, .. } => Some(secret),
            Presented::None { .. } | Presented::PrivateKeyJwt { .. } => None,
        }
    }

    pub fn used_basic(&self) -> bool {
        matches!(self, Presented::Basic { .. })
    }
}

/// Reads the credentials. RFC 6749 §2.3: "The client MUST NOT use more than one authentication
/// method in each request." §2.3.1: in the Basic header, the client id and secret are each
/// encoded with application/x-www-form-urlencoded before base64.
pub fn extract(
    authorization: Option<&str>,
    form_client_id: Option<&str>,
    form_client_secret: Option<&str>,
    assertion: (Option<&str>, Option<&str>),
) -> Result<Presented, OAuthError> {
    if let (assertion_type, Some(jwt)) = assertion {
        if authorization.is_some() || form_client_secret.is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        if assertion_type != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client("unsupported client_assertion_type"));
        }
        let (_, claims) =
            crate::crypto::jws::peek(jwt).map_err(|_| OAuthError::invalid_client("malformed client_assertion"))?;
        let sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("").to_string();
        if sub.is_empty() || form_client_id.is_some_and(|f| f != sub) {
            return Err(OAuthError::invalid_client("client_assertion sub does not name the client"));
        }
        return Ok(Presented::PrivateKeyJwt { client_id: sub, assertion: jwt.to_string() });
    }
    if let Some(header) = authorization {
        if form_client_secret.is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        let Some(encoded) = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")) else {
            return Err(OAuthError::invalid_client("unsupported Authorization scheme"));
        };
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let (id, secret) =
            decoded.split_once(':').ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let id = form_decode(id)?;
        if form_client_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request("client_id differs from the authenticated client"));
        }
        return Ok(Presented::Basic { client_id: id, secret: form_decode(secret)? });
    }
    match (form_client_id, form_client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() => {
            Ok(Presented::Post { client_id: id.to_string(), secret: secret.to_string() })
        }
        (Some(id), None) if !id.is_empty() => Ok(Presented::None { client_id: id.to_string() }),
        _ => Err(OAuthError::invalid_client("client authentication is missing")),
    }
}

fn form_decode(s: &str) -> Result<String, OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={}", s.replace('&', "%26")))
        .map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
    Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
}

/// Checks the method fits the client's registration: a secret for a secret client, a JWT for a
/// `private_key_jwt` client, nothing for a public client. `secret_matches` compares in constant
/// time. A `private_key_jwt` assertion is checked further by [`check_assertion`].
pub fn check(
    client: &ClientRecord,
    presented: &Presented,
    secret_matches: impl Fn(&str, &str) -> bool,
) -> Result<(), OAuthError> {
    let failed = || OAuthError::invalid_client("client authentication failed");
    match (&client.kind, client.settings.token_auth_method, presented) {
        (ClientKind::Public, _, Presented::None { .. }) => Ok(()),
        (ClientKind::Public, _, _) => Err(OAuthError::invalid_client("public clients do not authenticate")),
        (ClientKind::Confidential, TokenAuthMethod::PrivateKeyJwt, Presented::PrivateKeyJwt { .. }) => Ok(()),
        (ClientKind::Confidential, TokenAuthMethod::ClientSecret, p) => match (p.secret(), &client.secret_hash) {
            (Some(secret), Some(hash)) if secret_matches(secret, hash) => Ok(()),
            _ => Err(failed()),
        },
        _ => Err(failed()),
    }
}

/// RFC 7523 §3 and OIDC Core §9 rules for a `private_key_jwt` assertion whose signature has been
/// verified with the client's registered keys. `audiences` are the values accepted for `aud`
/// (the endpoint's URL and the issuer). Returns `(jti, exp)` for the replay check.
pub fn check_assertion(
    claims: &Value,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<(String, i64), OAuthError> {
    let bad = |why: &str| OAuthError::invalid_client(format!("client_assertion: {why}"));
    let s = |k: &str| claims.get(k).and_then(|v| v.as_str());
    // "iss … MUST contain the client_id"; "sub … MUST contain the client_id".
    if s("iss") != Some(client_id) || s("sub") != Some(client_id) {
        return Err(bad("iss and sub must be the client_id"));
    }
    // "aud … The Audience SHOULD be the URL of the Authorization Server's Token Endpoint."
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list.iter().filter_map(|a| a.as_str()).any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("aud must be the token endpoint or the issuer"));
    }
    // "exp … MUST be rejected if it is in the past".
    let exp = claims.get("exp").and_then(|v| v.as_i64()).ok_or_else(|| bad("exp is missing"))?;
    if exp <= now {
        return Err(bad("expired"));
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Err(bad("exp is too far in the future"));
    }
    if claims.get("nbf").and_then(|v| v.as_i64()).is_some_and(|nbf| nbf > now + 60) {
        return Err(bad("not yet valid"));
    }
    // "jti … The authorization server MUST ensure that JWTs are not replayed".
    let jti = s("jti").filter(|j| !j.is_empty() && j.len() <= 256).ok_or_else(|| bad("jti is missing"))?;
    Ok((jti.to_string(), exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret"));
        assert_eq!(
            extract(Some(&header), None, None, (None, None)),
            Ok(Presented::Basic { client_id: "my:client".into(), secret: "s+cret".into() })
        );
    }

    #[test]
    fn two_methods_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let none = (None, None);
        assert_eq!(extract(Some(&header), Some("a"), Some("b"), none).map_err(|e| e.code), Err("invalid_request"));
        assert_eq!(extract(None, None, None, none).map_err(|e| e.code), Err("invalid_client"));
        assert_eq!(extract(Some("Bearer x"), None, None, none).map_err(|e| e.code), Err("invalid_client"));
        assert_eq!(extract(Some("Basic !!!"), None, None, none).map_err(|e| e.code), Err("invalid_client"));
        let jwt = (Some(JWT_BEARER), Some("x.y.z"));
        assert_eq!(extract(Some(&header), None, None, jwt).map_err(|e| e.code), Err("invalid_request"));
    }

    #[test]
    fn assertion_rules() {
        let ok = serde_json::json!({"iss": "c", "sub": "c", "aud": ["https://id/token"], "exp": 1100, "jti": "j1"});
        let auds = ["https://id/token", "https://id"];
        assert_eq!(check_assertion(&ok, "c", &auds, 1000), Ok(("j1".into(), 1100)));
        let mut v = ok.clone();
        v["aud"] = "https://elsewhere".into();
        assert!(check_assertion(&v, "c", &auds, 1000).is_err());
        let mut v = ok.clone();
        v["exp"] = 999.into();
        assert!(check_assertion(&v, "c", &auds, 1000).is_err());
        let mut v = ok.clone();
        v["exp"] = 100_000.into();
        assert!(check_assertion(&v, "c", &auds, 1000).is_err(), "too far ahead");
        let mut v = ok.clone();
        v["iss"] = "other".into();
        assert!(check_assertion(&v, "c", &auds, 1000).is_err());
        let mut v = ok;
        v.as_object_mut().map(|o| o.remove("jti"));
        assert!(check_assertion(&v, "c", &auds, 1000).is_err());
    }
}
