//! Certificate rotation against the emulator (docs/protocol.md, "Certificates"): onboarding by
//! PATCH with every other key credential unchanged, rotation via addKey with a proof the
//! emulator verifies, adoption of a version Key Vault made on its own (AutoRenew), sign-in with
//! the new and the old certificate through the grace period, cleanup that leaves
//! `tokenEncryptionKeyId` and foreign keys alone, and no private key material anywhere.

mod common;

use azure_security_keyvault_certificates::models::KeyType;
use common::certs::*;
use common::*;
use rotor_engine::*;
use std::sync::Arc;

async fn env() -> Env {
    start(fixture(fixture_json())).await
}

fn engine_at(env: &Env, offset: time::Duration) -> Engine {
    let mut o = env.options();
    o.clock = Some(Arc::new(move || time::OffsetDateTime::now_utc() + offset));
    o.scope_vaults = env.vaults();
    Engine::new(o).expect("engine")
}

fn note(rec: &AuditRecord, word: &str) -> bool {
    rec.notes.iter().any(|n| n.contains(word))
}

/// Onboards the certificate (PATCH: the app has no valid certificate of the link to prove with).
async fn onboard(env: &Env) -> (String, Vec<u8>, AuditRecord) {
    let (v1, der1) = env.create_cert(CERT, KeyType::Rsa).await;
    let e = engine_at(env, time::Duration::ZERO);
    let rec = e
        .rotate_certificate(
            &env.cert_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    (v1, der1, rec)
}

#[tokio::test]
async fn patch_adds_the_certificate_and_keeps_every_other_entry_byte_for_byte() {
    let env = env().await;
    let before = entries(&env.raw_keys().await);
    assert_eq!(before.len(), 2);
    let (v1, der1, rec) = onboard(&env).await;
    assert_eq!(rec.kind, CredentialKind::Certificate);
    assert!(note(&rec, "PATCH"), "{:?}", rec.notes);
    assert_eq!(
        rec.new_thumbprint.as_deref(),
        Some(thumbprint(&der1).as_str())
    );
    assert_eq!(rec.targets[0].secret_name, CERT);
    assert_eq!(rec.targets[0].version.as_deref(), Some(v1.as_str()));
    assert_eq!(rec.targets[0].status, TargetStatus::Updated);
    let after = entries(&env.raw_keys().await);
    assert_eq!(after.len(), 3);
    for (id, e) in &before {
        assert_eq!(after.get(id), Some(e), "entry {id} changed");
    }
    let new_id = rec.new_key_id.clone().expect("new key id");
    let new = &after[&new_id];
    assert_eq!(
        new["displayName"],
        format!("main rotor:{}", rec.rotation_id).as_str()
    );
    assert_eq!(new["type"], "AsymmetricX509Cert");
    assert_eq!(new["usage"], "Verify");
    // the keyId is the client-chosen UUID v5 of the thumbprint: a retry sends the same entry
    let again = env.raw_keys().await;
    assert_eq!(entries(&again)[&new_id]["keyId"], new["keyId"]);
    assert!(env.cert_signs_in(CERTAPP, CERT, &v1, &der1).await);
    // re-run: nothing due, nothing changes
    let e = engine_at(&env, time::Duration::ZERO);
    let rec2 = e
        .rotate_certificate(
            &env.cert_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec2.status, RotationStatus::Skipped, "{rec2:#?}");
    assert_eq!(rec2.skip_reason, Some(SkipReason::NotDue));
    assert_eq!(entries(&env.raw_keys().await), after);
    assert_eq!(env.cert_versions(CERT).len(), 1, "no new Key Vault version");
}

#[tokio::test]
async fn forced_rotation_uses_addkey_with_a_verified_proof_and_both_certificates_sign_in() {
    let env = env().await;
    let (v1, der1, first) = onboard(&env).await;
    let patches = env.count("PATCH /v1.0/applications/{id}");
    let e = engine_at(&env, time::Duration::ZERO);
    let opts = RotateOptions {
        force: true,
        replace_key_id: first.new_key_id.clone(),
        ..Default::default()
    };
    let before = entries(&env.raw_keys().await);
    let rec = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert!(note(&rec, "addKey"), "{:?}", rec.notes);
    assert_eq!(
        env.count("PATCH /v1.0/applications/{id}"),
        patches,
        "no PATCH"
    );
    let versions = env.cert_versions(CERT);
    assert_eq!(versions.len(), 2, "Key Vault made one new version");
    let v2 = rec.targets[0].version.clone().expect("version");
    assert_ne!(v2, v1);
    assert_eq!(rec.old_key_id, first.new_key_id);
    assert_eq!(
        rec.old_thumbprint.as_deref(),
        Some(thumbprint(&der1).as_str())
    );
    let after = entries(&env.raw_keys().await);
    for (id, e) in &before {
        assert_eq!(after.get(id), Some(e), "entry {id} changed");
    }
    // the old certificate keeps working through the grace period, the new one works now
    assert!(env.cert_signs_in(CERTAPP, CERT, &v1, &der1).await);
    let st = e
        .inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("inspect");
    assert_eq!(st.current_key_id, rec.new_key_id);
    assert_eq!(st.current_thumbprint, rec.new_thumbprint);
    assert_eq!(
        st.previous_key_ids,
        vec![
            FOREIGN_KEY.to_owned(),
            first.new_key_id.clone().expect("k1")
        ]
    );
    assert!(!st.rotation_due);
    // a re-run of the same forced request is fulfilled: no third version
    let rec3 = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &opts, &NoProgress)
        .await;
    assert_ne!(rec3.status, RotationStatus::Failed, "{rec3:#?}");
    assert_eq!(env.cert_versions(CERT).len(), 2);
    // cleanup during the grace period keeps the old key
    let out = e
        .cleanup_certificate(&env.cert_link(), &Policy::default(), false)
        .await
        .expect("cleanup");
    assert!(out.removed_key_ids.is_empty(), "{out:?}");
    assert!(env.cert_signs_in(CERTAPP, CERT, &v1, &der1).await);
}

#[tokio::test]
async fn a_version_key_vault_made_itself_is_adopted_without_a_new_one() {
    let env = env().await;
    let (v1, der1, _) = onboard(&env).await;
    // Key Vault AutoRenew (simulated: a version made directly in the vault)
    let (v2, der2) = env.create_cert(CERT, KeyType::Rsa).await;
    assert!(
        !env.cert_signs_in(CERTAPP, CERT, &v2, &der2).await,
        "unknown to Entra yet"
    );
    let e = engine_at(&env, time::Duration::ZERO);
    let st = e
        .inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("inspect");
    assert!(st.rotation_due, "{st:?}");
    assert_eq!(st.pending_version.as_deref(), Some(v2.as_str()));
    let config = Config {
        vaults: vec![env.vault(VAULT)],
        ..Config::default()
    };
    let due = e.due_certificate_links(&config).await.expect("due");
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].0, env.cert_link());
    let rec = e
        .rotate_certificate(
            &env.cert_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert!(note(&rec, "syncing"), "{:?}", rec.notes);
    assert!(note(&rec, "addKey"), "{:?}", rec.notes);
    assert_eq!(env.cert_versions(CERT).len(), 2, "no version made by rotor");
    assert!(env.cert_signs_in(CERTAPP, CERT, &v2, &der2).await);
    assert!(env.cert_signs_in(CERTAPP, CERT, &v1, &der1).await);
    assert_eq!(
        rec.new_thumbprint.as_deref(),
        Some(thumbprint(&der2).as_str())
    );
}

#[tokio::test]
async fn cleanup_after_grace_removes_only_what_rotor_added_and_keeps_token_encryption_key() {
    let env = env().await;
    let (_, _, r1) = onboard(&env).await;
    let e = engine_at(&env, time::Duration::ZERO);
    let force = RotateOptions {
        force: true,
        ..Default::default()
    };
    let r2 = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &force, &NoProgress)
        .await;
    assert_eq!(r2.status, RotationStatus::Success, "{r2:#?}");
    let r3 = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &force, &NoProgress)
        .await;
    assert_eq!(r3.status, RotationStatus::Success, "{r3:#?}");
    let k1 = r1.new_key_id.clone().expect("k1");
    let k2 = r2.new_key_id.clone().expect("k2");
    let k3 = r3.new_key_id.clone().expect("k3");
    // Entra encrypts tokens with k1: never removed
    env.patch_app(serde_json::json!({"tokenEncryptionKeyId": k1}))
        .await;
    let before = entries(&env.raw_keys().await);
    let later = engine_at(&env, time::Duration::days(8));
    let dry = later
        .cleanup_certificate(&env.cert_link(), &Policy::default(), true)
        .await
        .expect("dry run");
    assert_eq!(dry.removed_key_ids, vec![k2.clone()], "{dry:?}");
    assert_eq!(
        entries(&env.raw_keys().await),
        before,
        "a dry run changes nothing"
    );
    let out = later
        .cleanup_certificate(&env.cert_link(), &Policy::default(), false)
        .await
        .expect("cleanup");
    assert_eq!(out.removed_key_ids, vec![k2.clone()], "{out:?}");
    let reason = |k: &str| {
        out.kept
            .iter()
            .find(|x| x.key_id == k)
            .map(|x| x.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason(&k1).contains("tokenEncryptionKeyId"), "{out:?}");
    assert!(reason(&k3).contains("current version"), "{out:?}");
    assert!(
        reason(FOREIGN_KEY).contains("not added by rotor"),
        "{out:?}"
    );
    let after = entries(&env.raw_keys().await);
    assert!(!after.contains_key(&k2));
    for (id, e) in &before {
        if *id != k2 {
            assert_eq!(after.get(id), Some(e), "entry {id} changed");
        }
    }
    assert!(
        after.contains_key(OTHER_TOOL_KEY),
        "another lineage is never touched"
    );
    assert_eq!(env.raw_keys().await["tokenEncryptionKeyId"], k1.as_str());
}

#[tokio::test]
async fn certificate_links_are_found_by_thumbprint_and_adopted_by_key_id() {
    let env = env().await;
    let (_, _, r1) = onboard(&env).await;
    let e = engine_at(&env, time::Duration::ZERO);
    let config = Config {
        vaults: vec![env.vault(VAULT)],
        ..Config::default()
    };
    let links = e.certificate_links(&config).await.expect("links");
    assert_eq!(links, vec![env.cert_link()]);
    // after Key Vault renews on its own the link is still found (an older version matches)
    env.create_cert(CERT, KeyType::Rsa).await;
    let links = e.certificate_links(&config).await.expect("links");
    assert_eq!(links, vec![env.cert_link()]);
    let adopted = e
        .adopt_certificate(&config, r1.new_key_id.as_deref().expect("k"))
        .await
        .expect("adopt");
    assert_eq!(adopted, env.cert_link());
    let err = e
        .adopt_certificate(&config, OTHER_TOOL_KEY)
        .await
        .expect_err("no certificate holds it");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn preflight_refuses_non_rsa_and_two_generating_certificates() {
    let env = env().await;
    onboard(&env).await;
    let e = engine_at(&env, time::Duration::ZERO);
    let force = RotateOptions {
        force: true,
        ..Default::default()
    };
    // a second certificate in the link: sync works, a rotation is refused naming both
    env.create_cert("certapp-ec", KeyType::Ec).await;
    let mut link = env.cert_link();
    link.certificates.insert(env.cert_target("certapp-ec"));
    let rec = e
        .rotate_certificate(&link, &Policy::default(), &force, &NoProgress)
        .await;
    assert_eq!(rec.status, RotationStatus::Failed, "{rec:#?}");
    let msg = rec.error.clone().unwrap_or_default();
    assert!(msg.contains(CERT) && msg.contains("certapp-ec"), "{msg}");
    assert_eq!(env.cert_versions(CERT).len(), 1, "nothing made");
    // an EC certificate cannot sign in to Entra: refused before anything changes
    let ec = CertificateLink {
        application_id: CERTAPP.into(),
        credential_display_name: "ec".into(),
        certificates: [env.cert_target("certapp-ec")].into_iter().collect(),
    };
    let before = entries(&env.raw_keys().await);
    let rec = e
        .rotate_certificate(&ec, &Policy::default(), &force, &NoProgress)
        .await;
    assert_eq!(rec.status, RotationStatus::Failed, "{rec:#?}");
    assert!(
        rec.error.clone().unwrap_or_default().contains("RSA"),
        "{rec:#?}"
    );
    assert_eq!(entries(&env.raw_keys().await), before);
}

#[tokio::test]
async fn no_private_key_material_in_records_statuses_errors_or_history() {
    let env = env().await;
    let (_, _, r1) = onboard(&env).await;
    let e = engine_at(&env, time::Duration::ZERO);
    let force = RotateOptions {
        force: true,
        ..Default::default()
    };
    let r2 = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &force, &NoProgress)
        .await;
    let st = e
        .inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("inspect");
    let bad = CertificateLink {
        application_id: CERTAPP.into(),
        credential_display_name: "main".into(),
        certificates: [env.cert_target("missing")].into_iter().collect(),
    };
    let r3 = e
        .rotate_certificate(&bad, &Policy::default(), &force, &NoProgress)
        .await;
    assert_eq!(r3.status, RotationStatus::Failed);
    let history = std::fs::read_to_string(env.dir.path().join("history.jsonl")).expect("history");
    let text = format!(
        "{r1:?}{r2:?}{r3:?}{st:?}{}{}{}",
        serde_json::to_string(&r2).expect("json"),
        serde_json::to_string(&st).expect("json"),
        history
    );
    // the backing secrets hold the PEM private keys: no line of them appears anywhere
    let state = env.state();
    let mut secrets = 0;
    for v in state["vaults"].as_array().expect("vaults") {
        for s in v["secrets"].as_array().cloned().unwrap_or_default() {
            for ver in s["versions"].as_array().cloned().unwrap_or_default() {
                let value = ver["value"].as_str().unwrap_or("");
                for line in value
                    .lines()
                    .filter(|l| l.len() > 20 && !l.starts_with("-----"))
                {
                    secrets += 1;
                    assert!(!text.contains(line), "private material leaked");
                }
            }
        }
    }
    assert!(secrets > 0, "the scan saw the backing secrets");
    assert!(!text.contains("PRIVATE KEY"));
    assert_eq!(history.lines().count(), 3);
    assert!(history.contains("\"kind\":\"certificate\""));
}

#[tokio::test]
async fn without_graph_write_the_application_rolls_its_own_key() {
    let env = env().await;
    let (v1, der1, first) = onboard(&env).await;
    let mut o = env.options_as(Some((LEAST_ID, LEAST_SECRET)));
    o.scope_vaults = env.vaults();
    let e = Engine::new(o).expect("engine");
    let before = entries(&env.raw_keys().await);
    let opts = RotateOptions {
        force: true,
        replace_key_id: first.new_key_id.clone(),
        ..Default::default()
    };
    let rec = e
        .rotate_certificate(&env.cert_link(), &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert!(note(&rec, "as the application itself"), "{:?}", rec.notes);
    let after = entries(&env.raw_keys().await);
    for (id, e) in &before {
        assert_eq!(after.get(id), Some(e), "entry {id} changed");
    }
    assert!(env.cert_signs_in(CERTAPP, CERT, &v1, &der1).await);
    let v2 = rec.targets[0].version.clone().expect("version");
    let der2 = env.cert_der(CERT, &v2).await;
    assert!(env.cert_signs_in(CERTAPP, CERT, &v2, &der2).await);
    // cleanup past the grace period, with the same rights: removeKey as the application
    let mut o = env.options_as(Some((LEAST_ID, LEAST_SECRET)));
    o.scope_vaults = env.vaults();
    o.clock = Some(Arc::new(|| {
        time::OffsetDateTime::now_utc() + time::Duration::days(8)
    }));
    let later = Engine::new(o).expect("engine");
    let out = later
        .cleanup_certificate(&env.cert_link(), &Policy::default(), false)
        .await
        .expect("cleanup");
    assert_eq!(
        out.removed_key_ids,
        vec![first.new_key_id.clone().expect("k1")],
        "{out:?}"
    );
    assert!(env.cert_signs_in(CERTAPP, CERT, &v2, &der2).await);
    assert!(entries(&env.raw_keys().await).contains_key(FOREIGN_KEY));
}

#[tokio::test]
async fn a_certificate_near_expiry_is_due_and_a_dry_run_changes_nothing() {
    let env = env().await;
    onboard(&env).await;
    // 340 days later the 12-month certificate is within rotate_before_expiry_days (30)
    let e = engine_at(&env, time::Duration::days(340));
    let st = e
        .inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("inspect");
    assert!(st.rotation_due, "{st:?}");
    assert!(
        st.due_reason
            .clone()
            .unwrap_or_default()
            .contains("expires"),
        "{st:?}"
    );
    assert!(st.pending_version.is_none());
    let keys = entries(&env.raw_keys().await);
    let dry = e
        .rotate_certificate(
            &env.cert_link(),
            &Policy::default(),
            &RotateOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(dry.status, RotationStatus::Skipped, "{dry:#?}");
    assert_eq!(dry.skip_reason, Some(SkipReason::DryRun));
    assert!(note(&dry, "would make a new version"), "{:?}", dry.notes);
    assert_eq!(entries(&env.raw_keys().await), keys);
    assert_eq!(env.cert_versions(CERT).len(), 1);
    let rec = e
        .rotate_certificate(
            &env.cert_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(env.cert_versions(CERT).len(), 2);
    // (Key Vault dates the new version from its own clock: seen from today it is not due)
    let st = engine_at(&env, time::Duration::ZERO)
        .inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("inspect");
    assert!(!st.rotation_due, "{st:?}");
    assert_eq!(st.current_key_id, rec.new_key_id);
}

#[tokio::test]
async fn both_kinds_of_links_come_from_one_listing_of_the_tenant() {
    let env = env().await;
    onboard(&env).await;
    let config = Config {
        vaults: vec![env.vault(VAULT)],
        ..Config::default()
    };
    let list = "GET /v1.0/applications";
    // apart: each call lists the tenant
    let e = engine_at(&env, time::Duration::ZERO);
    env.emu.clear_requests();
    let secrets = e.links(&config).await.expect("links");
    let certs = e
        .certificate_links(&config)
        .await
        .expect("certificate links");
    let apart = env.count(list);
    // together: one listing, the same links
    let e = engine_at(&env, time::Duration::ZERO);
    env.emu.clear_requests();
    let (s2, c2) = e.links_and_certificate_links(&config).await.expect("both");
    let together = env.count(list);
    assert_eq!((s2, c2.clone()), (secrets, certs));
    assert_eq!(c2, vec![env.cert_link()]);
    assert!(together >= 1, "the tenant is listed");
    assert_eq!(
        apart,
        2 * together,
        "apart: {apart} list pages, together: {together}"
    );
    // the due variant lists once too
    env.emu.clear_requests();
    e.due_links_and_certificate_links(&config)
        .await
        .expect("due");
    assert_eq!(env.count(list), together);
}

#[tokio::test]
async fn an_inspection_reads_each_certificate_three_times_at_most() {
    // the certificate, its versions, its pending operation; a client made per call would answer
    // Key Vault's authentication challenge again each time (a 401 round trip per request)
    let env = env().await;
    onboard(&env).await;
    let e = engine_at(&env, time::Duration::ZERO);
    e.inspect_certificate_link(&env.cert_link(), &Policy::default())
        .await
        .expect("first inspection (signs in)");
    for _ in 0..2 {
        env.emu.clear_requests();
        e.inspect_certificate_link(&env.cert_link(), &Policy::default())
            .await
            .expect("inspect");
        let c = env.emu.request_counts();
        let vault: u64 = c["by_vault"][VAULT]
            .as_object()
            .expect("vault requests")
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum();
        assert_eq!(vault, 3, "{}", c["by_vault"]);
    }
}
