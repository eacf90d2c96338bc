//! `rotor_secret_link`: basic / complete / update / import against the emulator, checking the
//! emulator's state (Entra credentials, Key Vault versions), not only Terraform's.

use serde_json::{Value, json};

use crate::support::{
    PROVIDER, Tf, assert_no_secrets, emulator, passwords, principal, requests, vault_versions,
};

pub const APP_ID: &str = "b0000001-0000-4000-8000-000000000001";
pub const DUE_KEY: &str = "c0000001-0000-4000-8000-000000000101";
pub const CALM_APP_ID: &str = "b0000002-0000-4000-8000-000000000002";
pub const CALM_KEY: &str = "c0000002-0000-4000-8000-000000000201";
const DUE_VALUE: &str = "Myk8Q~due-secret-value-0001-abcdefghij";
const CALM_VALUE: &str = "Clm8Q~calm-secret-value-0002-abcdefghij";

/// A tenant with a due application (secret expires in 25 days, held by three vaults) and a calm
/// one (expires in 200 days, held by one vault), plus an empty vault for adding targets.
pub fn fixture() -> Value {
    let due_secret = |name: &str| {
        json!({"name": name, "value": DUE_VALUE, "content_type": "text/plain",
               "tags": {"app-id": APP_ID, "app-name": "MyApp"}, "expires": "+25d"})
    };
    json!({
        "tenant_id": "6f1a2b3c-0000-4000-8000-000000000001",
        "principals": [principal()],
        "subscriptions": [{"id": "11111111-1111-4111-8111-111111111111", "name": "prod"}],
        "applications": [
            {"object_id": "a0000001-0000-4000-8000-000000000001", "app_id": APP_ID,
             "display_name": "MyApp", "sign_in_audience": "AzureADMyOrg",
             "password_credentials": [{"key_id": DUE_KEY, "display_name": "Secret 1",
                "secret_text": DUE_VALUE, "start": "-340d", "end": "+25d"}]},
            {"object_id": "a0000002-0000-4000-8000-000000000002", "app_id": CALM_APP_ID,
             "display_name": "billing-api", "sign_in_audience": "AzureADMyOrg",
             "password_credentials": [{"key_id": CALM_KEY, "display_name": "prod",
                "secret_text": CALM_VALUE, "start": "-100d", "end": "+200d"}]}
        ],
        "vaults": [
            {"name": "kv-prod", "subscription_id": "11111111-1111-4111-8111-111111111111", "resource_group": "rg",
             "secrets": [due_secret("myapp-client-secret"),
                         {"name": "billing-api-client-secret", "value": CALM_VALUE, "content_type": "text/plain",
                          "tags": {"app-id": CALM_APP_ID}, "expires": "+200d"}]},
            {"name": "kv-dev", "subscription_id": "11111111-1111-4111-8111-111111111111", "resource_group": "rg",
             "secrets": [due_secret("myapp-client-secret")]},
            {"name": "kv-dr", "subscription_id": "11111111-1111-4111-8111-111111111111", "resource_group": "rg",
             "secrets": [due_secret("myapp-client-secret")]},
            {"name": "kv-new", "subscription_id": "11111111-1111-4111-8111-111111111111", "resource_group": "rg",
             "secrets": []}
        ]
    })
}

pub fn vault(em: &rotor_emulator::Emulator, name: &str) -> String {
    em.endpoints().vaults[name].clone()
}

fn link_hcl(
    em: &rotor_emulator::Emulator,
    name: &str,
    app: &str,
    lineage: &str,
    targets: &[(&str, &str)],
    extra: &str,
) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(v, s)| {
            format!(
                "    {{ vault_url = \"{}\", secret_name = \"{s}\" }},",
                vault(em, v)
            )
        })
        .collect();
    format!(
        "resource \"rotor_secret_link\" \"{name}\" {{\n  application_id          = \"{app}\"\n  credential_display_name = \"{lineage}\"\n  targets = [\n{}\n  ]\n{extra}}}\n",
        targets.join("\n")
    )
}

/// `rotor_secret_link.billing`: the calm application's `prod` lineage held by `kv-prod`.
fn billing_hcl(em: &rotor_emulator::Emulator, extra: &str) -> String {
    link_hcl(
        em,
        "billing",
        CALM_APP_ID,
        "prod",
        &[("kv-prod", "billing-api-client-secret")],
        extra,
    )
}

/// A `rotate_when_changed` line whose trigger value is `trigger`.
fn trigger_line(trigger: &str) -> String {
    format!("  rotate_when_changed = {{ epoch = \"{trigger}\" }}\n")
}

const THREE: &[(&str, &str)] = &[
    ("kv-prod", "myapp-client-secret"),
    ("kv-dev", "myapp-client-secret"),
    ("kv-dr", "myapp-client-secret"),
];

fn latest_tag(
    em: &rotor_emulator::Emulator,
    vault: &str,
    secret: &str,
    tag: &str,
) -> Option<String> {
    vault_versions(em, vault, secret)
        .last()
        .and_then(|v| v["tags"][tag].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_basic_due_link_rotates_every_target() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}",
        link_hcl(&em, "myapp", APP_ID, "Secret 1", THREE, "")
    ));

    // Plan of a create on a due credential: warns that the first apply rotates.
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(plan.stdout.contains("1 to add"), "{}", plan.output());
    let all = plan.output();
    assert!(all.contains("Warning:") && all.contains("rotates"), "{all}");

    let apply = tf.apply().await.ok();
    let state = tf.resource("rotor_secret_link.myapp");
    let new_key = state["current_key_id"]
        .as_str()
        .expect("current_key_id")
        .to_string();
    assert_ne!(
        new_key,
        DUE_KEY,
        "the due credential was rotated:\n{}",
        apply.output()
    );
    assert_eq!(state["rotation_due"], false);
    assert_eq!(state["previous_key_ids"], json!([DUE_KEY]));
    assert_eq!(
        state["target_versions"].as_object().map(|m| m.len()),
        Some(3)
    );

    // Azure: a new credential exists, the old one is kept (grace period), every target holds the new one.
    let creds = passwords(&em, APP_ID);
    assert_eq!(creds.len(), 2, "{creds:?}");
    assert!(creds.iter().any(|c| c["key_id"] == new_key.as_str()));
    for (v, s) in THREE {
        let versions = vault_versions(&em, v, s);
        assert_eq!(versions.len(), 2, "{v}/{s}: {versions:?}");
        assert_eq!(
            latest_tag(&em, v, s, "rotor-key-id").as_deref(),
            Some(new_key.as_str()),
            "{v}"
        );
        assert_eq!(
            latest_tag(&em, v, s, "rotor-previous-key-id").as_deref(),
            Some(DUE_KEY),
            "{v}"
        );
    }

    // The next plan is empty.
    let plan = tf.plan().await;
    assert_eq!(
        plan.code,
        0,
        "plan after rotation must be empty:\n{}",
        plan.output()
    );

    // Nothing secret in state.
    assert_no_secrets(&em, "terraform.tfstate", &tf.state_text());

    // Destroy forgets the link and keeps every vault secret.
    tf.destroy().await.ok();
    for (v, s) in THREE {
        assert_eq!(vault_versions(&em, v, s).len(), 2, "{v}/{s} kept");
    }
    assert_eq!(passwords(&em, APP_ID).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_calm_link_is_adopted_without_a_new_credential() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!("{PROVIDER}{}", billing_hcl(&em, "")));
    let before = requests(&em, |r| r.starts_with("POST") && r.contains("addPassword"));
    tf.apply().await.ok();
    let state = tf.resource("rotor_secret_link.billing");
    assert_eq!(state["current_key_id"], CALM_KEY);
    assert_eq!(state["rotation_due"], false);
    assert_eq!(state["confidence"], "HIGH");
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1, "no new credential");
    assert_eq!(
        requests(&em, |r| r.starts_with("POST") && r.contains("addPassword")),
        before
    );
    assert_eq!(
        vault_versions(&em, "kv-prod", "billing-api-client-secret").len(),
        1,
        "no new version"
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_update_rotate_when_changed_and_targets() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |targets: &[(&str, &str)], trigger: &str| {
        format!(
            "{PROVIDER}{}",
            link_hcl(
                &em,
                "billing",
                CALM_APP_ID,
                "prod",
                targets,
                &trigger_line(trigger)
            )
        )
    };
    let one = [("kv-prod", "billing-api-client-secret")];
    tf.config(&hcl(&one, "1"));
    tf.apply().await.ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );

    // Add a target: the current value is copied, no rotation.
    let two = [
        ("kv-prod", "billing-api-client-secret"),
        ("kv-new", "billing-api"),
    ];
    tf.config(&hcl(&two, "1"));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(plan.stdout.contains("1 to change"), "{}", plan.output());
    tf.apply().await.ok();
    assert_eq!(
        passwords(&em, CALM_APP_ID).len(),
        1,
        "adding a target does not rotate"
    );
    let copied = vault_versions(&em, "kv-new", "billing-api");
    assert_eq!(copied.len(), 1, "{copied:?}");
    assert_eq!(
        copied[0]["value"], CALM_VALUE,
        "the new target holds the current value"
    );
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );
    assert_eq!(tf.plan().await.code, 0);

    // Change the trigger: forced rotation of both targets.
    tf.config(&hcl(&two, "2"));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.output().contains("rotate_when_changed"),
        "{}",
        plan.output()
    );
    tf.apply().await.ok();
    let key = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, CALM_KEY);
    assert_eq!(
        latest_tag(&em, "kv-prod", "billing-api-client-secret", "rotor-key-id").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        latest_tag(&em, "kv-new", "billing-api", "rotor-key-id").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(tf.plan().await.code, 0);

    // Remove a target: that secret is left alone.
    let versions_before = vault_versions(&em, "kv-new", "billing-api").len();
    tf.config(&hcl(&one, "2"));
    tf.apply().await.ok();
    assert_eq!(
        vault_versions(&em, "kv-new", "billing-api").len(),
        versions_before
    );
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["target_versions"]
            .as_object()
            .map(|m| m.len()),
        Some(1)
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_import_then_plan_is_empty() {
    let em = emulator(fixture()).await;
    let mut tf = Tf::new(Some(&em));
    let urls: Vec<String> = ["kv-prod", "kv-dev", "kv-dr", "kv-new"]
        .iter()
        .map(|v| vault(&em, v))
        .collect();
    tf.set_env("ROTOR_VAULTS", &urls.join(","));
    tf.config(&format!("{PROVIDER}{}", billing_hcl(&em, "")));
    // A malformed id is refused with the expected shape.
    let bad = tf
        .run(&["import", "rotor_secret_link.billing", "not-an-id"])
        .await
        .failed();
    assert!(
        bad.stderr
            .contains("<application_id>/<credential_display_name>"),
        "{}",
        bad.output()
    );

    let import = tf
        .run(&[
            "import",
            "rotor_secret_link.billing",
            &format!("{CALM_APP_ID}/{CALM_KEY}"),
        ])
        .await
        .ok();
    let state = tf.resource("rotor_secret_link.billing");
    assert_eq!(
        state["credential_display_name"],
        "prod",
        "{}",
        import.output()
    );
    assert_eq!(state["current_key_id"], CALM_KEY);
    let plan = tf.plan().await;
    assert_eq!(
        plan.code,
        0,
        "plan after import must be empty:\n{}",
        plan.output()
    );
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_update_policy_change_makes_it_due() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |before: u32| {
        format!(
            "{PROVIDER}resource \"rotor_policy\" \"p\" {{\n  name = \"p\"\n  rotate_before_expiry_days = {before}\n}}\n{}",
            billing_hcl(&em, "  policy = rotor_policy.p\n")
        )
    };
    tf.config(&hcl(30));
    tf.apply().await.ok();
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );

    // 200 days left; a policy that rotates 250 days before expiry makes it due now.
    tf.config(&hcl(250));
    let plan = tf.plan().await;
    let out = plan.output();
    assert_eq!(plan.code, 2, "{out}");
    assert!(
        out.contains("will be rotated") && out.contains("rotate_before_expiry_days = 250"),
        "{out}"
    );
    tf.apply().await.ok();
    let key = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, CALM_KEY);
    assert_eq!(
        latest_tag(&em, "kv-prod", "billing-api-client-secret", "rotor-key-id").as_deref(),
        Some(key.as_str())
    );
    let plan = tf.plan().await;
    assert_eq!(
        plan.code,
        0,
        "the new secret (365 days) is not due under the new policy:\n{}",
        plan.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_plan_shares_graph_reads_across_links() {
    // 2 applications × 4 credential lineages = 8 links; one provider process refreshes them all.
    let (apps, lineages) = (2, 4);
    let mut applications = Vec::new();
    let mut secrets = Vec::new();
    for a in 0..apps {
        let app_id = format!("b100000{a}-0000-4000-8000-000000000000");
        let mut creds = Vec::new();
        for l in 0..lineages {
            let key_id = format!("c100000{a}-000{l}-4000-8000-000000000000");
            let value = format!("S{a}{l}8Q~shared-read-secret-{a}-{l}-abcdefghijkl");
            creds.push(
                json!({"key_id": key_id, "display_name": format!("l{l}"), "secret_text": value,
                              "start": "-10d", "end": "+300d"}),
            );
            secrets.push(json!({"name": format!("a{a}-l{l}"), "value": value,
                                "tags": {"rotor-key-id": key_id}, "expires": "+300d"}));
        }
        applications.push(json!({"app_id": app_id, "display_name": format!("shared-{a}"), "password_credentials": creds}));
    }
    let em = emulator(
        json!({"principals": [crate::support::principal()], "applications": applications,
                             "vaults": [{"name": "kv-shared", "secrets": secrets}]}),
    )
    .await;
    let mut hcl = String::from(PROVIDER);
    for a in 0..apps {
        for l in 0..lineages {
            hcl.push_str(&link_hcl(
                &em,
                &format!("a{a}l{l}"),
                &format!("b100000{a}-0000-4000-8000-000000000000"),
                &format!("l{l}"),
                &[("kv-shared", &format!("a{a}-l{l}"))],
                "",
            ));
        }
    }
    let tf = Tf::new(Some(&em));
    tf.config(&hcl);
    tf.apply().await.ok();
    let graph = |em: &rotor_emulator::Emulator| requests(em, |r| r.contains("/v1.0/applications"));
    let before = graph(&em);
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
    let reads = graph(&em) - before;
    assert!(
        reads >= 1 && reads < (apps * lineages) as u64,
        "{reads} Graph reads for {apps} applications"
    );
    assert!(
        reads <= apps as u64 + 1,
        "{reads} Graph reads for {apps} applications: reads are not shared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_failed_rotation_keeps_the_old_secret_and_retries() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |trigger: &str| format!("{PROVIDER}{}", billing_hcl(&em, &trigger_line(trigger)));
    tf.config(&hcl("1"));
    tf.apply().await.ok();

    // Key Vault refuses the write: the apply fails, naming the secret and the vault.
    em.add_fault(json!({"method": "PUT", "vault": "kv-prod", "path": "/secrets/", "status": 403}))
        .expect("fault");
    tf.config(&hcl("2"));
    let failed = tf.apply().await.failed();
    let out = failed.output();
    assert!(out.contains("billing-api-client-secret"), "{out}");
    assert!(out.contains("403") || out.contains("Forbidden"), "{out}");
    // The old credential still works and is still what the target holds.
    assert!(
        passwords(&em, CALM_APP_ID)
            .iter()
            .any(|c| c["key_id"] == CALM_KEY)
    );
    assert_eq!(
        vault_versions(&em, "kv-prod", "billing-api-client-secret")
            .last()
            .expect("v")["value"],
        CALM_VALUE
    );
    assert_no_secrets(&em, "the failed apply's output", &out);

    // The forced rotation is still pending, and succeeds once Key Vault accepts writes again.
    em.clear_faults();
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    tf.apply().await.ok();
    let key = tf.resource("rotor_secret_link.billing")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, CALM_KEY);
    assert_eq!(
        latest_tag(&em, "kv-prod", "billing-api-client-secret", "rotor-key-id").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_cleanup_on_destroy_respects_the_grace_period() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let hcl = |trigger: &str| {
        format!(
            "{PROVIDER}{}",
            billing_hcl(
                &em,
                &format!("  cleanup_on_destroy = true\n{}", trigger_line(trigger))
            )
        )
    };
    tf.config(&hcl("1"));
    tf.apply().await.ok();
    tf.config(&hcl("2"));
    tf.apply().await.ok();
    assert_eq!(
        passwords(&em, CALM_APP_ID).len(),
        2,
        "old secret kept for the grace period"
    );
    let versions = vault_versions(&em, "kv-prod", "billing-api-client-secret").len();

    tf.destroy().await.ok();
    // The predecessor is still inside its 7-day grace period and the current one is held by the
    // target: cleanup removes neither, and no Key Vault secret is touched.
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 2);
    assert_eq!(
        vault_versions(&em, "kv-prod", "billing-api-client-secret").len(),
        versions
    );
}

/// A forced rotation (`rotate_when_changed` changed) that the engine skips because another run is
/// rotating the lineage must fail the apply and keep the old triggers, not exit 0 with a warning
/// and store the new triggers (the rotation would never happen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_forced_rotation_skipped_for_another_run_fails_and_stays_pending() {
    let mut f = fixture();
    // Another run's credential of the `prod` lineage, created 10 minutes ago (inside the 1 h
    // pending window), that no target holds yet: a rotation in progress.
    f["applications"][1]["password_credentials"]
        .as_array_mut()
        .expect("passwords")
        .push(json!({"key_id": "c0000002-0000-4000-8000-000000000299",
            "display_name": "prod rotor:5d1c7a2e-0000-4000-8000-0000000000aa",
            "secret_text": "Pnd8Q~pending-secret-value-0002-abcdefghij", "start": "-10m", "end": "+365d"}));
    let em = emulator(f).await;
    let tf = Tf::new(Some(&em));
    let hcl = |trigger: &str| format!("{PROVIDER}{}", billing_hcl(&em, &trigger_line(trigger)));
    tf.config(&hcl("1"));
    tf.apply().await.ok();
    let before = passwords(&em, CALM_APP_ID).len();

    tf.config(&hcl("2"));
    let failed = tf.apply().await.failed();
    let out = failed.output();
    assert!(
        out.contains("Error:") && out.contains("another rotation of this lineage is in progress"),
        "{out}"
    );
    assert!(
        out.contains("orphan"),
        "says when it becomes an orphan:\n{out}"
    );
    assert!(out.contains("re-run `terraform apply`"), "{out}");
    assert_no_secrets(&em, "the failed apply's output", &out);
    assert_eq!(passwords(&em, CALM_APP_ID).len(), before, "nothing created");
    // The old triggers stay in state: the next plan still forces the rotation.
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["rotate_when_changed"],
        json!({"epoch": "1"})
    );
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.output().contains("rotate_when_changed"),
        "{}",
        plan.output()
    );
}

/// Two `rotor_secret_link`s on one lineage (application id compared case-insensitively): rotating
/// one would break the other, so the plan fails naming both, and nothing changes in Azure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_two_links_on_one_lineage_fail_the_plan_naming_both() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}{}",
        link_hcl(
            &em,
            "prod",
            APP_ID,
            "Secret 1",
            &[("kv-prod", "myapp-client-secret")],
            ""
        ),
        link_hcl(
            &em,
            "dev",
            &APP_ID.to_ascii_uppercase(),
            "Secret 1",
            &[
                ("kv-dev", "myapp-client-secret"),
                ("kv-dr", "myapp-client-secret")
            ],
            ""
        ),
    ));
    let writes = |em: &rotor_emulator::Emulator| {
        requests(em, |r| {
            !(r.starts_with("GET") || r.starts_with("HEAD") || r.contains("/token"))
        })
    };
    let before = (writes(&em), passwords(&em, APP_ID).len());
    let plan = tf.plan().await.failed();
    let out = plan.output();
    assert!(
        out.contains("another rotor_secret_link in this configuration"),
        "{out}"
    );
    for v in ["kv-prod", "kv-dev", "kv-dr"] {
        let target = format!("{}myapp-client-secret", vault(&em, v)).to_ascii_lowercase();
        assert!(out.contains(&target), "names {target}:\n{out}");
    }
    assert!(out.contains("one rotor_secret_link per lineage"), "{out}");
    assert_no_secrets(&em, "the refused plan's output", &out);
    assert!(
        out.contains("credential_display_name = \"Secret 1\""),
        "points at credential_display_name:\n{out}"
    );
    let apply = tf.apply().await.failed();
    assert!(
        apply
            .output()
            .contains("another rotor_secret_link in this configuration"),
        "{}",
        apply.output()
    );
    assert_eq!(
        (writes(&em), passwords(&em, APP_ID).len()),
        before,
        "nothing changed in Azure"
    );
    for v in ["kv-prod", "kv-dev", "kv-dr"] {
        assert_eq!(
            vault_versions(&em, v, "myapp-client-secret").len(),
            1,
            "{v}"
        );
    }
}

/// A link whose lineage a Key Vault secret outside its targets holds (in a vault the provider can
/// see, `ROTOR_VAULTS`) is refused by the engine at apply (a conflict), on `targets`: rotating it
/// would leave that secret holding a credential cleanup removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_link_holder_outside_the_targets_is_refused_on_targets() {
    let mut f = fixture();
    // kv-dev's copy says which credential it holds (as rotor tags every secret it writes).
    f["vaults"][1]["secrets"][0]["tags"]["rotor-key-id"] = json!(DUE_KEY);
    let em = emulator(f).await;
    let mut tf = Tf::new(Some(&em));
    let urls: Vec<String> = ["kv-prod", "kv-dev", "kv-dr"]
        .iter()
        .map(|v| vault(&em, v))
        .collect();
    tf.set_env("ROTOR_VAULTS", &urls.join(","));
    tf.config(&format!(
        "{PROVIDER}{}",
        link_hcl(
            &em,
            "myapp",
            APP_ID,
            "Secret 1",
            &[("kv-prod", "myapp-client-secret")],
            ""
        )
    ));
    let before = passwords(&em, APP_ID).len();
    let run = tf.apply().await.failed();
    let out = run.output();
    assert!(out.contains("targets = ["), "points at targets:\n{out}");
    assert_eq!(passwords(&em, APP_ID).len(), before, "nothing created");
    for v in ["kv-prod", "kv-dev", "kv-dr"] {
        assert_eq!(
            vault_versions(&em, v, "myapp-client-secret").len(),
            1,
            "{v}"
        );
    }
}
