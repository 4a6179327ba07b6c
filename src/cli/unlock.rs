//! `xacthuc account unlock --username NAME`: staff lift a password-guessing lock (issue 9), the
//! hard one after `throttle.max_consecutive` failures included. Audited as `login.unlocked`.

use crate::app::{AppState, now};
use anyhow::bail;

pub async fn run(state: &AppState, username: &str) -> anyhow::Result<()> {
    let username = crate::service::accounts::canonical_username(username);
    let Some(account) = state.store.find_account_by_username(&username).await? else {
        bail!("no account {username}");
    };
    if crate::service::throttle::unlock(state, &username, account.id, "operator", "staff", now()).await? {
        println!("account {username} unlocked: password sign-in is possible again");
    } else {
        println!("account {username} was not locked");
    }
    Ok(())
}
