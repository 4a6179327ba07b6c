//! Audit events: every security-relevant change is recorded in the same transaction as the
//! change itself. Events form a hash chain (each carries the hash of the one before), so an
//! edit, deletion or reordering of the log is detectable. The chain hash is computed here,
//! purely; the stores call [`chain_hash`] while appending.

use ring::digest;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Hash that precedes the first event of the chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: i64,
    /// Dotted kind, e.g. `account.created`, `login.failed`, `token.code_replayed`.
    pub kind: String,
    /// Who did it: `account:<uuid>`, `client:<id>`, `operator`, `system`.
    pub actor: String,
    pub account_id: Option<Uuid>,
    pub client_id: Option<String>,
    /// Never personal data in clear: masked values only.
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(at: i64, kind: &str, actor: impl Into<String>) -> Self {
        AuditEvent {
            at,
            kind: kind.to_string(),
            actor: actor.into(),
            account_id: None,
            client_id: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn account(mut self, id: Uuid) -> Self {
        self.account_id = Some(id);
        self
    }

    pub fn client(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Serialize) -> Self {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        }
        self
    }
}

/// An event as stored, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// SHA-256 (hex) over the previous hash and a canonical encoding of the event and its sequence
/// number. Field order is fixed by the struct, so the JSON is canonical for our own events.
pub fn chain_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    let body = serde_json::json!({
        "prev": prev_hash,
        "seq": seq,
        "at": event.at,
        "kind": event.kind,
        "actor": event.actor,
        "account_id": event.account_id,
        "client_id": event.client_id,
        "details": event.details,
    });
    let d = digest::digest(&digest::SHA256, body.to_string().as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a chain read in sequence order; returns the sequence number of the first bad event.
pub fn verify_chain(events: &[StoredAuditEvent]) -> Result<(), i64> {
    verify_chain_from(GENESIS_HASH, 1, events).map(|_| ())
}

/// [`verify_chain`] for one page of a long chain: `events` must start at `first_seq` and follow
/// `prev_hash`. Returns the hash of the last event (where the next page continues).
pub fn verify_chain_from(prev_hash: &str, first_seq: i64, events: &[StoredAuditEvent]) -> Result<String, i64> {
    let mut prev = prev_hash.to_string();
    for (expected_seq, e) in (first_seq..).zip(events) {
        if e.seq != expected_seq || e.prev_hash != prev || chain_hash(&prev, e.seq, &e.event) != e.hash {
            return Err(e.seq);
        }
        prev = e.hash.clone();
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<StoredAuditEvent> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent::new(seq * 10, "x.y", "system").detail("n", seq);
                let hash = chain_hash(&prev, seq, &event);
                let e = StoredAuditEvent { seq, event, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn detects_edit_delete_reorder() {
        let good = chain(4);
        assert_eq!(verify_chain(&good), Ok(()));
        let mut edited = good.clone();
        edited[2].event.kind = "other".into();
        assert_eq!(verify_chain(&edited), Err(3));
        let mut deleted = good.clone();
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted), Err(3));
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(verify_chain(&reordered), Err(3));
    }
}
