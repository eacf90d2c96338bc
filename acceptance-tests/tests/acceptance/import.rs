//! `terraform import rotor_secret_link`: the resource's own id round-trips; the key-id form still
//! works; errors give a fix that works for import.

use crate::complete::{LOW_APP_ID, complete_fixture};
use crate::secret_link::{CALM_APP_ID, CALM_KEY, fixture, vault};
use crate::support::{PROVIDER, Tf, emulator, passwords};

fn billing(em: &rotor_emulator::Emulator) -> String {
    format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"billing\" {{\n  application_id = \"{CALM_APP_ID}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
        vault(em, "kv-prod")
    )
}

fn scope(em: &rotor_emulator::Emulator, tf: &mut Tf) {
    let urls: Vec<String> = ["kv-prod", "kv-dev", "kv-dr", "kv-new"]
        .iter()
        .map(|v| vault(em, v))
        .collect();
    tf.set_env("ROTOR_VAULTS", &urls.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_by_the_resources_own_id_round_trips() {
    let em = emulator(fixture()).await;
    let mut tf = Tf::new(Some(&em));
    scope(&em, &mut tf);
    tf.config(&billing(&em));
    let id = format!("{CALM_APP_ID}/prod");
    let import = tf
        .run(&["import", "rotor_secret_link.billing", &id])
        .await
        .ok();
    let state = tf.resource("rotor_secret_link.billing");
    assert_eq!(state["id"], id.as_str(), "{}", import.output());
    assert_eq!(state["current_key_id"], CALM_KEY);
    assert_eq!(tf.plan().await.code, 0);

    // The id in state imports again (state rm, then import by that id).
    let stored = state["id"].as_str().expect("id").to_string();
    tf.run(&["state", "rm", "rotor_secret_link.billing"])
        .await
        .ok();
    tf.run(&["import", "rotor_secret_link.billing", &stored])
        .await
        .ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["id"],
        stored.as_str()
    );
    // The key-id form names the same link.
    tf.run(&["state", "rm", "rotor_secret_link.billing"])
        .await
        .ok();
    tf.run(&[
        "import",
        "rotor_secret_link.billing",
        &format!("{CALM_APP_ID}/{CALM_KEY}"),
    ])
    .await
    .ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["id"],
        stored.as_str()
    );
    assert_eq!(tf.plan().await.code, 0);
    assert_eq!(
        passwords(&em, CALM_APP_ID).len(),
        1,
        "import changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_errors_give_a_fix_that_works_for_import() {
    let em = emulator(complete_fixture()).await;
    let mut tf = Tf::new(Some(&em));
    scope(&em, &mut tf);
    tf.config(&billing(&em));

    let bad = tf
        .run(&["import", "rotor_secret_link.billing", "not-an-id"])
        .await
        .failed();
    assert!(
        bad.stderr
            .contains("<application_id>/<credential_display_name>")
            && bad.stderr.contains("<application_id>/<key_id>"),
        "{}",
        bad.output()
    );

    // A lineage the application does not have: the names it has.
    let none = tf
        .run(&[
            "import",
            "rotor_secret_link.billing",
            &format!("{CALM_APP_ID}/production"),
        ])
        .await
        .failed();
    let out = none.output();
    assert!(
        out.contains("no client secret named `production`") && out.contains("`prod`"),
        "{out}"
    );

    // Low confidence: no hint about listing targets (import takes none) or rotor.toml; the fix
    // is to declare the link.
    let low = tf
        .run(&[
            "import",
            "rotor_secret_link.billing",
            &format!("{LOW_APP_ID}/main"),
        ])
        .await
        .failed();
    let out = low.output();
    assert!(out.contains("confidence"), "{out}");
    assert!(!out.contains("list the targets explicitly"), "{out}");
    assert!(!out.contains("rotor.toml"), "{out}");
    assert!(
        out.contains("instead of importing, declare the rotor_secret_link"),
        "{out}"
    );
}

/// The emulator's `env` carries `ARM_SUBSCRIPTION_ID` (its first subscription), which is all the
/// provider needs to find vaults for an import: no `vault_urls` / `ROTOR_VAULTS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_finds_vaults_through_the_subscription_in_the_environment() {
    let em = emulator(fixture()).await;
    assert!(em.endpoints().env.contains_key("ARM_SUBSCRIPTION_ID"));
    assert!(em.endpoints().env.contains_key("AZURE_SUBSCRIPTION_ID"));
    let tf = Tf::new(Some(&em));
    tf.config(&billing(&em));
    tf.run(&[
        "import",
        "rotor_secret_link.billing",
        &format!("{CALM_APP_ID}/prod"),
    ])
    .await
    .ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );
    assert_eq!(tf.plan().await.code, 0);
}
