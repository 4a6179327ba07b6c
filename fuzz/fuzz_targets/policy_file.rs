//! Policy files (docs/policies.md): any text → `policy::parse_str`; a set that validates is
//! then used for decisions on fixed requests and sessions, as the authorization endpoint does.
//! Any panic is a bug: a bad file must be reported as problems, never crash `policy check` or
//! the start-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xacthuc::assurance::{Acr, AsLevel, Mechanism, Method, VerifiedFactor};
use xacthuc::policy::{self, Decision, Request, SessionView, StepUpTarget};

const NOW: i64 = 1_764_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(4) {
        if let Some(seconds) = policy::parse_duration(line) {
            let _ = policy::format_duration(seconds);
        }
    }
    let set = match policy::parse_str(Path::new("fuzz.toml"), &text) {
        Ok(set) => set,
        Err(e) => {
            // The problems are printed by `xacthuc policy check`.
            let _ = format!("{e:?}");
            return;
        }
    };
    let _ = set.summary();
    let mut clients: Vec<&str> = vec!["unnamed-client"];
    let mut actions: Vec<String> = vec!["payment".into(), "result_receipt".into(), "no-such-action".into()];
    for s in &set.services {
        clients.extend(s.clients.iter().map(String::as_str));
        actions.extend(s.actions.keys().cloned());
    }
    clients.truncate(8);
    actions.truncate(8);
    let factors = [
        VerifiedFactor { method: Method::Password, at: NOW - 4000 },
        VerifiedFactor { method: Method::Totp, at: NOW - 30 },
        VerifiedFactor { method: Method::Certificate { hardware: true }, at: NOW - 10 },
    ];
    let sessions = [
        SessionView { as_level: AsLevel::As1, factors: &[] },
        SessionView { as_level: AsLevel::As2, factors: &factors[..1] },
        SessionView { as_level: AsLevel::As4, factors: &factors },
    ];
    let acrs = [Acr { as_level: AsLevel::As3, mechanism: Mechanism::TwoFactor }];
    for client_id in &clients {
        let _ = set.for_client(client_id);
        for action in &actions {
            let one = std::slice::from_ref(action);
            let requests = [
                Request { client_id, now: NOW, ..Default::default() },
                Request { client_id, actions: one, max_age: Some(60), now: NOW, ..Default::default() },
                Request { client_id, actions: one, acr_values: &acrs, now: NOW, ..Default::default() },
                Request { client_id, essential_acr: &acrs, max_age: Some(0), now: NOW, ..Default::default() },
            ];
            for request in &requests {
                for session in &sessions {
                    if let Decision::StepUp { missing } = policy::decide(&set, request, session) {
                        let _ = StepUpTarget::covering(&missing);
                        for m in &missing {
                            let _ = m.describe();
                        }
                    }
                }
            }
        }
    }
});
