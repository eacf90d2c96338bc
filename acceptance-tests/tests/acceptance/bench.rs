//! Benchmarks (ignored by default; they print figures). Run:
//!
//! ```text
//! scripts/install-test-tools && cargo build -p terraform-provider-rotor
//! cargo test -p rotor-acceptance-tests --test acceptance -- --ignored bench_ --nocapture --test-threads 1
//! ```
//!
//! - `terraform apply` of 500 `rotor_policy` against 500 `null_resource` (hashicorp/null 2.1.2,
//!   a Go provider built on HashiCorp's SDK), as a ratio;
//! - provider spawn → handshake line;
//! - a plan over 300 links of 100 applications: Graph and Key Vault calls (from the emulator's
//!   request counts) against the number of distinct applications and targets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{PROVIDER, Tf, emulator, principal, provider_dir, requests};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_apply_500_policies_vs_500_null_resources() {
    let n = 500;
    let rotor = Tf::new(None);
    rotor.config(&format!(
        "{PROVIDER}resource \"rotor_policy\" \"p\" {{\n  count = {n}\n  name  = \"policy-${{count.index}}\"\n}}\n"
    ));
    let null = Tf::new(None);
    null.write(
        "main.tf",
        &format!(
            "terraform {{\n  required_providers {{\n    null = {{ source = \"hashicorp/null\", version = \"2.1.2\" }}\n  }}\n}}\n\nresource \"null_resource\" \"r\" {{\n  count = {n}\n}}\n"
        ),
    );
    null.run(&["init", "-input=false"]).await.ok();

    let rotor_apply = rotor.apply().await.ok();
    let null_apply = null.apply().await.ok();
    assert!(
        rotor_apply.stdout.contains(&format!("{n} added")),
        "{}",
        rotor_apply.output()
    );
    assert!(
        null_apply.stdout.contains(&format!("{n} added")),
        "{}",
        null_apply.output()
    );
    let rotor_plan = rotor.plan().await;
    let null_plan = null.plan().await;
    assert_eq!(rotor_plan.code, 0);
    assert_eq!(null_plan.code, 0);
    println!(
        "BENCH apply of {n} resources: rotor_policy {:.2} s, null_resource {:.2} s, ratio {:.2}",
        rotor_apply.elapsed.as_secs_f64(),
        null_apply.elapsed.as_secs_f64(),
        rotor_apply.elapsed.as_secs_f64() / null_apply.elapsed.as_secs_f64()
    );
    println!(
        "BENCH no-op plan of {n} resources: rotor_policy {:.2} s, null_resource {:.2} s, ratio {:.2}",
        rotor_plan.elapsed.as_secs_f64(),
        null_plan.elapsed.as_secs_f64(),
        rotor_plan.elapsed.as_secs_f64() / null_plan.elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_spawn_to_handshake() {
    // Any PEM certificate will do as the "client certificate": the handshake line comes before
    // any connection. The emulator's CA certificate is at hand.
    let em = emulator(json!({"principals": [principal()], "applications": [], "vaults": []})).await;
    let bin = provider_dir().join("terraform-provider-rotor");
    let mut times = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let mut child = Command::new(&bin)
            .env_clear()
            .env(
                "TF_PLUGIN_MAGIC_COOKIE",
                "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
            )
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env("PLUGIN_CLIENT_CERT", em.ca_pem())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("handshake");
        times.push(start.elapsed());
        assert!(line.starts_with("1|6|tcp|127.0.0.1:"), "{line}");
        assert!(
            line.trim_end()
                .rsplit('|')
                .next()
                .is_some_and(|c| !c.is_empty() && !c.ends_with('='))
        );
        child.kill().expect("kill provider");
        child.wait().expect("reap provider");
    }
    let min = *times.iter().min().expect("runs");
    println!(
        "BENCH provider spawn -> handshake line (AutoMTLS, {} runs): median {:.1} ms, min {:.1} ms",
        times.len(),
        median(times).as_secs_f64() * 1000.0,
        min.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_plan_300_links_of_100_applications() {
    let apps = 100;
    let lineages = 3;
    let vault_names = ["kv-a", "kv-b", "kv-c"];
    let mut applications = Vec::new();
    let mut secrets: Vec<Vec<serde_json::Value>> = vec![Vec::new(); vault_names.len()];
    for a in 0..apps {
        let app_id = format!("b{a:07}-0000-4000-8000-000000000000");
        let mut creds = Vec::new();
        for (l, vault_secrets) in secrets.iter_mut().enumerate() {
            let key_id = format!("c{a:07}-000{l}-4000-8000-000000000000");
            let value = format!("V{a:03}{l}Q~bench-secret-value-{a:04}-{l}-abcdefghij");
            creds.push(json!({"key_id": key_id, "display_name": format!("lineage-{l}"), "secret_text": value,
                              "start": "-10d", "end": "+300d"}));
            vault_secrets.push(json!({"name": format!("app{a}-lineage-{l}"), "value": value,
                                   "tags": {"rotor-key-id": key_id, "app-id": app_id}, "expires": "+300d"}));
        }
        applications.push(
            json!({"app_id": app_id, "display_name": format!("bench-app-{a}"),
                                 "password_credentials": creds}),
        );
    }
    let vaults: Vec<serde_json::Value> = vault_names
        .iter()
        .zip(secrets)
        .map(|(n, s)| json!({"name": n, "secrets": s}))
        .collect();
    let em = emulator(
        json!({"principals": [principal()], "applications": applications, "vaults": vaults}),
    )
    .await;

    let mut hcl = String::from(PROVIDER);
    hcl.push_str("locals {\n  links = {\n");
    for a in 0..apps {
        for (l, vault_name) in vault_names.iter().enumerate() {
            let vault = &em.endpoints().vaults[*vault_name];
            hcl.push_str(&format!(
                "    \"app{a}-{l}\" = {{ app = \"b{a:07}-0000-4000-8000-000000000000\", lineage = \"lineage-{l}\", vault = \"{vault}\", secret = \"app{a}-lineage-{l}\" }}\n"
            ));
        }
    }
    hcl.push_str("  }\n}\n\nresource \"rotor_secret_link\" \"l\" {\n  for_each = local.links\n  application_id = each.value.app\n  credential_display_name = each.value.lineage\n  targets = [{ vault_url = each.value.vault, secret_name = each.value.secret }]\n}\n");
    let tf = Tf::new(Some(&em));
    tf.config(&hcl);
    let apply = tf.apply().await.ok();
    assert!(apply.stdout.contains("300 added"), "{}", apply.output());
    let graph = |em: &rotor_emulator::Emulator| requests(em, |r| r.contains("/v1.0/"));
    let vault = |em: &rotor_emulator::Emulator| requests(em, |r| r.contains("/secrets"));
    let token = |em: &rotor_emulator::Emulator| requests(em, |r| r.contains("oauth2"));
    let (g0, v0, t0) = (graph(&em), vault(&em), token(&em));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
    let (g, v, t) = (graph(&em) - g0, vault(&em) - v0, token(&em) - t0);
    println!(
        "BENCH plan over 300 links of {apps} applications ({} distinct targets) in {:.2} s: \
         {g} Graph calls ({:.2} per application), {v} Key Vault calls ({:.2} per target), {t} token requests",
        apps * lineages,
        plan.elapsed.as_secs_f64(),
        g as f64 / apps as f64,
        v as f64 / (apps * lineages) as f64
    );
    println!(
        "BENCH request counts by route after the plan: {}",
        em.request_counts()
    );
}

/// Azure requests per link for `terraform apply` (creating 100 links over 100 applications, each
/// adopting: nothing is written) and for the `terraform plan` after it, against the minimum: one
/// Key Vault read per target and one Graph request per 20 applications per provider process that
/// needs them, plus tokens (one per resource and process). Writes are excluded (there are none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_calls_per_link_100_links_of_100_applications() {
    let apps = 100usize;
    let mut applications = Vec::new();
    let mut secrets = Vec::new();
    for a in 0..apps {
        let app_id = format!("b{a:07}-0000-4000-8000-000000000000");
        let key_id = format!("c{a:07}-0000-4000-8000-000000000000");
        let value = format!("V{a:03}Q~bench-secret-value-{a:04}-abcdefghij");
        applications.push(json!({"app_id": app_id, "display_name": format!("bench-app-{a}"),
            "password_credentials": [{"key_id": key_id, "display_name": "main", "secret_text": value,
                                      "start": "-10d", "end": "+300d"}]}));
        secrets.push(json!({"name": format!("app{a}"), "value": value,
                            "tags": {"rotor-key-id": key_id, "app-id": app_id}, "expires": "+300d"}));
    }
    let em = emulator(
        json!({"principals": [principal()], "applications": applications,
                             "vaults": [{"name": "kv-a", "secrets": secrets}]}),
    )
    .await;
    let vault_url = em.endpoints().vaults["kv-a"].clone();
    let mut hcl = String::from(PROVIDER);
    hcl.push_str("locals {\n  links = {\n");
    for a in 0..apps {
        hcl.push_str(&format!(
            "    \"app{a}\" = {{ app = \"b{a:07}-0000-4000-8000-000000000000\", secret = \"app{a}\" }}\n"
        ));
    }
    hcl.push_str(&format!("  }}\n}}\n\nresource \"rotor_secret_link\" \"l\" {{\n  for_each = local.links\n  application_id = each.value.app\n  credential_display_name = \"main\"\n  targets = [{{ vault_url = \"{vault_url}\", secret_name = each.value.secret }}]\n}}\n"));
    let tf = Tf::new(Some(&em));
    tf.config(&hcl);
    let count = |em: &rotor_emulator::Emulator| {
        let graph = requests(em, |r| r.contains("/v1.0/"));
        let vault_reads = requests(em, |r| r.starts_with("GET") && r.contains("/secrets"));
        let writes = requests(em, |r| {
            (r.starts_with("PUT") || r.starts_with("PATCH") || r.starts_with("POST /v1.0"))
                && !r.contains("oauth2")
        });
        let tokens = requests(em, |r| r.contains("oauth2"));
        (graph, vault_reads, writes, tokens)
    };
    let report = |what: &str, processes: usize, d: (u64, u64, u64, u64)| {
        let (g, v, w, t) = d;
        let min_graph = (apps as f64 / 20.0).ceil() as u64 * processes as u64;
        let min_vault = (apps * processes) as u64;
        // one Graph and one Key Vault token per process
        let min_tokens = 2 * processes as u64;
        let min = min_graph + min_vault + min_tokens;
        let got = g + v + t;
        println!(
            "BENCH {what}: {:.2} Azure requests per link ({g} Graph, {v} Key Vault reads, {t} tokens; {w} writes excluded) \
             vs minimum {:.2} ({min_graph} Graph, {min_vault} Key Vault, {min_tokens} tokens) = {:.2}x",
            got as f64 / apps as f64,
            min as f64 / apps as f64,
            got as f64 / min as f64
        );
    };
    let a0 = count(&em);
    let apply = tf.apply().await.ok();
    assert!(apply.stdout.contains("100 added"), "{}", apply.output());
    let a1 = count(&em);
    // terraform apply: a plan walk and an apply walk, each its own provider process.
    report(
        "apply (create 100 links, adopt)",
        2,
        (a1.0 - a0.0, a1.1 - a0.1, a1.2 - a0.2, a1.3 - a0.3),
    );
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
    let p1 = count(&em);
    report(
        "plan (refresh 100 links)",
        1,
        (p1.0 - a1.0, p1.1 - a1.1, p1.2 - a1.2, p1.3 - a1.3),
    );
    println!("BENCH request counts by route: {}", em.request_counts());
}
