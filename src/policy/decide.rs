//! [`decide`]: the policy of the client's service, the request and the session in; `Allow`,
//! `StepUp { missing }` or `Deny { reason }` out. Pure: the time comes in with the request.
//!
//! The requirement is the strictest of every source, each checked on its own:
//! - the service's sign-in rule (always);
//! - each requested action (`urn:xacthuc:action:<name>`, or an `authorization_details` type);
//! - `acr_values`: alternatives in order of preference, any one satisfies;
//! - the essential `acr` of `claims`: alternatives too, any one satisfies;
//! - the request's `max_age`, which narrows every source's freshness window.
//!
//! A rule with a `max_age` counts only the factors verified within it (`assurance::fresh_factors`),
//! so a password typed an hour ago does not count towards a payment that must be fresh within 5
//! minutes, and a step-up made for one payment does not carry over to the next one once stale.

use super::{FactorKind, PolicySet, Requirement, format_duration};
use crate::assurance::{self, Acr, AsLevel, Mechanism, VerifiedFactor};
use std::fmt;

/// What the portal asks for, as far as the policy is concerned.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    pub client_id: &'a str,
    /// Actions requested; every one applies.
    pub actions: &'a [String],
    /// `acr_values` that are levels of assurance, in order of preference.
    pub acr_values: &'a [Acr],
    /// Values of an essential `acr` claim request, in order of preference.
    pub essential_acr: &'a [Acr],
    /// The request's `max_age`, seconds.
    pub max_age: Option<i64>,
    /// Unix time of the decision.
    pub now: i64,
}

/// The signed-in session, as far as the policy is concerned.
#[derive(Clone, Copy, Debug)]
pub struct SessionView<'a> {
    /// The account's registration level.
    pub as_level: AsLevel,
    /// Every factor verified in the session, with its time.
    pub factors: &'a [VerifiedFactor],
}

/// Which source a requirement comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The service's sign-in rule (or the defaults').
    Login,
    Action(String),
    /// One `acr_values` alternative (the preferred one the account can reach).
    AcrValues(Acr),
    /// One essential `acr` claim alternative.
    EssentialAcr(Acr),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Login => f.write_str("login"),
            Rule::Action(a) => write!(f, "action:{a}"),
            Rule::AcrValues(acr) => write!(f, "acr_values:{acr}"),
            Rule::EssentialAcr(acr) => write!(f, "claims.acr:{acr}"),
        }
    }
}

/// What one rule still needs. A new factor verified now is fresh for every rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub rule: Rule,
    /// The rule's mechanism, met or not.
    pub requires: Mechanism,
    /// The mechanism to reach, when the counted factors reach less.
    pub mechanism: Option<Mechanism>,
    /// What the counted factors reach now (`None`: no factor counts).
    pub have: Option<Mechanism>,
    /// Required kinds of factor not among the counted factors.
    pub kinds: Vec<FactorKind>,
    /// Only factors verified at or after this time count.
    pub not_before: Option<i64>,
    /// The rule's freshness window, seconds.
    pub max_age: Option<i64>,
    /// Factors of the session verified before `not_before`: too old to count.
    pub stale: Vec<VerifiedFactor>,
}

/// Why no step-up can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The account's registration level is below what `rule` needs. Raising it takes proofing
    /// (online verification for AS-3, a counter visit for AS-4), never a step-up (DESIGN.md).
    RegistrationTooLow { have: AsLevel, need: AsLevel, rule: Rule },
    /// The portal asked for an action its service does not define.
    UnknownAction { action: String },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::RegistrationTooLow { have, need, rule } => {
                write!(f, "{rule} needs an account registered at {need} or higher; this account is {have}")
            }
            DenyReason::UnknownAction { action } => write!(f, "the service defines no action {action:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every rule is met. `acr` is what the session reached (level × mechanism of the factors
    /// within the request's `max_age`), which may be more than was asked.
    Allow {
        acr: Acr,
    },
    /// More authentication is needed: one entry per rule not met, in the order login, actions,
    /// `acr_values`, essential `acr`.
    StepUp {
        missing: Vec<Shortfall>,
    },
    Deny {
        reason: DenyReason,
    },
}

/// One target that covers every shortfall of a step-up: reach `mechanism` with `kinds` among the
/// factors verified since `not_before`. Every rule counts at least those factors, so meeting the
/// target meets every rule (it can ask for more than one rule alone would). The step-up page
/// offers the factors that add a missing category or kind, and lets the citizen choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepUpTarget {
    pub mechanism: Mechanism,
    pub kinds: Vec<FactorKind>,
    pub not_before: Option<i64>,
}

impl StepUpTarget {
    /// The target for `missing` (the `StepUp` of a decision); `None` when it is empty.
    pub fn covering(missing: &[Shortfall]) -> Option<StepUpTarget> {
        let mechanism = missing.iter().map(|m| m.requires).max()?;
        let mut kinds: Vec<FactorKind> = Vec::new();
        for k in missing.iter().flat_map(|m| m.kinds.iter()) {
            if !kinds.contains(k) {
                kinds.push(*k);
            }
        }
        let not_before = missing.iter().filter_map(|m| m.not_before).max();
        Some(StepUpTarget { mechanism, kinds, not_before })
    }
}

impl Shortfall {
    /// One line, e.g. `action:payment needs 2fa within 5m (has 1fa); stale: password`.
    pub fn describe(&self) -> String {
        let mut needs = Vec::new();
        if let Some(m) = self.mechanism {
            needs.push(m.as_str().to_string());
        }
        needs.extend(self.kinds.iter().map(|k| k.as_str().to_string()));
        let mut s = format!("{} needs {}", self.rule, needs.join(" + "));
        if let Some(age) = self.max_age {
            s.push_str(&format!(" within {}", format_duration(age)));
        }
        s.push_str(&format!(" (has {})", self.have.map_or("nothing", |m| m.as_str())));
        if !self.stale.is_empty() {
            let stale: Vec<String> = self.stale.iter().map(|f| format!("{:?}", f.method)).collect();
            s.push_str(&format!("; too old: {}", stale.join(", ")));
        }
        s
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow { acr } => write!(f, "allow {acr}"),
            Decision::StepUp { missing } => {
                let parts: Vec<String> = missing.iter().map(Shortfall::describe).collect();
                write!(f, "step-up: {}", parts.join("; "))
            }
            Decision::Deny { reason } => write!(f, "deny: {reason}"),
        }
    }
}

/// A list of acr alternatives and the rule each one becomes.
type Alternatives<'a> = (&'a [Acr], fn(Acr) -> Rule);

/// The decision for `request` given `session`, under the policy of the request's client.
pub fn decide(set: &PolicySet, request: &Request<'_>, session: &SessionView<'_>) -> Decision {
    let policy = set.for_client(request.client_id);
    let mut rules: Vec<(Rule, &Requirement)> = vec![(Rule::Login, policy.login)];
    for action in request.actions {
        if rules.iter().any(|(r, _)| matches!(r, Rule::Action(a) if a == action)) {
            continue;
        }
        match policy.actions.get(action) {
            Some(req) => rules.push((Rule::Action(action.clone()), req)),
            None => return Decision::Deny { reason: DenyReason::UnknownAction { action: action.clone() } },
        }
    }

    // Registration first: no amount of authentication makes up for it. The highest level needed
    // is what the citizen is told to reach; on a tie the first rule (login before actions) names it.
    let highest = rules.iter().map(|(_, r)| r.min_as).max();
    if let Some(need) = highest.filter(|n| *n > session.as_level)
        && let Some((rule, req)) = rules.iter().find(|(_, r)| r.min_as == need)
    {
        return Decision::Deny {
            reason: DenyReason::RegistrationTooLow { have: session.as_level, need: req.min_as, rule: rule.clone() },
        };
    }
    let alternatives: [Alternatives<'_>; 2] =
        [(request.acr_values, Rule::AcrValues), (request.essential_acr, Rule::EssentialAcr)];
    for (values, rule) in alternatives {
        if !values.is_empty() && !values.iter().any(|v| v.as_level <= session.as_level) {
            // The lowest level that would do is what the citizen is told to reach.
            if let Some(lowest) = values.iter().min_by_key(|v| v.as_level) {
                return Decision::Deny {
                    reason: DenyReason::RegistrationTooLow {
                        have: session.as_level,
                        need: lowest.as_level,
                        rule: rule(*lowest),
                    },
                };
            }
        }
    }

    let mut missing: Vec<Shortfall> =
        rules.into_iter().filter_map(|(rule, req)| shortfall(rule, req, request, session)).collect();
    for (values, rule) in alternatives {
        if values.is_empty() {
            continue;
        }
        let reachable = values.iter().filter(|v| v.as_level <= session.as_level);
        let mut first = None;
        let mut met = false;
        for v in reachable {
            match shortfall(rule(*v), &Requirement::new(v.as_level, v.mechanism), request, session) {
                None => {
                    met = true;
                    break;
                }
                Some(s) => {
                    first.get_or_insert(s);
                }
            }
        }
        if !met && let Some(s) = first {
            missing.push(s);
        }
    }
    if !missing.is_empty() {
        return Decision::StepUp { missing };
    }
    let counted = counted(session.factors, request.max_age.map(|w| request.now - w));
    match assurance::mechanism(&counted) {
        Some(m) => Decision::Allow { acr: Acr::new(session.as_level, m) },
        // Unreachable while the sign-in rule needs a factor within the request's window; kept total.
        None => Decision::StepUp {
            missing: vec![Shortfall {
                rule: Rule::Login,
                requires: policy.login.mechanism,
                mechanism: Some(policy.login.mechanism),
                have: None,
                kinds: Vec::new(),
                not_before: request.max_age.map(|w| request.now - w),
                max_age: request.max_age,
                stale: session.factors.to_vec(),
            }],
        },
    }
}

fn counted(factors: &[VerifiedFactor], not_before: Option<i64>) -> Vec<VerifiedFactor> {
    match not_before {
        Some(t) => assurance::fresh_factors(factors, t),
        None => factors.to_vec(),
    }
}

/// What `req` still needs of the session, or `None` when it is met. Registration is checked
/// before, by the caller.
fn shortfall(rule: Rule, req: &Requirement, request: &Request<'_>, session: &SessionView<'_>) -> Option<Shortfall> {
    let max_age = match (req.max_age, request.max_age) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let not_before = max_age.map(|w| request.now - w);
    let counted = counted(session.factors, not_before);
    let have = assurance::mechanism(&counted);
    let mechanism_met = have.is_some_and(|h| h >= req.mechanism);
    let kinds: Vec<FactorKind> = req.require.iter().copied().filter(|k| !k.present_in(&counted)).collect();
    if mechanism_met && kinds.is_empty() {
        return None;
    }
    let stale = match not_before {
        Some(t) => session.factors.iter().copied().filter(|f| f.at < t).collect(),
        None => Vec::new(),
    };
    Some(Shortfall {
        rule,
        requires: req.mechanism,
        mechanism: (!mechanism_met).then_some(req.mechanism),
        have,
        kinds,
        not_before,
        max_age,
        stale,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::assurance::Method;
    use std::path::Path;

    const NOW: i64 = 1_000_000;
    const CLIENT: &str = "portal";

    /// A level-4 service: sign in AS-3 1FA; `payment` 2FA within 5 minutes; `result_receipt` 2FA
    /// with a certificate within 5 minutes; `view` (custom) AS-3 1FA within 1 hour.
    fn set() -> PolicySet {
        let text = r#"
            [service.s]
            name = "Đăng ký hộ kinh doanh"
            level = 4
            clients = ["portal"]
            login = { min_as = "as3", mechanism = "1fa" }
            actions.payment = { min_as = "as3", mechanism = "2fa", max_age = "5m" }
            actions.result_receipt = { min_as = "as3", mechanism = "2fa", require = ["certificate"], max_age = "5m" }
            actions.view = { min_as = "as3", mechanism = "1fa", max_age = "1h" }
        "#;
        super::super::parse_str(Path::new("t.toml"), text).unwrap()
    }

    /// The session's factors, named by the mechanism they reach together.
    #[derive(Clone, Copy, Debug)]
    enum Session {
        OneFactor,   // password
        TwoFactor,   // password, TOTP
        MultiFactor, // password, passkey (user verified)
        Signed,      // password, certificate: 2FA with a signature
    }

    /// When the factors were verified: all 10 s ago; all 2 h ago; the first 2 h ago and the
    /// others 10 s ago (a step-up after an old sign-in).
    #[derive(Clone, Copy, Debug)]
    enum Ages {
        Fresh,
        Stale,
        SecondFresh,
    }

    fn factors(s: Session, ages: Ages) -> Vec<VerifiedFactor> {
        let methods: &[Method] = match s {
            Session::OneFactor => &[Method::Password],
            Session::TwoFactor => &[Method::Password, Method::Totp],
            Session::MultiFactor => &[Method::Password, Method::WebAuthn { user_verified: true }],
            Session::Signed => &[Method::Password, Method::Certificate { hardware: false }],
        };
        methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let age = match (ages, i) {
                    (Ages::Fresh, _) | (Ages::SecondFresh, 1..) => 10,
                    (Ages::Stale, _) | (Ages::SecondFresh, 0) => 7200,
                };
                VerifiedFactor { method: *m, at: NOW - age }
            })
            .collect()
    }

    /// By hand: the mechanism reached by the factors of the last 5 minutes (and of the last hour,
    /// which is the same for these ages), and whether a certificate is among them.
    fn fresh(s: Session, ages: Ages) -> (Option<Mechanism>, bool) {
        use Mechanism::*;
        match (s, ages) {
            (_, Ages::Stale) => (None, false),
            (Session::OneFactor, Ages::Fresh) => (Some(OneFactor), false),
            (Session::OneFactor, Ages::SecondFresh) => (None, false),
            (Session::TwoFactor, Ages::Fresh) => (Some(TwoFactor), false),
            (Session::TwoFactor, Ages::SecondFresh) => (Some(OneFactor), false),
            (Session::MultiFactor, Ages::Fresh | Ages::SecondFresh) => (Some(MultiFactor), false),
            (Session::Signed, Ages::Fresh) => (Some(TwoFactor), true),
            (Session::Signed, Ages::SecondFresh) => (Some(OneFactor), true),
        }
    }

    /// By hand: the mechanism of the whole session.
    fn whole(s: Session) -> Mechanism {
        match s {
            Session::OneFactor => Mechanism::OneFactor,
            Session::TwoFactor | Session::Signed => Mechanism::TwoFactor,
            Session::MultiFactor => Mechanism::MultiFactor,
        }
    }

    /// What the decision must be, in words: "allow <mech>", "deny registration", "deny action",
    /// or "step-up <rule>: <need>".
    fn expected(level: AsLevel, s: Session, ages: Ages, action: Option<&str>) -> String {
        if action == Some("refund") {
            return "deny action".into();
        }
        if level < AsLevel::As3 {
            return "deny registration".into();
        }
        let (fresh_mech, fresh_cert) = fresh(s, ages);
        let need = match action {
            None => None,
            Some("view") => fresh_mech.is_none().then(|| "1fa".to_string()),
            Some("payment") => (fresh_mech < Some(Mechanism::TwoFactor)).then(|| "2fa".to_string()),
            Some("result_receipt") => {
                let mut n = Vec::new();
                if fresh_mech < Some(Mechanism::TwoFactor) {
                    n.push("2fa");
                }
                if !fresh_cert {
                    n.push("certificate");
                }
                (!n.is_empty()).then(|| n.join("+"))
            }
            Some(other) => unreachable!("{other}"),
        };
        match (need, action) {
            (Some(n), Some(a)) => format!("step-up action:{a}: {n}"),
            _ => format!("allow {}", whole(s).as_str()),
        }
    }

    fn summarize(d: &Decision) -> String {
        match d {
            Decision::Allow { acr } => format!("allow {}", acr.mechanism.as_str()),
            Decision::Deny { reason: DenyReason::RegistrationTooLow { .. } } => "deny registration".into(),
            Decision::Deny { reason: DenyReason::UnknownAction { .. } } => "deny action".into(),
            Decision::StepUp { missing } => {
                let parts: Vec<String> = missing
                    .iter()
                    .map(|m| {
                        let need: Vec<&str> =
                            m.mechanism.iter().map(|x| x.as_str()).chain(m.kinds.iter().map(|k| k.as_str())).collect();
                        format!("step-up {}: {}", m.rule, need.join("+"))
                    })
                    .collect();
                parts.join("; ")
            }
        }
    }

    #[test]
    fn decide_table() {
        let set = set();
        let mut cases = 0;
        let mut failures = Vec::new();
        for level in AsLevel::ALL {
            for s in [Session::OneFactor, Session::TwoFactor, Session::MultiFactor, Session::Signed] {
                for ages in [Ages::Fresh, Ages::Stale, Ages::SecondFresh] {
                    for action in [None, Some("view"), Some("payment"), Some("result_receipt"), Some("refund")] {
                        let f = factors(s, ages);
                        let actions: Vec<String> = action.iter().map(|a| a.to_string()).collect();
                        let request = Request { client_id: CLIENT, actions: &actions, now: NOW, ..Default::default() };
                        let d = decide(&set, &request, &SessionView { as_level: level, factors: &f });
                        let (got, want) = (summarize(&d), expected(level, s, ages, action));
                        if got != want {
                            failures.push(format!("{level} {s:?} {ages:?} {action:?}: want {want}, got {got} ({d})"));
                        }
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 4 * 3 * 5);
        assert!(failures.is_empty(), "{} of {cases} failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn acr_values_and_essential_acr_table() {
        let set = set();
        let acr = |s: &str| s.parse::<Acr>().unwrap();
        let two = factors(Session::TwoFactor, Ages::Fresh);
        let one = factors(Session::OneFactor, Ages::Fresh);
        // (account, factors, acr_values, essential, expected)
        type Case<'a> = (AsLevel, &'a [VerifiedFactor], Vec<Acr>, Vec<Acr>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (AsLevel::As3, &one, vec![], vec![], "allow 1fa"),
            (AsLevel::As3, &one, vec![acr("urn:xacthuc:loa:as2:1fa")], vec![], "allow 1fa"),
            (
                AsLevel::As3,
                &one,
                vec![acr("urn:xacthuc:loa:as3:2fa")],
                vec![],
                "step-up acr_values:urn:xacthuc:loa:as3:2fa: 2fa",
            ),
            (AsLevel::As3, &two, vec![acr("urn:xacthuc:loa:as3:2fa")], vec![], "allow 2fa"),
            (AsLevel::As3, &two, vec![acr("urn:xacthuc:loa:as4:1fa")], vec![], "deny registration"),
            // In order of preference: the first reachable value is the one asked for.
            (
                AsLevel::As3,
                &one,
                vec![acr("urn:xacthuc:loa:as4:1fa"), acr("urn:xacthuc:loa:as3:mfa"), acr("urn:xacthuc:loa:as3:2fa")],
                vec![],
                "step-up acr_values:urn:xacthuc:loa:as3:mfa: mfa",
            ),
            (
                AsLevel::As3,
                &two,
                vec![acr("urn:xacthuc:loa:as3:mfa"), acr("urn:xacthuc:loa:as3:2fa")],
                vec![],
                "allow 2fa",
            ),
            // Both sources apply.
            (
                AsLevel::As4,
                &two,
                vec![acr("urn:xacthuc:loa:as3:1fa")],
                vec![acr("urn:xacthuc:loa:as4:mfa")],
                "step-up claims.acr:urn:xacthuc:loa:as4:mfa: mfa",
            ),
            (AsLevel::As3, &two, vec![], vec![acr("urn:xacthuc:loa:as4:2fa")], "deny registration"),
            // Registration below the service's sign-in rule wins over everything.
            (AsLevel::As2, &two, vec![acr("urn:xacthuc:loa:as1:1fa")], vec![], "deny registration"),
        ];
        for (level, f, acr_values, essential, want) in cases {
            let request = Request {
                client_id: CLIENT,
                acr_values: &acr_values,
                essential_acr: &essential,
                now: NOW,
                ..Default::default()
            };
            let d = decide(&set, &request, &SessionView { as_level: level, factors: f });
            assert_eq!(summarize(&d), want, "{level} {acr_values:?} {essential:?}: {d}");
        }
    }

    #[test]
    fn stale_factors_are_named_and_the_window_is_the_smallest() {
        let set = set();
        let f = [
            VerifiedFactor { method: Method::Password, at: NOW - 600 },
            VerifiedFactor { method: Method::Totp, at: NOW - 30 },
        ];
        let actions = vec!["payment".to_string()];
        let request = Request { client_id: CLIENT, actions: &actions, now: NOW, ..Default::default() };
        let d = decide(&set, &request, &SessionView { as_level: AsLevel::As3, factors: &f });
        let Decision::StepUp { missing } = d else { panic!("{d}") };
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].rule, Rule::Action("payment".into()));
        assert_eq!(missing[0].have, Some(Mechanism::OneFactor));
        assert_eq!(missing[0].not_before, Some(NOW - 300));
        assert_eq!(missing[0].stale, vec![f[0]]);
        // The request's max_age is stricter than the action's: it wins.
        let request = Request { max_age: Some(20), ..request };
        let d = decide(&set, &request, &SessionView { as_level: AsLevel::As3, factors: &f });
        let Decision::StepUp { missing } = d else { panic!("{d}") };
        assert_eq!(missing[0].max_age, Some(20));
        assert_eq!(missing[0].stale, f.to_vec());
        assert_eq!(missing[0].rule, Rule::Login);
        // One target covers both rules: the stricter window and mechanism, every kind.
        let actions = vec!["payment".to_string(), "result_receipt".to_string()];
        let request = Request { client_id: CLIENT, actions: &actions, now: NOW, ..Default::default() };
        let d = decide(&set, &request, &SessionView { as_level: AsLevel::As3, factors: &f });
        let Decision::StepUp { missing } = d else { panic!("{d}") };
        assert_eq!(missing.len(), 2);
        assert_eq!(
            StepUpTarget::covering(&missing),
            Some(StepUpTarget {
                mechanism: Mechanism::TwoFactor,
                kinds: vec![FactorKind::Certificate],
                not_before: Some(NOW - 300)
            })
        );
        assert_eq!(StepUpTarget::covering(&[]), None);
        // The acr of an allowed request counts the factors within its max_age only.
        let request = Request { client_id: CLIENT, max_age: Some(60), now: NOW, ..Default::default() };
        let d = decide(&set, &request, &SessionView { as_level: AsLevel::As3, factors: &f });
        assert_eq!(d, Decision::Allow { acr: Acr::new(AsLevel::As3, Mechanism::OneFactor) });
        assert_eq!(d.to_string(), "allow urn:xacthuc:loa:as3:1fa");
    }
}
