//! `xacthuc policy check [DIR]`: reads every policy file of a directory (default: the configured
//! `policies_dir`, `./policies`), checks it against the regulation's floor and prints every
//! problem as `FILE:LINE: service ID: RULE: message`.

use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check the policy files of DIR (default: policies_dir) and list every problem.
    Check {
        /// Directory of policy files.
        dir: Option<PathBuf>,
    },
    /// Check the configured policies, then tell the running gateway to load them (SIGHUP). The
    /// gateway keeps its current set if the new one is invalid.
    Reload {
        /// Process id of the gateway (default: read from DATA_DIR/xacthuc.pid).
        #[arg(long)]
        pid: Option<u32>,
    },
}

/// The file `serve` writes its process id to, in `data_dir`.
pub const PID_FILE: &str = "xacthuc.pid";

/// Runs a policy command. `configured` is the configuration's `policies_dir` and `data_dir`
/// when the configuration could be read (checking policies does not need a valid one).
pub fn run(cmd: PolicyCommand, configured: Option<(PathBuf, PathBuf)>) -> anyhow::Result<()> {
    let default_dir = || PathBuf::from(crate::config::DEFAULT_POLICIES_DIR);
    match cmd {
        PolicyCommand::Check { dir } => check(&dir.or(configured.map(|c| c.0)).unwrap_or_else(default_dir)),
        PolicyCommand::Reload { pid } => {
            let Some((dir, data_dir)) = configured else {
                anyhow::bail!("the configuration is invalid; fix it before reloading")
            };
            check(&dir)?;
            let pid = match pid {
                Some(p) => p,
                None => {
                    let file = data_dir.join(PID_FILE);
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| anyhow::anyhow!("{}: {e} (is the gateway running? use --pid)", file.display()))?;
                    text.trim().parse().map_err(|_| anyhow::anyhow!("{}: not a process id", file.display()))?
                }
            };
            let status = std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status()?;
            if !status.success() {
                anyhow::bail!("could not signal process {pid}");
            }
            println!("asked the gateway (pid {pid}) to reload {}", dir.display());
            Ok(())
        }
    }
}

fn check(dir: &Path) -> anyhow::Result<()> {
    match crate::policy::load_dir(dir) {
        Ok(set) => {
            for w in &set.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: {} file(s), {} service(s): valid (at or above the regulation's floor)",
                dir.display(),
                set.files.len(),
                set.services.len()
            );
            for line in set.summary() {
                println!("  {line}");
            }
            Ok(())
        }
        Err(e) => {
            for p in &e.problems {
                eprintln!("{p}");
            }
            anyhow::bail!("{}: {} problem(s); the policy set is invalid", dir.display(), e.problems.len())
        }
    }
}
