//! The complete picture: a shared `rotor_policy`, excluded and low-confidence links that are never
//! rotated, an imported due link whose plan warns and whose apply rotates, no secret value in
//! state / plan JSON / TF_LOG=trace, error diagnostics on the right attribute, and a terraform
//! killed mid-apply that converges on the next apply.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::secret_link::{APP_ID, CALM_APP_ID, CALM_KEY, DUE_KEY, fixture, vault};
use crate::support::{
    PROVIDER, Tf, assert_no_secrets, emulator, group_processes, kill_each, kill_group, passwords,
    principal, process_alive, total_requests, vault_versions,
};

const LEGACY_APP_ID: &str = "b0000003-0000-4000-8000-000000000003";
pub const LOW_APP_ID: &str = "b0000004-0000-4000-8000-000000000004";

/// The standard fixture plus an excluded app (`legacy-portal`) and a low-confidence one whose
/// vault secret only follows the naming convention.
pub fn complete_fixture() -> Value {
    let mut f = fixture();
    let apps = f["applications"].as_array_mut().expect("applications");
    apps.push(json!({"object_id": "a0000003-0000-4000-8000-000000000003", "app_id": LEGACY_APP_ID,
        "display_name": "legacy-portal", "sign_in_audience": "AzureADMyOrg",
        "password_credentials": [{"key_id": "c0000003-0000-4000-8000-000000000301", "display_name": "main",
            "secret_text": "Lgc8Q~legacy-secret-value-0003-abcdefgh", "start": "-360d", "end": "+5d"}]}));
    apps.push(json!({"object_id": "a0000004-0000-4000-8000-000000000004", "app_id": LOW_APP_ID,
        "display_name": "lowapp", "sign_in_audience": "AzureADMyOrg",
        "password_credentials": [{"key_id": "c0000004-0000-4000-8000-000000000401", "display_name": "main",
            "secret_text": "Low8Q~low-confidence-value-0004-abcdefgh", "start": "-360d", "end": "+5d"}]}));
    let vaults = f["vaults"].as_array_mut().expect("vaults");
    let secrets = vaults[0]["secrets"].as_array_mut().expect("secrets");
    secrets.push(json!({"name": "legacy-portal-client-secret", "value": "Lgc8Q~legacy-secret-value-0003-abcdefgh",
        "tags": {"app-id": LEGACY_APP_ID}, "expires": "+5d"}));
    secrets.push(
        json!({"name": "lowapp-client-secret", "value": "Xyz-some-other-value-not-the-credential"}),
    );
    f
}

fn policy_block(extra: &str) -> String {
    format!(
        "resource \"rotor_policy\" \"standard\" {{\n  name = \"standard\"\n  exclusions = [\"name:legacy-*\"]\n{extra}}}\n"
    )
}

fn link(
    em: &rotor_emulator::Emulator,
    name: &str,
    app: &str,
    lineage: &str,
    targets: &[(&str, &str)],
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
        "resource \"rotor_secret_link\" \"{name}\" {{\n  application_id = \"{app}\"\n  credential_display_name = \"{lineage}\"\n  policy = rotor_policy.standard\n  targets = [\n{}\n  ]\n}}\n",
        targets.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_excluded_and_low_confidence_links_are_never_rotated() {
    let em = emulator(complete_fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}{}{}{}",
        policy_block(""),
        link(
            &em,
            "legacy",
            LEGACY_APP_ID,
            "main",
            &[("kv-prod", "legacy-portal-client-secret")]
        ),
        link(
            &em,
            "low",
            LOW_APP_ID,
            "main",
            &[("kv-prod", "lowapp-client-secret")]
        ),
    ));
    // Both credentials expire in 5 days, yet neither may be rotated; the plan says why.
    let plan = tf.plan().await;
    let out = plan.output();
    assert_eq!(plan.code, 2, "{out}");
    assert!(
        out.contains("excluded by policy exclusion `name:legacy-*`"),
        "{out}"
    );
    assert!(out.contains("below the policy minimum HIGH"), "{out}");
    tf.apply().await.ok();
    assert_eq!(passwords(&em, LEGACY_APP_ID).len(), 1);
    assert_eq!(passwords(&em, LOW_APP_ID).len(), 1);
    assert_eq!(
        vault_versions(&em, "kv-prod", "legacy-portal-client-secret").len(),
        1
    );
    assert_eq!(
        vault_versions(&em, "kv-prod", "lowapp-client-secret").len(),
        1
    );
    let legacy = tf.resource("rotor_secret_link.legacy");
    assert_eq!(legacy["excluded"], "name:legacy-*");
    assert_eq!(legacy["rotation_due"], false);
    assert!(
        legacy["rotation_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("never rotated"),
        "{legacy}"
    );
    let low = tf.resource("rotor_secret_link.low");
    assert_ne!(low["confidence"], "HIGH", "{low}");
    assert_eq!(low["rotation_due"], false);
    // Steady state.
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_imported_due_link_plans_a_warned_update_and_no_secret_leaks() {
    let em = emulator(complete_fixture()).await;
    let mut tf = Tf::new(Some(&em));
    let urls: Vec<String> = ["kv-prod", "kv-dev", "kv-dr"]
        .iter()
        .map(|v| vault(&em, v))
        .collect();
    tf.set_env("ROTOR_VAULTS", &urls.join(","));
    let three = [
        ("kv-prod", "myapp-client-secret"),
        ("kv-dev", "myapp-client-secret"),
        ("kv-dr", "myapp-client-secret"),
    ];
    tf.config(&format!(
        "{PROVIDER}{}{}",
        policy_block(""),
        link(&em, "myapp", APP_ID, "Secret 1", &three)
    ));
    tf.run(&["apply", "-auto-approve", "-target=rotor_policy.standard"])
        .await
        .ok();
    tf.run(&[
        "import",
        "rotor_secret_link.myapp",
        &format!("{APP_ID}/{DUE_KEY}"),
    ])
    .await
    .ok();
    let imported = tf.resource("rotor_secret_link.myapp");
    assert_eq!(imported["current_key_id"], DUE_KEY);
    assert_eq!(imported["rotation_due"], true, "{imported}");

    // The plan: an in-place update with the new key unknown and a warning saying why.
    let mut tf_trace = tf;
    tf_trace.set_env("TF_LOG", "trace");
    tf_trace.set_env(
        "TF_LOG_PATH",
        &tf_trace.path().join("trace.log").display().to_string(),
    );
    let (plan, run) = tf_trace.plan_json().await;
    let change = plan["resource_changes"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["address"] == "rotor_secret_link.myapp"))
        .expect("link change")
        .clone();
    assert_eq!(change["change"]["actions"], json!(["update"]), "{change}");
    assert_eq!(
        change["change"]["after_unknown"]["current_key_id"], true,
        "{change}"
    );
    let out = run.output();
    assert!(
        out.contains("Warning:") && out.contains("will be rotated"),
        "{out}"
    );
    assert!(out.contains("expires at"), "the warning says why:\n{out}");
    let plan_text = plan.to_string();

    // Apply the saved plan: every target rotated.
    tf_trace
        .run(&["apply", "-auto-approve", "tfplan"])
        .await
        .ok();
    let state = tf_trace.resource("rotor_secret_link.myapp");
    let new_key = state["current_key_id"].as_str().expect("key").to_string();
    assert_ne!(new_key, DUE_KEY);
    for (v, s) in three {
        let versions = vault_versions(&em, v, s);
        assert_eq!(
            versions.last().expect("version")["tags"]["rotor-key-id"],
            new_key.as_str(),
            "{v}"
        );
    }
    assert_eq!(tf_trace.plan().await.code, 0);

    // No secret value anywhere Terraform writes.
    let log = std::fs::read_to_string(tf_trace.path().join("trace.log")).expect("trace log");
    assert!(
        log.len() > 10_000 && log.contains("rotor"),
        "TF_LOG=trace produced a log with provider lines"
    );
    assert_no_secrets(&em, "terraform.tfstate", &tf_trace.state_text());
    assert_no_secrets(&em, "terraform show -json (plan)", &plan_text);
    assert_no_secrets(&em, "the TF_LOG=trace log", &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_bad_configuration_points_at_the_attribute() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));

    // invalid vault URL → targets
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"x\" {{\n  application_id = \"{APP_ID}\"\n  credential_display_name = \"Secret 1\"\n  targets = [{{ vault_url = \"kv-prod\", secret_name = \"myapp-client-secret\" }}]\n}}\n"
    ));
    let run = tf.plan().await.failed();
    assert!(
        run.stderr.contains("validating target vault URL `kv-prod`"),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("targets = [{"),
        "diagnostic points at targets:\n{}",
        run.output()
    );

    // unknown application → application_id
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"x\" {{\n  application_id = \"deadbeef-0000-4000-8000-000000000000\"\n  credential_display_name = \"Secret 1\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"myapp-client-secret\" }}]\n}}\n",
        vault(&em, "kv-prod")
    ));
    let run = tf.plan().await.failed();
    assert!(
        run.stderr.contains("deadbeef-0000-4000-8000-000000000000"),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("application_id = \"deadbeef"),
        "diagnostic points at application_id:\n{}",
        run.output()
    );

    // negative days in a link's inline policy → policy.rotate_before_expiry_days
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"x\" {{\n  application_id = \"{APP_ID}\"\n  credential_display_name = \"Secret 1\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"myapp-client-secret\" }}]\n  policy = {{\n    rotate_before_expiry_days = -1\n    new_secret_validity_days = 365\n    min_confidence = \"HIGH\"\n    grace_period_days = 7\n    exclusions = [\"app-id\"]\n  }}\n}}\n",
        vault(&em, "kv-prod")
    ));
    let run = tf.plan().await.failed();
    assert!(
        run.stderr
            .contains("`rotate_before_expiry_days`: -1 is out of range: must be from 0 to 3650"),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("exclusion `app-id`"),
        "malformed exclusion:\n{}",
        run.output()
    );
    assert!(
        run.stderr.contains("policy = {"),
        "diagnostic points at policy:\n{}",
        run.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_missing_permission_names_the_permission() {
    let mut f = fixture();
    f["principals"] = json!([{
        "client_id": "7c1e0d5a-0000-4000-8000-0000000000c1",
        "client_secret": "rotor-ci-secret-value-0123456789",
        "display_name": "rotor-ci",
        "graph_roles": [],
        "vault_roles": {"*": "Key Vault Secrets Officer"}
    }]);
    let _ = principal();
    let em = emulator(f).await;
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"x\" {{\n  application_id = \"{CALM_APP_ID}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
        vault(&em, "kv-prod")
    ));
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        out.contains("Application.ReadWrite.All") || out.contains("Application.Read.All"),
        "{out}"
    );
    assert!(
        out.contains("application_id = \""),
        "diagnostic points at application_id:\n{out}"
    );
    let _ = CALM_KEY;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_terraform_killed_mid_apply_converges_on_the_next_apply() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let three = [
        ("kv-prod", "myapp-client-secret"),
        ("kv-dev", "myapp-client-secret"),
        ("kv-dr", "myapp-client-secret"),
    ];
    let targets: Vec<String> = three
        .iter()
        .map(|(v, s)| {
            format!(
                "{{ vault_url = \"{}\", secret_name = \"{s}\" }}",
                vault(&em, v)
            )
        })
        .collect();
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"myapp\" {{\n  application_id = \"{APP_ID}\"\n  credential_display_name = \"Secret 1\"\n  targets = [{}]\n}}\n",
        targets.join(", ")
    ));
    // Slow down writes to kv-dr so the kill lands after some targets hold the new value.
    em.add_fault(
        json!({"method": "PUT", "vault": "kv-dr", "path": "/secrets/", "latency_ms": 30000}),
    )
    .expect("fault");
    let child = tf.spawn(&["apply", "-auto-approve", "-input=false"]);
    let pid = child.id().expect("pid");
    let start = Instant::now();
    loop {
        let written = ["kv-prod", "kv-dev"]
            .iter()
            .filter(|v| vault_versions(&em, v, "myapp-client-secret").len() >= 2)
            .count();
        if written >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the apply never wrote a target"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill terraform and the provider it started (the whole process group), like a crash.
    kill_group(pid);
    drop(child);
    em.clear_faults();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Nothing lost: the old credential is still there.
    assert!(
        passwords(&em, APP_ID)
            .iter()
            .any(|c| c["key_id"] == DUE_KEY)
    );

    // Apply again: converged.
    std::fs::remove_file(tf.path().join(".terraform.tfstate.lock.info")).ok();
    let again = tf.apply().await;
    assert_eq!(again.code, 0, "{}", again.output());
    let state = tf.resource("rotor_secret_link.myapp");
    let key = state["current_key_id"].as_str().expect("key").to_string();
    assert_ne!(key, DUE_KEY);
    for (v, s) in three {
        let versions = vault_versions(&em, v, s);
        assert_eq!(
            versions.last().expect("version")["tags"]["rotor-key-id"],
            key.as_str(),
            "{v}: {versions:?}"
        );
    }
    let creds = passwords(&em, APP_ID);
    assert!(
        creds.iter().any(|c| c["key_id"] == DUE_KEY),
        "old credential kept for the grace period"
    );
    assert!(creds.iter().any(|c| c["key_id"] == key.as_str()));
    assert_eq!(tf.plan().await.code, 0, "converged");
}

/// Terraform is killed (`kill -9` of the terraform process only, as by the OOM killer or a CI
/// runner; the providers are not killed with it): the provider must notice, stop changing Azure
/// and exit within seconds instead of finishing the rotation on its own. The next apply converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_provider_stops_when_terraform_is_killed_mid_apply() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    let three = [
        ("kv-prod", "myapp-client-secret"),
        ("kv-dev", "myapp-client-secret"),
        ("kv-dr", "myapp-client-secret"),
    ];
    let targets: Vec<String> = three
        .iter()
        .map(|(v, s)| {
            format!(
                "{{ vault_url = \"{}\", secret_name = \"{s}\" }}",
                vault(&em, v)
            )
        })
        .collect();
    tf.config(&format!(
        "{PROVIDER}resource \"rotor_secret_link\" \"myapp\" {{\n  application_id = \"{APP_ID}\"\n  credential_display_name = \"Secret 1\"\n  targets = [{}]\n}}\n",
        targets.join(", ")
    ));
    // Writes to kv-dr take 8 s, so the kill lands mid-rotation.
    em.add_fault(
        json!({"method": "PUT", "vault": "kv-dr", "path": "/secrets/", "latency_ms": 8000}),
    )
    .expect("fault");
    let mut child = tf.spawn(&["apply", "-auto-approve", "-input=false"]);
    let pid = child.id().expect("pid");
    let start = Instant::now();
    let mut providers = Vec::new();
    loop {
        let now = group_processes(pid, "terraform-provi");
        if !now.is_empty() {
            providers = now;
        }
        let written = ["kv-prod", "kv-dev"]
            .iter()
            .filter(|v| vault_versions(&em, v, "myapp-client-secret").len() >= 2)
            .count();
        if written >= 1 && !providers.is_empty() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().await.expect("terraform output");
            panic!(
                "terraform exited ({status}) before a target was written:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the apply never wrote a target (providers {providers:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // `kill -9` the terraform process the user started, like a crash or a cancelled CI job.
    // Terraform 1.0 runs itself twice (panicwrap): the real one, the providers' parent, lives on
    // until its next line of output hits the closed pipe (up to 10 s: "Still creating...").
    let terraform = group_processes(pid, "terraform");
    assert!(terraform.contains(&pid), "{terraform:?}");
    kill_each(&[pid]);
    drop(child);
    let killed = Instant::now();

    // The provider exits within a few seconds.
    while providers.iter().any(|p| process_alive(*p)) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "provider process(es) {providers:?} still running {:?} after terraform was killed",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited = killed.elapsed();
    // ... and no request reaches Azure after that, even once the slow write would have finished.
    let after_exit = total_requests(&em);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        total_requests(&em),
        after_exit,
        "Azure kept receiving requests after the provider exited ({exited:?} after the kill)"
    );
    em.clear_faults();
    assert!(
        passwords(&em, APP_ID)
            .iter()
            .any(|c| c["key_id"] == DUE_KEY),
        "the old credential is kept"
    );
    // The real terraform process has lost its provider; make sure it is gone too.
    let left: Vec<u32> = terraform
        .into_iter()
        .filter(|p| process_alive(*p))
        .collect();
    if !left.is_empty() {
        kill_each(&left);
    }

    // The next apply finishes (or cleans up) the interrupted rotation.
    std::fs::remove_file(tf.path().join(".terraform.tfstate.lock.info")).ok();
    let again = tf.apply().await;
    assert_eq!(again.code, 0, "{}", again.output());
    let key = tf.resource("rotor_secret_link.myapp")["current_key_id"]
        .as_str()
        .expect("key")
        .to_string();
    assert_ne!(key, DUE_KEY);
    for (v, s) in three {
        let versions = vault_versions(&em, v, s);
        assert_eq!(
            versions.last().expect("version")["tags"]["rotor-key-id"],
            key.as_str(),
            "{v}: {versions:?}"
        );
    }
    assert_eq!(tf.plan().await.code, 0, "converged");
}
