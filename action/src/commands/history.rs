//! `rotor history`: the audit trail from the history file.

use std::process::ExitCode;

use crate::cli::GlobalArgs;

/// `rotor history [--since DATE] [--until DATE] [--app NAME] [--status STATUS]`
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Only records started at or after this time: RFC 3339 (`2026-11-01T00:00:00Z`), a date
    /// (`2026-11-01`), or relative (`-7d`, `-12h`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only records started before this time (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only records of this app: display name (glob allowed) or appId.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Only records with this status: success, failed, skipped or excluded.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
}

/// Runs `rotor history`.
pub fn run(_global: &GlobalArgs, _args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("history: not implemented yet")
}
