//! `rotor demo`: the whole flow on the embedded emulator with a sample tenant; needs no Azure.

use std::process::ExitCode;

use crate::cli::GlobalArgs;

/// `rotor demo [--propagation-delay SECONDS] [--fixture FILE]`
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seconds before a new password works in the emulator (shows verification retrying).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub propagation_delay: f64,
    /// Use this fixture (PRODUCT.md format) instead of the built-in sample tenant.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<std::path::PathBuf>,
}

/// Runs `rotor demo`.
pub async fn run(_global: &GlobalArgs, _args: &DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo: not implemented yet")
}
