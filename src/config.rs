//! Configuration, layered: built-in defaults → TOML file → `XACTHUC_*` environment → command-line
//! flags. Each layer is a TOML table merged over the one before; the result is deserialized with
//! unknown keys rejected, then [`Config::validate`] reports every problem at once.
//!
//! Environment names map to keys by lower-casing and reading `__` as a section separator:
//! `XACTHUC_ISSUER` → `issuer`, `XACTHUC_DEMO__ENABLED` → `demo.enabled`. Secrets can be given
//! as files: `data_key_file` instead of `data_key`.

use crate::crypto::secretbox::{DataKeyRing, DataKeys};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "XACTHUC_";
/// The default `policies_dir`.
pub const DEFAULT_POLICIES_DIR: &str = "./policies";

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The public base URL; the OpenID Connect `iss`.
    pub issuer: String,
    /// Address the HTTP listener binds.
    pub listen: String,
    /// Where the SQLite database, generated development keys and other state live.
    pub data_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; empty means `sqlite:<data_dir>/xacthuc.db`.
    pub database_url: String,
    /// Development mode: generated keys, the demo portal on by default. Never in production.
    pub development: bool,
    /// Base64 32-byte key that encrypts personal data at rest (AES-256-GCM).
    pub data_key: Option<String>,
    /// File holding `data_key` (preferred: keeps the secret out of the config and environment).
    pub data_key_file: Option<PathBuf>,
    /// `vi` or `en`: language of pages when the browser does not choose.
    pub default_language: String,
    /// `pretty` or `json`.
    pub log_format: String,
    /// Directory of the service policy files (`*.toml`, see docs/policies.md).
    pub policies_dir: PathBuf,
    pub demo: DemoConfig,
    pub session: SessionConfig,
    pub tokens: TokenConfig,
    /// `[password]`: Argon2id parameters and the hashing pool (`workers`, `queue`).
    pub password: crate::authn::password::PasswordConfig,
    /// `[notify]`: how one-time codes are sent (see `crate::notify::config`).
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// `[webauthn]`: passkeys' relying party (see `crate::authn::webauthn`).
    #[serde(default)]
    pub webauthn: crate::authn::webauthn::WebauthnConfig,
    /// `[certificates]`: trust store and revocation for digital-certificate sign-in (see
    /// `crate::certs::config`).
    #[serde(default)]
    pub certificates: crate::certs::CertificatesConfig,
    /// `[throttle]`: limits on online guessing, registrations and codes sent (see
    /// `crate::authn::throttle`).
    #[serde(default)]
    pub throttle: crate::authn::throttle::ThrottleConfig,
    /// Where Prometheus scrapes `GET /metrics` (a separate listener, e.g. `"127.0.0.1:9464"`);
    /// unset: no metrics listener.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// `[tls]`: serve HTTPS directly (see `crate::http::tls`).
    #[serde(default)]
    pub tls: crate::http::tls::TlsConfig,
    /// `[proofing]`: the online AS-3 verification methods (see `crate::service::proofing::config`).
    #[serde(default)]
    pub proofing: crate::service::proofing::config::ProofingConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve the built-in demo portal at `/demo`. Unset: on in development, off otherwise.
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Lifetime of a sign-in session at the gateway, in seconds: the absolute timeout.
    pub lifetime_seconds: i64,
    /// A session with no request for this long ends (the idle timeout), in seconds.
    pub idle_seconds: i64,
    /// How long a portal's authorization request waits for the citizen to sign in.
    pub interaction_seconds: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub code_seconds: i64,
    pub access_token_seconds: i64,
    pub id_token_seconds: i64,
    /// Sliding lifetime of a refresh token: each use issues a successor valid this long.
    pub refresh_token_seconds: i64,
    /// Absolute lifetime of a grant: no refresh beyond it, whatever the sliding lifetime.
    pub refresh_absolute_seconds: i64,
    /// Lifetime of a pushed authorization request's `request_uri` (RFC 9126).
    pub par_seconds: i64,
}

const DEFAULTS: &str = r#"
issuer = "http://localhost:8080"
listen = "127.0.0.1:8080"
data_dir = "./data"
database_url = ""
development = true
default_language = "vi"
log_format = "pretty"
policies_dir = "./policies"

[demo]

[session]
lifetime_seconds = 43200
idle_seconds = 1800
interaction_seconds = 1800

[tokens]
code_seconds = 60
access_token_seconds = 600
id_token_seconds = 600
refresh_token_seconds = 1209600
refresh_absolute_seconds = 2592000
par_seconds = 60

[password]
memory_kib = 19456
iterations = 2
parallelism = 1
"#;

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub issuer: Option<String>,
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads every layer. `env` is passed in (not read here) so tests can give their own.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut merged: toml::Table = match DEFAULTS.parse() {
            Ok(t) => t,
            Err(e) => return Err(ConfigError::Invalid(vec![format!("built-in defaults: {e}")])),
        };
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => match text.parse::<toml::Table>() {
                    Ok(t) => merge(&mut merged, t),
                    Err(e) => problems.push(format!("{}: {e}", path.display())),
                },
                Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
            }
        }
        merge(&mut merged, env_layer(env, &mut problems));
        let mut flag_table = toml::Table::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                flag_table.insert(k.into(), toml::Value::String(v));
            }
        };
        put("listen", flags.listen.clone());
        put("data_dir", flags.data_dir.as_ref().map(|p| p.display().to_string()));
        put("issuer", flags.issuer.clone());
        put("database_url", flags.database_url.clone());
        merge(&mut merged, flag_table);

        let config = match Config::deserialize(toml::Value::Table(merged)) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("configuration: {e}"));
                None
            }
        };
        match config {
            Some(c) => {
                problems.extend(c.validate());
                if problems.is_empty() { Ok(c) } else { Err(ConfigError::Invalid(problems)) }
            }
            None => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Every problem with the values, each a full sentence naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        match url::Url::parse(&self.issuer) {
            Ok(u) => {
                if u.path() != "/" && !u.path().is_empty() {
                    p.push("issuer: must be an origin without a path, e.g. https://id.example.vn".into());
                }
                if u.scheme() != "https" && !(self.development && u.scheme() == "http") {
                    p.push("issuer: must be an https URL (http is allowed only with development = true)".into());
                }
                if u.query().is_some() || u.fragment().is_some() {
                    p.push("issuer: must not have a query or fragment (OpenID Connect Discovery §2)".into());
                }
            }
            Err(e) => p.push(format!("issuer: not a URL ({e})")),
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!("listen: {:?} is not ADDRESS:PORT", self.listen));
        }
        if !self.database_url.is_empty()
            && !["sqlite:", "postgres://", "postgresql://"].iter().any(|s| self.database_url.starts_with(s))
        {
            p.push("database_url: must start with sqlite: or postgres://".into());
        }
        if self.data_key.is_some() && self.data_key_file.is_some() {
            p.push("data_key and data_key_file: give one, not both".into());
        }
        if let Err(e) = self.configured_data_key() {
            p.push(e);
        }
        if !self.development && self.data_key.is_none() && self.data_key_file.is_none() {
            p.push("data_key_file: required when development = false (personal data is encrypted with it)".into());
        }
        if !["vi", "en"].contains(&self.default_language.as_str()) {
            p.push("default_language: must be \"vi\" or \"en\"".into());
        }
        if !["pretty", "json"].contains(&self.log_format.as_str()) {
            p.push("log_format: must be \"pretty\" or \"json\"".into());
        }
        // Outside development the policies are the regulation's floor in force: they must exist.
        // In development a missing default directory means no service policies (defaults only).
        if !self.policies_dir.is_dir() && (!self.development || self.policies_dir != Path::new(DEFAULT_POLICIES_DIR)) {
            p.push(format!("policies_dir: {} is not a directory", self.policies_dir.display()));
        }
        p.extend(self.tls.problems(&self.issuer));
        if let Some(m) = &self.metrics_listen
            && m.parse::<SocketAddr>().is_err()
        {
            p.push(format!("metrics_listen: {m:?} is not ADDRESS:PORT"));
        }
        if self.demo.enabled == Some(true) && !self.development {
            p.push("demo.enabled: the demo portal is for development only (set development = true)".into());
        }
        let positive = [
            ("session.lifetime_seconds", self.session.lifetime_seconds),
            ("session.idle_seconds", self.session.idle_seconds),
            ("session.interaction_seconds", self.session.interaction_seconds),
            ("tokens.code_seconds", self.tokens.code_seconds),
            ("tokens.access_token_seconds", self.tokens.access_token_seconds),
            ("tokens.id_token_seconds", self.tokens.id_token_seconds),
            ("tokens.refresh_token_seconds", self.tokens.refresh_token_seconds),
            ("tokens.refresh_absolute_seconds", self.tokens.refresh_absolute_seconds),
            ("tokens.par_seconds", self.tokens.par_seconds),
        ];
        for (key, v) in positive {
            if v <= 0 {
                p.push(format!("{key}: must be a positive number of seconds"));
            }
        }
        if self.tokens.code_seconds > 600 {
            p.push("tokens.code_seconds: at most 600 (RFC 6749 §4.1.2 recommends 10 minutes at most)".into());
        }
        use crate::authn::password::{MAX_ITERATIONS, MAX_MEMORY_KIB, MAX_PARALLELISM};
        let pw = &self.password;
        if pw.memory_kib < 8 * pw.parallelism.max(1) || pw.iterations == 0 || pw.parallelism == 0 {
            p.push(
                "password: memory_kib must be at least 8 × parallelism, iterations and parallelism at least 1".into(),
            );
        }
        if pw.memory_kib > MAX_MEMORY_KIB || pw.iterations > MAX_ITERATIONS || pw.parallelism > MAX_PARALLELISM {
            p.push(format!(
                "password: at most memory_kib = {MAX_MEMORY_KIB}, iterations = {MAX_ITERATIONS}, parallelism = {MAX_PARALLELISM}"
            ));
        }
        p.extend(self.notify.problems(self.development));
        p.extend(self.webauthn.problems(self.issuer(), self.development));
        p.extend(self.certificates.problems());
        p.extend(self.proofing.registry.problems(self.development));
        p.extend(self.throttle.problems());
        p.extend(self.password.pool_problems());
        p
    }

    /// The data keys from `data_key` or `data_key_file`, if configured: a single base64 key or
    /// a key ring (`crate::crypto::secretbox::DataKeyRing`, written by `keys rotate-data-key`).
    pub fn configured_data_key(&self) -> Result<Option<DataKeys>, String> {
        if let Some(k) = &self.data_key {
            return DataKeyRing::parse(k).map(|r| Some(DataKeys::new(r, None))).map_err(|e| format!("data_key: {e}"));
        }
        if let Some(path) = &self.data_key_file {
            return DataKeys::from_file(path).map(Some).map_err(|e| format!("data_key_file: {e}"));
        }
        Ok(None)
    }

    /// Whether the demo portal is served: as configured, else in development only.
    pub fn demo_enabled(&self) -> bool {
        self.demo.enabled.unwrap_or(self.development)
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite:{}", self.data_dir.join("xacthuc.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// Cookies get `Secure` when the issuer is https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// Secrets never reach logs: `Debug` shows only whether they are set.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("development", &self.development)
            .field("data_key", &self.data_key.as_ref().map(|_| "<redacted>"))
            .field("data_key_file", &self.data_key_file)
            .field("default_language", &self.default_language)
            .field("log_format", &self.log_format)
            .field("policies_dir", &self.policies_dir)
            .field("demo", &self.demo)
            .field("session", &self.session)
            .field("tokens", &self.tokens)
            .field("password", &self.password)
            .field("notify", &self.notify)
            .field("webauthn", &self.webauthn)
            .field("certificates", &self.certificates)
            .field("throttle", &self.throttle)
            .finish()
    }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Merges `over` into `base`, recursing into tables so a file can set one key of a section.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Builds a table from `XACTHUC_*` variables. A value is read as a TOML literal when it is one
/// (numbers, booleans), otherwise as a string. Variables used only by tests or tools
/// (`XACTHUC_TEST_*`) are ignored.
fn env_layer(env: impl IntoIterator<Item = (String, String)>, problems: &mut Vec<String>) -> toml::Table {
    let mut table = toml::Table::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        // XACTHUC_CONFIG names the file itself (read by the command line, not a key);
        // XACTHUC_BIN and XACTHUC_TEST_* belong to scripts and tests.
        if rest.starts_with("TEST_") || rest.is_empty() || rest == "CONFIG" || rest == "BIN" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            problems.push(format!("{name}: malformed variable name"));
            continue;
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table())
            .unwrap_or(toml::Value::String(value));
        let mut cursor = &mut table;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cursor.insert(key.clone(), parsed.clone());
            } else {
                let entry = cursor.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry {
                    toml::Value::Table(t) => cursor = t,
                    _ => {
                        problems.push(format!("{name}: conflicts with another variable"));
                        break;
                    }
                }
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_with_nothing_given() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.issuer(), "http://localhost:8080");
        assert!(c.development && c.demo_enabled());
        assert!(c.database_url().starts_with("sqlite:"));
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nissuer = \"http://file\"\n[tokens]\ncode_seconds = 30\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let flags = Overrides { issuer: Some("http://flag".into()), ..Default::default() };
        let c = Config::load(
            Some(&file),
            env(&[("XACTHUC_ISSUER", "http://env"), ("XACTHUC_TOKENS__ACCESS_TOKEN_SECONDS", "99"), ("HOME", "/")]),
            &flags,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.issuer, "http://flag");
        assert_eq!(c.tokens.code_seconds, 30);
        assert_eq!(c.tokens.access_token_seconds, 99);
        assert_eq!(c.tokens.id_token_seconds, 600);
    }

    #[test]
    fn every_problem_is_reported() {
        let Err(ConfigError::Invalid(problems)) = Config::load(
            None,
            env(&[
                ("XACTHUC_LISTEN", "nowhere"),
                ("XACTHUC_DEVELOPMENT", "false"),
                ("XACTHUC_ISSUER", "http://plain"),
                ("XACTHUC_TOKENS__CODE_SECONDS", "0"),
                ("XACTHUC_DEMO__ENABLED", "true"),
                ("XACTHUC_PASSWORD__MEMORY_KIB", "4000000"),
                ("XACTHUC_CONFIG", "/ignored/here"),
            ]),
            &Overrides::default(),
        ) else {
            unreachable!("invalid configuration accepted")
        };
        let all = problems.join("\n");
        for key in ["listen:", "issuer:", "tokens.code_seconds:", "data_key_file:", "demo.enabled:", "password:"] {
            assert!(all.contains(key), "missing {key} in {all}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let Err(ConfigError::Invalid(problems)) =
            Config::load(None, env(&[("XACTHUC_ISUER", "http://typo")]), &Overrides::default())
        else {
            unreachable!("typo accepted")
        };
        assert!(problems.join(" ").contains("isuer"), "{problems:?}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let key = crate::crypto::secretbox::DataKey::generate().unwrap_or_else(|e| unreachable!("{e}")).to_base64();
        let c = Config::load(None, env(&[("XACTHUC_DATA_KEY", &key)]), &Overrides::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!format!("{c:?}").contains(&key));
    }

    #[test]
    fn example_config_parses() {
        let example = include_str!("../xacthuc.example.toml");
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let file = dir.path().join("example.toml");
        std::fs::write(&file, example).unwrap_or_else(|e| unreachable!("{e}"));
        Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_or_else(|e| unreachable!("{e}"));
    }
}
