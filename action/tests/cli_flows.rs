//! The `rotor` binary against the in-process emulator: JSON shapes of discover / match / rotate /
//! cleanup / history, dry runs that change nothing, exit codes, the demo, and no secret value in
//! any output.

mod cli_support;

use cli_support::*;
use rotor_emulator::{EmulatorOptions, Fixture};
use serde_json::{Value, json};

/// The parts of the emulator state a rotation changes (credentials and vault versions).
fn changeable(state: &Value) -> Value {
    let apps: Vec<Value> = state["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| json!({"app_id": a["app_id"], "passwords": a["password_credentials"]}))
        .collect();
    json!({"apps": apps, "vaults": state["vaults"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_json_shape_and_expiring_filter() {
    let w = World::start("").await;
    let r = w.run(&["discover", "--output", "json"]).await;
    r.assert_code(0);
    let v = r.json();
    let apps = v["applications"].as_array().expect("applications");
    assert_eq!(apps.len(), 9, "{r}");
    let myapp = apps
        .iter()
        .find(|a| a["app_id"] == MYAPP)
        .expect("MyApp discovered");
    for k in [
        "object_id",
        "app_id",
        "display_name",
        "secret_count",
        "certificate_count",
        "credentials",
    ] {
        assert!(myapp.get(k).is_some(), "application has `{k}`: {myapp}");
    }
    assert_eq!(myapp["display_name"], "MyApp");
    assert_eq!(myapp["secret_count"], 2);
    assert_eq!(myapp["certificate_count"], 0);
    let cred = myapp["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|c| c["key_id"] == MYAPP_SECRET1)
        .expect("Secret 1");
    assert_eq!(cred["kind"], "secret");
    assert_eq!(cred["display_name"], "Secret 1");
    assert_eq!(cred["hint"].as_str().map(str::len), Some(3), "{cred}");
    for k in ["start", "end"] {
        let t = cred[k].as_str().expect("time");
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{k} is RFC 3339: {t}"
        );
    }

    // --expiring-within keeps apps with a credential ending within N days, and only those
    // credentials: MyApp's Secret 1 (+25d) stays, Secret 2 (+335d) goes; billing-api (+200d) goes.
    let r = w
        .run(&["discover", "--expiring-within", "30", "--output", "json"])
        .await;
    r.assert_code(0);
    let v = r.json();
    let names: Vec<&str> = v["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["display_name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"MyApp"), "{names:?}");
    assert!(names.contains(&"orders-service"), "{names:?}");
    assert!(!names.contains(&"billing-api"), "{names:?}");
    let myapp = v["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["app_id"] == MYAPP)
        .expect("MyApp");
    assert_eq!(myapp["credentials"].as_array().map(Vec::len), Some(1));
    assert_eq!(myapp["secret_count"], 2, "counts stay the app's totals");

    // --filter is a glob on the display name.
    let r = w
        .run(&["discover", "--filter", "legacy-*", "--output", "json"])
        .await;
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["applications"].as_array().map(Vec::len), Some(1), "{r}");

    // The table for people.
    let r = w.run(&["discover"]).await;
    r.assert_code(0);
    assert!(
        r.stdout.contains("MyApp") && r.stdout.contains("Secret 1"),
        "{r}"
    );
    assert!(r.stdout.contains("9 application(s)"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_json_shape() {
    let w = World::start("").await;
    let r = w.run(&["match", "--output", "json"]).await;
    r.assert_code(0);
    let v = r.json();
    let matches = v["matches"].as_array().expect("matches");
    for m in matches {
        for k in [
            "app_id",
            "app_name",
            "key_id",
            "vault",
            "vault_url",
            "secret_name",
            "confidence",
            "signals",
        ] {
            assert!(m.get(k).is_some(), "match has `{k}`: {m}");
        }
        assert!(
            ["HIGH", "MEDIUM", "LOW"].contains(&m["confidence"].as_str().expect("conf")),
            "{m}"
        );
    }
    for (vault, secret) in MYAPP_TARGETS {
        let m = matches
            .iter()
            .find(|m| m["key_id"] == MYAPP_SECRET1 && m["secret_name"] == secret)
            .unwrap_or_else(|| panic!("Secret 1 matched in {vault}/{secret}:\n{r}"));
        assert_eq!(
            m["vault_url"].as_str(),
            w.emu.endpoints().vaults.get(vault).map(String::as_str),
            "{m}"
        );
        assert!(m["vault"].as_str().is_some_and(|v| !v.is_empty()), "{m}");
        assert_eq!(m["confidence"], "HIGH", "{m}");
        assert!(
            m["signals"]
                .as_array()
                .expect("signals")
                .contains(&json!("hint")),
            "{m}"
        );
    }
    // orphan-app's credential is in no vault.
    let unmatched = v["unmatched"].as_array().expect("unmatched");
    assert!(
        unmatched
            .iter()
            .any(|u| u["app_id"] == "b0000007-0000-4000-8000-000000000007"
                && u.get("key_id").is_some()),
        "{r}"
    );
    // --min-confidence filters.
    let r = w
        .run(&["match", "--min-confidence", "high", "--output", "json"])
        .await;
    r.assert_code(0);
    assert!(
        r.json()["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .all(|m| m["confidence"] == "HIGH")
    );
    let r = w.run(&["match", "--min-confidence", "sure"]).await;
    r.assert_code(2);
    // --app limits to one application.
    let r = w.run(&["match", "--app", MYAPP, "--output", "json"]).await;
    r.assert_code(0);
    assert!(
        r.json()["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .all(|m| m["app_id"] == MYAPP)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let w = World::start("").await;
    let before = changeable(&w.state());
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            MYAPP_SECRET1,
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    r.assert_code(0);
    let v = r.json();
    let recs = v["rotations"].as_array().expect("rotations");
    assert_eq!(recs.len(), 1, "{r}");
    assert_eq!(recs[0]["dry_run"], true, "{r}");
    assert_eq!(recs[0]["targets"].as_array().map(Vec::len), Some(3), "{r}");
    for t in recs[0]["targets"].as_array().expect("targets") {
        assert_eq!(t["status"], "would-update", "{t}");
    }
    let r2 = w.run(&["rotate", "--due", "--dry-run"]).await;
    r2.assert_code(0);
    assert!(r2.stdout.contains("MyApp"), "{r2}");
    let r3 = w.run(&["cleanup", "--dry-run", "--output", "json"]).await;
    r3.assert_code(0);
    let c = r3.json();
    assert!(
        c["rotations"].is_array() && c["removed_key_ids"].is_array(),
        "{r3}"
    );
    assert_eq!(changeable(&w.state()), before, "a dry run changed Azure");
    assert!(
        read(&w.history()).trim().is_empty(),
        "a dry run wrote history:\n{}",
        read(&w.history())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_change_without_yes_and_changes_nothing() {
    let w = World::start("").await;
    let before = changeable(&w.state());
    let r = w
        .run(&["rotate", "--app", MYAPP, "--key-id", MYAPP_SECRET1])
        .await;
    r.assert_code(2);
    assert!(r.stderr.contains("--yes"), "{r}");
    assert_eq!(changeable(&w.state()), before);
    let counts = w.emu.request_counts();
    assert_eq!(counts["total"], 0, "refused before any request: {counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_updates_every_vault_and_records_history() {
    let w = World::start("").await;
    let before = w.state();
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            MYAPP_SECRET1,
            "--yes",
            "--output",
            "json",
        ])
        .await;
    r.assert_code(0);
    let v = r.json();
    let rec = &v["rotations"][0];
    for k in [
        "rotation_id",
        "started_at",
        "finished_at",
        "actor",
        "app_id",
        "app_name",
        "old_key_id",
        "new_key_id",
        "new_expires_at",
        "confidence",
        "targets",
        "status",
        "error",
    ] {
        assert!(rec.get(k).is_some(), "audit record has `{k}`: {rec}");
    }
    assert_eq!(rec["status"], "success", "{r}");
    assert_eq!(rec["actor"], "user:cli-test");
    assert_eq!(rec["old_key_id"], MYAPP_SECRET1);
    let new_key = rec["new_key_id"].as_str().expect("new key").to_owned();
    let targets = rec["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 3);
    assert!(targets.iter().all(|t| t["status"] == "updated"), "{rec}");

    let after = w.state();
    let new_cred = passwords(&after, MYAPP)
        .into_iter()
        .find(|c| c["key_id"] == new_key.as_str())
        .expect("new credential in Entra");
    let new_value = new_cred["secret_text"].as_str().expect("value").to_owned();
    for (vault, secret) in MYAPP_TARGETS {
        assert_eq!(
            current_value(&after, vault, secret).as_deref(),
            Some(new_value.as_str()),
            "{vault}/{secret} holds the new credential"
        );
        let latest = versions(&after, vault, secret)
            .last()
            .cloned()
            .expect("version");
        assert_eq!(latest["tags"]["rotor-key-id"], new_key.as_str());
    }
    assert!(
        logs_in(&w, MYAPP, &new_value).await,
        "new credential logs in"
    );
    let old_value = passwords(&before, MYAPP)
        .into_iter()
        .find(|c| c["key_id"] == MYAPP_SECRET1)
        .and_then(|c| c["secret_text"].as_str().map(str::to_owned))
        .expect("old value");
    assert!(
        logs_in(&w, MYAPP, &old_value).await,
        "old credential still valid"
    );

    // One history line, and `rotor history` shows it.
    let hist = read(&w.history());
    assert_eq!(hist.lines().count(), 1, "{hist}");
    let r = w
        .run(&["history", "--output", "json", "--app", "MyApp"])
        .await;
    r.assert_code(0);
    let recs = r.json()["records"].as_array().cloned().expect("records");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["new_key_id"], new_key.as_str());
    let r = w.run(&["history", "--status", "success"]).await;
    r.assert_code(0);
    assert!(r.stdout.contains("MyApp"), "{r}");

    // A second explicit run is a second rotation; --due now finds MyApp not due.
    let r = w
        .run(&[
            "rotate",
            "--due",
            "--app",
            MYAPP,
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    r.assert_code(0);
    assert_eq!(r.json()["rotations"], json!([]), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_target_exits_1_with_hints_and_keeps_the_old_credential() {
    let w = World::start("").await;
    let before = w.state();
    w.emu
        .add_fault(json!({"method": "PUT", "path": "/secrets/myapp-dev-secret", "status": 403}))
        .expect("fault");
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            MYAPP_SECRET1,
            "--yes",
            "--output",
            "json",
        ])
        .await;
    r.assert_code(1);
    let v = r.json();
    assert_eq!(v["rotations"][0]["status"], "failed", "{r}");
    assert!(r.stderr.contains("error: "), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");
    assert!(r.stderr.contains("myapp-dev-secret"), "{r}");
    let old_value = passwords(&before, MYAPP)
        .into_iter()
        .find(|c| c["key_id"] == MYAPP_SECRET1)
        .and_then(|c| c["secret_text"].as_str().map(str::to_owned))
        .expect("old value");
    assert!(
        logs_in(&w, MYAPP, &old_value).await,
        "old credential still valid"
    );
    assert!(
        passwords(&w.state(), MYAPP)
            .iter()
            .any(|c| c["key_id"] == MYAPP_SECRET1),
        "old credential kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_in_any_output() {
    let w = World::start("").await;
    let hint_cache = w.path("hints.json");
    let hc = hint_cache.to_str().expect("utf8").to_owned();
    let mut outputs = Vec::new();
    let runs: Vec<Vec<&str>> = vec![
        vec!["discover", "--output", "json"],
        vec!["discover"],
        vec!["match", "--output", "json", "--hint-cache", &hc],
        vec!["match", "--hint-cache", &hc],
        vec![
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            MYAPP_SECRET1,
            "--yes",
            "--progress",
            "json",
            "--output",
            "json",
            "--hint-cache",
            &hc,
        ],
        vec![
            "rotate",
            "--due",
            "--yes",
            "--progress",
            "plain",
            "--hint-cache",
            &hc,
        ],
        vec!["cleanup", "--dry-run", "--output", "json"],
        vec!["history", "--output", "json"],
        vec!["history", "--output", "markdown"],
        vec!["rotate", "--due", "--dry-run", "--output", "markdown"],
    ];
    for args in &runs {
        let mut cmd = w.command(args);
        cmd.env("RUST_LOG", "trace");
        let r = w.run_cmd(cmd).await;
        assert!(r.code == 0 || r.code == 1, "{args:?}: {r}");
        outputs.push((format!("{args:?}"), r));
    }
    // `--progress json` printed one parseable event per line with the documented fields.
    let (_, rotate_run) = &outputs[4];
    let events: Vec<Value> = rotate_run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("progress event is JSON"))
        .collect();
    assert!(events.len() >= 5, "{rotate_run}");
    for e in &events {
        for k in [
            "rotation_id",
            "app_id",
            "app_name",
            "step",
            "state",
            "target",
            "message",
            "status",
        ] {
            assert!(e.get(k).is_some(), "event has `{k}`: {e}");
        }
    }
    assert!(
        events
            .iter()
            .any(|e| e["step"] == "update-target" && e["target"]["secret_name"] == "myapp-secret")
    );
    assert!(
        events.iter().any(|e| e["status"] == "success"),
        "{rotate_run}"
    );
    // Every value the emulator ever held (before and after the rotations).
    let secrets = secret_values(&w.state());
    assert!(secrets.len() > 10, "the state lists values");
    for (name, r) in &outputs {
        assert_no_secret(&format!("stdout of {name}"), &r.stdout, &secrets);
        assert_no_secret(&format!("stderr of {name}"), &r.stderr, &secrets);
    }
    assert_no_secret("the history file", &read(&w.history()), &secrets);
    let cache = read(&hint_cache);
    assert!(cache.len() > 10, "the hint cache was written: {cache}");
    assert_no_secret("the hint cache", &cache, &secrets);
    assert!(
        outputs
            .iter()
            .any(|(_, r)| r.stderr.contains("TRACE") || r.stderr.contains("DEBUG")),
        "RUST_LOG=trace produced logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_vaults_configured_is_a_usage_error() {
    let w = World::start("").await;
    std::fs::write(w.path("empty.toml"), "[policy]\n").expect("write");
    let r = w.run(&["match", "--config", "empty.toml"]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("no vaults configured"), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_graph_permission_names_it() {
    // Log in as the read-only principal: rotating needs Application.ReadWrite.All. It is given
    // write access to the vaults here, so the preflight's vault write-access check passes and
    // Graph refuses the new password.
    let mut sample = serde_json::to_value(Fixture::sample()).expect("fixture json");
    for p in sample["principals"].as_array_mut().expect("principals") {
        if p["display_name"] == "rotor-readonly" {
            p["vault_roles"] = json!({"*": "Key Vault Secrets Officer"});
        }
    }
    let fixture = Fixture::from_json(&sample.to_string()).expect("fixture");
    let w = World::start_with(fixture, EmulatorOptions::default(), "").await;
    let state = w.state();
    let ro = state["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .find(|p| p["display_name"] == "rotor-readonly")
        .cloned()
        .expect("read-only principal");
    let mut cmd = w.command(&["rotate", "--app", MYAPP, "--key-id", MYAPP_SECRET1, "--yes"]);
    cmd.env("AZURE_CLIENT_ID", ro["client_id"].as_str().expect("id"))
        .env(
            "AZURE_CLIENT_SECRET",
            ro["client_secret"].as_str().expect("secret"),
        );
    let r = w.run_cmd(cmd).await;
    r.assert_code(1);
    assert!(r.stderr.contains("Application.ReadWrite.All"), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("tmp");
    // The demo is a sandbox: it ignores the user's rotor.toml (even a broken one).
    std::fs::write(dir.path().join("rotor.toml"), "[policy]\nnot_a_key = 1\n").expect("write");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.args(["demo", "--propagation-delay", "1", "--progress", "plain"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("ROTOR_HISTORY_FILE")
        .env_remove("ROTOR_CONFIG")
        .env("ROTOR_LOOPBACK_ONLY", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("demo finishes")
        .expect("demo runs");
    let r = Run::from(out);
    r.assert_code(0);
    for step in 1..=7 {
        assert!(r.stdout.contains(&format!("step {step}/7")), "{r}");
    }
    assert!(r.stdout.contains("holds the new credential"), "{r}");
    // The certificate lineage: created in Key Vault at start, rotated, accepted by MyApp.
    assert!(
        r.stdout
            .contains("Key Vault certificate kv-prod/myapp-signing created"),
        "{r}"
    );
    assert!(
        r.stdout.contains("MyApp accepts the new certificate"),
        "{r}"
    );
    assert!(r.stdout.contains("MyApp signing (certificate "), "{r}");
    for marker in ["-----BEGIN", "PRIVATE KEY"] {
        assert!(
            !r.stdout.contains(marker) && !r.stderr.contains(marker),
            "{r}"
        );
    }
    assert!(r.stdout.contains("logs in"), "{r}");
    assert!(!r.stdout.contains('✗'), "{r}");
    assert!(
        r.stdout.contains("kv-prod") && r.stdout.contains("kv-staging"),
        "{r}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "demo took {:?}",
        started.elapsed()
    );
    // The demo wrote nothing into the working directory (rotor.toml is the test's own).
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
}

/// In a terminal, rotate shows the plan and asks; "n" changes nothing, "y" rotates. The terminal
/// is a pseudo-terminal from util-linux `script` (skipped when it is not installed), so the live
/// progress display (indicatif) runs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_terminal_rotate_asks_first() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: util-linux `script` is not installed");
        return;
    }
    let w = World::start("").await;
    let before = changeable(&w.state());
    let line = format!(
        "{} rotate --app {MYAPP} --key-id {MYAPP_SECRET1}",
        env!("CARGO_BIN_EXE_rotor")
    );
    let ask = |answer: &'static str| {
        let mut c = tokio::process::Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .envs(&w.emu.endpoints().env)
            .env("AZURE_USE_CLI", "false")
            .env("AZURE_USE_MSI", "false")
            .env("ROTOR_LOOPBACK_ONLY", "1")
            .env_remove("RUST_LOG")
            .current_dir(w.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        (c, answer)
    };
    for (answer, changes) in [("n\n", false), ("y\n", true)] {
        let (mut c, answer) = ask(answer);
        let mut child = c.spawn().expect("script runs");
        let mut stdin = child.stdin.take().expect("stdin");
        // Answer once the prompt can have been shown; the pty buffers the line until read.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        use tokio::io::AsyncWriteExt;
        stdin.write_all(answer.as_bytes()).await.expect("answer");
        stdin.flush().await.expect("flush");
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .expect("finishes")
                .expect("output");
        let r = Run::from(out);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("[y/N]"), "the question was asked:\n{r}");
        assert!(
            all.contains("myapp-secret"),
            "the plan lists the targets:\n{r}"
        );
        if changes {
            assert_eq!(r.code, 0, "{r}");
            assert!(all.contains("rotated"), "{r}");
            assert_ne!(changeable(&w.state()), before, "answering y rotated");
        } else {
            assert!(all.contains("Aborted; nothing changed."), "{r}");
            assert_eq!(
                changeable(&w.state()),
                before,
                "answering n changed nothing"
            );
        }
    }
}

/// `rotate --app A --app B` rotates every linked lineage of those apps, reading only those apps
/// (no tenant-wide listing), and refuses an app with nothing linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_rotation_of_named_apps() {
    let w = World::start("").await;
    let orders = "b0000003-0000-4000-8000-000000000003";
    let r = w
        .run(&[
            "rotate", "--app", MYAPP, "--app", orders, "--yes", "--output", "json",
        ])
        .await;
    r.assert_code(0);
    let recs = r.json()["rotations"]
        .as_array()
        .cloned()
        .expect("rotations");
    let mut apps: Vec<&str> = recs
        .iter()
        .map(|x| x["app_name"].as_str().expect("name"))
        .collect();
    apps.sort();
    assert_eq!(apps, ["MyApp", "orders-service"], "{r}");
    assert!(recs.iter().all(|x| x["status"] == "success"), "{r}");
    let counts = w.emu.request_counts();
    assert_eq!(
        counts["by_route"]["GET /v1.0/applications"]
            .as_u64()
            .unwrap_or(0),
        0,
        "bulk rotation of named apps must not list the whole tenant: {counts}"
    );
    // An app with nothing linked at the policy minimum is refused, naming the fix.
    let r = w
        .run(&[
            "rotate",
            "--app",
            "b0000005-0000-4000-8000-000000000005",
            "--yes",
        ])
        .await;
    r.assert_code(1);
    assert!(r.stderr.contains("rotor match --app"), "{r}");
}

/// `cleanup` removes the previous credential once the grace period has passed (0 days here) —
/// never while a vault still holds it — and records what it removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_after_grace_never_removes_what_a_vault_holds() {
    let w = World::start("grace_period_days = 0").await;
    // kv-dev refuses the write: it keeps holding the old credential.
    w.emu
        .add_fault(json!({"method": "PUT", "path": "/secrets/myapp-dev-secret", "status": 403}))
        .expect("fault");
    let r = w
        .run(&["rotate", "--app", MYAPP, "--key-id", MYAPP_SECRET1, "--yes"])
        .await;
    r.assert_code(1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = w
        .run(&["cleanup", "--app", MYAPP, "--yes", "--output", "json"])
        .await;
    r.assert_code(0);
    let v = r.json();
    assert!(
        !v["removed_key_ids"]
            .as_array()
            .expect("removed")
            .contains(&json!(MYAPP_SECRET1)),
        "removed a credential kv-dev holds: {r}"
    );
    let kept = v["links"][0]["kept"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        kept.iter().any(|k| k["key_id"] == MYAPP_SECRET1
            && k["reason"]
                .as_str()
                .is_some_and(|s| s.contains("myapp-dev-secret"))),
        "kept with the reason naming the vault secret: {r}"
    );
    assert!(
        passwords(&w.state(), MYAPP)
            .iter()
            .any(|c| c["key_id"] == MYAPP_SECRET1)
    );

    // Fixed: the re-run finishes the rotation, then cleanup removes the old credential.
    w.emu.clear_faults();
    let r = w
        .run(&[
            "rotate", "--due", "--app", MYAPP, "--yes", "--output", "json",
        ])
        .await;
    r.assert_code(0);
    let current = current_value(&w.state(), "kv-dev", "myapp-dev-secret");
    assert_eq!(
        current,
        current_value(&w.state(), "kv-prod", "myapp-secret"),
        "{r}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = w
        .run(&["cleanup", "--app", MYAPP, "--yes", "--output", "json"])
        .await;
    r.assert_code(0);
    let v = r.json();
    assert!(
        v["removed_key_ids"]
            .as_array()
            .expect("removed")
            .contains(&json!(MYAPP_SECRET1)),
        "{r}"
    );
    assert!(
        !passwords(&w.state(), MYAPP)
            .iter()
            .any(|c| c["key_id"] == MYAPP_SECRET1),
        "old credential removed from Entra"
    );
    // The credential the vaults hold still logs in; Secret 2 (another lineage) is untouched.
    let held = current.expect("value");
    assert!(logs_in(&w, MYAPP, &held).await);
    assert!(
        passwords(&w.state(), MYAPP)
            .iter()
            .any(|c| c["display_name"] == "Secret 2")
    );
    // The removal is in the history.
    let hist = read(&w.history());
    assert!(
        hist.contains(MYAPP_SECRET1) && hist.contains("removed_key_ids"),
        "{hist}"
    );
}

/// An excluded app (`name:legacy-*`) is reported as excluded and never touched, whether asked by
/// key id or by app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_apps_are_reported_never_rotated() {
    let w = World::start("").await;
    let legacy = "b0000008-0000-4000-8000-000000000008";
    let before = changeable(&w.state());
    for args in [
        vec![
            "rotate",
            "--app",
            legacy,
            "--key-id",
            "c0000008-0000-4000-8000-000000000801",
            "--yes",
            "--output",
            "json",
        ],
        vec!["rotate", "--app", legacy, "--yes", "--output", "json"],
    ] {
        let r = w.run(&args).await;
        r.assert_code(0);
        let rec = &r.json()["rotations"][0];
        assert_eq!(rec["status"], "excluded", "{r}");
        assert!(
            rec["error"]
                .as_str()
                .is_some_and(|e| e.contains("name:legacy-*")),
            "{r}"
        );
    }
    assert_eq!(
        changeable(&w.state()),
        before,
        "an excluded app was changed"
    );
    let hist = read(&w.history());
    assert_eq!(hist.lines().count(), 2, "{hist}");
    assert!(hist.contains("\"excluded\""), "{hist}");
}

/// With `--hint-cache`, a second `match` reads no secret value at all (only listings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_cache_means_no_value_is_read_twice() {
    let w = World::start("").await;
    let value_reads = |counts: &Value| -> u64 {
        counts["by_route"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(route, _)| {
                        route.starts_with("GET /secrets/{name}") && !route.ends_with("/versions")
                    })
                    .map(|(_, n)| n.as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let r = w
        .run(&["match", "--hint-cache", "hints.json", "--output", "json"])
        .await;
    r.assert_code(0);
    let first = value_reads(&w.emu.request_counts());
    assert!(
        first > 0,
        "the first run reads values for hints: {}",
        w.emu.request_counts()
    );
    let r2 = w
        .run(&["match", "--hint-cache", "hints.json", "--output", "json"])
        .await;
    r2.assert_code(0);
    let second = value_reads(&w.emu.request_counts()) - first;
    assert_eq!(
        second,
        0,
        "values read on the second run: {}",
        w.emu.request_counts()
    );
    assert_eq!(
        r.json()["matches"],
        r2.json()["matches"],
        "same matches from the cache"
    );
}

/// #12 (8): one vault rotor cannot list used to abort the whole `rotate --due` (no link rotated,
/// no JSON). Now the other vaults' links rotate, the JSON names the vault, and the exit is 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unlistable_vault_fails_only_what_it_holds() {
    let w = World::start("").await;
    w.emu
        .add_fault(
            json!({"method": "GET", "path": "^/secrets/?$", "vault": "kv-dev", "status": 403}),
        )
        .expect("fault");
    let r = w
        .run(&["rotate", "--due", "--yes", "--output", "json"])
        .await;
    r.assert_code(1);
    let v = r.json();
    let errors = v["vault_errors"].as_array().expect("vault_errors");
    assert_eq!(errors.len(), 1, "{r}");
    let kv_dev = &w.emu.endpoints().vaults["kv-dev"];
    assert_eq!(
        errors[0]["vault_url"].as_str(),
        Some(kv_dev.as_str()),
        "{r}"
    );
    let rotations = v["rotations"].as_array().expect("rotations");
    assert!(
        rotations.iter().any(|x| x["status"] == "success"),
        "the other vaults' links rotated: {r}"
    );
    assert!(r.stderr.contains("not matched or rotated"), "{r}");
}
