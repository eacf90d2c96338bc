//! Settings that must mean what they say: target identity is case-insensitive (as Key Vault's
//! names are), `rotor_policy.max_concurrent` is deprecated (links never receive it) and its
//! descriptions say so.

use crate::secret_link::{APP_ID, fixture, vault};
use crate::support::{PROVIDER, Tf, emulator, passwords, vault_versions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_targets_differing_only_in_case_are_one_secret() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let prod = vault(&em, "kv-prod");
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"myapp\" {{\n  application_id = \"{APP_ID}\"\n  credential_display_name = \"Secret 1\"\n  targets = [\n    {{ vault_url = \"{prod}\", secret_name = \"myapp-client-secret\" }},\n    {{ vault_url = \"{prod}\", secret_name = \"MyApp-Client-Secret\" }},\n  ]\n}}\n"
    ));
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(out.contains("are the same Key Vault secret"), "{out}");
    assert!(
        out.contains("myapp-client-secret") && out.contains("MyApp-Client-Secret"),
        "{out}"
    );
    assert!(out.contains("targets = ["), "on targets:\n{out}");
    assert_eq!(passwords(&em, APP_ID).len(), 1);
    assert_eq!(
        vault_versions(&em, "kv-prod", "myapp-client-secret").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_policy_max_concurrent_is_deprecated_and_name_is_described_truly() {
    let tf = Tf::new(None);
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_policy\" \"p\" {{\n  name = \"p\"\n  max_concurrent = 2\n}}\n"
    ));
    let run = tf.plan().await;
    let out = run.output();
    assert_eq!(run.code, 2, "{out}");
    assert!(
        out.contains("max_concurrent") && out.contains("-parallelism"),
        "{out}"
    );
    let schema = tf.run(&["providers", "schema", "-json"]).await.ok();
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).expect("schema");
    let attrs = &schema["provider_schemas"]["registry.terraform.io/certifyclouds/rotor"]["resource_schemas"]
        ["rotor_policy"]["block"]["attributes"];
    assert_eq!(attrs["max_concurrent"]["deprecated"], true, "{attrs}");
    let name = attrs["name"]["description"].as_str().unwrap_or_default();
    assert!(!name.contains("shown in plans and audit records"), "{name}");
    assert!(name.contains("Links do not receive it"), "{name}");
}
