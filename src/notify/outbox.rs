//! The development outbox: messages are not sent but kept, so a developer can read the codes.
//! **Development only** — `Config::validate` refuses `"outbox"` when `development = false`.
//!
//! For now the outbox is a bounded ring of the last N messages in this process's memory.
//! TODO(issue 4): move it into the store (so several instances share it and it survives a
//! restart) and serve it at `/dev/outbox` when development mode is on.

use super::{Message, Receipt, Via};
use std::collections::VecDeque;
use std::sync::Mutex;

/// One kept message, numbered in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: u64,
    /// Unix time it was kept.
    pub at: i64,
    pub message: Message,
}

pub struct Outbox {
    capacity: usize,
    inner: Mutex<Ring>,
}

struct Ring {
    next_id: u64,
    entries: VecDeque<OutboxEntry>,
}

impl Outbox {
    /// Keeps the last `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Outbox {
        let capacity = capacity.max(1);
        Outbox { capacity, inner: Mutex::new(Ring { next_id: 1, entries: VecDeque::with_capacity(capacity) }) }
    }

    // A panic while holding the lock cannot leave the ring inconsistent (each change is one
    // push or pop), so a poisoned lock is used as is.
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `message`, dropping the oldest beyond the capacity.
    pub fn push(&self, message: Message, now: i64) -> Receipt {
        let channel = message.channel;
        // Development only, and there is no /dev/outbox page yet: the log is where a developer
        // reads the code.
        // Never the text: it holds a one-time code. Developers read it at /dev/outbox.
        tracing::warn!(?channel, to = %message.masked_to(), "DEVELOPMENT OUTBOX: message kept, not sent (read it at /dev/outbox)");
        let mut ring = self.ring();
        let id = ring.next_id;
        ring.next_id += 1;
        if ring.entries.len() == self.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(OutboxEntry { id, at: now, message });
        Receipt { channel, via: Via::Outbox, reference: Some(format!("outbox #{id}")) }
    }

    /// The kept messages, newest first.
    pub fn recent(&self) -> Vec<OutboxEntry> {
        self.ring().entries.iter().rev().cloned().collect()
    }

    /// The newest message to `to`, if any (how tests and the development page find a code).
    pub fn latest_to(&self, to: &str) -> Option<OutboxEntry> {
        self.ring().entries.iter().rev().find(|e| e.message.to == to).cloned()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_newest_first() {
        let o = Outbox::new(3);
        for i in 1..=5 {
            let r = o.push(Message::sms(format!("09000000{i:02}"), format!("code {i}")), 100 + i);
            assert_eq!(r.reference, Some(format!("outbox #{i}")));
        }
        let kept = o.recent();
        assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), vec![5, 4, 3]);
        assert_eq!(kept[0].message.text, "code 5");
        assert_eq!(kept[2].at, 103);
        assert_eq!(o.latest_to("0900000004").map(|e| e.id), Some(4));
        assert_eq!(o.latest_to("0900000001"), None);
    }

    #[test]
    fn capacity_is_at_least_one() {
        let o = Outbox::new(0);
        o.push(Message::email("a@b.vn", "s", "1"), 1);
        o.push(Message::email("a@b.vn", "s", "2"), 2);
        assert_eq!(o.capacity(), 1);
        assert_eq!(o.recent().len(), 1);
        assert_eq!(o.recent()[0].message.text, "2");
    }
}
