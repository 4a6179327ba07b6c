//! `xacthuc audit verify` and `xacthuc audit export`: the hash-chained audit log for operators
//! and a SIEM (issue 9).
//!
//! `verify` reads the whole chain page by page (`audit::verify_chain_from`) and compares its end
//! with the chain head, so an edited, deleted, reordered or truncated event is found; the first
//! bad event is named and the exit status is non-zero.

use crate::audit::{GENESIS_HASH, StoredAuditEvent, chain_hash, verify_chain_from};
use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Write;

/// Events read per page.
const PAGE: i64 = 5_000;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain; names the first bad event and fails if any was edited, deleted,
    /// reordered or cut off.
    Verify,
    /// Print events as JSON lines (one object per event), oldest first.
    Export {
        /// Only events at or after this time: RFC 3339 (2026-11-01T00:00:00+07:00) or unix seconds.
        #[arg(long)]
        since: Option<String>,
    },
}

pub async fn run(cmd: AuditCommand, config: Config) -> anyhow::Result<()> {
    let store = crate::store::connect(&config.database_url()).await.context("cannot open the database")?;
    match cmd {
        AuditCommand::Verify => match verify(store.as_ref()).await? {
            Ok(n) => {
                println!("audit chain intact: {n} events");
                Ok(())
            }
            Err(broken) => bail!("{broken}"),
        },
        AuditCommand::Export { since } => {
            let since = match since.as_deref() {
                Some(s) => parse_time(s)?,
                None => i64::MIN,
            };
            export(store.as_ref(), since, &mut std::io::stdout().lock()).await
        }
    }
}

/// Why a chain is not intact, naming the first bad event.
#[derive(Debug)]
pub struct Broken(String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Verifies the whole chain: `Ok(Ok(number of events))` when intact.
pub async fn verify(store: &dyn Store) -> anyhow::Result<Result<i64, Broken>> {
    let mut prev = GENESIS_HASH.to_string();
    let mut next_seq = 1;
    loop {
        let page = store.list_audit(next_seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        match verify_chain_from(&prev, next_seq, &page) {
            Ok(hash) => prev = hash,
            Err(seq) => {
                let i = page.iter().position(|e| e.seq == seq).unwrap_or(0);
                let (before_hash, expected) = match i {
                    0 => (prev.clone(), next_seq),
                    _ => (page[i - 1].hash.clone(), page[i - 1].seq + 1),
                };
                return Ok(Err(Broken(describe(&page[i], &before_hash, expected))));
            }
        }
        next_seq += page.len() as i64;
    }
    let count = next_seq - 1;
    let (head_seq, head_hash) = store.get_audit_head().await?;
    if head_seq != count || head_hash != prev {
        return Ok(Err(Broken(format!(
            "audit chain broken: the chain ends at event {count} but its head records event {head_seq}; \
             the first bad event is {}: events at the end were deleted",
            count + 1
        ))));
    }
    Ok(Ok(count))
}

fn describe(e: &StoredAuditEvent, prev_hash: &str, expected_seq: i64) -> String {
    let what = if e.seq != expected_seq {
        format!("expected event {expected_seq} here: events were deleted or reordered")
    } else if e.prev_hash != prev_hash {
        "it does not follow the event before it: events were deleted or reordered".to_string()
    } else if chain_hash(prev_hash, e.seq, &e.event) != e.hash {
        "its content does not match its hash: it was edited".to_string()
    } else {
        "its hash was changed".to_string()
    };
    format!(
        "audit chain broken at event {} ({} at {}, {}): {what}",
        expected_seq.min(e.seq),
        e.event.kind,
        crate::service::keys::utc(e.event.at),
        e.event.actor
    )
}

/// `2026-11-01T00:00:00+07:00` or `1793466000`.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--since {s:?}: not RFC 3339 (2026-11-01T00:00:00+07:00) or unix seconds"))?;
    Ok(t.unix_timestamp())
}

/// Writes every event at or after `since` as one JSON object per line.
pub async fn export(store: &dyn Store, since: i64, out: &mut impl Write) -> anyhow::Result<()> {
    let mut next_seq = 1;
    loop {
        let page = store.list_audit(next_seq, PAGE).await?;
        let Some(last) = page.last() else { break };
        next_seq = last.seq + 1;
        for e in page.iter().filter(|e| e.event.at >= since) {
            let time = time::OffsetDateTime::from_unix_timestamp(e.event.at)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
            let line = serde_json::json!({
                "seq": e.seq,
                "at": e.event.at,
                "time": time,
                "kind": e.event.kind,
                "actor": e.event.actor,
                "account_id": e.event.account_id,
                "client_id": e.event.client_id,
                "details": e.event.details,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
