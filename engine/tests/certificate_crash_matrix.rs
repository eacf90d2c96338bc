//! The crash-and-fault enumeration for the certificate protocol (docs/protocol.md,
//! "Certificates"): for each shape, every request k of a clean run is in turn the point where
//! the run stops (everything from k on hangs, never applied; the future is dropped), fails (k
//! answered 500, not applied) or is applied and then fails (500, dropped connection, no answer).
//! Then a new engine re-runs the same call, a second re-run must change nothing, and cleanup
//! runs past the grace period. After every stage, from the emulator's state: every Key Vault
//! certificate's current version signs in (a real token request with a client assertion signed
//! through Key Vault), the version that worked before still signs in until cleanup, nothing
//! outside the lineage changed (byte-for-byte), `tokenEncryptionKeyId` is kept, and no request
//! made more than one new Key Vault version.
//!
//! - `cargo test -p rotor-engine --test certificate_crash_matrix` runs a subset in about a
//!   minute: every k (but the first of each Key Vault challenge pair) of the rotation × `fail`
//!   and `applied-then-500`, and of onboarding × `applied-then-500`.
//! - `cargo test -p rotor-engine --test certificate_crash_matrix -- --ignored --nocapture` runs
//!   every mode and prints the table.

mod common;

use azure_security_keyvault_certificates::models::KeyType;
use common::certs::*;
use common::*;
use rotor_engine::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALL_BOUND: Duration = Duration::from_secs(60);
const QUIET: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    /// The app lacks the certificate: onboarding by PATCH.
    Onboard,
    /// A forced rotation (Terraform-style, with `replace_key_id`): new version, addKey.
    Rotate,
    /// Key Vault made a version on its own (AutoRenew): sync by addKey.
    Sync,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Onboard, Shape::Rotate, Shape::Sync];
    /// New Key Vault versions one request may make.
    fn new_versions(self) -> usize {
        match self {
            Shape::Rotate => 1,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Stop,
    Fail,
    AppliedThen500,
    AppliedThenDrop,
    AppliedThenTimeout,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Stop,
        Mode::Fail,
        Mode::AppliedThen500,
        Mode::AppliedThenDrop,
        Mode::AppliedThenTimeout,
    ];
    fn fault(self, k: usize) -> Value {
        let before = k - 1;
        match self {
            Mode::Stop => json!({"skip": before, "hang": true}),
            Mode::Fail => json!({"skip": before, "count": 1, "status": 500}),
            Mode::AppliedThen500 => {
                json!({"skip": before, "count": 1, "status": 500, "after": true})
            }
            Mode::AppliedThenDrop => {
                json!({"skip": before, "count": 1, "drop": true, "after": true})
            }
            Mode::AppliedThenTimeout => {
                json!({"skip": before, "count": 1, "hang": true, "after": true})
            }
        }
    }
    fn hangs(self) -> bool {
        matches!(self, Mode::Stop | Mode::AppliedThenTimeout)
    }
}

struct Setup {
    env: Env,
    opts: RotateOptions,
    /// The version that signed in before the run (none for onboarding): (version, DER).
    working: Option<(String, Vec<u8>)>,
    /// Key credentials outside the lineage, as Graph returned them.
    outside: BTreeMap<String, Value>,
    versions_before: usize,
    /// New Key Vault versions the request may make.
    new_allowed: usize,
    token_key: Option<String>,
}

fn engine(env: &Env, offset: time::Duration) -> Engine {
    let mut o = env.options();
    o.clock = Some(Arc::new(move || time::OffsetDateTime::now_utc() + offset));
    o.scope_vaults = env.vaults();
    o.verify_timeout = Duration::from_secs(5);
    Engine::new(o).expect("engine")
}

async fn setup(shape: Shape) -> Setup {
    let env = start(fixture(fixture_json())).await;
    let (v1, der1) = env.create_cert(CERT, KeyType::Rsa).await;
    let mut opts = RotateOptions::default();
    let mut working = None;
    let mut token_key = None;
    if shape != Shape::Onboard {
        let rec = engine(&env, time::Duration::ZERO)
            .rotate_certificate(&env.cert_link(), &Policy::default(), &opts, &NoProgress)
            .await;
        assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
        working = Some((v1, der1));
        // Entra encrypts tokens with the onboarded key: never removed
        env.patch_app(json!({"tokenEncryptionKeyId": rec.new_key_id}))
            .await;
        token_key = rec.new_key_id.clone();
        if shape == Shape::Rotate {
            opts = RotateOptions {
                force: true,
                replace_key_id: rec.new_key_id.clone(),
                ..Default::default()
            };
        }
    }
    if shape == Shape::Sync {
        env.create_cert(CERT, KeyType::Rsa).await;
    }
    let outside = entries(&env.raw_keys().await)
        .into_iter()
        .filter(|(_, e)| {
            let n = e["displayName"].as_str().unwrap_or("");
            !(n == "main" || n.starts_with("main rotor:"))
        })
        .collect();
    let versions_before = env.cert_versions(CERT).len();
    env.emu.clear_requests();
    Setup {
        env,
        opts,
        working,
        outside,
        versions_before,
        new_allowed: shape.new_versions(),
        token_key,
    }
}

async fn run_until_blocked<F: std::future::Future<Output = AuditRecord>>(
    env: &Env,
    hangs: bool,
    fut: F,
) -> Option<String> {
    let watch = async {
        let mut last = (usize::MAX, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let l = env.emu.request_log()["log"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if l.len() != last.0 {
                last = (l.len(), Instant::now());
            }
            if hangs && l.iter().any(|e| e["status"] == "hung") && last.1.elapsed() >= QUIET {
                return;
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(CALL_BOUND, fut) => r.ok().map(|r| format!("{}", r.status)),
        _ = watch => Some("stopped".into()),
    }
}

fn routes(env: &Env) -> Vec<String> {
    env.emu.request_log()["log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let v = e["vault"]
                .as_str()
                .map(|v| format!(" @{v}"))
                .unwrap_or_default();
            format!("{}{v}", e["route"].as_str().unwrap_or(""))
        })
        .collect()
}

/// The invariants at one stage; violations as sentences.
async fn check(s: &Setup, stage: &str, converged: bool, before_cleanup: bool) -> Vec<String> {
    let env = &s.env;
    let mut v = Vec::new();
    let now = entries(&env.raw_keys().await);
    for (id, e) in &s.outside {
        if now.get(id) != Some(e) {
            v.push(format!(
                "{stage}: key credential {id} outside the lineage changed"
            ));
        }
    }
    if let Some(t) = &s.token_key
        && !now.contains_key(t)
    {
        v.push(format!("{stage}: the tokenEncryptionKeyId key was removed"));
    }
    if before_cleanup
        && let Some((ver, der)) = &s.working
        && !env.cert_signs_in(CERTAPP, CERT, ver, der).await
    {
        v.push(format!(
            "{stage}: the version that worked before no longer signs in"
        ));
    }
    let versions = env.cert_versions(CERT);
    if versions.len() > s.versions_before + s.new_allowed {
        v.push(format!(
            "{stage}: {} new Key Vault versions for one request",
            versions.len() - s.versions_before
        ));
    }
    if converged {
        // every certificate's current version signs in
        let cur = engine(env, time::Duration::ZERO)
            .inspect_certificate_link(&env.cert_link(), &Policy::default())
            .await;
        match cur {
            Ok(st) => {
                let ver = st
                    .certificate_versions
                    .values()
                    .next()
                    .cloned()
                    .unwrap_or_default();
                let der = env.cert_der(CERT, &ver).await;
                if !env.cert_signs_in(CERTAPP, CERT, &ver, &der).await {
                    v.push(format!(
                        "{stage}: the current version {ver} does not sign in"
                    ));
                }
                if st.rotation_due {
                    v.push(format!("{stage}: still due: {:?}", st.due_reason));
                }
            }
            Err(e) => v.push(format!("{stage}: inspect failed: {e}")),
        }
    }
    v
}

#[derive(Debug)]
struct TrialResult {
    shape: Shape,
    k: usize,
    mode: Mode,
    route: String,
    unknown: Option<String>,
    violations: Vec<String>,
}

async fn trial(shape: Shape, k: usize, mode: Mode) -> TrialResult {
    let s = setup(shape).await;
    let env = &s.env;
    let link = env.cert_link();
    let p = Policy::default();
    env.emu.add_fault(mode.fault(k)).expect("fault");
    let e1 = engine(env, time::Duration::ZERO);
    let first = run_until_blocked(
        env,
        mode.hangs(),
        e1.rotate_certificate(&link, &p, &s.opts, &NoProgress),
    )
    .await;
    drop(e1);
    env.emu.clear_faults();
    let route = routes(env).get(k - 1).cloned().unwrap_or_default();
    let mut r = TrialResult {
        shape,
        k,
        mode,
        route,
        unknown: None,
        violations: Vec::new(),
    };
    if first.is_none() {
        r.unknown = Some("the faulted run did not finish".into());
        return r;
    }
    r.violations.extend(check(&s, "crash", false, true).await);
    // recovery: the same call by a new process
    let e2 = engine(env, time::Duration::ZERO);
    let rec = e2.rotate_certificate(&link, &p, &s.opts, &NoProgress).await;
    if rec.status == RotationStatus::Failed {
        r.violations
            .push(format!("recovery failed: {:?}", rec.error));
    }
    r.violations.extend(check(&s, "recover", true, true).await);
    // a second re-run changes nothing
    let versions = env.cert_versions(CERT).len();
    let keys = entries(&env.raw_keys().await);
    let rec = e2.rotate_certificate(&link, &p, &s.opts, &NoProgress).await;
    if rec.status == RotationStatus::Failed
        || env.cert_versions(CERT).len() != versions
        || entries(&env.raw_keys().await) != keys
    {
        r.violations.push(format!(
            "a re-run after convergence changed something: {} {:?}",
            rec.status, rec.notes
        ));
    }
    // cleanup past the grace period
    let e3 = engine(
        env,
        time::Duration::days(i64::from(p.grace_period_days) + 1),
    );
    if let Err(e) = e3.cleanup_certificate(&link, &p, false).await {
        r.violations.push(format!("cleanup failed: {e}"));
    }
    r.violations.extend(check(&s, "cleanup", true, false).await);
    r
}

async fn baseline(shape: Shape) -> Vec<String> {
    let s = setup(shape).await;
    let rec = engine(&s.env, time::Duration::ZERO)
        .rotate_certificate(&s.env.cert_link(), &Policy::default(), &s.opts, &NoProgress)
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{shape:?}: {rec:#?}");
    routes(&s.env)
}

/// `subset`: skip the first of two identical consecutive requests (the Key Vault SDK's
/// unauthenticated challenge before each call: a fault there only tests the SDK's retry), and
/// run more trials at once.
async fn matrix(modes: &[Mode], subset: bool) -> Vec<TrialResult> {
    let started = Instant::now();
    let mut jobs = Vec::new();
    for shape in Shape::ALL {
        if subset && shape == Shape::Sync {
            continue;
        }
        let b = baseline(shape).await;
        println!("baseline {shape:?}: {} requests", b.len());
        for (i, r) in b.iter().enumerate() {
            println!("  {:>2} {r}", i + 1);
        }
        for k in 1..=b.len() {
            if subset && b.get(k) == b.get(k - 1) {
                continue;
            }
            for &m in modes {
                // the subset: the rotation (every step: create, addKey, verify) failing and
                // applied-then-failing at each request, and onboarding (PATCH) applied-then-failing
                if subset
                    && !matches!(
                        (shape, m),
                        (Shape::Rotate, Mode::Fail | Mode::AppliedThen500)
                            | (Shape::Onboard, Mode::AppliedThen500)
                    )
                {
                    continue;
                }
                jobs.push((shape, k, m));
            }
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(if subset { 8 } else { 4 }));
    let mut handles = Vec::new();
    for (shape, k, m) in jobs {
        let sem = sem.clone();
        handles.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.expect("sem");
            trial(shape, k, m).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("trial"));
    }
    println!(
        "{} trials in {:.1} s",
        out.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<8} {:>6} {:>9} {:>7} {:>10}",
        "shape", "trials", "converged", "unknown", "violations"
    );
    for shape in Shape::ALL {
        let t: Vec<&TrialResult> = out.iter().filter(|r| r.shape == shape).collect();
        let unknown = t.iter().filter(|r| r.unknown.is_some()).count();
        let bad = t.iter().filter(|r| !r.violations.is_empty()).count();
        println!(
            "{:<8} {:>6} {:>9} {:>7} {:>10}",
            format!("{shape:?}"),
            t.len(),
            t.len() - unknown - bad,
            unknown,
            bad
        );
    }
    for r in &out {
        if !r.violations.is_empty() || r.unknown.is_some() {
            println!(
                "{:?} k={} ({}) {:?}: unknown={:?} {:?}",
                r.shape, r.k, r.route, r.mode, r.unknown, r.violations
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_crash_matrix_subset() {
    let out = matrix(&[Mode::Fail, Mode::AppliedThen500], true).await;
    let bad: Vec<&TrialResult> = out.iter().filter(|r| !r.violations.is_empty()).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    let unknown = out.iter().filter(|r| r.unknown.is_some()).count();
    assert_eq!(unknown, 0, "every trial observed to the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "every mode: cargo test -p rotor-engine --test certificate_crash_matrix -- --ignored --nocapture"]
async fn certificate_crash_matrix_full() {
    let out = matrix(&Mode::ALL, false).await;
    let bad: Vec<&TrialResult> = out.iter().filter(|r| !r.violations.is_empty()).collect();
    assert!(bad.is_empty(), "{bad:#?}");
}
