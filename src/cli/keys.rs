//! `xacthuc keys rotate|list`: the signing keys in the database (see `service::keys`);
//! `keys rotate-data-key|retire-data-key|data-key-status`: the data key (see `service::data_key`).

use crate::app::{AppState, now};
use crate::crypto::signing::SigningAlg;
use crate::service::data_key;
use crate::service::keys::{self, utc};

/// `keys rotate`: the next key of each algorithm (or the one given).
pub async fn rotate(state: &AppState, alg: Option<String>, activate_in: i64) -> anyhow::Result<()> {
    let algs = match alg {
        Some(a) => vec![a.parse::<SigningAlg>()?],
        None => SigningAlg::ALL.to_vec(),
    };
    let now = now();
    let rotated =
        keys::rotate(state.store.as_ref(), &state.data_key, &algs, "operator", now, now + activate_in).await?;
    for r in rotated {
        println!("{}: new key {} published now, signs from {}", r.alg, r.kid, utc(r.activates_at));
        for old in r.retiring {
            println!("{}: key {old} stops signing then and stays published until its tokens expire", r.alg);
        }
    }
    println!("running servers load the new keys within {} s", keys::RELOAD_SECONDS);
    Ok(())
}

/// `keys list`: kid, alg, created, activates, retired, state (tab-separated, times in UTC).
pub async fn list(state: &AppState) -> anyhow::Result<()> {
    for (r, s) in keys::list(state.store.as_ref(), &state.config.tokens, now()).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.kid,
            r.alg,
            utc(r.created_at),
            utc(r.activates_at),
            r.retired_at.map_or_else(|| "-".to_string(), utc),
            s.as_str()
        );
    }
    Ok(())
}

/// Asks the gateway to re-read the data keys (SIGHUP to `pid` or DATA_DIR/xacthuc.pid). Not
/// finding one is no error: a gateway started later reads the file, and a running one re-reads
/// it when it meets a value sealed under a key it does not know.
fn signal_gateway(state: &AppState, pid: Option<u32>) {
    let file = state.config.data_dir.join(super::policy::PID_FILE);
    let pid = match pid {
        Some(p) => p,
        None => match std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse::<u32>().ok()) {
            Some(p) => p,
            None => {
                println!(
                    "no gateway pid in {}: signal each running gateway yourself (kill -HUP <pid>)",
                    file.display()
                );
                return;
            }
        },
    };
    match std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status() {
        Ok(s) if s.success() => println!("asked the gateway (pid {pid}) to read the new key file"),
        _ => println!("could not signal process {pid}: signal each running gateway yourself (kill -HUP <pid>)"),
    }
}

/// `keys rotate-data-key`.
pub async fn rotate_data_key(state: &AppState, resume: bool, batch: i64, pid: Option<u32>) -> anyhow::Result<()> {
    let key_file = data_key::key_file(&state.config)?;
    let mut notify = |_: &str| signal_gateway(state, pid);
    let mut progress = |line: &str| println!("{line}");
    let rotation = data_key::Rotation { key_file: &key_file, resume, batch, actor: "operator" };
    let report = data_key::rotate(state.store.as_ref(), rotation, now(), &mut notify, &mut progress).await?;
    let r = &report.reencrypt;
    if let Some(previous) = &report.previous {
        println!("data key rotated: {previous} -> {}", r.key_id);
    }
    println!(
        "{} value(s) re-encrypted under {}; {} changed meanwhile by the gateway; {} could not be opened; {} remaining",
        r.reencrypted,
        r.key_id,
        r.changed_meanwhile,
        r.failed.len(),
        r.remaining
    );
    for f in &r.failed {
        println!("  cannot open: {f}");
    }
    if !r.complete() {
        anyhow::bail!(
            "{} value(s) are still under older keys: run `xacthuc keys rotate-data-key --resume` again",
            r.remaining
        );
    }
    println!(
        "done: every sealed value is under {}; older keys can now be retired (keys retire-data-key --id …)",
        r.key_id
    );
    Ok(())
}

/// `keys retire-data-key --id ID`.
pub async fn retire_data_key(state: &AppState, id: &str, abandon: bool, pid: Option<u32>) -> anyhow::Result<()> {
    let key_file = data_key::key_file(&state.config)?;
    let ring = data_key::retire(state.store.as_ref(), &key_file, id, abandon, "operator", now()).await?;
    println!("data key {id} removed from {} (keys now: {})", key_file.display(), ring.key_ids().join(", "));
    signal_gateway(state, pid);
    Ok(())
}

/// `keys data-key-status`: the keys of the file, then per column the count of values per key.
pub async fn data_key_status(state: &AppState) -> anyhow::Result<()> {
    let key_file = data_key::key_file(&state.config)?;
    let ring = crate::crypto::secretbox::DataKeyRing::read_file(&key_file)?;
    println!("key file: {}{}", key_file.display(), if ring.is_legacy() { " (single key)" } else { "" });
    for id in ring.key_ids() {
        let made = ring.created_at(&id).filter(|t| *t > 0).map_or_else(|| "-".to_string(), utc);
        let role = if id == ring.current_id() { "current" } else { "decrypt only" };
        let evidence = state.store.count_audit_sealed_with(&id).await?;
        println!("key {id}\t{role}\tcreated {made}\taudit evidence {evidence}");
    }
    for (column, counts) in data_key::status(state.store.as_ref()).await? {
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("{column}\t{}", if counts.is_empty() { "-".to_string() } else { counts.join(", ") });
    }
    Ok(())
}
