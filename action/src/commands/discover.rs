//! `rotor discover`: app registrations with credential counts and every credential's expiry.

use std::process::ExitCode;

use super::Context;

/// `rotor discover [--filter GLOB] [--expiring-within DAYS]`
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    /// Only apps whose display name or appId matches this glob (`*`, `?`), e.g. `legacy-*`.
    #[arg(long, value_name = "GLOB")]
    pub filter: Option<String>,
    /// Only apps with a credential that expires within DAYS days (or has expired); only those
    /// credentials are listed.
    #[arg(long, value_name = "DAYS")]
    pub expiring_within: Option<u32>,
}

/// Runs `rotor discover`.
pub async fn run(_ctx: &Context, _args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("discover: not implemented yet")
}
