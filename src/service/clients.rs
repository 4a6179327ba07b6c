//! Registering relying parties (portals).

use super::ServiceError;
use crate::audit::AuditEvent;
use crate::crypto::random::hash_token;
use crate::crypto::signing::SigningAlg;
use crate::store::{ClientKind, ClientRecord, ClientSettings, Store};

#[derive(Clone, Debug)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// `None` for a public client.
    pub secret: Option<String>,
    pub alg: SigningAlg,
    pub settings: ClientSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("a client with this id already exists")]
    Exists,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Checks and stores a client; the secret is stored hashed only.
pub async fn add_client(store: &dyn Store, c: &NewClient, actor: &str, now: i64) -> Result<ClientRecord, ClientError> {
    if c.id.is_empty() || c.id.len() > 128 || !c.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
        return Err(ClientError::Invalid("client id: 1–128 characters of A–Z a–z 0–9 - _ .".into()));
    }
    if c.redirect_uris.is_empty() {
        return Err(ClientError::Invalid("at least one redirect URI is required".into()));
    }
    for uri in &c.redirect_uris {
        let parsed = url::Url::parse(uri).map_err(|e| ClientError::Invalid(format!("redirect URI {uri}: {e}")))?;
        // RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component."
        if parsed.fragment().is_some() {
            return Err(ClientError::Invalid(format!("redirect URI {uri}: must not have a fragment")));
        }
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if parsed.scheme() == "http" && !loopback {
            return Err(ClientError::Invalid(format!("redirect URI {uri}: http is allowed only for loopback")));
        }
    }
    if let Some(s) = &c.secret
        && s.chars().count() < 32
    {
        return Err(ClientError::Invalid("client secret: at least 32 characters (generate it randomly)".into()));
    }
    let record = ClientRecord {
        id: c.id.clone(),
        name: if c.name.is_empty() { c.id.clone() } else { c.name.clone() },
        kind: if c.secret.is_some() { ClientKind::Confidential } else { ClientKind::Public },
        secret_hash: c.secret.as_deref().map(hash_token),
        redirect_uris: c.redirect_uris.clone(),
        id_token_alg: c.alg.as_str().to_string(),
        settings: c.settings.clone(),
        created_at: now,
    };
    let audit = AuditEvent::new(now, "client.created", actor)
        .client(&record.id)
        .detail("redirect_uris", &record.redirect_uris)
        .detail("kind", if c.secret.is_some() { "confidential" } else { "public" });
    match store.create_client(&record, &audit).await {
        Ok(()) => Ok(record),
        Err(crate::store::StoreError::Conflict(_)) => Err(ClientError::Exists),
        Err(e) => Err(ClientError::Service(e.into())),
    }
}
