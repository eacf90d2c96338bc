//! Every configuration under `examples/terraform/` is planned and applied against the emulator,
//! and its effect is checked in the emulator's state.

use serde_json::json;

use crate::secret_link::{APP_ID, CALM_APP_ID, CALM_KEY, DUE_KEY, fixture, vault};
use crate::support::{Tf, emulator, passwords, vault_versions, workspace_root};

fn example(name: &str) -> std::path::PathBuf {
    workspace_root().join("examples/terraform").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_provider_needs_no_azure() {
    let tf = Tf::new(None);
    tf.copy_dir(&example("provider"));
    tf.apply().await.ok();
    assert_eq!(
        tf.resource("rotor_policy.standard")["new_secret_validity_days"],
        180
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_one_link_three_vaults_rotates_all_three() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.copy_dir(&example("one-link-three-vaults"));
    tf.write(
        "terraform.tfvars.json",
        &json!({
            "application_id": APP_ID,
            "targets": {
                "prod": {"vault_url": vault(&em, "kv-prod"), "secret_name": "myapp-client-secret"},
                "dev": {"vault_url": vault(&em, "kv-dev"), "secret_name": "myapp-client-secret"},
                "dr": {"vault_url": vault(&em, "kv-dr"), "secret_name": "myapp-client-secret"}
            }
        })
        .to_string(),
    );
    tf.apply().await.ok();
    let key = tf.resource("rotor_secret_link.myapp")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, DUE_KEY, "the due secret was rotated");
    for v in ["kv-prod", "kv-dev", "kv-dr"] {
        let versions = vault_versions(&em, v, "myapp-client-secret");
        assert_eq!(
            versions.last().expect("version")["tags"]["rotor-key-id"],
            key.as_str(),
            "{v}"
        );
    }
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_policy_with_exclusions_applies_the_shared_policy() {
    let mut f = fixture();
    f["applications"].as_array_mut().expect("apps").push(json!({
        "object_id": "a0000003-0000-4000-8000-000000000003", "app_id": "b0000003-0000-4000-8000-000000000003",
        "display_name": "legacy-portal", "sign_in_audience": "AzureADMyOrg",
        "password_credentials": [{"key_id": "c0000003-0000-4000-8000-000000000301", "display_name": "main",
            "secret_text": "Lgc8Q~legacy-secret-value-0003-abcdefgh", "start": "-360d", "end": "+5d"}]}));
    f["vaults"][0]["secrets"]
        .as_array_mut()
        .expect("secrets")
        .push(json!({
        "name": "legacy-portal-client-secret", "value": "Lgc8Q~legacy-secret-value-0003-abcdefgh",
        "tags": {"app-id": "b0000003-0000-4000-8000-000000000003"}, "expires": "+5d"}));
    let em = emulator(f).await;
    let tf = Tf::new(Some(&em));
    tf.copy_dir(&example("policy-with-exclusions"));
    tf.write(
        "terraform.tfvars.json",
        &json!({
            "vault_url": vault(&em, "kv-prod"),
            "apps": {
                "billing-api-client-secret": {"application_id": CALM_APP_ID, "credential_display_name": "prod"},
                "legacy-portal-client-secret": {"application_id": "b0000003-0000-4000-8000-000000000003", "credential_display_name": "main"}
            }
        })
        .to_string(),
    );
    tf.apply().await.ok();
    // billing-api: 200 days left, 45-day policy → adopted, not rotated; legacy: excluded.
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1);
    assert_eq!(
        passwords(&em, "b0000003-0000-4000-8000-000000000003").len(),
        1
    );
    let out = tf.run(&["output", "-json"]).await.ok();
    let outputs: serde_json::Value = serde_json::from_str(&out.stdout).expect("outputs");
    assert_eq!(
        outputs["excluded"]["value"],
        json!({"legacy-portal-client-secret": "name:legacy-*"}),
        "{}",
        out.stdout
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_discovery_for_each_links_every_match() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.copy_dir(&example("discovery-for-each"));
    let urls: Vec<String> = ["kv-prod", "kv-dev", "kv-dr"]
        .iter()
        .map(|v| vault(&em, v))
        .collect();
    tf.write(
        "terraform.tfvars.json",
        &json!({"vault_urls": urls}).to_string(),
    );
    let apply = tf.apply().await.ok();
    let out = tf.run(&["output", "-json"]).await.ok();
    let outputs: serde_json::Value = serde_json::from_str(&out.stdout).expect("outputs");
    let links = outputs["links"]["value"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        links.iter().any(|l| l == "MyApp/Secret 1"),
        "{links:?}\n{}",
        apply.output()
    );
    assert!(links.iter().any(|l| l == "billing-api/prod"), "{links:?}");
    let expiring = outputs["expiring_applications"]["value"].to_string();
    assert!(
        expiring.contains("MyApp") && !expiring.contains("billing-api"),
        "{expiring}"
    );
    // MyApp was due: rotated in all three vaults; billing-api adopted as is.
    assert_eq!(passwords(&em, APP_ID).len(), 2);
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1);
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_import_adopts_then_plans_nothing() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.copy_dir(&example("import"));
    tf.write(
        "terraform.tfvars.json",
        &json!({"vault_url": vault(&em, "kv-prod"), "application_id": CALM_APP_ID}).to_string(),
    );
    tf.run(&[
        "import",
        "rotor_secret_link.billing",
        // the form the example's README shows: the resource's own id
        &format!("{CALM_APP_ID}/prod"),
    ])
    .await
    .ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_certificate_link_rotates_the_due_certificate() {
    use crate::certificate_link as cert;
    let em = emulator(cert::fixture()).await;
    // Key Vault holds a version the application lacks (as after AutoRenew): the apply syncs it
    cert::create_certificate(&em, cert::CERT).await;
    let tf = Tf::new(Some(&em));
    tf.copy_dir(&example("certificate-link"));
    tf.write(
        "terraform.tfvars.json",
        &json!({
            "application_id": cert::CERT_APP,
            "vault_url": em.endpoints().vaults[cert::VAULT],
            "certificate_name": cert::CERT,
        })
        .to_string(),
    );
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    tf.apply().await.ok();
    let thumbprint = cert::cert_versions(&em, cert::CERT)
        .last()
        .map(|v| v["thumbprint"].clone())
        .expect("version");
    assert_eq!(
        tf.resource("rotor_certificate_link.myapp")["thumbprint"],
        thumbprint
    );
    assert!(
        cert::key_credentials(&em, cert::CERT_APP)
            .iter()
            .any(|k| k["thumbprint"]
                .as_str()
                .map(str::to_ascii_uppercase)
                .as_ref()
                == thumbprint.as_str().map(str::to_string).as_ref()),
        "the application holds the certificate"
    );
    assert_eq!(tf.plan().await.code, 0);
}

/// Every example directory has a README that says what it shows, names each of its variables and
/// how to run it against the emulator, and is exercised by a test in this file.
#[test]
fn examples_each_have_a_readme_and_a_test() {
    let tests = std::fs::read_to_string(
        workspace_root().join("acceptance-tests/tests/acceptance/examples.rs"),
    )
    .expect("examples.rs");
    let root = workspace_root().join("examples/terraform");
    let mut dirs = 0;
    for entry in std::fs::read_dir(&root).expect("examples/terraform") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        dirs += 1;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|_| panic!("examples/terraform/{name}/README.md is missing"));
        assert!(
            readme.starts_with(&format!("# {name}\n")),
            "{name}/README.md title"
        );
        assert!(
            readme.contains("## Variables"),
            "{name}/README.md: no Variables section"
        );
        assert!(
            readme.contains("## Run it against the emulator"),
            "{name}/README.md: no emulator section"
        );
        for tf in std::fs::read_dir(&dir).expect("dir").flatten() {
            let path = tf.path();
            if path.extension().and_then(|e| e.to_str()) != Some("tf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("tf");
            for line in text.lines() {
                if let Some(var) = line
                    .strip_prefix("variable \"")
                    .and_then(|r| r.split('"').next())
                {
                    assert!(
                        readme.contains(&format!("`{var}`")),
                        "{name}/README.md does not describe variable `{var}`"
                    );
                }
            }
        }
        assert!(
            tests.contains(&format!("example(\"{name}\")")),
            "no test in examples.rs runs examples/terraform/{name}"
        );
        assert!(
            readme.contains("Exercised by `example_"),
            "{name}/README.md names its test"
        );
    }
    assert!(dirs >= 5, "{dirs} example directories");
}
