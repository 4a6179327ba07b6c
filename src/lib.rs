//! xacthuc — an OpenID Connect identity provider for Vietnamese online public services.
//! `docs/architecture.md` has the module map and the life of one sign-in.

pub mod app;
pub mod assurance;
pub mod audit;
pub mod authn;
pub mod certs;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod http;
pub mod i18n;
pub mod identity;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod oidc;
pub mod policy;
pub mod service;
pub mod store;
