//! The `rotor-emulator` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn prints_the_endpoints_line_within_a_second_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ep_file = dir.path().join("e.json");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fixtures/sample-tenant.json"
    );
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor-emulator"))
        .args(["--fixture", fixture, "--endpoints-file"])
        .arg(&ep_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    let v: Value = serde_json::from_str(&line).unwrap();
    for k in [
        "tenant_id",
        "authority_host",
        "graph_endpoint",
        "arm_endpoint",
        "vaults",
        "ca_file",
        "admin",
        "env",
    ] {
        assert!(v.get(k).is_some(), "{k} in {line}");
    }
    assert_eq!(v["tenant_id"], "6f1a2b3c-0000-4000-8000-000000000001");
    assert_eq!(v["vaults"].as_object().unwrap().len(), 3);
    assert_eq!(v["env"]["SSL_CERT_FILE"], v["ca_file"]);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&ep_file).unwrap()).unwrap();
    assert_eq!(file, v);
    let ca = std::fs::read_to_string(v["ca_file"].as_str().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));

    // It serves: the sample principal gets a token and reads a vault.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let env = &v["env"];
        let tok: Value = http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                v["authority_host"].as_str().unwrap(),
                v["tenant_id"].as_str().unwrap()
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", env["AZURE_CLIENT_ID"].as_str().unwrap()),
                (
                    "client_secret",
                    env["AZURE_CLIENT_SECRET"].as_str().unwrap(),
                ),
                ("scope", "https://vault.azure.net/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        http.get(format!(
            "{}secrets/myapp-secret?api-version=2025-07-01",
            v["vaults"]["kv-prod"].as_str().unwrap()
        ))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
    });
    assert_eq!(status, 200);

    // Serves until stopped: SIGTERM ends it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn malformed_fixture_fails_with_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.json");
    std::fs::write(
        &f,
        r#"{"vaults":[{"name":"kv-a","secrets":[{"name":"x","expires":"someday"}]}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rotor-emulator"))
        .arg("--fixture")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vaults[0].secrets[0].expires"), "{err}");
}

#[test]
fn trace_logs_never_contain_secret_values() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor-emulator"))
        .args(["--fixture", "sample"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr concurrently: trace logging fills a pipe quickly.
    let mut stderr = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let ca = std::fs::read_to_string(v["ca_file"].as_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let values: Vec<String> = rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let h1 = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(
                std::fs::read(v["ca_file"].as_str().unwrap())
                    .unwrap()
                    .as_slice(),
            )
            .unwrap()])
            .http1_only()
            .build()
            .unwrap();
        let env = &v["env"];
        let token = |scope: &'static str| {
            let http = http.clone();
            let url = format!(
                "{}/{}/oauth2/v2.0/token",
                v["authority_host"].as_str().unwrap(),
                v["tenant_id"].as_str().unwrap()
            );
            let id = env["AZURE_CLIENT_ID"].as_str().unwrap().to_string();
            let secret = env["AZURE_CLIENT_SECRET"].as_str().unwrap().to_string();
            async move {
                let t: Value = http
                    .post(url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", &id),
                        ("client_secret", &secret),
                        ("scope", scope),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                t["access_token"].as_str().unwrap().to_string()
            }
        };
        let kv = token("https://vault.azure.net/.default").await;
        let graph = token("https://graph.microsoft.com/.default").await;
        let vault = v["vaults"]["kv-prod"].as_str().unwrap();
        for client in [&http, &h1] {
            let r = client
                .get(format!(
                    "{vault}secrets/myapp-secret?api-version=2025-07-01"
                ))
                .bearer_auth(&kv)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = client
                .put(format!(
                    "{vault}secrets/written-in-test?api-version=2025-07-01"
                ))
                .bearer_auth(&kv)
                .json(&serde_json::json!({"value": "Wr18Q~a-value-written-by-the-trace-test-x"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = client
                .post(format!(
                    "{}/v1.0/applications/a0000004-0000-4000-8000-000000000004/addPassword",
                    v["graph_endpoint"].as_str().unwrap()
                ))
                .bearer_auth(&graph)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let state: Value = http
            .get(format!("{}/state", v["admin"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut values = Vec::new();
        for p in state["principals"].as_array().unwrap() {
            values.push(p["client_secret"].as_str().unwrap().to_string());
        }
        for a in state["applications"].as_array().unwrap() {
            for p in a["password_credentials"].as_array().unwrap() {
                values.push(p["secret_text"].as_str().unwrap().to_string());
            }
        }
        for vault in state["vaults"].as_array().unwrap() {
            for s in vault["secrets"].as_array().unwrap() {
                for x in s["versions"].as_array().unwrap() {
                    values.push(x["value"].as_str().unwrap().to_string());
                }
            }
        }
        values
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let logs = drain.join().unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging is on"
    );
    assert!(values.len() > 20);
    for value in values {
        // Every value is checked whole and by its distinctive tail (logs could split a value).
        let tail = &value[value.len().saturating_sub(16)..];
        assert!(
            !logs.contains(&value) && !logs.contains(tail),
            "a secret value appears in the logs"
        );
    }
}
