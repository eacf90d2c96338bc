//! `rotor demo`: the whole flow on the embedded emulator with a sample tenant; needs no Azure.
//!
//! The demo starts [`rotor_emulator::Emulator`] in-process (a sample tenant modelled on the product
//! documentation: MyApp's "Secret 1" in kv-prod, kv-dev and kv-staging, apps at every confidence
//! level, an excluded `legacy-*` app, one expiring soon) and runs the real commands against it —
//! the same `discover`, `match`, `rotate`, `cleanup` and `history` functions users run, with a
//! [`Context`] built from the emulator's endpoints — then proves the result by logging in with
//! the new credential and reading the vaults (printing key ids, hints and versions, never values).
//!
//! The sample tenant also has a certificate lineage: at start the demo asks the emulator's Key
//! Vault (as the demo's own principal, Key Vault Certificates Officer) to create the certificate
//! `myapp-signing` in kv-prod — the key is generated inside the vault and never leaves it — and
//! adds its public part to MyApp as the key credential "MyApp signing" (Graph PATCH). A fixture
//! cannot seed a Key Vault certificate with its key, so this happens at start, in well under a
//! second. `rotor demo` then rotates that certificate too (a new Key Vault version from the
//! certificate's own policy, added to the application, verified by signing in through Key
//! Vault's sign operation) and shows the result: thumbprints, key ids and versions, never key
//! material.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use rotor_engine::{AuditRecord, AuthConfig, Config, Endpoints, Exclusion, SecretValue};
use serde_json::Value;
use url::Url;

use super::confirm::ChangeArgs;
use super::{Context, cleanup, discover, history, matching, output, rotate};
use crate::cli::GlobalArgs;

/// `rotor demo [--propagation-delay SECONDS] [--fixture FILE]`
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seconds before a new password works in the emulator (shows verification retrying).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub propagation_delay: f64,
    /// Use this fixture (PRODUCT.md format) instead of the built-in sample tenant. The demo
    /// rotates the first credential of the first application.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
}

/// Which credential the demo rotates.
struct Subject {
    app_id: String,
    app_name: String,
    key_id: String,
    credential_name: String,
}

/// Runs `rotor demo`.
pub async fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let fixture = match &args.fixture {
        Some(p) => Fixture::from_file(p)
            .with_context(|| format!("reading demo fixture `{}`", p.display()))?,
        None => Fixture::sample(),
    };
    if !args.propagation_delay.is_finite() || args.propagation_delay < 0.0 {
        return Err(super::UsageError::new(
            "reading --propagation-delay: must be a non-negative number of seconds",
        )
        .into());
    }
    let opts = EmulatorOptions {
        propagation_delay: Duration::from_secs_f64(args.propagation_delay),
        ..EmulatorOptions::default()
    };
    let emulator = Emulator::start(fixture, opts)
        .await
        .context("starting the embedded emulator")?;
    let result = run_on(global, &emulator, started).await;
    emulator.shutdown().await;
    result
}

async fn run_on(
    global: &GlobalArgs,
    emulator: &Emulator,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let eps = emulator.endpoints();
    let mut endpoints = Endpoints::from_map(&eps.env)?;
    let mut vault_urls = Vec::new();
    for (name, url) in &eps.vaults {
        let u = Url::parse(url).with_context(|| format!("reading emulator vault URL `{url}`"))?;
        let u = rotor_engine::endpoints::normalize_vault_url(&u);
        endpoints.vault_names.insert(u.to_string(), name.clone());
        vault_urls.push(u);
    }
    let mut auth = AuthConfig::from_map(&eps.env);
    auth.use_cli = false;
    auth.use_msi = false;

    // A temporary history file unless --history-file was given.
    let temp = tempfile::Builder::new()
        .prefix("rotor-demo-")
        .tempdir()
        .context("creating a temporary directory for the demo's history file")?;
    let history_path = match &global.history_file {
        Some(p) => p.clone(),
        None => temp.path().join("rotor-history.jsonl"),
    };
    let mut config = Config {
        vaults: vault_urls,
        ..Config::default()
    };
    config
        .policy
        .exclusions
        .push(Exclusion::parse("name:legacy-*")?);
    let mut demo_global = global.clone();
    demo_global.history_file = Some(history_path.clone());
    let ctx = Context::with_config_value(&demo_global, endpoints, auth, config)
        .with_history_path(&history_path)
        .with_verify_timeout(Duration::from_secs(60))
        .with_actor(format!("{} (demo)", super::context::default_actor()));

    banner(&format!(
        "rotor demo — an emulated tenant on 127.0.0.1 ({} vaults: {}); history in `{}`",
        eps.vaults.len(),
        eps.vaults.keys().cloned().collect::<Vec<_>>().join(", "),
        history_path.display()
    ));

    let mut all_ok = true;
    let cert_subject = if is_sample_tenant(emulator) {
        match seed_certificate(&ctx, emulator).await {
            Ok(s) => Some(s),
            Err(e) => {
                output::print(&format!(
                    "  ✗ could not create the demo's Key Vault certificate: {e:#}"
                ));
                all_ok = false;
                None
            }
        }
    } else {
        None
    };

    step(
        1,
        "discover: every app registration and when its credentials expire",
        started,
    );
    let code = discover::run(
        &ctx,
        &discover::DiscoverArgs {
            filter: None,
            expiring_within: None,
        },
    )
    .await?;
    all_ok &= code == ExitCode::SUCCESS;

    step(
        2,
        "match: which Key Vault secrets hold which credential, and how sure rotor is",
        started,
    );
    let code = matching::run(
        &ctx,
        &matching::MatchArgs {
            apps: Vec::new(),
            min_confidence: None,
        },
    )
    .await?;
    all_ok &= code == ExitCode::SUCCESS;

    let subject = pick_subject(emulator)?;
    step(
        3,
        &format!(
            "rotate: {} / \"{}\" across every vault that holds it (sandbox: --yes implied)",
            subject.app_name, subject.credential_name
        ),
        started,
    );
    let before = emulator.state();
    let (code, records) = rotate::run_collect(
        &ctx,
        &rotate::RotateArgs {
            apps: vec![subject.app_id.clone()],
            key_id: Some(subject.key_id.clone()),
            due: false,
            expiry_days: None,
            change: ChangeArgs {
                dry_run: false,
                yes: true,
            },
        },
    )
    .await?;
    all_ok &= code == ExitCode::SUCCESS;

    step(
        4,
        "verify: log in with the new credential and read the vaults (values compared in memory, never printed)",
        started,
    );
    all_ok &= verify(&ctx, emulator, &before, &subject, &records).await;

    step(
        5,
        "rotate a certificate: a new Key Vault version from its policy, added to the application, verified by signing in",
        started,
    );
    match &cert_subject {
        Some(cert) => {
            let result = rotate::run_collect(
                &ctx,
                &rotate::RotateArgs {
                    apps: vec![cert.app_id.clone()],
                    key_id: Some(cert.key_id.clone()),
                    due: false,
                    expiry_days: None,
                    change: ChangeArgs {
                        dry_run: false,
                        yes: true,
                    },
                },
            )
            .await;
            match result {
                Ok((code, records)) => {
                    all_ok &= code == ExitCode::SUCCESS;
                    all_ok &= verify_certificate(&ctx, emulator, cert, &records);
                }
                Err(e) => {
                    // the secret half of the demo still goes on to cleanup and history
                    all_ok = false;
                    let _ = super::report_error(&e);
                }
            }
        }
        None => output::print("  (this fixture has no Key Vault certificate: skipped)"),
    }

    step(
        6,
        "cleanup --dry-run: old credentials are removed only after the grace period",
        started,
    );
    let code = cleanup::run(
        &ctx,
        &cleanup::CleanupArgs {
            apps: vec![subject.app_id.clone()],
            change: ChangeArgs {
                dry_run: true,
                yes: true,
            },
        },
    )
    .await?;
    all_ok &= code == ExitCode::SUCCESS;

    step(7, "history: the audit trail", started);
    let code = history::run_with_names(
        &demo_global,
        &history::HistoryArgs {
            since: None,
            until: None,
            app: None,
            status: None,
        },
        &|u| ctx.vault_name(u),
    )?;
    all_ok &= code == ExitCode::SUCCESS;

    banner(&format!(
        "demo {} in {:.1} s. Run it on your tenant: set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, list vaults in rotor.toml, then `rotor discover`.",
        if all_ok {
            "finished"
        } else {
            "finished WITH FAILURES"
        },
        started.elapsed().as_secs_f64()
    ));
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILED)
    })
}

fn banner(text: &str) {
    output::print(&format!("\n=== {text}\n"));
}

/// How many steps the demo has.
const STEPS: u32 = 7;

fn step(n: u32, text: &str, started: Instant) {
    output::print(&format!(
        "\n--- step {n}/{STEPS} [{:>5.1} s] {text}\n",
        started.elapsed().as_secs_f64()
    ));
}

/// MyApp's "Secret 1" in the sample tenant; otherwise the first password of the first app.
fn pick_subject(emulator: &Emulator) -> anyhow::Result<Subject> {
    let state = emulator.state();
    let apps = state["applications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chosen = apps
        .iter()
        .find(|a| a["display_name"] == "MyApp")
        .or_else(|| apps.first())
        .ok_or_else(|| {
            anyhow::anyhow!("choosing the demo credential: the fixture has no application")
        })?;
    let creds = chosen["password_credentials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cred = creds
        .iter()
        .find(|c| c["display_name"] == "Secret 1")
        .or_else(|| creds.first())
        .ok_or_else(|| {
            anyhow::anyhow!("choosing the demo credential: the first application has no password")
        })?;
    Ok(Subject {
        app_id: str_of(&chosen["app_id"]),
        app_name: str_of(&chosen["display_name"]),
        key_id: str_of(&cred["key_id"]),
        credential_name: str_of(&cred["display_name"]),
    })
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn password<'a>(state: &'a Value, app_id: &str, key_id: &str) -> Option<&'a Value> {
    state["applications"]
        .as_array()?
        .iter()
        .find(|a| a["app_id"] == app_id)?["password_credentials"]
        .as_array()?
        .iter()
        .find(|c| {
            c["key_id"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(key_id))
        })
}

/// Logs in with `secret` as application `app_id`; `Ok(())` when a token is issued.
async fn log_in(
    ctx: &Context,
    tenant: &str,
    app_id: &str,
    secret: &SecretValue,
) -> anyhow::Result<()> {
    let client = rotor_engine::http::http_client(ctx.endpoints())?;
    let url = ctx.endpoints().token_url(tenant)?;
    let scope = ctx.endpoints().graph_scope();
    let resp = client
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            ("client_secret", secret.expose()),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .context("requesting a token")?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let desc = body["error_description"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    anyhow::bail!("token endpoint answered {status}: {desc}")
}

/// Step 4: the new credential logs in, every target's current version holds it (tagged), the
/// old credential still logs in. Prints ids, hints, versions and dates only.
async fn verify(
    ctx: &Context,
    emulator: &Emulator,
    before: &Value,
    subject: &Subject,
    records: &[AuditRecord],
) -> bool {
    let Some(record) = records.first() else {
        output::print("  ✗ no rotation record to verify");
        return false;
    };
    let Some(new_key) = record.new_key_id.clone() else {
        output::print(&format!(
            "  ✗ the rotation did not create a credential: {}",
            record.error.clone().unwrap_or_default()
        ));
        return false;
    };
    let state = emulator.state();
    let tenant = str_of(&state["tenant_id"]);
    let mut ok = true;
    let Some(new_cred) = password(&state, &subject.app_id, &new_key) else {
        output::print(&format!(
            "  ✗ credential {} not found in Entra",
            output::short(&new_key)
        ));
        return false;
    };
    let new_secret = SecretValue::new(str_of(&new_cred["secret_text"]));
    match log_in(ctx, &tenant, &subject.app_id, &new_secret).await {
        Ok(()) => output::print(&format!(
            "  ✓ new credential {} (\"{}\", hint \"{}…\", expires {}) logs in: the token endpoint issued a token",
            output::short(&new_key),
            str_of(&new_cred["display_name"]),
            new_secret.hint(),
            str_of(&new_cred["end"]),
        )),
        Err(e) => {
            ok = false;
            output::print(&format!(
                "  ✗ new credential {} does not log in: {e}",
                output::short(&new_key)
            ));
        }
    }
    for t in &record.targets {
        let vault = ctx.vault_name(&t.vault_url);
        let secret = state["vaults"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| str_of(&v["name"]) == vault))
            .and_then(|v| v["secrets"].as_array())
            .and_then(|ss| ss.iter().find(|s| str_of(&s["name"]) == t.secret_name));
        let latest = secret
            .and_then(|s| s["versions"].as_array())
            .and_then(|vs| vs.last());
        match latest {
            Some(v) => {
                let value = SecretValue::new(str_of(&v["value"]));
                let holds = value.expose() == new_secret.expose();
                let tag = str_of(&v["tags"]["rotor-key-id"]);
                let line = format!(
                    "{vault}/{}: current version {} {} (tag rotor-key-id={}, expires {}, {} version(s) kept)",
                    t.secret_name,
                    output::short(&str_of(&v["version"])),
                    if holds {
                        "holds the new credential"
                    } else {
                        "DOES NOT hold the new credential"
                    },
                    output::short(&tag),
                    str_of(&v["expires"]),
                    secret
                        .and_then(|s| s["versions"].as_array())
                        .map_or(0, Vec::len)
                );
                ok &= holds;
                output::print(&format!("  {} {line}", if holds { "✓" } else { "✗" }));
            }
            None => {
                ok = false;
                output::print(&format!("  ✗ {vault}/{}: not found", t.secret_name));
            }
        }
    }
    if let Some(old) = password(before, &subject.app_id, &subject.key_id) {
        let old_secret = SecretValue::new(str_of(&old["secret_text"]));
        match log_in(ctx, &tenant, &subject.app_id, &old_secret).await {
            Ok(()) => output::print(&format!(
                "  ✓ old credential {} still logs in: nothing breaks before consumers pick up the new value (removed by cleanup after the {}-day grace period)",
                output::short(&subject.key_id),
                ctx.config().policy.grace_period_days
            )),
            Err(e) => {
                ok = false;
                output::print(&format!(
                    "  ✗ old credential {} no longer logs in: {e}",
                    output::short(&subject.key_id)
                ));
            }
        }
    }
    ok
}

/// MyApp in the sample tenant (the demo's certificate lineage belongs to it).
const SAMPLE_MYAPP: &str = "b0000001-0000-4000-8000-000000000001";
/// The demo's Key Vault certificate (in kv-prod) and its key credential's display name.
const DEMO_CERTIFICATE: &str = "myapp-signing";
const DEMO_CERTIFICATE_LINEAGE: &str = "MyApp signing";

/// The certificate lineage the demo creates and rotates.
struct CertSubject {
    app_id: String,
    /// The key credential added for the certificate's first version.
    key_id: String,
    /// Its thumbprint (upper-case hex).
    thumbprint: String,
}

/// True when the emulator runs the built-in sample tenant (MyApp and kv-prod exist).
fn is_sample_tenant(emulator: &Emulator) -> bool {
    let state = emulator.state();
    emulator.endpoints().vaults.contains_key("kv-prod")
        && state["applications"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["app_id"] == SAMPLE_MYAPP))
}

/// A token for `scope` as the demo's own principal (the emulator's first principal).
async fn demo_token(ctx: &Context, emulator: &Emulator, scope: &str) -> anyhow::Result<String> {
    let env = &emulator.endpoints().env;
    let get = |k: &str| {
        env.get(k)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the emulator's environment lacks {k}"))
    };
    let client = rotor_engine::http::http_client(ctx.endpoints())?;
    let url = ctx.endpoints().token_url(&get("AZURE_TENANT_ID")?)?;
    let (id, secret) = (get("AZURE_CLIENT_ID")?, get("AZURE_CLIENT_SECRET")?);
    let resp = client
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope),
        ])
        .send()
        .await
        .context("requesting a token")?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body["access_token"].as_str() {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => anyhow::bail!(
            "token endpoint answered {status}: {}",
            body["error_description"].as_str().unwrap_or("")
        ),
    }
}

/// Creates `myapp-signing` in kv-prod (RSA 2048, self-signed, 12 months, key not exportable)
/// and adds its public certificate to MyApp as the key credential "MyApp signing". Reads only
/// the certificate's public parts (`cer`, `x5t`).
async fn seed_certificate(ctx: &Context, emulator: &Emulator) -> anyhow::Result<CertSubject> {
    let client = rotor_engine::http::http_client(ctx.endpoints())?;
    let vault = emulator
        .endpoints()
        .vaults
        .get("kv-prod")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the sample tenant has no kv-prod"))?;
    let vault = vault.trim_end_matches('/').to_owned();
    let kv = demo_token(ctx, emulator, "https://vault.azure.net/.default").await?;
    let api = [("api-version", "7.6")];
    let resp = client
        .post(format!("{vault}/certificates/{DEMO_CERTIFICATE}/create"))
        .query(&api)
        .bearer_auth(&kv)
        .json(&serde_json::json!({
            "policy": {
                "key_props": {"kty": "RSA", "key_size": 2048, "exportable": false, "reuse_key": false},
                "x509_props": {"subject": "CN=myapp-signing", "validity_months": 12},
                "issuer": {"name": "Self"},
                "lifetime_actions": [{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "EmailContacts"}}]
            },
            "tags": {"app-id": SAMPLE_MYAPP}
        }))
        .send()
        .await
        .context("creating Key Vault certificate `myapp-signing` in kv-prod")?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::bail!(
            "creating Key Vault certificate `{DEMO_CERTIFICATE}` in kv-prod: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    // The operation completes after the emulator's certificate delay (tens of milliseconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let op: Value = client
            .get(format!("{vault}/certificates/{DEMO_CERTIFICATE}/pending"))
            .query(&api)
            .bearer_auth(&kv)
            .send()
            .await?
            .json()
            .await?;
        match op["status"].as_str() {
            Some("completed") => break,
            Some("inProgress") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => anyhow::bail!(
                "Key Vault certificate `{DEMO_CERTIFICATE}`: operation {}",
                other.unwrap_or("unknown")
            ),
        }
    }
    let cert: Value = client
        .get(format!("{vault}/certificates/{DEMO_CERTIFICATE}"))
        .query(&api)
        .bearer_auth(&kv)
        .send()
        .await?
        .error_for_status()
        .context("reading Key Vault certificate `myapp-signing`")?
        .json()
        .await?;
    let cer = cert["cer"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("Key Vault certificate `{DEMO_CERTIFICATE}` has no `cer`"))?
        .to_owned();
    let state = emulator.state();
    let app = state["applications"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["app_id"] == SAMPLE_MYAPP))
        .ok_or_else(|| anyhow::anyhow!("the sample tenant has no MyApp"))?;
    let object_id = str_of(&app["object_id"]);
    let graph = demo_token(ctx, emulator, &ctx.endpoints().graph_scope()).await?;
    let graph_base = ctx
        .endpoints()
        .graph
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let resp = client
        .patch(format!("{graph_base}/v1.0/applications/{object_id}"))
        .bearer_auth(&graph)
        .json(&serde_json::json!({
            "keyCredentials": [{
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": cer,
                "displayName": DEMO_CERTIFICATE_LINEAGE,
            }]
        }))
        .send()
        .await
        .context("adding the certificate to MyApp")?;
    if !resp.status().is_success() {
        anyhow::bail!("adding the certificate to MyApp: {}", resp.status());
    }
    // Graph is eventually consistent: wait until a read shows the key credential.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = client
            .get(format!(
                "{graph_base}/v1.0/applications/{object_id}?$select=keyCredentials"
            ))
            .bearer_auth(&graph)
            .send()
            .await?
            .json()
            .await?;
        let seen = body["keyCredentials"].as_array().is_some_and(|ks| {
            ks.iter()
                .any(|k| k["displayName"] == DEMO_CERTIFICATE_LINEAGE)
        });
        if seen {
            break;
        }
        if Instant::now() >= deadline {
            anyhow::bail!("MyApp's new key credential never showed in Graph reads");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = emulator.state();
    let key = key_credentials(&state, SAMPLE_MYAPP)
        .into_iter()
        .find(|k| k["display_name"] == DEMO_CERTIFICATE_LINEAGE)
        .ok_or_else(|| {
            anyhow::anyhow!("MyApp has no key credential `{DEMO_CERTIFICATE_LINEAGE}`")
        })?;
    let subject = CertSubject {
        app_id: SAMPLE_MYAPP.to_owned(),
        key_id: str_of(&key["key_id"]),
        thumbprint: str_of(&key["thumbprint"]).to_ascii_uppercase(),
    };
    output::print(&format!(
        "  Key Vault certificate kv-prod/{DEMO_CERTIFICATE} created (key made in the vault, not exportable); MyApp accepts it as key credential {} \"{DEMO_CERTIFICATE_LINEAGE}\" (thumbprint {})",
        output::short(&subject.key_id),
        crate::github::records::thumb(&subject.thumbprint)
    ));
    Ok(subject)
}

fn key_credentials(state: &Value, app_id: &str) -> Vec<Value> {
    state["applications"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["app_id"] == app_id))
        .and_then(|a| a["key_credentials"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// Step 5's proof: the record succeeded with a new thumbprint, the application holds a key
/// credential with it (and still the old one: cleanup removes it after the grace period), and
/// Key Vault's current version of the certificate is that thumbprint.
fn verify_certificate(
    ctx: &Context,
    emulator: &Emulator,
    cert: &CertSubject,
    records: &[AuditRecord],
) -> bool {
    let Some(r) = records.first() else {
        output::print("  ✗ no certificate rotation record");
        return false;
    };
    let Some(new_thumb) = r
        .new_thumbprint
        .clone()
        .filter(|t| !t.eq_ignore_ascii_case(&cert.thumbprint))
    else {
        output::print(&format!(
            "  ✗ the certificate was not rotated: {}",
            r.error.clone().unwrap_or_else(|| r.status.to_string())
        ));
        return false;
    };
    let state = emulator.state();
    let keys = key_credentials(&state, &cert.app_id);
    let has = |t: &str| {
        keys.iter()
            .any(|k| str_of(&k["thumbprint"]).eq_ignore_ascii_case(t))
    };
    let mut ok = true;
    for (holds, line) in [
        (
            has(&new_thumb),
            format!(
                "MyApp accepts the new certificate {} (key credential {}, valid until {})",
                crate::github::records::thumb(&new_thumb),
                r.new_key_id.as_deref().map(output::short).unwrap_or("-"),
                r.new_expires_at.map(output::fmt_time).unwrap_or_default()
            ),
        ),
        (
            has(&cert.thumbprint),
            format!(
                "the old certificate {} stays on MyApp (consumers still using it keep signing in) until cleanup after the grace period",
                crate::github::records::thumb(&cert.thumbprint)
            ),
        ),
    ] {
        ok &= holds;
        output::print(&format!("  {} {line}", if holds { "✓" } else { "✗" }));
    }
    for t in &r.targets {
        output::print(&format!(
            "  ✓ {}/{}: current version {}",
            ctx.vault_name(&t.vault_url),
            t.secret_name,
            t.version.as_deref().map(output::short).unwrap_or("-")
        ));
    }
    for n in &r.notes {
        output::print(&format!("  · {n}"));
    }
    ok
}
