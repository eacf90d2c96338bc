//! Certificate lineages through the `rotor` binary against the in-process emulator: `match`,
//! `rotate` (single by `--key-id`, bulk by `--app`, `--due`), `cleanup` and `history` in JSON,
//! tables and Markdown; exit codes as for secrets; and no private key, PEM or PFX material in
//! any output or in the history file.

mod cli_support;

use cli_support::certificates::{
    CERT_LINEAGE, CERT_NAME, assert_no_key_material, key_credentials, key_material,
    renew_in_key_vault, seed_certificate, seed_certificate_with_key,
};
use cli_support::*;
use serde_json::{Value, json};

fn cert_records(v: &Value) -> Vec<Value> {
    v["rotations"]
        .as_array()
        .or_else(|| v["records"].as_array())
        .expect("records")
        .iter()
        .filter(|r| r["kind"] == "certificate")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_certificate_rotates_by_key_id_and_shows_in_json_tables_markdown_and_history() {
    let w = World::start("").await;
    let seeded = seed_certificate(&w.emu, 12).await;
    let mut outputs: Vec<(String, String)> = Vec::new();

    // match lists the certificate lineage by thumbprint.
    let r = w.run(&["match", "--output", "json"]).await;
    r.assert_code(0);
    let v = r.json();
    assert!(
        v["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .any(|m| m["kind"] == "certificate"
                && m["key_id"] == seeded.key_id.as_str()
                && m["secret_name"] == CERT_NAME),
        "{r}"
    );

    // rotate one certificate: JSON.
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            &seeded.key_id,
            "--yes",
            "--output",
            "json",
        ])
        .await;
    outputs.push(("rotate json".into(), format!("{}{}", r.stdout, r.stderr)));
    r.assert_code(0);
    let v = r.json();
    let recs = v["rotations"].as_array().expect("rotations");
    assert_eq!(recs.len(), 1, "{r}");
    let rec = &recs[0];
    assert_eq!(rec["kind"], "certificate", "{r}");
    assert_eq!(rec["status"], "success", "{r}");
    assert_eq!(rec["app_id"], MYAPP);
    assert_eq!(rec["old_key_id"], seeded.key_id.as_str(), "{r}");
    assert_eq!(
        rec["old_thumbprint"].as_str().map(str::to_ascii_uppercase),
        Some(seeded.thumbprint.clone()),
        "{r}"
    );
    let new_thumb = rec["new_thumbprint"]
        .as_str()
        .expect("new thumbprint")
        .to_ascii_uppercase();
    assert_ne!(new_thumb, seeded.thumbprint, "a new certificate version");
    let new_key = rec["new_key_id"].as_str().expect("new key id").to_owned();
    assert_eq!(rec["targets"][0]["secret_name"], CERT_NAME, "{r}");
    assert!(rec["targets"][0]["version"].is_string(), "{r}");

    // Azure: the app holds both certificates, the new one in the lineage, made by rotor.
    let keys = key_credentials(&w.emu, MYAPP);
    let new = keys
        .iter()
        .find(|k| k["key_id"] == new_key.as_str())
        .expect("the new key credential is on the app");
    assert_eq!(
        new["thumbprint"].as_str().map(str::to_ascii_uppercase),
        Some(new_thumb.clone())
    );
    assert!(
        new["display_name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("{CERT_LINEAGE} rotor:"))),
        "{new}"
    );
    assert!(
        keys.iter().any(|k| k["key_id"] == seeded.key_id.as_str()),
        "the old certificate stays through the grace period"
    );

    // A second forced run of the same request is fulfilled: no second rotation.
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            &seeded.key_id,
            "--yes",
            "--expiry-days",
            "30",
            "--output",
            "json",
        ])
        .await;
    outputs.push(("rotate again".into(), format!("{}{}", r.stdout, r.stderr)));
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("--expiry-days does not apply to certificates"),
        "{r}"
    );
    assert_ne!(r.json()["rotations"][0]["status"], "success", "{r}");
    assert_eq!(key_credentials(&w.emu, MYAPP).len(), keys.len(), "{r}");

    // history: JSON keeps kind and thumbprints; the table and Markdown show them.
    let r = w.run(&["history", "--output", "json"]).await;
    r.assert_code(0);
    outputs.push(("history json".into(), r.stdout.clone()));
    let recs = cert_records(&r.json());
    assert!(
        recs.iter()
            .any(|h| h["status"] == "success" && h["new_thumbprint"].is_string()),
        "{r}"
    );
    let r = w.run(&["history"]).await;
    r.assert_code(0);
    outputs.push(("history table".into(), r.stdout.clone()));
    assert!(r.stdout.contains(&format!("/{CERT_NAME}")), "{r}");
    assert!(
        r.stdout
            .contains(&format!("cert {}", &seeded.thumbprint[..8])),
        "{r}"
    );
    assert!(r.stdout.contains(&new_thumb[..8]), "{r}");
    let r = w.run(&["history", "--output", "markdown"]).await;
    r.assert_code(0);
    outputs.push(("history markdown".into(), r.stdout.clone()));
    assert!(r.stdout.contains("(certificate "), "{r}");
    assert!(r.stdout.contains(&new_thumb[..8]), "{r}");

    // rotor report (the history file as the Action's Markdown report).
    let r = w.run(&["report"]).await;
    r.assert_code(0);
    outputs.push(("report".into(), r.stdout.clone()));
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("(certificate ") && l.contains("rotated"))
        .unwrap_or_else(|| panic!("no certificate row in {r}"));
    assert!(row.contains(CERT_NAME), "{row}");
    assert!(row.contains(&new_thumb[..8]), "{row}");

    // cleanup: the certificate lineage is a link; the old key is kept through the grace period.
    let r = w
        .run(&["cleanup", "--app", MYAPP, "--dry-run", "--output", "json"])
        .await;
    r.assert_code(0);
    outputs.push(("cleanup json".into(), r.stdout.clone()));
    let v = r.json();
    let link = v["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["kind"] == "certificate")
        .cloned()
        .unwrap_or_else(|| panic!("no certificate link in {r}"));
    assert_eq!(link["credential_display_name"], CERT_LINEAGE);
    assert_eq!(link["removed_key_ids"], json!([]), "{r}");
    let r = w.run(&["cleanup", "--app", MYAPP, "--dry-run"]).await;
    r.assert_code(0);
    assert!(
        r.stdout.contains(&format!("{CERT_LINEAGE} (certificate)")),
        "{r}"
    );
    outputs.push(("cleanup table".into(), r.stdout.clone()));

    outputs.push(("history file".into(), read(&w.history())));
    let material = key_material(&w.emu);
    assert!(
        !material.is_empty(),
        "the emulator holds the certificates' keys (managed backing secrets)"
    );
    for (place, text) in &outputs {
        assert_no_key_material(place, text, &material);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autorenewed_certificate_is_due_and_syncs_with_due_and_bulk_and_fails_with_exit_1() {
    let w = World::start("").await;
    let seeded = seed_certificate(&w.emu, 12).await;
    // Key Vault AutoRenew made a new version the application does not know: a sync is due.
    renew_in_key_vault(&w.emu).await;
    let mut outputs: Vec<(String, String)> = Vec::new();

    // --due --dry-run lists it with the secrets; table and Markdown say it is a certificate.
    let r = w
        .run(&["rotate", "--due", "--dry-run", "--output", "json"])
        .await;
    outputs.push(("due json".into(), format!("{}{}", r.stdout, r.stderr)));
    r.assert_code(0);
    let recs = cert_records(&r.json());
    assert_eq!(recs.len(), 1, "{r}");
    assert_eq!(recs[0]["dry_run"], true, "{r}");
    let r = w.run(&["rotate", "--due", "--dry-run"]).await;
    r.assert_code(0);
    outputs.push(("due table".into(), r.stdout.clone()));
    assert!(
        r.stdout.contains(&format!("{CERT_LINEAGE} (certificate")),
        "{r}"
    );
    assert!(r.stdout.contains(&format!("/{CERT_NAME}")), "{r}");
    let r = w
        .run(&["rotate", "--due", "--dry-run", "--output", "markdown"])
        .await;
    r.assert_code(0);
    outputs.push(("due markdown".into(), r.stdout.clone()));
    assert!(r.stdout.contains("(certificate"), "{r}");
    assert_eq!(
        key_credentials(&w.emu, MYAPP).len(),
        1,
        "a dry run changes nothing"
    );

    // The application refuses the new key: the certificate fails (exit 1), the secrets rotate.
    for path in ["/addKey$", "^/v1.0/applications/[^/]+$"] {
        let method = if path.ends_with("addKey$") {
            "POST"
        } else {
            "PATCH"
        };
        w.emu
            .add_fault(json!({"method": method, "path": path, "status": 403}))
            .expect("fault");
    }
    let r = w
        .run(&["rotate", "--due", "--yes", "--output", "json"])
        .await;
    outputs.push(("failed run".into(), format!("{}{}", r.stdout, r.stderr)));
    r.assert_code(1);
    let v = r.json();
    let recs = cert_records(&v);
    assert_eq!(recs.len(), 1, "{r}");
    assert_eq!(recs[0]["status"], "failed", "{r}");
    assert!(
        v["rotations"]
            .as_array()
            .expect("rotations")
            .iter()
            .any(|x| x["kind"].is_null() && x["status"] == "success"),
        "the due secrets rotated: {r}"
    );
    assert!(r.stderr.contains("error:"), "{r}");
    let keys = key_credentials(&w.emu, MYAPP);
    assert!(
        keys.iter().any(|k| k["key_id"] == seeded.key_id.as_str()),
        "the old certificate is untouched"
    );

    // Bulk by --app: the certificate lineage syncs with MyApp's secret.
    w.emu.clear_faults();
    let r = w.run(&["rotate", "--app", MYAPP, "--yes"]).await;
    outputs.push(("bulk table".into(), format!("{}{}", r.stdout, r.stderr)));
    r.assert_code(0);
    assert!(r.stdout.contains("(certificate"), "{r}");
    assert!(r.stdout.contains("rotated"), "{r}");
    let keys = key_credentials(&w.emu, MYAPP);
    assert!(keys.len() >= 2, "{keys:?}");

    let material = key_material(&w.emu);
    assert!(!material.is_empty());
    outputs.push(("history file".into(), read(&w.history())));
    for (place, text) in &outputs {
        assert_no_key_material(place, text, &material);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_rsa_certificate_is_refused_naming_it_and_changes_nothing() {
    let w = World::start("").await;
    let seeded = seed_certificate_with_key(&w.emu, 12, json!({"kty": "EC", "crv": "P-256"})).await;
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            &seeded.key_id,
            "--yes",
        ])
        .await;
    if std::env::var_os("ROTOR_TEST_DUMP").is_some() {
        eprintln!("{r}");
    }
    r.assert_code(1);
    assert!(r.stderr.contains(CERT_NAME), "{r}");
    assert!(r.stderr.contains("RSA"), "{r}");
    assert!(r.stderr.contains("hint:"), "{r}");
    assert_eq!(key_credentials(&w.emu, MYAPP).len(), 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_crypto_user_the_error_names_the_role() {
    // rotor-ci may create certificate versions but not sign with their keys.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fixtures/sample-tenant.json"
    ))
    .expect("sample tenant");
    let text = text.replace(", \"Key Vault Crypto User\"", "");
    assert!(!text.contains("Crypto User"), "the sample tenant changed");
    let fixture = rotor_emulator::Fixture::from_json(&text).expect("fixture");
    let w = World::start_with(fixture, rotor_emulator::EmulatorOptions::default(), "").await;
    let seeded = seed_certificate(&w.emu, 12).await;
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            &seeded.key_id,
            "--yes",
        ])
        .await;
    if std::env::var_os("ROTOR_TEST_DUMP").is_some() {
        eprintln!("{r}");
    }
    r.assert_code(1);
    assert!(r.stderr.contains("Crypto User"), "{r}");
    let material = key_material(&w.emu);
    assert_no_key_material("stderr", &r.stderr, &material);
    assert_no_key_material("stdout", &r.stdout, &material);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_certificate_is_reported_excluded_and_never_rotated() {
    let w = World::start("").await;
    let toml = read(&w.path("rotor.toml")).replace(
        "exclusions = [\"name:legacy-*\"]",
        "exclusions = [\"name:legacy-*\", \"secret:myapp-signing\"]",
    );
    assert!(toml.contains("secret:myapp-signing"));
    std::fs::write(w.path("rotor.toml"), toml).expect("write rotor.toml");
    let seeded = seed_certificate(&w.emu, 12).await;
    let r = w
        .run(&[
            "rotate",
            "--app",
            MYAPP,
            "--key-id",
            &seeded.key_id,
            "--yes",
            "--output",
            "json",
        ])
        .await;
    r.assert_code(0);
    let recs = cert_records(&r.json());
    assert_eq!(recs.len(), 1, "{r}");
    assert_eq!(recs[0]["status"], "excluded", "{r}");
    assert!(
        recs[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("secret:myapp-signing")),
        "{r}"
    );
    let r = w
        .run(&["rotate", "--due", "--dry-run", "--output", "json"])
        .await;
    r.assert_code(0);
    assert!(cert_records(&r.json()).is_empty(), "{r}");
    assert_eq!(key_credentials(&w.emu, MYAPP).len(), 1);
}
