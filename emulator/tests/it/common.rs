use std::sync::Arc;

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

pub async fn start(f: Fixture) -> Emulator {
    Emulator::start(f, EmulatorOptions::default())
        .await
        .expect("emulator starts")
}

pub async fn sample() -> Emulator {
    start(Fixture::sample()).await
}

/// A reqwest client that trusts only the emulator's CA.
pub fn http(emu: &Emulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

pub fn principal(emu: &Emulator, display_name: &str) -> (String, String) {
    let state = emu.state();
    let p = state["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["display_name"] == display_name)
        .unwrap_or_else(|| panic!("principal {display_name}"));
    (
        p["client_id"].as_str().unwrap().to_string(),
        p["client_secret"].as_str().unwrap().to_string(),
    )
}

pub fn app<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["display_name"] == name)
        .unwrap_or_else(|| panic!("app {name}"))
}

/// POST the token endpoint; `Ok(token)` or `Err((status, body))`.
pub async fn token_raw(
    emu: &Emulator,
    http: &reqwest::Client,
    form: &[(&str, &str)],
) -> Result<String, (u16, Value)> {
    let ep = emu.endpoints();
    let r = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            ep.authority_host, ep.tenant_id
        ))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    if status == 200 {
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        Ok(body["access_token"].as_str().unwrap().to_string())
    } else {
        Err((status, body))
    }
}

pub async fn token(
    emu: &Emulator,
    http: &reqwest::Client,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Result<String, (u16, Value)> {
    token_raw(
        emu,
        http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await
}

pub async fn token_as(emu: &Emulator, http: &reqwest::Client, who: &str, scope: &str) -> String {
    let (id, secret) = principal(emu, who);
    token(emu, http, &id, &secret, scope).await.expect("token")
}

/// The AADSTS code of an Entra error body.
pub fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

pub fn vault(emu: &Emulator, name: &str) -> String {
    emu.endpoints().vaults[name].clone()
}

/// A minimal fixture with one all-powerful principal and `n` generated apps.
pub fn many_apps(n: usize) -> Fixture {
    let apps: Vec<Value> = (0..n)
        .map(|i| json!({"display_name": format!("app-{i:05}"), "password_credentials": [{"end": "+30d"}]}))
        .collect();
    Fixture::from_json(
        &json!({
            "principals": [{"display_name": "admin", "graph_roles": ["Application.ReadWrite.All"],
                            "vault_roles": {"*": "Key Vault Administrator"}}],
            "applications": apps,
            "vaults": [{"name": "kv-one"}]
        })
        .to_string(),
    )
    .unwrap()
}

/// SDK transport: a reqwest client trusting the emulator CA.
pub fn sdk_client_options(emu: &Emulator) -> azure_core::http::ClientOptions {
    azure_core::http::ClientOptions {
        transport: Some(azure_core::http::Transport::new(Arc::new(http(emu)))),
        ..Default::default()
    }
}

/// `ClientSecretCredential` against the emulator's authority host.
pub fn sdk_credential(
    emu: &Emulator,
    who: &str,
) -> Arc<dyn azure_core::credentials::TokenCredential> {
    let (id, secret) = principal(emu, who);
    let mut custom = azure_core::cloud::CustomConfiguration::default();
    custom.authority_host = emu.endpoints().authority_host.clone();
    let mut client_options = sdk_client_options(emu);
    client_options.cloud = Some(Arc::new(custom.into()));
    azure_identity::ClientSecretCredential::new(
        &emu.endpoints().tenant_id,
        id,
        azure_core::credentials::Secret::new(secret),
        Some(azure_identity::ClientSecretCredentialOptions { client_options }),
    )
    .unwrap()
}
