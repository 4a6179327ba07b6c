//! The regulation's floor (REGULATION.md, appendix §4 of the draft circular): what no service
//! policy may go below. Every rule is checked for every service and every problem is reported.
//!
//! | rule | what it says |
//! |---|---|
//! | `floor.level3.login` | a level-3 service signs in with registration assurance at least AS-2 and at least 1FA |
//! | `floor.level4.login` | a level-4 service signs in with registration assurance at least AS-3 (and at least 1FA) |
//! | `floor.payment`, `floor.result_receipt` | "at least 2FA when paying or receiving the electronic result", at AS-3 |
//! | `floor.non_repudiation` | "at least 2FA including a digital signature" where the dossier needs non-repudiation |
//!
//! Choices the regulation leaves to us (docs/policies.md explains them):
//! - `payment` and `result_receipt` are level-4 features; wherever they are defined (also in a
//!   "một phần" service that takes fees online, and in `[defaults]`) they get the level-4 floor.
//! - a level-4 service that does not define them gets them *at the floor* (AS-3, 2FA, fresh within
//!   5 minutes, plus a certificate for `result_receipt` under non-repudiation): a missing entry can
//!   never be weaker than the law.
//! - non-repudiation is about the dossier, which the citizen submits after signing in: the
//!   signature is taken either at sign-in (`login.require` has `certificate`) or in a `submit`
//!   action the portal asks for right before submitting. At level 4 the electronic result is
//!   received under non-repudiation too, so `result_receipt` must require a certificate.

use super::file::{Located, RawRequirement, RawService};
use super::{FactorKind, IMPLIED_ACTION_MAX_AGE, PAYMENT, Problem, RESULT_RECEIPT, Requirement, SUBMIT, ServiceLevel};
use crate::assurance::{AsLevel, Mechanism};
use std::collections::BTreeMap;
use toml::Spanned;

const LEVEL3_AS: &str = "appendix §4, level-3 services: \"registration assurance at least AS-2; at least 1FA\"";
const LEVEL4_AS: &str =
    "appendix §4, level-4 services: \"registration assurance at least AS-3; at least 1FA to sign in\"";
const LEVEL4_PAY: &str = "appendix §4: \"level-4 services with online payment and online result delivery: registration assurance at least AS-3\"";
const STEP_UP: &str = "appendix §4, level-4 services: \"at least 2FA when paying or receiving the electronic result\"";
const SIGNATURE: &str = "appendix §4: \"where the dossier needs integrity and non-repudiation: at least 2FA including a digital signature\"";

/// Every floor problem of one service.
pub(super) fn check(at: &Located<'_>, level: ServiceLevel, s: &RawService) -> Vec<Problem> {
    let mut p = Vec::new();
    let login = s.login.get_ref();
    let (need_as, rule, quote) = match level {
        ServiceLevel::Level3 => (AsLevel::As2, "floor.level3.login", LEVEL3_AS),
        ServiceLevel::Level4 => (AsLevel::As3, "floor.level4.login", LEVEL4_AS),
    };
    if *login.min_as.get_ref() < need_as {
        p.push(at.problem(
            &login.min_as.span(),
            rule,
            format!(
                "login.min_as = \"{}\" is below {need_as}, the floor for a level-{} service ({quote})",
                login.min_as.get_ref().as_str(),
                level.number()
            ),
        ));
    }
    for name in [PAYMENT, RESULT_RECEIPT] {
        if let Some(action) = s.actions.get(name) {
            p.extend(check_step_up(at, name, action, "actions"));
        }
    }
    if s.non_repudiation.as_ref().is_some_and(|n| *n.get_ref()) {
        p.extend(check_non_repudiation(at, level, s));
    }
    p
}

/// `payment` / `result_receipt` in `[defaults]` get the same floor.
pub(super) fn check_defaults(at: &Located<'_>, actions: &BTreeMap<String, Spanned<RawRequirement>>) -> Vec<Problem> {
    let mut p = Vec::new();
    for name in [PAYMENT, RESULT_RECEIPT] {
        if let Some(action) = actions.get(name) {
            p.extend(check_step_up(at, name, action, "defaults.actions"));
        }
    }
    p
}

fn check_step_up(at: &Located<'_>, name: &str, action: &Spanned<RawRequirement>, prefix: &str) -> Vec<Problem> {
    let mut p = Vec::new();
    let a = action.get_ref();
    let rule = if name == PAYMENT { "floor.payment" } else { "floor.result_receipt" };
    if *a.min_as.get_ref() < AsLevel::As3 {
        p.push(at.problem(
            &a.min_as.span(),
            rule,
            format!(
                "{prefix}.{name}.min_as = \"{}\" is below AS-3: paying online and receiving the electronic result \
                 are level-4 features ({LEVEL4_PAY})",
                a.min_as.get_ref().as_str()
            ),
        ));
    }
    if *a.mechanism.get_ref() < Mechanism::TwoFactor {
        p.push(at.problem(
            &a.mechanism.span(),
            rule,
            format!("{prefix}.{name}.mechanism = \"{}\" is below 2FA ({STEP_UP})", a.mechanism.get_ref().as_str()),
        ));
    }
    p
}

fn check_non_repudiation(at: &Located<'_>, level: ServiceLevel, s: &RawService) -> Vec<Problem> {
    let mut p = Vec::new();
    let Some(flag) = &s.non_repudiation else { return p };
    let submit = s.actions.get(SUBMIT);
    let signers: Vec<(&str, &Spanned<RawRequirement>)> = [("login", Some(&s.login)), ("actions.submit", submit)]
        .into_iter()
        .filter_map(|(what, r)| r.filter(|r| r.get_ref().has(FactorKind::Certificate)).map(|r| (what, r)))
        .collect();
    if signers.is_empty() {
        let hint = if submit.is_some() {
            "add \"certificate\" to actions.submit.require (or to login.require)"
        } else {
            "add \"certificate\" to login.require, or define actions.submit with require = [\"certificate\"] for the \
             portal to ask for right before the dossier is submitted"
        };
        p.push(at.problem(
            &flag.span(),
            "floor.non_repudiation",
            format!("non_repudiation = true but the dossier is never signed: {hint} ({SIGNATURE})"),
        ));
    }
    for (what, r) in signers {
        let r = r.get_ref();
        if *r.mechanism.get_ref() < Mechanism::TwoFactor {
            p.push(at.problem(
                &r.mechanism.span(),
                "floor.non_repudiation",
                format!(
                    "{what}.mechanism = \"{}\": a signature alone is one factor; non-repudiation needs at least 2FA \
                     including it ({SIGNATURE})",
                    r.mechanism.get_ref().as_str()
                ),
            ));
        }
    }
    if level == ServiceLevel::Level4
        && let Some(receipt) = s.actions.get(RESULT_RECEIPT)
        && !receipt.get_ref().has(FactorKind::Certificate)
    {
        p.push(at.problem(
            &receipt.span(),
            "floor.non_repudiation",
            "non_repudiation = true on a level-4 service: actions.result_receipt must require \"certificate\" \
             (appendix §4, level-4 services: \"non-repudiation needs at least 2FA including a method based on a \
             digital certificate\")",
        ));
    }
    p
}

/// Advice that does not invalidate the set.
pub(super) fn advise(at: &Located<'_>, _level: ServiceLevel, s: &RawService) -> Vec<Problem> {
    let mut p = Vec::new();
    for name in [PAYMENT, RESULT_RECEIPT] {
        if let Some(a) = s.actions.get(name)
            && a.get_ref().max_age.is_none()
        {
            p.push(at.problem(
                &a.span(),
                "freshness",
                format!(
                    "actions.{name} has no max_age: a second factor verified at any time in the session counts; \
                     a step-up usually asks for max_age = \"5m\""
                ),
            ));
        }
    }
    p
}

/// The `payment` / `result_receipt` a level-4 service gets when its file leaves them out.
pub(super) fn implied_action(name: &str, non_repudiation: bool) -> Requirement {
    let mut r = Requirement::new(AsLevel::As3, Mechanism::TwoFactor);
    r.max_age = Some(IMPLIED_ACTION_MAX_AGE);
    if non_repudiation && name == RESULT_RECEIPT {
        r.require.push(FactorKind::Certificate);
    }
    r
}
