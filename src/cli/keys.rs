//! `xacthuc keys rotate|list`: the signing keys in the database (see `service::keys`).

use crate::app::{AppState, now};
use crate::crypto::signing::SigningAlg;
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
