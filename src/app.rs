//! Application state and the one router used by `main` and by the tests.

use crate::authn::password::Argon2Params;
use crate::config::Config;
use crate::crypto::secretbox::DataKey;
use crate::http::pages::Pages;
use crate::service::keys::KeyRing;
use crate::store::DynStore;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Everything a request needs; cheap to clone (one `Arc`). No globals.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: DynStore,
    pub data_key: DataKey,
    pub keys: KeyRing,
    pub pages: Pages,
    pub password_params: Argon2Params,
    /// Bounds concurrent Argon2 work to the number of cores so hashing never starves the
    /// async runtime or queues unboundedly.
    pub hashing: Semaphore,
    /// Outbound HTTP (the demo portal's back channel).
    pub http: reqwest::Client,
    pub demo: Option<crate::http::demo::DemoClient>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn issuer(&self) -> &str {
        self.config.issuer()
    }
}

/// The unix time now. The one place the wall clock is read on the request path.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub use crate::http::router;
