//! Engine-backed commands: discover, match, rotate, cleanup, history, demo.
//!
//! Each command module has an `XxxArgs` (clap) and a `run` function that takes a [`Context`] and
//! returns the process exit code. The same functions serve the real commands and `rotor demo`
//! (which builds its [`Context`] from the embedded emulator's endpoints), so the demo exercises
//! exactly what users run.
//!
//! Errors are `anyhow` chains; [`report_error`] prints `error: <chain>` then the `hint:` lines of
//! any [`rotor_engine::Error`] or [`UsageError`] in the chain, and picks the exit code.

pub mod cleanup;
pub mod confirm;
pub mod context;
pub mod demo;
pub mod discover;
pub mod history;
pub mod lineage;
pub mod matching;
pub mod output;
pub mod progress;
pub mod rotate;

use std::fmt;
use std::process::ExitCode;

pub use context::Context;

/// Exit code: some work failed (a rotation, a target, a removal).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration; nothing was changed.
pub const EXIT_USAGE: u8 = 2;

/// A usage or configuration problem found by the CLI itself (exit code 2), with hint lines.
#[derive(Debug, Clone)]
pub struct UsageError {
    /// One sentence, `<verb>ing <object>: <cause>`.
    pub message: String,
    /// What to do about it (printed as `hint:` lines).
    pub hints: Vec<String>,
}

impl UsageError {
    /// A usage error with no hints yet.
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a hint line.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> UsageError {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Sets up `tracing` on stderr. `RUST_LOG` wins; otherwise `-v` raises the level
/// (warn → info → debug → trace) for rotor's own crates.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => {
            let level = match verbose {
                0 => "warn",
                1 => "info",
                2 => "debug",
                _ => "trace",
            };
            EnvFilter::new(format!(
                "warn,rotor={level},rotor_engine={level},rotor_emulator={level}"
            ))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .try_init();
}

/// The exit code an error maps to: 2 for usage/configuration problems, 1 otherwise.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    // `downcast_ref` on the anyhow error also sees context values; `chain` sees sources.
    if err.downcast_ref::<UsageError>().is_some() {
        return EXIT_USAGE;
    }
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
        if let Some(e) = cause.downcast_ref::<rotor_engine::Error>() {
            return match e.kind() {
                rotor_engine::ErrorKind::Usage | rotor_engine::ErrorKind::Config => EXIT_USAGE,
                _ => EXIT_FAILED,
            };
        }
        if cause.downcast_ref::<clap::Error>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_FAILED
}

/// The `hint:` lines for an error: from every [`rotor_engine::Error`] and [`UsageError`] in the chain.
pub fn hints_for(err: &anyhow::Error) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(u) = err.downcast_ref::<UsageError>()
        && !err
            .chain()
            .any(|c| c.downcast_ref::<UsageError>().is_some())
    {
        hints.extend(u.hints.iter().cloned());
    }
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UsageError>() {
            hints.extend(u.hints.iter().cloned());
        } else if let Some(e) = cause.downcast_ref::<rotor_engine::Error>() {
            hints.extend(e.hints());
        }
    }
    hints.dedup();
    hints
}

/// Prints `error: <chain>` and `hint:` lines on stderr and returns the exit code.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", render_chain(err));
    for h in hints_for(err) {
        eprintln!("hint: {h}");
    }
    ExitCode::from(exit_code_for(err))
}

/// `a: b: c` — the error and its causes, skipping causes already contained in the previous text.
pub fn render_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// Prints one engine error (`error:` + `hint:` lines) without stopping the command.
/// Prints every vault that could not be listed (matching went on without it); true when any.
/// A command that saw one exits 1: the links in that vault were not rotated.
pub fn report_vault_failures(engine: &rotor_engine::Engine) -> bool {
    let failures = engine.vault_failures();
    for f in &failures {
        eprintln!(
            "error: {} (the secrets in this vault were not matched or rotated; every other vault was)",
            f.error
        );
        for h in &f.hints {
            eprintln!("hint: {h}");
        }
    }
    !failures.is_empty()
}

pub fn report_error_line(err: &rotor_engine::Error) {
    eprintln!("error: {err}");
    for h in err.hints() {
        eprintln!("hint: {h}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_hints_follow_the_error_kind() {
        let usage: anyhow::Error = UsageError::new("reading arguments: bad")
            .hint("do this")
            .into();
        assert_eq!(exit_code_for(&usage), EXIT_USAGE);
        assert_eq!(hints_for(&usage), ["do this"]);

        let config: anyhow::Error =
            rotor_engine::Error::config("reading configuration `x`", "bad key")
                .with_hint("fix the key")
                .into();
        assert_eq!(exit_code_for(&config), EXIT_USAGE);
        let wrapped = config.context("setting up");
        assert_eq!(exit_code_for(&wrapped), EXIT_USAGE);
        assert_eq!(hints_for(&wrapped), ["fix the key"]);
        assert_eq!(
            render_chain(&wrapped),
            "setting up: reading configuration `x`: bad key"
        );

        let perm: anyhow::Error = rotor_engine::Error::new(
            rotor_engine::ErrorKind::Permission,
            "writing Key Vault secret `s` (vault `kv`)",
            "403 Forbidden",
        )
        .into();
        assert_eq!(exit_code_for(&perm), EXIT_FAILED);
        assert_eq!(exit_code_for(&anyhow::anyhow!("io")), EXIT_FAILED);

        // A usage error attached as context still counts.
        let ctx_usage = anyhow::anyhow!("inner").context(UsageError::new("outer").hint("h"));
        assert_eq!(exit_code_for(&ctx_usage), EXIT_USAGE);
        assert_eq!(hints_for(&ctx_usage), ["h"]);
    }
}
