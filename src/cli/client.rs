//! `xacthuc client add|list|show|update|remove`: relying parties (portals). The rules live in
//! `service::clients`; this file turns flags into a [`ClientChanges`] and prints.

use crate::app::{AppState, now};
use crate::crypto::signing::SigningAlg;
use crate::service::clients::{self, ClientChanges, NewClient};
use crate::store::{AccessTokenFormat, TokenAuthMethod};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. A `client_secret` client without --secret-file gets a generated
    /// secret, printed once.
    Add {
        #[arg(long)]
        id: String,
        /// A public client (browser/native app): no secret, PKCE required. Same as --token-auth none.
        #[arg(long, conflicts_with_all = ["secret_file", "token_auth"])]
        public: bool,
        /// File holding the client secret (at least 32 characters).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        settings: ClientArgs,
    },
    /// List clients: id, kind, ID token algorithm, grant types, redirect URIs (tab-separated).
    List,
    /// Show one client (everything but its secret) as JSON.
    Show { id: String },
    /// Change a client: only the settings given are replaced (a repeated flag replaces the list).
    Update {
        id: String,
        /// Generate a new secret and print it once; the old one stops working at once.
        #[arg(long)]
        rotate_secret: bool,
        #[command(flatten)]
        settings: ClientArgs,
    },
    /// Remove a client and everything issued to it (grants, codes, tokens).
    Remove { id: String },
}

/// Settings shared by `add` and `update`.
#[derive(Args, Debug, Default)]
pub struct ClientArgs {
    /// Display name shown to citizens.
    #[arg(long)]
    name: Option<String>,
    /// Exact redirect URI; repeat for several (on update: replaces the list).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// ID token signing algorithm (default PS256).
    #[arg(long, value_parser = ["PS256", "ES256", "RS256"])]
    alg: Option<String>,
    /// Allowed grant type; repeat for several (default authorization_code and refresh_token).
    #[arg(long = "grant-type", value_parser = clients::GRANT_TYPES)]
    grant_types: Vec<String>,
    /// Scope the client may be granted; repeat for several.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Token endpoint authentication (default client_secret).
    #[arg(long, value_parser = ["client_secret", "private_key_jwt", "none"])]
    token_auth: Option<String>,
    /// The client's public keys (a JWKS JSON file), for private_key_jwt.
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// Access tokens as random strings or as RFC 9068 JWTs.
    #[arg(long, value_parser = ["opaque", "jwt"])]
    access_token_format: Option<String>,
    /// Access token lifetime in seconds, or `default` for the server's.
    #[arg(long, value_parser = parse_seconds, allow_hyphen_values = true)]
    access_token_seconds: Option<Seconds>,
    /// ID token lifetime in seconds, or `default`.
    #[arg(long, value_parser = parse_seconds, allow_hyphen_values = true)]
    id_token_seconds: Option<Seconds>,
    /// Sliding refresh token lifetime in seconds, or `default`.
    #[arg(long, value_parser = parse_seconds, allow_hyphen_values = true)]
    refresh_token_seconds: Option<Seconds>,
    /// Absolute lifetime of a grant's refresh tokens in seconds, or `default`.
    #[arg(long, value_parser = parse_seconds, allow_hyphen_values = true)]
    refresh_absolute_seconds: Option<Seconds>,
    /// Issue refresh tokens without offline_access (`--always-refresh=false` to stop).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    always_refresh: Option<bool>,
    /// Accept only pushed authorization requests (`--require-par=false` to stop).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    require_par: Option<bool>,
    /// Exact URI allowed after logout; repeat for several (on update: replaces the list; "" clears it).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are sent ("" removes it).
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
}

/// A lifetime flag: seconds, or `None` for the server default.
#[derive(Clone, Copy, Debug)]
pub struct Seconds(Option<i64>);

fn parse_seconds(s: &str) -> Result<Seconds, String> {
    if s == "default" {
        return Ok(Seconds(None));
    }
    s.parse().map(|n| Seconds(Some(n))).map_err(|_| format!("{s}: a number of seconds or `default`"))
}

fn read_jwks(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a JSON document", path.display()))
}

impl ClientArgs {
    fn changes(&self) -> anyhow::Result<ClientChanges> {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.iter().filter(|s| !s.is_empty()).cloned().collect());
        Ok(ClientChanges {
            name: self.name.clone(),
            redirect_uris: list(&self.redirect_uris),
            alg: self.alg.as_deref().map(str::parse::<SigningAlg>).transpose()?,
            token_auth_method: self.token_auth.as_deref().map(token_auth).transpose()?,
            grant_types: list(&self.grant_types),
            scopes: list(&self.scopes),
            jwks: self.jwks_file.as_deref().map(read_jwks).transpose()?,
            access_token_format: match self.access_token_format.as_deref() {
                None => None,
                Some("jwt") => Some(AccessTokenFormat::Jwt),
                Some(_) => Some(AccessTokenFormat::Opaque),
            },
            access_token_seconds: self.access_token_seconds.map(|s| s.0),
            id_token_seconds: self.id_token_seconds.map(|s| s.0),
            refresh_token_seconds: self.refresh_token_seconds.map(|s| s.0),
            refresh_absolute_seconds: self.refresh_absolute_seconds.map(|s| s.0),
            always_refresh: self.always_refresh,
            require_par: self.require_par,
            post_logout_redirect_uris: list(&self.post_logout_redirect_uris),
            backchannel_logout_uri: self.backchannel_logout_uri.clone().map(|u| (!u.is_empty()).then_some(u)),
        })
    }
}

fn token_auth(s: &str) -> anyhow::Result<TokenAuthMethod> {
    Ok(match s {
        "client_secret" => TokenAuthMethod::ClientSecret,
        "private_key_jwt" => TokenAuthMethod::PrivateKeyJwt,
        "none" => TokenAuthMethod::None,
        other => bail!("unknown token authentication {other}"),
    })
}

fn print_secret(secret: &str) {
    println!("client secret (shown once, store it now): {secret}");
}

pub async fn client_command(state: &AppState, cmd: ClientCommand) -> anyhow::Result<()> {
    let store = state.store.as_ref();
    match cmd {
        ClientCommand::Add { id, public, secret_file, settings } => {
            let changes = settings.changes()?;
            let method = if public { TokenAuthMethod::None } else { changes.token_auth_method.unwrap_or_default() };
            let (secret, generated) = match (method, secret_file) {
                (TokenAuthMethod::ClientSecret, Some(f)) => (Some(super::read_secret(&f)?), false),
                (TokenAuthMethod::ClientSecret, None) => (Some(crate::service::random_token()?), true),
                (_, Some(_)) => bail!("--secret-file is only for client_secret clients"),
                (_, None) => (None, false),
            };
            let mut client_settings = crate::store::ClientSettings::default();
            changes.apply_to_settings(&mut client_settings);
            client_settings.token_auth_method = method;
            let new = NewClient {
                id,
                name: changes.name.clone().unwrap_or_default(),
                redirect_uris: changes.redirect_uris.clone().unwrap_or_default(),
                secret: secret.clone(),
                alg: changes.alg.unwrap_or(SigningAlg::PS256),
                settings: client_settings,
            };
            let record = clients::add_client(store, &new, "operator", now()).await?;
            println!(
                "client {} registered ({}, ID tokens {})",
                record.id,
                clients::kind_str(&record.kind),
                record.id_token_alg
            );
            if generated && let Some(s) = secret {
                print_secret(&s);
            }
        }
        ClientCommand::List => {
            for c in store.list_clients().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.id,
                    clients::kind_str(&c.kind),
                    c.id_token_alg,
                    c.settings.grant_types.join(","),
                    c.redirect_uris.join(" ")
                );
            }
        }
        ClientCommand::Show { id } => {
            let c = store.get_client(&id).await?.with_context(|| format!("no client {id}"))?;
            println!("{}", serde_json::to_string_pretty(&clients::describe(&c))?);
        }
        ClientCommand::Update { id, rotate_secret, settings } => {
            let changes = settings.changes()?;
            let (c, secret) = clients::update_client(store, &id, &changes, rotate_secret, "operator", now())
                .await
                .map_err(|e| match e {
                    clients::ClientError::NotFound => anyhow::anyhow!("no client {id}"),
                    e => e.into(),
                })?;
            println!("client {} updated ({})", c.id, clients::kind_str(&c.kind));
            if let Some(s) = secret {
                print_secret(&s);
            }
        }
        ClientCommand::Remove { id } => {
            clients::remove_client(store, &id, "operator", now()).await.map_err(|e| match e {
                clients::ClientError::NotFound => anyhow::anyhow!("no client {id}"),
                e => e.into(),
            })?;
            println!("client {id} removed, with its grants and tokens");
        }
    }
    Ok(())
}
