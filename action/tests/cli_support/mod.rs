//! Shared helpers for the CLI tests: an in-process emulator, a temp directory with `rotor.toml`,
//! and the built `rotor` binary run as a child process with the emulator's environment (the
//! test process's own environment is never changed).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::Value;
use tempfile::TempDir;

/// MyApp in the sample tenant.
pub const MYAPP: &str = "b0000001-0000-4000-8000-000000000001";
/// MyApp's "Secret 1" (in kv-prod, kv-dev and kv-staging).
pub const MYAPP_SECRET1: &str = "c0000001-0000-4000-8000-000000000101";
/// MyApp's targets: (vault, secret).
pub const MYAPP_TARGETS: [(&str, &str); 3] = [
    ("kv-prod", "myapp-secret"),
    ("kv-dev", "myapp-dev-secret"),
    ("kv-staging", "myapp-secret-v2"),
];

/// Variables that could leak in from the developer's or CI's environment and change behaviour.
const SCRUB: [&str; 16] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USE_OIDC",
    "AZURE_OIDC_TOKEN",
    "AZURE_OIDC_TOKEN_FILE_PATH",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ROTOR_CONFIG",
    "ROTOR_HISTORY_FILE",
    "ROTOR_HINT_CACHE",
    "RUST_LOG",
    "SSL_CERT_FILE",
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_NAME",
];

/// One test's world: an emulator and a working directory with `rotor.toml`.
pub struct World {
    pub emu: Emulator,
    pub dir: TempDir,
}

impl World {
    /// The sample tenant, no propagation delay, `rotor.toml` listing every emulator vault and
    /// excluding `name:legacy-*`, plus `extra_policy` lines in `[policy]`.
    pub async fn start(extra_policy: &str) -> World {
        World::start_with(Fixture::sample(), EmulatorOptions::default(), extra_policy).await
    }

    /// Like [`World::start`] with a fixture and options.
    pub async fn start_with(fixture: Fixture, opts: EmulatorOptions, extra_policy: &str) -> World {
        let emu = Emulator::start(fixture, opts)
            .await
            .expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let vaults: Vec<String> = emu
            .endpoints()
            .vaults
            .values()
            .map(|u| format!("{u:?}"))
            .collect();
        let toml = format!(
            "vaults = [{}]\n\n[policy]\nexclusions = [\"name:legacy-*\"]\n{extra_policy}\n",
            vaults.join(", ")
        );
        std::fs::write(dir.path().join("rotor.toml"), toml).expect("write rotor.toml");
        World { emu, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn history(&self) -> PathBuf {
        self.path("rotor-history.jsonl")
    }

    /// `rotor ARGS` in the world's directory with the emulator's environment.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rotor"));
        for k in SCRUB {
            cmd.env_remove(k);
        }
        cmd.envs(&self.emu.endpoints().env)
            .env("AZURE_USE_CLI", "false")
            .env("AZURE_USE_MSI", "false")
            .env("ROTOR_LOOPBACK_ONLY", "1")
            .env("USER", "cli-test")
            .current_dir(self.dir.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `rotor ARGS` to completion (60 s at most).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(args)).await
    }

    pub async fn run_cmd(&self, mut cmd: tokio::process::Command) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("rotor finishes within 120 s")
            .expect("rotor runs");
        Run::from(out)
    }

    /// `GET state`.
    pub fn state(&self) -> Value {
        self.emu.state()
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// stdout parsed as JSON (panics with the whole run on failure).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code:\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// An application in `state`.
pub fn app<'a>(state: &'a Value, app_id: &str) -> &'a Value {
    state["applications"]
        .as_array()
        .expect("applications")
        .iter()
        .find(|a| a["app_id"] == app_id)
        .expect("app in state")
}

/// The password credentials of an app in `state`.
pub fn passwords(state: &Value, app_id: &str) -> Vec<Value> {
    app(state, app_id)["password_credentials"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The versions of a vault secret in `state`, oldest first.
pub fn versions(state: &Value, vault: &str, secret: &str) -> Vec<Value> {
    state["vaults"]
        .as_array()
        .expect("vaults")
        .iter()
        .find(|v| v["name"] == vault)
        .expect("vault in state")["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .find(|s| s["name"] == secret)
        .map(|s| s["versions"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// The current (latest enabled) value of a vault secret.
pub fn current_value(state: &Value, vault: &str, secret: &str) -> Option<String> {
    versions(state, vault, secret)
        .last()
        .and_then(|v| v["value"].as_str().map(str::to_owned))
}

/// Every secret value in `state`: principals' client secrets, password `secret_text`s and vault
/// values (only those long enough that finding them in output cannot be a coincidence).
pub fn secret_values(state: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: &Value| {
        if let Some(s) = v.as_str()
            && s.len() >= 8
        {
            out.push(s.to_owned());
        }
    };
    for p in state["principals"].as_array().into_iter().flatten() {
        push(&p["client_secret"]);
    }
    for a in state["applications"].as_array().into_iter().flatten() {
        for c in a["password_credentials"].as_array().into_iter().flatten() {
            push(&c["secret_text"]);
        }
    }
    for v in state["vaults"].as_array().into_iter().flatten() {
        for s in v["secrets"].as_array().into_iter().flatten() {
            for ver in s["versions"].as_array().into_iter().flatten() {
                push(&ver["value"]);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Logs in as `app_id` with `secret` at the emulator's token endpoint; true when a token is issued.
pub async fn logs_in(world: &World, app_id: &str, secret: &str) -> bool {
    let eps = world.emu.endpoints();
    let ca = reqwest::Certificate::from_pem(world.emu.ca_pem().as_bytes()).expect("CA PEM");
    let client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client");
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        eps.authority_host.trim_end_matches('/'),
        eps.tenant_id
    );
    let scope = format!("{}/.default", eps.graph_endpoint.trim_end_matches('/'));
    let resp = client
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            ("client_secret", secret),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    resp.status().is_success()
}

/// Asserts nothing in `text` is one of `secrets` (names the place, never prints the value).
pub fn assert_no_secret(place: &str, text: &str, secrets: &[String]) {
    for (i, s) in secrets.iter().enumerate() {
        assert!(
            !text.contains(s.as_str()),
            "secret value #{i} (len {}) leaked into {place}",
            s.len()
        );
    }
}

/// Reads a file, empty when missing.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
pub mod certificates;
