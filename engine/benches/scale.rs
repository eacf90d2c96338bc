//! Scale benchmark: `cargo bench -p rotor-engine --bench scale`.
//!
//! 5,000 applications and 20 vaults × 200 secrets in the in-process emulator:
//! 1. API calls made by discovery + matching against the minimum possible (pages of applications
//!    + pages of secrets + one read per secret version);
//! 2. secret values read by a second run with the hint cache (must be 0);
//! 3. wall time of 200 due rotations × 3 targets at 20 ms emulated latency with
//!    `max_concurrent = 16`, against the bound calls × latency ÷ concurrency.
//!
//! Without `--bench` (e.g. `cargo test --bench scale`) it runs at a tenth of the scale.

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use rotor_engine::{
    AuthConfig, Endpoints, Engine, EngineOptions, NoProgress, Policy, RotateOptions, RotationStatus,
};
use serde_json::json;
use std::time::{Duration, Instant};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn hint(i: usize) -> String {
    let mut s = String::new();
    let mut n = i;
    for _ in 0..3 {
        s.push(ALPHABET[n % 62] as char);
        n /= 62;
    }
    s
}

fn value(i: usize) -> String {
    format!(
        "{}~bench-secret-{i:06}-{:016x}",
        hint(i),
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

fn total(emu: &Emulator) -> u64 {
    emu.request_counts()["total"].as_u64().unwrap_or(0)
}

fn route(emu: &Emulator, r: &str) -> u64 {
    emu.request_counts()["by_route"][r].as_u64().unwrap_or(0)
}

fn value_reads(emu: &Emulator) -> u64 {
    route(emu, "GET /secrets/{name}") + route(emu, "GET /secrets/{name}/{version}")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 10 };
    let n_apps = 5_000 / scale;
    let n_vaults = 20usize;
    let per_vault = 200 / scale;
    let n_due = 200 / scale;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n_apps, n_vaults, per_vault, n_due));
}

async fn run(n_apps: usize, n_vaults: usize, per_vault: usize, n_due: usize) {
    // Apps 0..n_due are due (+10 d) and live in three vaults each; the next apps have one target.
    let apps: Vec<_> = (0..n_apps)
        .map(|i| {
            json!({
                "app_id": format!("b{i:07}-0000-4000-8000-000000000000"),
                "display_name": format!("svc-{i:05}"),
                "password_credentials": [{"display_name": "main", "secret_text": value(i),
                    "start": "-100d", "end": if i < n_due { "+10d" } else { "+200d" }}]
            })
        })
        .collect();
    let mut vaults: Vec<Vec<serde_json::Value>> = vec![Vec::new(); n_vaults];
    for i in 0..n_due {
        for k in 0..3 {
            vaults[(i + k) % n_vaults]
                .push(json!({"name": format!("svc-{i:05}-client-secret"), "value": value(i)}));
        }
    }
    let mut next_app = n_due;
    for v in vaults.iter_mut() {
        while v.len() < per_vault {
            v.push(json!({"name": format!("svc-{next_app:05}-client-secret"), "value": value(next_app)}));
            next_app += 1;
        }
    }
    let fixture = json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "bench-principal-secret-value",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": apps,
        "vaults": vaults.into_iter().enumerate().map(|(i, s)| json!({"name": format!("kv-{i:02}"), "secrets": s})).collect::<Vec<_>>(),
    });
    let fixture = Fixture::from_json(&fixture.to_string()).expect("fixture");
    let emu = Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut endpoints = Endpoints::from_map(&emu.endpoints().env).expect("endpoints");
    for (n, u) in &emu.endpoints().vaults {
        endpoints.vault_names.insert(u.clone(), n.clone());
    }
    let vault_urls: Vec<url::Url> = emu
        .endpoints()
        .vaults
        .values()
        .map(|u| url::Url::parse(u).expect("url"))
        .collect();
    let make_engine = || {
        let mut auth = AuthConfig::from_map(&emu.endpoints().env);
        auth.use_cli = false;
        auth.use_msi = false;
        let cred = auth.build(&endpoints).expect("credential");
        let mut o = EngineOptions::new(endpoints.clone(), cred);
        o.hint_cache_file = Some(dir.path().join("hints.json"));
        o.tenant_id = Some(emu.endpoints().tenant_id.clone());
        o.per_vault_concurrency = 16;
        Engine::new(o).expect("engine")
    };
    let policy = Policy {
        max_concurrent: 16,
        ..Policy::default()
    };
    let n_secrets = n_vaults * per_vault;
    let minimum = n_apps.div_ceil(999) + n_vaults * per_vault.div_ceil(25) + n_secrets;

    // 1. discovery + matching, cold hint cache
    let engine = make_engine();
    let (t0, c0, r0) = (Instant::now(), total(&emu), value_reads(&emu));
    let found = engine.discover(None).await.expect("discover");
    let report = engine
        .match_secrets(&found, &vault_urls, &policy)
        .await
        .expect("match");
    let (d1, calls1, reads1) = (t0.elapsed(), total(&emu) - c0, value_reads(&emu) - r0);
    let tokens1 = route(&emu, "POST /{tenant}/oauth2/v2.0/token");
    println!("scale: {n_apps} applications, {n_vaults} vaults x {per_vault} secrets");
    println!(
        "discovery+matching (cold): {calls1} API calls ({tokens1} of them token requests) vs minimum {minimum} -> ratio {:.3}; {} matches, {reads1} values read, {:.2?}",
        calls1 as f64 / minimum as f64,
        report.matches.len(),
        d1
    );

    // 2. second run, new engine, same hint cache file
    let engine2 = make_engine();
    let (t0, c0, r0) = (Instant::now(), total(&emu), value_reads(&emu));
    let found2 = engine2.discover(None).await.expect("discover");
    let report2 = engine2
        .match_secrets(&found2, &vault_urls, &policy)
        .await
        .expect("match");
    let (d2, calls2, reads2) = (t0.elapsed(), total(&emu) - c0, value_reads(&emu) - r0);
    println!(
        "discovery+matching (hint cache warm): {calls2} API calls vs minimum {minimum} -> ratio {:.3}; secret values read: {reads2} (report: {}); {:.2?}",
        calls2 as f64 / minimum as f64,
        report2.values_read,
        d2
    );
    assert_eq!(reads2, 0, "second run must read no value");
    assert_eq!(report.matches.len(), report2.matches.len());

    // 3. 200 due rotations x 3 targets at 20 ms latency, max_concurrent 16
    let links: Vec<_> = rotor_engine::rotation::links_from_matches(&report, &found, &policy)
        .into_iter()
        .filter(|l| l.targets.len() == 3)
        .collect();
    assert_eq!(links.len(), n_due, "due links");
    let latency = Duration::from_millis(20);
    emu.set_latency(latency);
    let (t0, c0) = (Instant::now(), total(&emu));
    let recs = engine
        .rotate_many(&links, &policy, &RotateOptions::default(), &NoProgress)
        .await;
    let (d3, calls3) = (t0.elapsed(), total(&emu) - c0);
    emu.set_latency(Duration::ZERO);
    let ok = recs
        .iter()
        .filter(|r| r.status == RotationStatus::Success)
        .count();
    let bound = latency.mul_f64(calls3 as f64 / policy.max_concurrent as f64);
    println!(
        "rotation: {ok}/{} succeeded, {calls3} API calls ({:.1} per rotation), wall {:.2?} vs bound {:.2?} (calls x {} ms / {}) -> ratio {:.2}",
        links.len(),
        calls3 as f64 / links.len() as f64,
        d3,
        bound,
        latency.as_millis(),
        policy.max_concurrent,
        d3.as_secs_f64() / bound.as_secs_f64()
    );
    assert_eq!(ok, links.len(), "every rotation succeeds");
    println!(
        "pacing: requests waited {:.2?} in total for rotor's own budgets (0 while the run stays under them)",
        engine.paced_for()
    );

    // 4. the naive baseline in the same run: one link at a time, as a script calling the same
    // APIs would, over the same links (each is rotated a second time, forced)
    let naive = Policy {
        max_concurrent: 1,
        ..Policy::default()
    };
    let sample: Vec<_> = links.iter().take(links.len().min(20)).cloned().collect();
    let forced = RotateOptions {
        force: true,
        ..RotateOptions::default()
    };
    emu.set_latency(latency);
    let t0 = Instant::now();
    for l in &sample {
        let r = engine.rotate(l, &naive, &forced, &NoProgress).await;
        assert_eq!(r.status, RotationStatus::Success, "{r:?}");
    }
    let naive_per = t0.elapsed().as_secs_f64() / sample.len() as f64;
    emu.set_latency(Duration::ZERO);
    let rotor_per = d3.as_secs_f64() / links.len() as f64;
    println!(
        "naive baseline (one link at a time, {} links): {:.0} ms per rotation vs rotor's {:.0} ms per rotation -> {:.1}x faster",
        sample.len(),
        naive_per * 1000.0,
        rotor_per * 1000.0,
        naive_per / rotor_per
    );
    emu.shutdown().await;
}
