//! Request rate of the emulator on this machine: Key Vault `GET /secrets/{name}` and Graph
//! `GET /v1.0/applications`, each driven for a bounded time by many concurrent keep-alive
//! clients over HTTPS on loopback (client and server share the machine's cores).
//!
//! `cargo bench -p rotor-emulator --bench throughput` (release build). Optional environment:
//! `ROTOR_BENCH_SECS` (default 3), `ROTOR_BENCH_CLIENTS` (default 32), `ROTOR_BENCH_APPS`
//! (default 10000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn token(emu: &Emulator, http: &reqwest::Client, scope: &str) -> String {
    let ep = emu.endpoints();
    let r: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            ep.authority_host, ep.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ep.env["AZURE_CLIENT_ID"].as_str()),
            ("client_secret", ep.env["AZURE_CLIENT_SECRET"].as_str()),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

/// Drive `url` with `clients` independent keep-alive clients for `secs`; returns (ok, errors, rate).
async fn drive(
    emu: &Emulator,
    url: String,
    token: String,
    clients: u64,
    secs: u64,
) -> (u64, u64, f64) {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..clients {
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .http1_only()
            .build()
            .unwrap();
        let (url, token, ok, errors) = (url.clone(), token.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    (ok, errors.load(Ordering::Relaxed), ok as f64 / elapsed)
}

fn main() {
    let secs = env_num("ROTOR_BENCH_SECS", 3);
    let clients = env_num("ROTOR_BENCH_CLIENTS", 32);
    let n_apps = env_num("ROTOR_BENCH_APPS", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let apps: Vec<Value> = (0..n_apps)
            .map(|i| json!({"display_name": format!("bench-app-{i:06}"), "password_credentials": [{"end": "+90d"}, {"end": "+300d"}]}))
            .collect();
        let fixture = Fixture::from_json(
            &json!({
                "principals": [{"display_name": "bench", "graph_roles": ["Application.Read.All"],
                                "vault_roles": {"*": "Key Vault Secrets User"}}],
                "applications": apps,
                "vaults": [{"name": "kv-bench", "secrets": [{"name": "bench-secret", "value": "bench-value", "tags": {"app-name": "bench"}}]}]
            })
            .to_string(),
        )
        .unwrap();
        let emu = Emulator::start(fixture, EmulatorOptions::default()).await.unwrap();
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
        let vault_token = token(&emu, &http, "https://vault.azure.net/.default").await;
        let graph_token = token(&emu, &http, "https://graph.microsoft.com/.default").await;
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        println!("rotor-emulator throughput: {clients} keep-alive HTTPS clients, {secs} s per route, {n_apps} applications, {cpus} CPUs (client and server in one process)");

        let kv_url = format!("{}secrets/bench-secret?api-version=2025-07-01", emu.endpoints().vaults["kv-bench"]);
        let (ok, err, rate) = drive(&emu, kv_url, vault_token.clone(), clients, secs).await;
        println!("Key Vault GET /secrets/{{name}}:               {rate:>9.0} req/s  ({ok} ok, {err} errors)");

        let graph_url = format!("{}/v1.0/applications?$top=100", emu.endpoints().graph_endpoint);
        let (ok, err, rate) = drive(&emu, graph_url, graph_token.clone(), clients, secs).await;
        println!("Graph GET /v1.0/applications ($top=100):      {rate:>9.0} req/s  ({ok} ok, {err} errors)");

        let one = format!(
            "{}/v1.0/applications?$filter=appId eq '{}'",
            emu.endpoints().graph_endpoint,
            emu.state()["applications"][n_apps as usize / 2]["app_id"].as_str().unwrap()
        );
        let (ok, err, rate) = drive(&emu, one, graph_token.clone(), clients, secs).await;
        println!("Graph GET /v1.0/applications?$filter=appId:   {rate:>9.0} req/s  ({ok} ok, {err} errors)");

        // The throttling model on (its bookkeeping on every request), first with budgets too
        // large to bite, then with Azure's: answers beyond the budget are 429s.
        let kv_url = format!("{}secrets/bench-secret?api-version=2025-07-01", emu.endpoints().vaults["kv-bench"]);
        emu.set_fidelity(json!({"throttling": true, "limits": {"vault_create_per_10s": 300,
            "vault_other_per_10s": u64::MAX / 4, "graph_ru_per_10s": u64::MAX / 4, "graph_writes_per_150s": 3000}})).unwrap();
        let (ok, err, rate) = drive(&emu, kv_url.clone(), vault_token.clone(), clients, secs).await;
        println!("Key Vault GET, throttling on (no limit hit):  {rate:>9.0} req/s  ({ok} ok, {err} errors)");
        emu.set_fidelity(json!({"limits": {"vault_create_per_10s": 300, "vault_other_per_10s": 4000,
            "graph_ru_per_10s": 3500, "graph_writes_per_150s": 3000}})).unwrap();
        let (ok, err, rate) = drive(&emu, kv_url, vault_token, clients, secs).await;
        println!("Key Vault GET, Azure's 4,000 per 10 s:        {rate:>9.0} req/s  ({ok} ok, {err} answered 429)");
        emu.shutdown().await;
    });
}
