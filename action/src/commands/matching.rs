//! `rotor match`: links between credentials and Key Vault secrets, with confidence and signals.

use std::process::ExitCode;

use super::Context;

/// `rotor match [--app APP_ID] [--min-confidence LEVEL]`
#[derive(Debug, Clone, clap::Args)]
pub struct MatchArgs {
    /// Only this application (appId; repeatable). Default: every application.
    #[arg(long = "app", value_name = "APP_ID")]
    pub apps: Vec<String>,
    /// Only matches at or above this confidence: high, medium or low. Default: low (all).
    #[arg(long, value_name = "LEVEL")]
    pub min_confidence: Option<String>,
}

/// Runs `rotor match`.
pub async fn run(_ctx: &Context, _args: &MatchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("match: not implemented yet")
}
