//! The plugin protocol as Terraform sees it: schema descriptions, prompt shutdown, plaintext mode,
//! `--debug` reattach, and the message for people who run the binary by hand.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{PROVIDER, Tf, provider_dir};

const POLICY: &str = "resource \"rotor_policy\" \"p\" {\n  name = \"p\"\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_schema_json_describes_every_attribute() {
    let tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    let run = tf.run(&["providers", "schema", "-json"]).await.ok();
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("schema JSON");
    let provider = &schema["provider_schemas"]["registry.terraform.io/certifyclouds/rotor"];
    assert!(provider.is_object(), "{}", run.stdout);
    let mut blocks = vec![(
        "provider".to_string(),
        provider["provider"]["block"].clone(),
    )];
    for kind in ["resource_schemas", "data_source_schemas"] {
        for (name, s) in provider[kind].as_object().expect(kind) {
            blocks.push((name.clone(), s["block"].clone()));
        }
    }
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "rotor_policy",
        "rotor_secret_link",
        "rotor_applications",
        "rotor_matches",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let mut count = 0;
    for (name, block) in blocks {
        assert!(
            block["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
        for (attr, a) in block["attributes"].as_object().expect("attributes") {
            count += 1;
            assert!(
                a["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{name}.{attr} has no description"
            );
        }
    }
    assert!(count > 40, "only {count} attributes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_graceful() {
    let mut tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    tf.set_env("TF_LOG", "debug");
    let run = tf.apply().await.ok();
    // go-plugin logs this when a plugin does not exit within 2 s of Shutdown and gets killed.
    assert!(
        !run.stderr.contains("plugin failed to exit gracefully"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("plugin exited"), "{}", run.stderr);
    // Our log lines reach Terraform's log parsed (level and message), not as raw JSON text:
    // go-plugin only parses hclog lines whose timestamp has hclog's exact layout.
    assert!(
        run.stderr
            .contains("[DEBUG] provider.terraform-provider-rotor: shutdown requested by Terraform"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("{\"@level\""),
        "unparsed provider log lines:\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_when_plugin_tls_is_disabled() {
    let mut tf = Tf::new(None);
    tf.config(&format!("{PROVIDER}{POLICY}"));
    tf.set_env("TF_DISABLE_PLUGIN_TLS", "1");
    tf.apply().await.ok();
    assert_eq!(tf.resource("rotor_policy.p")["id"], "p");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mode_prints_reattach_and_serves_terraform() {
    let bin = provider_dir().join("terraform-provider-rotor");
    let mut child = Command::new(&bin)
        .arg("--debug")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start provider --debug");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("Bash:") {
            let v = rest
                .trim()
                .trim_start_matches("export TF_REATTACH_PROVIDERS=")
                .trim_matches('\'');
            reattach = Some(v.to_string());
            break;
        }
    }
    let reattach = reattach.expect("TF_REATTACH_PROVIDERS line");
    let parsed: serde_json::Value = serde_json::from_str(&reattach).expect("reattach JSON");
    assert_eq!(
        parsed["registry.terraform.io/certifyclouds/rotor"]["ProtocolVersion"],
        6
    );

    // Each Terraform run configures the provider anew: a failed configuration first, then a
    // good one, served by the same process.
    let mut tf = Tf::new(None);
    tf.set_env("TF_REATTACH_PROVIDERS", &reattach);
    tf.config(&format!(
        "provider \"rotor\" {{\n  use_oidc = true\n}}\n{POLICY}"
    ));
    let bad = tf.apply().await;
    tf.config(&format!("{PROVIDER}{POLICY}"));
    let run = tf.apply().await;
    let _ = child.kill();
    let _ = child.wait();
    let bad = bad.failed();
    assert!(bad.stderr.contains("use_oidc"), "{}", bad.output());
    let run = run.ok();
    assert!(run.stdout.contains("1 added"), "{}", run.output());
}

#[test]
fn run_by_hand_says_it_is_a_plugin() {
    let out = Command::new(provider_dir().join("terraform-provider-rotor"))
        .env_clear()
        .output()
        .expect("run provider");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("This binary is a plugin"), "{err}");
    assert!(err.contains("terraform"), "{err}");
}

/// Under `--debug` one provider process serves every Terraform run, and each run's
/// `ConfigureProvider` counts: a run with a wrong client secret fails, the next one (right
/// secret, same process) works — the first configuration is not cached for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mode_rereads_the_configuration_on_each_run() {
    let em = crate::support::emulator(crate::secret_link::fixture()).await;
    let env = em.endpoints().env.clone();
    let bin = provider_dir().join("terraform-provider-rotor");
    let mut child = Command::new(&bin)
        .arg("--debug")
        .env_clear()
        .env("SSL_CERT_FILE", &env["SSL_CERT_FILE"])
        .env("ROTOR_LOOPBACK_ONLY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start provider --debug");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("Bash:") {
            reattach = Some(
                rest.trim()
                    .trim_start_matches("export TF_REATTACH_PROVIDERS=")
                    .trim_matches('\'')
                    .to_string(),
            );
            break;
        }
    }
    let reattach = reattach.expect("TF_REATTACH_PROVIDERS line");
    let block = |secret: &str| {
        format!(
            "provider \"rotor\" {{\n  tenant_id = \"{}\"\n  client_id = \"{}\"\n  client_secret = \"{secret}\"\n  authority_host = \"{}\"\n  graph_endpoint = \"{}\"\n  key_vault_verify_challenge = false\n}}\nresource \"rotor_secret_link\" \"billing\" {{\n  application_id = \"{}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
            env["AZURE_TENANT_ID"],
            env["AZURE_CLIENT_ID"],
            env["AZURE_AUTHORITY_HOST"],
            env["ROTOR_GRAPH_ENDPOINT"],
            crate::secret_link::CALM_APP_ID,
            crate::secret_link::vault(&em, "kv-prod"),
        )
    };
    let mut tf = Tf::new(None);
    tf.set_env("TF_REATTACH_PROVIDERS", &reattach);
    tf.config(&block("wrong-secret"));
    let bad = tf.plan().await;
    tf.config(&block(&env["AZURE_CLIENT_SECRET"]));
    let good = tf.plan().await;
    let _ = child.kill();
    let _ = child.wait();
    let bad = bad.failed();
    assert!(bad.stderr.contains("client secret"), "{}", bad.output());
    assert_eq!(
        good.code,
        2,
        "the second run uses its own configuration:\n{}",
        good.output()
    );
    assert!(good.stdout.contains("1 to add"), "{}", good.output());
}
