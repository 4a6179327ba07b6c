//! The operator's command line: one binary to serve, check the configuration, migrate, and
//! manage clients, accounts and keys.

mod audit;
mod backup;
pub mod certs;
mod client;
mod keys;
mod policy;
pub mod sign;
mod staff;
mod unlock;

pub use client::ClientCommand;
pub use policy::PolicyCommand;

use crate::app::now;
use crate::config::{Config, Overrides};
use crate::service::accounts::{IdentityInput, RegistrationError, RegistrationInput};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "xacthuc", version, about = "Identity provider for Vietnamese online public services")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "XACTHUC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, global = true)]
    pub listen: Option<String>,
    /// State directory (SQLite database, development keys).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Public base URL (the OpenID Connect issuer).
    #[arg(long, global = true)]
    pub issuer: Option<String>,
    /// sqlite:… or postgres://…
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Check the configuration and list every problem.
    CheckConfig,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Relying parties (portals).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Citizen accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Service policies (docs/policies.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Digital certificates: a demo trust store, checking a trust directory (docs/certificates.md).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Staff accounts for the identity verification counter (docs/proofing.md).
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Sign a challenge with a certificate's key (PKCS#12) and print the signature package.
    Sign(sign::SignArgs),
    /// The audit log: verify its hash chain, export it as JSON lines.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Write a consistent backup of the SQLite database while the gateway serves.
    Backup(backup::BackupArgs),
    /// Restore the SQLite database from a backup (checked first; the gateway must be stopped).
    Restore(backup::RestoreArgs),
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create an account (AS-1, or AS-2 with the identity fields).
    Add {
        #[arg(long)]
        username: String,
        /// File whose first line is the password.
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        as_level: u8,
        #[arg(long)]
        national_id: Option<String>,
        #[arg(long)]
        full_name: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        birth_date: Option<String>,
        #[arg(long, value_parser = ["male", "female"])]
        sex: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Lift a password-guessing lock (the hard one after too many failures included).
    Unlock {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a new random data key (base64) for data_key_file.
    GenerateDataKey,
    /// Create the next signing key: published at once, signing after --activate-in seconds,
    /// when the current key stops signing (it stays published until its tokens expire).
    Rotate {
        /// Only this algorithm (default: all).
        #[arg(long, value_parser = ["PS256", "ES256", "RS256"])]
        alg: Option<String>,
        /// Seconds until the new key signs; at least 600, so JWKS caches (300 s) fetch it first.
        #[arg(long, default_value_t = crate::service::keys::DEFAULT_ACTIVATE_IN_SECONDS,
              value_parser = clap::value_parser!(i64).range(crate::service::keys::MIN_ACTIVATE_IN_SECONDS..))]
        activate_in: i64,
    },
    /// List the signing keys: kid, alg, created, activates, retired, state (next, current, retired, expired).
    List,
    /// Make a new data key current (older ones kept to decrypt), tell the gateway (SIGHUP), and
    /// re-encrypt every sealed value under it. Back up the key file first (docs/operations.md).
    RotateDataKey {
        /// No new key: finish re-encrypting under the current one (after an interruption).
        #[arg(long)]
        resume: bool,
        /// Values re-encrypted per transaction.
        #[arg(long, default_value_t = crate::service::data_key::DEFAULT_BATCH)]
        batch: i64,
        /// Process id of the gateway (default: read from DATA_DIR/xacthuc.pid).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Remove an old data key from the key file; refused while any value is sealed under it.
    RetireDataKey {
        /// The key id (see `keys data-key-status`).
        #[arg(long)]
        id: String,
        /// Retire even though audit events hold certificate evidence sealed under the key
        /// (it can then be read only with a backup of the key file).
        #[arg(long)]
        abandon_audit_evidence: bool,
        /// Process id of the gateway (default: read from DATA_DIR/xacthuc.pid).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// The data keys in the key file and how many values each one seals, per column.
    DataKeyStatus,
}

fn load_config(g: &GlobalArgs) -> anyhow::Result<Config> {
    let flags = Overrides {
        listen: g.listen.clone(),
        data_dir: g.data_dir.clone(),
        issuer: g.issuer.clone(),
        database_url: g.database_url.clone(),
    };
    Config::load(g.config.as_deref(), std::env::vars(), &flags)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

/// Logs go to stderr, human-readable or JSON (`log_format`). `RUST_LOG` filters.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli.global);
    init_logging(config.as_ref().is_ok_and(|c| c.log_format == "json"));
    match cli.command {
        Command::CheckConfig => {
            let config = config?;
            if config.password.memory_kib < 19456 || config.password.iterations < 2 {
                println!(
                    "warning: password hashing parameters are below the OWASP recommendation (19456 KiB, 2 iterations)"
                );
            }
            // The trust store is part of the configuration: the same check as start-up.
            if let Err(problems) = crate::certs::TrustStore::load(&config.certificates.trust_dir, now()) {
                bail!(
                    "certificates: trust store {} is unusable:\n{}",
                    config.certificates.trust_dir.display(),
                    problems.join("\n")
                );
            }
            println!("configuration is valid");
            Ok(())
        }
        Command::Keys(KeysCommand::GenerateDataKey) => {
            let key = crate::crypto::secretbox::DataKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", key.to_base64());
            Ok(())
        }
        Command::Serve => serve(config?).await,
        Command::Certs(cmd) => certs::run(cmd, config.ok().map(|c| c.certificates.trust_dir)),
        Command::Sign(args) => sign::run(args),
        Command::Policy(cmd) => policy::run(cmd, config.ok().map(|c| (c.policies_dir, c.data_dir))),
        Command::Migrate => {
            let config = config?;
            crate::store::connect(&config.database_url()).await.context("migration failed")?;
            println!("database is up to date");
            Ok(())
        }
        Command::Client(cmd) => {
            let state = crate::app::build_state(config?, now()).await?;
            client::client_command(&state, cmd).await
        }
        Command::Keys(cmd) => {
            let state = crate::app::build_state(config?, now()).await?;
            match cmd {
                KeysCommand::Rotate { alg, activate_in } => keys::rotate(&state, alg, activate_in).await,
                KeysCommand::List => keys::list(&state).await,
                KeysCommand::RotateDataKey { resume, batch, pid } => {
                    keys::rotate_data_key(&state, resume, batch, pid).await
                }
                KeysCommand::RetireDataKey { id, abandon_audit_evidence, pid } => {
                    keys::retire_data_key(&state, &id, abandon_audit_evidence, pid).await
                }
                KeysCommand::DataKeyStatus => keys::data_key_status(&state).await,
                // Handled above, without opening the database.
                KeysCommand::GenerateDataKey => Ok(()),
            }
        }
        Command::Audit(cmd) => audit::run(cmd, config?).await,
        Command::Backup(args) => backup::backup(args, config?).await,
        Command::Restore(args) => backup::restore(args, config?).await,
        Command::Staff(cmd) => {
            let state = crate::app::build_state(config?, now()).await?;
            staff::run(&state, cmd).await
        }
        Command::Account(AccountCommand::Unlock { username }) => {
            let state = crate::app::build_state(config?, now()).await?;
            unlock::run(&state, &username).await
        }
        Command::Account(cmd) => {
            let state = crate::app::build_state(config?, now()).await?;
            account_command(&state, cmd).await
        }
    }
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

async fn account_command(state: &crate::app::AppState, cmd: AccountCommand) -> anyhow::Result<()> {
    let AccountCommand::Add {
        username,
        password_file,
        as_level,
        national_id,
        full_name,
        birth_date,
        sex,
        email,
        phone,
    } = cmd
    else {
        bail!("not an account creation");
    };
    let password = read_secret(&password_file)?;
    let identity = match (as_level, national_id, full_name, birth_date, sex) {
        (2, Some(national_id), Some(full_name), Some(birth_date), Some(sex)) => {
            Some(IdentityInput { national_id, full_name, birth_date, sex })
        }
        (2, ..) => bail!("--as-level 2 needs --national-id, --full-name, --birth-date and --sex"),
        (_, None, None, None, None) => None,
        _ => bail!("identity fields are for --as-level 2"),
    };
    let input =
        RegistrationInput { username, password: password.clone(), password_confirm: password, email, phone, identity };
    match crate::service::accounts::register(state, input, crate::i18n::Lang::En, "operator", now()).await {
        Ok(a) => {
            println!("account {} created at AS-{} (id {})", a.username, a.as_level.number(), a.id);
            Ok(())
        }
        Err(RegistrationError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{}: {}", p.field, p.message);
            }
            bail!("account not created")
        }
        Err(RegistrationError::Service(e)) => Err(e.into()),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = config.listen.parse().context("listen")?;
    let state = crate::app::build_state(config, now()).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    if state.demo.is_some() {
        if state.config.development {
            crate::service::accounts::ensure_demo_citizen(&state, now()).await?;
        }
        tracing::info!("demo portal: {}/demo", state.issuer());
    }
    tokio::spawn(purge_periodically(state.clone()));
    tokio::spawn(crate::service::keys::reload_periodically(state.clone()));
    tokio::spawn(deliver_logouts_periodically(state.clone()));
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(state.clone()));
    // `xacthuc policy reload` finds this process here.
    let pid_file = state.config.data_dir.join(policy::PID_FILE);
    if let Err(e) = std::fs::create_dir_all(&state.config.data_dir)
        .and_then(|()| std::fs::write(&pid_file, format!("{}\n", std::process::id())))
    {
        tracing::warn!(file = %pid_file.display(), error = %e, "cannot write the pid file; `policy reload` will need --pid");
    }
    if let Some(m) = state.config.metrics_listen.as_deref() {
        let m: std::net::SocketAddr = m.parse().context("metrics_listen")?;
        let listener = tokio::net::TcpListener::bind(m).await.with_context(|| format!("cannot listen on {m}"))?;
        tracing::info!(listen = %m, "metrics at /metrics");
        let app = crate::http::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let tls = crate::http::tls::Tls::load(&state.config.tls).map_err(|e| anyhow::anyhow!("tls: {e}"))?;
    if let Some(from) = state.config.tls.redirect_http_from.as_deref() {
        let from: std::net::SocketAddr = from.parse().context("tls.redirect_http_from")?;
        let plain = tokio::net::TcpListener::bind(from).await.with_context(|| format!("cannot listen on {from}"))?;
        let redirect = crate::http::tls::redirect_app(state.issuer().to_string());
        tracing::info!(%from, "redirecting plain HTTP to https");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(plain, redirect).with_graceful_shutdown(shutdown()).await {
                tracing::error!(error = %e, "the http → https redirect listener stopped");
            }
        });
    }
    #[cfg(unix)]
    if let Some(tls) = tls.clone() {
        tokio::spawn(reload_tls_on_hangup(tls));
    }
    // Last: everything above (the pid file, the signal handlers) is in place once this is logged.
    tracing::info!(issuer = state.issuer(), %listen, "xacthuc is serving");
    let app = crate::app::router(state);
    match tls {
        Some(tls) => {
            tracing::info!("serving HTTPS (TLS 1.2 and 1.3)");
            tls.serve(listener.into_std()?, app, shutdown()).await?;
        }
        None => {
            // The peer address feeds the per-address throttling (`[throttle]`).
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

/// SIGHUP also re-reads the TLS certificate and key; a bad pair is refused, the current stays.
#[cfg(unix)]
async fn reload_tls_on_hangup(tls: crate::http::tls::Tls) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!("TLS reload refused, the current certificate stays: {e}"),
        }
    }
}

/// SIGHUP re-reads the service policies; an invalid set is refused and the old one stays.
#[cfg(unix)]
async fn reload_on_hangup(state: crate::app::AppState) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policies reload only on restart");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the service policies");
        let _ = state.reload_policies();
        crate::service::data_key::reload(&state);
    }
}

/// Sends due back-channel logout tokens (first attempts missed, and retries) every 15 seconds.
async fn deliver_logouts_periodically(state: crate::app::AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        tick.tick().await;
        if let Err(e) = crate::service::logout::deliver_due(&state, now()).await {
            tracing::warn!(error = %e, "delivering logout tokens failed");
        }
    }
}

/// Deletes expired sessions, requests, codes and tokens every ten minutes.
async fn purge_periodically(state: crate::app::AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        match state.store.purge_expired(now()).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "expired records purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
        // Windowed counters a day old count nothing any more. Per-user-name counters (`login:`)
        // stay: consecutive failures are never forgotten by time (NIST SP 800-63B §5.2.2).
        for prefix in ["addr:", "register:", "send:", "unlock:"] {
            if let Err(e) = state.store.purge_throttle(prefix, now() - 86_400).await {
                tracing::warn!(error = %e, "purging throttle counters failed");
            }
        }
    }
}

/// Stops accepting on Ctrl-C or SIGTERM (systemd, containers) and lets requests finish.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}
