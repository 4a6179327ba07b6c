//! The assurance model (DESIGN.md "The assurance model"): registration levels AS-1..AS-4,
//! factor categories, the mechanism (`1fa` < `2fa` < `mfa`) reached by the factors verified in
//! one authentication session, and the `acr` / `amr` values that describe it to portals.
//!
//! Pure: no I/O, no framework. Time is passed in as unix seconds.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Prefix of every level-of-assurance `acr` value: `urn:xacthuc:loa:<as>:<mech>`.
pub const ACR_LOA_PREFIX: &str = "urn:xacthuc:loa:";
/// Prefix of the action `acr` values a portal uses to ask for a step-up action.
pub const ACR_ACTION_PREFIX: &str = "urn:xacthuc:action:";

/// Registration assurance of an account (appendix §1): how much we trust who it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AsLevel {
    As1 = 1,
    As2 = 2,
    As3 = 3,
    As4 = 4,
}

impl AsLevel {
    pub const ALL: [AsLevel; 4] = [AsLevel::As1, AsLevel::As2, AsLevel::As3, AsLevel::As4];

    pub fn as_str(self) -> &'static str {
        match self {
            AsLevel::As1 => "as1",
            AsLevel::As2 => "as2",
            AsLevel::As3 => "as3",
            AsLevel::As4 => "as4",
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            1 => Some(AsLevel::As1),
            2 => Some(AsLevel::As2),
            3 => Some(AsLevel::As3),
            4 => Some(AsLevel::As4),
            _ => None,
        }
    }
}

impl FromStr for AsLevel {
    type Err = AssuranceParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "as1" | "as-1" | "1" => Ok(AsLevel::As1),
            "as2" | "as-2" | "2" => Ok(AsLevel::As2),
            "as3" | "as-3" | "3" => Ok(AsLevel::As3),
            "as4" | "as-4" | "4" => Ok(AsLevel::As4),
            _ => Err(AssuranceParseError(format!("unknown registration level {s:?}"))),
        }
    }
}

impl fmt::Display for AsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AS-{}", self.number())
    }
}

/// Authentication mechanism of one session (appendix §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "1fa")]
    OneFactor,
    #[serde(rename = "2fa")]
    TwoFactor,
    #[serde(rename = "mfa")]
    MultiFactor,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [Mechanism::OneFactor, Mechanism::TwoFactor, Mechanism::MultiFactor];

    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::OneFactor => "1fa",
            Mechanism::TwoFactor => "2fa",
            Mechanism::MultiFactor => "mfa",
        }
    }
}

impl FromStr for Mechanism {
    type Err = AssuranceParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "1fa" => Ok(Mechanism::OneFactor),
            "2fa" => Ok(Mechanism::TwoFactor),
            "mfa" => Ok(Mechanism::MultiFactor),
            _ => Err(AssuranceParseError(format!("unknown mechanism {s:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AssuranceParseError(pub String);

/// The three kinds of factor of appendix §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorCategory {
    Knowledge,
    Possession,
    Inherence,
}

/// A way of proving something, as verified by one authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    Password,
    Totp,
    SmsOtp,
    EmailOtp,
    RecoveryCode,
    /// A WebAuthn assertion; `user_verified` is the UV flag the authenticator signed.
    WebAuthn {
        user_verified: bool,
    },
    /// A signature by the key of an X.509 certificate; `hardware` only when that is known.
    Certificate {
        hardware: bool,
    },
}

impl Method {
    /// Categories this method proves. A WebAuthn assertion with user verification counts as
    /// possession **and** inherence (DESIGN.md): the authenticator checked a biometric or PIN
    /// locally and signed that it did.
    pub fn categories(self) -> &'static [FactorCategory] {
        use FactorCategory::*;
        match self {
            Method::Password => &[Knowledge],
            Method::Totp | Method::SmsOtp | Method::EmailOtp => &[Possession],
            // A recovery code is something printed and kept: possession, never knowledge, so it
            // cannot pair with itself; it stands in for the lost second factor.
            Method::RecoveryCode => &[Possession],
            Method::WebAuthn { user_verified: true } => &[Possession, Inherence],
            Method::WebAuthn { user_verified: false } => &[Possession],
            Method::Certificate { .. } => &[Possession],
        }
    }

    /// RFC 8176 `amr` values for this method. We cannot tell *which* biometric an
    /// authenticator used, so UV is reported as `user` (presence + verification), never `fpt`
    /// or `face`.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Method::Password => &["pwd"],
            Method::Totp => &["otp"],
            Method::SmsOtp => &["sms", "otp"],
            Method::EmailOtp => &["otp"],
            Method::RecoveryCode => &["otp"],
            Method::WebAuthn { user_verified: true } => &["hwk", "user"],
            Method::WebAuthn { user_verified: false } => &["hwk"],
            Method::Certificate { hardware: true } => &["x509", "sc"],
            Method::Certificate { hardware: false } => &["x509"],
        }
    }
}

/// One factor verified in a session, with the unix time of its verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedFactor {
    #[serde(flatten)]
    pub method: Method,
    pub at: i64,
}

/// The mechanism reached by `factors` (appendix §3): `1fa` with at least one factor, `2fa` with
/// factors of two different categories, `mfa` with two or more categories of which one is
/// inherence. `None` when nothing was verified.
pub fn mechanism(factors: &[VerifiedFactor]) -> Option<Mechanism> {
    if factors.is_empty() {
        return None;
    }
    let mut knowledge = false;
    let mut possession = false;
    let mut inherence = false;
    for f in factors {
        for c in f.method.categories() {
            match c {
                FactorCategory::Knowledge => knowledge = true,
                FactorCategory::Possession => possession = true,
                FactorCategory::Inherence => inherence = true,
            }
        }
    }
    let categories = [knowledge, possession, inherence].iter().filter(|b| **b).count();
    Some(match (categories, inherence) {
        (n, true) if n >= 2 => Mechanism::MultiFactor,
        (n, _) if n >= 2 => Mechanism::TwoFactor,
        _ => Mechanism::OneFactor,
    })
}

/// The factors verified at or after `not_before` (a freshness window such as `max_age`).
pub fn fresh_factors(factors: &[VerifiedFactor], not_before: i64) -> Vec<VerifiedFactor> {
    factors.iter().copied().filter(|f| f.at >= not_before).collect()
}

/// RFC 8176 `amr` for a session: each method's values once, in the order verified, plus `mfa`
/// when factors of more than one category were used.
pub fn amr(factors: &[VerifiedFactor]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in factors {
        for v in f.method.amr() {
            if !out.iter().any(|o| o == v) {
                out.push((*v).to_string());
            }
        }
    }
    if mechanism(factors).is_some_and(|m| m >= Mechanism::TwoFactor) {
        out.push("mfa".to_string());
    }
    out
}

/// A level-of-assurance `acr`: the registration level and the mechanism, both minimums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acr {
    pub as_level: AsLevel,
    pub mechanism: Mechanism,
}

impl Acr {
    pub fn new(as_level: AsLevel, mechanism: Mechanism) -> Self {
        Acr { as_level, mechanism }
    }

    /// "A request for one acr is satisfied by any session whose level and mechanism are both at
    /// least as high" (DESIGN.md).
    pub fn satisfies(&self, required: &Acr) -> bool {
        self.as_level >= required.as_level && self.mechanism >= required.mechanism
    }

    /// Every combination, lowest first, for `acr_values_supported`.
    pub fn all() -> Vec<Acr> {
        AsLevel::ALL.iter().flat_map(|a| Mechanism::ALL.iter().map(move |m| Acr::new(*a, *m))).collect()
    }
}

impl fmt::Display for Acr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ACR_LOA_PREFIX}{}:{}", self.as_level.as_str(), self.mechanism.as_str())
    }
}

impl FromStr for Acr {
    type Err = AssuranceParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(ACR_LOA_PREFIX)
            .ok_or_else(|| AssuranceParseError(format!("not a xacthuc acr value: {s:?}")))?;
        let (level, mech) =
            rest.split_once(':').ok_or_else(|| AssuranceParseError(format!("malformed acr value: {s:?}")))?;
        Ok(Acr::new(level.parse()?, mech.parse()?))
    }
}

/// One value of `acr_values` or of an essential `acr` claim request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestedAcr {
    Loa(Acr),
    /// `urn:xacthuc:action:<name>`: the portal asks for an action of the service's policy.
    Action(String),
    /// A value we do not know; voluntary ones are ignored, essential ones fail (OIDC Core 5.5.1.1).
    Unknown(String),
}

impl RequestedAcr {
    pub fn parse(s: &str) -> RequestedAcr {
        if let Some(action) = s.strip_prefix(ACR_ACTION_PREFIX) {
            if !action.is_empty() && action.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return RequestedAcr::Action(action.to_string());
            }
            return RequestedAcr::Unknown(s.to_string());
        }
        match s.parse::<Acr>() {
            Ok(acr) => RequestedAcr::Loa(acr),
            Err(_) => RequestedAcr::Unknown(s.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(method: Method) -> VerifiedFactor {
        VerifiedFactor { method, at: 1000 }
    }

    #[test]
    fn mechanism_table() {
        use Method::*;
        let uv = WebAuthn { user_verified: true };
        let no_uv = WebAuthn { user_verified: false };
        let cases: &[(&[Method], Option<Mechanism>)] = &[
            (&[], None),
            (&[Password], Some(Mechanism::OneFactor)),
            (&[Totp], Some(Mechanism::OneFactor)),
            (&[Password, Password], Some(Mechanism::OneFactor)),
            (&[Totp, SmsOtp], Some(Mechanism::OneFactor)),
            (&[Password, Totp], Some(Mechanism::TwoFactor)),
            (&[Password, SmsOtp], Some(Mechanism::TwoFactor)),
            (&[Password, Certificate { hardware: false }], Some(Mechanism::TwoFactor)),
            (&[Password, no_uv], Some(Mechanism::TwoFactor)),
            (&[no_uv], Some(Mechanism::OneFactor)),
            (&[uv], Some(Mechanism::MultiFactor)),
            (&[Password, uv], Some(Mechanism::MultiFactor)),
            (&[Certificate { hardware: true }, no_uv], Some(Mechanism::OneFactor)),
        ];
        for (methods, want) in cases {
            let factors: Vec<_> = methods.iter().map(|m| f(*m)).collect();
            assert_eq!(mechanism(&factors), *want, "{methods:?}");
        }
    }

    #[test]
    fn amr_values() {
        use Method::*;
        assert_eq!(amr(&[f(Password)]), vec!["pwd"]);
        assert_eq!(amr(&[f(Password), f(Totp)]), vec!["pwd", "otp", "mfa"]);
        assert_eq!(amr(&[f(WebAuthn { user_verified: true })]), vec!["hwk", "user", "mfa"]);
        assert_eq!(amr(&[f(Password), f(Certificate { hardware: false })]), vec!["pwd", "x509", "mfa"]);
        // Never a specific biometric: we cannot know which one the authenticator used.
        let all = amr(&[f(WebAuthn { user_verified: true }), f(Password)]);
        assert!(!all.iter().any(|v| v == "fpt" || v == "face"));
    }

    #[test]
    fn acr_round_trip_and_order() {
        for acr in Acr::all() {
            assert_eq!(acr.to_string().parse::<Acr>(), Ok(acr));
        }
        assert_eq!(Acr::all().len(), 12);
        let a = |s: &str| s.parse::<Acr>().unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a("urn:xacthuc:loa:as3:2fa"), Acr::new(AsLevel::As3, Mechanism::TwoFactor));
        assert!(a("urn:xacthuc:loa:as3:2fa").satisfies(&a("urn:xacthuc:loa:as2:1fa")));
        assert!(a("urn:xacthuc:loa:as2:mfa").satisfies(&a("urn:xacthuc:loa:as2:2fa")));
        assert!(!a("urn:xacthuc:loa:as4:1fa").satisfies(&a("urn:xacthuc:loa:as1:2fa")));
        assert!(!a("urn:xacthuc:loa:as1:mfa").satisfies(&a("urn:xacthuc:loa:as2:1fa")));
        assert!("urn:xacthuc:loa:as5:1fa".parse::<Acr>().is_err());
        assert!("urn:xacthuc:loa:as1".parse::<Acr>().is_err());
    }

    #[test]
    fn requested_acr_kinds() {
        assert_eq!(RequestedAcr::parse("urn:xacthuc:action:payment"), RequestedAcr::Action("payment".into()));
        assert!(matches!(RequestedAcr::parse("urn:xacthuc:loa:as2:2fa"), RequestedAcr::Loa(_)));
        assert!(matches!(RequestedAcr::parse("LoA1"), RequestedAcr::Unknown(_)));
        assert!(matches!(RequestedAcr::parse("urn:xacthuc:action:"), RequestedAcr::Unknown(_)));
    }

    #[test]
    fn freshness_filters_old_factors() {
        let factors =
            [VerifiedFactor { method: Method::Password, at: 100 }, VerifiedFactor { method: Method::Totp, at: 500 }];
        assert_eq!(mechanism(&fresh_factors(&factors, 0)), Some(Mechanism::TwoFactor));
        assert_eq!(mechanism(&fresh_factors(&factors, 200)), Some(Mechanism::OneFactor));
        assert_eq!(mechanism(&fresh_factors(&factors, 600)), None);
    }
}
