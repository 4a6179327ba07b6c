//! The composition root: application state, start-up (data key, database and migrations,
//! signing keys, templates, the demo client), and the one router used by `main` and the tests.

use crate::authn::password::Argon2Params;
use crate::config::Config;
use crate::crypto::secretbox::{DataKeyRing, DataKeys};
use crate::crypto::signing::SigningAlg;
use crate::http::demo::{DemoClient, DemoClients};
use crate::http::pages::Pages;
use crate::service::ServiceError;
use crate::service::clients::{self, ClientError, NewClient};
use crate::service::keys::KeyRing;
use crate::store::DynStore;
use std::sync::Arc;

/// Everything a request needs; cheap to clone (one `Arc`). No globals.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: DynStore,
    /// The data keys (one seals, older ones open); reloaded on SIGHUP (`keys rotate-data-key`).
    pub data_key: DataKeys,
    pub keys: KeyRing,
    pub pages: Pages,
    pub password_params: Argon2Params,
    /// Argon2 work: `[password] workers` threads (one per core by default) with their own
    /// memory and a bounded queue (`service::hashing`); full means 503, never an endless wait.
    pub hashing: crate::service::hashing::HashingPool,
    /// Password attempts on one user name take turns (`service::throttle::LoginGate`).
    pub login_gate: crate::service::throttle::LoginGate,
    /// Outbound HTTP (the demo portal's back channel).
    pub http: reqwest::Client,
    pub demo: Option<DemoClients>,
    /// The service policies from `policies_dir`, checked against the regulation's floor.
    /// Swapped whole on reload ([`AppState::reload_policies`]); readers never wait.
    policies: arc_swap::ArcSwap<crate::policy::PolicySet>,
    /// Sends one-time codes by e-mail and SMS (`[notify]`).
    pub notifier: crate::notify::Notifier,
    /// Prometheus counters and latency histograms (`crate::metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Digital certificates: the trust store and the CRL cache (`[certificates]`).
    pub certificates: crate::service::certificates::CertState,
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

    /// The policy set in force now.
    pub fn policies(&self) -> Arc<crate::policy::PolicySet> {
        self.policies.load_full()
    }

    /// Re-reads `policies_dir` and swaps the new set in atomically. An invalid set changes
    /// nothing: the old one stays in force and the problems are returned (and logged).
    pub fn reload_policies(&self) -> Result<Arc<crate::policy::PolicySet>, crate::policy::PolicyError> {
        match crate::policy::load_configured(&self.config.policies_dir) {
            Ok(set) => {
                let set = Arc::new(set);
                self.policies.store(set.clone());
                tracing::info!(services = set.services.len(), "service policies reloaded");
                Ok(set)
            }
            Err(e) => {
                tracing::error!("policy reload refused, the previous policies stay in force:\n{e}");
                Err(e)
            }
        }
    }
}

/// The unix time now. The one place the wall clock is read on the request path.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub use crate::http::router;

pub const DEMO_CLIENT_ID: &str = "xacthuc-demo";
/// The demo portal's level-4 service, "Đăng ký hộ kinh doanh" (`policies/ho-kinh-doanh.toml`).
pub const DEMO_BUSINESS_CLIENT_ID: &str = "xacthuc-demo-hkd";

/// The data key: configured, or in development generated once into `data_dir/data.key`.
pub fn data_key(config: &Config) -> Result<DataKeys, ServiceError> {
    if let Some(k) = config.configured_data_key().map_err(ServiceError::Internal)? {
        return Ok(k);
    }
    if !config.development {
        return Err(ServiceError::Internal("data_key_file is required outside development".into()));
    }
    let path = config.data_dir.join("data.key");
    if path.exists() {
        return DataKeys::from_file(&path).map_err(|e| ServiceError::Internal(e.to_string()));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServiceError::Internal(format!("{}: {e}", config.data_dir.display())))?;
    let key = crate::crypto::secretbox::DataKey::generate().map_err(ServiceError::internal)?;
    write_private(&path, &key.to_base64())?;
    let key = DataKeys::new(DataKeyRing::from_legacy(key).map_err(ServiceError::internal)?, Some(path.clone()));
    tracing::warn!(
        path = %path.display(),
        "DEVELOPMENT DATA KEY generated: personal data is encrypted with a key kept next to the database. \
         Never use this in production: set data_key_file and development = false."
    );
    Ok(key)
}

fn write_private(path: &std::path::Path, contents: &str) -> Result<(), ServiceError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
    f.write_all(contents.as_bytes()).map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))
}

pub async fn build_state(config: Config, now: i64) -> Result<AppState, ServiceError> {
    // reqwest uses rustls without a built-in provider: install ring's once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::crypto::random::check_rng().map_err(ServiceError::internal)?;
    let data_key = data_key(&config)?;
    // An invalid policy set stops start-up: the gateway never runs below the regulation's floor.
    let policies =
        arc_swap::ArcSwap::from_pointee(crate::policy::load_configured(&config.policies_dir).map_err(|e| {
            ServiceError::Internal(format!("invalid service policies in {}:\n{e}", config.policies_dir.display()))
        })?);
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServiceError::Internal(format!("{}: {e}", config.data_dir.display())))?;
    }
    let store = crate::store::connect(&url).await?;
    let (keys, created) = KeyRing::load_or_create(store.as_ref(), &data_key, &config.tokens, now).await?;
    if !created.is_empty() {
        let algs: Vec<&str> = created.iter().map(|a| a.as_str()).collect();
        if config.development {
            tracing::warn!(?algs, "DEVELOPMENT SIGNING KEYS generated and stored (sealed with the data key)");
        } else {
            tracing::info!(?algs, "signing keys generated and stored");
        }
    }
    let demo = if config.demo_enabled() {
        let portal =
            ensure_demo_client(&config, store.as_ref(), &data_key, DEMO_CLIENT_ID, "Cổng dịch vụ công (demo)", now)
                .await?;
        let business = ensure_demo_client(
            &config,
            store.as_ref(),
            &data_key,
            DEMO_BUSINESS_CLIENT_ID,
            "Cổng đăng ký hộ kinh doanh (demo)",
            now,
        )
        .await?;
        Some(DemoClients { portal, business })
    } else {
        None
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ServiceError::internal)?;
    let hello_name = url::Url::parse(config.issuer())
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let notifier = crate::notify::Notifier::from_config(&config.notify, config.development, http.clone(), &hello_name)
        .map_err(ServiceError::internal)?;
    // An unusable trust store (expired anchor, unparsable file) stops start-up with every problem.
    let certificates = crate::service::certificates::CertState::load(&config.certificates, now)?;
    let hashing = crate::service::hashing::HashingPool::start(
        config.password.workers(),
        config.password.queue(),
        config.password.params(),
    )
    .map_err(|e| ServiceError::Internal(format!("cannot start the password hashing threads: {e}")))?;
    let state = AppState(Arc::new(Inner {
        password_params: config.password.params(),
        pages: Pages::new().map_err(ServiceError::internal)?,
        store,
        data_key,
        keys,
        hashing,
        login_gate: crate::service::throttle::LoginGate::default(),
        http,
        demo,
        policies,
        notifier,
        certificates,
        metrics: crate::metrics::Metrics::default(),
        config,
    }));
    Ok(state)
}

/// Registers the demo portal as an ordinary confidential client. Its secret is derived from the
/// data key, so it never needs to be stored or shown.
async fn ensure_demo_client(
    config: &Config,
    store: &dyn crate::store::Store,
    data_key: &DataKeys,
    client_id: &str,
    name: &str,
    now: i64,
) -> Result<DemoClient, ServiceError> {
    let redirect_uri = format!("{}/demo/callback", config.issuer());
    // The first demo client's derivation predates the second; kept so existing data stays valid.
    let input = match client_id {
        DEMO_CLIENT_ID => config.issuer().to_string(),
        other => format!("{}#{other}", config.issuer()),
    };
    let secret = data_key.keyed_hash("demo-client-secret", input.as_bytes());
    let demo = DemoClient { client_id: client_id.into(), secret: secret.clone(), redirect_uri: redirect_uri.clone() };
    match store.get_client(client_id).await? {
        Some(existing) if existing.redirect_uris.contains(&redirect_uri) => Ok(demo),
        Some(_) => {
            tracing::warn!(
                "the demo client was registered for another issuer; delete data/ or keep the issuer to use /demo"
            );
            Ok(demo)
        }
        None => {
            let new = NewClient {
                id: client_id.into(),
                name: name.into(),
                redirect_uris: vec![redirect_uri],
                secret: Some(secret),
                alg: SigningAlg::PS256,
                settings: Default::default(),
            };
            match clients::add_client(store, &new, "system", now).await {
                Ok(_) | Err(ClientError::Exists) => Ok(demo),
                Err(e @ (ClientError::Invalid(_) | ClientError::NotFound)) => {
                    Err(ServiceError::Internal(e.to_string()))
                }
                Err(ClientError::Service(e)) => Err(e),
            }
        }
    }
}
