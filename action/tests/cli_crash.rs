//! A `rotor rotate` process killed with SIGKILL (kill -9) at several points of the protocol, then
//! a re-run (`rotate --due` + `cleanup`, what a scheduled job does) → converged: every target
//! holds the same credential, it logs in, no orphan outlives the pending window, and the old
//! credential is not lost.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::*;
use rotor_emulator::{EmulatorOptions, Fixture};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The default pending window (`rotor.toml` sets none). Instead of waiting it out, the re-run
/// ages the emulated tenant past it, so the killed run's credentials look as old as a real
/// scheduled re-run would find them.
const PENDING: Duration = Duration::from_secs(3600);

async fn world() -> World {
    let opts = EmulatorOptions {
        propagation_delay: Duration::from_millis(800),
        ..EmulatorOptions::default()
    };
    let w = World::start_with(Fixture::sample(), opts, "").await;
    w.emu.set_latency(Duration::from_millis(30));
    w
}

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After the n-th progress event with this step and state.
    Event(&'static str, &'static str, usize),
    /// After a delay.
    After(Duration),
}

/// Starts `rotor rotate` for MyApp's Secret 1 and kills it (SIGKILL) at `at`. Returns whether
/// the kill happened before the process exited by itself, and the events seen.
async fn rotate_and_kill(w: &World, args: &[&str], at: KillAt) -> (bool, Vec<Value>) {
    let mut cmd = w.command(args);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn rotor");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    let mut events = Vec::new();
    let mut seen = 0usize;
    let mut killed = false;
    loop {
        let wait = match at {
            KillAt::After(d) => d.saturating_sub(started.elapsed()),
            KillAt::Event(..) => Duration::from_secs(60),
        };
        tokio::select! {
            line = lines.next_line() => {
                match line {
                    Ok(Some(l)) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&l) {
                            if let KillAt::Event(step, state, n) = at
                                && v["step"] == step && v["state"] == state
                            {
                                seen += 1;
                                if seen == n {
                                    child.start_kill().expect("kill -9");
                                    killed = true;
                                    events.push(v);
                                    break;
                                }
                            }
                            events.push(v);
                        }
                    }
                    _ => break, // exited
                }
            }
            _ = tokio::time::sleep(wait), if matches!(at, KillAt::After(_)) => {
                child.start_kill().expect("kill -9");
                killed = true;
                break;
            }
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("child exits")
        .expect("wait");
    if killed {
        // SIGKILL, unless it had just finished on its own.
        use std::os::unix::process::ExitStatusExt;
        killed = status.signal() == Some(9);
    }
    (killed, events)
}

/// One credential lineage whose convergence is checked.
struct Lineage {
    app_id: &'static str,
    name: &'static str,
    original_key: &'static str,
    targets: &'static [(&'static str, &'static str)],
}

const MYAPP_SECRET1_LINEAGE: Lineage = Lineage {
    app_id: MYAPP,
    name: "Secret 1",
    original_key: MYAPP_SECRET1,
    targets: &MYAPP_TARGETS,
};

fn lineage(state: &Value, l: &Lineage) -> Vec<Value> {
    passwords(state, l.app_id)
        .into_iter()
        .filter(|c| {
            let n = c["display_name"].as_str().unwrap_or("");
            n == l.name || n.starts_with(&format!("{} rotor:", l.name))
        })
        .collect()
}

fn original_value(w: &World, l: &Lineage) -> String {
    passwords(&w.state(), l.app_id)
        .into_iter()
        .find(|c| c["key_id"] == l.original_key)
        .and_then(|c| c["secret_text"].as_str().map(str::to_owned))
        .expect("original value")
}

fn parse_time(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().expect("time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
}

/// The re-run a scheduled job does: `rotate --due` then `cleanup` (of `apps`, or everything).
async fn rerun(w: &World, apps: &[&str], label: &str) -> String {
    // the next scheduled run comes after the pending window: what the killed run created is
    // now older than the window (an orphan unless a target holds it)
    w.emu.age(PENDING + Duration::from_secs(60));
    let mut rotate = vec!["rotate", "--due", "--yes", "--output", "json"];
    let mut cleanup = vec!["cleanup", "--yes", "--output", "json"];
    for a in apps {
        rotate.extend(["--app", a]);
        cleanup.extend(["--app", a]);
    }
    let r = w.run(&rotate).await;
    assert!(r.code == 0, "{label}: re-run rotate failed:\n{r}");
    let r2 = w.run(&cleanup).await;
    assert!(r2.code == 0, "{label}: re-run cleanup failed:\n{r2}");
    format!("{r}\n{r2}")
}

/// Converged: every target holds the same credential of the lineage, tagged with its key id; it
/// logs in; the original credential is kept and still logs in; no orphan older than the pending
/// window remains.
async fn check_converged(w: &World, l: &Lineage, original_value: &str, label: &str, runs: &str) {
    let state = w.state();
    let creds = lineage(&state, l);
    let values: Vec<Option<String>> = l
        .targets
        .iter()
        .map(|(v, s)| current_value(&state, v, s))
        .collect();
    let first = values[0].clone().expect("the first target has a value");
    assert!(
        values.iter().all(|v| v.as_deref() == Some(first.as_str())),
        "{label}: {} targets diverge after the re-run\n{runs}",
        l.name
    );
    let current = creds
        .iter()
        .find(|c| c["secret_text"] == first.as_str())
        .unwrap_or_else(|| panic!("{label}: targets hold no credential of lineage {}", l.name));
    let current_key = current["key_id"].as_str().expect("key").to_owned();
    if current_key != l.original_key {
        for (vault, secret) in l.targets {
            let latest = versions(&state, vault, secret)
                .last()
                .cloned()
                .expect("version");
            assert_eq!(
                latest["tags"]["rotor-key-id"],
                current_key.as_str(),
                "{label}: {vault}/{secret} tagged with the current key"
            );
        }
    }
    assert!(
        logs_in(w, l.app_id, &first).await,
        "{label}: the credential the targets of {} hold logs in",
        l.name
    );
    assert!(
        creds.iter().any(|c| c["key_id"] == l.original_key),
        "{label}: the original credential of {} was removed before its grace period",
        l.name
    );
    assert!(
        logs_in(w, l.app_id, original_value).await,
        "{label}: the original credential of {} still logs in",
        l.name
    );
    let now = time::OffsetDateTime::now_utc();
    for c in &creds {
        let key = c["key_id"].as_str().expect("key");
        if key == current_key || key == l.original_key {
            continue;
        }
        let age = now - parse_time(&c["start"]);
        assert!(
            age < time::Duration::try_from(PENDING).expect("dur"),
            "{label}: orphan credential {key} ({}) survived the re-run (age {age})",
            c["display_name"]
        );
    }
}

async fn scenario(at: KillAt, label: &str) {
    let w = world().await;
    let l = MYAPP_SECRET1_LINEAGE;
    let original = original_value(&w, &l);
    let args = [
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
    ];
    let (killed, events) = rotate_and_kill(&w, &args, at).await;
    eprintln!(
        "{label}: killed={killed}, {} events before the kill, last: {}",
        events.len(),
        events.last().map(|e| e.to_string()).unwrap_or_default()
    );
    if let KillAt::Event(..) = at {
        assert!(killed, "{label}: the kill point was reached");
    }
    let runs = rerun(&w, &[MYAPP], label).await;
    check_converged(&w, &l, &original, label, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_preflight_then_rerun_converges() {
    scenario(KillAt::Event("preflight", "done", 1), "after preflight").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_create_then_rerun_converges() {
    scenario(KillAt::Event("create", "done", 1), "after create").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_verifying_then_rerun_converges() {
    scenario(KillAt::Event("verify", "started", 1), "during verify").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_first_target_then_rerun_converges() {
    scenario(KillAt::Event("update-target", "done", 1), "after 1 target").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_second_target_then_rerun_converges() {
    scenario(KillAt::Event("update-target", "done", 2), "after 2 targets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_random_delays_then_rerun_converges() {
    for _ in 0..3 {
        let ms = rand::random_range(150..2500u64);
        scenario(
            KillAt::After(Duration::from_millis(ms)),
            &format!("after {ms} ms"),
        )
        .await;
    }
}

/// A scheduled run (`rotate --due`: MyApp, orders-service and consumer-app — capped at 2
/// passwords — rotating concurrently) killed mid-way, then the next scheduled run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_scheduled_run_then_next_run_converges() {
    let lineages = [
        MYAPP_SECRET1_LINEAGE,
        Lineage {
            app_id: "b0000003-0000-4000-8000-000000000003",
            name: "client secret",
            original_key: "c0000003-0000-4000-8000-000000000301",
            targets: &[("kv-prod", "orders-service-client-secret")],
        },
        Lineage {
            app_id: "b0000009-0000-4000-8000-000000000009",
            name: "current",
            original_key: "c0000009-0000-4000-8000-000000000902",
            targets: &[("kv-prod", "consumer-app-client-secret")],
        },
    ];
    for at in [
        KillAt::Event("update-target", "done", 2),
        KillAt::Event("create", "done", 2),
    ] {
        let w = world().await;
        let originals: Vec<String> = lineages.iter().map(|l| original_value(&w, l)).collect();
        let args = [
            "rotate",
            "--due",
            "--yes",
            "--progress",
            "json",
            "--output",
            "json",
        ];
        let (killed, events) = rotate_and_kill(&w, &args, at).await;
        let label = format!("scheduled run killed at {at:?}");
        eprintln!("{label}: killed={killed}, {} events", events.len());
        assert!(killed, "{label}: the kill point was reached");
        let runs = rerun(&w, &[], &label).await;
        for (l, original) in lineages.iter().zip(&originals) {
            check_converged(&w, l, original, &label, &runs).await;
        }
    }
}
