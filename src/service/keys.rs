//! The signing keys, kept in the database so every instance shares them, and rotated with an
//! overlap so relying parties never meet a `kid` they have not fetched yet.
//!
//! Every key has three times (see [`SigningKeyRecord`]):
//!
//! - it is **published** in the JWKS from its creation until `retired_at` plus the
//!   verification window ([`verification_window`]): the longest lifetime of a token it may
//!   have signed, plus [`RETIRED_MARGIN_SECONDS`];
//! - it **signs** from `activates_at` until `retired_at`. When several keys of one algorithm
//!   could sign at a time (only after an interrupted rotation or two concurrent ones), the one
//!   that activated last wins, so every instance picks the same.
//!
//! `keys rotate` creates the next key with `activates_at = now + activate_in` (at least
//! [`MIN_ACTIVATE_IN_SECONDS`], twice the JWKS cache lifetime of 300 s) and retires the current
//! one at that same instant, so exactly one key signs per algorithm at any time.
//!
//! A running server reloads the keys every [`RELOAD_SECONDS`] ([`reload_periodically`]): the
//! snapshot holds the parsed published keys and the JWKS serialized once; which key signs is
//! decided by time at each use, so a key whose `activates_at` has passed signs even between
//! reloads. The private keys are stored sealed with the data key.
//!
//! The JWKS and the discovery document are served from bytes serialized once per key change
//! (with an `ETag`): a reload that finds the same keys keeps the same documents, and requests
//! read the snapshot through an `ArcSwap` (no lock on the request path).

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::config::TokenConfig;
use crate::crypto::secretbox::DataKeys;
use crate::crypto::signing::{self, SigningAlg, SigningKey};
use crate::store::{SigningKeyRecord, Store};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// How often a running server reloads the keys from the database.
pub const RELOAD_SECONDS: u64 = 30;
/// Published this long before it signs, at least: the JWKS is cached for 300 s (`max-age`),
/// so every relying party has fetched the next key before it meets a token signed with it.
pub const MIN_ACTIVATE_IN_SECONDS: i64 = 600;
pub const DEFAULT_ACTIVATE_IN_SECONDS: i64 = 3600;
/// Added to the longest token lifetime before a retired key leaves the JWKS: clock skew
/// between instances and relying parties, the reload interval, late deliveries.
pub const RETIRED_MARGIN_SECONDS: i64 = 600;

pub(crate) fn aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

/// A published key, parsed once.
struct LoadedKey {
    alg: SigningAlg,
    activates_at: i64,
    retired_at: Option<i64>,
    key: Arc<SigningKey>,
}

/// A public JSON document serialized once: its bytes and their strong `ETag`.
pub struct Document {
    pub body: Arc<str>,
    /// A quoted entity tag (RFC 9110 §8.8.3): a digest of the body.
    pub etag: String,
}

impl Document {
    pub fn new(json: String) -> Document {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Document { body: json.into(), etag: format!("\"{tag}\"") }
    }
}

/// What one reload saw: the published keys, oldest first, and their JWKS.
struct Snapshot {
    keys: Vec<LoadedKey>,
    jwks_json: Arc<str>,
    jwks: Arc<Value>,
    jwks_document: Arc<Document>,
    /// The algorithms with a key that signs now or will (what discovery advertises).
    algorithms: Vec<SigningAlg>,
    /// The discovery document for `algorithms`, built at its first request and carried over
    /// by reloads that keep the same algorithms.
    discovery: OnceLock<Arc<Document>>,
}

/// The keys as last loaded; shared by every request, replaced whole at each reload.
pub struct KeyRing {
    snapshot: ArcSwap<Snapshot>,
}

/// Is `record` still published at `now`, given the verification window?
fn published(record: &SigningKeyRecord, now: i64, window: i64) -> bool {
    record.retired_at.is_none_or(|r| now < r.saturating_add(window))
}

/// The key of `alg` that signs at `now` among `keys`: the one that activated last (ties: the
/// later created, i.e. the later in the oldest-first list).
fn pick<'a, K>(
    keys: impl IntoIterator<Item = &'a K>,
    now: i64,
    fields: impl Fn(&K) -> (SigningAlg, i64, Option<i64>),
    alg: SigningAlg,
) -> Option<&'a K>
where
    K: 'a,
{
    let mut best: Option<(&K, i64)> = None;
    for k in keys {
        let (a, activates_at, retired_at) = fields(k);
        let signs = activates_at <= now && retired_at.is_none_or(|r| now < r);
        if a == alg && signs && best.is_none_or(|(_, at)| activates_at >= at) {
            best = Some((k, activates_at));
        }
    }
    best.map(|(k, _)| k)
}

fn record_fields(r: &SigningKeyRecord) -> (SigningAlg, i64, Option<i64>) {
    // An unknown algorithm never signs (PS256 with an impossible window stands in for it).
    match r.alg.parse() {
        Ok(alg) => (alg, r.activates_at, r.retired_at),
        Err(_) => (SigningAlg::PS256, i64::MAX, Some(i64::MIN)),
    }
}

/// The longest a token signed by a key can stay valid after the key stops signing: the longest
/// ID token or access token lifetime, in the configuration or any client's settings, plus
/// [`RETIRED_MARGIN_SECONDS`].
pub async fn verification_window(store: &dyn Store, tokens: &TokenConfig) -> Result<i64, ServiceError> {
    let mut longest = tokens.id_token_seconds.max(tokens.access_token_seconds);
    for c in store.list_clients().await? {
        for s in [c.settings.id_token_seconds, c.settings.access_token_seconds].into_iter().flatten() {
            longest = longest.max(s);
        }
    }
    Ok(longest.saturating_add(RETIRED_MARGIN_SECONDS))
}

async fn new_key(
    data_key: &DataKeys,
    alg: SigningAlg,
    now: i64,
    activates_at: i64,
) -> Result<SigningKeyRecord, ServiceError> {
    // RSA generation is slow (hundreds of ms): keep it off the async threads.
    let der = tokio::task::spawn_blocking(move || signing::generate_pkcs8(alg))
        .await
        .map_err(ServiceError::internal)?
        .map_err(ServiceError::internal)?;
    let suffix = super::random_token()?;
    let kid = format!("{}-{}-{}", alg.as_str().to_ascii_lowercase(), now, &suffix[..8]);
    Ok(SigningKeyRecord {
        private_key_enc: data_key.encrypt(&der, &aad(&kid)).map_err(ServiceError::internal)?,
        kid,
        alg: alg.as_str().to_string(),
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

impl KeyRing {
    /// Loads the keys, first creating one for every algorithm that has no key able to sign now
    /// or later (first start), active at once. Returns the ring and the algorithms whose keys
    /// were just generated.
    pub async fn load_or_create(
        store: &dyn Store,
        data_key: &DataKeys,
        tokens: &TokenConfig,
        now: i64,
    ) -> Result<(KeyRing, Vec<SigningAlg>), ServiceError> {
        let mut created = Vec::new();
        let records = store.list_signing_keys().await?;
        for alg in SigningAlg::ALL {
            let usable = records.iter().any(|r| r.alg == alg.as_str() && r.retired_at.is_none_or(|at| now < at));
            if usable {
                continue;
            }
            let record = new_key(data_key, alg, now, now).await?;
            let audit =
                AuditEvent::new(now, "key.created", "system").detail("kid", &record.kid).detail("alg", alg.as_str());
            store.create_signing_key(&record, &audit).await?;
            created.push(alg);
        }
        let ring = KeyRing { snapshot: ArcSwap::from_pointee(Snapshot::empty()?) };
        ring.reload(store, data_key, tokens, now).await?;
        Ok((ring, created))
    }

    /// Reads the keys again and replaces the snapshot. Keys seen before are not decrypted and
    /// parsed again; keys no longer published are dropped.
    pub async fn reload(
        &self,
        store: &dyn Store,
        data_key: &DataKeys,
        tokens: &TokenConfig,
        now: i64,
    ) -> Result<(), ServiceError> {
        let window = verification_window(store, tokens).await?;
        let records = store.list_signing_keys().await?;
        let previous = self.current();
        let known: HashMap<&str, &Arc<SigningKey>> = previous.keys.iter().map(|k| (k.key.kid(), &k.key)).collect();
        let mut keys = Vec::new();
        for r in records.iter().filter(|r| published(r, now, window)) {
            let alg: SigningAlg = r.alg.parse().map_err(ServiceError::internal)?;
            let key = match known.get(r.kid.as_str()) {
                Some(k) if k.alg() == alg => Arc::clone(k),
                _ => {
                    let der = data_key.decrypt(&r.private_key_enc, &aad(&r.kid)).map_err(|e| {
                        ServiceError::Internal(format!(
                            "signing key {} cannot be decrypted with the data key: {e}",
                            r.kid
                        ))
                    })?;
                    Arc::new(SigningKey::from_pkcs8(r.kid.clone(), alg, &der).map_err(ServiceError::internal)?)
                }
            };
            keys.push(LoadedKey { alg, activates_at: r.activates_at, retired_at: r.retired_at, key });
        }
        let mut snapshot = Snapshot::new(keys)?;
        // The same keys as before: the same documents (bytes and ETag), not serialized again.
        if snapshot.jwks_json == previous.jwks_json {
            snapshot.jwks_document = Arc::clone(&previous.jwks_document);
        }
        if snapshot.algorithms == previous.algorithms
            && let Some(discovery) = previous.discovery.get()
        {
            let _ = snapshot.discovery.set(Arc::clone(discovery));
        }
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The key that signs `alg` tokens at `now`.
    pub fn signing_key(&self, alg: SigningAlg, now: i64) -> Option<Arc<SigningKey>> {
        let snapshot = self.current();
        pick(&snapshot.keys, now, |k: &LoadedKey| (k.alg, k.activates_at, k.retired_at), alg)
            .map(|k| Arc::clone(&k.key))
    }

    /// The JWKS document (every published key), serialized once per reload.
    pub fn jwks_json(&self) -> Arc<str> {
        Arc::clone(&self.current().jwks_json)
    }

    /// The same JWKS as a value, to verify our own tokens (e.g. an `id_token_hint`).
    pub fn jwks(&self) -> Arc<Value> {
        Arc::clone(&self.current().jwks)
    }

    /// The JWKS as served: bytes and ETag, made once per key change.
    pub fn jwks_document(&self) -> Arc<Document> {
        Arc::clone(&self.snapshot.load().jwks_document)
    }

    /// The discovery document as served, built by `build` from the algorithms the first time
    /// it is asked for after a key change, then the same bytes until the next change.
    pub fn discovery_document<E>(
        &self,
        build: impl FnOnce(&[SigningAlg]) -> Result<String, E>,
    ) -> Result<Arc<Document>, E> {
        let snapshot = self.snapshot.load();
        if let Some(doc) = snapshot.discovery.get() {
            return Ok(Arc::clone(doc));
        }
        let doc = Arc::new(Document::new(build(&snapshot.algorithms)?));
        // Two first requests at once may both build it; the first stored wins.
        Ok(Arc::clone(snapshot.discovery.get_or_init(|| doc)))
    }

    /// The algorithms with a key that signs now or will (for discovery).
    pub fn algorithms(&self) -> Vec<SigningAlg> {
        self.snapshot.load().algorithms.clone()
    }
}

impl Snapshot {
    fn empty() -> Result<Snapshot, ServiceError> {
        Snapshot::new(Vec::new())
    }

    fn new(keys: Vec<LoadedKey>) -> Result<Snapshot, ServiceError> {
        let refs: Vec<&SigningKey> = keys.iter().map(|k| k.key.as_ref()).collect();
        let jwks = signing::jwks(&refs);
        let json = serde_json::to_string(&jwks).map_err(ServiceError::internal)?;
        let jwks_json: Arc<str> = json.as_str().into();
        let algorithms = SigningAlg::ALL
            .into_iter()
            .filter(|a| keys.iter().any(|k| k.alg == *a && k.retired_at.is_none()))
            .collect();
        Ok(Snapshot {
            keys,
            jwks_json,
            jwks: Arc::new(jwks),
            jwks_document: Arc::new(Document::new(json)),
            algorithms,
            discovery: OnceLock::new(),
        })
    }
}

/// Reloads `state.keys` now.
pub async fn reload(state: &AppState, now: i64) -> Result<(), ServiceError> {
    state.keys.reload(state.store.as_ref(), &state.data_key, &state.config.tokens, now).await
}

/// Reloads the keys every [`RELOAD_SECONDS`], so a key created by `keys rotate` (or another
/// instance) is published here well before it signs. A failed reload keeps the last snapshot.
pub async fn reload_periodically(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(RELOAD_SECONDS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = reload(&state, crate::app::now()).await {
            tracing::warn!(error = %e, "reloading the signing keys failed; keeping the last ones");
        }
    }
}

/// `t` (unix seconds) as ISO 8601 UTC, e.g. `2025-01-31T08:00:00Z`.
pub fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the next {alg} key {kid} activates at {}; rotate again once it signs", utc(*.activates_at))]
    Pending { alg: SigningAlg, kid: String, activates_at: i64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for RotateError {
    fn from(e: crate::store::StoreError) -> Self {
        RotateError::Service(e.into())
    }
}

/// One algorithm's rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    pub alg: SigningAlg,
    pub kid: String,
    pub activates_at: i64,
    /// The keys that stop signing at `activates_at`.
    pub retiring: Vec<String>,
}

/// Creates the next key of each of `algs`, published now and signing from `activates_at`, and
/// retires the keys that sign until then at that same instant (audit `key.created`,
/// `key.rotated`). Refuses, changing nothing, while an algorithm already has a next key
/// waiting: one rotation at a time keeps exactly one signing key per algorithm.
pub async fn rotate(
    store: &dyn Store,
    data_key: &DataKeys,
    algs: &[SigningAlg],
    actor: &str,
    now: i64,
    activates_at: i64,
) -> Result<Vec<Rotated>, RotateError> {
    let records = store.list_signing_keys().await?;
    for &alg in algs {
        if let Some(next) =
            records.iter().filter(|r| r.alg == alg.as_str() && r.retired_at.is_none()).find(|r| r.activates_at > now)
        {
            return Err(RotateError::Pending { alg, kid: next.kid.clone(), activates_at: next.activates_at });
        }
    }
    let mut rotated = Vec::new();
    for &alg in algs {
        let record = new_key(data_key, alg, now, activates_at.max(now)).await?;
        let audit = AuditEvent::new(now, "key.created", actor)
            .detail("kid", &record.kid)
            .detail("alg", alg.as_str())
            .detail("activates_at", record.activates_at);
        store.create_signing_key(&record, &audit).await?;
        // Every key of this algorithm still without an end stops when the new one starts (the
        // store keeps an earlier retirement time, so an already scheduled end is not moved).
        let retiring: Vec<String> =
            records.iter().filter(|r| r.alg == alg.as_str() && r.retired_at.is_none()).map(|r| r.kid.clone()).collect();
        for kid in &retiring {
            let audit = AuditEvent::new(now, "key.rotated", actor)
                .detail("kid", kid)
                .detail("alg", alg.as_str())
                .detail("retired_at", record.activates_at)
                .detail("successor", &record.kid);
            store.retire_signing_key(kid, record.activates_at, &audit).await?;
        }
        rotated.push(Rotated { alg, kid: record.kid, activates_at: record.activates_at, retiring });
    }
    Ok(rotated)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signs now.
    Current,
    /// Stopped signing; published until its tokens expire.
    Retired,
    /// No longer published.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
        }
    }
}

/// Every key (oldest first) with its state at `now`.
pub async fn list(
    store: &dyn Store,
    tokens: &TokenConfig,
    now: i64,
) -> Result<Vec<(SigningKeyRecord, KeyState)>, ServiceError> {
    let window = verification_window(store, tokens).await?;
    let records = store.list_signing_keys().await?;
    let current: Vec<&str> = SigningAlg::ALL
        .into_iter()
        .filter_map(|a| pick(&records, now, record_fields, a))
        .map(|r| r.kid.as_str())
        .collect();
    let states = records
        .iter()
        .map(|r| {
            let state = if current.contains(&r.kid.as_str()) {
                KeyState::Current
            } else if r.activates_at > now && r.retired_at.is_none_or(|at| at > r.activates_at) {
                KeyState::Next
            } else if published(r, now, window) {
                KeyState::Retired
            } else {
                KeyState::Expired
            };
            (r.clone(), state)
        })
        .collect();
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kid: &str, alg: &str, activates_at: i64, retired_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            alg: alg.into(),
            private_key_enc: String::new(),
            created_at: 0,
            activates_at,
            retired_at,
        }
    }

    #[test]
    fn the_key_that_activated_last_signs() {
        let keys = [
            rec("old", "ES256", 0, Some(100)),
            rec("next", "ES256", 100, None),
            rec("rsa", "PS256", 0, None),
            rec("bad", "XX", 0, None),
        ];
        let at = |now, alg| pick(&keys, now, record_fields, alg).map(|r| r.kid.as_str());
        assert_eq!(at(50, SigningAlg::ES256), Some("old"));
        assert_eq!(at(99, SigningAlg::ES256), Some("old"));
        assert_eq!(at(100, SigningAlg::ES256), Some("next"));
        assert_eq!(at(100, SigningAlg::PS256), Some("rsa"));
        assert_eq!(at(100, SigningAlg::RS256), None);
        // An interrupted rotation (old never retired): the later activation still wins.
        let keys = [rec("old", "ES256", 0, None), rec("next", "ES256", 100, None)];
        assert_eq!(pick(&keys, 99, record_fields, SigningAlg::ES256).map(|r| r.kid.as_str()), Some("old"));
        assert_eq!(pick(&keys, 100, record_fields, SigningAlg::ES256).map(|r| r.kid.as_str()), Some("next"));
    }

    #[test]
    fn a_retired_key_stays_published_for_the_window() {
        let r = rec("old", "ES256", 0, Some(100));
        assert!(published(&r, 0, 50));
        assert!(published(&r, 149, 50));
        assert!(!published(&r, 150, 50));
        assert!(published(&rec("k", "ES256", 0, None), i64::MAX, 50));
    }
}
