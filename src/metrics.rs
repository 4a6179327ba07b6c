//! Prometheus metrics (OpenMetrics text), served on their own listener (`metrics_listen`) so
//! they never share a port with citizens: sign-ins by result and method, step-ups, one-time
//! codes sent, tokens issued, lockouts, and request latency by route.
//!
//! Labels are small closed sets (routes are the router's patterns, never raw paths), so the
//! number of series stays bounded whatever the traffic.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignIn {
    /// `success`, `failure` (wrong credentials) or `locked` (refused by the throttle).
    pub result: &'static str,
    /// The first factor: `pwd`, `hwk` (passkey), `x509` (certificate), …
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Factor {
    /// The factor added to a signed-in session (`otp`, `sms`, `hwk`, `x509`, …).
    pub factor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Channel {
    /// `sms` or `email`.
    pub channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Grant {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    pub grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Lock {
    /// What was locked: `second_factor`, `user_name`, `address`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub method: String,
    /// The router's pattern (`/account/totp/{id}`), or `unmatched`.
    pub route: String,
    /// `2xx`, `3xx`, `4xx`, `5xx`.
    pub status: &'static str,
}

type Latency = Family<Route, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s: Argon2 sign-ins sit near 50–500 ms, token calls near 1 ms.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub sign_ins: Family<SignIn, Counter>,
    pub step_ups: Family<Factor, Counter>,
    pub codes_sent: Family<Channel, Counter>,
    pub tokens_issued: Family<Grant, Counter>,
    pub lockouts: Family<Lock, Counter>,
    pub requests: Latency,
    /// Requests refused because the password hashing queue was full (`service::hashing`).
    pub password_shed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("xacthuc");
        let sign_ins = Family::<SignIn, Counter>::default();
        registry.register("sign_ins", "Sign-in attempts by result and first factor", sign_ins.clone());
        let step_ups = Family::<Factor, Counter>::default();
        registry.register(
            "step_ups",
            "Factors added to a signed-in session (second step or step-up)",
            step_ups.clone(),
        );
        let codes_sent = Family::<Channel, Counter>::default();
        registry.register("codes_sent", "One-time codes sent", codes_sent.clone());
        let tokens_issued = Family::<Grant, Counter>::default();
        registry.register("tokens_issued", "Token responses issued by grant type", tokens_issued.clone());
        let lockouts = Family::<Lock, Counter>::default();
        registry.register("lockouts", "Locks imposed after repeated failures", lockouts.clone());
        let requests: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route and status class",
            requests.clone(),
        );
        let password_shed = Counter::default();
        registry.register(
            "password_hashes_shed",
            "Requests refused with 503 because the password hashing queue was full",
            password_shed.clone(),
        );
        Metrics { registry, sign_ins, step_ups, codes_sent, tokens_issued, lockouts, requests, password_shed }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn sign_in(&self, result: &'static str, method: &str) {
        self.sign_ins.get_or_create(&SignIn { result, method: method.to_string() }).inc();
    }

    pub fn step_up(&self, amr: &[&str]) {
        let factor = amr.first().copied().unwrap_or("unknown").to_string();
        self.step_ups.get_or_create(&Factor { factor }).inc();
    }

    pub fn lockout(&self, kind: &'static str) {
        self.lockouts.get_or_create(&Lock { kind }).inc();
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `2xx` … for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.sign_in("success", "pwd");
        m.sign_in("success", "pwd");
        m.step_up(&["otp"]);
        m.requests
            .get_or_create(&Route { method: "GET".into(), route: "/healthz".into(), status: status_class(200) })
            .observe(0.002);
        let text = m.render();
        assert!(text.contains("xacthuc_sign_ins_total{result=\"success\",method=\"pwd\"} 2"), "{text}");
        assert!(text.contains("xacthuc_step_ups_total{factor=\"otp\"} 1"), "{text}");
        assert!(text.contains(
            "xacthuc_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"2xx\"} 1"
        ));
        assert!(text.ends_with("# EOF\n"));
    }
}
