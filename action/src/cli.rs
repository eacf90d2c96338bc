//! Argument parsing and dispatch.
//!
//! [`Cli`] is the whole command line: [`GlobalArgs`] (accepted before or after the subcommand) and
//! one [`Command`]. The engine-backed commands live in [`crate::commands`]; `rotor action` and
//! `rotor report` are implemented by [`crate::github`] and receive the same
//! [`crate::commands::Context`].
//!
//! Exit codes: 0 all good, 1 some work failed, 2 bad usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

/// Rotate Entra ID application secrets and certificates, and every Azure Key Vault secret or
/// certificate that holds them.
///
/// rotor discovers app registrations, links their client secrets to the Key Vault secrets that
/// hold them (with a confidence level and the signals behind it) and their certificates to the
/// Key Vault certificates holding their keys (by thumbprint), rotates them safely (the old
/// credential stays valid until the new one is verified and in every vault; a new certificate
/// version is made in Key Vault and its key never leaves it), cleans up after a grace period and
/// keeps an audit trail.
///
/// Try it without Azure: `rotor demo`.
#[derive(Debug, Parser)]
#[command(
    name = "rotor",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Authentication comes from the environment like the Azure tools: AZURE_TENANT_ID, \
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, workload identity (AZURE_FEDERATED_TOKEN_FILE or GitHub OIDC), \
the Azure CLI, or managed identity. Endpoints: AZURE_AUTHORITY_HOST, ROTOR_GRAPH_ENDPOINT, \
ROTOR_ARM_ENDPOINT; extra trusted CA: SSL_CERT_FILE. See docs/cli.md.\n\n\
Exit codes: 0 all good, 1 some work failed, 2 bad usage or configuration."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the subcommand name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Configuration file (vaults, subscriptions, [policy]). Default: `rotor.toml` in the current
    /// directory if it exists, otherwise built-in defaults.
    #[arg(long, global = true, value_name = "PATH", env = "ROTOR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Output format on stdout: `table` for people, `json` (stable schema, see docs/cli.md) for
    /// machines, `markdown` for reports.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// History file (JSON Lines, one audit record per rotation attempt). Default:
    /// `rotor-history.jsonl` in the current directory (`rotor demo`: a temporary file).
    #[arg(long, global = true, value_name = "PATH", env = "ROTOR_HISTORY_FILE")]
    pub history_file: Option<PathBuf>,

    /// Live progress on stderr: `auto` (a progress display on a terminal, one line per step
    /// elsewhere), `plain` (one line per step) or `json` (one JSON event per line).
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,

    /// Hint cache file: remembers value hints per (vault, secret, version) so an unchanged secret
    /// is never read twice. Default: none (hints are read on every run).
    #[arg(long, global = true, value_name = "PATH", env = "ROTOR_HINT_CACHE")]
    pub hint_cache: Option<PathBuf>,

    /// More logging on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Table,
    /// Stable JSON on stdout (schemas in docs/cli.md).
    Json,
    /// GitHub-flavoured Markdown.
    Markdown,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A live display on a terminal, plain lines otherwise.
    Auto,
    /// One line per step.
    Plain,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List app registrations with their secret/certificate counts and every credential's expiry.
    Discover(commands::discover::DiscoverArgs),
    /// Link credentials to the Key Vault secrets that hold them, with confidence and signals.
    Match(commands::matching::MatchArgs),
    /// Rotate credentials: one (`--app A --key-id K`), bulk (`--app A --app B`) or all due (`--due`).
    Rotate(commands::rotate::RotateArgs),
    /// Remove old credentials whose grace period has passed (never one a vault still holds).
    Cleanup(commands::cleanup::CleanupArgs),
    /// Show the audit trail from the history file.
    History(commands::history::HistoryArgs),
    /// Render results as Markdown: job summary, sticky pull-request comment.
    Report(crate::github::ReportArgs),
    /// Run the whole flow on an embedded emulator with a sample tenant. Needs no Azure.
    Demo(commands::demo::DemoArgs),
    /// What the GitHub Action runs: reads the runner environment and runs the flow for the event.
    Action(crate::github::ActionArgs),
}

/// Parse the command line, run the command, print errors with hints, return the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    commands::init_tracing(cli.global.verbose);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => commands::report_error(&err),
    }
}

/// Dispatch one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli { global, command } = cli;
    let ctx = || commands::Context::from_env(&global);
    match command {
        Command::Discover(args) => commands::discover::run(&ctx()?, &args).await,
        Command::Match(args) => commands::matching::run(&ctx()?, &args).await,
        Command::Rotate(args) => commands::rotate::run(&ctx()?, &args).await,
        Command::Cleanup(args) => commands::cleanup::run(&ctx()?, &args).await,
        // History reads a local file only: no configuration or credentials needed.
        Command::History(args) => commands::history::run(&global, &args),
        Command::Demo(args) => commands::demo::run(&global, &args).await,
        Command::Report(args) => crate::github::run_report(&ctx()?, &args).await,
        Command::Action(args) => crate::github::run_action(&ctx()?, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "rotor",
            "discover",
            "--output",
            "json",
            "--history-file",
            "h.jsonl",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.history_file, Some(PathBuf::from("h.jsonl")));
    }
}
