//! Integration tests: the real router on an ephemeral port, spoken to over HTTP. One test
//! binary (each `tests/*.rs` is a binary to link), modules by area.

mod certificates;
mod cli;
mod common;
mod data_key;
mod hardening;
mod keys;
mod logout;
mod notify;
mod observability;
mod oidc_flow;
mod par;
mod passkeys;
mod performance;
mod policies;
mod proofing_online;
mod proofing_review;
mod registration;
mod second_factor;
mod staff;
mod staff_console;
mod store_contract;
mod store_contract_certificates;
mod store_contract_hardening;
mod store_contract_proofing;
mod store_contract_review;
mod store_contract_throttle_race;
mod store_contract_webauthn;
mod structure;
mod tokens;
