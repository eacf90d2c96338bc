//! The GitHub Actions runner: its environment, output and summary files, and workflow commands.
//!
//! [`RunnerEnv`] is built from a map ([`RunnerEnv::from_vars`]) so tests never touch the process
//! environment. Workflow commands go through [`Commands`], which escapes data and properties as
//! the runner expects and caps error annotations at the 10 the runner shows per step.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The `GITHUB_*` (and related) variables `rotor action` reads.
#[derive(Clone, Default)]
pub struct RunnerEnv {
    /// `GITHUB_ACTIONS=true` when running on a runner.
    pub actions: bool,
    /// `GITHUB_EVENT_NAME`: `pull_request`, `schedule`, `workflow_dispatch`, …
    pub event_name: Option<String>,
    /// `GITHUB_EVENT_PATH`: the webhook payload.
    pub event_path: Option<PathBuf>,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_API_URL` (GitHub Enterprise Server: `https://HOST/api/v3`).
    pub api_url: String,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// `GITHUB_GRAPHQL_URL` (GitHub Enterprise Server: `https://HOST/api/graphql`).
    pub graphql_url: Option<String>,
    /// `GITHUB_SHA`: the commit the workflow runs on.
    pub sha: Option<String>,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `GITHUB_OUTPUT`: the step's output file.
    pub output: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`: the step's job summary file.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_WORKSPACE`: the checkout.
    pub workspace: Option<PathBuf>,
    /// `RUNNER_TEMP`.
    pub runner_temp: Option<PathBuf>,
    /// `GITHUB_TOKEN` (the action maps its `github-token` input to it). Never printed.
    pub token: Option<String>,
    /// Whether the environment carries any Azure credential rotor can use
    /// ([`AZURE_CREDENTIAL_VARS`], or managed identity / the Azure CLI asked for explicitly). A
    /// fork pull request's run has none.
    pub azure_credential: bool,
}

/// The variables that carry (or lead to) an Azure credential: a client secret, an OIDC token or
/// its file, a federated token file, the runner's OIDC request URL, a client certificate.
pub const AZURE_CREDENTIAL_VARS: [&str; 8] = [
    "AZURE_CLIENT_SECRET",
    "ARM_CLIENT_SECRET",
    "AZURE_OIDC_TOKEN",
    "AZURE_OIDC_TOKEN_FILE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "ARM_CLIENT_CERTIFICATE_PATH",
];

impl fmt::Debug for RunnerEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerEnv")
            .field("actions", &self.actions)
            .field("event_name", &self.event_name)
            .field("event_path", &self.event_path)
            .field("repository", &self.repository)
            .field("api_url", &self.api_url)
            .field("server_url", &self.server_url)
            .field("run_id", &self.run_id)
            .field("output", &self.output)
            .field("step_summary", &self.step_summary)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl RunnerEnv {
    /// Reads the process environment.
    pub fn from_env() -> RunnerEnv {
        RunnerEnv::from_vars(std::env::vars())
    }

    /// Builds the runner environment from variables (tests pass a map).
    pub fn from_vars<I, K, V>(vars: I) -> RunnerEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let s = |k: &str| map.get(k).cloned();
        let p = |k: &str| map.get(k).map(PathBuf::from);
        RunnerEnv {
            actions: map.get("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            event_name: s("GITHUB_EVENT_NAME"),
            event_path: p("GITHUB_EVENT_PATH"),
            repository: s("GITHUB_REPOSITORY"),
            api_url: s("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".to_string())
                .trim_end_matches('/')
                .to_string(),
            server_url: s("GITHUB_SERVER_URL")
                .unwrap_or_else(|| "https://github.com".to_string())
                .trim_end_matches('/')
                .to_string(),
            run_id: s("GITHUB_RUN_ID"),
            graphql_url: s("GITHUB_GRAPHQL_URL"),
            sha: s("GITHUB_SHA"),
            output: p("GITHUB_OUTPUT"),
            step_summary: p("GITHUB_STEP_SUMMARY"),
            workspace: p("GITHUB_WORKSPACE"),
            runner_temp: p("RUNNER_TEMP"),
            token: s("GITHUB_TOKEN"),
            azure_credential: AZURE_CREDENTIAL_VARS.iter().any(|k| map.contains_key(*k))
                || [
                    "AZURE_USE_MSI",
                    "AZURE_USE_CLI",
                    "ARM_USE_MSI",
                    "ARM_USE_CLI",
                ]
                .iter()
                .any(|k| map.get(*k).is_some_and(|v| v == "true")),
        }
    }

    /// `(owner, name)` from `GITHUB_REPOSITORY`.
    pub fn repo(&self) -> Option<(String, String)> {
        let (o, r) = self.repository.as_deref()?.split_once('/')?;
        (!o.is_empty() && !r.is_empty()).then(|| (o.to_string(), r.to_string()))
    }

    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`.
    pub fn run_url(&self) -> Option<String> {
        Some(format!(
            "{}/{}/actions/runs/{}",
            self.server_url,
            self.repository.as_deref()?,
            self.run_id.as_deref()?
        ))
    }

    /// The audit actor for this run: `github:<repo>/<run id>`.
    pub fn actor(&self) -> String {
        format!(
            "github:{}/{}",
            self.repository.as_deref().unwrap_or("unknown"),
            self.run_id.as_deref().unwrap_or("local")
        )
    }
}

/// Appends `name<<DELIM\nvalue\nDELIM` to the output file, with a random delimiter that the value
/// does not contain. Refuses names that could break the file format.
pub fn write_output(path: &Path, name: &str, value: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['\n', '\r', '=', '<']) {
        anyhow::bail!(
            "writing output `{name}`: the name must not be empty or contain newlines, `=` or `<`"
        );
    }
    let delimiter = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    if value.contains(&delimiter) || name.contains(&delimiter) {
        anyhow::bail!("writing output `{name}`: the value contains the delimiter");
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("writing output `{name}` to {}", path.display()))?;
    write!(f, "{name}<<{delimiter}\n{value}\n{delimiter}\n")
        .with_context(|| format!("writing output `{name}` to {}", path.display()))?;
    Ok(())
}

/// Appends Markdown to the job summary file.
pub fn append_summary(path: &Path, markdown: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("writing the job summary to {}", path.display()))?;
    f.write_all(markdown.as_bytes())
        .and_then(|()| {
            if markdown.ends_with('\n') {
                Ok(())
            } else {
                f.write_all(b"\n")
            }
        })
        .with_context(|| format!("writing the job summary to {}", path.display()))
}

/// Escapes the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The runner shows at most this many error annotations per step.
pub const MAX_ERROR_ANNOTATIONS: usize = 10;

/// Writes workflow commands (to stdout on a runner; tests pass a buffer).
pub struct Commands<W: Write> {
    out: W,
    errors: usize,
    /// Error annotations that were not written because of the cap.
    pub suppressed_errors: usize,
}

impl<W: Write> Commands<W> {
    /// Workflow commands written to `out`.
    pub fn new(out: W) -> Self {
        Commands {
            out,
            errors: 0,
            suppressed_errors: 0,
        }
    }

    fn line(&mut self, s: &str) {
        // Workflow commands are best effort: a closed stdout must not fail a rotation.
        let _ = writeln!(self.out, "{s}");
        let _ = self.out.flush();
    }

    /// `::add-mask::value`: the runner replaces `value` by `***` in all later log output.
    /// Multi-line values are masked line by line, as the runner requires.
    pub fn mask(&mut self, value: &str) {
        for part in value.lines().map(str::trim).filter(|p| !p.is_empty()) {
            self.line(&format!("::add-mask::{}", escape_data(part)));
        }
    }

    /// `::error title=…::message`; at most [`MAX_ERROR_ANNOTATIONS`] per step.
    pub fn error(&mut self, title: &str, message: &str) {
        if self.errors >= MAX_ERROR_ANNOTATIONS {
            self.suppressed_errors += 1;
            return;
        }
        self.errors += 1;
        self.line(&format!(
            "::error title={}::{}",
            escape_property(title),
            escape_data(message)
        ));
    }

    /// `::warning title=…::message`.
    pub fn warning(&mut self, title: &str, message: &str) {
        self.line(&format!(
            "::warning title={}::{}",
            escape_property(title),
            escape_data(message)
        ));
    }

    /// `::group::name`.
    pub fn group(&mut self, name: &str) {
        self.line(&format!("::group::{}", escape_data(name)));
    }

    /// `::endgroup::`.
    pub fn endgroup(&mut self) {
        self.line("::endgroup::");
    }

    /// `::stop-commands::TOKEN`: until [`Commands::resume`], nothing printed (such as names from
    /// Azure in progress lines) can be taken for a workflow command. Returns the token.
    pub fn stop_commands(&mut self) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.line(&format!("::stop-commands::{token}"));
        token
    }

    /// Resumes workflow commands after [`Commands::stop_commands`].
    pub fn resume(&mut self, token: &str) {
        self.line(&format!("::{token}::"));
    }

    /// A plain log line (with newlines folded, so it cannot start a command on a new line).
    pub fn log(&mut self, s: &str) {
        let folded = s.replace(['\r', '\n'], " ");
        self.line(&folded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_from_a_map() {
        let env = RunnerEnv::from_vars([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "octo/repo"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_SERVER_URL", "https://ghe.example.com/"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]);
        assert!(env.actions);
        assert_eq!(env.repo(), Some(("octo".into(), "repo".into())));
        assert_eq!(
            env.run_url().as_deref(),
            Some("https://ghe.example.com/octo/repo/actions/runs/42")
        );
        assert_eq!(env.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(env.actor(), "github:octo/repo/42");
        assert!(!format!("{env:?}").contains("ghs_secret"));
        let empty = RunnerEnv::from_vars(Vec::<(String, String)>::new());
        assert_eq!(empty.api_url, "https://api.github.com");
        assert!(empty.run_url().is_none());
    }

    #[test]
    fn outputs_use_a_random_delimiter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        write_output(&path, "rotated", "3").expect("write");
        write_output(&path, "multi", "a\nb").expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("rotated<<ghadelimiter_"));
        assert_eq!(lines[1], "3");
        assert_eq!(lines[2], lines[0].trim_start_matches("rotated<<"));
        assert_eq!(&lines[4..6], &["a", "b"]);
        assert_ne!(
            lines[0].trim_start_matches("rotated<<"),
            lines[3].trim_start_matches("multi<<")
        );
        assert!(write_output(&path, "bad\nname", "x").is_err());
        assert!(write_output(&path, "a=b", "x").is_err());
    }

    #[test]
    fn commands_escape_and_cap_errors() {
        let mut buf = Vec::new();
        {
            let mut c = Commands::new(&mut buf);
            c.error("rotating `a,b`: x", "line1\nline2 100%");
            for i in 0..15 {
                c.error("t", &format!("e{i}"));
            }
            assert_eq!(c.suppressed_errors, 6);
            c.mask("s3cr3t\nsecond");
            c.log("a\n::error::injected");
        }
        let text = String::from_utf8(buf).expect("utf8");
        assert!(text.contains("::error title=rotating `a%2Cb`%3A x::line1%0Aline2 100%25\n"));
        assert_eq!(text.matches("::error ").count(), 10);
        assert!(text.contains("::add-mask::s3cr3t\n::add-mask::second\n"));
        assert!(text.contains("a ::error::injected"));
        assert!(!text.contains("\n::error::injected"));
    }
}
