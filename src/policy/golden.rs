//! Golden tests: every policy file shipped in `policies/` and every example in
//! `policies/examples/` has its expected decisions in `NAME.expected.toml`; every file in
//! `policies/examples/invalid/` has its exact problems there. Format: `policies/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::assurance::{Acr, Method, VerifiedFactor};
use serde::Deserialize;
use std::path::Path;

/// The time of every golden case; factor ages are relative to it.
const NOW: i64 = 1_700_000_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Golden {
    #[serde(default)]
    case: Vec<Case>,
    #[serde(default)]
    problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    client: String,
    as_level: AsLevel,
    #[serde(default)]
    factors: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    acr_values: Vec<String>,
    #[serde(default)]
    essential_acr: Vec<String>,
    max_age: Option<String>,
    expect: toml::Table,
}

const METHODS: &[(&str, Method)] = &[
    ("password", Method::Password),
    ("totp", Method::Totp),
    ("sms_otp", Method::SmsOtp),
    ("email_otp", Method::EmailOtp),
    ("recovery_code", Method::RecoveryCode),
    ("passkey", Method::WebAuthn { user_verified: true }),
    ("security_key", Method::WebAuthn { user_verified: false }),
    ("certificate", Method::Certificate { hardware: false }),
    ("smart_card", Method::Certificate { hardware: true }),
];

/// `"password@10m"`: a password verified ten minutes before `NOW`.
fn factor(spec: &str) -> VerifiedFactor {
    let (name, age) = spec.split_once('@').unwrap_or_else(|| panic!("factor {spec:?}: METHOD@AGE"));
    let method = METHODS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("unknown method {name:?}")).1;
    let age = parse_duration(age).unwrap_or_else(|| panic!("bad age in {spec:?}"));
    VerifiedFactor { method, at: NOW - age }
}

fn method_name(m: Method) -> &'static str {
    METHODS.iter().find(|(_, x)| *x == m).map(|(n, _)| *n).unwrap()
}

fn strings(v: impl IntoIterator<Item = String>) -> toml::Value {
    toml::Value::Array(v.into_iter().map(toml::Value::String).collect())
}

/// The decision in the golden files' shape.
fn project(d: &Decision) -> toml::Table {
    let mut t = toml::Table::new();
    let s = |v: &str| toml::Value::String(v.to_string());
    match d {
        Decision::Allow { acr } => {
            t.insert("allow".into(), s(&acr.to_string()));
        }
        Decision::StepUp { missing } => {
            let entries = missing
                .iter()
                .map(|m| {
                    let mut e = toml::Table::new();
                    e.insert("rule".into(), s(&m.rule.to_string()));
                    let need = m
                        .mechanism
                        .iter()
                        .map(|x| x.as_str().to_string())
                        .chain(m.kinds.iter().map(|k| k.as_str().to_string()));
                    e.insert("need".into(), strings(need));
                    e.insert("have".into(), s(m.have.map_or("none", |h| h.as_str())));
                    if let Some(w) = m.max_age {
                        e.insert("within".into(), s(&format_duration(w)));
                    }
                    if !m.stale.is_empty() {
                        e.insert("stale".into(), strings(m.stale.iter().map(|f| method_name(f.method).to_string())));
                    }
                    toml::Value::Table(e)
                })
                .collect();
            t.insert("step_up".into(), toml::Value::Array(entries));
        }
        Decision::Deny { reason: DenyReason::RegistrationTooLow { need, rule, .. } } => {
            t.insert("deny".into(), s("registration_too_low"));
            t.insert("need".into(), s(need.as_str()));
            t.insert("rule".into(), s(&rule.to_string()));
        }
        Decision::Deny { reason: DenyReason::UnknownAction { action } } => {
            t.insert("deny".into(), s("unknown_action"));
            t.insert("action".into(), s(action));
        }
    }
    t
}

fn acrs(values: &[String]) -> Vec<Acr> {
    values.iter().map(|v| v.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// Runs every case of `golden` against `set`; returns the failures and the number of cases.
fn run_cases(set: &PolicySet, golden: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    let g: Golden = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    assert!(!g.case.is_empty(), "{}: no [[case]]", golden.display());
    let mut failures = Vec::new();
    for c in &g.case {
        let factors: Vec<VerifiedFactor> = c.factors.iter().map(|f| factor(f)).collect();
        let (acr_values, essential) = (acrs(&c.acr_values), acrs(&c.essential_acr));
        let request = Request {
            client_id: &c.client,
            actions: &c.actions,
            acr_values: &acr_values,
            essential_acr: &essential,
            max_age: c.max_age.as_deref().map(|m| parse_duration(m).unwrap()),
            now: NOW,
        };
        let decision = decide(set, &request, &SessionView { as_level: c.as_level, factors: &factors });
        let got = project(&decision);
        if got != c.expect {
            failures.push(format!(
                "{}: case {:?}:\n  expected {}\n  got      {}\n  ({decision})",
                golden.display(),
                c.name,
                toml::Value::Table(c.expect.clone()),
                toml::Value::Table(got)
            ));
        }
    }
    (failures, g.case.len())
}

fn expected_path(policy: &Path) -> std::path::PathBuf {
    policy.with_extension("expected.toml")
}

#[test]
fn shipped_policies_match_their_golden_files() {
    let dir = root().join("policies");
    let set = load_dir(&dir).unwrap_or_else(|e| panic!("the shipped policies are invalid:\n{e}"));
    assert!(set.services.iter().any(|s| s.clients.iter().any(|c| c == "xacthuc-demo-hkd")), "no service for the demo");
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in policy_files(&dir).unwrap() {
        let golden = expected_path(&file);
        assert!(golden.is_file(), "{} has no golden file {}", file.display(), golden.display());
        let (f, n) = run_cases(&set, &golden);
        failures.extend(f);
        cases += n;
    }
    assert!(failures.is_empty(), "{} of {cases} golden cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn examples_match_their_golden_files() {
    let dir = root().join("policies/examples");
    let files = policy_files(&dir).unwrap();
    assert!(files.len() >= 3, "examples missing");
    let mut failures = Vec::new();
    for file in files {
        // Each example is a set on its own.
        let set = load_files(std::slice::from_ref(&file)).unwrap_or_else(|e| panic!("{e}"));
        let golden = expected_path(&file);
        assert!(golden.is_file(), "{} has no golden file", file.display());
        failures.extend(run_cases(&set, &golden).0);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_examples_report_exactly_their_problems() {
    let dir = root().join("policies/examples/invalid");
    let files = policy_files(&dir).unwrap();
    assert!(files.len() >= 4, "invalid examples missing");
    let mut failures = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let shown = Path::new("policies/examples/invalid").join(&name);
        let text = std::fs::read_to_string(&file).unwrap();
        let golden = expected_path(&file);
        let g: Golden = toml::from_str(&std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{name}: {e}")))
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        match parse_str(&shown, &text) {
            Ok(_) => failures.push(format!("{name}: accepted, but it breaks the rules")),
            Err(e) => {
                let got: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
                if got != g.problems {
                    failures.push(format!(
                        "{name}:\n  expected:\n    {}\n  got:\n    {}",
                        g.problems.join("\n    "),
                        got.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
