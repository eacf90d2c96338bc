//! [`Context`]: everything a command needs — global flags, configuration, endpoints, credentials,
//! the actor recorded in audit records — built once per process.

use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, OutputFormat, ProgressMode};

/// Default history file, relative to the working directory.
pub const DEFAULT_HISTORY_FILE: &str = "rotor-history.jsonl";
/// Default configuration file, used when it exists and `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "rotor.toml";

/// Per-process state shared by every command (including `rotor action` / `rotor report`).
///
/// Build it with [`Context::from_env`] (real runs: endpoints and credentials from the environment)
/// or [`Context::new`] (explicit endpoints and credentials — `rotor demo`, tests).
#[derive(Debug)]
pub struct Context {
    global: GlobalArgs,
    actor: String,
}

impl Context {
    /// The context for a normal run: configuration from `--config` (or `rotor.toml` if present),
    /// endpoints and credentials from the environment. `Err` is a usage/config error (exit 2).
    pub fn from_env(global: &GlobalArgs) -> anyhow::Result<Context> {
        Ok(Context {
            global: global.clone(),
            actor: default_actor(),
        })
    }

    /// Replaces the actor recorded in audit records (`github:<repo>/<run id>` for the Action).
    #[must_use]
    pub fn with_actor(mut self, actor: impl Into<String>) -> Context {
        self.actor = actor.into();
        self
    }

    /// The global flags.
    pub fn global(&self) -> &GlobalArgs {
        &self.global
    }

    /// `--output`.
    pub fn output(&self) -> OutputFormat {
        self.global.output
    }

    /// `--progress`.
    pub fn progress_mode(&self) -> ProgressMode {
        self.global.progress
    }

    /// The history file (`--history-file`, default `rotor-history.jsonl`).
    pub fn history_path(&self) -> PathBuf {
        self.global
            .history_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HISTORY_FILE))
    }

    /// The hint cache file (`--hint-cache`), if any.
    pub fn hint_cache_path(&self) -> Option<&Path> {
        self.global.hint_cache.as_deref()
    }

    /// Who is acting, as recorded in audit records: `user:<name>` by default.
    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// `user:<$USER>` (or `$USERNAME`, else `user:unknown`).
pub fn default_actor() -> String {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("user:{name}")
}
