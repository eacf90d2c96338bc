//! The sample tenant's certificate lineage, created as `rotor demo` creates it
//! (examples/fixtures/README.md, "The certificate lineage"): Key Vault certificate
//! `myapp-signing` in kv-prod made by the emulator's Key Vault (the key never leaves it), its
//! public certificate added to MyApp as the key credential "MyApp signing" with Graph PATCH.
//! Plus the scan that no private key material appears anywhere rotor writes.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use rotor_emulator::Emulator;
use serde_json::{Value, json};

/// MyApp's appId in the sample tenant.
pub const MYAPP: &str = "b0000001-0000-4000-8000-000000000001";
/// The Key Vault certificate (kv-prod) and the key credential lineage's display name.
pub const CERT_NAME: &str = "myapp-signing";
pub const CERT_LINEAGE: &str = "MyApp signing";

/// What was created.
#[derive(Debug, Clone)]
pub struct SeededCertificate {
    /// The key credential's keyId on MyApp.
    pub key_id: String,
    /// Its SHA-1 thumbprint, upper-case hex.
    pub thumbprint: String,
}

fn client(emu: &Emulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

async fn token(emu: &Emulator, scope: &str) -> String {
    let env = &emu.endpoints().env;
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        emu.endpoints().authority_host.trim_end_matches('/'),
        emu.endpoints().tenant_id
    );
    let body: Value = client(emu)
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env["AZURE_CLIENT_ID"].as_str()),
            ("client_secret", env["AZURE_CLIENT_SECRET"].as_str()),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {scope}: {body}"))
        .to_owned()
}

/// Creates `myapp-signing` in kv-prod (RSA 2048, `validity_months`) and adds it to MyApp as
/// "MyApp signing". With `validity_months = 1` the certificate expires in 30 days: due under
/// the default policy (rotate 30 days before expiry).
pub async fn seed_certificate(emu: &Emulator, validity_months: u32) -> SeededCertificate {
    seed_certificate_with_key(
        emu,
        validity_months,
        json!({"kty": "RSA", "key_size": 2048, "exportable": false, "reuse_key": false}),
    )
    .await
}

/// [`seed_certificate`] with the policy's `key_props` (`{"kty": "EC", "crv": "P-256"}` makes a
/// certificate Entra cannot use for client assertions).
pub async fn seed_certificate_with_key(
    emu: &Emulator,
    validity_months: u32,
    key_props: Value,
) -> SeededCertificate {
    let http = client(emu);
    let vault = emu.endpoints().vaults["kv-prod"]
        .trim_end_matches('/')
        .to_owned();
    let kv = token(emu, "https://vault.azure.net/.default").await;
    let api = [("api-version", "7.6")];
    let resp = http
        .post(format!("{vault}/certificates/{CERT_NAME}/create"))
        .query(&api)
        .bearer_auth(&kv)
        .json(&json!({
            "policy": {
                "key_props": key_props,
                "x509_props": {"subject": "CN=myapp-signing", "validity_months": validity_months},
                "issuer": {"name": "Self"}
            },
            "tags": {"app-id": MYAPP}
        }))
        .send()
        .await
        .expect("create certificate");
    assert!(resp.status().is_success(), "create: {}", resp.status());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let op: Value = http
            .get(format!("{vault}/certificates/{CERT_NAME}/pending"))
            .query(&api)
            .bearer_auth(&kv)
            .send()
            .await
            .expect("pending")
            .json()
            .await
            .expect("pending json");
        if op["status"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "certificate never completed: {op}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cert: Value = http
        .get(format!("{vault}/certificates/{CERT_NAME}"))
        .query(&api)
        .bearer_auth(&kv)
        .send()
        .await
        .expect("get certificate")
        .json()
        .await
        .expect("certificate json");
    let cer = cert["cer"].as_str().expect("cer").to_owned();
    let object_id = app(emu, MYAPP)["object_id"]
        .as_str()
        .expect("object id")
        .to_owned();
    let graph = token(
        emu,
        &format!(
            "{}/.default",
            emu.endpoints().graph_endpoint.trim_end_matches('/')
        ),
    )
    .await;
    let resp = http
        .patch(format!(
            "{}/v1.0/applications/{object_id}",
            emu.endpoints().graph_endpoint.trim_end_matches('/')
        ))
        .bearer_auth(&graph)
        .json(&json!({"keyCredentials": [{
            "type": "AsymmetricX509Cert", "usage": "Verify", "key": cer, "displayName": CERT_LINEAGE
        }]}))
        .send()
        .await
        .expect("patch");
    assert!(resp.status().is_success(), "patch: {}", resp.status());
    // Graph is eventually consistent (the emulator's `graph_read_delay_ms`): wait until a read
    // shows the new key credential, so the run under test sees it as Azure eventually would.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = http
            .get(format!(
                "{}/v1.0/applications/{object_id}?$select=keyCredentials",
                emu.endpoints().graph_endpoint.trim_end_matches('/')
            ))
            .bearer_auth(&graph)
            .send()
            .await
            .expect("read back")
            .json()
            .await
            .expect("read back json");
        let seen = body["keyCredentials"]
            .as_array()
            .is_some_and(|ks| ks.iter().any(|k| k["displayName"] == CERT_LINEAGE));
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key credential never showed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = key_credentials(emu, MYAPP)
        .into_iter()
        .find(|k| k["display_name"] == CERT_LINEAGE)
        .expect("the key credential was added");
    SeededCertificate {
        key_id: key["key_id"].as_str().expect("key id").to_owned(),
        thumbprint: key["thumbprint"]
            .as_str()
            .expect("thumbprint")
            .to_ascii_uppercase(),
    }
}

/// A new version of `myapp-signing` made in Key Vault alone, as Key Vault AutoRenew makes one
/// (the application does not know it yet: a "sync" is due).
pub async fn renew_in_key_vault(emu: &Emulator) {
    let http = client(emu);
    let vault = emu.endpoints().vaults["kv-prod"]
        .trim_end_matches('/')
        .to_owned();
    let kv = token(emu, "https://vault.azure.net/.default").await;
    let api = [("api-version", "7.6")];
    let resp = http
        .post(format!("{vault}/certificates/{CERT_NAME}/create"))
        .query(&api)
        .bearer_auth(&kv)
        .json(&json!({"policy": {
            "key_props": {"kty": "RSA", "key_size": 2048, "exportable": false, "reuse_key": false},
            "x509_props": {"subject": "CN=myapp-signing", "validity_months": 12},
            "issuer": {"name": "Self"}
        }}))
        .send()
        .await
        .expect("create version");
    assert!(resp.status().is_success(), "renew: {}", resp.status());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let op: Value = http
            .get(format!("{vault}/certificates/{CERT_NAME}/pending"))
            .query(&api)
            .bearer_auth(&kv)
            .send()
            .await
            .expect("pending")
            .json()
            .await
            .expect("pending json");
        if op["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "version never completed: {op}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn app(emu: &Emulator, app_id: &str) -> Value {
    emu.state()["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["app_id"] == app_id)
        .cloned()
        .expect("app")
}

/// The key credentials of an application (emulator state: `key_id`, `display_name`,
/// `thumbprint` hex, …).
pub fn key_credentials(emu: &Emulator, app_id: &str) -> Vec<Value> {
    app(emu, app_id)["key_credentials"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Private key material the emulator holds: every PEM or PKCS#12-looking value in its vaults
/// (the certificates' managed backing secrets hold the PEM of key and certificate), as the
/// base64 lines of their bodies (≥ 32 characters each), and the PEM blocks themselves.
pub fn key_material(emu: &Emulator) -> Vec<String> {
    let state = emu.state();
    let mut out = Vec::new();
    for v in state["vaults"].as_array().into_iter().flatten() {
        for s in v["secrets"].as_array().into_iter().flatten() {
            for x in s["versions"].as_array().into_iter().flatten() {
                let Some(val) = x["value"].as_str() else {
                    continue;
                };
                if !val.contains("-----BEGIN") {
                    continue;
                }
                out.push(val.to_owned());
                let mut in_key = false;
                for line in val.lines() {
                    if line.starts_with("-----BEGIN") {
                        in_key = line.contains("PRIVATE KEY");
                    } else if in_key && line.len() >= 32 {
                        out.push(line.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// Panics naming `place` when `text` holds any of `material` or any PEM/PKCS#12 marker.
pub fn assert_no_key_material(place: &str, text: &str, material: &[String]) {
    for marker in ["-----BEGIN", "PRIVATE KEY", "application/x-pkcs12", "MIIE"] {
        assert!(
            !text.contains(marker),
            "`{marker}` (key material) appears in {place}"
        );
    }
    for m in material {
        assert!(
            !text.contains(m.as_str()),
            "private key material appears in {place}"
        );
    }
}
