//! The action's definition cannot drift from the CLI or from the example workflows:
//! - every `with:` input the example workflows pass to this action exists in `action.yml`;
//! - every `action.yml` input is mapped explicitly in `env:` (composite actions get no `INPUT_*`);
//! - every flag the run step passes exists in `rotor action --help` / `rotor report --help`
//!   (the built binary is asked);
//! - every output maps to an output `rotor action` writes;
//! - the example workflows ask for the permissions they need and no more;
//! - the install step verifies downloads against the pinned sha256 and refuses a mismatch.
//!
//! Each checker is also run on a broken input to prove it can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn action_yml() -> Value {
    yaml(&root().join("action.yml"))
}

fn input_names(action: &Value) -> BTreeSet<String> {
    action["inputs"]
        .as_mapping()
        .expect("inputs")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

fn example_workflows() -> Vec<(String, Value)> {
    let dir = root().join("examples/workflows");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("examples/workflows")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                yaml(&p),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn is_this_action(uses: &str) -> bool {
    uses.starts_with("certifyclouds/rotor@") || uses == "./"
}

/// Steps of `workflow` that use this action, as (job, with-mapping).
fn rotor_steps(workflow: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (job, def) in workflow["jobs"].as_mapping().into_iter().flatten() {
        for step in def["steps"].as_sequence().into_iter().flatten() {
            if step["uses"].as_str().is_some_and(is_this_action) {
                out.push((
                    job.as_str().unwrap_or("?").to_string(),
                    step.get("with").cloned().unwrap_or(Value::Null),
                ));
            }
        }
    }
    out
}

/// Inputs used by `workflow` on this action that `action.yml` does not define.
fn unknown_inputs(workflow: &Value, known: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    for (job, with) in rotor_steps(workflow) {
        for k in with.as_mapping().into_iter().flatten().map(|(k, _)| k) {
            let k = k.as_str().unwrap_or("").to_string();
            if !known.contains(&k) {
                bad.push(format!("job `{job}`: input `{k}`"));
            }
        }
    }
    bad
}

#[test]
fn example_workflows_use_only_inputs_that_exist() {
    let known = input_names(&action_yml());
    let workflows = example_workflows();
    assert_eq!(
        workflows.len(),
        3,
        "nightly, PR report, Terraform plan report"
    );
    for (name, wf) in &workflows {
        assert!(!rotor_steps(wf).is_empty(), "{name} uses the action");
        let bad = unknown_inputs(wf, &known);
        assert!(bad.is_empty(), "{name}: not in action.yml: {bad:?}");
    }
    // The check can fail.
    let broken: Value = serde_yaml::from_str(
        "jobs: {x: {steps: [{uses: certifyclouds/rotor@v1, with: {tenant-id: a, no-such-input: b}}]}}",
    )
    .expect("yaml");
    assert_eq!(
        unknown_inputs(&broken, &known),
        vec!["job `x`: input `no-such-input`"]
    );
}

/// The composite steps' `env:` values and `run:` scripts.
fn composite_steps(action: &Value) -> Vec<(BTreeMap<String, String>, String)> {
    action["runs"]["steps"]
        .as_sequence()
        .expect("runs.steps")
        .iter()
        .map(|s| {
            let env = s["env"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or("").to_string(),
                        v.as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            (env, s["run"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

/// Inputs that no step maps in `env:` (or `working-directory:`).
fn unmapped_inputs(action: &Value) -> Vec<String> {
    let text = serde_yaml::to_string(&action["runs"]).expect("yaml");
    input_names(action)
        .into_iter()
        .filter(|i| !text.contains(&format!("inputs.{i} }}}}")))
        .collect()
}

#[test]
fn every_input_is_mapped_explicitly() {
    let action = action_yml();
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    assert!(
        unmapped_inputs(&action).is_empty(),
        "{:?}",
        unmapped_inputs(&action)
    );
    // Composite actions get no INPUT_* variables: nothing may rely on them.
    let text = std::fs::read_to_string(root().join("action.yml")).expect("action.yml");
    assert!(
        !text.contains("$INPUT_") && !text.contains("env.INPUT_"),
        "relies on INPUT_* variables"
    );
    for (_, run) in composite_steps(&action) {
        assert!(
            !run.contains("${{"),
            "expressions inside run: scripts allow injection: {run}"
        );
    }
    // github-token defaults to the workflow token and reaches rotor as GITHUB_TOKEN.
    assert_eq!(
        action["inputs"]["github-token"]["default"].as_str(),
        Some("${{ github.token }}")
    );
    let run_env = &composite_steps(&action)[1].0;
    assert_eq!(
        run_env.get("GITHUB_TOKEN").map(String::as_str),
        Some("${{ inputs.github-token }}")
    );

    let mut broken = action.clone();
    broken["inputs"]["extra"] = serde_yaml::from_str("{description: x}").expect("yaml");
    assert_eq!(unmapped_inputs(&broken), vec!["extra".to_string()]);
}

/// Long flags in a shell fragment.
fn flags_in(script: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"(?:^|[\s(])(--[a-z][a-z0-9-]*)").expect("regex");
    re.captures_iter(script).map(|c| c[1].to_string()).collect()
}

fn help_flags(subcommand: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args([subcommand, "--help"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run rotor --help");
    assert!(out.status.success(), "rotor {subcommand} --help failed");
    flags_in(&String::from_utf8_lossy(&out.stdout))
}

/// Flags of the run step that `rotor <command> --help` does not list, per command branch.
fn unknown_flags(
    run: &str,
    action_flags: &BTreeSet<String>,
    report_flags: &BTreeSet<String>,
) -> Vec<String> {
    let mut bad = Vec::new();
    let (common, branches) = run.split_once("case ").unwrap_or((run, ""));
    let action_branch = branches
        .split("action)")
        .nth(1)
        .and_then(|s| s.split(";;").next())
        .unwrap_or("");
    let report_branch = branches
        .split("report)")
        .nth(1)
        .and_then(|s| s.split(";;").next())
        .unwrap_or("");
    for f in flags_in(common) {
        if !action_flags.contains(&f) || !report_flags.contains(&f) {
            bad.push(format!("{f} (global)"));
        }
    }
    for f in flags_in(action_branch) {
        if !action_flags.contains(&f) {
            bad.push(format!("{f} (rotor action)"));
        }
    }
    for f in flags_in(report_branch) {
        if !report_flags.contains(&f) {
            bad.push(format!("{f} (rotor report)"));
        }
    }
    bad
}

#[test]
fn the_run_step_passes_only_flags_the_cli_has() {
    let action = action_yml();
    let run = composite_steps(&action)
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r.contains("exec \"$ROTOR_BIN\""))
        .expect("the run step");
    let action_flags = help_flags("action");
    let report_flags = help_flags("report");
    for f in [
        "--dry-run",
        "--comment",
        "--audit-pr",
        "--config",
        "--history-file",
    ] {
        assert!(
            action_flags.contains(f),
            "rotor action --help lacks {f}: {action_flags:?}"
        );
    }
    let used = flags_in(&run);
    assert!(used.len() >= 8, "{used:?}");
    let bad = unknown_flags(&run, &action_flags, &report_flags);
    assert!(
        bad.is_empty(),
        "action.yml passes flags the CLI does not have: {bad:?}"
    );
    // The check can fail.
    let broken = run.replace("--audit-pr", "--open-audit-pr");
    assert_eq!(
        unknown_flags(&broken, &action_flags, &report_flags),
        vec!["--open-audit-pr (rotor action)"]
    );
}

#[test]
fn outputs_map_to_what_rotor_action_writes() {
    let action = action_yml();
    let source =
        std::fs::read_to_string(root().join("action/src/github/action.rs")).expect("source");
    let re = regex::Regex::new(r#"write_output\(\s*out,\s*"([a-z-]+)""#).expect("regex");
    let written: BTreeSet<String> = re
        .captures_iter(&source)
        .map(|c| c[1].to_string())
        .collect();
    for o in ["rotated", "failed", "due", "report-path", "history-path"] {
        assert!(
            written.contains(o),
            "rotor action does not write `{o}`: {written:?}"
        );
    }
    for (name, def) in action["outputs"].as_mapping().expect("outputs") {
        let name = name.as_str().expect("name");
        let value = def["value"].as_str().expect("value");
        assert_eq!(
            value,
            format!("${{{{ steps.run.outputs.{name} }}}}"),
            "{name}"
        );
        assert!(
            written.contains(name),
            "output `{name}` is never written by rotor action"
        );
    }
}

fn permissions(wf: &Value) -> BTreeMap<String, String> {
    wf["permissions"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or("").to_string(),
                v.as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn example_workflows_ask_for_the_permissions_they_need_and_no_more() {
    for (name, wf) in example_workflows() {
        let perms = permissions(&wf);
        assert_eq!(
            perms.get("id-token").map(String::as_str),
            Some("write"),
            "{name}: OIDC needs id-token: write"
        );
        let audit = rotor_steps(&wf).iter().any(|(_, with)| {
            with["audit-pr"].as_bool() == Some(true) || with["audit-pr"].as_str() == Some("true")
        });
        let contents = perms.get("contents").map(String::as_str).unwrap_or("none");
        if audit {
            assert_eq!(
                contents, "write",
                "{name}: audit pull requests need contents: write"
            );
            assert_eq!(
                perms.get("pull-requests").map(String::as_str),
                Some("write"),
                "{name}"
            );
        } else {
            assert_ne!(
                contents, "write",
                "{name}: contents: write only for audit pull requests"
            );
        }
        let on = &wf["on"];
        if on.get("pull_request").is_some() {
            assert_eq!(
                perms.get("pull-requests").map(String::as_str),
                Some("write"),
                "{name}: sticky comment"
            );
            assert!(on.get("pull_request_target").is_none(), "{name}");
        }
        // No stored Azure secret in the examples.
        let text = serde_yaml::to_string(&wf).expect("yaml");
        assert!(!text.contains("client-secret"), "{name} should use OIDC");
    }
}

#[test]
fn release_and_ci_workflows_exist_and_parse() {
    let ci = yaml(&root().join(".github/workflows/ci.yml"));
    let ci_text = serde_yaml::to_string(&ci).expect("yaml");
    assert!(
        ci_text.contains("bash .ci/run"),
        "CI runs the README's test command"
    );
    let release = yaml(&root().join(".github/workflows/release.yml"));
    let targets: BTreeSet<String> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("matrix")
        .iter()
        .filter_map(|e| e["target"].as_str().map(str::to_string))
        .collect();
    // Every target the install script maps a runner to is built by the release.
    let script =
        std::fs::read_to_string(root().join(".github/scripts/install-rotor.sh")).expect("script");
    let re = regex::Regex::new(r"target=([a-z0-9_-]+)").expect("regex");
    let mapped: BTreeSet<String> = re
        .captures_iter(&script)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(mapped.len(), 5, "{mapped:?}");
    assert_eq!(mapped, targets, "install-rotor.sh and release.yml disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_step_checks_the_pinned_sha256() {
    use sha2_free::sha256_hex;
    let dir = tempfile::tempdir().expect("tempdir");
    // A release archive holding a `rotor` that prints a word.
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(&stage).expect("stage");
    std::fs::write(stage.join("rotor"), "#!/bin/sh\necho rotor-from-release\n").expect("write");
    let archive_name = "rotor-v9.9.9-x86_64-unknown-linux-musl.tar.gz";
    let archive = dir.path().join(archive_name);
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let bytes = std::fs::read(&archive).expect("archive");
    let sum = sha256_hex(&archive);

    // Serve it like GitHub releases do, on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = bytes.clone();
    let app = axum::Router::new().route(
        &format!("/certifyclouds/rotor/releases/download/v9.9.9/{archive_name}"),
        axum::routing::get(move || {
            let b = served.clone();
            async move { b }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let run = |sums: String| {
        let action_path = dir.path().join(format!("action-{}", sums.len()));
        std::fs::create_dir_all(action_path.join(".github")).expect("action dir");
        std::fs::write(action_path.join(".github/release-sums.txt"), sums).expect("sums");
        let out_file = action_path.join("out");
        std::fs::write(&out_file, "").expect("out");
        let temp = action_path.join("tmp");
        std::fs::create_dir_all(&temp).expect("tmp");
        let out = std::process::Command::new("bash")
            .arg(root().join(".github/scripts/install-rotor.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_ACTION_PATH", &action_path)
            .env("GITHUB_OUTPUT", &out_file)
            .env("GITHUB_SERVER_URL", format!("http://{addr}"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", &temp)
            .output()
            .expect("bash");
        (out, std::fs::read_to_string(&out_file).expect("out"))
    };

    let good = format!("# pinned\n{sum}  {archive_name}\n");
    let (out, outputs) = tokio::task::block_in_place(|| run(good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bin = outputs
        .trim()
        .strip_prefix("bin=")
        .expect("bin output")
        .to_string();
    let ran = std::process::Command::new(&bin)
        .output()
        .expect("run installed binary");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "rotor-from-release"
    );

    let wrong = format!("{}  {archive_name}\n", "0".repeat(64));
    let (out, outputs) = tokio::task::block_in_place(|| run(wrong));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum mismatch"));
    assert!(!outputs.contains("bin="));

    let (out, _) = tokio::task::block_in_place(|| run("# nothing pinned yet\n".into()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("binary-path"));
}

/// sha256 through the system's `sha256sum` (the same tool the install script uses on Linux).
mod sha2_free {
    pub fn sha256_hex(path: &std::path::Path) -> String {
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("sum")
            .to_string()
    }
}
