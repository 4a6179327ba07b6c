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
}

/// Runs a policy command. `configured` is the configuration's `policies_dir` when the
/// configuration could be read (checking policies does not need a valid configuration).
pub fn run(cmd: PolicyCommand, configured: Option<PathBuf>) -> anyhow::Result<()> {
    let PolicyCommand::Check { dir } = cmd;
    let dir = dir.or(configured).unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_POLICIES_DIR));
    check(&dir)
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
