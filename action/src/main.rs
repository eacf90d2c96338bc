//! `rotor` — discover, match, rotate and audit Entra ID application secrets stored in Azure Key Vault.
//!
//! This binary is glue over `rotor-engine`: [`cli`] parses arguments, [`commands`] runs the
//! engine-backed commands, and [`github`] implements `rotor action` and `rotor report` for the
//! GitHub Action.

mod cli;
mod commands;
mod github;

fn main() -> std::process::ExitCode {
    cli::main()
}
