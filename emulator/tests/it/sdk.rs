//! The official Azure SDK (azure_identity + azure_security_keyvault_*) against the emulator.

use std::collections::HashMap;

use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;

use serde_json::json;

use crate::common::*;

fn secret_client(emu: &rotor_emulator::Emulator, vault_name: &str, who: &str) -> SecretClient {
    SecretClient::new(
        &vault(emu, vault_name),
        sdk_credential(emu, who),
        Some(SecretClientOptions {
            client_options: sdk_client_options(emu),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn official_sdk_set_get_list_versions_delete_recover() {
    let emu = sample().await;
    let client = secret_client(&emu, "kv-prod", "rotor-ci");

    // set (twice: two versions)
    let v1 = client
        .set_secret(
            "sdk-secret",
            SetSecretParameters {
                value: Some("first-value".into()),
                content_type: Some("text/plain".into()),
                tags: Some(HashMap::from([(
                    "app-name".to_string(),
                    "MyApp".to_string(),
                )])),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(v1.value.as_deref(), Some("first-value"));
    let id1 = v1.resource_id().unwrap();
    assert_eq!(id1.name, "sdk-secret");
    let ver1 = id1.version.clone().unwrap();
    assert_eq!(ver1.len(), 32);
    assert!(ver1.chars().all(|c| c.is_ascii_hexdigit()));

    let v2 = client
        .set_secret(
            "sdk-secret",
            SetSecretParameters {
                value: Some("second-value".into()),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let ver2 = v2.resource_id().unwrap().version.unwrap();
    assert_ne!(ver1, ver2);

    // get latest and by version
    let latest = client
        .get_secret("sdk-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(latest.value.as_deref(), Some("second-value"));
    let old = client
        .get_secret(
            "sdk-secret",
            Some(SecretClientGetSecretOptions {
                secret_version: Some(ver1.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(old.value.as_deref(), Some("first-value"));
    assert_eq!(old.content_type.as_deref(), Some("text/plain"));
    assert_eq!(old.tags.as_ref().unwrap()["app-name"], "MyApp");

    // update tags of the latest version
    client
        .update_secret_properties(
            "sdk-secret",
            UpdateSecretPropertiesParameters {
                tags: Some(HashMap::from([(
                    "rotor-key-id".to_string(),
                    "k1".to_string(),
                )])),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap();

    // list (sample kv-prod has 7 secrets; +1)
    let mut names = Vec::new();
    let mut pager = client.list_secret_properties(None).unwrap();
    while let Some(p) = pager.try_next().await.unwrap() {
        names.push(p.resource_id().unwrap().name);
    }
    assert!(names.contains(&"sdk-secret".to_string()), "{names:?}");
    assert!(names.contains(&"myapp-secret".to_string()));
    assert_eq!(names.len(), 8, "{names:?}");

    // versions
    let mut versions = Vec::new();
    let mut pager = client
        .list_secret_properties_versions("sdk-secret", None)
        .unwrap();
    while let Some(p) = pager.try_next().await.unwrap() {
        versions.push((p.resource_id().unwrap().version.unwrap(), p.tags.clone()));
    }
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().any(|(v, _)| v == &ver1));
    let tagged = versions.iter().find(|(v, _)| v == &ver2).unwrap();
    assert_eq!(tagged.1.as_ref().unwrap()["rotor-key-id"], "k1");

    // delete, then it is gone, then a write conflicts, then recover
    client.delete_secret("sdk-secret", None).await.unwrap();
    let err = client.get_secret("sdk-secret", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));
    // The deletion takes a while: not yet among deleted secrets, writes are 409.
    let err = client
        .get_deleted_secret("sdk-secret", None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));
    let sleep = |ms: u64| tokio::time::sleep(std::time::Duration::from_millis(ms + 20));
    sleep(emu.fidelity().delete_delay_ms).await;
    let deleted = client
        .get_deleted_secret("sdk-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        deleted
            .recovery_id
            .unwrap()
            .ends_with("/deletedsecrets/sdk-secret")
    );
    let err = client
        .set_secret(
            "sdk-secret",
            SetSecretParameters {
                value: Some("x".into()),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(409));
    client
        .recover_deleted_secret("sdk-secret", None)
        .await
        .unwrap();
    let err = client.get_secret("sdk-secret", None).await.unwrap_err();
    assert_eq!(
        err.http_status().map(u16::from),
        Some(404),
        "recovered, not yet readable"
    );
    sleep(emu.fidelity().recover_delay_ms).await;
    let back = client
        .get_secret("sdk-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(back.value.as_deref(), Some("second-value"));

    // The emulator saw the SDK's challenge round-trip and the token request.
    let counts = emu.request_counts();
    assert!(counts["by_route"]["PUT /secrets/{name}"].as_u64().unwrap() >= 2);
    assert_eq!(counts["by_route"]["POST /{tenant}/oauth2/v2.0/token"], 1);
    assert_eq!(counts["by_route"]["POST /deletedsecrets/{name}/recover"], 1);
}

#[tokio::test]
async fn official_sdk_follows_next_links() {
    use azure_security_keyvault_secrets::models::SecretClientListSecretPropertiesOptions;
    let emu = sample().await;
    for (p, requests) in [
        // 4 pages of <= 2, plus the unauthenticated challenge request.
        (0.0, 5),
        // every page first answered empty (with a nextLink), and one more empty final page.
        (1.0, 10),
    ] {
        emu.set_fidelity(json!({"empty_page_probability": p}))
            .unwrap();
        emu.clear_requests();
        let client = secret_client(&emu, "kv-prod", "rotor-readonly");
        let mut pager = client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(2),
                ..Default::default()
            }))
            .unwrap();
        let mut n = 0;
        while let Some(_p) = pager.try_next().await.unwrap() {
            n += 1;
        }
        assert_eq!(n, 7, "empty_page_probability {p}");
        assert_eq!(
            emu.request_counts()["by_route"]["GET /secrets"],
            requests,
            "empty_page_probability {p}"
        );
    }
}

#[tokio::test]
async fn official_sdk_lists_versions_not_in_creation_order() {
    let emu = sample().await;
    let client = secret_client(&emu, "kv-prod", "rotor-ci");
    let mut created = Vec::new();
    for i in 0..4 {
        let b = client
            .set_secret(
                "ordered",
                SetSecretParameters {
                    value: Some(format!("v{i}")),
                    ..Default::default()
                }
                .try_into()
                .unwrap(),
                None,
            )
            .await
            .unwrap()
            .into_model()
            .unwrap();
        created.push(b.resource_id().unwrap().version.unwrap());
    }
    let list = |client: &SecretClient| {
        let mut pager = client
            .list_secret_properties_versions("ordered", None)
            .unwrap();
        async move {
            let mut out = Vec::new();
            while let Some(p) = pager.try_next().await.unwrap() {
                out.push(p.resource_id().unwrap().version.unwrap());
            }
            out
        }
    };
    let listed = list(&client).await;
    let mut same = listed.clone();
    same.sort();
    let mut c = created.clone();
    c.sort();
    assert_eq!(same, c, "every version listed once");
    assert_ne!(listed.last(), created.last(), "newest is never listed last");
    assert_ne!(
        listed.first(),
        created.first(),
        "oldest is never listed first"
    );
    // the same seed lists the same order again
    assert_eq!(list(&client).await, listed);
    // by_id and creation on request
    emu.set_fidelity(json!({"version_order": "by_id"})).unwrap();
    assert_eq!(list(&client).await, c);
    emu.set_fidelity(json!({"version_order": "creation"}))
        .unwrap();
    assert_eq!(list(&client).await, created);
    // the latest is still the newest
    let latest = client
        .get_secret("ordered", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(latest.value.as_deref(), Some("v3"));
}

#[tokio::test]
async fn official_sdk_api_version_is_accepted_and_others_refused() {
    let emu = sample().await;
    // The SDK's default api-version is accepted (every other SDK test relies on it).
    let client = secret_client(&emu, "kv-prod", "rotor-ci");
    client.get_secret("database-password", None).await.unwrap();
    // An unknown one is refused as Key Vault does.
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-prod");
    for (version, ok) in [
        ("banana", false),
        ("2099-01-01", false),
        ("7.4", true),
        ("7.6", true),
        ("2025-07-01", true),
    ] {
        let r = http
            .get(format!(
                "{v}secrets/database-password?api-version={version}"
            ))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if ok {
            assert_eq!(r.status(), 200, "{version}");
        } else {
            assert_eq!(r.status(), 400, "{version}");
            let b: serde_json::Value = r.json().await.unwrap();
            assert_eq!(b["error"]["code"], "BadParameter");
            let m = b["error"]["message"].as_str().unwrap();
            assert!(m.contains(&format!("({version}) is not recognized")), "{m}");
        }
    }
    // configurable
    emu.set_fidelity(json!({"api_versions": ["7.4"]})).unwrap();
    let err = client
        .get_secret("database-password", None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(400));
    assert!(emu.set_fidelity(json!({"api_versions": []})).is_err());
}

#[tokio::test]
async fn official_sdk_sees_403_for_a_read_only_principal() {
    let emu = sample().await;
    let client = secret_client(&emu, "kv-prod", "rotor-readonly");
    let s = client
        .get_secret("myapp-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(s.value.unwrap().starts_with("Myk"));
    let err = client
        .set_secret(
            "myapp-secret",
            SetSecretParameters {
                value: Some("nope".into()),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
}

#[tokio::test]
async fn official_sdk_creates_a_certificate() {
    use azure_security_keyvault_certificates::models::{
        CertificatePolicy, CreateCertificateParameters, IssuerParameters, X509CertificateProperties,
    };
    use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};

    let fixture = rotor_emulator::Fixture::from_json(
        r#"{"principals":[{"display_name":"certs","vault_roles":{"*":["Key Vault Certificates Officer","Key Vault Secrets User"]}}],
            "vaults":[{"name":"kv-certs"}]}"#,
    )
    .unwrap();
    let emu = start(fixture).await;
    let client = CertificateClient::new(
        &vault(&emu, "kv-certs"),
        sdk_credential(&emu, "certs"),
        Some(CertificateClientOptions {
            client_options: sdk_client_options(&emu),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap();
    let body = CreateCertificateParameters {
        certificate_policy: Some(CertificatePolicy {
            x509_certificate_properties: Some(X509CertificateProperties {
                subject: Some("CN=rotor-test".into()),
                validity_in_months: Some(6),
                ..Default::default()
            }),
            issuer_parameters: Some(IssuerParameters {
                name: Some("Self".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cert = client
        .begin_create_certificate("rotor-cert", body.try_into().unwrap(), None)
        .unwrap()
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let der = cert.cer.clone().unwrap();
    let x5t = cert.x509_thumbprint.clone().unwrap();
    use sha1::Digest;
    assert_eq!(x5t, sha1::Sha1::digest(&der).to_vec());
    let state = emu.state();
    let certs = &state["vaults"][0]["certificates"][0];
    assert_eq!(certs["name"], "rotor-cert");
    assert_eq!(certs["versions"][0]["subject"], "CN=rotor-test");
    // The poller went through the pending operation (inProgress first), and the key is RSA.
    let counts = emu.request_counts();
    assert!(
        counts["by_route"]["GET /certificates/{name}/pending"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{counts}"
    );
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        parsed.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    );
}

/// The SDK with its *default* transport, configured only through the environment of a child
/// process (`SSL_CERT_FILE`, `AZURE_AUTHORITY_HOST`, …): the emulator works "unchanged".
/// Needs the `sdk_env_probe` example, which `cargo test` builds; skipped when it is absent.
#[tokio::test]
async fn official_sdk_configured_only_by_environment() {
    let exe = std::env::current_exe().unwrap();
    let probe = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("sdk_env_probe"))
        .unwrap();
    if !probe.exists() {
        eprintln!(
            "skipping: {} not built (run the whole `cargo test -p rotor-emulator`)",
            probe.display()
        );
        return;
    }
    let emu = sample().await;
    let mut cmd = tokio::process::Command::new(&probe);
    cmd.env_clear()
        .envs(&emu.endpoints().env)
        .arg(vault(&emu, "kv-staging"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe failed: {stdout} {stderr}");
    assert_eq!(stdout.trim(), "ok");
    let state = emu.state();
    assert!(state.to_string().contains("written-by-the-env-probe"));
}
