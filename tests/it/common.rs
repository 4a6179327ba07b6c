//! Test harness: starts the real server on 127.0.0.1:0 with a fresh database (SQLite in a temp
//! dir, or a fresh PostgreSQL database when `XACTHUC_TEST_POSTGRES_URL` is set and the test asks
//! for it), cheap Argon2 parameters, and the issuer set from the real port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use xacthuc::app::AppState;
use xacthuc::config::{Config, Overrides};

pub const POSTGRES_ENV: &str = "XACTHUC_TEST_POSTGRES_URL";

/// A throwaway PostgreSQL database, dropped by `cleanup`.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// `None` when `XACTHUC_TEST_POSTGRES_URL` is unset (local runs without a server); CI sets it
    /// and `.ci/run` fails if the server is unreachable.
    pub async fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())?;
        let name = format!("xacthuc_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Some(PgDatabase { url: url.to_string(), admin_url, name })
    }

    pub async fn cleanup(self) {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut conn)
                .await;
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    _dir: Arc<tempfile::TempDir>,
}

pub fn test_config(dir: &std::path::Path, issuer: &str, database_url: Option<&str>) -> Config {
    test_config_env(dir, issuer, database_url, &[])
}

/// The test configuration with extra `XACTHUC_*` settings.
pub fn test_config_env(
    dir: &std::path::Path,
    issuer: &str,
    database_url: Option<&str>,
    extra: &[(&str, &str)],
) -> Config {
    let mut env = vec![
        ("XACTHUC_PASSWORD__MEMORY_KIB".to_string(), "1024".to_string()),
        ("XACTHUC_PASSWORD__ITERATIONS".to_string(), "1".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let flags = Overrides {
        data_dir: Some(dir.to_path_buf()),
        issuer: Some(issuer.to_string()),
        listen: Some("127.0.0.1:0".to_string()),
        database_url: database_url.map(String::from),
    };
    Config::load(None, env, &flags).unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(None).await
    }

    pub async fn start_with(database_url: Option<&str>) -> TestServer {
        Self::start_opts(database_url, false).await
    }

    /// `https_issuer`: the issuer says https (as behind a TLS-terminating proxy) while the test
    /// talks plain HTTP to the listener.
    pub async fn start_opts(database_url: Option<&str>, https_issuer: bool) -> TestServer {
        Self::start_full(database_url, https_issuer, &[]).await
    }

    /// A server whose service policies are the files of `policies` (name, TOML), written to a
    /// directory of the server's own (`<data dir>/policies`, so tests can change and reload them).
    pub async fn start_with_policies(database_url: Option<&str>, policies: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir_all(&policy_dir).unwrap();
        for (name, text) in policies {
            std::fs::write(policy_dir.join(name), text).unwrap();
        }
        let policy_dir = policy_dir.to_string_lossy().to_string();
        Self::start_in_dir(dir, database_url, false, &[("XACTHUC_POLICIES_DIR", &policy_dir)]).await
    }

    pub async fn start_full(database_url: Option<&str>, https_issuer: bool, extra: &[(&str, &str)]) -> TestServer {
        Self::start_in_dir(tempfile::tempdir().unwrap(), database_url, https_issuer, extra).await
    }

    async fn start_in_dir(
        dir: tempfile::TempDir,
        database_url: Option<&str>,
        https_issuer: bool,
        extra: &[(&str, &str)],
    ) -> TestServer {
        let dir = Arc::new(dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let issuer = if https_issuer { base.replace("http://", "https://") } else { base.clone() };
        let config = test_config_env(dir.path(), &issuer, database_url, extra);
        let state = xacthuc::app::build_state(config, xacthuc::app::now()).await.unwrap();
        let app = xacthuc::app::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        TestServer { base, state, http: client(), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a confidential client with a secret, returning the secret.
    pub async fn add_client(&self, id: &str, redirect: &str, alg: &str) -> String {
        let secret = format!("{id}-secret-0123456789abcdefghijklmnop");
        let new = xacthuc::service::clients::NewClient {
            id: id.into(),
            name: format!("Cổng {id}"),
            redirect_uris: vec![redirect.into()],
            secret: Some(secret.clone()),
            alg: alg.parse().unwrap(),
            settings: Default::default(),
        };
        xacthuc::service::clients::add_client(self.state.store.as_ref(), &new, "test", xacthuc::app::now())
            .await
            .unwrap();
        secret
    }

    pub async fn add_public_client(&self, id: &str, redirect: &str) {
        let new = xacthuc::service::clients::NewClient {
            id: id.into(),
            name: id.into(),
            redirect_uris: vec![redirect.into()],
            secret: None,
            alg: "ES256".parse().unwrap(),
            settings: Default::default(),
        };
        xacthuc::service::clients::add_client(self.state.store.as_ref(), &new, "test", xacthuc::app::now())
            .await
            .unwrap();
    }
}

/// A browser-like client: cookie jar, no automatic redirects (tests follow them by hand).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of `<input … name="NAME" value="…">` in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no input {name} in page:\n{html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&#x2f;", "/").replace("&amp;", "&")
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .unwrap_or_else(|| panic!("no Location; status {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') { format!("{base}{location}") } else { location.to_string() }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.to_string())
}

pub struct Citizen<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// (national id, full name, birth date, sex) for AS-2.
    pub identity: Option<(&'a str, &'a str, &'a str, &'a str)>,
}

pub const PASSWORD: &str = "hoa sen nở giữa đầm 2024";

/// Registers through the web form with `http` (which ends up signed in). Returns the response.
pub async fn register(server: &TestServer, http: &reqwest::Client, c: &Citizen<'_>) -> reqwest::Response {
    let page = http.get(server.url("/register")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("username", c.username),
        ("password", c.password),
        ("password_confirm", c.password),
        ("r", ""),
    ];
    if let Some((id, name, birth, sex)) = c.identity {
        form.extend([("level", "as2"), ("national_id", id), ("full_name", name), ("birth_date", birth), ("sex", sex)]);
    } else {
        form.push(("level", "as1"));
    }
    http.post(server.url("/register")).form(&form).send().await.unwrap()
}

/// Adds a client with explicit settings; returns its secret (None for public clients).
pub async fn add_client_with(
    server: &TestServer,
    id: &str,
    redirect: &str,
    secret: Option<&str>,
    settings: xacthuc::store::ClientSettings,
) {
    let new = xacthuc::service::clients::NewClient {
        id: id.into(),
        name: id.into(),
        redirect_uris: vec![redirect.into()],
        secret: secret.map(String::from),
        alg: "ES256".parse().unwrap(),
        settings,
    };
    xacthuc::service::clients::add_client(server.state.store.as_ref(), &new, "test", xacthuc::app::now())
        .await
        .unwrap();
}

/// Drives the browser part of a code flow with `http` (signing in with `login` when the
/// sign-in page shows) and returns the `code` delivered to `redirect`.
pub async fn authorize_code(
    server: &TestServer,
    http: &reqwest::Client,
    params: &[(&str, &str)],
    redirect: &str,
    login: (&str, &str),
) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    let mut url = url.to_string();
    for _ in 0..8 {
        if url.starts_with(redirect) {
            return query_param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"));
        }
        let resp = http.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            url = absolute(&server.base, &location(&resp));
            continue;
        }
        let page = resp.text().await.unwrap();
        let form = [
            ("csrf", hidden(&page, "csrf")),
            ("r", hidden(&page, "r")),
            ("username", login.0.into()),
            ("password", login.1.into()),
        ];
        let resp = http.post(server.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 303, "sign-in failed");
        url = absolute(&server.base, &location(&resp));
    }
    panic!("no code after 8 steps, last {url}");
}

impl TestServer {
    /// A server on an existing data directory (its SQLite database and development data key),
    /// e.g. one the CLI binary has just written to.
    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        let dir = Arc::new(dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = xacthuc::app::build_state(test_config(dir.path(), &base, None), xacthuc::app::now()).await.unwrap();
        let app = xacthuc::app::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        TestServer { base, state, http: client(), _dir: dir }
    }
}

/// A plain AS-1 citizen for the store contract groups: a cheap password hash, no contact, no
/// identity, created and updated at `at`.
pub fn store_citizen(username: &str, at: i64) -> xacthuc::store::Account {
    xacthuc::store::Account {
        id: uuid::Uuid::now_v7(),
        username: username.into(),
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into()),
        as_level: xacthuc::assurance::AsLevel::As1,
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity: None,
        status: xacthuc::store::AccountStatus::Active,
        always_second_factor: false,
        created_at: at,
        updated_at: at,
    }
}

/// [`store_citizen`] created in `store`, with its audit event.
pub async fn seed_store_citizen(store: &xacthuc::store::DynStore, username: &str, at: i64) -> xacthuc::store::Account {
    let a = store_citizen(username, at);
    let created = xacthuc::audit::AuditEvent::new(at, "account.created", "test").account(a.id);
    store.create_account(&a, &created).await.unwrap();
    a
}

/// Runs one store contract group on a fresh SQLite database.
pub async fn store_on_sqlite<F, Fut>(group: F)
where
    F: FnOnce(xacthuc::store::DynStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    group(xacthuc::store::connect(&url).await.unwrap()).await;
}

/// Runs one store contract group on a fresh PostgreSQL database, when `XACTHUC_TEST_POSTGRES_URL`
/// is set (CI always sets it, so there a missing server fails). The database is dropped even
/// when the group panics; the panic is then passed on.
pub async fn store_on_postgres<F, Fut>(name: &str, group: F)
where
    F: FnOnce(xacthuc::store::DynStore) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(db) = PgDatabase::create().await else {
        println!("{name}: {POSTGRES_ENV} is unset; the PostgreSQL half was not run");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { group(xacthuc::store::connect(&url).await.unwrap()).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `store_groups!(a, b)` in a `store_contract_<area>` module: tests `on_sqlite::a`,
/// `on_postgres::a`, … each running `async fn a(store: DynStore)` of that module on a fresh
/// database of that backend.
#[macro_export]
macro_rules! store_groups {
    ($($group:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    $crate::common::store_on_sqlite(super::$group).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $group() {
                    $crate::common::store_on_postgres(concat!(module_path!(), "::", stringify!($group)), super::$group).await;
                }
            )*
        }
    };
}
