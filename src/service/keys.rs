//! The signing keys: loaded once at start (parsed into ring key pairs a single time), created
//! on first start, one per algorithm. The private keys are stored sealed with the data key.

use super::ServiceError;
use crate::audit::AuditEvent;
use crate::crypto::secretbox::DataKey;
use crate::crypto::signing::{self, SigningAlg, SigningKey};
use crate::store::{SigningKeyRecord, Store};
use std::collections::HashMap;
use std::sync::Arc;

pub struct KeyRing {
    current: HashMap<SigningAlg, Arc<SigningKey>>,
    /// The JWKS document, serialized once per key change.
    jwks_json: String,
}

fn aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

impl KeyRing {
    /// Loads the newest unretired key of every algorithm, creating the missing ones. Returns the
    /// ring and the algorithms whose keys were just generated.
    pub async fn load_or_create(
        store: &dyn Store,
        data_key: &DataKey,
        now: i64,
    ) -> Result<(KeyRing, Vec<SigningAlg>), ServiceError> {
        let mut created = Vec::new();
        let mut records = store.list_signing_keys().await?;
        for alg in SigningAlg::ALL {
            if records.iter().any(|r| r.alg == alg.as_str() && r.retired_at.is_none()) {
                continue;
            }
            // RSA generation is slow (hundreds of ms): keep it off the async threads.
            let der = tokio::task::spawn_blocking(move || signing::generate_pkcs8(alg))
                .await
                .map_err(ServiceError::internal)?
                .map_err(ServiceError::internal)?;
            let suffix = super::random_token()?;
            let kid = format!("{}-{}-{}", alg.as_str().to_ascii_lowercase(), now, &suffix[..8]);
            let record = SigningKeyRecord {
                private_key_enc: data_key.encrypt(&der, &aad(&kid)).map_err(ServiceError::internal)?,
                kid: kid.clone(),
                alg: alg.as_str().to_string(),
                created_at: now,
                activates_at: now,
                retired_at: None,
            };
            let audit = AuditEvent::new(now, "key.created", "system").detail("kid", &kid).detail("alg", alg.as_str());
            store.create_signing_key(&record, &audit).await?;
            records.push(record);
            created.push(alg);
        }
        let mut current = HashMap::new();
        let mut published = Vec::new();
        for r in &records {
            let alg: SigningAlg = r.alg.parse().map_err(ServiceError::internal)?;
            let der = data_key.decrypt(&r.private_key_enc, &aad(&r.kid)).map_err(|e| {
                ServiceError::Internal(format!("signing key {} cannot be decrypted with the data key: {e}", r.kid))
            })?;
            let key = Arc::new(SigningKey::from_pkcs8(r.kid.clone(), alg, &der).map_err(ServiceError::internal)?);
            if r.retired_at.is_none() {
                // Records are oldest first: the newest unretired key wins.
                current.insert(alg, key.clone());
            }
            published.push(key);
        }
        let refs: Vec<&SigningKey> = published.iter().map(|k| k.as_ref()).collect();
        let jwks_json = signing::jwks(&refs).to_string();
        Ok((KeyRing { current, jwks_json }, created))
    }

    pub fn key_for(&self, alg: SigningAlg) -> Option<&SigningKey> {
        self.current.get(&alg).map(|k| k.as_ref())
    }

    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    pub fn algorithms(&self) -> Vec<SigningAlg> {
        SigningAlg::ALL.into_iter().filter(|a| self.current.contains_key(a)).collect()
    }
}
