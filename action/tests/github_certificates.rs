//! `rotor action` with a certificate lineage: a due certificate (Key Vault AutoRenew made a
//! version the application lacks) appears in the pull-request comment, the job summary, the
//! outputs and the audit pull request exactly as secret links do, and rotates on schedule; no
//! private key, PEM or PFX material appears in anything the run writes.

#[path = "github_support.rs"]
mod support;

#[path = "cli_support/certificates.rs"]
mod certificates;

use std::collections::BTreeMap;

use certificates::{
    CERT_LINEAGE, CERT_NAME, MYAPP, assert_no_key_material, key_credentials, key_material,
    renew_in_key_vault, seed_certificate,
};
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};
use support::{FakeGitHub, Runner};

struct World {
    emu: Emulator,
    gh: FakeGitHub,
}

/// The sample tenant with MyApp's certificate lineage, renewed in Key Vault only.
async fn world() -> World {
    let emu = Emulator::start(Fixture::sample(), EmulatorOptions::default())
        .await
        .expect("emulator starts");
    seed_certificate(&emu, 12).await;
    renew_in_key_vault(&emu).await;
    let gh = FakeGitHub::start().await;
    World { emu, gh }
}

impl World {
    fn env(&self) -> BTreeMap<String, String> {
        self.emu.endpoints().env.clone()
    }

    fn write_config(&self, runner: &Runner) {
        support::write_config(&self.emu, runner, "");
    }

    /// No key material in GitHub (comments, pull requests, commits), the summary, the outputs,
    /// the report, the history files or the logs.
    fn assert_no_key_material(&self, runner: &Runner, outs: &[&support::Output]) {
        let material = key_material(&self.emu);
        assert!(!material.is_empty(), "the emulator holds the keys");
        let mut places: Vec<(String, String)> = vec![
            ("GitHub".into(), self.gh.everything_written()),
            ("job summary".into(), runner.summary()),
            ("outputs".into(), runner.outputs_raw()),
        ];
        for f in [
            "runner_temp/rotor-report.md",
            "rotor-history.jsonl",
            "audit/rotor-history.jsonl",
        ] {
            if let Ok(t) = std::fs::read_to_string(runner.path(f)) {
                places.push((f.to_string(), t));
            }
        }
        for (i, o) in outs.iter().enumerate() {
            places.push((format!("logs of run {i}"), o.logs_without_masks()));
        }
        for (place, text) in &places {
            assert_no_key_material(place, text, &material);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_request_comment_lists_the_due_certificate_and_changes_nothing() {
    let w = world().await;
    let keys_before = key_credentials(&w.emu, MYAPP);
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r);
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let bots = w.gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1, "{out:#?}");
    let body = &bots[0].body;
    let row = body
        .lines()
        .find(|l| l.contains(CERT_LINEAGE))
        .unwrap_or_else(|| panic!("no certificate row: {body}"));
    assert!(
        row.contains(&format!("{CERT_LINEAGE} (certificate")),
        "{row}"
    );
    assert!(row.contains("would rotate"), "{row}");
    // the due reason names the version Key Vault made and its thumbprint
    assert!(row.contains("newer version"), "{row}");
    assert!(row.contains(CERT_NAME), "{row}");
    let outputs = r.outputs();
    // MyApp, orders-service and consumer-app's secrets, and the certificate.
    assert_eq!(
        outputs.get("due").map(String::as_str),
        Some("4"),
        "{outputs:?}"
    );
    assert_eq!(outputs.get("rotated").map(String::as_str), Some("0"));
    assert!(r.summary().contains(CERT_LINEAGE), "{}", r.summary());
    assert_eq!(
        key_credentials(&w.emu, MYAPP),
        keys_before,
        "a pull request run must not change Azure"
    );
    w.assert_no_key_material(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_run_syncs_the_certificate_into_summary_outputs_and_the_audit_pr() {
    let w = world().await;
    let r = Runner::new(&w.gh, "schedule", &json!({"schedule": "17 3 * * *"}));
    std::fs::create_dir_all(r.path("audit")).expect("audit dir");
    w.write_config(&r);
    let out = r
        .rotor(
            &[
                "action",
                "--audit-pr",
                "--history-file",
                "audit/rotor-history.jsonl",
            ],
            &w.env(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let outputs = r.outputs();
    assert_eq!(
        outputs.get("rotated").map(String::as_str),
        Some("4"),
        "{outputs:?}"
    );
    assert_eq!(outputs.get("due").map(String::as_str), Some("4"));
    assert_eq!(outputs.get("failed").map(String::as_str), Some("0"));
    let summary = r.summary();
    let row = summary
        .lines()
        .find(|l| l.contains(CERT_LINEAGE))
        .unwrap_or_else(|| panic!("no certificate row: {summary}"));
    assert!(row.contains("(certificate "), "{row}");
    assert!(row.contains("new certificate"), "{row}");

    // Azure: the version Key Vault made is now on the application.
    let keys = key_credentials(&w.emu, MYAPP);
    assert_eq!(keys.len(), 2, "{keys:?}");

    // History and the audit pull request carry the certificate record.
    let history = std::fs::read_to_string(r.path("audit/rotor-history.jsonl")).expect("history");
    let certs: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|v| v["kind"] == "certificate")
        .collect();
    assert_eq!(certs.len(), 1, "{history}");
    assert_eq!(certs[0]["status"], "success");
    let new_thumb = certs[0]["new_thumbprint"].as_str().expect("thumbprint");
    assert!(
        keys.iter().any(|k| k["thumbprint"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(new_thumb))),
        "{keys:?}"
    );
    let pulls = w.gh.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert!(pulls[0].body.contains("**4** rotated"), "{}", pulls[0].body);
    // Records carry no lineage name: the row names the kind, the new thumbprint and the
    // Key Vault certificate.
    let row = pulls[0]
        .body
        .lines()
        .find(|l| l.contains("(certificate "))
        .unwrap_or_else(|| panic!("no certificate row: {}", pulls[0].body));
    assert!(row.contains(CERT_NAME), "{row}");
    assert!(row.contains(&new_thumb[..8].to_ascii_uppercase()), "{row}");
    let file =
        w.gh.file("rotor/audit", "audit/rotor-history.jsonl")
            .expect("committed file");
    assert!(file.contains("\"kind\":\"certificate\""), "{file}");
    w.assert_no_key_material(&r, &[&out]);
}
