//! Data sources `rotor_applications` (discovery) and `rotor_matches` (matching), read through
//! Terraform against the emulator.

use serde_json::{Value, json};

use crate::secret_link::{APP_ID, CALM_APP_ID, fixture, vault};
use crate::support::{PROVIDER, Tf, assert_no_secrets, emulator};

async fn outputs(tf: &Tf) -> Value {
    let out = tf.run(&["output", "-json"]).await.ok();
    serde_json::from_str(&out.stdout).expect("outputs JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_filters_and_lists_credentials_without_values() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        r#"{PROVIDER}
data "rotor_applications" "billing" {{
  filter = "billing-*"
}}
data "rotor_applications" "expiring" {{
  expiring_within_days = 30
}}
output "billing" {{ value = data.rotor_applications.billing.applications }}
output "expiring" {{ value = [for a in data.rotor_applications.expiring.applications : a.app_id] }}
"#
    ));
    tf.apply().await.ok();
    let o = outputs(&tf).await;
    let billing = o["billing"]["value"].as_array().expect("list").clone();
    assert_eq!(billing.len(), 1, "{billing:?}");
    assert_eq!(billing[0]["app_id"], CALM_APP_ID);
    assert_eq!(billing[0]["secret_count"], 1);
    assert_eq!(billing[0]["credentials"][0]["kind"], "secret");
    assert_eq!(o["expiring"]["value"], json!([APP_ID]));
    assert_no_secrets(&em, "terraform.tfstate", &tf.state_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_report_confidence_and_signals_and_group_links() {
    let mut f = fixture();
    // A secret that only follows the naming convention: a LOW match, never part of `links`.
    f["applications"].as_array_mut().expect("apps").push(json!({
        "object_id": "a0000004-0000-4000-8000-000000000004", "app_id": "b0000004-0000-4000-8000-000000000004",
        "display_name": "lowapp", "password_credentials": [{"key_id": "c0000004-0000-4000-8000-000000000401",
        "display_name": "main", "secret_text": "Low8Q~low-confidence-value-0004-abcdefgh", "start": "-10d", "end": "+100d"}]}));
    f["vaults"][0]["secrets"]
        .as_array_mut()
        .expect("secrets")
        .push(json!({
        "name": "lowapp-client-secret", "value": "Xyz-some-other-value-not-the-credential"}));
    let em = emulator(f).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        r#"{PROVIDER}
data "rotor_matches" "all" {{
  vault_urls     = ["{}", "{}", "{}"]
  min_confidence = "HIGH"
}}
output "matches" {{ value = data.rotor_matches.all.matches }}
output "links" {{ value = data.rotor_matches.all.links }}
"#,
        vault(&em, "kv-prod"),
        vault(&em, "kv-dev"),
        vault(&em, "kv-dr")
    ));
    tf.apply().await.ok();
    let o = outputs(&tf).await;
    let matches = o["matches"]["value"].as_array().expect("matches").clone();
    let myapp: Vec<&Value> = matches.iter().filter(|m| m["app_id"] == APP_ID).collect();
    assert_eq!(
        myapp.len(),
        3,
        "MyApp's secret is in three vaults: {matches:?}"
    );
    assert!(myapp.iter().all(|m| m["confidence"] == "HIGH"), "{myapp:?}");
    assert!(
        myapp[0]["signals"]
            .as_array()
            .expect("signals")
            .contains(&json!("hint")),
        "{myapp:?}"
    );
    let low: Vec<&Value> = matches
        .iter()
        .filter(|m| m["app_name"] == "lowapp")
        .collect();
    assert!(low.iter().all(|m| m["confidence"] != "HIGH"), "{low:?}");
    let links = o["links"]["value"].as_object().expect("links").clone();
    assert_eq!(
        links["MyApp/Secret 1"]["targets"].as_array().map(Vec::len),
        Some(3),
        "{links:?}"
    );
    assert!(links.contains_key("billing-api/prod"), "{links:?}");
    assert!(
        !links.keys().any(|k| k.starts_with("lowapp")),
        "LOW matches are not links: {links:?}"
    );
    assert_no_secrets(&em, "terraform.tfstate", &tf.state_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_bad_min_confidence_points_at_the_attribute() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}data \"rotor_matches\" \"x\" {{\n  vault_urls = [\"{}\"]\n  min_confidence = \"SURE\"\n}}\n",
        vault(&em, "kv-prod")
    ));
    let run = tf.plan().await.failed();
    assert!(
        run.stderr.contains("min_confidence = \"SURE\""),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("HIGH, MEDIUM or LOW"),
        "{}",
        run.output()
    );
}
