//! `xacthuc staff add --username NAME --role counter_officer|supervisor [--office OFFICE]
//! --password-file FILE`: the operator creates a staff account for the console at `/staff`
//! (docs/proofing.md). Staff sign in at the normal page and must reach `mfa` (a passkey with
//! user verification, enrolled on their account page) or use a certificate to open the console.

use crate::app::{AppState, now};
use crate::service::accounts::RegistrationError;
use crate::store::StaffRole;
use anyhow::bail;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum StaffCommand {
    /// Create a staff account (a new account with a password, given a console role).
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["counter_officer", "supervisor"])]
        role: String,
        /// The office (counter) the staff member works at, shown in evidence records.
        #[arg(long)]
        office: Option<String>,
        /// File whose first line is the password.
        #[arg(long)]
        password_file: PathBuf,
    },
}

pub async fn run(state: &AppState, cmd: StaffCommand) -> anyhow::Result<()> {
    let StaffCommand::Add { username, role, office, password_file } = cmd;
    let Some(role) = StaffRole::parse(&role) else {
        bail!("unknown role {role}");
    };
    let password = super::read_secret(&password_file)?;
    match crate::service::proofing::add_staff(state, &username, &password, role, office, now()).await {
        Ok(a) => {
            println!("staff account {} created as {} (id {})", a.username, role.as_str(), a.id);
            println!("next: sign in, enrol a passkey on the account page, then open /staff");
            Ok(())
        }
        Err(RegistrationError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{}: {}", p.field, p.message);
            }
            bail!("staff account not created")
        }
        Err(RegistrationError::Service(e)) => Err(e.into()),
    }
}
