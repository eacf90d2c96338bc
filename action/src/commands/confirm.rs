//! Confirmation before changing anything: in a terminal rotor asks; elsewhere it needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use super::UsageError;

/// `--dry-run` / `--yes`, shared by every changing command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChangeArgs {
    /// Show exactly what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required to change anything when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Whether the user agreed to `what` (e.g. "rotate 3 credentials across 5 Key Vault secrets").
///
/// `Ok(true)`: go ahead (`--yes`, or the user typed `y`). `Ok(false)`: the user declined in the
/// terminal. `Err(UsageError)`: not a terminal and no `--yes` — nothing may change (exit 2).
pub fn confirm(args: &ChangeArgs, what: &str, command: &str) -> Result<bool, UsageError> {
    if args.yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        return Err(UsageError::new(format!(
            "refusing to {what}: no terminal to confirm in and --yes not given"
        ))
        .hint(format!(
            "re-run with --yes to confirm: rotor {command} ... --yes"
        ))
        .hint(format!(
            "or preview first with --dry-run: rotor {command} ... --dry-run"
        )));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{what}? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        return Ok(false);
    }
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
