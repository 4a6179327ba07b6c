//! The composition root: application state, start-up (data key, database and migrations,
//! signing keys, templates, the demo client), and the one router used by `main` and the tests.

use crate::authn::password::Argon2Params;
use crate::config::Config;
use crate::crypto::secretbox::DataKey;
use crate::crypto::signing::SigningAlg;
use crate::http::demo::DemoClient;
use crate::http::pages::Pages;
use crate::service::ServiceError;
use crate::service::clients::{self, ClientError, NewClient};
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
    /// The service policies from `policies_dir`, checked against the regulation's floor.
    pub policies: Arc<crate::policy::PolicySet>,
    /// Sends one-time codes by e-mail and SMS (`[notify]`).
    pub notifier: crate::notify::Notifier,
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

pub const DEMO_CLIENT_ID: &str = "xacthuc-demo";

/// The data key: configured, or in development generated once into `data_dir/data.key`.
pub fn data_key(config: &Config) -> Result<DataKey, ServiceError> {
    if let Some(k) = config.configured_data_key().map_err(ServiceError::Internal)? {
        return Ok(k);
    }
    if !config.development {
        return Err(ServiceError::Internal("data_key_file is required outside development".into()));
    }
    let path = config.data_dir.join("data.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return DataKey::from_base64(text.trim())
            .map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServiceError::Internal(format!("{}: {e}", config.data_dir.display())))?;
    let key = DataKey::generate().map_err(ServiceError::internal)?;
    write_private(&path, &key.to_base64())?;
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
    let policies = Arc::new(crate::policy::load_configured(&config.policies_dir).map_err(|e| {
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
        Some(ensure_demo_client(&config, store.as_ref(), &data_key, now).await?)
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
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    Ok(AppState(Arc::new(Inner {
        password_params: config.password,
        pages: Pages::new().map_err(ServiceError::internal)?,
        store,
        data_key,
        keys,
        hashing: Semaphore::new(cores),
        http,
        demo,
        policies,
        notifier,
        config,
    })))
}

/// Registers the demo portal as an ordinary confidential client. Its secret is derived from the
/// data key, so it never needs to be stored or shown.
async fn ensure_demo_client(
    config: &Config,
    store: &dyn crate::store::Store,
    data_key: &DataKey,
    now: i64,
) -> Result<DemoClient, ServiceError> {
    let redirect_uri = format!("{}/demo/callback", config.issuer());
    let secret = data_key.keyed_hash("demo-client-secret", config.issuer().as_bytes());
    let demo =
        DemoClient { client_id: DEMO_CLIENT_ID.into(), secret: secret.clone(), redirect_uri: redirect_uri.clone() };
    match store.get_client(DEMO_CLIENT_ID).await? {
        Some(existing) if existing.redirect_uris.contains(&redirect_uri) => Ok(demo),
        Some(_) => {
            tracing::warn!(
                "the demo client was registered for another issuer; delete data/ or keep the issuer to use /demo"
            );
            Ok(demo)
        }
        None => {
            let new = NewClient {
                id: DEMO_CLIENT_ID.into(),
                name: "Cổng dịch vụ công (demo)".into(),
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
