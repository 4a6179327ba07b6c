//! `xacthuc backup` and `xacthuc restore` for the SQLite database (issue 9; PostgreSQL uses
//! `pg_dump`, see docs/operations.md).
//!
//! A backup is `VACUUM INTO`: one read transaction, so it is consistent while the gateway keeps
//! serving and writing. A restore checks the backup first (it opens, migrates and its audit chain
//! verifies) on a scratch copy next to the database, then renames that copy into place, so the
//! database is never half-written. It refuses to replace a database that exists unless `--force`,
//! and never while a gateway runs on it.

use crate::config::Config;
use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file to restore.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace an existing database (the gateway must be stopped).
    #[arg(long)]
    pub force: bool,
}

/// The SQLite file behind `database_url`, or an error for PostgreSQL.
fn sqlite_path(config: &Config) -> anyhow::Result<PathBuf> {
    let url = config.database_url();
    let Some(rest) = url.strip_prefix("sqlite:") else {
        bail!("the database is PostgreSQL: back it up with pg_dump and restore with pg_restore (docs/operations.md)");
    };
    let path = rest.trim_start_matches("//").split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        bail!("database_url {url:?} is not a database file");
    }
    Ok(PathBuf::from(path))
}

pub async fn backup(args: BackupArgs, config: Config) -> anyhow::Result<()> {
    let db = sqlite_path(&config)?;
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    if args.out.exists() {
        bail!("{} exists already; a backup never overwrites", args.out.display());
    }
    let store =
        crate::store::sqlite::SqliteStore::connect(&config.database_url()).await.context("cannot open the database")?;
    store.backup_into(&args.out).await.with_context(|| format!("backup to {} failed", args.out.display()))?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!("backup written to {} ({size} bytes)", args.out.display());
    println!("keep it with the data key, the configuration, the trust store and the policies (docs/operations.md)");
    Ok(())
}

pub async fn restore(args: RestoreArgs, config: Config) -> anyhow::Result<()> {
    let db = sqlite_path(&config)?;
    if !args.from.is_file() {
        bail!("no backup at {}", args.from.display());
    }
    if let Some(pid) = running_gateway(&config.data_dir) {
        bail!("a gateway (pid {pid}) is running on {}: stop it before restoring", config.data_dir.display());
    }
    if db.exists() && !args.force {
        bail!("{} exists: restoring would replace it; stop the gateway and add --force", db.display());
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Check a scratch copy (opening it migrates it), never the backup itself.
    let scratch = db.with_extension("restoring");
    remove_with_sidecars(&scratch)?;
    std::fs::copy(&args.from, &scratch).with_context(|| format!("cannot copy {}", args.from.display()))?;
    let checked = check(&scratch).await;
    let events = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = remove_with_sidecars(&scratch);
            return Err(e.context(format!("{} is not restorable", args.from.display())));
        }
    };
    remove_with_sidecars(&db)?;
    std::fs::rename(&scratch, &db).with_context(|| format!("cannot move the restored database to {}", db.display()))?;
    println!("restored {} to {} (audit chain intact: {events} events)", args.from.display(), db.display());
    Ok(())
}

/// Opens the copy, runs the migrations and verifies its audit chain; closes it again.
async fn check(path: &Path) -> anyhow::Result<i64> {
    let url = format!("sqlite:{}", path.display());
    let store = crate::store::sqlite::SqliteStore::connect(&url).await.context("not an SQLite database")?;
    store.migrate().await.context("its schema cannot be migrated")?;
    let verified = super::audit::verify(&store).await?;
    store.close().await;
    verified.map_err(|broken| anyhow::anyhow!("{broken}"))
}

/// Deletes a database file with its `-wal` and `-shm` files (a stale WAL must never be
/// replayed into a restored database).
fn remove_with_sidecars(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}{suffix}", path.display())),
        }
    }
    Ok(())
}

/// The pid of a gateway serving from `data_dir`, from its pid file, if that process lives.
fn running_gateway(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join(super::policy::PID_FILE)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    (pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}
