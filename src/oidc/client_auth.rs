//! Client authentication at the token endpoint (RFC 6749 §2.3, OIDC Core §9):
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use super::OAuthError;
use crate::model::{ClientKind, ClientRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

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
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { client_id, .. } | Presented::Post { client_id, .. } | Presented::None { client_id } => {
                client_id
            }
        }
    }

    pub fn secret(&self) -> Option<&str> {
        match self {
            Presented::Basic { secret, .. } | Presented::Post { secret, .. } => Some(secret),
            Presented::None { .. } => None,
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
) -> Result<Presented, OAuthError> {
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

/// Checks the method fits the client: a confidential client must present a secret, a public
/// client must not (it has none). `secret_matches` compares in constant time.
pub fn check(
    client: &ClientRecord,
    presented: &Presented,
    secret_matches: impl Fn(&str, &str) -> bool,
) -> Result<(), OAuthError> {
    match (&client.kind, presented.secret(), &client.secret_hash) {
        (ClientKind::Confidential, Some(secret), Some(hash)) if secret_matches(secret, hash) => Ok(()),
        (ClientKind::Confidential, _, _) => Err(OAuthError::invalid_client("client authentication failed")),
        (ClientKind::Public, None, _) => Ok(()),
        (ClientKind::Public, Some(_), _) => Err(OAuthError::invalid_client("public clients do not have a secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret"));
        assert_eq!(
            extract(Some(&header), None, None),
            Ok(Presented::Basic { client_id: "my:client".into(), secret: "s+cret".into() })
        );
    }

    #[test]
    fn two_methods_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        assert_eq!(extract(Some(&header), Some("a"), Some("b")).map_err(|e| e.code), Err("invalid_request"));
        assert_eq!(extract(None, None, None).map_err(|e| e.code), Err("invalid_client"));
        assert_eq!(extract(Some("Bearer x"), None, None).map_err(|e| e.code), Err("invalid_client"));
        assert_eq!(extract(Some("Basic !!!"), None, None).map_err(|e| e.code), Err("invalid_client"));
    }
}
