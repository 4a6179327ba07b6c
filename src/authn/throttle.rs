//! Throttling online guessing (NIST SP 800-63B §5.2.2): the `[throttle]` configuration and the
//! pure rules that turn a stored counter ([`ThrottleState`]) into the next one. The counters
//! live in the database (`Store::update_throttle`), so every instance sharing it agrees;
//! `service::throttle` does the orchestration.
//!
//! Per account (keyed by the user name, whether or not an account has it):
//! - the first `free_failures` consecutive failures cost nothing, so a typo never waits;
//! - each further failure makes the next attempt wait `delay_seconds`, doubling up to
//!   `max_delay_seconds` (progressive delay);
//! - every `lock_after`-th consecutive failure locks the name for `lock_seconds`;
//! - the `max_consecutive`-th (at most 100: "the verifier SHALL limit consecutive failed
//!   authentication attempts on a single subscriber account to no more than 100") locks it
//!   until the citizen signs in with a second factor or staff unlock it.
//!
//! Per source address: `address_failures` failures within `address_window_seconds` lock the
//! address for `address_lock_seconds`; registrations and one-time codes sent are limited to
//! `registrations_per_address` and `codes_per_address` per `rate_window_seconds`.

use crate::store::ThrottleState;
use serde::Deserialize;
use std::net::IpAddr;

/// The NIST SP 800-63B §5.2.2 ceiling on consecutive failures per account.
pub const NIST_MAX_CONSECUTIVE: i64 = 100;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Consecutive failures per user name answered without any delay.
    pub free_failures: i64,
    /// The first delay after the free failures, in seconds; doubles with each failure.
    pub delay_seconds: i64,
    /// The longest progressive delay, in seconds.
    pub max_delay_seconds: i64,
    /// Every this many consecutive failures lock the user name for `lock_seconds`.
    pub lock_after: i64,
    pub lock_seconds: i64,
    /// Consecutive failures after which only a second factor or staff unlock (at most 100).
    pub max_consecutive: i64,
    /// Failed sign-ins from one source address within `address_window_seconds` that lock the
    /// address for `address_lock_seconds`.
    pub address_failures: i64,
    pub address_window_seconds: i64,
    pub address_lock_seconds: i64,
    /// Registrations accepted from one source address per `rate_window_seconds`.
    pub registrations_per_address: i64,
    /// One-time codes sent (SMS, e-mail) at the request of one source address per
    /// `rate_window_seconds`.
    pub codes_per_address: i64,
    pub rate_window_seconds: i64,
    /// Reverse proxies (IP addresses or CIDR networks) whose `X-Forwarded-For` is believed.
    /// Empty: the TCP peer is the source address.
    pub trusted_proxies: Vec<String>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 3,
            delay_seconds: 2,
            max_delay_seconds: 60,
            lock_after: 10,
            lock_seconds: 900,
            max_consecutive: NIST_MAX_CONSECUTIVE,
            address_failures: 100,
            address_window_seconds: 900,
            address_lock_seconds: 900,
            registrations_per_address: 20,
            codes_per_address: 30,
            rate_window_seconds: 3600,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ThrottleConfig {
    /// Every problem with the values, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let positive = [
            ("throttle.delay_seconds", self.delay_seconds),
            ("throttle.max_delay_seconds", self.max_delay_seconds),
            ("throttle.lock_after", self.lock_after),
            ("throttle.lock_seconds", self.lock_seconds),
            ("throttle.max_consecutive", self.max_consecutive),
            ("throttle.address_failures", self.address_failures),
            ("throttle.address_window_seconds", self.address_window_seconds),
            ("throttle.address_lock_seconds", self.address_lock_seconds),
            ("throttle.registrations_per_address", self.registrations_per_address),
            ("throttle.codes_per_address", self.codes_per_address),
            ("throttle.rate_window_seconds", self.rate_window_seconds),
        ];
        for (key, v) in positive {
            if v <= 0 {
                p.push(format!("{key}: must be a positive number"));
            }
        }
        if self.free_failures < 0 {
            p.push("throttle.free_failures: must not be negative".into());
        }
        if self.max_consecutive > NIST_MAX_CONSECUTIVE {
            p.push(format!(
                "throttle.max_consecutive: at most {NIST_MAX_CONSECUTIVE} (NIST SP 800-63B §5.2.2 limits consecutive failures per account to 100)"
            ));
        }
        if self.free_failures >= self.lock_after {
            p.push("throttle.free_failures: must be below throttle.lock_after".into());
        }
        for proxy in &self.trusted_proxies {
            if Network::parse(proxy).is_none() {
                p.push(format!("throttle.trusted_proxies: {proxy:?} is not an IP address or CIDR network"));
            }
        }
        p
    }

    /// The trusted proxies, parsed (invalid entries are reported by [`Self::problems`]).
    pub fn proxies(&self) -> Vec<Network> {
        self.trusted_proxies.iter().filter_map(|s| Network::parse(s)).collect()
    }
}

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `192.0.2.10`, `10.0.0.0/8`, `2001:db8::/32`.
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n) as u128, 32, self.prefix) == masked(u32::from(a) as u128, 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(v: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let shift = u32::from(bits - prefix.min(bits));
    (v >> shift) << shift
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What a counter is keyed on for an address: IPv4 as is, IPv6 by its /64 (one subscriber
/// usually holds a whole /64, so counting single IPv6 addresses would count nothing).
pub fn address_bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The address for logs and audit details: the last IPv4 octet or everything after the /48
/// of an IPv6 address hidden.
pub fn masked_address(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.x", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// The client's address: the TCP peer, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left could be
/// forged by the client).
pub fn client_address(peer: Option<IpAddr>, forwarded_for: &[&str], proxies: &[Network]) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if !proxies.iter().any(|n| n.contains(peer)) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for header in forwarded_for {
        for part in header.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(canonical(ip)),
                // A malformed hop: nothing to its left can be trusted either.
                Err(_) => hops.clear(),
            }
        }
    }
    hops.into_iter().rev().find(|ip| !proxies.iter().any(|n| n.contains(*ip))).or(Some(peer))
}

/// Whether an attempt may be made now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not before this time (a progressive delay or a temporary lock).
    Wait(i64),
    /// Only a second factor or staff unlock.
    HardLocked,
}

pub fn verdict(state: Option<&ThrottleState>, now: i64) -> Verdict {
    match state {
        Some(s) if s.hard_locked => Verdict::HardLocked,
        Some(ThrottleState { locked_until: Some(until), .. }) if *until > now => Verdict::Wait(*until),
        _ => Verdict::Allowed,
    }
}

/// A lock that began (worth an audit event), as opposed to a short progressive delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockBegan {
    Temporary(i64),
    Hard,
}

/// The account counter after one more failure (counted when the attempt starts, so parallel
/// guesses cannot all slip through before the first is recorded; a success deletes it).
pub fn account_failure(
    cfg: &ThrottleConfig,
    state: Option<&ThrottleState>,
    now: i64,
) -> (ThrottleState, Option<LockBegan>) {
    let consecutive = state.map_or(0, |s| s.consecutive) + 1;
    let window_start = state.map_or(now, |s| s.window_start);
    let (locked_until, hard_locked, began) = if consecutive >= cfg.max_consecutive {
        (Some(now + cfg.lock_seconds), true, Some(LockBegan::Hard))
    } else if consecutive % cfg.lock_after == 0 {
        let until = now + cfg.lock_seconds;
        (Some(until), false, Some(LockBegan::Temporary(until)))
    } else if consecutive > cfg.free_failures {
        let doublings = (consecutive - cfg.free_failures - 1).clamp(0, 30) as u32;
        let delay = cfg.delay_seconds.saturating_mul(1_i64 << doublings).min(cfg.max_delay_seconds);
        (Some(now + delay), false, None)
    } else {
        (None, false, None)
    };
    let next =
        ThrottleState { failures: consecutive, window_start, consecutive, locked_until, hard_locked, updated_at: now };
    (next, began)
}

/// A windowed counter (failures per address, registrations, codes sent) after one more event:
/// events older than `window` no longer count; the `max`-th within the window locks the key
/// for `lock_seconds` and starts the count again. Returns the lock's end when this event
/// locked it.
pub fn windowed(
    state: Option<&ThrottleState>,
    now: i64,
    window: i64,
    max: i64,
    lock_seconds: i64,
) -> (ThrottleState, Option<i64>) {
    let (failures, window_start) = match state {
        Some(s) if s.window_start > now - window => (s.failures + 1, s.window_start),
        _ => (1, now),
    };
    let consecutive = state.map_or(0, |s| s.consecutive) + 1;
    if failures >= max {
        let until = now + lock_seconds;
        let next = ThrottleState {
            failures: 0,
            window_start: now,
            consecutive,
            locked_until: Some(until),
            hard_locked: false,
            updated_at: now,
        };
        return (next, Some(until));
    }
    let locked_until = state.and_then(|s| s.locked_until).filter(|u| *u > now);
    (ThrottleState { failures, window_start, consecutive, locked_until, hard_locked: false, updated_at: now }, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000;

    fn run(cfg: &ThrottleConfig, n: i64) -> (ThrottleState, Vec<Option<LockBegan>>) {
        let mut s: Option<ThrottleState> = None;
        let mut began = Vec::new();
        for _ in 0..n {
            let (next, b) = account_failure(cfg, s.as_ref(), T);
            began.push(b);
            s = Some(next);
        }
        (s.unwrap_or_default(), began)
    }

    #[test]
    fn free_failures_then_doubling_delays_then_locks() {
        let cfg = ThrottleConfig::default();
        let (s, _) = run(&cfg, 3);
        assert_eq!(verdict(Some(&s), T), Verdict::Allowed, "three typos cost nothing");
        let delays: Vec<i64> = (4..=9).map(|n| run(&cfg, n).0.locked_until.unwrap_or(T) - T).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60]);
        let (s, began) = run(&cfg, 10);
        assert_eq!(s.locked_until, Some(T + 900));
        assert_eq!(began[9], Some(LockBegan::Temporary(T + 900)));
        assert_eq!(verdict(Some(&s), T + 899), Verdict::Wait(T + 900));
        assert_eq!(verdict(Some(&s), T + 900), Verdict::Allowed);
    }

    #[test]
    fn the_hundredth_consecutive_failure_locks_until_unlocked() {
        let cfg = ThrottleConfig::default();
        let (s, began) = run(&cfg, 99);
        assert!(!s.hard_locked);
        assert!(!began.contains(&Some(LockBegan::Hard)));
        let (s, began) = run(&cfg, 100);
        assert!(s.hard_locked);
        assert_eq!(began[99], Some(LockBegan::Hard));
        assert_eq!(verdict(Some(&s), T + 10 * 365 * 86_400), Verdict::HardLocked, "time alone never unlocks");
    }

    #[test]
    fn config_refuses_more_than_a_hundred_and_bad_proxies() {
        let cfg = ThrottleConfig {
            max_consecutive: 101,
            trusted_proxies: vec!["10.0.0.0/8".into(), "nonsense".into()],
            ..Default::default()
        };
        let p = cfg.problems();
        assert!(p.iter().any(|m| m.starts_with("throttle.max_consecutive")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("\"nonsense\"")), "{p:?}");
        assert!(ThrottleConfig::default().problems().is_empty());
    }

    #[test]
    fn windowed_counts_within_the_window_only() {
        let (s, l) = windowed(None, T, 60, 3, 100);
        assert_eq!((s.failures, l), (1, None));
        let (s, l) = windowed(Some(&s), T + 10, 60, 3, 100);
        assert_eq!((s.failures, l), (2, None));
        let (s2, l) = windowed(Some(&s), T + 61, 60, 3, 100);
        assert_eq!((s2.failures, l), (1, None), "the window moved on");
        let (s, l) = windowed(Some(&s), T + 20, 60, 3, 100);
        assert_eq!(l, Some(T + 120));
        assert_eq!(verdict(Some(&s), T + 119), Verdict::Wait(T + 120));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = vec![Network::parse("10.0.0.0/8").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client cannot choose its address.
        assert_eq!(client_address(Some(ip("203.0.113.7")), &["198.51.100.1"], &proxies), Some(ip("203.0.113.7")));
        // Behind the proxy: the rightmost untrusted hop, not a forged leftmost one.
        assert_eq!(
            client_address(Some(ip("10.1.2.3")), &["1.1.1.1, 198.51.100.9, 10.0.0.5"], &proxies),
            Some(ip("198.51.100.9"))
        );
        assert_eq!(client_address(Some(ip("::ffff:10.1.2.3")), &[], &proxies), Some(ip("10.1.2.3")));
        assert_eq!(address_bucket(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(masked_address(ip("203.0.113.7")), "203.0.113.x");
    }
}
