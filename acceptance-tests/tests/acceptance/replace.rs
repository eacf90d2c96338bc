//! `terraform apply -replace` and `terraform taint` on a `rotor_secret_link`: chosen behaviour —
//! like `azuread_application_password`, replacing a link rotates its credential (the plan shows
//! the key id unknown; the old secret is kept for the grace period). A plain destroy + create in
//! separate applies adopts instead.

use crate::secret_link::{CALM_APP_ID, CALM_KEY, fixture, vault};
use crate::support::{PROVIDER, Tf, emulator, passwords, vault_versions};

fn latest_key(em: &rotor_emulator::Emulator) -> Option<String> {
    vault_versions(em, "kv-prod", "billing-api-client-secret")
        .last()
        .and_then(|v| v["tags"]["rotor-key-id"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_and_taint_rotate_once_each() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"billing\" {{\n  application_id = \"{CALM_APP_ID}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
        vault(&em, "kv-prod")
    ));
    tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1, "create adopts");

    let plan = tf
        .run(&["plan", "-input=false", "-replace=rotor_secret_link.billing"])
        .await
        .ok();
    let out = plan.output();
    assert!(out.contains("1 to add, 0 to change, 1 to destroy"), "{out}");
    assert!(
        out.contains("current_key_id") && out.contains("(known after apply)"),
        "{out}"
    );

    let apply = tf
        .run(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-replace=rotor_secret_link.billing",
        ])
        .await
        .ok();
    let first = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(first, CALM_KEY, "-replace rotates:\n{}", apply.output());
    assert_eq!(
        passwords(&em, CALM_APP_ID).len(),
        2,
        "old secret kept for the grace period"
    );
    assert_eq!(latest_key(&em).as_deref(), Some(first.as_str()));
    assert_eq!(tf.plan().await.code, 0);

    tf.run(&["taint", "rotor_secret_link.billing"]).await.ok();
    tf.apply().await.ok();
    let second = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(second, first, "taint rotates");
    assert_eq!(latest_key(&em).as_deref(), Some(second.as_str()));
    assert_eq!(tf.plan().await.code, 0);

    // Destroy, then create in another apply: forgets, then adopts (no rotation).
    let before = passwords(&em, CALM_APP_ID).len();
    tf.destroy().await.ok();
    tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), before);
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        second.as_str()
    );
}
