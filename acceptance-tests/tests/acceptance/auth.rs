//! Authentication like azurerm: configuration problems fail `ConfigureProvider` on the provider
//! block, naming the attribute and its `ARM_*`/`AZURE_*` variables; `use_oidc` means OIDC or an
//! error; an unreachable endpoint or a missing CA file fails in seconds with its cause.

use std::time::{Duration, Instant};

use crate::secret_link::{CALM_APP_ID, fixture, vault};
use crate::support::{Tf, emulator, total_requests};

fn config(em: &rotor_emulator::Emulator, provider: &str) -> String {
    format!(
        "{provider}\nresource \"rotor_secret_link\" \"billing\" {{\n  application_id = \"{CALM_APP_ID}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
        vault(em, "kv-prod")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_use_oidc_without_a_token_is_an_error_on_the_provider_block() {
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.config(&config(&em, "provider \"rotor\" {\n  use_oidc = true\n}\n"));
    let before = total_requests(&em);
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        out.contains("`use_oidc` is true (from provider setting `use_oidc`) but no OIDC token"),
        "{out}"
    );
    assert!(
        out.contains("use_oidc = true"),
        "points at use_oidc in the provider block:\n{out}"
    );
    assert!(out.contains("id-token: write"), "{out}");
    assert!(
        !out.contains("application_id = "),
        "not on a resource:\n{out}"
    );
    assert_eq!(
        total_requests(&em),
        before,
        "no fallback to another method: nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_missing_tenant_names_the_attribute_and_its_variables() {
    let em = emulator(fixture()).await;
    let mut tf = Tf::new(Some(&em));
    tf.remove_env("ARM_TENANT_ID");
    tf.remove_env("AZURE_TENANT_ID");
    tf.config(&config(&em, "provider \"rotor\" {}\n"));
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        out.contains("a client secret (from ARM_CLIENT_SECRET) needs `tenant_id`"),
        "{out}"
    );
    assert!(
        out.contains("`tenant_id` (or ARM_TENANT_ID / AZURE_TENANT_ID)"),
        "{out}"
    );
    assert!(
        out.contains("provider \"rotor\""),
        "on the provider block:\n{out}"
    );
    assert!(
        !out.contains("AZURE_CLIENT_SECRET"),
        "the secret came from ARM_CLIENT_SECRET:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_missing_ca_file_fails_fast_on_the_provider_block() {
    let em = emulator(fixture()).await;
    let mut tf = Tf::new(Some(&em));
    tf.set_env("SSL_CERT_FILE", "/nonexistent/rotor-ca.pem");
    tf.config(&config(&em, "provider \"rotor\" {}\n"));
    let started = Instant::now();
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.contains("/nonexistent/rotor-ca.pem"), "{out}");
    assert!(out.contains("SSL_CERT_FILE"), "{out}");
    assert!(
        out.contains("provider \"rotor\""),
        "on the provider block:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_connection_refused_fails_fast_naming_the_endpoint() {
    let em = emulator(fixture()).await;
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let tf = Tf::new(Some(&em));
    tf.config(&config(
        &em,
        &format!("provider \"rotor\" {{\n  authority_host = \"https://127.0.0.1:{port}/\"\n}}\n"),
    ));
    let started = Instant::now();
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}:\n{out}",
        started.elapsed()
    );
    assert!(out.to_lowercase().contains("refused"), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");
}

/// A CA file that does not vouch for the endpoint (the system bundle, not the emulator's CA):
/// certificate verification fails in seconds, saying so, with the `SSL_CERT_FILE` hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_untrusted_certificate_fails_fast_saying_certificate() {
    let em = emulator(fixture()).await;
    let mut tf = Tf::new(Some(&em));
    tf.set_env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
    tf.config(&config(&em, "provider \"rotor\" {}\n"));
    let started = Instant::now();
    let run = tf.plan().await.failed();
    let out = run.output();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}:\n{out}",
        started.elapsed()
    );
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    assert!(out.contains("SSL_CERT_FILE"), "{out}");
}

/// rotor's identity from a certificate, as azurerm takes it: the content in the provider block
/// (`client_certificate`, e.g. `filebase64(...)` or a Key Vault certificate's secret value read
/// by another provider), or a file from `ARM_CLIENT_CERTIFICATE_PATH`. No client secret is set;
/// the emulator's token endpoint verifies the assertion's signature; no key material lands in
/// state, plan or the trace log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_client_certificate_content_or_path_signs_in_without_a_secret() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let cert = rcgen::CertificateParams::new(vec!["rotor-ci".into()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    use base64::Engine as _;
    let mut f = fixture();
    f["principals"][0]["certificates"] =
        serde_json::json!([base64::engine::general_purpose::STANDARD.encode(cert.der())]);
    let em = emulator(f).await;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let key_body: String = key
        .serialize_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();

    // 1. the content, in the provider block
    let mut tf = Tf::new(Some(&em));
    for k in ["ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET"] {
        tf.remove_env(k);
    }
    tf.set_env("TF_LOG", "trace");
    tf.write("rotor.pem", &pem);
    tf.config(&config(
        &em,
        "provider \"rotor\" {\n  client_certificate = file(\"rotor.pem\")\n}\n",
    ));
    let run = tf.apply().await.ok();
    let state = std::fs::read_to_string(tf.path().join("terraform.tfstate")).expect("state");
    assert!(state.contains("rotor_secret_link"), "{state}");
    for text in [&state, &run.output()] {
        assert!(!text.contains(&key_body[..64]), "key material leaked");
    }

    // 2. a file named by ARM_CLIENT_CERTIFICATE_PATH
    let mut tf = Tf::new(Some(&em));
    for k in ["ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET"] {
        tf.remove_env(k);
    }
    tf.write("rotor.pem", &pem);
    let path = tf.path().join("rotor.pem").display().to_string();
    tf.set_env("ARM_CLIENT_CERTIFICATE_PATH", &path);
    tf.config(&config(&em, "provider \"rotor\" {}\n"));
    let r = tf.plan().await;
    assert_eq!(r.code, 2, "a plan with one link to create:\n{}", r.output());

    // 3. a certificate Entra does not know: the error is on the provider block, names the
    // method and the Entra code
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let other_cert = rcgen::CertificateParams::new(vec!["other".into()])
        .expect("params")
        .self_signed(&other)
        .expect("self-signed");
    tf.write(
        "rotor.pem",
        &format!("{}{}", other_cert.pem(), other.serialize_pem()),
    );
    let out = tf.plan().await.failed().output();
    assert!(
        out.contains("AADSTS700027") || out.contains("700027"),
        "{out}"
    );
    assert!(out.contains("ARM_CLIENT_CERTIFICATE_PATH"), "{out}");
}
