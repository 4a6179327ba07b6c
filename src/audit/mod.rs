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

/// SHA-256 (hex) over a canonical JSON encoding of the event, the previous hash and the
/// sequence number: one object with sorted keys, `{"account_id":…,"actor":…,"at":…,
/// "client_id":…,"details":…,"kind":…,"prev":"<previous hash>","seq":<seq>}`. The previous hash
/// and the sequence number come last, so the body is [`chain_prefix`], the previous hash,
/// [`CHAIN_SEQ`], the sequence number and `}`: PostgreSQL computes the same hash inside the
/// append statement (`store::postgres`), from the prefix and the head row it locks.
pub fn chain_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    let body = format!("{}{prev_hash}{CHAIN_SEQ}{seq}}}", chain_prefix(event));
    let d = digest::digest(&digest::SHA256, body.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What follows the previous hash in the hashed body, up to the sequence number.
pub const CHAIN_SEQ: &str = "\",\"seq\":";

/// The hashed body up to the previous hash: the event's fields as a JSON object (serde_json's
/// map keeps keys sorted), without its closing brace, then `,"prev":"`.
pub fn chain_prefix(event: &AuditEvent) -> String {
    let mut body = serde_json::json!({
        "at": event.at,
        "kind": event.kind,
        "actor": event.actor,
        "account_id": event.account_id,
        "client_id": event.client_id,
        "details": event.details,
    })
    .to_string();
    body.pop();
    body.push_str(",\"prev\":\"");
    body
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

    /// The hash as first defined (one `json!` object with `prev` and `seq` among the fields):
    /// chains written before the body was split for PostgreSQL must still verify.
    fn hash_as_first_defined(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
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

    #[test]
    fn split_body_hashes_as_first_defined() {
        let account = uuid::Uuid::parse_str("0195f3c4-7d2e-7a10-9b3c-5e6f7a8b9c0d").ok();
        let events = [
            AuditEvent::new(0, "", ""),
            AuditEvent::new(1_790_000_000, "session.created", "citizen").detail("method", "pwd"),
            AuditEvent {
                account_id: account,
                client_id: Some("cổng-dịch-vụ \"công\" \\ /".into()),
                ..AuditEvent::new(-5, "proofing.decided", "staff:Nguyễn Thị Bình")
                    .detail("nested", serde_json::json!({"z": [1, "hai", {"ba": null}], "a": 0.25, "e": {}}))
                    .detail("big", i64::MAX)
            },
        ];
        for (seq, e) in (1..).zip(&events) {
            for prev in [GENESIS_HASH, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"] {
                assert_eq!(chain_hash(prev, seq, e), hash_as_first_defined(prev, seq, e));
            }
        }
        assert_eq!(
            chain_hash(GENESIS_HASH, i64::MAX, &events[1]),
            hash_as_first_defined(GENESIS_HASH, i64::MAX, &events[1])
        );
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
