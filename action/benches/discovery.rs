//! Discovery benchmark: `cargo bench -p rotor --bench discovery`.
//!
//! 50,000 applications and 100 vaults × 500 secrets in the in-process emulator at 20 ms latency;
//! the `rotor` binary runs `rotor match --output json` as a child process, twice (cold, then with
//! the hint cache the first run wrote). For each run it prints:
//! 1. API calls against the minimum: application pages (`$top=999`) + secret list pages (25 per
//!    page) + one value read per secret (cold run only);
//! 2. wall time against the sequential paging bound at the emulated latency: the application
//!    pages one after another (each needs the previous `@odata.nextLink`), each vault's pages one
//!    after another, and the vault requests (pages and value reads) `max_concurrent` at a time —
//!    `latency × max(application pages, pages of one vault, ⌈vault requests ÷ max_concurrent⌉)`;
//! 3. the child's peak RSS (`ru_maxrss` through GNU time's `%M` when `/usr/bin/time` exists,
//!    else the highest `VmHWM` sampled each millisecond; the emulator lives in this process and
//!    is not counted);
//! 4. secret values read (0 on the second run).
//!
//! Without `--bench` (e.g. `cargo test --bench discovery`) it runs at a tenth of the scale.

use rotor_emulator::fixture::{
    FixtureApplication, FixturePassword, FixturePrincipal, FixtureSecret, FixtureVault, RoleList,
};
use rotor_emulator::{Emulator, EmulatorOptions, Fixture, TimeSpec};
use std::time::{Duration, Instant};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LATENCY: Duration = Duration::from_millis(20);
const MAX_CONCURRENT: u64 = 16;

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

fn time(s: &str) -> Option<TimeSpec> {
    Some(TimeSpec::parse(s).expect("time"))
}

/// `n_apps` applications with one password each; vault `v` holds the secrets of applications
/// `v × per_vault ..` (`svc-NNNNN-client-secret`, the credential's value), so every credential
/// matches one secret (name + hint: high).
fn fixture(n_apps: usize, n_vaults: usize, per_vault: usize) -> Fixture {
    let applications = (0..n_apps)
        .map(|i| FixtureApplication {
            app_id: Some(format!("b{i:07}-0000-4000-8000-000000000000")),
            object_id: Some(format!("0{i:07}-0000-4000-8000-000000000000")),
            display_name: format!("svc-{i:05}"),
            password_credentials: vec![FixturePassword {
                key_id: Some(format!("c{i:07}-0000-4000-8000-000000000000")),
                display_name: Some("main".into()),
                secret_text: Some(value(i)),
                start: time("-100d"),
                end: time("+200d"),
            }],
            ..Default::default()
        })
        .collect();
    let vaults = (0..n_vaults)
        .map(|v| FixtureVault {
            name: format!("kv-{v:03}"),
            secrets: (v * per_vault..(v + 1) * per_vault)
                .map(|i| FixtureSecret {
                    name: format!("svc-{i:05}-client-secret"),
                    value: Some(value(i)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let principal = FixturePrincipal {
        client_id: Some("11111111-0000-4000-8000-000000000001".into()),
        client_secret: Some("bench-principal-secret-value".into()),
        display_name: "rotor".into(),
        graph_roles: vec!["Application.ReadWrite.All".into()],
        vault_roles: [(
            "*".to_owned(),
            RoleList::One("Key Vault Secrets Officer".into()),
        )]
        .into(),
        ..Default::default()
    };
    Fixture {
        principals: vec![principal],
        applications,
        vaults,
        ..Default::default()
    }
}

fn counts(emu: &Emulator) -> serde_json::Value {
    emu.request_counts()
}

fn route(c: &serde_json::Value, r: &str) -> u64 {
    c["by_route"][r].as_u64().unwrap_or(0)
}

/// How the child's peak RSS was measured.
#[derive(Clone, Copy)]
enum Rss {
    /// GNU time's `%M`: `ru_maxrss` of the child it waited for (exact).
    GnuTime,
    /// The highest `VmHWM` of `/proc/<pid>/status` sampled every millisecond (a lower bound).
    Sampled,
}

/// Runs `rotor` with `args` to completion; returns (wall, peak RSS in KiB, CPU time when GNU
/// time measured it, stdout).
fn run_rotor(
    emu: &Emulator,
    dir: &std::path::Path,
    args: &[&str],
    how: Rss,
) -> (Duration, u64, Option<Duration>, Vec<u8>) {
    let out_path = dir.join("stdout.json");
    let rss_path = dir.join("maxrss.txt");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let mut cmd = match how {
        Rss::GnuTime => {
            let mut c = std::process::Command::new("/usr/bin/time");
            c.arg("-f").arg("%M %U %S").arg("-o").arg(&rss_path);
            c.arg(env!("CARGO_BIN_EXE_rotor"));
            c
        }
        Rss::Sampled => std::process::Command::new(env!("CARGO_BIN_EXE_rotor")),
    };
    for k in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "ROTOR_CONFIG",
        "ROTOR_HINT_CACHE",
        "RUST_LOG",
        "SSL_CERT_FILE",
        "GITHUB_ACTIONS",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(&emu.endpoints().env)
        .env("AZURE_USE_CLI", "false")
        .env("AZURE_USE_MSI", "false")
        .env("ROTOR_LOOPBACK_ONLY", "1")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::inherit());
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("rotor starts");
    let mut hwm = 0u64;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if let Rss::Sampled = how
            && let Ok(st) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            && let Some(kib) = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            hwm = hwm.max(kib);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = t0.elapsed();
    assert!(status.success(), "rotor {args:?} failed: {status}");
    let mut cpu = None;
    if let Rss::GnuTime = how {
        let text = std::fs::read_to_string(&rss_path).expect("GNU time output");
        let last = text
            .lines()
            .rev()
            .find(|l| l.split_whitespace().count() == 3)
            .expect("GNU time %M %U %S");
        let f: Vec<&str> = last.split_whitespace().collect();
        hwm = f[0].parse().expect("GNU time %M");
        let secs = |s: &str| s.parse::<f64>().unwrap_or(0.0);
        cpu = Some(Duration::from_secs_f64(secs(f[1]) + secs(f[2])));
    }
    let stdout = std::fs::read(&out_path).expect("stdout");
    (wall, hwm, cpu, stdout)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 10 };
    let (n_apps, n_vaults, per_vault) = (50_000 / scale, 100 / scale, 500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n_apps, n_vaults, per_vault));
}

async fn run(n_apps: usize, n_vaults: usize, per_vault: usize) {
    let t0 = Instant::now();
    let fixture = fixture(n_apps, n_vaults, per_vault);
    let emu = Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator");
    println!(
        "discovery: {n_apps} applications, {n_vaults} vaults x {per_vault} secrets (fixture generated and emulator started in {:.2?})",
        t0.elapsed()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let vaults: Vec<String> = emu
        .endpoints()
        .vaults
        .values()
        .map(|u| format!("{u:?}"))
        .collect();
    std::fs::write(
        dir.path().join("rotor.toml"),
        format!(
            "vaults = [{}]\n\n[policy]\nmax_concurrent = {MAX_CONCURRENT}\n",
            vaults.join(", ")
        ),
    )
    .expect("rotor.toml");
    let n_secrets = (n_vaults * per_vault) as u64;
    let app_pages = n_apps.div_ceil(999) as u64;
    let vault_pages = per_vault.div_ceil(25) as u64;
    let list_pages = n_vaults as u64 * vault_pages;
    // GNU time reports the child's own ru_maxrss; without it, VmHWM is sampled
    let how = if std::path::Path::new("/usr/bin/time").exists() {
        Rss::GnuTime
    } else {
        Rss::Sampled
    };
    emu.set_latency(LATENCY);
    let mut first_matches = None;
    for (label, reads_min) in [("cold", n_secrets), ("hint cache warm", 0)] {
        emu.clear_requests();
        let args = [
            "match",
            "--output",
            "json",
            "--hint-cache",
            "hints.json",
            "--history-file",
            "history.jsonl",
        ];
        let (wall, rss_kib, cpu, stdout) =
            tokio::task::block_in_place(|| run_rotor(&emu, dir.path(), &args, how));
        let c = counts(&emu);
        let log = emu.request_log();
        if let Some(dir) = std::env::var_os("ROTOR_BENCH_LOG_DIR") {
            // the emulator's request log of each run, for a closer look
            let path = std::path::Path::new(&dir).join(format!("{}.json", label.replace(' ', "-")));
            std::fs::write(&path, log.to_string()).expect("request log file");
        }
        let span_ms = log["log"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["at_us"].as_f64().unwrap_or(0.0) + e["us"].as_f64().unwrap_or(0.0)) / 1e3)
            .fold(0.0f64, f64::max);
        let total = c["total"].as_u64().unwrap_or(0);
        let tokens = route(&c, "POST /{tenant}/oauth2/v2.0/token");
        let reads = route(&c, "GET /secrets/{name}") + route(&c, "GET /secrets/{name}/{version}");
        let lists = route(&c, "GET /secrets");
        let minimum = app_pages + list_pages + reads_min;
        let vault_requests = list_pages + reads_min;
        let bound = LATENCY.mul_f64(
            app_pages
                .max(vault_pages)
                .max(vault_requests.div_ceil(MAX_CONCURRENT)) as f64,
        );
        let report: serde_json::Value = serde_json::from_slice(&stdout).expect("rotor match JSON");
        let matches = report["matches"].as_array().map_or(0, Vec::len);
        println!(
            "rotor match ({label}): {total} API calls ({tokens} token requests, {} empty or extra list pages) vs minimum {minimum} -> ratio {:.4}",
            lists.saturating_sub(list_pages),
            total as f64 / minimum as f64
        );
        println!(
            "  wall {wall:.2?} vs sequential paging bound {bound:.2?} ({} ms x max({app_pages} application pages, {vault_pages} pages of one vault, {vault_requests} vault requests / {MAX_CONCURRENT})) -> ratio {:.2}",
            LATENCY.as_millis(),
            wall.as_secs_f64() / bound.as_secs_f64()
        );
        println!(
            "  first request to last answer: {:.2?}; the rest of the wall ({:.2?}) is the process before its first and after its last request (start, sign-in set-up, matching, output); the process's CPU time (user + system): {}",
            Duration::from_secs_f64(span_ms / 1e3),
            wall.saturating_sub(Duration::from_secs_f64(span_ms / 1e3)),
            cpu.map_or("not measured (no GNU time)".to_owned(), |c| format!(
                "{c:.2?}"
            ))
        );
        println!(
            "  peak RSS of the rotor process: {:.1} MiB ({}); secret values read: {reads}; {matches} matches",
            rss_kib as f64 / 1024.0,
            match how {
                Rss::GnuTime => "ru_maxrss via GNU time",
                Rss::Sampled => "VmHWM sampled every ms",
            }
        );
        match first_matches {
            None => first_matches = Some(matches),
            Some(m) => assert_eq!(m, matches, "both runs find the same matches"),
        }
        assert!(matches >= n_apps, "every credential matches its secret");
    }
    emu.set_latency(Duration::ZERO);
    emu.shutdown().await;
}
