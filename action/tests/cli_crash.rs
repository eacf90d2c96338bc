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

/// The pending window the tests configure (short, so a re-run may treat orphans as orphans).
const PENDING: Duration = Duration::from_secs(2);

async fn world() -> World {
    let opts = EmulatorOptions {
        propagation_delay: Duration::from_millis(800),
        ..EmulatorOptions::default()
    };
    let w = World::start_with(Fixture::sample(), opts, "pending_window = \"2s\"").await;
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
async fn rotate_and_kill(w: &World, at: KillAt) -> (bool, Vec<Value>) {
    let mut cmd = w.command(&[
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
    ]);
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

fn lineage(state: &Value) -> Vec<Value> {
    passwords(state, MYAPP)
        .into_iter()
        .filter(|c| {
            let n = c["display_name"].as_str().unwrap_or("");
            n == "Secret 1" || n.starts_with("Secret 1 rotor:")
        })
        .collect()
}

fn parse_time(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().expect("time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
}

/// The re-run a scheduled job does, then the convergence checks.
async fn rerun_and_check_converged(w: &World, original_value: &str, label: &str) {
    tokio::time::sleep(PENDING + Duration::from_millis(500)).await;
    let r = w
        .run(&[
            "rotate", "--due", "--app", MYAPP, "--yes", "--output", "json",
        ])
        .await;
    assert!(r.code == 0, "{label}: re-run rotate failed:\n{r}");
    let r2 = w
        .run(&["cleanup", "--app", MYAPP, "--yes", "--output", "json"])
        .await;
    assert!(r2.code == 0, "{label}: re-run cleanup failed:\n{r2}");

    let state = w.state();
    let creds = lineage(&state);
    // Every target holds the same value ...
    let values: Vec<Option<String>> = MYAPP_TARGETS
        .iter()
        .map(|(v, s)| current_value(&state, v, s))
        .collect();
    let first = values[0].clone().expect("kv-prod has a value");
    assert!(
        values.iter().all(|v| v.as_deref() == Some(first.as_str())),
        "{label}: targets diverge after the re-run\n{r}\n{r2}"
    );
    // ... which is a credential of the lineage, tagged as such, that logs in.
    let current = creds
        .iter()
        .find(|c| c["secret_text"] == first.as_str())
        .unwrap_or_else(|| panic!("{label}: targets hold no credential of the lineage"));
    let current_key = current["key_id"].as_str().expect("key").to_owned();
    for (vault, secret) in MYAPP_TARGETS {
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
    assert!(
        logs_in(w, MYAPP, &first).await,
        "{label}: the credential the targets hold logs in"
    );
    // The old credential is not lost.
    assert!(
        creds.iter().any(|c| c["key_id"] == MYAPP_SECRET1),
        "{label}: the original credential was removed before its grace period"
    );
    assert!(
        logs_in(w, MYAPP, original_value).await,
        "{label}: the original credential still logs in"
    );
    // No orphan older than the pending window: every other rotor credential is held or young.
    let now = time::OffsetDateTime::now_utc();
    for c in &creds {
        let key = c["key_id"].as_str().expect("key");
        if key == current_key || key == MYAPP_SECRET1 {
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
    let original = passwords(&w.state(), MYAPP)
        .into_iter()
        .find(|c| c["key_id"] == MYAPP_SECRET1)
        .and_then(|c| c["secret_text"].as_str().map(str::to_owned))
        .expect("original value");
    let (killed, events) = rotate_and_kill(&w, at).await;
    eprintln!(
        "{label}: killed={killed}, {} events before the kill, last: {}",
        events.len(),
        events.last().map(|e| e.to_string()).unwrap_or_default()
    );
    if let KillAt::Event(..) = at {
        assert!(killed, "{label}: the kill point was reached");
    }
    rerun_and_check_converged(&w, &original, label).await;
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
