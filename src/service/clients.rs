//! Registering and managing relying parties (portals): one set of rules ([`check_client`])
//! for `client add` and `client update`. Secrets are generated, shown once and stored hashed.

use super::ServiceError;
use crate::audit::AuditEvent;
use crate::crypto::random::hash_token;
use crate::crypto::signing::SigningAlg;
use crate::store::{AccessTokenFormat, ClientKind, ClientRecord, ClientSettings, Store, StoreError, TokenAuthMethod};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// `None` for a public client or a `private_key_jwt` client.
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
    #[error("no such client")]
    NotFound,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ClientError::NotFound,
            StoreError::Conflict(_) => ClientError::Exists,
            e => ClientError::Service(e.into()),
        }
    }
}

pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];
const MIN_SECRET_CHARS: usize = 32;

/// What `client update` changes; `None` leaves a field as it is. The same flags build a new
/// client's settings from the defaults.
#[derive(Clone, Debug, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub alg: Option<SigningAlg>,
    pub token_auth_method: Option<TokenAuthMethod>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub jwks: Option<Value>,
    pub access_token_format: Option<AccessTokenFormat>,
    /// `Some(None)` goes back to the server default.
    pub access_token_seconds: Option<Option<i64>>,
    pub id_token_seconds: Option<Option<i64>>,
    pub refresh_token_seconds: Option<Option<i64>>,
    pub refresh_absolute_seconds: Option<Option<i64>>,
    pub always_refresh: Option<bool>,
    pub require_par: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `Some(None)` removes it.
    pub backchannel_logout_uri: Option<Option<String>>,
}

impl ClientChanges {
    /// Applies the settings part (everything but name, redirect URIs and algorithm).
    pub fn apply_to_settings(&self, s: &mut ClientSettings) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        set(&mut s.token_auth_method, &self.token_auth_method);
        set(&mut s.grant_types, &self.grant_types);
        set(&mut s.scopes, &self.scopes);
        if let Some(jwks) = &self.jwks {
            s.jwks = Some(jwks.clone());
        }
        set(&mut s.access_token_format, &self.access_token_format);
        set(&mut s.access_token_seconds, &self.access_token_seconds);
        set(&mut s.id_token_seconds, &self.id_token_seconds);
        set(&mut s.refresh_token_seconds, &self.refresh_token_seconds);
        set(&mut s.refresh_absolute_seconds, &self.refresh_absolute_seconds);
        set(&mut s.always_refresh, &self.always_refresh);
        set(&mut s.require_par, &self.require_par);
        set(&mut s.post_logout_redirect_uris, &self.post_logout_redirect_uris);
        set(&mut s.backchannel_logout_uri, &self.backchannel_logout_uri);
    }

    /// The names of the fields given, for the audit record.
    fn given(&self) -> Vec<&'static str> {
        let fields = [
            ("name", self.name.is_some()),
            ("redirect_uris", self.redirect_uris.is_some()),
            ("id_token_alg", self.alg.is_some()),
            ("token_auth_method", self.token_auth_method.is_some()),
            ("grant_types", self.grant_types.is_some()),
            ("scopes", self.scopes.is_some()),
            ("jwks", self.jwks.is_some()),
            ("access_token_format", self.access_token_format.is_some()),
            ("access_token_seconds", self.access_token_seconds.is_some()),
            ("id_token_seconds", self.id_token_seconds.is_some()),
            ("refresh_token_seconds", self.refresh_token_seconds.is_some()),
            ("refresh_absolute_seconds", self.refresh_absolute_seconds.is_some()),
            ("always_refresh", self.always_refresh.is_some()),
            ("require_par", self.require_par.is_some()),
            ("post_logout_redirect_uris", self.post_logout_redirect_uris.is_some()),
            ("backchannel_logout_uri", self.backchannel_logout_uri.is_some()),
        ];
        fields.into_iter().filter(|(_, given)| *given).map(|(name, _)| name).collect()
    }
}

fn is_loopback(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// An absolute URI, compared as an exact string: no fragment, no wildcard, no user info;
/// `https`, or `http` on a loopback host. `native`: also a private-use scheme with a dot
/// (RFC 8252 §7.1, `vn.gov.app:/cb`), for public clients' redirect URIs.
fn check_uri(what: &str, uri: &str, native: bool, problems: &mut Vec<String>) {
    let parsed = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(e) => return problems.push(format!("{what} {uri}: {e}")),
    };
    // RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component."
    if parsed.fragment().is_some() {
        problems.push(format!("{what} {uri}: must not have a fragment"));
    }
    if uri.contains('*') {
        problems.push(format!("{what} {uri}: no wildcards, URIs are matched exactly"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        problems.push(format!("{what} {uri}: must not carry user information"));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            problems.push(format!("{what} {uri}: http is allowed only for loopback (localhost, 127.0.0.1, [::1])"))
        }
        s if native && s.contains('.') => {}
        s => problems.push(format!("{what} {uri}: scheme {s} is not allowed (https, or http on loopback)")),
    }
}

/// A registered JWKS for `private_key_jwt`: `{"keys": [...]}` with RSA (2048 bits or more) or
/// P-256 EC public keys. A private part (`d`, or an RSA prime) is refused: the client's private
/// key must never leave the client.
pub fn check_jwks(jwks: &Value) -> Result<(), String> {
    let keys = jwks.get("keys").and_then(|k| k.as_array()).ok_or("the JWKS must be an object with a \"keys\" array")?;
    if keys.is_empty() {
        return Err("the JWKS has no keys".into());
    }
    for (i, key) in keys.iter().enumerate() {
        let name =
            key.get("kid").and_then(|k| k.as_str()).map_or_else(|| format!("key {}", i + 1), |k| format!("key {k}"));
        let field = |f: &str| key.get(f).and_then(|v| v.as_str()).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        if !key.is_object() {
            return Err(format!("{name}: not a JSON object"));
        }
        if let Some(private) = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].into_iter().find(|f| key.get(*f).is_some())
        {
            return Err(format!("{name}: has the private member \"{private}\"; register the public key only"));
        }
        if key.get("use").is_some_and(|u| u != "sig") {
            return Err(format!("{name}: \"use\" must be \"sig\""));
        }
        let alg = key.get("alg").and_then(|a| a.as_str());
        match key.get("kty").and_then(|k| k.as_str()) {
            Some("RSA") => {
                let n = field("n").ok_or(format!("{name}: RSA key without a base64url \"n\""))?;
                field("e").ok_or(format!("{name}: RSA key without a base64url \"e\""))?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < 2048 {
                    return Err(format!("{name}: RSA keys need at least 2048 bits"));
                }
                if alg.is_some_and(|a| !["PS256", "RS256"].contains(&a)) {
                    return Err(format!("{name}: alg must be PS256 or RS256 for an RSA key"));
                }
            }
            Some("EC") => {
                if key.get("crv").and_then(|c| c.as_str()) != Some("P-256") {
                    return Err(format!("{name}: only the P-256 curve is supported"));
                }
                if field("x").is_none_or(|x| x.len() != 32) || field("y").is_none_or(|y| y.len() != 32) {
                    return Err(format!("{name}: EC key needs 32-byte base64url \"x\" and \"y\""));
                }
                if alg.is_some_and(|a| a != "ES256") {
                    return Err(format!("{name}: alg must be ES256 for a P-256 key"));
                }
            }
            other => return Err(format!("{name}: kty must be RSA or EC, not {}", other.unwrap_or("missing"))),
        }
    }
    Ok(())
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The rules every client must satisfy after `add` or `update`; lists every problem.
pub fn check_client(c: &ClientRecord) -> Result<(), ClientError> {
    let mut problems = Vec::new();
    let s = &c.settings;
    if c.id.is_empty() || c.id.len() > 128 || !c.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
        problems.push("client id: 1–128 characters of A–Z a–z 0–9 - _ .".to_string());
    }
    if c.name.trim().is_empty() || c.name.chars().count() > 200 {
        problems.push("name: 1–200 characters".to_string());
    }
    let public = c.kind == ClientKind::Public;
    for g in &s.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            problems.push(format!("grant type {g}: not one of {}", GRANT_TYPES.join(", ")));
        }
    }
    if s.grant_types.is_empty() {
        problems.push("at least one grant type is required".into());
    }
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
    if public && s.allows_grant("client_credentials") {
        problems.push("public clients cannot use client_credentials".into());
    }
    if s.allows_grant("authorization_code") && c.redirect_uris.is_empty() {
        problems.push("at least one redirect URI is required for authorization_code".into());
    }
    for uri in &c.redirect_uris {
        check_uri("redirect URI", uri, public, &mut problems);
    }
    for uri in &s.post_logout_redirect_uris {
        check_uri("post-logout redirect URI", uri, public, &mut problems);
    }
    if let Some(uri) = &s.backchannel_logout_uri {
        check_uri("back-channel logout URI", uri, false, &mut problems);
    }
    if s.scopes.is_empty() {
        problems.push("at least one scope is required".into());
    }
    for scope in &s.scopes {
        if !is_scope_token(scope) {
            problems.push(format!("scope {scope:?}: not a valid scope token (RFC 6749 §3.3)"));
        }
    }
    let lifetimes = [
        ("access token lifetime", s.access_token_seconds),
        ("ID token lifetime", s.id_token_seconds),
        ("refresh token lifetime", s.refresh_token_seconds),
        ("refresh absolute lifetime", s.refresh_absolute_seconds),
    ];
    for (what, value) in lifetimes {
        if value.is_some_and(|v| v <= 0) {
            problems.push(format!("{what}: must be a positive number of seconds"));
        }
    }
    match (s.token_auth_method, &c.kind, &c.secret_hash) {
        (TokenAuthMethod::None, ClientKind::Public, None) => {}
        (TokenAuthMethod::ClientSecret, ClientKind::Confidential, Some(_)) => {}
        (TokenAuthMethod::PrivateKeyJwt, ClientKind::Confidential, _) => {
            if s.jwks.is_none() {
                problems.push("private_key_jwt needs the client's public keys (--jwks-file)".into());
            }
        }
        _ => problems.push("the authentication method does not fit the client kind or secret".into()),
    }
    if let Some(jwks) = &s.jwks
        && let Err(e) = check_jwks(jwks)
    {
        problems.push(format!("JWKS: {e}"));
    }
    if problems.is_empty() { Ok(()) } else { Err(ClientError::Invalid(problems.join("\n"))) }
}

fn check_secret(secret: &str) -> Result<(), ClientError> {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Err(ClientError::Invalid("client secret: at least 32 characters (generate it randomly)".into()));
    }
    Ok(())
}

/// Checks and stores a client; the secret is stored hashed only. Without a secret the client is
/// public (authentication `none`), unless it authenticates with `private_key_jwt`, where a
/// secret would be unused and is not kept.
pub async fn add_client(store: &dyn Store, c: &NewClient, actor: &str, now: i64) -> Result<ClientRecord, ClientError> {
    let mut settings = c.settings.clone();
    let (kind, secret_hash) = match (settings.token_auth_method, &c.secret) {
        (TokenAuthMethod::PrivateKeyJwt, _) => (ClientKind::Confidential, None),
        (TokenAuthMethod::None, Some(_)) => {
            return Err(ClientError::Invalid("a public client (authentication none) has no secret".into()));
        }
        (_, None) => {
            settings.token_auth_method = TokenAuthMethod::None;
            (ClientKind::Public, None)
        }
        (TokenAuthMethod::ClientSecret, Some(secret)) => {
            check_secret(secret)?;
            (ClientKind::Confidential, Some(hash_token(secret)))
        }
    };
    let record = ClientRecord {
        id: c.id.clone(),
        name: if c.name.is_empty() { c.id.clone() } else { c.name.clone() },
        kind,
        secret_hash,
        redirect_uris: c.redirect_uris.clone(),
        id_token_alg: c.alg.as_str().to_string(),
        settings,
        created_at: now,
    };
    check_client(&record)?;
    let audit = AuditEvent::new(now, "client.created", actor)
        .client(&record.id)
        .detail("redirect_uris", &record.redirect_uris)
        .detail("kind", kind_str(&record.kind))
        .detail("token_auth_method", record.settings.token_auth_method)
        .detail("grant_types", &record.settings.grant_types);
    store.create_client(&record, &audit).await?;
    Ok(record)
}

pub fn kind_str(kind: &ClientKind) -> &'static str {
    match kind {
        ClientKind::Confidential => "confidential",
        ClientKind::Public => "public",
    }
}

/// Changes what `changes` gives and keeps the rest. `rotate_secret` replaces the secret; a
/// client moving to `client_secret` without one gets one too. Returns the updated client and
/// the new secret, to be shown once (audit `client.updated`).
pub async fn update_client(
    store: &dyn Store,
    id: &str,
    changes: &ClientChanges,
    rotate_secret: bool,
    actor: &str,
    now: i64,
) -> Result<(ClientRecord, Option<String>), ClientError> {
    let mut c = store.get_client(id).await?.ok_or(ClientError::NotFound)?;
    // Older public clients carry the default method in their settings: public means `none`.
    if c.kind == ClientKind::Public {
        c.settings.token_auth_method = TokenAuthMethod::None;
    }
    if let Some(name) = &changes.name {
        c.name = name.clone();
    }
    if let Some(uris) = &changes.redirect_uris {
        c.redirect_uris = uris.clone();
    }
    if let Some(alg) = changes.alg {
        c.id_token_alg = alg.as_str().to_string();
    }
    changes.apply_to_settings(&mut c.settings);
    let mut new_secret = None;
    match c.settings.token_auth_method {
        TokenAuthMethod::None => {
            if rotate_secret {
                return Err(ClientError::Invalid("a public client has no secret to rotate".into()));
            }
            c.kind = ClientKind::Public;
            c.secret_hash = None;
        }
        TokenAuthMethod::PrivateKeyJwt => {
            if rotate_secret {
                return Err(ClientError::Invalid("a private_key_jwt client has no secret; register new keys".into()));
            }
            c.kind = ClientKind::Confidential;
            c.secret_hash = None;
        }
        TokenAuthMethod::ClientSecret => {
            c.kind = ClientKind::Confidential;
            if rotate_secret || c.secret_hash.is_none() {
                let secret = super::random_token()?;
                c.secret_hash = Some(hash_token(&secret));
                new_secret = Some(secret);
            }
        }
    }
    check_client(&c)?;
    let audit = AuditEvent::new(now, "client.updated", actor)
        .client(&c.id)
        .detail("changed", changes.given())
        .detail("secret_replaced", new_secret.is_some());
    store.update_client(&c, &audit).await?;
    Ok((c, new_secret))
}

/// Removes the client and everything issued to it: grants, codes, tokens, pushed requests,
/// pending logout deliveries (audit `client.removed`).
pub async fn remove_client(store: &dyn Store, id: &str, actor: &str, now: i64) -> Result<(), ClientError> {
    let audit = AuditEvent::new(now, "client.removed", actor).client(id);
    store.delete_client(id, &audit).await?;
    Ok(())
}

/// Everything about a client but its secret hash, for `client show`.
pub fn describe(c: &ClientRecord) -> Value {
    serde_json::json!({
        "id": c.id,
        "name": c.name,
        "kind": kind_str(&c.kind),
        "has_secret": c.secret_hash.is_some(),
        "redirect_uris": c.redirect_uris,
        "id_token_alg": c.id_token_alg,
        "created_at": super::keys::utc(c.created_at),
        "settings": c.settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn confidential() -> ClientRecord {
        ClientRecord {
            id: "portal".into(),
            name: "Portal".into(),
            kind: ClientKind::Confidential,
            secret_hash: Some(hash_token("x")),
            redirect_uris: vec!["https://portal.example.vn/cb".into()],
            id_token_alg: "PS256".into(),
            settings: ClientSettings::default(),
            created_at: 0,
        }
    }

    fn problems(c: &ClientRecord) -> String {
        match check_client(c) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn redirect_uris_are_exact_https_or_loopback() {
        let mut c = confidential();
        assert_eq!(problems(&c), "");
        for (uri, expect) in [
            ("http://127.0.0.1:9000/cb", ""),
            ("http://localhost/cb", ""),
            ("http://portal.example.vn/cb", "loopback"),
            ("https://portal.example.vn/cb#x", "fragment"),
            ("https://*.example.vn/cb", "wildcard"),
            ("https://user:pw@portal.example.vn/cb", "user information"),
            ("javascript:alert(1)", "scheme"),
            ("vn.gov.app:/cb", "scheme"),
            ("/relative", "relative"),
        ] {
            c.redirect_uris = vec![uri.into()];
            let p = problems(&c);
            assert!(if expect.is_empty() { p.is_empty() } else { p.contains(expect) }, "{uri}: {p}");
        }
        c.kind = ClientKind::Public;
        c.secret_hash = None;
        c.settings.token_auth_method = TokenAuthMethod::None;
        c.redirect_uris = vec!["vn.gov.app:/cb".into()];
        assert_eq!(problems(&c), "", "a native app's private-use scheme");
    }

    #[test]
    fn settings_rules() {
        let mut c = confidential();
        c.settings.access_token_seconds = Some(0);
        c.settings.grant_types = vec!["password".into()];
        c.settings.scopes = vec!["bad scope".into()];
        c.settings.backchannel_logout_uri = Some("http://rp.example.vn/logout".into());
        let p = problems(&c);
        for expect in ["access token lifetime", "grant type password", "scope \"bad scope\"", "back-channel"] {
            assert!(p.contains(expect), "{expect} missing from {p}");
        }
        let mut c = confidential();
        c.kind = ClientKind::Public;
        c.secret_hash = None;
        c.settings.token_auth_method = TokenAuthMethod::None;
        c.settings.grant_types = vec!["client_credentials".into()];
        assert!(problems(&c).contains("public clients cannot use client_credentials"));
        let mut c = confidential();
        c.settings.token_auth_method = TokenAuthMethod::PrivateKeyJwt;
        assert!(problems(&c).contains("--jwks-file"));
    }

    #[test]
    fn jwks_must_hold_public_signing_keys() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let ec = json!({"kty": "EC", "crv": "P-256", "x": x, "y": x, "kid": "k1"});
        assert_eq!(check_jwks(&json!({"keys": [ec]})), Ok(()));
        let mut private = ec.clone();
        private["d"] = json!(x);
        assert!(check_jwks(&json!({"keys": [private]})).is_err_and(|e| e.contains("\"d\"")));
        assert!(check_jwks(&json!({"keys": []})).is_err());
        assert!(check_jwks(&json!([ec])).is_err());
        assert!(check_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
        let small = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        assert!(check_jwks(&json!({"keys": [small]})).is_err_and(|e| e.contains("2048")));
        let rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB", "alg": "ES256"});
        assert!(check_jwks(&json!({"keys": [rsa]})).is_err_and(|e| e.contains("alg")));
    }
}
