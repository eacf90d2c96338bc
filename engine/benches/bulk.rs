//! Bulk rotation benchmark: `cargo bench -p rotor-engine --bench bulk`.
//!
//! 1,000 due links × 2 targets (20 vaults) at 20 ms emulated latency, `max_concurrent = 16`:
//! 1. `rotate_many` with the emulator's throttling model off: wall against the bound
//!    calls × latency ÷ max_concurrent;
//! 2. the same on a fresh emulator with the throttling model on (Azure's limits, sliding
//!    windows, over budget → 429 + `Retry-After`): 429s received (in the first 10 s window and
//!    after it), completion, and wall against the budget-limited bound — the larger of the
//!    latency bound and, for each of Azure's budgets, (⌈requests ÷ limit⌉ − 1) × window;
//! 3. a naive baseline measured in the same run: one link at a time (forced, a sample of the
//!    same links), as a script calling the same APIs would.
//!
//! The bound calls × latency ÷ max_concurrent takes each rotation's requests one after another;
//! a rotation's independent requests (the application and its targets, the targets' writes and
//! read-backs, the rival check and the verification) go out together, so rotor can beat it. The
//! tighter bound printed beside it is ⌈links ÷ max_concurrent⌉ × one rotation alone (its
//! measured critical path): how well rotations overlap. `ROTOR_BENCH_TIMELINE=1` prints that
//! rotation's requests in time.
//!
//! Without `--bench` (e.g. `cargo test --bench bulk`) it runs at a tenth of the scale.

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use rotor_engine::{
    AuthConfig, Endpoints, Engine, EngineOptions, Link, NoProgress, Policy, RotateOptions,
    RotationStatus,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(20);
const MAX_CONCURRENT: usize = 16;
const N_VAULTS: usize = 20;

fn value(i: usize) -> String {
    format!(
        "b{:02}~bulk-secret-{i:06}-{:016x}",
        i % 100,
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n_links = if full { 1_000 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "bulk: {n_links} due links x 2 targets in {N_VAULTS} vaults, {} ms latency, max_concurrent {MAX_CONCURRENT}",
            LATENCY.as_millis()
        );
        let plain = World::start(n_links, false).await;
        let (links, engine) = plain.due_links().await;
        assert_eq!(links.len(), n_links, "every link is due");
        let policy = policy(MAX_CONCURRENT);
        plain.emu.set_latency(LATENCY);
        plain.emu.clear_requests();
        let t0 = Instant::now();
        let recs = engine
            .rotate_many(&links, &policy, &RotateOptions::default(), &NoProgress)
            .await;
        let wall = t0.elapsed();
        let log = plain.emu.request_log();
        let calls = entries(&log).len();
        let ok = recs
            .iter()
            .filter(|r| r.status == RotationStatus::Success)
            .count();
        let bound = LATENCY.mul_f64(calls as f64 / MAX_CONCURRENT as f64);
        println!(
            "throttling off: {ok}/{} rotated, {calls} API calls ({:.1} per rotation), wall {wall:.2?} vs bound {bound:.2?} (calls x {} ms / {MAX_CONCURRENT}) -> ratio {:.3}; rotor's own pacing waited {:.2?}",
            links.len(),
            calls as f64 / links.len() as f64,
            LATENCY.as_millis(),
            wall.as_secs_f64() / bound.as_secs_f64(),
            engine.paced_for()
        );
        print_routes(&log);
        assert_eq!(ok, links.len(), "every rotation succeeds");

        // the naive baseline on the same emulator: one link at a time, forced
        let sample: Vec<Link> = links.iter().take(20).cloned().collect();
        let forced = RotateOptions {
            force: true,
            ..RotateOptions::default()
        };
        let one = policy_one();
        let t0 = Instant::now();
        for l in &sample {
            let r = engine.rotate(l, &one, &forced, &NoProgress).await;
            assert_eq!(r.status, RotationStatus::Success, "{r:?}");
        }
        let naive_per = t0.elapsed().as_secs_f64() / sample.len() as f64;
        // alone under the bulk policy (median of 5, the last one's timeline): one rotation's
        // critical path, its parallel steps included; rotate_many cannot beat
        // ⌈links ÷ max_concurrent⌉ of them
        let mut alone = Vec::new();
        for l in sample.iter().take(5) {
            plain.emu.clear_requests();
            let t1 = Instant::now();
            let r = engine.rotate(l, &policy, &forced, &NoProgress).await;
            alone.push(t1.elapsed());
            assert_eq!(r.status, RotationStatus::Success, "{r:?}");
        }
        print_timeline(&plain.emu.request_log(), *alone.last().expect("five"));
        alone.sort();
        let alone = alone[alone.len() / 2];
        let waves = links.len().div_ceil(MAX_CONCURRENT);
        let path_bound = alone * waves as u32;
        println!(
            "  critical-path bound: {waves} x one rotation alone ({alone:.2?}, median of 5) = {path_bound:.2?} -> wall ratio {:.3} (how well rotations overlap)",
            wall.as_secs_f64() / path_bound.as_secs_f64()
        );
        let rotor_per = wall.as_secs_f64() / links.len() as f64;
        println!(
            "naive baseline (one link at a time, {} links): {:.0} ms per rotation vs rotate_many's {:.1} ms -> {:.1}x faster",
            sample.len(),
            naive_per * 1000.0,
            rotor_per * 1000.0,
            naive_per / rotor_per
        );
        plain.emu.shutdown().await;

        // throttling model on, from before discovery (its requests count in the windows too)
        let throttled = World::start(n_links, true).await;
        let (links, engine) = throttled.due_links().await;
        assert_eq!(links.len(), n_links, "every link is due");
        throttled.emu.set_latency(LATENCY);
        throttled.emu.clear_requests();
        let emu = std::sync::Arc::new(throttled);
        let sampler = {
            let emu = emu.clone();
            tokio::spawn(async move {
                // 429s so far, every 250 ms (the count at ≤ 10 s splits the first window off)
                let t0 = Instant::now();
                let mut at_10s = 0usize;
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let n = count_429(&emu.emu.request_log());
                    if t0.elapsed() <= Duration::from_secs(10) {
                        at_10s = n;
                    }
                    if t0.elapsed() > Duration::from_secs(11) {
                        return at_10s;
                    }
                }
            })
        };
        let t0 = Instant::now();
        let recs = engine
            .rotate_many(&links, &policy, &RotateOptions::default(), &NoProgress)
            .await;
        let wall = t0.elapsed();
        let log = emu.emu.request_log();
        let first_window = if wall > Duration::from_secs(11) {
            sampler.await.expect("sampler")
        } else {
            sampler.abort();
            count_429(&log)
        };
        let all = entries(&log);
        let n429 = count_429(&log);
        let calls = all.len() - n429;
        let ok = recs
            .iter()
            .filter(|r| r.status == RotationStatus::Success)
            .count();
        let latency_bound = LATENCY.mul_f64(calls as f64 / MAX_CONCURRENT as f64);
        let (budget_bound, which) = budget_bound(&all);
        let bound = latency_bound.max(budget_bound);
        let tight = path_bound.max(budget_bound);
        println!(
            "throttling on: {ok}/{} rotated, {calls} API calls answered + {n429} answered 429 ({first_window} in the first 10 s window, {} after it), wall {wall:.2?}",
            links.len(),
            n429 - first_window.min(n429)
        );
        println!(
            "  budget-limited bound {bound:.2?} = max(latency bound {latency_bound:.2?}, {which} {budget_bound:.2?}) -> ratio {:.3}; rotor's own pacing waited {:.2?} in total",
            wall.as_secs_f64() / bound.as_secs_f64(),
            engine.paced_for()
        );
        println!(
            "  against max(critical-path bound {path_bound:.2?}, budgets {budget_bound:.2?}) = {tight:.2?} -> ratio {:.3}",
            wall.as_secs_f64() / tight.as_secs_f64()
        );
        print_routes(&log);
        assert_eq!(ok, links.len(), "every rotation succeeds under throttling");
        if let Ok(w) = std::sync::Arc::try_unwrap(emu) {
            w.emu.shutdown().await;
        }
    });
}

fn policy(max_concurrent: usize) -> Policy {
    Policy {
        max_concurrent,
        ..Policy::default()
    }
}

fn policy_one() -> Policy {
    policy(1)
}

fn entries(log: &serde_json::Value) -> Vec<serde_json::Value> {
    log["log"].as_array().cloned().unwrap_or_default()
}

fn count_429(log: &serde_json::Value) -> usize {
    log["log"]
        .as_array()
        .map_or(0, |l| l.iter().filter(|e| e["status"] == 429).count())
}

/// One rotation's requests in time: each call's start, duration and the gap before it (time
/// in rotor, not in a request), and the totals.
fn print_timeline(log: &serde_json::Value, wall: Duration) {
    let mut busy_until = 0.0f64;
    let mut in_calls = 0.0f64;
    let mut gaps = 0.0f64;
    let mut lines = Vec::new();
    for e in log["log"].as_array().into_iter().flatten() {
        let at = e["at_us"].as_f64().unwrap_or(0.0) / 1e3;
        let ms = e["us"].as_f64().unwrap_or(0.0) / 1e3;
        let gap = (at - busy_until).max(0.0);
        gaps += gap;
        in_calls += (at + ms - busy_until.max(at)).max(0.0);
        busy_until = busy_until.max(at + ms);
        lines.push(format!(
            "    +{at:7.1} ms  {ms:5.1} ms  (gap {gap:5.1})  {}",
            e["route"].as_str().unwrap_or("?")
        ));
    }
    println!(
        "one rotation alone: wall {wall:.2?}, {} calls, {in_calls:.0} ms with a call in flight, {gaps:.0} ms between calls",
        lines.len()
    );
    if std::env::var_os("ROTOR_BENCH_TIMELINE").is_some() {
        for l in lines {
            println!("{l}");
        }
    }
}

fn print_routes(log: &serde_json::Value) {
    let mut by: HashMap<String, usize> = HashMap::new();
    for e in log["log"].as_array().into_iter().flatten() {
        *by.entry(e["route"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    let s: Vec<String> = v.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    println!("  calls by route: {}", s.join(", "));
}

/// The largest of Azure's budgets' bounds over the answered requests in `log`: for `n` requests
/// against `limit` per `window` (sliding), at least (⌈n ÷ limit⌉ − 1) windows must pass.
fn budget_bound(log: &[serde_json::Value]) -> (Duration, String) {
    let limits = rotor_emulator::throttle::Limits::default();
    let mut per: HashMap<String, u64> = HashMap::new();
    for e in log.iter().filter(|e| e["status"] != 429) {
        let route = e["route"].as_str().unwrap_or("");
        let key = match e["vault"].as_str() {
            Some(v) if route == "PUT /secrets/{name}" => format!("vault {v} secret creates"),
            Some(v) => format!("vault {v} other requests"),
            None if route.contains("/oauth2/") => continue,
            None if route.contains("/v1.0/") => {
                if route.starts_with("POST") || route.starts_with("PATCH") {
                    *per.entry("Graph writes".into()).or_default() += 1;
                }
                "Graph resource units".into()
            }
            None => continue,
        };
        *per.entry(key).or_default() += 1;
    }
    let mut best = (Duration::ZERO, "no budget binds".to_owned());
    for (k, n) in per {
        let (limit, window) = if k.ends_with("secret creates") {
            (limits.vault_create_per_10s, 10)
        } else if k.ends_with("other requests") {
            (limits.vault_other_per_10s, 10)
        } else if k == "Graph writes" {
            (limits.graph_writes_per_150s, 150)
        } else {
            (limits.graph_ru_per_10s, 10)
        };
        let d = Duration::from_secs((n.div_ceil(limit).saturating_sub(1)) * window);
        if d >= best.0 {
            best = (
                d,
                format!("{k}: {n} against {limit} per {window} s, at least"),
            );
        }
    }
    best
}

struct World {
    emu: Emulator,
    dir: tempfile::TempDir,
}

impl World {
    async fn start(n_links: usize, throttling: bool) -> World {
        let apps: Vec<_> = (0..n_links)
            .map(|i| {
                json!({
                    "app_id": format!("b{i:07}-0000-4000-8000-000000000000"),
                    "display_name": format!("bulk-{i:05}"),
                    "password_credentials": [{"display_name": "main", "secret_text": value(i),
                        "start": "-100d", "end": "+10d"}]
                })
            })
            .collect();
        let mut vaults: Vec<Vec<serde_json::Value>> = vec![Vec::new(); N_VAULTS];
        for i in 0..n_links {
            for k in 0..2 {
                vaults[(i + k) % N_VAULTS]
                    .push(json!({"name": format!("bulk-{i:05}-client-secret"), "value": value(i)}));
            }
        }
        let fixture = json!({
            "fidelity": {"throttling": throttling},
            "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "bench-principal-secret-value",
                "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
            "applications": apps,
            "vaults": vaults.into_iter().enumerate().map(|(i, s)| json!({"name": format!("kv-{i:02}"), "secrets": s})).collect::<Vec<_>>(),
        });
        let fixture = Fixture::from_json(&fixture.to_string()).expect("fixture");
        let emu = Emulator::start(fixture, EmulatorOptions::default())
            .await
            .expect("emulator");
        World {
            emu,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn engine(&self) -> Engine {
        let mut endpoints = Endpoints::from_map(&self.emu.endpoints().env).expect("endpoints");
        for (n, u) in &self.emu.endpoints().vaults {
            endpoints.vault_names.insert(u.clone(), n.clone());
        }
        let mut auth = AuthConfig::from_map(&self.emu.endpoints().env);
        auth.use_cli = false;
        auth.use_msi = false;
        let cred = auth.build(&endpoints).expect("credential");
        let mut o = EngineOptions::new(endpoints, cred);
        o.hint_cache_file = Some(self.dir.path().join("hints.json"));
        o.tenant_id = Some(self.emu.endpoints().tenant_id.clone());
        o.per_vault_concurrency = MAX_CONCURRENT;
        Engine::new(o).expect("engine")
    }

    /// Discovery + matching (no latency), then the links with two targets.
    async fn due_links(&self) -> (Vec<Link>, Engine) {
        let engine = self.engine();
        let vaults: Vec<url::Url> = self
            .emu
            .endpoints()
            .vaults
            .values()
            .map(|u| url::Url::parse(u).expect("url"))
            .collect();
        // the path of `rotor rotate --due`: links (discovery + matching), then their status
        let config = rotor_engine::Config {
            vaults,
            policy: policy(MAX_CONCURRENT),
            ..rotor_engine::Config::default()
        };
        let links: Vec<Link> = engine
            .due_links(&config)
            .await
            .expect("due links")
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| l.targets.len() == 2)
            .collect();
        (links, engine)
    }
}
