//! Confirmation before changing anything: in a terminal rotor asks; elsewhere it needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use super::UsageError;

/// `--dry-run` / `--yes`, shared by every changing command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChangeArgs {
    /// Show exactly what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required to change anything when not run in a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// True when rotor can ask a question: stdin and stderr are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Checked before anything is read: a changing run without `--yes` and without a terminal to
/// ask in is refused (exit 2). Dry runs are always allowed.
pub fn check_can_change(args: &ChangeArgs, command: &str) -> Result<(), UsageError> {
    if args.dry_run || args.yes || interactive() {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "refusing to run `rotor {command}` without confirmation: not a terminal and --yes not given"
    ))
    .hint(format!("preview first: rotor {command} ... --dry-run"))
    .hint(format!(
        "then confirm non-interactively: rotor {command} ... --yes"
    )))
}

/// Asks `question` (e.g. "Rotate 3 credentials across 5 Key Vault secrets?") unless `--yes`.
/// `true`: go ahead. `false`: the user declined (or no terminal — callers check
/// [`check_can_change`] first).
pub fn ask(args: &ChangeArgs, question: &str) -> bool {
    if args.yes {
        return true;
    }
    if !interactive() {
        return false;
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
