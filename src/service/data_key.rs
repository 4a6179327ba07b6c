//! Rotating the data key (`xacthuc keys rotate-data-key`, `retire-data-key`, `data-key-status`;
//! docs/operations.md, "Rotating the data key").
//!
//! A rotation writes a new key-ring file (the new key current, every older key kept so values
//! sealed under it still open, the hashing keys unchanged), tells the running gateway to read it
//! (SIGHUP; a gateway that misses the signal re-reads the file when it meets a value sealed
//! under a key it does not know), then re-encrypts every sealed value of [`SEALED_COLUMNS`] in
//! batches. Each batch is one transaction whose updates are compare-and-set on the old
//! ciphertext: a value the gateway wrote meanwhile is never overwritten, and is picked up by
//! the next pass if it is still under an old key. Running the re-encryption again (`--resume`)
//! finishes an interrupted one and changes nothing once everything is under the current key.
//!
//! # Adding a sealed column
//! Whoever stores a new value sealed with `state.data_key` adds one [`SealedColumn`] to
//! [`SEALED_COLUMNS`]: the table, its primary key, the sealed column, the values the AAD is made
//! of (columns, or a scalar sub-query into a parent table) and a function rebuilding the AAD
//! from them — the same function the service seals with, so the two cannot drift. Nothing else:
//! rotation, `data-key-status` and the retire check then cover it. Values that cannot be
//! rewritten (sealed evidence inside the hash-chained audit log) are counted by
//! [`crate::store::Store::count_audit_sealed_with`] instead, and keep their key from being
//! retired unless the operator accepts losing them.

use crate::audit::AuditEvent;
use crate::crypto::secretbox::{DataKey, DataKeyRing, SecretBoxError};
use crate::store::{AadPart, IdKind, Reseal, RowValue, SealedColumn, Store, StoreError};
use std::collections::BTreeSet;
use std::path::Path;
use uuid::Uuid;

/// Rows re-encrypted per transaction.
pub const DEFAULT_BATCH: i64 = 200;
/// Passes over every column before giving up on values the gateway keeps writing under an old
/// key (it has not read the new key file).
const MAX_PASSES: usize = 5;

fn uuid_at(parts: &[RowValue], i: usize) -> Uuid {
    match parts.get(i) {
        Some(RowValue::Uuid(u)) => *u,
        // A wrong type makes an AAD that fails to open the value: reported, never guessed.
        _ => Uuid::nil(),
    }
}

fn text_at(parts: &[RowValue], i: usize) -> String {
    parts.get(i).map(ToString::to_string).unwrap_or_default()
}

fn national_id_aad(parts: &[RowValue]) -> Vec<u8> {
    // As in `service::accounts` (`account:<id>:national_id`).
    format!("account:{}:national_id", uuid_at(parts, 0)).into_bytes()
}

fn totp_aad(parts: &[RowValue]) -> Vec<u8> {
    crate::authn::totp::aad(uuid_at(parts, 0)).into_bytes()
}

fn signing_key_aad(parts: &[RowValue]) -> Vec<u8> {
    crate::service::keys::aad(&text_at(parts, 0))
}

fn review_file_aad(parts: &[RowValue]) -> Vec<u8> {
    crate::service::proofing::review::file_aad(
        uuid_at(parts, 0),
        uuid_at(parts, 1),
        &text_at(parts, 2),
        uuid_at(parts, 3),
    )
    .into_bytes()
}

/// Every column holding values sealed with the data key. Extend it when you add one (see the
/// module docs).
pub static SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "accounts",
        id_column: "id",
        id_kind: IdKind::Uuid,
        sealed_column: "national_id_enc",
        aad_parts: &[AadPart { sql: "id", kind: IdKind::Uuid }],
        aad: national_id_aad,
    },
    SealedColumn {
        table: "totp_credentials",
        id_column: "id",
        id_kind: IdKind::Uuid,
        sealed_column: "secret_enc",
        aad_parts: &[AadPart { sql: "account_id", kind: IdKind::Uuid }],
        aad: totp_aad,
    },
    SealedColumn {
        table: "signing_keys",
        id_column: "kid",
        id_kind: IdKind::Text,
        sealed_column: "private_key_enc",
        aad_parts: &[AadPart { sql: "kid", kind: IdKind::Text }],
        aad: signing_key_aad,
    },
    SealedColumn {
        table: "review_files",
        id_column: "id",
        id_kind: IdKind::Uuid,
        sealed_column: "sealed",
        aad_parts: &[
            AadPart { sql: "id", kind: IdKind::Uuid },
            AadPart { sql: "request_id", kind: IdKind::Uuid },
            AadPart { sql: "side", kind: IdKind::Text },
            AadPart {
                sql: "(SELECT review_requests.account_id FROM review_requests \
                      WHERE review_requests.id = review_files.request_id)",
                kind: IdKind::Uuid,
            },
        ],
        aad: review_file_aad,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Key(#[from] SecretBoxError),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The operation would lose data; nothing was changed.
    #[error("{0}")]
    Refused(String),
}

/// What a re-encryption did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    /// The key every value is now sealed under.
    pub key_id: String,
    /// Values rewritten under `key_id`.
    pub reencrypted: u64,
    /// Values changed by the gateway between read and write (left as written, re-checked).
    pub changed_meanwhile: u64,
    /// Values that could not be opened with any key of the ring (`table.column id`); left as
    /// they are.
    pub failed: Vec<String>,
    /// Values still not under `key_id` at the end (the failed ones included).
    pub remaining: u64,
}

impl ReencryptReport {
    pub fn complete(&self) -> bool {
        self.remaining == 0
    }
}

/// Re-encrypts every sealed value not under the ring's current key. Idempotent; `progress`
/// gets one line per batch.
pub async fn reencrypt(
    store: &dyn Store,
    ring: &DataKeyRing,
    batch: i64,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<ReencryptReport, DataKeyError> {
    let current = ring.current_id().to_string();
    let prefix = format!("v1.{current}.");
    let batch = batch.clamp(1, 10_000);
    let mut report = ReencryptReport { key_id: current.clone(), ..Default::default() };
    let mut failed = BTreeSet::new();
    for pass in 0..MAX_PASSES {
        for column in SEALED_COLUMNS {
            let mut after: Option<RowValue> = None;
            let mut done = 0u64;
            loop {
                let rows = store.scan_sealed(column, &prefix, after.as_ref(), batch).await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id.clone());
                let mut updates = Vec::with_capacity(rows.len());
                for row in &rows {
                    match ring.reseal(&row.sealed, &(column.aad)(&row.aad_parts)) {
                        Ok(new) => updates.push(Reseal { id: row.id.clone(), old: row.sealed.clone(), new }),
                        Err(e) => {
                            let what = format!("{} {}", column.name(), row.id);
                            if failed.insert(what.clone()) {
                                tracing::warn!(value = %what, error = %e, "a sealed value cannot be re-encrypted");
                            }
                        }
                    }
                }
                let n = store.reseal(column, &updates).await?;
                done += n;
                report.reencrypted += n;
                report.changed_meanwhile += updates.len() as u64 - n;
                if n > 0 {
                    progress(&format!("{}: {done} re-encrypted", column.name()));
                }
            }
        }
        report.remaining = remaining(store, &current).await?;
        if report.remaining <= failed.len() as u64 {
            break;
        }
        // Values written under an old key meanwhile, by an instance that had not yet read the
        // new key file: let it catch up, then another pass.
        progress(&format!(
            "pass {}: {} value(s) written meanwhile under an older key; another pass",
            pass + 1,
            report.remaining - failed.len() as u64
        ));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    report.failed = failed.into_iter().collect();
    Ok(report)
}

/// Values of every sealed column not under key `current`.
async fn remaining(store: &dyn Store, current: &str) -> Result<u64, DataKeyError> {
    let mut n = 0;
    for column in SEALED_COLUMNS {
        for (key, count) in store.count_sealed_by_key(column).await? {
            if key != current {
                n += count.max(0) as u64;
            }
        }
    }
    Ok(n)
}

/// Per sealed column, how many values each key id seals (`data-key-status`).
pub async fn status(store: &dyn Store) -> Result<Vec<(String, Vec<(String, i64)>)>, DataKeyError> {
    let mut out = Vec::new();
    for column in SEALED_COLUMNS {
        out.push((column.name(), store.count_sealed_by_key(column).await?));
    }
    Ok(out)
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotateReport {
    /// The key that was current before, when a new key was made (`None`: `--resume`).
    pub previous: Option<String>,
    pub reencrypt: ReencryptReport,
}

fn write(ring: &DataKeyRing, path: &Path) -> Result<(), DataKeyError> {
    ring.write_file(path).map_err(|error| DataKeyError::Io { path: path.display().to_string(), error })
}

/// What `rotate-data-key` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// The key file to rewrite ([`key_file`]).
    pub key_file: &'a Path,
    /// No new key: only finish re-encrypting under the current one.
    pub resume: bool,
    /// Values per transaction.
    pub batch: i64,
    /// Who asks, for the audit log (`operator`).
    pub actor: &'a str,
}

/// `rotate-data-key`: unless `resume`, makes a new current key and writes the key file (old
/// keys kept), audits `keys.data_key_rotated` and calls `notify` with the new key id (the CLI
/// signals the gateway); then re-encrypts everything under the current key and audits
/// `keys.data_key_reencrypted`.
pub async fn rotate(
    store: &dyn Store,
    rotation: Rotation<'_>,
    now: i64,
    notify: &mut (dyn FnMut(&str) + Send),
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RotateReport, DataKeyError> {
    let Rotation { key_file, resume, batch, actor } = rotation;
    let mut ring = DataKeyRing::read_file(key_file)?;
    let mut previous = None;
    if !resume {
        let new = ring.with_new_current(DataKey::generate()?, now)?;
        write(&new, key_file)?;
        let event = AuditEvent::new(now, "keys.data_key_rotated", actor)
            .detail("key_id", new.current_id())
            .detail("previous_key_ids", ring.key_ids())
            .detail("from_single_key_file", ring.is_legacy());
        store.append_audit(&event).await?;
        progress(&format!(
            "new data key {} written to {} (kept for decryption: {})",
            new.current_id(),
            key_file.display(),
            ring.key_ids().join(", ")
        ));
        previous = Some(ring.current_id().to_string());
        ring = new;
        notify(ring.current_id());
    }
    let report = reencrypt(store, &ring, batch, progress).await?;
    let event = AuditEvent::new(crate::app::now().max(now), "keys.data_key_reencrypted", actor)
        .detail("key_id", &report.key_id)
        .detail("reencrypted", report.reencrypted)
        .detail("failed", report.failed.len())
        .detail("remaining", report.remaining);
    store.append_audit(&event).await?;
    Ok(RotateReport { previous, reencrypt: report })
}

/// `retire-data-key --id ID`: removes an old key from the key file, refusing while any value
/// is still sealed under it. Audit events holding evidence sealed under it also refuse, unless
/// `abandon_audit_evidence` (they cannot be re-encrypted: the log is hash-chained).
pub async fn retire(
    store: &dyn Store,
    key_file: &Path,
    id: &str,
    abandon_audit_evidence: bool,
    actor: &str,
    now: i64,
) -> Result<DataKeyRing, DataKeyError> {
    let ring = DataKeyRing::read_file(key_file)?;
    if id == ring.current_id() {
        return Err(DataKeyError::Refused(format!("{id} is the current data key; rotate first")));
    }
    if !ring.contains(id) {
        return Err(DataKeyError::Refused(format!(
            "no data key {} in {} (keys: {})",
            if id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()) { id } else { "<invalid>" },
            key_file.display(),
            ring.key_ids().join(", ")
        )));
    }
    let mut still = Vec::new();
    for column in SEALED_COLUMNS {
        for (key, count) in store.count_sealed_by_key(column).await? {
            if key == id && count > 0 {
                still.push(format!("{count} in {}", column.name()));
            }
        }
    }
    if !still.is_empty() {
        return Err(DataKeyError::Refused(format!(
            "values are still sealed under data key {id} ({}); run `xacthuc keys rotate-data-key --resume` first",
            still.join(", ")
        )));
    }
    let evidence = store.count_audit_sealed_with(id).await?;
    if evidence > 0 && !abandon_audit_evidence {
        return Err(DataKeyError::Refused(format!(
            "{evidence} audit event(s) hold evidence sealed under data key {id} (the audit log cannot be \
             re-encrypted); keep the key, or pass --abandon-audit-evidence after backing up the key file"
        )));
    }
    let new = ring.without(id)?;
    write(&new, key_file)?;
    let event = AuditEvent::new(now, "keys.data_key_retired", actor)
        .detail("key_id", id)
        .detail("current_key_id", new.current_id())
        .detail("audit_evidence_abandoned", evidence);
    store.append_audit(&event).await?;
    Ok(new)
}

/// SIGHUP: re-reads the key file (a rotation or retirement by the CLI). A bad file changes
/// nothing: the keys in force stay.
pub fn reload(state: &crate::app::AppState) {
    if state.data_key.source().is_none() {
        return;
    }
    match state.data_key.reload() {
        Ok(id) => tracing::info!(current = %id, "data keys reloaded"),
        Err(e) => tracing::error!("data key reload refused, the keys in force stay: {e}"),
    }
}

/// The key file a rotation rewrites: `data_key_file`, or in development the generated
/// `data_dir/data.key`. An inline `data_key` cannot be rotated.
pub fn key_file(config: &crate::config::Config) -> Result<std::path::PathBuf, DataKeyError> {
    if let Some(path) = &config.data_key_file {
        return Ok(path.clone());
    }
    if config.data_key.is_some() {
        return Err(DataKeyError::Refused(
            "the data key is set inline (data_key / XACTHUC_DATA_KEY): put it in a file, set data_key_file, \
             restart the gateway, then rotate"
                .into(),
        ));
    }
    if config.development {
        return Ok(config.data_dir.join("data.key"));
    }
    Err(DataKeyError::Refused("data_key_file is not set".into()))
}
