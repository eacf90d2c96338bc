//! The official Azure SDK against the emulator configured **only through the environment**, as a
//! user would: `SSL_CERT_FILE` (trust), `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` — all from the emulator's endpoints line `env` — plus
//! `verify_challenge_resource: false` (`ROTOR_KEYVAULT_VERIFY_CHALLENGE=false`).
//!
//! ```sh
//! rotor-emulator --endpoints-file /tmp/e.json &
//! env $(jq -r '.env | to_entries[] | "\(.key)=\(.value)"' /tmp/e.json) \
//!   cargo run -p rotor-emulator --example sdk_env_probe -- "$(jq -r '.vaults["kv-prod"]' /tmp/e.json)"
//! ```
//!
//! Prints `ok` after writing and reading back a secret with the default transport.

use azure_core::credentials::Secret;
use azure_identity::ClientSecretCredential;
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vault = std::env::args()
        .nth(1)
        .ok_or("usage: sdk_env_probe VAULT_URL")?;
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let credential = ClientSecretCredential::new(
        &var("AZURE_TENANT_ID")?,
        var("AZURE_CLIENT_ID")?,
        Secret::new(var("AZURE_CLIENT_SECRET")?),
        None,
    )?;
    let verify = std::env::var("ROTOR_KEYVAULT_VERIFY_CHALLENGE").map_or(true, |v| v != "false");
    let client = SecretClient::new(
        &vault,
        credential,
        Some(SecretClientOptions {
            verify_challenge_resource: Some(verify),
            ..Default::default()
        }),
    )?;
    client
        .set_secret(
            "sdk-env-probe",
            SetSecretParameters {
                value: Some("written-by-the-env-probe".into()),
                ..Default::default()
            }
            .try_into()?,
            None,
        )
        .await?;
    let back = client
        .get_secret("sdk-env-probe", None)
        .await?
        .into_model()?;
    if back.value.as_deref() != Some("written-by-the-env-probe") {
        return Err("read back a different value".into());
    }
    println!("ok");
    Ok(())
}
