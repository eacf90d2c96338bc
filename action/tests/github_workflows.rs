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
        4,
        "nightly, PR report, Terraform plan report, rotation dashboard"
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
    let run_step = action["runs"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .position(|s| s["id"] == "run")
        .expect("the run step");
    let run_env = &composite_steps(&action)[run_step].0;
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
fn every_output_is_declared_and_every_declared_output_is_written() {
    let action = action_yml();
    let source =
        std::fs::read_to_string(root().join("action/src/github/action.rs")).expect("source");
    let re = regex::Regex::new(r#"write_output\(\s*out,\s*"([a-z-]+)""#).expect("regex");
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in re.captures_iter(&source) {
        written
            .entry("run".into())
            .or_default()
            .insert(c[1].to_string());
    }
    // What the composite steps themselves write (`echo "name=…" >> "$GITHUB_OUTPUT"`), in
    // action.yml and in the install script.
    let echo = regex::Regex::new(r#"echo "([a-z-]+)=[^"]*" >> "\$GITHUB_OUTPUT""#).expect("regex");
    for step in action["runs"]["steps"].as_sequence().expect("steps") {
        let id = step["id"].as_str().unwrap_or("").to_string();
        let script = step["run"].as_str().unwrap_or("").to_string();
        let mut text = script.clone();
        if script.contains("install-rotor.sh") {
            text.push_str(
                &std::fs::read_to_string(root().join(".github/scripts/install-rotor.sh"))
                    .expect("install script"),
            );
        }
        for c in echo.captures_iter(&text) {
            written
                .entry(id.clone())
                .or_default()
                .insert(c[1].to_string());
        }
    }
    for o in [
        "rotated",
        "failed",
        "due",
        "report-path",
        "history-path",
        "audit-pr-number",
    ] {
        assert!(
            written["run"].contains(o),
            "rotor action does not write `{o}`: {written:?}"
        );
    }
    let mut declared: BTreeSet<(String, String)> = BTreeSet::new();
    let value_re =
        regex::Regex::new(r"^\$\{\{ steps\.([a-z]+)\.outputs\.([a-z-]+) \}\}$").expect("regex");
    for (name, def) in action["outputs"].as_mapping().expect("outputs") {
        let name = name.as_str().expect("name");
        assert!(
            def["description"].as_str().is_some_and(|d| !d.is_empty()),
            "output `{name}` has a description"
        );
        let value = def["value"].as_str().expect("value");
        let c = value_re
            .captures(value)
            .unwrap_or_else(|| panic!("output `{name}`: {value}"));
        assert_eq!(&c[2], name, "output `{name}` maps to its own name");
        assert!(
            written.get(&c[1]).is_some_and(|w| w.contains(name)),
            "output `{name}` is never written by step `{}`: {written:?}",
            &c[1]
        );
        declared.insert((c[1].to_string(), name.to_string()));
    }
    // The converse: every output the run step writes is declared (the install step's `bin` is
    // internal).
    for name in &written["run"] {
        assert!(
            declared.contains(&("run".to_string(), name.clone())),
            "rotor writes output `{name}` but action.yml does not declare it"
        );
    }
}

/// Every `runs-on` label of a workflow, matrix values included.
fn runner_labels(wf: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (_, job) in wf["jobs"].as_mapping().into_iter().flatten() {
        let mut push = |v: &Value| match v {
            Value::String(s) => out.push(s.clone()),
            Value::Sequence(seq) => {
                out.extend(seq.iter().filter_map(|x| x.as_str().map(str::to_string)))
            }
            _ => {}
        };
        push(&job["runs-on"]);
        let matrix = &job["strategy"]["matrix"];
        for (_, values) in matrix.as_mapping().into_iter().flatten() {
            for entry in values.as_sequence().into_iter().flatten() {
                match entry {
                    Value::Mapping(m) => {
                        for (k, v) in m {
                            if k.as_str()
                                .is_some_and(|k| k == "os" || k == "runner" || k == "runs-on")
                            {
                                push(v);
                            }
                        }
                    }
                    v => push(v),
                }
            }
        }
    }
    out.retain(|l| !l.contains("${{"));
    out
}

#[test]
fn workflows_use_no_retired_runner_label() {
    let retired: BTreeSet<String> =
        std::fs::read_to_string(root().join(".github/retired-runner-labels.txt"))
            .expect("retired label list")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
    assert!(retired.contains("macos-13") && retired.contains("ubuntu-20.04"));
    let mut workflows = example_workflows();
    for f in ["ci.yml", "release.yml"] {
        workflows.push((f.into(), yaml(&root().join(".github/workflows").join(f))));
    }
    let mut seen = 0;
    for (name, wf) in &workflows {
        for label in runner_labels(wf) {
            seen += 1;
            assert!(
                !retired.contains(&label),
                "{name}: runs-on `{label}` is a retired GitHub-hosted runner label"
            );
        }
    }
    assert!(seen >= 8, "labels found: {seen}");
    // The check can fail.
    let old: Value = serde_yaml::from_str(
        "jobs:\n  b:\n    strategy:\n      matrix:\n        include:\n          - { target: x, os: macos-13 }\n    runs-on: ${{ matrix.os }}\n",
    )
    .expect("yaml");
    assert!(runner_labels(&old).iter().any(|l| retired.contains(l)));
    // Releases are never half made: every target is built (no fail-fast cancelling the rest)
    // and publish needs them all.
    let release = yaml(&root().join(".github/workflows/release.yml"));
    assert_eq!(
        release["jobs"]["build"]["strategy"]["fail-fast"].as_bool(),
        Some(false)
    );
    assert_eq!(release["jobs"]["publish"]["needs"].as_str(), Some("build"));
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
        let dashboard = rotor_steps(&wf).iter().any(|(_, with)| {
            with["dashboard"].as_bool() == Some(true) || with["dashboard"].as_str() == Some("true")
        });
        if dashboard {
            assert_eq!(
                perms.get("issues").map(String::as_str),
                Some("write"),
                "{name}: the dashboard issue needs issues: write"
            );
            let types = on["issues"]["types"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                types,
                vec![Value::from("edited")],
                "{name}: one-click rotation runs on issues edited only"
            );
        } else {
            assert!(on.get("issues").is_none(), "{name}");
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

/// A release archive holding a `rotor` that prints `word`, as the release workflow packs it.
fn release_archive(dir: &Path, name: &str, word: &str) -> (Vec<u8>, String) {
    let stage = dir.join(format!("stage-{word}"));
    std::fs::create_dir_all(&stage).expect("stage");
    std::fs::write(stage.join("rotor"), format!("#!/bin/sh\necho {word}\n")).expect("write");
    let archive = dir.join(name);
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let sum = sha2_free::sha256_hex(&archive);
    (std::fs::read(&archive).expect("archive"), sum)
}

/// Serves `files` (URL path → bytes) on loopback, like GitHub's release downloads; counts hits.
async fn serve(
    files: BTreeMap<String, Vec<u8>>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let files = std::sync::Arc::new(files);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let files = files.clone();
        let h = h.clone();
        async move {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match files.get(uri.path()) {
                Some(b) => (axum::http::StatusCode::OK, b.clone()),
                None => (axum::http::StatusCode::NOT_FOUND, b"Not Found".to_vec()),
            }
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hits)
}

/// Runs the install script with a fresh action directory holding `sums`, in `cwd`.
fn install(
    dir: &Path,
    sums: &str,
    cwd: &Path,
    env: &[(&str, String)],
) -> (std::process::Output, BTreeMap<String, String>) {
    let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
    let action_path = dir.join(format!("action-{n}"));
    std::fs::create_dir_all(action_path.join(".github")).expect("action dir");
    std::fs::write(action_path.join(".github/release-sums.txt"), sums).expect("sums");
    let out_file = action_path.join("out");
    std::fs::write(&out_file, "").expect("out");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(root().join(".github/scripts/install-rotor.sh"))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTION_PATH", &action_path)
        .env("GITHUB_OUTPUT", &out_file)
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TEMP", action_path.join("tmp"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash");
    let outputs = std::fs::read_to_string(&out_file)
        .expect("out")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (out, outputs)
}

fn ran(bin: &str) -> String {
    let out = std::process::Command::new(bin)
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_step_checks_the_pinned_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = "x86_64-unknown-linux-musl";
    let stable = format!("rotor-v9.9.9-{target}.tar.gz");
    let pre = format!("rotor-v10.0.0-rc.1-{target}.tar.gz");
    let (stable_bytes, stable_sum) = release_archive(dir.path(), &stable, "rotor-9.9.9");
    let (pre_bytes, pre_sum) = release_archive(dir.path(), &pre, "rotor-10.0.0-rc.1");
    let mut files = BTreeMap::new();
    files.insert(
        format!("/certifyclouds/rotor/releases/download/v9.9.9/{stable}"),
        stable_bytes.clone(),
    );
    files.insert(
        format!("/certifyclouds/rotor/releases/download/v10.0.0-rc.1/{pre}"),
        pre_bytes,
    );
    files.insert(
        format!("/a-fork/rotor/releases/download/v9.9.9/{stable}"),
        stable_bytes,
    );
    let (addr, hits) = serve(files).await;
    let base = format!("http://{addr}/certifyclouds/rotor/releases/download");
    let sums = format!(
        "# every release\n{stable_sum}  {stable}\n{}  rotor-v9.9.9-aarch64-apple-darwin.tar.gz\n{pre_sum}  {pre}\n",
        "1".repeat(64)
    );
    let cwd = dir.path().to_path_buf();
    let with_base = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut env = vec![("ROTOR_INPUT_DOWNLOAD_BASE", base.clone())];
        env.extend(extra.iter().cloned());
        env
    };

    // Default: the last version listed — a pre-release here.
    let (out, outputs) =
        tokio::task::block_in_place(|| install(dir.path(), &sums, &cwd, &with_base(&[])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(outputs["version"], "10.0.0-rc.1");
    assert_eq!(ran(&outputs["bin"]), "rotor-10.0.0-rc.1");

    // The version input picks any listed version, with or without the v.
    let (out, outputs) = tokio::task::block_in_place(|| {
        install(
            dir.path(),
            &sums,
            &cwd,
            &with_base(&[("ROTOR_INPUT_VERSION", "v9.9.9".into())]),
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ran(&outputs["bin"]), "rotor-9.9.9");
    assert!(Path::new(&outputs["bin"]).is_absolute());

    // An unlisted version is refused, naming the ones listed.
    let (out, outputs) = tokio::task::block_in_place(|| {
        install(
            dir.path(),
            &sums,
            &cwd,
            &with_base(&[("ROTOR_INPUT_VERSION", "9.9.8".into())]),
        )
    });
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("versions listed: 9.9.9 10.0.0-rc.1"),
        "{text}"
    );
    assert!(!outputs.contains_key("bin"));

    // A wrong checksum: refused.
    let wrong = format!("{}  {stable}\n", "0".repeat(64));
    let (out, outputs) =
        tokio::task::block_in_place(|| install(dir.path(), &wrong, &cwd, &with_base(&[])));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum mismatch"));
    assert!(!outputs.contains_key("bin"));

    // Nothing pinned: refused, pointing at binary-path.
    let (out, _) = tokio::task::block_in_place(|| {
        install(dir.path(), "# nothing pinned yet\n", &cwd, &with_base(&[]))
    });
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("binary-path"));

    // The runner tool cache: a verified binary is reused without downloading again.
    let cache = dir.path().join("toolcache");
    let cached = [
        ("ROTOR_INPUT_VERSION", "9.9.9".to_string()),
        ("RUNNER_TOOL_CACHE", cache.display().to_string()),
    ];
    let (out, first) =
        tokio::task::block_in_place(|| install(dir.path(), &sums, &cwd, &with_base(&cached)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let (out, second) =
        tokio::task::block_in_place(|| install(dir.path(), &sums, &cwd, &with_base(&cached)));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("from the tool cache"));
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no second download"
    );
    assert_eq!(first["bin"], second["bin"]);
    assert!(first["bin"].starts_with(&cache.display().to_string()));

    // A fork or mirror of the action (its path is …/_actions/<owner>/<repo>/<ref>) on a GitHub
    // Enterprise Server downloads its own releases from that server.
    let fork_action = dir.path().join("_work/_actions/a-fork/rotor/v9.9.9");
    std::fs::create_dir_all(fork_action.join(".github")).expect("fork action dir");
    std::fs::write(fork_action.join(".github/release-sums.txt"), &sums).expect("sums");
    let out_file = dir.path().join("fork-out");
    std::fs::write(&out_file, "").expect("out");
    let out = std::process::Command::new("bash")
        .arg(root().join(".github/scripts/install-rotor.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTION_PATH", &fork_action)
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_SERVER_URL", format!("http://{addr}"))
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TEMP", dir.path().join("fork-tmp"))
        .env("ROTOR_INPUT_VERSION", "9.9.9")
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "Downloading http://{addr}/a-fork/rotor/releases/download/v9.9.9/"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_step_works_under_a_windows_style_runner_temp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = "x86_64-unknown-linux-musl";
    let name = format!("rotor-v9.9.9-{target}.tar.gz");
    let (bytes, sum) = release_archive(dir.path(), &name, "rotor-from-windows-temp");
    let mut files = BTreeMap::new();
    files.insert(
        format!("/certifyclouds/rotor/releases/download/v9.9.9/{name}"),
        bytes,
    );
    let (addr, _) = serve(files).await;
    // `D:\a\_temp`, as the Windows runner sets it, relative to the step's directory: GNU
    // sha256sum escapes a name with a backslash (`\<hash>`), and GNU tar reads `D:` as a remote
    // host. Both would break an install that hands them the path.
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join("D:\\a\\_temp")).expect("windows-style temp");
    let sums = format!("{sum}  {name}\n");
    let env = [
        (
            "ROTOR_INPUT_DOWNLOAD_BASE",
            format!("http://{addr}/certifyclouds/rotor/releases/download"),
        ),
        ("RUNNER_TEMP", "D:\\a\\_temp".to_string()),
    ];
    let (out, outputs) =
        tokio::task::block_in_place(|| install(dir.path(), &sums, &workspace, &env));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("mismatch"), "{text}");
    let bin = &outputs["bin"];
    assert!(Path::new(bin).is_absolute(), "{bin}");
    assert!(bin.contains("D:\\a\\_temp"), "{bin}");
    assert_eq!(ran(bin), "rotor-from-windows-temp");
}

#[test]
fn a_relative_binary_path_is_made_absolute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("target/debug")).expect("dirs");
    let bin = ws.join("target/debug/rotor");
    std::fs::write(&bin, "#!/bin/sh\necho built-here\n").expect("write");
    let st = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&bin)
        .status()
        .expect("chmod");
    assert!(st.success());
    let (out, outputs) = install(
        dir.path(),
        "",
        &ws,
        &[("ROTOR_INPUT_BINARY_PATH", "target/debug/rotor".into())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(Path::new(&outputs["bin"]), bin.as_path());
    let (out, _) = install(
        dir.path(),
        "",
        &ws,
        &[("ROTOR_INPUT_BINARY_PATH", "target/debug/missing".into())],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("is not an executable file"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_step_installs_what_the_release_packaging_makes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bins = dir.path().join("bins");
    std::fs::create_dir_all(&bins).expect("bins");
    for (b, word) in [
        ("rotor", "packaged-rotor"),
        ("terraform-provider-rotor", "packaged-provider"),
    ] {
        std::fs::write(bins.join(b), format!("#!/bin/sh\necho {word}\n")).expect("write");
        let st = std::process::Command::new("chmod")
            .arg("+x")
            .arg(bins.join(b))
            .status()
            .expect("chmod");
        assert!(st.success());
    }
    let target = "x86_64-unknown-linux-musl";
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/package-release"))
        .args(["v1.2.3-rc.1", target])
        .arg(dir.path().join("dist"))
        .env("ROTOR_PACKAGE_BIN_DIR", &bins)
        .output()
        .expect("package-release");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let name = format!("rotor-v1.2.3-rc.1-{target}.tar.gz");
    assert_eq!(
        archive.file_name().and_then(|n| n.to_str()),
        Some(name.as_str())
    );
    let sum = sha2_free::sha256_hex(&archive);
    let mut files = BTreeMap::new();
    files.insert(
        format!("/releases/v1.2.3-rc.1/{name}"),
        std::fs::read(&archive).expect("archive"),
    );
    let (addr, _) = serve(files).await;
    let env = [(
        "ROTOR_INPUT_DOWNLOAD_BASE",
        format!("http://{addr}/releases"),
    )];
    let sums = format!("{sum}  {name}\n");
    let cwd = dir.path().to_path_buf();
    let (out, outputs) = tokio::task::block_in_place(|| install(dir.path(), &sums, &cwd, &env));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(outputs["version"], "1.2.3-rc.1");
    assert_eq!(ran(&outputs["bin"]), "packaged-rotor");
    let provider = Path::new(&outputs["bin"]).with_file_name("terraform-provider-rotor");
    assert_eq!(ran(&provider.display().to_string()), "packaged-provider");
}
