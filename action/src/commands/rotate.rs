//! `rotor rotate`: one rotation, bulk rotation, or every due rotation.

use std::process::ExitCode;

use super::Context;
use super::confirm::ChangeArgs;

/// `rotor rotate --app APP_ID --key-id KEY_ID [--expiry-days N]`, `--app A --app B`, `--due`
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// Application (appId) to rotate; repeat for bulk rotation of every matched credential of
    /// each app.
    #[arg(long = "app", value_name = "APP_ID", required_unless_present = "due")]
    pub apps: Vec<String>,
    /// The credential (keyId) to rotate; needs exactly one --app.
    #[arg(long, value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// Rotate everything due per policy (expiring within `rotate_before_expiry_days`, confidence
    /// at or above `min_confidence`, not excluded).
    #[arg(long, conflicts_with_all = ["apps", "key_id"])]
    pub due: bool,
    /// Validity of the new credential in days (default: policy `new_secret_validity_days`).
    #[arg(long, value_name = "N")]
    pub expiry_days: Option<u32>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Runs `rotor rotate`.
pub async fn run(_ctx: &Context, _args: &RotateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("rotate: not implemented yet")
}
