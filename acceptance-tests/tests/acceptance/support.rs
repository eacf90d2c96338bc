//! The acceptance harness: a temporary Terraform working directory whose CLI configuration points
//! `certifyclouds/rotor` at the locally built provider (`dev_overrides`, so no `terraform init`),
//! with the emulator's environment passed to the terraform child only (the test process's own
//! environment is never changed, and the runner's `ARM_*`/`AZURE_*` never reach Terraform).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests lives in the workspace")
        .to_path_buf()
}

/// The Terraform CLI: `ROTOR_TERRAFORM`, else `<workspace>/.tools/bin/terraform`. Missing →
/// the test fails (never passes silently) naming the install script.
pub fn terraform_bin() -> PathBuf {
    let path = std::env::var_os("ROTOR_TERRAFORM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin/terraform"));
    assert!(
        path.is_file(),
        "the Terraform CLI is not installed at {}.\n\
         Run `scripts/install-test-tools` (installs the pinned, checksummed Terraform 1.0.3 into .tools/), \
         or set ROTOR_TERRAFORM to a terraform binary.",
        path.display()
    );
    path
}

/// The directory holding the `terraform-provider-rotor` built for this test run (the test
/// binary's own target directory). Missing → the test fails naming the build command.
pub fn provider_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/acceptance-xxxx → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    let bin = dir.join("terraform-provider-rotor");
    assert!(
        bin.is_file(),
        "the provider binary {} does not exist.\n\
         Build it first: `cargo build -p terraform-provider-rotor` (scripts/test does this before `cargo test`).",
        bin.display()
    );
    if let Some(stale) = newest_source_after(&bin) {
        eprintln!(
            "warning: {} is older than {}; run `cargo build -p terraform-provider-rotor` to test the current code",
            bin.display(),
            stale.display()
        );
    }
    dir
}

fn newest_source_after(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let mut stack = vec![
        workspace_root().join("provider/src"),
        workspace_root().join("engine/src"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                return Some(p);
            }
        }
    }
    None
}

/// Starts the emulator on a fixture given as JSON.
pub async fn emulator(fixture: Value) -> Emulator {
    let fixture = Fixture::from_json(&fixture.to_string()).expect("valid fixture");
    Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator starts")
}

/// The result of one terraform command.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Both streams, for assertions and failure messages.
    pub fn output(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
    /// Asserts success.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "terraform failed:\n{}", self.output());
        self
    }
    /// Asserts failure.
    #[track_caller]
    pub fn failed(self) -> Run {
        assert_ne!(
            self.code,
            0,
            "terraform unexpectedly succeeded:\n{}",
            self.output()
        );
        self
    }
}

/// A Terraform working directory wired to the local provider and (optionally) an emulator.
pub struct Tf {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    bin: PathBuf,
}

impl Tf {
    /// A working directory; with `emulator`, the provider authenticates against it.
    pub fn new(emulator: Option<&Emulator>) -> Tf {
        let bin = terraform_bin();
        let provider_dir = provider_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let cli_config = dir.path().join(".terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"certifyclouds/rotor\" = \"{}\"\n  }}\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
                provider_dir.display(),
                workspace_root().join(".tools/mirror").display()
            ),
        )
        .expect("write CLI config");
        let mut env = BTreeMap::new();
        for key in ["PATH", "TMPDIR", "LANG"] {
            if let Ok(v) = std::env::var(key) {
                env.insert(key.to_string(), v);
            }
        }
        env.insert("HOME".into(), dir.path().display().to_string());
        env.insert(
            "TF_CLI_CONFIG_FILE".into(),
            cli_config.display().to_string(),
        );
        env.insert("CHECKPOINT_DISABLE".into(), "1".into());
        env.insert("TF_IN_AUTOMATION".into(), "1".into());
        env.insert("ROTOR_LOOPBACK_ONLY".into(), "1".into());
        if let Some(em) = emulator {
            for (k, v) in &em.endpoints().env {
                env.insert(k.clone(), v.clone());
            }
        }
        Tf { dir, env, bin }
    }

    /// The working directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for the terraform child.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    /// Removes an environment variable from the terraform child.
    pub fn remove_env(&mut self, key: &str) {
        self.env.remove(key);
    }

    /// Writes `main.tf` (with the provider requirement prepended).
    pub fn config(&self, body: &str) {
        self.write(
            "main.tf",
            &format!(
                "terraform {{\n  required_providers {{\n    rotor = {{ source = \"certifyclouds/rotor\" }}\n  }}\n}}\n\n{body}\n"
            ),
        );
    }

    /// Writes a file in the working directory.
    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).expect("write file");
    }

    /// Copies every `.tf` file of a directory into the working directory.
    pub fn copy_dir(&self, from: &Path) {
        for entry in std::fs::read_dir(from).expect("example dir").flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "tf" || e == "tfvars") {
                std::fs::copy(&p, self.dir.path().join(entry.file_name())).expect("copy example");
            }
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `terraform <args> -no-color`.
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.push("-no-color");
        let start = Instant::now();
        let out = self.command(&all).output().await.expect("run terraform");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// Starts `terraform <args>` without waiting, in its own process group (whose id is the
    /// child's pid) so a test can kill terraform and the providers it started at once.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        let mut all: Vec<&str> = args.to_vec();
        all.push("-no-color");
        let mut cmd = self.command(&all);
        cmd.process_group(0);
        cmd.spawn().expect("spawn terraform")
    }
}

/// Kills (SIGKILL) the process group led by `pid` — a terraform started with [`Tf::spawn`] and
/// the providers it started — like a crash. Refuses unless `pid` really leads its own group.
pub fn kill_group(pid: u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // pid (comm) state ppid pgrp ...
    let after = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let pgrp: u32 = after
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .expect("pgrp");
    assert_eq!(
        pgrp, pid,
        "process {pid} is not a process group leader; refusing to kill its group"
    );
    let status = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s KILL -- -{pid} failed");
}

impl Tf {
    /// `terraform apply -auto-approve`.
    pub async fn apply(&self) -> Run {
        self.run(&["apply", "-auto-approve", "-input=false"]).await
    }

    /// `terraform plan -detailed-exitcode`: exit 0 = no changes, 2 = changes.
    pub async fn plan(&self) -> Run {
        self.run(&["plan", "-input=false", "-detailed-exitcode"])
            .await
    }

    /// `terraform destroy -auto-approve`.
    pub async fn destroy(&self) -> Run {
        self.run(&["destroy", "-auto-approve", "-input=false"])
            .await
    }

    /// Plans into `tfplan` and returns `terraform show -json tfplan` (and the plan run).
    pub async fn plan_json(&self) -> (Value, Run) {
        let run = self.run(&["plan", "-input=false", "-out=tfplan"]).await;
        assert_eq!(run.code, 0, "plan failed:\n{}", run.output());
        let show = self.run(&["show", "-json", "tfplan"]).await.ok();
        (serde_json::from_str(&show.stdout).expect("plan JSON"), run)
    }

    /// The raw state file.
    pub fn state_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("terraform.tfstate")).unwrap_or_default()
    }

    /// The state file as JSON.
    pub fn state(&self) -> Value {
        serde_json::from_str(&self.state_text()).unwrap_or(Value::Null)
    }

    /// The attributes of one resource instance in the state (`rotor_secret_link.app`).
    pub fn resource(&self, address: &str) -> Value {
        let state = self.state();
        let (ty, name) = address.split_once('.').expect("type.name");
        for r in state["resources"].as_array().into_iter().flatten() {
            if r["type"] == ty && r["name"] == name && r["mode"] == "managed" {
                return r["instances"][0]["attributes"].clone();
            }
        }
        Value::Null
    }
}

/// Every secret value the emulator knows (principal secrets, application passwords, every
/// version of every vault secret): none may ever appear in Terraform's files or logs.
pub fn secret_values(em: &Emulator) -> Vec<String> {
    let state = em.state();
    let mut out = Vec::new();
    for p in state["principals"].as_array().into_iter().flatten() {
        if let Some(s) = p["client_secret"].as_str() {
            out.push(s.to_string());
        }
    }
    for app in state["applications"].as_array().into_iter().flatten() {
        for c in app["password_credentials"].as_array().into_iter().flatten() {
            if let Some(s) = c["secret_text"].as_str() {
                out.push(s.to_string());
            }
        }
    }
    for v in state["vaults"].as_array().into_iter().flatten() {
        for s in v["secrets"].as_array().into_iter().flatten() {
            for ver in s["versions"].as_array().into_iter().flatten() {
                if let Some(val) = ver["value"].as_str() {
                    out.push(val.to_string());
                }
            }
        }
    }
    out.retain(|s| s.len() >= 8);
    out.sort();
    out.dedup();
    out
}

/// Asserts that `text` (named `what`) contains none of the emulator's secret values.
#[track_caller]
pub fn assert_no_secrets(em: &Emulator, what: &str, text: &str) {
    let secrets = secret_values(em);
    assert!(
        !secrets.is_empty(),
        "the emulator should know some secret values"
    );
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} contains a secret value (first 3 chars `{}`)",
            &s[..3]
        );
    }
}

/// A vault secret's versions from the emulator state (oldest first).
pub fn vault_versions(em: &Emulator, vault: &str, secret: &str) -> Vec<Value> {
    let state = em.state();
    for v in state["vaults"].as_array().into_iter().flatten() {
        if v["name"] == vault {
            for s in v["secrets"].as_array().into_iter().flatten() {
                if s["name"] == secret {
                    return s["versions"].as_array().cloned().unwrap_or_default();
                }
            }
        }
    }
    Vec::new()
}

/// An application's password credentials from the emulator state.
pub fn passwords(em: &Emulator, app_id: &str) -> Vec<Value> {
    let state = em.state();
    for app in state["applications"].as_array().into_iter().flatten() {
        if app["app_id"] == app_id {
            return app["password_credentials"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
    }
    Vec::new()
}

/// The number of requests the emulator served whose route starts with `prefix`
/// (e.g. `GET /v1.0/applications`).
pub fn requests(em: &Emulator, filter: impl Fn(&str) -> bool) -> u64 {
    let counts = em.request_counts();
    counts["by_route"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| filter(k))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// The standard test principal (Graph write + Key Vault Secrets Officer everywhere).
pub fn principal() -> Value {
    json!({
        "client_id": "7c1e0d5a-0000-4000-8000-0000000000c1",
        "client_secret": "rotor-ci-secret-value-0123456789",
        "display_name": "rotor-ci",
        "graph_roles": ["Application.ReadWrite.All"],
        "vault_roles": {"*": "Key Vault Secrets Officer"}
    })
}

/// The `provider "rotor" {}` block (everything comes from the emulator's environment).
pub const PROVIDER: &str = "provider \"rotor\" {}\n";

/// `(pgrp, state, comm)` of a process, from `/proc/<pid>/stat`; `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(u32, char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (").map(|(_, c)| c.to_string())?;
    // state ppid pgrp ...
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((pgrp, state, comm))
}

/// The live processes of process group `pgrp` (a terraform started with [`Tf::spawn`]) whose
/// command name starts with `comm`: `terraform` (Terraform runs itself twice: panicwrap's outer
/// process and the real one) or `terraform-provi` (the providers; names are cut at 15 bytes).
pub fn group_processes(pgrp: u32, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((group, state, name)) = proc_stat(pid)
            && group == pgrp
            && state != 'Z'
            && (name == comm || (comm.ends_with("provi") && name.starts_with(comm)))
        {
            out.push(pid);
        }
    }
    out
}

/// Whether process `pid` is still running (a zombie nobody reaped yet counts as gone).
pub fn process_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, state, _)| state != 'Z' && state != 'X')
}

/// Kills (SIGKILL) exactly the processes `pids` — the terraform processes of a [`Tf::spawn`], not
/// the providers they started: those are left to notice on their own, as when Terraform crashes.
pub fn kill_each(pids: &[u32]) {
    for pid in pids {
        let status = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success() || !process_alive(*pid),
            "kill -s KILL {pid} failed"
        );
    }
}

/// The total number of requests the emulator has received.
pub fn total_requests(em: &Emulator) -> u64 {
    em.request_counts()["total"].as_u64().unwrap_or(0)
}

/// Sends one Key Vault request to `vault` directly (as something other than rotor would: a
/// person, a pipeline, Key Vault AutoRenew), authenticating as the test principal; the JSON
/// answer (null when there is none). `path` starts with `/`.
pub async fn kv_json(
    em: &Emulator,
    method: reqwest::Method,
    vault: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let env = &em.endpoints().env;
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(em.ca_pem().as_bytes()).expect("emulator CA"),
        )
        .build()
        .expect("client");
    let token_url = format!(
        "{}/{}/oauth2/v2.0/token",
        env["AZURE_AUTHORITY_HOST"].trim_end_matches('/'),
        env["AZURE_TENANT_ID"]
    );
    let token: Value = client
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env["AZURE_CLIENT_ID"].as_str()),
            ("client_secret", env["AZURE_CLIENT_SECRET"].as_str()),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    let url = format!(
        "{}{}?api-version=7.5",
        em.endpoints().vaults[vault].trim_end_matches('/'),
        path
    );
    let mut req = client
        .request(method.clone(), url)
        .bearer_auth(token["access_token"].as_str().expect("access_token"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("Key Vault request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{method} {vault}{path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// [`kv_json`] when the answer does not matter.
pub async fn kv_send(
    em: &Emulator,
    method: reqwest::Method,
    vault: &str,
    path: &str,
    body: Option<Value>,
) {
    kv_json(em, method, vault, path, body).await;
}

/// Writes a new version of Key Vault secret `secret` in `vault` directly, with `tags`.
pub async fn kv_put(em: &Emulator, vault: &str, secret: &str, value: &str, tags: Value) {
    kv_send(
        em,
        reqwest::Method::PUT,
        vault,
        &format!("/secrets/{secret}"),
        Some(json!({"value": value, "tags": tags})),
    )
    .await;
}
