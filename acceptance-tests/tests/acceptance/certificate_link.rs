//! `rotor_certificate_link` with real Terraform against the emulator, checked in the emulator's
//! state: create syncs the certificate Key Vault holds onto the application (PATCH, every other
//! key credential unchanged), a version Key Vault made on its own (AutoRenew) is a due sync that
//! apply performs without making another, `rotate_when_changed` forces a new Key Vault version,
//! import by both id forms round-trips, destroy keeps the Key Vault certificate and the key
//! credentials, and no private key material reaches state, plan or logs.
//!
//! A rotation due by expiry is staged with a certificate made in process with rcgen (expiring in
//! 10 days, imported into Key Vault with a 12-month policy), since the emulator does not age
//! certificates.

use serde_json::{Value, json};

use crate::support::{Tf, emulator, requests};
use rotor_emulator::Emulator;

pub const CERT_APP: &str = "b0000c01-0000-4000-8000-000000000c01";
const FOREIGN_KEY: &str = "f0000c01-0000-4000-8000-0000000000f1";
pub const VAULT: &str = "kv-certs";
pub const CERT: &str = "certapp-tls";

/// A tenant: rotor's principal with Graph write and the Key Vault certificate roles, `CertApp`
/// holding one key credential rotor does not own, and an empty vault `kv-certs`.
pub fn fixture() -> Value {
    json!({
        "principals": [{
            "display_name": "rotor-ci", "client_id": "7c1e0d5a-0000-4000-8000-0000000000c1",
            "client_secret": "rotor-ci-secret-value-0123456789",
            "graph_roles": ["Application.ReadWrite.All"],
            "vault_roles": {"*": ["Key Vault Secrets Officer", "Key Vault Certificates Officer", "Key Vault Crypto User"]}
        }],
        "applications": [{
            "display_name": "CertApp", "app_id": CERT_APP, "object_id": "a0000c01-0000-4000-8000-000000000c01",
            "key_credentials": [
                {"key_id": FOREIGN_KEY, "display_name": "CN=other-tool", "thumbprint": "FFEEDDCCBBAA99887766554433221100FFEEDDCC", "start": "-10d", "end": "+300d"}
            ]
        }],
        "vaults": [{"name": VAULT}]
    })
}

/// One request to the certificates' vault as the test principal (a person, or Key Vault
/// AutoRenew); the JSON answer.
async fn kv_json(em: &Emulator, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    crate::support::kv_json(em, method, VAULT, path, body).await
}

/// Makes a new version of certificate `name` from a self-signed RSA policy, as a person or
/// AutoRenew would, and waits until it is completed.
pub async fn create_certificate(em: &Emulator, name: &str) {
    kv_json(
        em,
        reqwest::Method::POST,
        &format!("/certificates/{name}/create"),
        Some(json!({"policy": {
            "key_props": {"kty": "RSA", "key_size": 2048, "exportable": true, "reuse_key": false},
            "secret_props": {"contentType": "application/x-pkcs12"},
            "x509_props": {"subject": format!("CN={name}"), "validity_months": 12},
            "issuer": {"name": "Self"}
        }})),
    )
    .await;
    for _ in 0..100 {
        let op = kv_json(
            em,
            reqwest::Method::GET,
            &format!("/certificates/{name}/pending"),
            None,
        )
        .await;
        if op["status"] == "completed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("certificate {name} did not complete");
}

/// The versions of certificate `name` in the emulator's state, oldest first.
pub fn cert_versions(em: &Emulator, name: &str) -> Vec<Value> {
    let state = em.state();
    for v in state["vaults"].as_array().into_iter().flatten() {
        for c in v["certificates"].as_array().into_iter().flatten() {
            if c["name"] == name {
                return c["versions"].as_array().cloned().unwrap_or_default();
            }
        }
    }
    Vec::new()
}

/// The application's key credentials in the emulator's state.
pub fn key_credentials(em: &Emulator, app_id: &str) -> Vec<Value> {
    let state = em.state();
    state["applications"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["app_id"] == app_id)
        .and_then(|a| a["key_credentials"].as_array().cloned())
        .unwrap_or_default()
}

fn current_thumbprint(em: &Emulator) -> String {
    cert_versions(em, CERT)
        .last()
        .and_then(|v| v["thumbprint"].as_str())
        .expect("a version")
        .to_string()
}

fn lineage_thumbprints(em: &Emulator) -> Vec<String> {
    key_credentials(em, CERT_APP)
        .iter()
        .filter(|k| {
            k["display_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("tls rotor:"))
        })
        .filter_map(|k| k["thumbprint"].as_str().map(str::to_ascii_uppercase))
        .collect()
}

/// Private key material the emulator's vault holds for `name`: the certificate's backing
/// secret (the PFX, base64) read through Key Vault, cut into pieces long enough to be unique.
async fn key_material(em: &Emulator, name: &str) -> Vec<String> {
    let secret = kv_json(em, reqwest::Method::GET, &format!("/secrets/{name}"), None).await;
    let value = secret["value"]
        .as_str()
        .expect("backing secret value")
        .to_string();
    assert!(value.len() > 200, "a PFX or PEM with the key");
    let body: String = value.lines().filter(|l| !l.starts_with("-----")).collect();
    body.as_bytes()
        .chunks(48)
        .filter(|c| c.len() == 48)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// The attributes of data source `ty.name` in the state.
fn data_source(tf: &Tf, ty: &str, name: &str) -> Value {
    let state = tf.state();
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == ty && r["name"] == name && r["mode"] == "data")
        .map(|r| r["instances"][0]["attributes"].clone())
        .unwrap_or(Value::Null)
}

fn config(vault_url: &str, triggers: &str) -> String {
    format!(
        r#"provider "rotor" {{
  vault_urls = ["{vault_url}"]
}}

resource "rotor_certificate_link" "tls" {{
  application_id          = "{CERT_APP}"
  credential_display_name = "tls"
  certificates = [{{
    vault_url        = "{vault_url}"
    certificate_name = "{CERT}"
  }}]
  {triggers}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_syncs_rotates_imports_and_destroy_keeps_everything() {
    let em = emulator(fixture()).await;
    let vault_url = em.endpoints().vaults[VAULT].clone();
    create_certificate(&em, CERT).await;
    let v1 = current_thumbprint(&em);
    let mut tf = Tf::new(Some(&em));
    tf.set_env("TF_LOG", "trace");
    tf.set_env(
        "TF_LOG_PATH",
        &tf.path().join("tf.log").display().to_string(),
    );
    tf.config(&config(&vault_url, ""));

    // create: the certificate Key Vault holds is not on the application yet — a sync
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.output().contains("creating this link syncs"),
        "{}",
        plan.output()
    );
    let applied = tf.apply().await.ok();
    let link = tf.resource("rotor_certificate_link.tls");
    assert_eq!(link["thumbprint"], v1.as_str(), "{}", applied.output());
    assert_eq!(link["id"], format!("{CERT_APP}/tls").as_str());
    assert_eq!(link["rotation_due"], false);
    assert_eq!(
        lineage_thumbprints(&em),
        std::slice::from_ref(&v1),
        "the app holds the version"
    );
    let keys = key_credentials(&em, CERT_APP);
    assert!(
        keys.iter().any(|k| k["key_id"] == FOREIGN_KEY),
        "foreign key kept: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k["key_id"] == link["key_id"]),
        "state's key_id is on the application"
    );
    assert_eq!(cert_versions(&em, CERT).len(), 1, "a sync makes no version");
    let calm = tf.plan().await;
    assert_eq!(
        calm.code,
        0,
        "nothing to do after the sync:\n{}",
        calm.output()
    );

    // rotor_matches finds the same link, ready for for_each
    tf.config(&format!(
        "{}\ndata \"rotor_matches\" \"m\" {{\n  application_id = \"{CERT_APP}\"\n}}\n",
        config(&vault_url, "")
    ));
    tf.apply().await.ok();
    let data = data_source(&tf, "rotor_matches", "m");
    let found = &data["certificate_links"]["CertApp/tls"];
    assert_eq!(found["application_id"], CERT_APP, "{data}");
    assert_eq!(found["key_id"], link["key_id"], "{data}");
    assert_eq!(found["certificates"][0]["certificate_name"], CERT, "{data}");
    assert_eq!(
        found["certificates"][0]["vault_url"],
        vault_url.as_str(),
        "{data}"
    );
    assert!(
        data["links"].as_object().is_none_or(|l| l.is_empty()),
        "no secret link: {data}"
    );
    tf.config(&config(&vault_url, ""));

    // AutoRenew made a version the app lacks: a due sync, planned with a warning, applied
    create_certificate(&em, CERT).await;
    let v2 = current_thumbprint(&em);
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.output().contains("will be rotated"),
        "{}",
        plan.output()
    );
    tf.apply().await.ok();
    assert_eq!(
        tf.resource("rotor_certificate_link.tls")["thumbprint"],
        v2.as_str()
    );
    assert_eq!(
        cert_versions(&em, CERT).len(),
        2,
        "the AutoRenew version is adopted, not remade"
    );
    assert!(lineage_thumbprints(&em).contains(&v2));

    // forced: a new Key Vault version, on the application
    tf.config(&config(
        &vault_url,
        "rotate_when_changed = { reason = \"drill\" }",
    ));
    let plan = tf.plan().await;
    assert!(
        plan.output().contains("`rotate_when_changed` changed"),
        "{}",
        plan.output()
    );
    tf.apply().await.ok();
    assert_eq!(
        cert_versions(&em, CERT).len(),
        3,
        "a forced rotation makes a version"
    );
    let v3 = current_thumbprint(&em);
    assert_ne!(v3, v2);
    let link = tf.resource("rotor_certificate_link.tls");
    assert_eq!(link["thumbprint"], v3.as_str());
    assert!(lineage_thumbprints(&em).contains(&v3));
    assert_eq!(tf.plan().await.code, 0);

    // import by the resource's own id, then by key id: both round-trip to an empty plan (an
    // import has no triggers, so the configuration has none either)
    tf.config(&config(&vault_url, ""));
    for id in [
        format!("{CERT_APP}/tls"),
        format!("{CERT_APP}/{}", link["key_id"].as_str().expect("key id")),
    ] {
        tf.run(&["state", "rm", "rotor_certificate_link.tls"])
            .await
            .ok();
        let imported = tf
            .run(&["import", "-input=false", "rotor_certificate_link.tls", &id])
            .await;
        assert_eq!(imported.code, 0, "import {id}:\n{}", imported.output());
        let got = tf.resource("rotor_certificate_link.tls");
        assert_eq!(got["id"], format!("{CERT_APP}/tls").as_str(), "{id}");
        assert_eq!(got["thumbprint"], v3.as_str(), "{id}");
        assert_eq!(got["certificates"][0]["certificate_name"], CERT, "{id}");
        let plan = tf.plan().await;
        assert_eq!(plan.code, 0, "after importing {id}:\n{}", plan.output());
    }
    let bad = tf
        .run(&[
            "import",
            "-input=false",
            "rotor_certificate_link.other",
            "myapp",
        ])
        .await;
    assert_ne!(bad.code, 0);

    // no private key material in state, plan JSON or the trace log
    let (plan_json, _) = tf.plan_json().await;
    let material = key_material(&em, CERT).await;
    let log = std::fs::read_to_string(tf.path().join("tf.log")).unwrap_or_default();
    assert!(
        log.contains("rotor_certificate_link"),
        "the trace log was written"
    );
    for (what, text) in [
        ("state", tf.state_text()),
        ("plan JSON", plan_json.to_string()),
        ("TF_LOG=trace", log),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{what} holds a PEM key");
        for piece in &material {
            assert!(!text.contains(piece.as_str()), "{what} holds key material");
        }
    }

    // destroy forgets: Key Vault certificate and key credentials stay
    let before = key_credentials(&em, CERT_APP);
    tf.destroy().await.ok();
    assert_eq!(cert_versions(&em, CERT).len(), 3);
    assert_eq!(key_credentials(&em, CERT_APP), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_diagnostics_point_at_the_attribute() {
    let em = emulator(fixture()).await;
    let vault_url = em.endpoints().vaults[VAULT].clone();
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        r#"provider "rotor" {{}}
resource "rotor_certificate_link" "bad" {{
  application_id          = "not-a-guid"
  credential_display_name = "tls"
  certificates = [{{ vault_url = "{vault_url}", certificate_name = "bad_name" }}]
}}"#
    ));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 1);
    let out = plan.output();
    assert!(out.contains("not an application (client) id"), "{out}");
    assert!(out.contains("application_id"), "{out}");
    assert!(
        out.contains("Key Vault certificate names use only"),
        "{out}"
    );
}

/// A self-signed RSA certificate valid for `days` days from now (rcgen, in process):
/// `(PEM of the PKCS#8 key and the certificate, base64 DER of the certificate)`.
fn test_certificate(_dir: &std::path::Path, days: u32) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let cert = params.self_signed(&key).expect("self-signed");
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.encode(cert.der());
    (pem, der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_due_by_expiry_rotates_on_apply() {
    // The application already holds the certificate Key Vault has, and it expires in 10 days:
    // within rotate_before_expiry_days (30), so the link is due at once.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pem, der) = test_certificate(tmp.path(), 10);
    let mut f = fixture();
    f["applications"][0]["key_credentials"]
        .as_array_mut()
        .expect("keys")
        .push(json!({"key_id": "c0000c01-0000-4000-8000-000000000c11", "display_name": "tls", "key": der}));
    let em = emulator(f).await;
    kv_json(
        &em,
        reqwest::Method::POST,
        &format!("/certificates/{CERT}/import"),
        Some(json!({"value": pem, "policy": {
            "key_props": {"kty": "RSA", "key_size": 2048, "exportable": true, "reuse_key": false},
            "secret_props": {"contentType": "application/x-pem-file"},
            "x509_props": {"subject": format!("CN={CERT}"), "validity_months": 12},
            "issuer": {"name": "Self"}
        }})),
    )
    .await;
    let old = current_thumbprint(&em);
    let vault_url = em.endpoints().vaults[VAULT].clone();
    let tf = Tf::new(Some(&em));
    tf.config(&config(&vault_url, ""));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.output().contains("creating this link rotates"),
        "{}",
        plan.output()
    );
    let applied = tf.apply().await.ok();
    let versions = cert_versions(&em, CERT);
    assert_eq!(
        versions.len(),
        2,
        "a new Key Vault version:\n{}",
        applied.output()
    );
    let new = current_thumbprint(&em);
    assert_ne!(new, old);
    let link = tf.resource("rotor_certificate_link.tls");
    assert_eq!(link["thumbprint"], new.as_str());
    assert_eq!(link["rotation_due"], false);
    let held: Vec<String> = key_credentials(&em, CERT_APP)
        .iter()
        .filter_map(|k| k["thumbprint"].as_str().map(str::to_ascii_uppercase))
        .collect();
    assert!(
        held.contains(&new) && held.contains(&old),
        "old kept for the grace period: {held:?}"
    );
    assert_eq!(tf.plan().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_replace_rotates_once() {
    let em = emulator(fixture()).await;
    create_certificate(&em, CERT).await;
    let vault_url = em.endpoints().vaults[VAULT].clone();
    let tf = Tf::new(Some(&em));
    tf.config(&config(&vault_url, ""));
    tf.apply().await.ok();
    let before = current_thumbprint(&em);
    assert_eq!(cert_versions(&em, CERT).len(), 1);
    let replaced = tf
        .run(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-replace=rotor_certificate_link.tls",
        ])
        .await
        .ok();
    assert_eq!(
        cert_versions(&em, CERT).len(),
        2,
        "-replace makes one new version:\n{}",
        replaced.output()
    );
    let after = current_thumbprint(&em);
    assert_ne!(after, before);
    assert_eq!(
        tf.resource("rotor_certificate_link.tls")["thumbprint"],
        after.as_str()
    );
    assert_eq!(tf.plan().await.code, 0);
}

/// The SHA-1 thumbprint (upper-case hex) of the (first) PEM certificate in `pem`.
fn pem_thumbprint(_dir: &std::path::Path, pem: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let b64: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .expect("a certificate in the PEM")
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 certificate");
    sha1::Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A link adopted over an application that holds the certificate's current version (the
/// current key credential, `r2`, since `r2_start`) and an old key credential `OLD` rotor added
/// before it, ending at `old_end`. Returns the emulator, the workspace (applied once) and its
/// temporary directory.
async fn adopted_with_old_key(r2_start: &str, old_end: &str) -> (Emulator, Tf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pem, _) = test_certificate(tmp.path(), 365);
    let thumbprint = pem_thumbprint(tmp.path(), &pem);
    let mut f = fixture();
    let keys = f["applications"][0]["key_credentials"]
        .as_array_mut()
        .expect("keys");
    keys.push(
        json!({"key_id": "c0000c01-0000-4000-8000-0000000000d2", "display_name": "tls rotor:r2",
        "thumbprint": thumbprint, "start": r2_start, "end": "+335d"}),
    );
    keys.push(json!({"key_id": OLD, "display_name": "tls rotor:r1",
        "thumbprint": "0102030405060708090A0B0C0D0E0F1011121314", "start": "-400d", "end": old_end}));
    let em = emulator(f).await;
    kv_json(
        &em,
        reqwest::Method::POST,
        &format!("/certificates/{CERT}/import"),
        Some(json!({"value": pem})),
    )
    .await;
    let vault_url = em.endpoints().vaults[VAULT].clone();
    let tf = Tf::new(Some(&em));
    tf.config(&config(&vault_url, ""));
    tf.apply().await.ok();
    let link = tf.resource("rotor_certificate_link.tls");
    assert_eq!(
        link["thumbprint"],
        thumbprint.as_str(),
        "adopted, not rotated"
    );
    assert_eq!(link["key_id"], "c0000c01-0000-4000-8000-0000000000d2");
    assert_eq!(cert_versions(&em, CERT).len(), 1);
    (em, tf, tmp)
}

/// The old key credential of [`adopted_with_old_key`].
const OLD: &str = "c0000c01-0000-4000-8000-0000000000d1";

/// [`adopted_with_old_key`], then: the plan is an update removing `OLD`, apply removes it and
/// nothing else is left to do. Returns the key ids the application has then.
async fn old_key_cleanup_is_planned_and_applied(r2_start: &str, old_end: &str) -> Vec<Value> {
    let (em, tf, _tmp) = adopted_with_old_key(r2_start, old_end).await;
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "cleanup is an update:\n{}", plan.output());
    assert!(
        plan.output().contains("apply removes 1 old key credential") && plan.output().contains(OLD),
        "{}",
        plan.output()
    );
    tf.apply().await.ok();
    let ids: Vec<Value> = key_credentials(&em, CERT_APP)
        .iter()
        .map(|k| k["key_id"].clone())
        .collect();
    assert!(
        !ids.contains(&json!(OLD)),
        "the old key credential is removed: {ids:?}"
    );
    assert_eq!(tf.plan().await.code, 0);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_cleanup_due_is_planned_and_applied() {
    // The current key credential since 30 days: past the grace period (7 days), so cleanup is
    // due. The foreign key credential stays.
    let ids = old_key_cleanup_is_planned_and_applied("-30d", "+5d").await;
    assert!(ids.contains(&json!(FOREIGN_KEY)), "{ids:?}");
    assert!(
        ids.contains(&json!("c0000c01-0000-4000-8000-0000000000d2")),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_expired_old_key_is_planned_for_cleanup_inside_the_grace_period() {
    // The current key credential since a day (inside its 7-day grace period), the old one
    // expired yesterday: cleanup removes an expired credential at once, so the plan says so
    // (a shortcut that waited for the current credential's grace period hid it for a week).
    old_key_cleanup_is_planned_and_applied("-1d", "-1d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_link_in_grace_plans_without_a_cleanup_check() {
    // The current key credential since a day and the old one valid for 5 more days: nothing is
    // removable until the grace period ends, so the plan asks no dry-run cleanup (which would
    // read the key credentials a second time).
    let (em, tf, _tmp) = adopted_with_old_key("-1d", "+5d").await;
    let keys = |em: &Emulator| requests(em, |r| r.starts_with("GET /v1.0/applications/"));
    let before = keys(&em);
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "nothing to do:\n{}", plan.output());
    assert_eq!(
        keys(&em) - before,
        1,
        "one key-credential read: the refresh"
    );
    assert!(
        key_credentials(&em, CERT_APP)
            .iter()
            .any(|k| k["key_id"] == OLD),
        "the old key credential is kept for the grace period"
    );
}

/// Azure requests of a `terraform plan` over `N` certificate links of `N` applications against
/// the minimum: one Graph application read per 15 applications (batched, as for secret links),
/// one key-credential read per application, and one inspection of each certificate (its
/// current version, versions and pending operation: 3 routes, which the engine reads in 68
/// requests for 10 certificates today, so the bound is 7 per certificate; a second inspection
/// would double it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_links_plan_reads_applications_in_batches() {
    const N: usize = 10;
    let mut tenant = fixture();
    let apps: Vec<Value> = (0..N)
        .map(|i| {
            json!({"display_name": format!("CertApp{i}"), "app_id": format!("b0000c{i:02}-0000-4000-8000-0000000c0b{i:02}")})
        })
        .collect();
    tenant["applications"] = Value::Array(apps);
    let em = emulator(tenant).await;
    let vault_url = em.endpoints().vaults[VAULT].clone();
    let mut links = String::new();
    for i in 0..N {
        create_certificate(&em, &format!("tls-{i}")).await;
        links.push_str(&format!(
            "    \"l{i}\" = {{ app = \"b0000c{i:02}-0000-4000-8000-0000000c0b{i:02}\", cert = \"tls-{i}\" }}\n"
        ));
    }
    let tf = Tf::new(Some(&em));
    tf.config(&format!(
        r#"provider "rotor" {{
  vault_urls = ["{vault_url}"]
}}

locals {{
  links = {{
{links}  }}
}}

resource "rotor_certificate_link" "l" {{
  for_each                = local.links
  application_id          = each.value.app
  credential_display_name = "tls"
  certificates            = [{{ vault_url = "{vault_url}", certificate_name = each.value.cert }}]
}}
"#
    ));
    let count = |em: &Emulator| {
        let apps = requests(em, |r| {
            r.starts_with("GET /v1.0/applications") && !r.starts_with("GET /v1.0/applications/")
        });
        let keys = requests(em, |r| r.starts_with("GET /v1.0/applications/"));
        let vault = requests(em, |r| r.starts_with("GET /certificates"));
        let pending = requests(em, |r| r.starts_with("GET /certificates/{name}/pending"));
        (apps, keys, vault, pending)
    };
    let a0 = count(&em);
    let applied = tf.apply().await.ok();
    assert!(
        applied.stdout.contains(&format!("{N} added")),
        "{}",
        applied.output()
    );
    let a1 = count(&em);
    let p0 = count(&em);
    let routes0 = em.request_counts();
    let plan = tf.plan().await;
    assert_eq!(plan.code, 0, "{}", plan.output());
    let p1 = count(&em);
    let routes1 = em.request_counts();
    let plan_routes: Vec<String> = routes1["by_route"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(r, n)| {
            let d = n.as_u64()? - routes0["by_route"][r].as_u64().unwrap_or(0);
            (d > 0).then(|| format!("{r}: {d}"))
        })
        .collect();
    let (apps, keys, vault) = (p1.0 - p0.0, p1.1 - p0.1, p1.2 - p0.2);
    let min_apps = N.div_ceil(15) as u64;
    println!(
        "certificate links: plan over {N}: {apps} application reads (minimum {min_apps}), {keys} key-credential \
         reads (minimum {N}), {vault} Key Vault reads (minimum {}); create apply: {} application reads, {} \
         key-credential reads, {} Key Vault reads ({} pending-operation reads); the plan by route: {}",
        3 * N,
        a1.0 - a0.0,
        a1.1 - a0.1,
        a1.2 - a0.2,
        a1.3 - a0.3,
        plan_routes.join(", ")
    );
    // One batch, or two when Terraform's calls straddle the batching window: never one per link.
    assert!(
        apps <= min_apps + 1,
        "{apps} Graph application reads for {N} links: not batched"
    );
    // One inspection per link: its key credentials are read once (the refresh), and the plan
    // of an unchanged link reads nothing more.
    assert_eq!(keys, N as u64, "key-credential reads for {N} links");
    assert!(
        vault <= 7 * N as u64,
        "{vault} Key Vault reads for {N} certificates: more than one inspection each"
    );
}
