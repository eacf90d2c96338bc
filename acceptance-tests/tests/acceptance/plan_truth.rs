//! Plans that tell the truth: cleanup on schedule, blocked links warned on every plan, a target
//! overwritten with a foreign value, repair that is not rotation, a partial failure finished by
//! the next apply. Every test checks the emulator's state, not only Terraform's.

use std::time::Duration;

use serde_json::json;

use crate::secret_link::{APP_ID, CALM_APP_ID, CALM_KEY, DUE_KEY, fixture, vault};
use crate::support::{
    PROVIDER, Tf, assert_no_secrets, emulator, kv_put, kv_send, passwords, vault_versions,
};

const DUE_VALUE: &str = "Myk8Q~due-secret-value-0001-abcdefghij";

fn link(
    em: &rotor_emulator::Emulator,
    name: &str,
    app: &str,
    lineage: &str,
    targets: &[(&str, &str)],
    extra: &str,
) -> String {
    let t: Vec<String> = targets
        .iter()
        .map(|(v, s)| {
            format!(
                "    {{ vault_url = \"{}\", secret_name = \"{s}\" }},",
                vault(em, v)
            )
        })
        .collect();
    format!(
        "resource \"rotor_secret_link\" \"{name}\" {{\n  application_id = \"{app}\"\n  credential_display_name = \"{lineage}\"\n  targets = [\n{}\n  ]\n{extra}}}\n",
        t.join("\n")
    )
}

fn inline_policy(before_days: u32, exclusions: &str) -> String {
    format!(
        "  policy = {{\n    rotate_before_expiry_days = {before_days}\n    new_secret_validity_days = 365\n    min_confidence = \"HIGH\"\n    grace_period_days = 7\n    exclusions = [{exclusions}]\n  }}\n"
    )
}

const THREE: &[(&str, &str)] = &[
    ("kv-prod", "myapp-client-secret"),
    ("kv-dev", "myapp-client-secret"),
    ("kv-dr", "myapp-client-secret"),
];

fn latest_key(em: &rotor_emulator::Emulator, v: &str, s: &str) -> Option<String> {
    vault_versions(em, v, s)
        .last()
        .and_then(|x| x["tags"]["rotor-key-id"].as_str().map(str::to_string))
}

/// Eight days after a rotation (grace 7) the plan is an in-place update with a warning naming
/// the old credential, and apply removes it from Entra ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_cleanup_due_is_an_update_and_apply_removes_the_old_secret() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |t: &str| {
        format!(
            "{PROVIDER}{}",
            link(
                &em,
                "billing",
                CALM_APP_ID,
                "prod",
                &[("kv-prod", "billing-api-client-secret")],
                &format!("  rotate_when_changed = {{ epoch = \"{t}\" }}\n")
            )
        )
    };
    tf.config(&hcl("1"));
    tf.apply().await.ok();
    tf.config(&hcl("2"));
    tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 2);
    let new_key = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();

    // Inside the grace period: nothing to do.
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());

    em.age(Duration::from_secs(8 * 86_400));
    let plan = tf.plan().await;
    let out = plan.output();
    assert_eq!(plan.code, 2, "cleanup due must be a change:\n{out}");
    assert!(out.contains("1 to change"), "{out}");
    assert!(
        out.contains("Warning:") && out.contains("grace period is over") && out.contains(CALM_KEY),
        "{out}"
    );
    assert_eq!(
        passwords(&em, CALM_APP_ID).len(),
        2,
        "a plan changes nothing"
    );

    let apply = tf.apply().await.ok();
    let creds = passwords(&em, CALM_APP_ID);
    assert_eq!(
        creds.len(),
        1,
        "the old secret is removed:\n{}",
        apply.output()
    );
    assert_eq!(creds[0]["key_id"], new_key.as_str());
    let state = tf.resource("rotor_secret_link.billing");
    assert_eq!(state["previous_key_ids"], json!([]));
    assert_eq!(state["removable_key_ids"], json!([]));
    assert_eq!(
        latest_key(&em, "kv-prod", "billing-api-client-secret").as_deref(),
        Some(new_key.as_str())
    );
    assert_no_secrets(&em, "the cleanup apply", &apply.output());
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
}

/// A link rotor will not rotate warns on every plan while that matters: excluded and due, and a
/// `credential_display_name` no client secret has (NONE), naming the names the app has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_blocked_links_warn_on_every_plan() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}{}",
        link(
            &em,
            "excluded",
            APP_ID,
            "Secret 1",
            THREE,
            &inline_policy(30, "\"name:MyApp\"")
        ),
        link(
            &em,
            "renamed",
            CALM_APP_ID,
            "production",
            &[("kv-prod", "billing-api-client-secret")],
            ""
        ),
    ));
    tf.apply().await.ok();
    assert_eq!(passwords(&em, APP_ID).len(), 1, "excluded: never rotated");
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1);
    for round in 0..2 {
        let plan = tf.plan().await;
        let out = plan.output();
        assert_eq!(plan.code, 0, "round {round}: {out}");
        assert!(
            out.contains("will not be rotated: it is excluded by policy exclusion `name:MyApp`"),
            "round {round}: {out}"
        );
        assert!(
            out.contains("is due for rotation") && out.contains(DUE_KEY),
            "round {round}: {out}"
        );
        assert!(
            out.contains("remove the exclusion `name:MyApp`"),
            "round {round}: {out}"
        );
        assert!(
            out.contains("no target holds a client secret of the lineage `production`"),
            "round {round}: {out}"
        );
        assert!(
            out.contains("this application's are `prod`"),
            "round {round}: {out}"
        );
    }
    assert_eq!(passwords(&em, APP_ID).len(), 1);
    assert_eq!(
        vault_versions(&em, "kv-prod", "myapp-client-secret").len(),
        1
    );
}

/// A target overwritten with a value rotor did not write: the plan names it and says what to do
/// (rotor never overwrites such a value), on every plan; nothing is rotated or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_target_overwritten_with_a_foreign_value_is_warned() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}",
        link(
            &em,
            "myapp",
            APP_ID,
            "Secret 1",
            THREE,
            &inline_policy(10, "")
        )
    ));
    tf.apply().await.ok();
    assert_eq!(tf.resource("rotor_secret_link.myapp")["confidence"], "HIGH");
    kv_put(
        &em,
        "kv-dr",
        "myapp-client-secret",
        "Zzz8Q~someone-elses-value-0000-abcdefghij",
        json!({}),
    )
    .await;

    let plan = tf.plan().await;
    let out = plan.output();
    assert!(
        out.contains("Warning:") && out.contains("will not be rotated"),
        "{out}"
    );
    assert!(
        out.contains("myapp-client-secret` got a new version that rotor did not write"),
        "{out}"
    );
    assert!(
        out.contains("set it back to the version rotor wrote"),
        "{out}"
    );
    let plan = tf.plan().await;
    let out = plan.output();
    assert!(
        out.contains("will not be rotated") && out.contains("rotor did not write"),
        "second plan:\n{out}"
    );
    tf.apply().await.ok();
    assert_eq!(passwords(&em, APP_ID).len(), 1, "nothing rotated");
    assert_eq!(
        vault_versions(&em, "kv-dr", "myapp-client-secret").len(),
        2,
        "rotor did not overwrite it"
    );
    assert_eq!(
        vault_versions(&em, "kv-prod", "myapp-client-secret").len(),
        1
    );
}

/// A target restored to an older rotor value diverges: the plan is a repair, with the key id
/// known (not a rotation), and apply copies the current credential without creating one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_repair_keeps_the_key_id_known_and_creates_nothing() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |t: &str| {
        format!(
            "{PROVIDER}{}",
            link(
                &em,
                "myapp",
                APP_ID,
                "Secret 1",
                THREE,
                &format!(
                    "{}  rotate_when_changed = {{ epoch = \"{t}\" }}\n",
                    inline_policy(10, "")
                )
            )
        )
    };
    tf.config(&hcl("1"));
    tf.apply().await.ok();
    tf.config(&hcl("2"));
    tf.apply().await.ok();
    let key = tf.resource("rotor_secret_link.myapp")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, DUE_KEY);
    assert_eq!(passwords(&em, APP_ID).len(), 2);
    // Someone restores the previous value (with rotor's tags) into kv-dr.
    kv_put(
        &em,
        "kv-dr",
        "myapp-client-secret",
        DUE_VALUE,
        json!({"rotor-key-id": DUE_KEY, "app-id": APP_ID}),
    )
    .await;

    let (plan, run) = tf.plan_json().await;
    let out = run.output();
    assert!(
        out.contains("will be repaired") && !out.contains("will be rotated"),
        "{out}"
    );
    let change = plan["resource_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["address"] == "rotor_secret_link.myapp")
        .expect("change")["change"]
        .clone();
    assert_eq!(change["actions"], json!(["update"]), "{change}");
    assert_eq!(
        change["after"]["current_key_id"],
        key.as_str(),
        "key id known in the plan: {change}"
    );
    assert!(
        change["after_unknown"]["current_key_id"].is_null(),
        "{change}"
    );

    tf.apply().await.ok();
    assert_eq!(
        passwords(&em, APP_ID).len(),
        2,
        "a repair creates no credential"
    );
    for (v, s) in THREE {
        assert_eq!(latest_key(&em, v, s).as_deref(), Some(key.as_str()), "{v}");
    }
    assert_eq!(
        tf.resource("rotor_secret_link.myapp")["current_key_id"],
        key.as_str()
    );
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
}

/// A forced rotation that reached two of three targets: the re-apply finishes it (copies the new
/// credential to the third) instead of creating another credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_reapply_after_partial_failure_finishes_instead_of_rotating_again() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |t: &str| {
        format!(
            "{PROVIDER}{}",
            link(
                &em,
                "myapp",
                APP_ID,
                "Secret 1",
                THREE,
                &format!(
                    "{}  rotate_when_changed = {{ epoch = \"{t}\" }}\n",
                    inline_policy(10, "")
                )
            )
        )
    };
    tf.config(&hcl("1"));
    tf.apply().await.ok();
    em.add_fault(json!({"method": "PUT", "vault": "kv-dr", "path": "/secrets/", "status": 403}))
        .expect("fault");
    tf.config(&hcl("2"));
    let failed = tf.apply().await.failed();
    assert_no_secrets(&em, "the failed apply", &failed.output());
    let creds = passwords(&em, APP_ID);
    assert_eq!(creds.len(), 2, "{creds:?}");
    let new_key = creds.iter().find(|c| c["key_id"] != DUE_KEY).expect("new")["key_id"]
        .as_str()
        .expect("k")
        .to_string();
    em.clear_faults();

    let plan = tf.plan().await;
    let out = plan.output();
    assert_eq!(plan.code, 2, "{out}");
    assert!(out.contains("will be repaired"), "{out}");
    tf.apply().await.ok();
    assert_eq!(
        passwords(&em, APP_ID).len(),
        2,
        "one rotation for one trigger change"
    );
    for (v, s) in THREE {
        assert_eq!(
            latest_key(&em, v, s).as_deref(),
            Some(new_key.as_str()),
            "{v}"
        );
    }
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
}

/// What a rotation would run into is knowable at plan time: a soft-deleted target fails the plan
/// on `targets`, and nothing is changed in Azure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_soft_deleted_target_fails_the_plan() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    kv_send(
        &em,
        reqwest::Method::DELETE,
        "kv-dr",
        "/secrets/myapp-client-secret",
        None,
    )
    .await;
    tf.config(&format!(
        "{PROVIDER}{}",
        link(&em, "myapp", APP_ID, "Secret 1", THREE, "")
    ));
    let plan = tf.plan().await.failed();
    let out = plan.output();
    assert!(
        out.contains("soft-deleted") || out.contains("deleted but recoverable"),
        "{out}"
    );
    assert!(out.contains("myapp-client-secret"), "{out}");
    assert!(out.contains("targets = ["), "points at targets:\n{out}");
    assert_eq!(passwords(&em, APP_ID).len(), 1, "a plan creates nothing");
}

/// An application at Entra's password cap whose every password is inside its grace period: the
/// plan fails on application_id instead of the apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_truth_password_cap_with_nothing_removable_fails_the_plan() {
    let mut fx = fixture();
    let capped = "b0000003-0000-4000-8000-000000000003";
    let (old, cur) = (
        "c0000003-0000-4000-8000-000000000301",
        "c0000003-0000-4000-8000-000000000302",
    );
    let cur_value = "Cap8Q~capped-secret-value-0003-abcdefghij";
    fx["applications"].as_array_mut().expect("apps").push(json!({
        "object_id": "a0000003-0000-4000-8000-000000000003", "app_id": capped,
        "display_name": "consumer", "sign_in_audience": "AzureADandPersonalMicrosoftAccount",
        "password_credentials": [
            {"key_id": old, "display_name": "Secret 1", "secret_text": "Old8Q~capped-old-value-0003-abcdefghijkl", "start": "-300d", "end": "+60d"},
            {"key_id": cur, "display_name": "Secret 1 rotor:r1", "secret_text": cur_value, "start": "-2d", "end": "+20d"}
        ]}));
    fx["vaults"][0]["secrets"]
        .as_array_mut()
        .expect("secrets")
        .push(json!({
        "name": "consumer-secret", "value": cur_value, "content_type": "text/plain",
        "tags": {"app-id": capped, "rotor-key-id": cur}, "expires": "+20d"}));
    let em = emulator(fx).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}",
        link(
            &em,
            "c",
            capped,
            "Secret 1",
            &[("kv-prod", "consumer-secret")],
            ""
        )
    ));
    let plan = tf.plan().await.failed();
    let out = plan.output();
    assert!(out.contains("cap") || out.contains("room"), "{out}");
    assert!(
        out.contains("application_id = \"b0000003"),
        "points at application_id:\n{out}"
    );
    assert_eq!(passwords(&em, capped).len(), 2, "a plan changes nothing");
}
