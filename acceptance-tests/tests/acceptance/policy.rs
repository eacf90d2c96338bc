//! `rotor_policy`: basic (apply / plan / destroy), update, import, validation diagnostics, and
//! that it needs no Azure at all.

use crate::support::{PROVIDER, Tf};

const POLICY: &str = r#"
resource "rotor_policy" "standard" {
  name       = "standard"
  exclusions = ["name:legacy-*"]
}

output "policy" {
  value = rotor_policy.standard
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_basic_needs_no_azure() {
    // No emulator and no credentials at all: a policy-only configuration must not authenticate.
    let tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    let apply = tf.apply().await.ok();
    assert!(apply.stdout.contains("1 added"), "{}", apply.output());
    let p = tf.resource("rotor_policy.standard");
    assert_eq!(p["id"], "standard");
    assert_eq!(p["rotate_before_expiry_days"], 30);
    assert_eq!(p["new_secret_validity_days"], 365);
    assert_eq!(p["min_confidence"], "HIGH");
    assert_eq!(p["grace_period_days"], 7);
    assert_eq!(p["max_concurrent"], 4);
    assert_eq!(p["exclusions"], serde_json::json!(["name:legacy-*"]));

    let plan = tf.plan().await;
    assert_eq!(
        plan.code,
        0,
        "second plan must be empty:\n{}",
        plan.output()
    );

    let destroy = tf.destroy().await.ok();
    assert!(
        destroy.stdout.contains("1 destroyed"),
        "{}",
        destroy.output()
    );
    assert!(tf.resource("rotor_policy.standard").is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_defaults_are_known_at_plan_time() {
    let tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    let (plan, _) = tf.plan_json().await;
    let after = &plan["resource_changes"][0]["change"]["after"];
    let unknown = &plan["resource_changes"][0]["change"]["after_unknown"];
    assert_eq!(after["new_secret_validity_days"], 365, "{plan}");
    for (k, v) in unknown.as_object().expect("after_unknown") {
        assert_ne!(v, &serde_json::json!(true), "`{k}` is unknown at plan time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_update_in_place() {
    let tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    tf.apply().await.ok();
    tf.config(&format!(
        "{PROVIDER}{}",
        POLICY.replace(
            "exclusions = [\"name:legacy-*\"]",
            "exclusions = []\n  grace_period_days = 14"
        )
    ));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(plan.stdout.contains("1 to change"), "{}", plan.output());
    tf.apply().await.ok();
    assert_eq!(
        tf.resource("rotor_policy.standard")["grace_period_days"],
        14
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_import_by_name() {
    let tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    tf.run(&["import", "rotor_policy.standard", "standard"])
        .await
        .ok();
    assert_eq!(tf.resource("rotor_policy.standard")["name"], "standard");
    // the import has no exclusions; the plan adds them in place
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(plan.stdout.contains("1 to change"), "{}", plan.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_bad_values_point_at_the_attribute() {
    let tf = Tf::new(None);
    tf.config(&format!(
        r#"{PROVIDER}
resource "rotor_policy" "bad" {{
  name                      = "bad"
  rotate_before_expiry_days = -5
  min_confidence            = "CERTAIN"
  exclusions                = ["name:ok-*", "legacy-*"]
}}
"#
    ));
    let plan = tf.plan().await.failed();
    let err = &plan.stderr;
    assert!(err.contains("rotate_before_expiry_days = -5"), "{err}");
    assert!(
        err.contains("-5 is out of range: must be from 0 to 3650"),
        "{err}"
    );
    assert!(
        err.contains("min_confidence            = \"CERTAIN\""),
        "{err}"
    );
    assert!(err.contains("HIGH, MEDIUM or LOW"), "{err}");
    assert!(err.contains("exclusion `legacy-*`"), "{err}");
    assert!(err.contains("app-id:GLOB"), "{err}");
}
