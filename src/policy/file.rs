//! Reading policy files: TOML with unknown keys rejected, every problem reported with its file and
//! line, each service checked against the floor (`floor.rs`), then checks across files (a client
//! named by two services, a service id used twice, two `[defaults]`).

use super::{
    Defaults, FactorKind, PAYMENT, PolicySet, RESULT_RECEIPT, Requirement, Service, ServiceLevel, floor, parse_duration,
};
use crate::assurance::{AsLevel, Mechanism};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One problem in a policy file: where, which service, which rule, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is with the file as a whole.
    pub line: usize,
    pub service: Option<String>,
    /// A short stable name of the rule broken, e.g. `floor.level4.payment`.
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE: service ID: RULE: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(s) = &self.service {
            write!(f, "service {s}: ")?;
        }
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// The set is invalid; every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Every `*.toml` file directly in `dir` (not in subdirectories), in name order, except golden
/// files (`*.expected.toml`, the expected decisions of an example).
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let problem = |message: String| PolicyError {
        problems: vec![Problem { file: dir.to_path_buf(), line: 0, service: None, rule: "read", message }],
    };
    let entries = std::fs::read_dir(dir).map_err(|e| problem(format!("cannot read the directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| problem(format!("cannot read the directory: {e}")))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_file() && name.ends_with(".toml") && !name.ends_with(".expected.toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads and checks every policy file of `dir` as one set.
pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
    load_files(&policy_files(dir)?)
}

/// The set `serve` runs with: `dir`'s, or none but the defaults when `dir` does not exist (only
/// allowed in development with the default directory; `Config::validate` refuses it otherwise).
/// Warnings are logged.
pub fn load_configured(dir: &Path) -> Result<PolicySet, PolicyError> {
    if !dir.exists() {
        tracing::warn!(dir = %dir.display(), "no policy directory: every client gets the built-in defaults");
        return Ok(PolicySet::default());
    }
    let set = load_dir(dir)?;
    for w in &set.warnings {
        tracing::warn!("policy: {w}");
    }
    tracing::debug!(services = set.services.len(), files = set.files.len(), "service policies loaded");
    Ok(set)
}

/// Loads and checks `files` as one set.
pub fn load_files(files: &[PathBuf]) -> Result<PolicySet, PolicyError> {
    let mut acc = Accumulator::default();
    for path in files {
        match std::fs::read_to_string(path) {
            Ok(text) => acc.file(path, &text),
            Err(e) => acc.problems.push(Problem {
                file: path.clone(),
                line: 0,
                service: None,
                rule: "read",
                message: format!("cannot read: {e}"),
            }),
        }
    }
    acc.finish(files.to_vec())
}

/// Checks one file's text as a set on its own (`file` only names it in messages).
pub fn parse_str(file: &Path, text: &str) -> Result<PolicySet, PolicyError> {
    let mut acc = Accumulator::default();
    acc.file(file, text);
    acc.finish(vec![file.to_path_buf()])
}

// ---------------------------------------------------------------------------------------------
// The file format, as written (with positions).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub name: Spanned<String>,
    pub level: Spanned<RawScalar>,
    #[serde(default)]
    pub clients: Vec<Spanned<String>>,
    pub login: Spanned<RawRequirement>,
    #[serde(default)]
    pub non_repudiation: Option<Spanned<bool>>,
    #[serde(default)]
    pub actions: BTreeMap<String, Spanned<RawRequirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    login: Option<Spanned<RawRequirement>>,
    #[serde(default)]
    actions: BTreeMap<String, Spanned<RawRequirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequirement {
    pub min_as: Spanned<AsLevel>,
    pub mechanism: Spanned<Mechanism>,
    #[serde(default)]
    pub require: Vec<Spanned<FactorKind>>,
    #[serde(default)]
    pub max_age: Option<Spanned<RawScalar>>,
}

/// `level = 4` or `level = "toàn trình"`; `max_age = 300` or `max_age = "5m"`.
pub(super) enum RawScalar {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawScalar, E> {
                Ok(RawScalar::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawScalar, E> {
                i64::try_from(v).map(RawScalar::Number).map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawScalar, E> {
                Ok(RawScalar::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawRequirement {
    pub fn has(&self, kind: FactorKind) -> bool {
        self.require.iter().any(|k| *k.get_ref() == kind)
    }
}

/// The service levels: 3 and 4, or their Decree 42/2022 names. Both the precomposed (NFC) and the
/// decomposed (NFD, as some editors save) spellings are accepted.
fn service_level(raw: &RawScalar) -> Option<ServiceLevel> {
    match raw {
        RawScalar::Number(3) => Some(ServiceLevel::Level3),
        RawScalar::Number(4) => Some(ServiceLevel::Level4),
        RawScalar::Number(_) => None,
        RawScalar::Text(s) => match s.trim().to_lowercase().as_str() {
            "3" | "một phần" | "mo\u{323}\u{302}t pha\u{302}\u{300}n" => Some(ServiceLevel::Level3),
            "4" | "toàn trình" | "toa\u{300}n tri\u{300}nh" => Some(ServiceLevel::Level4),
            _ => None,
        },
    }
}

/// Action names are what a portal writes after `urn:xacthuc:action:`.
fn valid_action_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

// ---------------------------------------------------------------------------------------------
// Reading.

/// Where things are in one file.
pub(super) struct Located<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub service: Option<&'a str>,
}

impl Located<'_> {
    pub fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    pub fn problem(&self, span: &Range<usize>, rule: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line: self.line(span),
            service: self.service.map(str::to_string),
            rule,
            message: message.into(),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().get(..offset).unwrap_or(text.as_bytes()).iter().filter(|b| **b == b'\n').count() + 1
}

#[derive(Default)]
struct Accumulator {
    services: Vec<Service>,
    defaults: Option<(Defaults, PathBuf, usize)>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Accumulator {
    fn file(&mut self, path: &Path, text: &str) {
        let at = Located { file: path, text, service: None };
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.problems.push(at.problem(&span, "syntax", e.message().trim()));
                return;
            }
        };
        if root.get_ref().is_empty() {
            self.warnings.push(at.problem(&root.span(), "empty", "the file defines no service and no defaults"));
            return;
        }
        for (key, value) in root.into_inner() {
            let key_span = key.span();
            match key.get_ref().as_ref() {
                "service" => {
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Table(services) => {
                            for (id, service) in services {
                                self.service(path, text, id.get_ref(), &id.span(), service);
                            }
                        }
                        _ => self.problems.push(at.problem(&span, "schema", "`service` must be a table of services")),
                    }
                }
                "defaults" => self.defaults(&at, value),
                other => self.problems.push(at.problem(
                    &key_span,
                    "schema",
                    format!("unknown key `{other}`: a policy file has `[service.<id>]` tables and `[defaults]`"),
                )),
            }
        }
    }

    fn service(&mut self, path: &Path, text: &str, id: &str, id_span: &Range<usize>, value: Spanned<DeValue<'_>>) {
        let at = Located { file: path, text, service: Some(id) };
        let raw = match RawService::deserialize(ValueDeserializer::from(value)) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(id_span.clone());
                self.problems.push(at.problem(&span, "schema", e.message().trim()));
                return;
            }
        };
        let before = self.problems.len();
        if !valid_action_name(id) {
            self.problems.push(at.problem(id_span, "service-id", "a service id is ASCII letters, digits, `_` and `-`"));
        }
        if raw.name.get_ref().trim().is_empty() {
            self.problems.push(at.problem(&raw.name.span(), "name", "the procedure's name is empty"));
        }
        let level = service_level(raw.level.get_ref());
        if level.is_none() {
            self.problems.push(at.problem(
                &raw.level.span(),
                "level",
                "level must be 3 or 4 (or \"một phần\" = 3, \"toàn trình\" = 4): levels 1 and 2 only publish \
                 information and forms and sign no one in",
            ));
        }
        let login = self.requirement(&at, &raw.login, "login");
        let mut actions = BTreeMap::new();
        for (name, r) in &raw.actions {
            if !valid_action_name(name) {
                self.problems.push(at.problem(
                    &r.span(),
                    "action-name",
                    format!("action `{name}`: a name is ASCII letters, digits, `_` and `-` (it goes in urn:xacthuc:action:<name>)"),
                ));
            }
            if let Some(req) = self.requirement(&at, r, &format!("actions.{name}")) {
                actions.insert(name.clone(), req);
            }
        }
        if let Some(level) = level {
            self.problems.extend(floor::check(&at, level, &raw));
            self.warnings.extend(floor::advise(&at, level, &raw));
        }
        if raw.clients.is_empty() {
            self.warnings.push(at.problem(id_span, "clients", "no client acts for this service, so it never applies"));
        }
        let (Some(level), Some(login)) = (level, login) else { return };
        if self.problems.len() > before {
            return;
        }
        let non_repudiation = raw.non_repudiation.as_ref().is_some_and(|n| *n.get_ref());
        let mut implied = std::collections::BTreeSet::new();
        if level == ServiceLevel::Level4 {
            for name in [PAYMENT, RESULT_RECEIPT] {
                if !actions.contains_key(name) {
                    actions.insert(name.to_string(), floor::implied_action(name, non_repudiation));
                    implied.insert(name.to_string());
                }
            }
        }
        self.services.push(Service {
            id: id.to_string(),
            name: raw.name.get_ref().trim().to_string(),
            level,
            clients: raw.clients.iter().map(|c| c.get_ref().clone()).collect(),
            login,
            non_repudiation,
            actions,
            implied_actions: implied,
            file: path.to_path_buf(),
            line: at.line(id_span),
        });
    }

    fn defaults(&mut self, at: &Located<'_>, value: Spanned<DeValue<'_>>) {
        let span = value.span();
        let raw = match RawDefaults::deserialize(ValueDeserializer::from(value)) {
            Ok(raw) => raw,
            Err(e) => {
                self.problems.push(at.problem(&e.span().unwrap_or(span), "schema", e.message().trim()));
                return;
            }
        };
        let before = self.problems.len();
        let mut defaults = Defaults::default();
        if let Some(login) = &raw.login
            && let Some(req) = self.requirement(at, login, "defaults.login")
        {
            defaults.login = req;
        }
        for (name, r) in &raw.actions {
            if !valid_action_name(name) {
                self.problems.push(at.problem(&r.span(), "action-name", format!("action `{name}`: invalid name")));
            }
            if let Some(req) = self.requirement(at, r, &format!("defaults.actions.{name}")) {
                defaults.actions.insert(name.clone(), req);
            }
        }
        self.problems.extend(floor::check_defaults(at, &raw.actions));
        if self.problems.len() > before {
            return;
        }
        match &self.defaults {
            Some((_, file, line)) => self.problems.push(at.problem(
                &span,
                "duplicate-defaults",
                format!("[defaults] is already defined at {}:{line}", file.display()),
            )),
            None => self.defaults = Some((defaults, at.file.to_path_buf(), at.line(&span))),
        }
    }

    /// The checked requirement, or `None` after recording its problems.
    fn requirement(&mut self, at: &Located<'_>, raw: &Spanned<RawRequirement>, what: &str) -> Option<Requirement> {
        let r = raw.get_ref();
        let max_age = match &r.max_age {
            None => None,
            Some(m) => {
                let seconds = match m.get_ref() {
                    RawScalar::Number(n) => Some(*n),
                    RawScalar::Text(s) => parse_duration(s),
                };
                match seconds {
                    Some(s) if s > 0 => Some(s),
                    _ => {
                        self.problems.push(at.problem(
                            &m.span(),
                            "max_age",
                            format!("{what}.max_age: a positive duration such as \"300s\", \"5m\" or \"1h\""),
                        ));
                        return None;
                    }
                }
            }
        };
        let mut require: Vec<FactorKind> = Vec::new();
        for k in &r.require {
            if !require.contains(k.get_ref()) {
                require.push(*k.get_ref());
            }
        }
        Some(Requirement { min_as: *r.min_as.get_ref(), mechanism: *r.mechanism.get_ref(), require, max_age })
    }

    fn finish(mut self, files: Vec<PathBuf>) -> Result<PolicySet, PolicyError> {
        let mut ids: BTreeMap<&str, &Service> = BTreeMap::new();
        let mut clients: BTreeMap<&str, &Service> = BTreeMap::new();
        for s in &self.services {
            let here = |rule, message| Problem {
                file: s.file.clone(),
                line: s.line,
                service: Some(s.id.clone()),
                rule,
                message,
            };
            if let Some(first) = ids.insert(&s.id, s) {
                self.problems.push(here(
                    "duplicate-service",
                    format!("service id already used at {}:{}", first.file.display(), first.line),
                ));
            }
            for c in &s.clients {
                if let Some(first) = clients.get(c.as_str()) {
                    self.problems.push(here(
                        "duplicate-client",
                        format!(
                            "client {c} already acts for service {} ({}:{})",
                            first.id,
                            first.file.display(),
                            first.line
                        ),
                    ));
                } else {
                    clients.insert(c, s);
                }
            }
        }
        if !self.problems.is_empty() {
            // In file order, whatever order the parser visited the tables in.
            self.problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            return Err(PolicyError { problems: self.problems });
        }
        Ok(PolicySet {
            services: self.services,
            defaults: self.defaults.map(|(d, _, _)| d).unwrap_or_default(),
            files,
            warnings: self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn service(level: &str) -> String {
        format!(
            "[service.s]\nname = \"Đăng ký khai sinh\"\nlevel = {level}\nclients = [\"c\"]\n\
             login = {{ min_as = \"as3\", mechanism = \"1fa\" }}\n"
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match parse_str(Path::new("p.toml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn levels_in_both_vocabularies() {
        let cases = [
            ("3", Some(ServiceLevel::Level3)),
            ("4", Some(ServiceLevel::Level4)),
            ("\"4\"", Some(ServiceLevel::Level4)),
            ("\"một phần\"", Some(ServiceLevel::Level3)),
            ("\"Toàn trình\"", Some(ServiceLevel::Level4)),
            // Decomposed (NFD), as some editors save it.
            ("\"mo\u{323}\u{302}t pha\u{302}\u{300}n\"", Some(ServiceLevel::Level3)),
            ("\"toa\u{300}n tri\u{300}nh\"", Some(ServiceLevel::Level4)),
            ("2", None),
            ("5", None),
            ("\"toan trinh\"", None),
        ];
        for (level, want) in cases {
            let got = parse_str(Path::new("p.toml"), &service(level)).ok().map(|s| s.services[0].level);
            assert_eq!(got, want, "level = {level}");
        }
    }

    #[test]
    fn every_problem_of_every_service_with_its_line() {
        let text = "[service.a]\nname = \"A\"\nlevel = 3\nclients = [\"a\"]\nlogin = { min_as = \"as1\", mechanism = \"1fa\" }\n\
                    \n[service.b]\nname = \"B\"\nlevel = 4\nclients = [\"b\"]\nlogin = { min_as = \"as2\", mechanism = \"1fa\" }\n\
                    actions.payment = { min_as = \"as3\", mechanism = \"1fa\" }\n\
                    \n[defaults]\nactions.result_receipt = { min_as = \"as2\", mechanism = \"2fa\" }\n";
        let got = problems(text);
        let lines: Vec<&str> = got.iter().map(|p| p.split(": ").next().unwrap()).collect();
        assert_eq!(lines, ["p.toml:5", "p.toml:11", "p.toml:12", "p.toml:15"], "{got:#?}");
        assert!(got[0].contains("service a: floor.level3.login"));
        assert!(got[1].contains("service b: floor.level4.login"));
        assert!(got[2].contains("service b: floor.payment") && got[2].contains("1fa"));
        assert!(got[3].contains("floor.result_receipt") && got[3].contains("defaults.actions.result_receipt"));
    }

    #[test]
    fn defaults_twice_and_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
        std::fs::write(&a, "[defaults]\nlogin = { min_as = \"as2\", mechanism = \"1fa\" }\n").unwrap();
        std::fs::write(&b, "[defaults]\nlogin = { min_as = \"as1\", mechanism = \"1fa\" }\n").unwrap();
        std::fs::write(dir.path().join("a.expected.toml"), "not policy = at all").unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].rule, "duplicate-defaults");
        std::fs::remove_file(&b).unwrap();
        let set = load_dir(dir.path()).unwrap();
        assert_eq!(set.defaults.login.min_as, AsLevel::As2);
        assert_eq!(set.files, vec![a]);

        let text = "[service.s]\nname = \"S\"\nlevel = 4\nlogin = { min_as = \"as3\", mechanism = \"1fa\" }\n\
                    actions.payment = { min_as = \"as3\", mechanism = \"2fa\" }\n";
        let set = parse_str(Path::new("p.toml"), text).unwrap();
        let rules: Vec<&str> = set.warnings.iter().map(|w| w.rule).collect();
        assert_eq!(rules, ["freshness", "clients"]);
        // result_receipt is implied at the floor; payment is kept as written.
        let s = &set.services[0];
        assert_eq!(s.actions["payment"].max_age, None);
        assert_eq!(s.actions["result_receipt"].max_age, Some(300));
        assert!(s.implied_actions.contains("result_receipt") && !s.implied_actions.contains("payment"));
    }

    #[test]
    fn a_missing_directory_is_an_error_for_check_but_not_for_development() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(load_dir(&missing).is_err());
        assert_eq!(load_configured(&missing).unwrap(), PolicySet::default());
    }
}
