//! Integration tests: the real router on an ephemeral port, spoken to over HTTP. One test
//! binary (each `tests/*.rs` is a binary to link), modules by area.

mod cli;
mod common;
mod keys;
mod logout;
mod notify;
mod oidc_flow;
mod par;
mod registration;
mod second_factor;
mod store_contract;
mod structure;
mod tokens;
