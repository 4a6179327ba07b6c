//! The data-key ring: several encryption keys (one current, older ones kept to decrypt values
//! sealed before a rotation) and the hashing keys, which never change.
//!
//! # Why the hashing keys are separate
//! Keyed hashes (`national_id_hash` look-ups, throttle and audit user-name hashes, the demo
//! client's secret) and pairwise subject identifiers cannot be "re-encrypted": a pairwise `sub`
//! is held by relying parties. So they use their own two keys, fixed for the life of a
//! deployment. A ring made from a single legacy key derives them from that key exactly as
//! [`DataKey::keyed_hash`] and [`DataKey::pairwise_subject`] do (HKDF, same salt and info
//! strings), so a database written with a single key keeps every hash and `sub` after its
//! first rotation. Only the derived 32-byte HMAC keys are written to the key file, never the
//! legacy key itself once it is retired.
//!
//! # Key file
//! Either the legacy form — one base64 key, as printed by `xacthuc keys generate-data-key` —
//! or a TOML key ring (written by `xacthuc keys rotate-data-key`, mode 0600):
//!
//! ```toml
//! format = "xacthuc-data-keys-v1"
//! current = "9d1c2e4f"
//! keyed_hash_key = "<base64, 32 bytes>"
//! pairwise_key = "<base64, 32 bytes>"
//!
//! [[keys]]
//! id = "9d1c2e4f"
//! key = "<base64, 32 bytes>"
//! created_at = 1795000000
//!
//! [[keys]]
//! id = "3106ab07"
//! key = "<base64, 32 bytes>"
//! created_at = 0
//! ```
//!
//! Every `id` is checked against the key it names (the id is derived from the key), so a
//! garbled file is refused rather than sealing data under an unexpected key.
//!
//! # Reloading
//! [`DataKeys`] is the handle the application holds: the ring in force, swapped whole by
//! [`DataKeys::reload`] (SIGHUP). A value sealed under a key the ring does not know makes it
//! re-read its file once (at most every [`RELOAD_ON_UNKNOWN_SECONDS`]), so a gateway that
//! missed the signal still reads values re-encrypted by a rotation.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};

use super::{DATA_KEY_LEN, DataKey, HKDF_SALT, INFO_KEYED_HASH, INFO_PAIRWISE, Len, SecretBoxError, sealed_key_id};
use crate::crypto::random::random_bytes;

/// The `format` value of a key-ring file.
pub const KEY_FILE_FORMAT: &str = "xacthuc-data-keys-v1";
/// A value sealed under an unknown key re-reads the key file at most this often.
pub const RELOAD_ON_UNKNOWN_SECONDS: u64 = 5;

/// The two hashing keys. Never rotated (see the module docs).
#[derive(Clone)]
struct HashKeys {
    keyed_hash_raw: [u8; DATA_KEY_LEN],
    pairwise_raw: [u8; DATA_KEY_LEN],
    keyed_hash: hmac::Key,
    pairwise: hmac::Key,
}

impl HashKeys {
    fn from_raw(keyed_hash_raw: [u8; DATA_KEY_LEN], pairwise_raw: [u8; DATA_KEY_LEN]) -> Self {
        Self {
            keyed_hash: hmac::Key::new(hmac::HMAC_SHA256, &keyed_hash_raw),
            pairwise: hmac::Key::new(hmac::HMAC_SHA256, &pairwise_raw),
            keyed_hash_raw,
            pairwise_raw,
        }
    }

    /// The same HMAC keys a legacy single [`DataKey`] uses.
    fn derived_from(key: &DataKey) -> Result<Self, SecretBoxError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&key.raw);
        let expand = |info: &[u8]| -> Result<[u8; DATA_KEY_LEN], SecretBoxError> {
            let mut out = [0u8; DATA_KEY_LEN];
            prk.expand(&[info], Len(DATA_KEY_LEN))
                .and_then(|okm| okm.fill(&mut out))
                .map_err(|_| SecretBoxError::Internal("HKDF expand"))?;
            Ok(out)
        };
        Ok(Self::from_raw(expand(INFO_KEYED_HASH)?, expand(INFO_PAIRWISE)?))
    }

    fn generate() -> Result<Self, SecretBoxError> {
        Ok(Self::from_raw(random_bytes::<DATA_KEY_LEN>()?, random_bytes::<DATA_KEY_LEN>()?))
    }
}

/// One encryption key of the ring and when it was made (unix seconds; 0 when unknown).
#[derive(Clone)]
struct RingKey {
    key: DataKey,
    created_at: i64,
}

/// Several data keys and the hashing keys. Immutable: rotation builds a new ring.
#[derive(Clone)]
pub struct DataKeyRing {
    /// Index of the current key in `keys`.
    current: usize,
    keys: Vec<RingKey>,
    hash: HashKeys,
    /// Read from a single-key (legacy) file or value.
    legacy: bool,
}

impl fmt::Debug for DataKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKeyRing(<redacted>, current={}, keys={:?})", self.current_id(), self.key_ids())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    current: String,
    keyed_hash_key: String,
    pairwise_key: String,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileEntry {
    id: String,
    key: String,
    #[serde(default)]
    created_at: i64,
}

fn decode_32(what: &str, encoded: &str) -> Result<[u8; DATA_KEY_LEN], SecretBoxError> {
    let key = DataKey::from_base64(encoded).map_err(|e| SecretBoxError::InvalidKey(format!("{what}: {e}")))?;
    Ok(key.raw)
}

impl DataKeyRing {
    /// A ring of one legacy key: the hashing keys derived from it, as before rings existed.
    pub fn from_legacy(key: DataKey) -> Result<Self, SecretBoxError> {
        let hash = HashKeys::derived_from(&key)?;
        Ok(Self { current: 0, keys: vec![RingKey { key, created_at: 0 }], hash, legacy: true })
    }

    /// A fresh ring for a new deployment: one random key, random hashing keys.
    pub fn generate(now: i64) -> Result<Self, SecretBoxError> {
        Ok(Self {
            current: 0,
            keys: vec![RingKey { key: DataKey::generate()?, created_at: now }],
            hash: HashKeys::generate()?,
            legacy: false,
        })
    }

    /// Parses a key file or configured value: a legacy base64 key or a TOML ring.
    pub fn parse(text: &str) -> Result<Self, SecretBoxError> {
        let trimmed = text.trim();
        // One line: the legacy single key (a ring file always has several lines).
        if !trimmed.contains('\n') {
            return Self::from_legacy(DataKey::from_base64(trimmed)?);
        }
        let file: KeyFile = toml::from_str(text).map_err(|e| {
            // toml's message quotes the offending line, which may hold a key: keep only the position.
            let at = e.span().map(|s| format!(" at byte {}", s.start)).unwrap_or_default();
            SecretBoxError::InvalidKey(format!("not a data-key file{at}"))
        })?;
        if file.format != KEY_FILE_FORMAT {
            return Err(SecretBoxError::InvalidKey(format!("format must be \"{KEY_FILE_FORMAT}\"")));
        }
        let hash = HashKeys::from_raw(
            decode_32("keyed_hash_key", &file.keyed_hash_key)?,
            decode_32("pairwise_key", &file.pairwise_key)?,
        );
        let mut keys = Vec::with_capacity(file.keys.len());
        let mut seen = BTreeSet::new();
        for (i, entry) in file.keys.iter().enumerate() {
            let key = DataKey::from_base64(&entry.key)
                .map_err(|e| SecretBoxError::InvalidKey(format!("keys[{i}] ({}): {e}", printable(&entry.id))))?;
            if key.id() != entry.id {
                return Err(SecretBoxError::InvalidKey(format!(
                    "keys[{i}]: id {} does not match its key (whose id is {})",
                    printable(&entry.id),
                    key.id()
                )));
            }
            if !seen.insert(entry.id.clone()) {
                return Err(SecretBoxError::InvalidKey(format!("keys[{i}]: id {} appears twice", entry.id)));
            }
            keys.push(RingKey { key, created_at: entry.created_at });
        }
        let current = keys.iter().position(|k| k.key.id() == file.current).ok_or_else(|| {
            SecretBoxError::InvalidKey(format!("current = {} names none of the keys", printable(&file.current)))
        })?;
        Ok(Self { current, keys, hash, legacy: false })
    }

    /// The TOML key-ring file text (always the ring format, even for a legacy ring).
    pub fn to_file_text(&self) -> String {
        let file = KeyFile {
            format: KEY_FILE_FORMAT.into(),
            current: self.current_id().into(),
            keyed_hash_key: STANDARD.encode(self.hash.keyed_hash_raw),
            pairwise_key: STANDARD.encode(self.hash.pairwise_raw),
            keys: self
                .keys
                .iter()
                .map(|k| KeyFileEntry { id: k.key.id().into(), key: k.key.to_base64(), created_at: k.created_at })
                .collect(),
        };
        let body = toml::to_string(&file).unwrap_or_default();
        format!(
            "# xacthuc data keys — SECRET (mode 0600). Back this file up before and after every\n\
             # rotation: without it the personal data in the database cannot be read.\n\
             # Written by `xacthuc keys rotate-data-key`; see docs/operations.md.\n{body}"
        )
    }

    /// A new ring with `key` as the current key and every key of this one kept for decryption.
    pub fn with_new_current(&self, key: DataKey, now: i64) -> Result<Self, SecretBoxError> {
        if self.keys.iter().any(|k| k.key.id() == key.id()) {
            return Err(SecretBoxError::InvalidKey(format!("key {} is already in the ring", key.id())));
        }
        let mut keys = vec![RingKey { key, created_at: now }];
        keys.extend(self.keys.iter().cloned());
        Ok(Self { current: 0, keys, hash: self.hash.clone(), legacy: false })
    }

    /// A new ring without the old key `id`. The current key cannot be removed.
    pub fn without(&self, id: &str) -> Result<Self, SecretBoxError> {
        if id == self.current_id() {
            return Err(SecretBoxError::InvalidKey(format!("{} is the current key", printable(id))));
        }
        let Some(index) = self.keys.iter().position(|k| k.key.id() == id) else {
            return Err(SecretBoxError::InvalidKey(format!("no key {} in the ring", printable(id))));
        };
        let mut keys = self.keys.clone();
        keys.remove(index);
        let current = keys.iter().position(|k| k.key.id() == self.current_id()).unwrap_or(0);
        Ok(Self { current, keys, hash: self.hash.clone(), legacy: false })
    }

    pub fn current(&self) -> &DataKey {
        &self.keys[self.current].key
    }

    pub fn current_id(&self) -> &str {
        self.current().id()
    }

    /// Every key id, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids = vec![self.current_id().to_string()];
        ids.extend(self.keys.iter().map(|k| k.key.id().to_string()).filter(|id| id != self.current_id()));
        ids
    }

    /// When key `id` was made (unix seconds; 0 for a key from before rings).
    pub fn created_at(&self, id: &str) -> Option<i64> {
        self.keys.iter().find(|k| k.key.id() == id).map(|k| k.created_at)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.key.id() == id)
    }

    /// Read from a single base64 key (not yet a ring file).
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Seals under the current key (see [`DataKey::encrypt`]).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, SecretBoxError> {
        self.current().encrypt(plaintext, aad)
    }

    /// Opens a value sealed under any key of the ring. `WrongKey` names a key the ring lacks.
    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let Some(id) = sealed_key_id(sealed) else {
            return self.current().decrypt(sealed, aad);
        };
        match self.keys.iter().find(|k| k.key.id() == id) {
            Some(k) => k.key.decrypt(sealed, aad),
            None => Err(SecretBoxError::WrongKey { expected: self.current_id().into(), found: id.into() }),
        }
    }

    /// Whether `sealed` is sealed under the current key (nothing to re-encrypt).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed_key_id(sealed) == Some(self.current_id())
    }

    /// Opens `sealed` and seals it again under the current key, with the same `aad`.
    pub fn reseal(&self, sealed: &str, aad: &[u8]) -> Result<String, SecretBoxError> {
        self.encrypt(&self.decrypt(sealed, aad)?, aad)
    }

    /// See [`DataKey::keyed_hash`]; the same value for the life of the deployment.
    pub fn keyed_hash(&self, domain: &str, value: &[u8]) -> String {
        super::hmac_b64(&self.hash.keyed_hash, domain.as_bytes(), value)
    }

    /// See [`DataKey::pairwise_subject`]; the same value for the life of the deployment.
    pub fn pairwise_subject(&self, sector: &str, account_id: &str) -> String {
        super::hmac_b64(&self.hash.pairwise, sector.as_bytes(), account_id.as_bytes())
    }

    /// Reads a key file (legacy or ring). Errors name the file, never key material.
    pub fn read_file(path: &Path) -> Result<Self, SecretBoxError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretBoxError::InvalidKey(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            SecretBoxError::InvalidKey(m) => SecretBoxError::InvalidKey(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Replaces `path` with this ring, atomically: a new file (mode 0600) written and synced
    /// next to it, then renamed over it, then the directory synced. A crash leaves either the
    /// old file or the new one, never a mix.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data.key".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let result = (|| {
            let mut f = options.open(&tmp)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(self.to_file_text().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            #[cfg(unix)]
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Key ids come from files and sealed values: shown only if they look like one.
fn printable(id: &str) -> String {
    if id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()) { id.to_string() } else { "<invalid>".into() }
}

/// The data keys the application uses: the ring in force, swappable while requests run.
/// Cheap to clone (one `Arc`); clones share the ring.
#[derive(Clone)]
pub struct DataKeys(Arc<Shared>);

struct Shared {
    ring: arc_swap::ArcSwap<DataKeyRing>,
    /// The key file the ring was read from (`None`: a configured value, not reloadable).
    source: Option<PathBuf>,
    last_reload: Mutex<Option<Instant>>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKeys({:?})", self.ring())
    }
}

impl From<DataKey> for DataKeys {
    /// A single key, as before key rings (tests, tools).
    fn from(key: DataKey) -> Self {
        let ring = DataKeyRing::from_legacy(key).unwrap_or_else(|_| unreachable!("HKDF with fixed sizes"));
        Self::new(ring, None)
    }
}

impl DataKeys {
    pub fn new(ring: DataKeyRing, source: Option<PathBuf>) -> Self {
        Self(Arc::new(Shared { ring: arc_swap::ArcSwap::from_pointee(ring), source, last_reload: Mutex::new(None) }))
    }

    /// Reads `path` (legacy or ring); [`DataKeys::reload`] re-reads it.
    pub fn from_file(path: &Path) -> Result<Self, SecretBoxError> {
        Ok(Self::new(DataKeyRing::read_file(path)?, Some(path.to_path_buf())))
    }

    /// The ring in force now.
    pub fn ring(&self) -> Arc<DataKeyRing> {
        self.0.ring.load_full()
    }

    pub fn source(&self) -> Option<&Path> {
        self.0.source.as_deref()
    }

    pub fn current_id(&self) -> String {
        self.0.ring.load().current_id().to_string()
    }

    /// Re-reads the key file and puts the ring in force. An unreadable or invalid file, or one
    /// whose hashing keys differ (which would change every look-up hash and pairwise `sub`),
    /// changes nothing. Returns the current key id afterwards.
    pub fn reload(&self) -> Result<String, SecretBoxError> {
        let Some(path) = &self.0.source else {
            return Err(SecretBoxError::InvalidKey("the data key is configured inline: nothing to reload".into()));
        };
        if let Ok(mut at) = self.0.last_reload.lock() {
            *at = Some(Instant::now());
        }
        let new = DataKeyRing::read_file(path)?;
        let old = self.ring();
        if new.hash.keyed_hash_raw != old.hash.keyed_hash_raw || new.hash.pairwise_raw != old.hash.pairwise_raw {
            return Err(SecretBoxError::InvalidKey(format!(
                "{}: its hashing keys differ from the ones in use (ID-number look-ups and pairwise \
                 identifiers would change); refused",
                path.display()
            )));
        }
        let id = new.current_id().to_string();
        self.0.ring.store(Arc::new(new));
        Ok(id)
    }

    /// A reload after an unknown key id, at most every [`RELOAD_ON_UNKNOWN_SECONDS`].
    fn reload_for_unknown_key(&self) -> bool {
        if self.0.source.is_none() {
            return false;
        }
        {
            let Ok(at) = self.0.last_reload.lock() else { return false };
            if at.is_some_and(|t| t.elapsed() < Duration::from_secs(RELOAD_ON_UNKNOWN_SECONDS)) {
                return false;
            }
        }
        match self.reload() {
            Ok(id) => {
                tracing::info!(current = %id, "data keys re-read after a value sealed under an unknown key");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the data keys failed");
                false
            }
        }
    }

    /// Seals under the current key.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, SecretBoxError> {
        self.0.ring.load().encrypt(plaintext, aad)
    }

    /// Opens a value sealed under any key of the ring; a key the ring lacks makes it re-read
    /// the key file once (a rotation by another process) before giving up.
    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        match self.0.ring.load().decrypt(sealed, aad) {
            Err(SecretBoxError::WrongKey { .. }) if self.reload_for_unknown_key() => {
                self.0.ring.load().decrypt(sealed, aad)
            }
            other => other,
        }
    }

    pub fn keyed_hash(&self, domain: &str, value: &[u8]) -> String {
        self.0.ring.load().keyed_hash(domain, value)
    }

    pub fn pairwise_subject(&self, sector: &str, account_id: &str) -> String {
        self.0.ring.load().pairwise_subject(sector, account_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const AAD: &[u8] = b"account:7f0c:national_id";

    #[test]
    fn legacy_ring_keeps_hashes_and_pairwise_subjects() {
        let legacy = DataKey::from_bytes([0x42; 32]).unwrap();
        let ring = DataKeyRing::parse(&format!("{}\n", legacy.to_base64())).unwrap();
        assert!(ring.is_legacy());
        assert_eq!(ring.current_id(), "3106ab07");
        // The pinned values of the single-key schedule (secretbox::tests::pinned_outputs).
        assert_eq!(ring.keyed_hash("national_id", b"001099012345"), "tjz4o4VRb0uJaiRVjOlh6Swo6e2Aj2mwfZOXroZdka0");
        assert_eq!(ring.pairwise_subject("rp.example", "acct-1"), "-A8ZvCII3eCzZQu8YUfJXUBZqGciGLTTsL6eFYU4Ghs");
        let sealed = "v1.3106ab07.AAECAwQFBgcICQoLjkuN3RS7FHcv33z7FFXt8QrID22ZF2tK2JOdmg";
        assert_eq!(ring.decrypt(sealed, AAD).unwrap(), b"001099012345");
    }

    #[test]
    fn rotation_keeps_hashes_and_old_values_readable() {
        let legacy = DataKey::from_bytes([0x42; 32]).unwrap();
        let ring = DataKeyRing::from_legacy(legacy.clone()).unwrap();
        let old_sealed = ring.encrypt(b"001099012345", AAD).unwrap();
        let rotated = ring.with_new_current(DataKey::generate().unwrap(), 1_800_000_000).unwrap();
        assert_ne!(rotated.current_id(), "3106ab07");
        assert_eq!(rotated.key_ids().len(), 2);
        assert_eq!(rotated.key_ids()[1], "3106ab07");
        // Old values still open; new ones are sealed under the new key.
        assert_eq!(rotated.decrypt(&old_sealed, AAD).unwrap(), b"001099012345");
        assert!(!rotated.is_current(&old_sealed));
        let new_sealed = rotated.reseal(&old_sealed, AAD).unwrap();
        assert!(rotated.is_current(&new_sealed));
        assert_eq!(rotated.decrypt(&new_sealed, AAD).unwrap(), b"001099012345");
        assert_eq!(rotated.keyed_hash("national_id", b"1"), legacy.keyed_hash("national_id", b"1"));
        assert_eq!(rotated.pairwise_subject("rp", "a"), legacy.pairwise_subject("rp", "a"));

        // Through the file format, and after retiring the legacy key.
        let reread = DataKeyRing::parse(&rotated.to_file_text()).unwrap();
        assert!(!reread.is_legacy());
        assert_eq!(reread.current_id(), rotated.current_id());
        assert_eq!(reread.created_at(rotated.current_id()), Some(1_800_000_000));
        assert_eq!(reread.decrypt(&old_sealed, AAD).unwrap(), b"001099012345");
        let retired = reread.without("3106ab07").unwrap();
        let retired = DataKeyRing::parse(&retired.to_file_text()).unwrap();
        assert_eq!(retired.key_ids(), vec![rotated.current_id().to_string()]);
        assert!(!retired.to_file_text().contains(&legacy.to_base64()));
        assert_eq!(retired.keyed_hash("national_id", b"1"), legacy.keyed_hash("national_id", b"1"));
        assert_eq!(retired.pairwise_subject("rp", "a"), legacy.pairwise_subject("rp", "a"));
        assert_eq!(retired.decrypt(&new_sealed, AAD).unwrap(), b"001099012345");
        assert!(matches!(retired.decrypt(&old_sealed, AAD), Err(SecretBoxError::WrongKey { .. })));
    }

    #[test]
    fn current_key_cannot_be_removed_nor_added_twice() {
        let ring = DataKeyRing::generate(0).unwrap();
        assert!(ring.without(ring.current_id()).is_err());
        assert!(ring.without("00000000").is_err());
        assert!(ring.with_new_current(ring.current().clone(), 1).is_err());
    }

    #[test]
    fn bad_files_are_refused_without_echoing_keys() {
        let ring = DataKeyRing::generate(0).unwrap().with_new_current(DataKey::generate().unwrap(), 5).unwrap();
        let text = ring.to_file_text();
        let secret = ring.current().to_base64();
        let other = DataKey::generate().unwrap().to_base64();
        let cases = [
            text.replace(KEY_FILE_FORMAT, "xacthuc-data-keys-v9"),
            text.replace(&format!("current = \"{}\"", ring.current_id()), "current = \"ffffffff\""),
            text.replacen(&secret, &other, 1),
            text.replacen(&secret, "AAAA", 1),
            format!("{text}\nextra = 1\n"),
            text.replace("[[keys]]", "[keys]"),
            "format = \"xacthuc-data-keys-v1\"\n".into(),
        ];
        for case in &cases {
            match DataKeyRing::parse(case) {
                Err(SecretBoxError::InvalidKey(msg)) => {
                    assert!(!msg.contains(&secret) && !msg.contains(&other), "{msg}")
                }
                other => panic!("accepted or odd error: {other:?}\n{case}"),
            }
        }
        assert!(DataKeyRing::parse(&text).is_ok());
    }

    #[test]
    fn write_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        std::fs::write(&path, "old").unwrap();
        let ring = DataKeyRing::generate(7).unwrap();
        ring.write_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(DataKeyRing::read_file(&path).unwrap().current_id(), ring.current_id());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn handle_reloads_and_reads_values_of_a_newer_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let legacy = DataKey::generate().unwrap();
        std::fs::write(&path, legacy.to_base64()).unwrap();
        let keys = DataKeys::from_file(&path).unwrap();
        let before = keys.encrypt(b"x", AAD).unwrap();
        let hash = keys.keyed_hash("d", b"v");

        // Another process rotates: this handle reads the new key's values without a signal.
        let rotated = keys.ring().with_new_current(DataKey::generate().unwrap(), 1).unwrap();
        rotated.write_file(&path).unwrap();
        let after = rotated.encrypt(b"y", AAD).unwrap();
        assert_eq!(keys.decrypt(&after, AAD).unwrap(), b"y");
        assert_eq!(keys.current_id(), rotated.current_id());
        assert_eq!(keys.decrypt(&before, AAD).unwrap(), b"x");
        assert!(keys.ring().is_current(&keys.encrypt(b"z", AAD).unwrap()));
        assert_eq!(keys.keyed_hash("d", b"v"), hash);

        // A file with other hashing keys is refused; the ring in force stays.
        DataKeyRing::generate(0).unwrap().write_file(&path).unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(keys.current_id(), rotated.current_id());

        // A clone shares the ring.
        let clone = keys.clone();
        rotated.write_file(&path).unwrap();
        let newer = rotated.with_new_current(DataKey::generate().unwrap(), 2).unwrap();
        newer.write_file(&path).unwrap();
        keys.reload().unwrap();
        assert_eq!(clone.current_id(), newer.current_id());
    }
}
