//! The citizen's sessions: the idle and absolute timeouts, the list on the account page, and
//! "sign out everywhere" (each other session ended as by a sign-out, so its portals get their
//! back-channel logout tokens).

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::store::{Account, SessionActivity, SessionRecord};

/// One session as the account page shows it.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub device: Option<String>,
    pub current: bool,
}

/// The account's sessions that are still usable (neither expired nor idle), the current one
/// first.
pub async fn list(
    state: &AppState,
    account: &Account,
    current: &SessionRecord,
    now: i64,
) -> Result<Vec<SessionView>, ServiceError> {
    let idle = state.config.session.idle_seconds;
    let mut views: Vec<SessionView> = state
        .store
        .list_account_sessions(account.id, now)
        .await?
        .into_iter()
        .filter(|s| s.last_seen_at > now - idle)
        .map(|s: SessionActivity| SessionView {
            created_at: s.session.created_at,
            last_seen_at: s.last_seen_at,
            device: s.device,
            current: s.session.id == current.id,
        })
        .collect();
    views.sort_by_key(|v| !v.current);
    Ok(views)
}

/// Ends every session of the account but `current` (idle ones too: their grants are still
/// live), each through `logout::end_session`, and records `session.signed_out_everywhere`.
/// Returns how many were ended.
pub async fn end_others(
    state: &AppState,
    account: &Account,
    current: &SessionRecord,
    now: i64,
) -> Result<usize, ServiceError> {
    let mut ended = 0;
    for s in state.store.list_account_sessions(account.id, now).await? {
        if s.session.id != current.id {
            super::logout::end_session(state, &s.session, now).await?;
            ended += 1;
        }
    }
    let audit = AuditEvent::new(now, "session.signed_out_everywhere", format!("account:{}", account.id))
        .account(account.id)
        .detail("session", current.id.to_string())
        .detail("ended", ended);
    state.store.append_audit(&audit).await?;
    Ok(ended)
}

/// A short, non-identifying device summary from a User-Agent header: browser and platform
/// ("Firefox · Android"), never the full string (it helps fingerprinting and holds versions).
pub fn device_summary(user_agent: &str) -> Option<String> {
    let ua = user_agent;
    if ua.trim().is_empty() {
        return None;
    }
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("CocCoc") || ua.contains("coc_coc") {
        "Cốc Cốc"
    } else if ua.contains("Zalo") {
        "Zalo"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "?"
    };
    let platform = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        "?"
    };
    match (browser, platform) {
        ("?", "?") => Some(ua.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(24).collect()),
        (b, "?") => Some(b.to_string()),
        ("?", p) => Some(p.to_string()),
        (b, p) => Some(format!("{b} · {p}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::device_summary;

    #[test]
    fn device_summaries() {
        let firefox_android = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0";
        assert_eq!(device_summary(firefox_android).as_deref(), Some("Firefox · Android"));
        let chrome_win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
        assert_eq!(device_summary(chrome_win).as_deref(), Some("Chrome · Windows"));
        let safari_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_summary(safari_ios).as_deref(), Some("Safari · iOS"));
        assert_eq!(device_summary("reqwest/0.12").as_deref(), Some("reqwest012"));
        assert_eq!(device_summary(""), None);
    }
}

/// What `/readyz` reports.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `ok`, or why not.
    pub database: String,
    pub signing_keys: String,
    pub policies: String,
}

/// Whether this instance can serve: the database answers, a signing key is in force for every
/// algorithm the key ring offers, and the service policy files on disk are valid (what a reload
/// or a restart would load).
pub async fn readiness(state: &AppState, now: i64) -> Readiness {
    let database = match state.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(_) => "unreachable".to_string(),
    };
    let algs = state.keys.algorithms();
    let signing_keys = if algs.is_empty() {
        "none loaded".to_string()
    } else {
        match algs.iter().find(|alg| state.keys.signing_key(**alg, now).is_none()) {
            Some(alg) => format!("no current {} key", alg.as_str()),
            None => "ok".to_string(),
        }
    };
    let policies = match crate::policy::load_configured(&state.config.policies_dir) {
        Ok(_) => "ok".to_string(),
        Err(_) => "invalid (see `xacthuc policy check`)".to_string(),
    };
    let ready = [&database, &signing_keys, &policies].iter().all(|s| s.as_str() == "ok");
    Readiness { ready, database, signing_keys, policies }
}
