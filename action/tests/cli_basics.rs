//! The `rotor` command line without Azure: help texts, usage and configuration errors (exit 2),
//! the confirmation rule, and `rotor history` over a prepared file.

mod cli_support;

use std::process::Command;

use serde_json::{Value, json};

fn rotor(dir: &std::path::Path, args: &[&str]) -> cli_support::Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    for k in [
        "ROTOR_CONFIG",
        "ROTOR_HISTORY_FILE",
        "ROTOR_HINT_CACHE",
        "RUST_LOG",
        "AZURE_CLIENT_SECRET",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("ROTOR_LOOPBACK_ONLY", "1")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rotor runs");
    cli_support::Run::from(out)
}

const GLOBAL_FLAGS: [&str; 6] = [
    "--config",
    "--output",
    "--history-file",
    "--progress",
    "--hint-cache",
    "--verbose",
];

/// Every `--flag` line of a help text has a description (on its line or the next).
fn undocumented_flags(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if !(t.starts_with("--") || (t.starts_with('-') && t.contains(", --"))) {
            continue;
        }
        let flag = t
            .split_whitespace()
            .find(|w| w.starts_with("--"))
            .unwrap_or(t)
            .to_owned();
        // Description: text after two or more spaces on the same line, or an indented next line.
        let same_line = t
            .split_once("  ")
            .is_some_and(|(_, rest)| !rest.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|n| {
            let nt = n.trim_start();
            !nt.is_empty() && !nt.starts_with('-') && n.len() - nt.len() > t.len().min(8)
        });
        if !same_line && !next_line {
            bad.push(flag);
        }
    }
    bad
}

#[test]
fn every_command_help_documents_every_flag() {
    let dir = tempfile::tempdir().expect("tmp");
    let expected: [(&str, &[&str]); 8] = [
        ("discover", &["--filter", "--expiring-within"]),
        ("match", &["--app", "--min-confidence"]),
        (
            "rotate",
            &[
                "--app",
                "--key-id",
                "--expiry-days",
                "--due",
                "--dry-run",
                "--yes",
            ],
        ),
        ("cleanup", &["--app", "--dry-run", "--yes"]),
        ("history", &["--since", "--until", "--app", "--status"]),
        ("report", &[]),
        ("demo", &["--propagation-delay", "--fixture"]),
        ("action", &["--dry-run"]),
    ];
    let top = rotor(dir.path(), &["--help"]);
    top.assert_code(0);
    for (cmd, flags) in expected {
        assert!(
            top.stdout.contains(&format!("  {cmd} ")),
            "`rotor --help` lists `{cmd}`:\n{}",
            top.stdout
        );
        let run = rotor(dir.path(), &[cmd, "--help"]);
        run.assert_code(0);
        for f in flags.iter().chain(GLOBAL_FLAGS.iter()) {
            assert!(
                run.stdout.contains(f),
                "`rotor {cmd} --help` documents {f}:\n{}",
                run.stdout
            );
        }
        let bad = undocumented_flags(&run.stdout);
        assert!(
            bad.is_empty(),
            "`rotor {cmd} --help` has flags without a description: {bad:?}\n{}",
            run.stdout
        );
    }
    let top_help = &top.stdout;
    assert!(top_help.contains("Exit codes"), "{top_help}");
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().expect("tmp");
    let hist = dir.path().join("h.jsonl");
    std::fs::write(&hist, "").expect("write");
    let h = hist.to_str().expect("utf8");
    let after = rotor(
        dir.path(),
        &["history", "--output", "json", "--history-file", h],
    );
    after.assert_code(0);
    assert_eq!(after.json(), json!({"records": []}));
    let before = rotor(
        dir.path(),
        &["--output", "json", "--history-file", h, "history"],
    );
    before.assert_code(0);
    assert_eq!(before.json(), json!({"records": []}));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = rotor(dir.path(), &["discover", "--no-such-flag"]);
    r.assert_code(2);
    let r = rotor(dir.path(), &["frobnicate"]);
    r.assert_code(2);
    let r = rotor(dir.path(), &["--output", "yaml", "discover"]);
    r.assert_code(2);
    assert!(r.stderr.contains("yaml"), "{r}");
    // --key-id needs exactly one --app: refused before anything is read.
    let r = rotor(
        dir.path(),
        &[
            "rotate",
            "--app",
            "a",
            "--app",
            "b",
            "--key-id",
            "k",
            "--dry-run",
        ],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("--key-id needs exactly one --app"), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");
    // rotate needs --app or --due.
    let r = rotor(dir.path(), &["rotate", "--yes"]);
    r.assert_code(2);
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("rotor.toml"),
        "vaults = [\"https://kv-prod.vault.azure.net/\"]\n[policy]\nmax_concurent = 3\n",
    )
    .expect("write");
    // The default rotor.toml is picked up.
    let r = rotor(dir.path(), &["discover"]);
    r.assert_code(2);
    assert!(r.stderr.starts_with("error: "), "{r}");
    assert!(r.stderr.contains("policy.max_concurent"), "{r}");
    assert!(r.stderr.contains("rotor.toml"), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[policy]\nexclusions = [\"owner:bob\"]\n",
    )
    .expect("write");
    let r = rotor(dir.path(), &["match", "--config", "bad.toml"]);
    r.assert_code(2);
    assert!(r.stderr.contains("policy.exclusions[0]"), "{r}");
    assert!(r.stderr.contains("bad.toml"), "{r}");

    std::fs::write(
        dir.path().join("typ.toml"),
        "[policy]\nmin_confidence = \"sure\"\n",
    )
    .expect("write");
    let r = rotor(
        dir.path(),
        &["--config", "typ.toml", "rotate", "--due", "--dry-run"],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("policy.min_confidence"), "{r}");

    let r = rotor(dir.path(), &["discover", "--config", "missing.toml"]);
    r.assert_code(2);
    assert!(r.stderr.contains("missing.toml"), "{r}");
    assert!(r.stderr.contains("not found"), "{r}");
}

#[test]
fn out_of_range_days_exit_2_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tmp");
    for n in ["4000000", "0", "3651"] {
        let r = rotor(
            dir.path(),
            &[
                "rotate",
                "--app",
                "a",
                "--key-id",
                "k",
                "--expiry-days",
                n,
                "--dry-run",
            ],
        );
        r.assert_code(2);
        assert!(r.stderr.contains("--expiry-days"), "{r}");
        assert!(r.stderr.contains("3650"), "{r}");
        assert!(!r.stderr.contains("panicked"), "{r}");
    }
    for (key, value) in [
        ("grace_period_days", "4000000"),
        ("rotate_before_expiry_days", "4000000"),
        ("new_secret_validity_days", "4000000"),
        ("max_concurrent", "1000000"),
    ] {
        std::fs::write(
            dir.path().join("rotor.toml"),
            format!("vaults = [\"https://kv-prod.vault.azure.net/\"]\n[policy]\n{key} = {value}\n"),
        )
        .expect("write");
        for cmd in [
            &["discover"][..],
            &["rotate", "--due", "--dry-run"],
            &["cleanup", "--dry-run"],
        ] {
            let r = rotor(dir.path(), cmd);
            r.assert_code(2);
            assert!(r.stderr.contains(&format!("policy.{key}")), "{r}");
            assert!(r.stderr.contains("rotor.toml"), "{r}");
            assert!(r.stderr.contains("out of range"), "{r}");
            assert!(r.stderr.contains("hint: "), "{r}");
        }
    }
    std::fs::write(
        dir.path().join("rotor.toml"),
        "[policy]\npending_window = \"2s\"\n",
    )
    .expect("write");
    let r = rotor(dir.path(), &["discover"]);
    r.assert_code(2);
    assert!(r.stderr.contains("policy.pending_window"), "{r}");
    assert!(r.stderr.contains("300 s"), "{r}");
}

/// Entra and Graph on a closed loopback port: `rotor discover` fails within seconds (it took
/// ~82 s of retries and then blamed the credentials), naming host:port and "connection refused".
#[test]
fn refused_endpoint_fails_in_seconds_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("https://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROTOR_LOOPBACK_ONLY", "1")
        .env("AZURE_TENANT_ID", "00000000-0000-4000-8000-000000000001")
        .env("AZURE_CLIENT_ID", "00000000-0000-4000-8000-000000000002")
        .env("AZURE_CLIENT_SECRET", "not-a-real-secret-value")
        .env("AZURE_AUTHORITY_HOST", &url)
        .env("ROTOR_GRAPH_ENDPOINT", &url)
        .current_dir(dir.path())
        .args(["discover"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rotor runs");
    let took = started.elapsed();
    let r = cli_support::Run::from(out);
    assert!(
        took < std::time::Duration::from_secs(10),
        "took {took:?}\n{r}"
    );
    r.assert_code(1);
    assert!(r.stderr.contains(&format!("127.0.0.1:{port}")), "{r}");
    assert!(r.stderr.contains("connection refused"), "{r}");
    assert!(r.stderr.contains("hint: check the endpoint URL"), "{r}");
    assert!(!r.stderr.contains("not-a-real-secret-value"), "{r}");
}

#[test]
fn changing_without_yes_outside_a_terminal_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    for args in [
        &["rotate", "--due"][..],
        &["rotate", "--app", "x", "--key-id", "y"][..],
        &["cleanup"][..],
    ] {
        let r = rotor(dir.path(), args);
        r.assert_code(2);
        assert!(r.stderr.contains("--yes"), "{r}");
        assert!(r.stderr.contains("hint: "), "{r}");
        assert!(r.stderr.contains("--dry-run"), "{r}");
    }
}

fn record(id: &str, started: &str, app: &str, status: &str) -> Value {
    json!({
        "rotation_id": id, "started_at": started, "finished_at": started, "actor": "user:t",
        "app_id": format!("id-{app}"), "app_name": app, "old_key_id": "k-old", "new_key_id": "k-new",
        "new_expires_at": "2027-11-01T00:00:00Z", "confidence": "HIGH",
        "targets": [{"vault_url": "https://kv-prod.vault.azure.net/", "secret_name": "s",
                     "version": "v1", "status": "updated", "error": null}],
        "status": status, "error": if status == "failed" { json!("writing Key Vault secret `s` (vault `kv-prod`): 403 Forbidden") } else { Value::Null }
    })
}

#[test]
fn history_filters_by_date_app_and_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines = [
        record("r1", "2026-10-01T10:00:00Z", "MyApp", "success"),
        record("r2", "2026-10-15T10:00:00Z", "billing-api", "failed"),
        record("r3", "2026-11-01T10:00:00Z", "MyApp", "failed"),
        record("r4", "2026-11-20T10:00:00Z", "orders", "skipped"),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("rotor-history.jsonl"), text).expect("write");
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["history", "--output", "json"];
        a.extend_from_slice(args);
        let r = rotor(dir.path(), &a);
        r.assert_code(0);
        r.json()["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|x| x["rotation_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&[]), ["r1", "r2", "r3", "r4"]);
    assert_eq!(ids(&["--app", "MyApp"]), ["r1", "r3"]);
    assert_eq!(ids(&["--app", "billing-*"]), ["r2"]);
    assert_eq!(ids(&["--status", "failed"]), ["r2", "r3"]);
    assert_eq!(
        ids(&["--since", "2026-10-15", "--until", "2026-11-01"]),
        ["r2", "r3"]
    );
    assert_eq!(
        ids(&["--since", "2026-11-01T00:00:00Z", "--status", "failed"]),
        ["r3"]
    );
    // Relative times (as documented: `--since -7d`) are values, not flags.
    assert_eq!(ids(&["--since", "-36500d"]), ["r1", "r2", "r3", "r4"]);
    assert!(ids(&["--until", "-36500d"]).is_empty());

    // The JSON records carry the audit record fields.
    let r = rotor(
        dir.path(),
        &["history", "--output", "json", "--app", "orders"],
    );
    let rec = &r.json()["records"][0];
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
        assert!(rec.get(k).is_some(), "history record has `{k}`: {rec}");
    }

    // The table for people names the apps and statuses.
    let r = rotor(dir.path(), &["history"]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("billing-api") && r.stdout.contains("FAILED"),
        "{r}"
    );
    assert!(r.stdout.contains("4 record(s)"), "{r}");

    // Markdown for reports.
    let r = rotor(dir.path(), &["history", "--output", "markdown"]);
    r.assert_code(0);
    assert!(r.stdout.contains('|'), "{r}");

    // Bad filters are usage errors.
    let r = rotor(dir.path(), &["history", "--since", "last tuesday"]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("--since") && r.stderr.contains("hint: "),
        "{r}"
    );
    let r = rotor(dir.path(), &["history", "--status", "great"]);
    r.assert_code(2);
    assert!(r.stderr.contains("great"), "{r}");
}

#[test]
fn a_corrupt_history_file_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = record("r1", "2026-10-01T10:00:00Z", "MyApp", "success");
    std::fs::write(
        dir.path().join("rotor-history.jsonl"),
        format!("{good}\nnot json\n"),
    )
    .expect("write");
    let r = rotor(dir.path(), &["history"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("line 2"), "{r}");
}

/// docs/cli.md documents every flag of every engine-backed command (and the global flags): a flag
/// added to the CLI without documentation fails here.
#[test]
fn docs_cli_md_documents_every_flag() {
    let dir = tempfile::tempdir().expect("tmp");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md"))
        .expect("docs/cli.md");
    let mut missing = Vec::new();
    for cmd in ["discover", "match", "rotate", "cleanup", "history", "demo"] {
        let help = rotor(dir.path(), &[cmd, "--help"]).stdout;
        for word in help.split_whitespace() {
            let flag = word.trim_end_matches(',').trim_end_matches("...");
            if flag.starts_with("--")
                && flag.len() > 2
                && flag
                    .chars()
                    .skip(2)
                    .all(|c| c.is_ascii_lowercase() || c == '-')
                && !["--help", "--version"].contains(&flag)
                && !docs.contains(&format!("`{flag}"))
            {
                missing.push(format!("{cmd} {flag}"));
            }
        }
        assert!(
            docs.contains(&format!("### `rotor {cmd}`")),
            "docs/cli.md has a section for `rotor {cmd}`"
        );
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "flags missing from docs/cli.md (document them there): {missing:?}"
    );
}
