//! Notifications after a rotation run (`[notify]` / the Action's `notify-*` inputs): a loopback
//! webhook server receives one message per run in each format (Slack, Teams Adaptive Card,
//! generic JSON) holding no secret value; a 500 is retried with backoff and then reported as a
//! warning, without changing the exit code; the webhook URLs appear in no log.

#[path = "github_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};
use support::{FakeGitHub, Runner};

/// A path segment that stands for the credential part of a webhook URL.
const HOOK_SECRET: &str = "T0HOOKSECRETxyz";

#[derive(Clone, Default)]
struct Hooks {
    received: Arc<Mutex<Vec<(String, String)>>>,
    /// Status to answer (200 by default).
    status: Arc<Mutex<u16>>,
}

async fn hooks() -> (Hooks, String) {
    let h = Hooks::default();
    *h.status.lock().expect("lock") = 200;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let h2 = h.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let h = h2.clone();
        async move {
            h.received.lock().expect("lock").push((
                uri.path().to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let s = *h.status.lock().expect("lock");
            (StatusCode::from_u16(s).expect("status"), "")
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (h, format!("http://{addr}/hooks/{HOOK_SECRET}"))
}

async fn emulator() -> Emulator {
    Emulator::start(Fixture::sample(), EmulatorOptions::default())
        .await
        .expect("emulator starts")
}

fn write_config(emu: &Emulator, runner: &Runner, notify: &str) {
    support::write_config(emu, runner, &format!("\n{notify}"));
}

fn secret_values(emu: &Emulator) -> BTreeSet<String> {
    let state = emu.state();
    let mut out = BTreeSet::new();
    for a in state["applications"].as_array().into_iter().flatten() {
        for p in a["password_credentials"].as_array().into_iter().flatten() {
            if let Some(s) = p["secret_text"].as_str() {
                out.insert(s.to_string());
            }
        }
    }
    for v in state["vaults"].as_array().into_iter().flatten() {
        for s in v["secrets"].as_array().into_iter().flatten() {
            for x in s["versions"].as_array().into_iter().flatten() {
                if let Some(val) = x["value"].as_str() {
                    out.insert(val.to_string());
                }
            }
        }
    }
    out.retain(|s| s.len() >= 8);
    out
}

fn schedule() -> Value {
    json!({"schedule": "17 3 * * *"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_message_per_run_in_each_format_and_no_secret_value() {
    let emu = emulator().await;
    let gh = FakeGitHub::start().await;
    let (h, base) = hooks().await;
    let r = Runner::new(&gh, "schedule", &schedule());
    // The generic webhook from rotor.toml (through env:), Slack and Teams from the inputs.
    write_config(
        &emu,
        &r,
        "[notify]\non = \"always\"\nwebhook = \"env:MY_HOOK\"\n",
    );
    let mut env = emu.endpoints().env.clone();
    env.insert("MY_HOOK".into(), format!("{base}/json"));
    env.insert("ROTOR_NOTIFY_SLACK".into(), format!("{base}/slack"));
    env.insert("ROTOR_NOTIFY_TEAMS".into(), format!("{base}/teams"));
    let out = r.rotor(&["action"], &env).await;
    assert!(matches!(out.code, Some(0 | 1)), "{out:#?}");
    let got = h.received.lock().expect("lock").clone();
    let paths: Vec<&str> = got
        .iter()
        .map(|(p, _)| p.rsplit('/').next().unwrap_or(""))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["json", "slack", "teams"],
        "one message each: {paths:?}"
    );
    let by: BTreeMap<&str, Value> = got
        .iter()
        .map(|(p, b)| {
            (
                p.rsplit('/').next().unwrap_or(""),
                serde_json::from_str(b).expect("json body"),
            )
        })
        .collect();
    assert!(
        by["slack"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("rotor rotation run"))
    );
    assert_eq!(
        by["teams"]["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(
        by["teams"]["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    assert_eq!(by["json"]["source"], "rotor");
    assert!(
        by["json"]["records"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    let values = secret_values(&emu);
    assert!(values.len() > 5);
    for (_, body) in &got {
        for v in &values {
            assert!(
                !body.contains(v.as_str()),
                "a secret value in a webhook payload"
            );
        }
    }
    // The URLs are masked on the runner and never logged.
    assert!(
        out.stdout.contains(&format!("::add-mask::{base}/slack")),
        "{}",
        out.stdout
    );
    let logs = out.logs_without_masks();
    assert!(!logs.contains(HOOK_SECRET), "a webhook URL in the logs");
    assert!(!out.stderr.contains(HOOK_SECRET), "a webhook URL in stderr");
    assert!(logs.contains("slack notification sent"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_500_is_retried_then_reported_without_changing_the_exit_code() {
    // The same run without notifications, for the exit code.
    let base_emu = emulator().await;
    let gh0 = FakeGitHub::start().await;
    let r0 = Runner::new(&gh0, "schedule", &schedule());
    write_config(&base_emu, &r0, "");
    let out0 = r0
        .rotor(&["action"], &base_emu.endpoints().env.clone())
        .await;

    let emu = emulator().await;
    let gh = FakeGitHub::start().await;
    let (h, base) = hooks().await;
    *h.status.lock().expect("lock") = 500;
    let r = Runner::new(&gh, "schedule", &schedule());
    write_config(&emu, &r, "[notify]\non = \"always\"\nattempts = 3\n");
    let mut env = emu.endpoints().env.clone();
    env.insert("ROTOR_NOTIFY_WEBHOOK".into(), format!("{base}/json"));
    let out = r.rotor(&["action"], &env).await;
    assert_eq!(out.code, out0.code, "the exit code is the run's: {out:#?}");
    assert_eq!(
        h.received.lock().expect("lock").len(),
        3,
        "retried: 3 attempts"
    );
    let logs = out.logs_without_masks();
    assert!(
        logs.contains("webhook notification failed: the webhook answered 500")
            && logs.contains("after 3 attempts"),
        "{logs}"
    );
    assert!(!logs.contains(HOOK_SECRET) && !out.stderr.contains(HOOK_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotor_rotate_on_the_cli_notifies_through_the_same_implementation() {
    let emu = emulator().await;
    let gh = FakeGitHub::start().await;
    let (h, base) = hooks().await;
    let r = Runner::new(&gh, "schedule", &schedule());
    write_config(
        &emu,
        &r,
        "[notify]\non = \"always\"\nslack = \"env:MY_SLACK\"\n",
    );
    let mut env = emu.endpoints().env.clone();
    env.insert("MY_SLACK".into(), format!("{base}/slack"));
    // Not on a runner: plain CLI.
    env.insert("GITHUB_ACTIONS".into(), String::new());
    let out = r.rotor(&["rotate", "--due", "--yes"], &env).await;
    assert!(matches!(out.code, Some(0 | 1)), "{out:#?}");
    let got = h.received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "one message: {got:?}");
    let body: Value = serde_json::from_str(&got[0].1).expect("json");
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.contains("rotor rotate")),
        "{body}"
    );
    for v in secret_values(&emu) {
        assert!(
            !got[0].1.contains(v.as_str()),
            "a secret value in the payload"
        );
    }
    assert!(!out.stdout.contains(HOOK_SECRET) && !out.stderr.contains(HOOK_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_that_cannot_log_in_notifies_the_failure_and_keeps_its_exit_code() {
    let emu = emulator().await;
    let gh = FakeGitHub::start().await;
    let (h, base) = hooks().await;
    let r = Runner::new(&gh, "schedule", &schedule());
    write_config(&emu, &r, "");
    let mut env = emu.endpoints().env.clone();
    for v in ["AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"] {
        env.insert(v.into(), "not-the-secret-0123456789".into());
    }
    env.insert("ROTOR_NOTIFY_WEBHOOK".into(), format!("{base}/json"));
    let out = r.rotor(&["action"], &env).await;
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert_ne!(out.code, None);
    let got = h.received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "the default `on = failure` notifies: {got:?}");
    let body: Value = serde_json::from_str(&got[0].1).expect("json");
    assert_eq!(body["outcome"], "failure");
    assert!(
        body["run_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(!got[0].1.contains("not-the-secret-0123456789"));
    for v in secret_values(&emu) {
        assert!(
            !got[0].1.contains(v.as_str()),
            "a secret value in the payload"
        );
    }
}
