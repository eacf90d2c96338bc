//! `rotor cleanup`: remove old credentials whose grace period has passed.

use std::process::ExitCode;

use super::Context;
use super::confirm::ChangeArgs;

/// `rotor cleanup [--app APP_ID]`
#[derive(Debug, Clone, clap::Args)]
pub struct CleanupArgs {
    /// Only this application (appId; repeatable). Default: every application with matched
    /// credentials.
    #[arg(long = "app", value_name = "APP_ID")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Runs `rotor cleanup`.
pub async fn run(_ctx: &Context, _args: &CleanupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cleanup: not implemented yet")
}
