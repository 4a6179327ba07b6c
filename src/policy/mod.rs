//! Per-service policies (DESIGN.md "Per-service policy", `docs/policies.md`): what registration
//! level and what authentication each online public service needs at sign-in and for each action
//! (`payment`, `result_receipt`, custom ones), the regulation's floor that no policy may go below
//! (REGULATION.md appendix §4), and [`decide`], which turns a policy, a request and a session into
//! `Allow`, `StepUp { missing }` or `Deny { reason }`.
//!
//! Pure: no axum, no sqlx, no clock. Reading the files (`load_dir`) is the only I/O, and it happens
//! at start-up and in `xacthuc policy check`; [`decide`] takes the time as an argument.

mod decide;
mod file;
mod floor;
#[cfg(test)]
mod golden;

pub use decide::{Decision, DenyReason, Request, Rule, SessionView, Shortfall, StepUpTarget, decide};
pub use file::{PolicyError, Problem, load_configured, load_dir, load_files, parse_str, policy_files};

use crate::assurance::{AsLevel, Mechanism, Method, VerifiedFactor};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// The well-known action of paying a fee online (a level-4 feature).
pub const PAYMENT: &str = "payment";
/// The well-known action of receiving the electronic result of a dossier (a level-4 feature).
pub const RESULT_RECEIPT: &str = "result_receipt";
/// The action a portal asks for right before it submits a dossier; where the service needs
/// non-repudiation, this is where the citizen signs (see `floor`).
pub const SUBMIT: &str = "submit";
/// Freshness of the `payment` and `result_receipt` a level-4 service gets from the floor when its
/// file does not define them.
pub const IMPLIED_ACTION_MAX_AGE: i64 = 300;

/// The online public-service level (Decree 43/2011 art. 3). Only levels 3 and 4 sign citizens in.
/// Decree 42/2022 renamed them: "một phần" (partly online) is 3, "toàn trình" (end to end) is 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceLevel {
    Level3,
    Level4,
}

impl ServiceLevel {
    pub fn number(self) -> u8 {
        match self {
            ServiceLevel::Level3 => 3,
            ServiceLevel::Level4 => 4,
        }
    }
}

impl fmt::Display for ServiceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {}", self.number())
    }
}

/// A kind of factor a requirement can insist on (`require = ["certificate"]`). One verified method
/// can be of several kinds: a hardware certificate is `certificate` and `smart_card`; a WebAuthn
/// assertion with user verification is `webauthn` and `biometric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// A password (knowledge).
    Password,
    /// A one-time password: TOTP app, SMS or e-mail code. Recovery codes are not `otp`.
    Otp,
    /// A printed recovery code.
    RecoveryCode,
    /// Any WebAuthn assertion (security key or passkey).
    Webauthn,
    /// A WebAuthn assertion with user verification: the authenticator checked a biometric (or its
    /// PIN) and signed that it did (DESIGN.md counts it as inherence).
    Biometric,
    /// A signature with the key of an X.509 certificate (a digital signature, "chữ ký số").
    Certificate,
    /// A certificate whose key is known to sit on a hardware token or smart card.
    SmartCard,
}

impl FactorKind {
    pub const ALL: [FactorKind; 7] = [
        FactorKind::Password,
        FactorKind::Otp,
        FactorKind::RecoveryCode,
        FactorKind::Webauthn,
        FactorKind::Biometric,
        FactorKind::Certificate,
        FactorKind::SmartCard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Password => "password",
            FactorKind::Otp => "otp",
            FactorKind::RecoveryCode => "recovery_code",
            FactorKind::Webauthn => "webauthn",
            FactorKind::Biometric => "biometric",
            FactorKind::Certificate => "certificate",
            FactorKind::SmartCard => "smart_card",
        }
    }

    /// Whether a verified `method` is of this kind.
    pub fn matches(self, method: Method) -> bool {
        match self {
            FactorKind::Password => method == Method::Password,
            FactorKind::Otp => matches!(method, Method::Totp | Method::SmsOtp | Method::EmailOtp),
            FactorKind::RecoveryCode => method == Method::RecoveryCode,
            FactorKind::Webauthn => matches!(method, Method::WebAuthn { .. }),
            FactorKind::Biometric => method == Method::WebAuthn { user_verified: true },
            FactorKind::Certificate => matches!(method, Method::Certificate { .. }),
            FactorKind::SmartCard => method == Method::Certificate { hardware: true },
        }
    }

    /// Whether any of `factors` is of this kind.
    pub fn present_in(self, factors: &[VerifiedFactor]) -> bool {
        factors.iter().any(|f| self.matches(f.method))
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one rule (a service's sign-in, or one action) needs of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The account's registration level must be at least this (never reached by a step-up).
    pub min_as: AsLevel,
    /// The mechanism the counted factors must reach.
    pub mechanism: Mechanism,
    /// Every kind listed must be among the counted factors.
    pub require: Vec<FactorKind>,
    /// Only factors verified at most this many seconds ago count; `None`: any factor of the session.
    pub max_age: Option<i64>,
}

impl Requirement {
    pub fn new(min_as: AsLevel, mechanism: Mechanism) -> Self {
        Requirement { min_as, mechanism, require: Vec::new(), max_age: None }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.min_as, self.mechanism.as_str())?;
        if !self.require.is_empty() {
            let kinds: Vec<&str> = self.require.iter().map(|k| k.as_str()).collect();
            write!(f, " with {}", kinds.join(" + "))?;
        }
        if let Some(age) = self.max_age {
            write!(f, " within {}", format_duration(age))?;
        }
        Ok(())
    }
}

/// One online public service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The key of `[service.<id>]`.
    pub id: String,
    /// The procedure's name, e.g. "Đăng ký hộ kinh doanh".
    pub name: String,
    pub level: ServiceLevel,
    /// OIDC client ids acting for this service.
    pub clients: Vec<String>,
    pub login: Requirement,
    /// The dossier needs integrity and non-repudiation: a digital signature (appendix §4).
    pub non_repudiation: bool,
    pub actions: BTreeMap<String, Requirement>,
    /// Actions not written in the file but given by the floor (`payment`, `result_receipt` of a
    /// level-4 service).
    pub implied_actions: BTreeSet<String>,
    /// Where the service is defined.
    pub file: PathBuf,
    pub line: usize,
}

/// What applies to clients not named by any service (`[defaults]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub login: Requirement,
    pub actions: BTreeMap<String, Requirement>,
}

impl Default for Defaults {
    /// Without a `[defaults]` section: any account, one factor, no actions (what the gateway did
    /// before policies existed).
    fn default() -> Self {
        Defaults { login: Requirement::new(AsLevel::As1, Mechanism::OneFactor), actions: BTreeMap::new() }
    }
}

/// A validated set of policies: every service of every file in a directory, and the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    pub services: Vec<Service>,
    pub defaults: Defaults,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Advice that does not make the set invalid (e.g. a service no client acts for).
    pub warnings: Vec<Problem>,
}

/// The policy that applies to one client.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// `None` for a client named by no service (the defaults apply).
    pub service: Option<&'a Service>,
    pub login: &'a Requirement,
    pub actions: &'a BTreeMap<String, Requirement>,
}

impl PolicySet {
    /// The policy for `client_id`: its service's, or the defaults.
    pub fn for_client(&self, client_id: &str) -> Policy<'_> {
        match self.services.iter().find(|s| s.clients.iter().any(|c| c == client_id)) {
            Some(s) => Policy { service: Some(s), login: &s.login, actions: &s.actions },
            None => Policy { service: None, login: &self.defaults.login, actions: &self.defaults.actions },
        }
    }

    /// A few lines for `xacthuc policy check` and the start-up log.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            out.push(format!(
                "{} ({}, {}): {} — clients: {}",
                s.id,
                s.name,
                s.level,
                s.login,
                if s.clients.is_empty() { "none".to_string() } else { s.clients.join(", ") }
            ));
            for (name, r) in &s.actions {
                let implied = if s.implied_actions.contains(name) { " (implied by the floor)" } else { "" };
                out.push(format!("  action {name}: {r}{implied}"));
            }
        }
        out.push(format!("defaults: {}", self.defaults.login));
        for (name, r) in &self.defaults.actions {
            out.push(format!("  action {name}: {r}"));
        }
        out
    }
}

/// Parses a duration: `"300s"`, `"5m"`, `"1h"`, `"1d"`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(n * scale)
}

/// The shortest exact form: `300` → `"5m"`, `90` → `"90s"`.
pub fn format_duration(seconds: i64) -> String {
    match seconds {
        s if s != 0 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s != 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("300s"), Some(300));
        assert_eq!(parse_duration("300"), Some(300));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("2d"), Some(172800));
        for bad in ["", "m", "5 minutes", "-5m", "5w", "1.5h", "99999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_duration(300), "5m");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn factor_kinds_match_methods() {
        use Method::*;
        assert!(FactorKind::Certificate.matches(Certificate { hardware: false }));
        assert!(FactorKind::Certificate.matches(Certificate { hardware: true }));
        assert!(!FactorKind::SmartCard.matches(Certificate { hardware: false }));
        assert!(FactorKind::Biometric.matches(WebAuthn { user_verified: true }));
        assert!(!FactorKind::Biometric.matches(WebAuthn { user_verified: false }));
        assert!(FactorKind::Webauthn.matches(WebAuthn { user_verified: false }));
        assert!(FactorKind::Otp.matches(SmsOtp) && FactorKind::Otp.matches(Totp) && FactorKind::Otp.matches(EmailOtp));
        assert!(!FactorKind::Otp.matches(RecoveryCode));
        assert!(FactorKind::Password.matches(Password) && !FactorKind::Password.matches(Totp));
    }
}
