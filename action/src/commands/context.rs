//! [`Context`]: everything a command needs — global flags, configuration, endpoints, credentials,
//! the actor recorded in audit records — built once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use rotor_engine::{AuthConfig, Config, Endpoints, Engine, EngineOptions};

use super::UsageError;
use super::progress;
use crate::cli::{GlobalArgs, OutputFormat, ProgressMode};

/// Default history file, relative to the working directory.
pub const DEFAULT_HISTORY_FILE: &str = "rotor-history.jsonl";
/// Default configuration file, used when it exists and `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "rotor.toml";

/// Per-process state shared by every command (including `rotor action` / `rotor report`).
///
/// Build it with [`Context::from_env`] (real runs: endpoints and credentials from the
/// environment) or [`Context::new`] (explicit endpoints and credentials — `rotor demo`, tests).
/// The credential and the [`Engine`] are built lazily on the first [`Context::engine`] call, so
/// commands that never reach Azure (`history`, `report` of a file) need no credentials.
pub struct Context {
    global: GlobalArgs,
    config: Config,
    config_path: Option<PathBuf>,
    endpoints: Endpoints,
    auth: AuthConfig,
    actor: String,
    history_path: PathBuf,
    verify_timeout: Option<std::time::Duration>,
    engine: OnceLock<Engine>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config_path", &self.config_path)
            .field("endpoints", &self.endpoints)
            .field("auth", &self.auth) // AuthConfig's Debug redacts secrets
            .field("actor", &self.actor)
            .field("history_path", &self.history_path)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The context for a normal run: configuration from `--config` (or `rotor.toml` if present),
    /// endpoints and credentials from the environment. `Err` is a usage/config error (exit 2)
    /// naming the bad file, key or variable.
    pub fn from_env(global: &GlobalArgs) -> anyhow::Result<Context> {
        let endpoints = Endpoints::from_env()?;
        Context::new(global, endpoints, AuthConfig::from_env())
    }

    /// A context with explicit endpoints and credentials (no environment is read for them);
    /// configuration still comes from `--config` / `rotor.toml`.
    pub fn new(
        global: &GlobalArgs,
        endpoints: Endpoints,
        auth: AuthConfig,
    ) -> anyhow::Result<Context> {
        let (config, config_path) = load_config(global.config.as_deref())?;
        tracing::debug!(
            config = ?config_path,
            vaults = config.vaults.len(),
            subscriptions = config.subscriptions.len(),
            "configuration loaded"
        );
        let mut ctx = Context::with_config_value(global, endpoints, auth, config);
        ctx.config_path = config_path;
        Ok(ctx)
    }

    /// A context with explicit endpoints, credentials and configuration: no file and no
    /// environment variable is read (`rotor demo` runs on its own sandbox configuration).
    pub fn with_config_value(
        global: &GlobalArgs,
        endpoints: Endpoints,
        auth: AuthConfig,
        config: Config,
    ) -> Context {
        let config_path = None;
        let history_path = global
            .history_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HISTORY_FILE));
        Context {
            global: global.clone(),
            config,
            config_path,
            endpoints,
            auth,
            actor: default_actor(),
            history_path,
            verify_timeout: None,
            engine: OnceLock::new(),
        }
    }

    /// Replaces the configuration (the demo uses its own).
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Context {
        self.config = config;
        self
    }

    /// Replaces the actor recorded in audit records (`github:<repo>/<run id>` for the Action).
    #[must_use]
    pub fn with_actor(mut self, actor: impl Into<String>) -> Context {
        self.actor = actor.into();
        self
    }

    /// Replaces the history file path.
    #[must_use]
    pub fn with_history_path(mut self, path: impl Into<PathBuf>) -> Context {
        self.history_path = path.into();
        self
    }

    /// How long verification retries a new credential (default: the engine's, 120 s).
    #[must_use]
    pub fn with_verify_timeout(mut self, timeout: std::time::Duration) -> Context {
        self.verify_timeout = Some(timeout);
        self
    }

    /// The engine, built on first use: the credential chain from the [`AuthConfig`], then
    /// [`Engine::new`]. `Err` when no credential is configured or the CA file cannot be read
    /// (both configuration errors, exit 2, with hints).
    pub fn engine(&self) -> anyhow::Result<Engine> {
        if let Some(e) = self.engine.get() {
            return Ok(e.clone());
        }
        let credential = self
            .auth
            .build(&self.endpoints)
            .context("setting up rotor's Azure credential")?;
        let mut opts = EngineOptions::new(self.endpoints.clone(), credential);
        opts.actor = self.actor.clone();
        opts.history_file = Some(self.history_path.clone());
        opts.hint_cache_file = self.global.hint_cache.clone();
        opts.limits = self.config().limits.clone();
        if let Some(t) = self.verify_timeout {
            opts.verify_timeout = t;
        }
        tracing::debug!(
            methods = ?self.auth.methods(),
            graph = %self.endpoints.graph,
            authority = %self.endpoints.authority_host,
            history = %self.history_path.display(),
            "building the engine"
        );
        let engine = Engine::new(opts).context("setting up the Azure clients")?;
        Ok(self.engine.get_or_init(|| engine).clone())
    }

    /// The configuration (`rotor.toml`, or defaults when there is none).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration file in use, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The global flags.
    #[allow(dead_code)] // API for `crate::github`
    pub fn global(&self) -> &GlobalArgs {
        &self.global
    }

    /// `--output`.
    pub fn output(&self) -> OutputFormat {
        self.global.output
    }

    /// `--progress`.
    #[allow(dead_code)] // API for `crate::github`
    pub fn progress_mode(&self) -> ProgressMode {
        self.global.progress
    }

    /// A progress sink for `--progress` (live display on a terminal, lines, or JSON events; all
    /// on stderr). Call [`progress::Reporter::finish`] when done.
    pub fn progress(&self) -> progress::Reporter {
        progress::Reporter::new(self.global.progress, &self.endpoints)
    }

    /// The history file (`--history-file`, default `rotor-history.jsonl`).
    pub fn history_path(&self) -> PathBuf {
        self.history_path.clone()
    }

    /// The hint cache file (`--hint-cache`), if any.
    #[allow(dead_code)] // API for `crate::github`
    pub fn hint_cache_path(&self) -> Option<&Path> {
        self.global.hint_cache.as_deref()
    }

    /// Who is acting, as recorded in audit records: `user:<name>` by default.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// A short vault name for messages and tables (`kv-prod`).
    pub fn vault_name(&self, url: &url::Url) -> String {
        self.endpoints.vault_name(url)
    }
}

/// Loads `--config PATH` (must exist), else `rotor.toml` when present, else defaults.
fn load_config(explicit: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    match explicit {
        Some(path) => {
            if !path.exists() {
                return Err(UsageError::new(format!(
                    "reading configuration `{}`: file not found",
                    path.display()
                ))
                .hint(
                    "check the --config path (or ROTOR_CONFIG); see docs/config.md for the format",
                )
                .into());
            }
            let cfg = Config::load(path)?;
            Ok((cfg, Some(path.to_path_buf())))
        }
        None => {
            let p = Path::new(DEFAULT_CONFIG_FILE);
            if p.exists() {
                Ok((Config::load(p)?, Some(p.to_path_buf())))
            } else {
                Ok((Config::default(), None))
            }
        }
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
