//! The rotation protocol against the emulator: three vaults, cleanup, errors, cap, throttling.

mod common;

use common::*;
use rotor_engine::{
    CollectProgress, Engine, ErrorKind, Link, NoProgress, Policy, RotateOptions, RotationStatus,
    TargetStatus,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Every target holds the same credential, which is the newest of the lineage, and every rotor
/// credential of the lineage is held by a target or older than it (no orphan).
fn assert_converged(env: &Env, link: &Link) -> String {
    let held: BTreeSet<String> = link
        .targets
        .iter()
        .map(|t| {
            let name = env
                .emu
                .endpoints()
                .vaults
                .iter()
                .find(|(_, u)| **u == t.vault_url.as_str())
                .map(|(n, _)| n.clone())
                .expect("vault");
            let v = env.latest(&name, &t.secret_name);
            let value = v["value"].as_str().expect("value").to_owned();
            let key = env
                .passwords(&link.application_id)
                .iter()
                .find(|p| p["secret_text"] == value.as_str())
                .map(|p| p["key_id"].as_str().expect("key").to_owned())
                .expect("every target holds a live credential");
            assert_eq!(
                v["tags"]["rotor-key-id"],
                key.as_str(),
                "tag matches the value"
            );
            key
        })
        .collect();
    assert_eq!(held.len(), 1, "targets agree: {held:?}");
    let current = held.into_iter().next().expect("one");
    let pw = env.passwords(&link.application_id);
    let cur = pw
        .iter()
        .find(|p| p["key_id"] == current.as_str())
        .expect("current");
    for p in &pw {
        let d = p["display_name"].as_str().unwrap_or("");
        if d.starts_with(&format!("{} rotor:", link.credential_display_name))
            && p["key_id"] != current.as_str()
        {
            assert!(
                p["start"].as_str() <= cur["start"].as_str(),
                "orphan left behind: {p}"
            );
        }
    }
    current
}

#[tokio::test]
async fn rotation_across_three_vaults() {
    let env = sample().await;
    let engine = env.engine();
    let link = env.myapp_link();
    let old_value = env.password_value(MYAPP, MYAPP_SECRET1);
    let before_prod = env.latest("kv-prod", "myapp-secret");

    let status = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert_eq!(status.current_key_id.as_deref(), Some(MYAPP_SECRET1));
    assert!(status.rotation_due, "{status:?}");
    assert!(
        status
            .due_reason
            .as_deref()
            .unwrap_or("")
            .contains("expires"),
        "{status:?}"
    );
    assert_eq!(status.target_versions.len(), 3);

    let progress = CollectProgress::default();
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &progress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(rec.old_key_id.as_deref(), Some(MYAPP_SECRET1));
    let new_key = rec.new_key_id.clone().expect("new key");
    let new_value = env.password_value(MYAPP, &new_key);
    assert_ne!(new_value, old_value);
    let new_pw = env
        .passwords(MYAPP)
        .into_iter()
        .find(|p| p["key_id"] == new_key.as_str())
        .expect("new pw");
    assert_eq!(
        new_pw["display_name"],
        format!("Secret 1 rotor:{}", rec.rotation_id).as_str()
    );
    for (vault, secret) in [
        ("kv-prod", "myapp-secret"),
        ("kv-dev", "myapp-dev-secret"),
        ("kv-staging", "myapp-secret-v2"),
    ] {
        let v = env.latest(vault, secret);
        assert_eq!(v["value"], new_value.as_str(), "{vault}/{secret}");
        assert_eq!(v["tags"]["rotor-key-id"], new_key.as_str());
        assert_eq!(v["tags"]["rotor-previous-key-id"], MYAPP_SECRET1);
        assert_eq!(v["tags"]["app-id"], MYAPP);
        assert_eq!(v["tags"]["app-name"], "MyApp");
        assert!(v["tags"]["rotor-rotated-at"].is_string());
        // Key Vault's exp is whole seconds; Graph's end carries 100 ns ticks.
        let end = new_pw["end"].as_str().expect("end");
        assert_eq!(
            v["expires"],
            format!("{}Z", &end[..19]).as_str(),
            "exp = credential end"
        );
        assert_eq!(env.versions(vault, secret).len(), 2);
    }
    let prod = env.latest("kv-prod", "myapp-secret");
    assert_eq!(
        prod["content_type"], before_prod["content_type"],
        "content type kept"
    );
    assert_eq!(prod["content_type"], "text/plain");
    assert!(
        rec.targets
            .iter()
            .all(|t| t.status == TargetStatus::Updated && t.version.is_some())
    );
    // both credentials log in: the old one stays valid through the grace period
    assert!(env.can_login(MYAPP, &old_value).await);
    assert!(env.can_login(MYAPP, &new_value).await);
    // live progress per target
    let ev = progress.events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.step == rotor_engine::Step::UpdateTarget
                && e.state == rotor_engine::StepState::Done)
            .count(),
        3
    );
    // history
    let h = rotor_engine::History::open(env.dir.path().join("history.jsonl")).expect("history");
    let recs = h.read_all().expect("read");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].new_key_id.as_deref(), Some(new_key.as_str()));
    // a second run is not due
    let again = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(again.status, RotationStatus::Skipped, "{again:#?}");
    let status = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert_eq!(status.current_key_id.as_deref(), Some(new_key.as_str()));
    assert!(!status.rotation_due);
    assert_eq!(status.previous_key_ids, vec![MYAPP_SECRET1.to_owned()]);
    assert_converged(&env, &link);
}

#[tokio::test]
async fn cleanup_after_grace_and_never_what_a_vault_holds() {
    let env = sample().await;
    let engine = env.engine();
    let link = env.myapp_link();
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    // inside the grace period: kept
    let out = engine
        .cleanup(&link, &Policy::default(), false)
        .await
        .expect("cleanup");
    assert!(out.removed_key_ids.is_empty(), "{out:?}");
    assert!(
        out.kept
            .iter()
            .any(|k| k.key_id == MYAPP_SECRET1 && k.reason.contains("grace period until"))
    );
    // eight days later (injected clock): removed, and only that one
    let mut opts = env.options();
    opts.clock = Some(Arc::new(|| {
        time::OffsetDateTime::now_utc() + time::Duration::days(8)
    }));
    let later = Engine::new(opts).expect("engine");
    let dry = later
        .cleanup(&link, &Policy::default(), true)
        .await
        .expect("dry");
    assert_eq!(dry.removed_key_ids, vec![MYAPP_SECRET1.to_owned()]);
    assert_eq!(env.passwords(MYAPP).len(), 3, "dry run removes nothing");
    let out = later
        .cleanup(&link, &Policy::default(), false)
        .await
        .expect("cleanup");
    assert_eq!(out.removed_key_ids, vec![MYAPP_SECRET1.to_owned()]);
    let keys: Vec<String> = env
        .passwords(MYAPP)
        .iter()
        .map(|p| p["key_id"].as_str().expect("k").to_owned())
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "Secret 2 (another lineage) is untouched: {keys:?}"
    );
    assert!(keys.contains(&"c0000001-0000-4000-8000-000000000102".to_owned()));
}

#[tokio::test]
async fn cleanup_never_removes_a_credential_a_vault_still_holds() {
    // lineage "s": A (old, held by kv-b), B (rotor, 30 days old, held by kv-a)
    let env = start(fixture(json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": [{"app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "svc",
            "password_credentials": [
                {"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+60d"},
                {"key_id": "c0000001-0000-4000-8000-00000000000b", "display_name": "s rotor:r1", "secret_text": "BBB-new-value-xxxxxxxxxxxx", "start": "-30d", "end": "+330d"},
                {"key_id": "c0000001-0000-4000-8000-00000000000c", "display_name": "other", "secret_text": "CCC-other-value-xxxxxxxxxx", "start": "-600d", "end": "-300d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "BBB-new-value-xxxxxxxxxxxx", "tags": {"rotor-key-id": "c0000001-0000-4000-8000-00000000000b"}}]},
            {"name": "kv-b", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000001-0000-4000-8000-000000000001".into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([
            env.target("kv-a", "svc-secret"),
            env.target("kv-b", "svc-secret"),
        ]),
    };
    let out = engine
        .cleanup(&link, &Policy::default(), false)
        .await
        .expect("cleanup");
    assert!(out.removed_key_ids.is_empty(), "{out:?}");
    assert!(
        out.kept
            .iter()
            .any(|k| k.key_id.ends_with("00a") && k.reason.contains("held by")),
        "{out:?}"
    );
    assert_eq!(
        env.passwords("b0000001-0000-4000-8000-000000000001").len(),
        3,
        "outside the lineage: never"
    );
    // inspect shows divergence; rotate finishes the newest (B) in kv-b
    let st = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert!(st.diverged && st.rotation_due, "{st:?}");
    let dry = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(dry.status, RotationStatus::Skipped, "{dry:#?}");
    assert!(
        dry.notes
            .iter()
            .any(|n| n.starts_with("would copy credential c0000001-0000-4000-8000-00000000000b")),
        "{:?}",
        dry.notes
    );
    assert_eq!(
        env.versions("kv-b", "svc-secret").len(),
        1,
        "dry run writes nothing"
    );
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(
        env.latest("kv-b", "svc-secret")["value"],
        "BBB-new-value-xxxxxxxxxxxx"
    );
    assert_eq!(
        env.passwords("b0000001-0000-4000-8000-000000000001").len(),
        3,
        "repair creates nothing"
    );
    // now A is held by nobody and B started 30 days ago: cleanup removes A only
    let out = engine
        .cleanup(&link, &Policy::default(), false)
        .await
        .expect("cleanup");
    assert_eq!(
        out.removed_key_ids,
        vec!["c0000001-0000-4000-8000-00000000000a".to_owned()]
    );
}

#[tokio::test]
async fn soft_deleted_target_is_a_clear_error_and_nothing_changes() {
    let mut f: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/fixtures/sample-tenant.json"
        ))
        .expect("sample"),
    )
    .expect("json");
    for v in f["vaults"].as_array_mut().expect("vaults") {
        if v["name"] == "kv-dev" {
            for s in v["secrets"].as_array_mut().expect("secrets") {
                if s["name"] == "myapp-dev-secret" {
                    s["deleted"] = json!(true);
                }
            }
        }
    }
    let env = start(fixture(f)).await;
    let engine = env.engine();
    let before = env.passwords(MYAPP).len();
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    let err = rec.error.clone().expect("error");
    assert!(
        err.contains("myapp-dev-secret") && err.contains("kv-dev"),
        "{err}"
    );
    assert!(
        err.contains("soft-deleted") || err.contains("deleted but recoverable"),
        "{err}"
    );
    assert!(
        rec.hints.iter().any(|h| h
            .contains("az keyvault secret recover --vault-name kv-dev --name myapp-dev-secret")),
        "{:?}",
        rec.hints
    );
    assert_eq!(
        env.passwords(MYAPP).len(),
        before,
        "no credential left behind"
    );
    assert_eq!(env.versions("kv-prod", "myapp-secret").len(), 1);
}

#[tokio::test]
async fn key_vault_403_names_the_role() {
    let env = start(fixture(json!({
        "principals": [
            {"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
             "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"kv-a": "Key Vault Secrets User"}}],
        "applications": [{"app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "svc",
            "password_credentials": [{"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]},
            {"name": "kv-b", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let engine = env.engine();
    let app = "b0000001-0000-4000-8000-000000000001";
    // kv-b: no role at all → refused in preflight
    let link = Link {
        application_id: app.into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([
            env.target("kv-a", "svc-secret"),
            env.target("kv-b", "svc-secret"),
        ]),
    };
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    let err = rec.error.clone().expect("err");
    assert!(
        err.contains("kv-b") && err.contains("svc-secret") && err.contains("403"),
        "{err}"
    );
    assert!(
        rec.hints
            .iter()
            .any(|h| h.contains("Key Vault Secrets Officer") && h.contains("kv-b")),
        "{:?}",
        rec.hints
    );
    assert_eq!(env.passwords(app).len(), 1);
    // kv-a: can read, cannot write → refused in preflight (write-access probe), before addPassword
    let link = Link {
        targets: BTreeSet::from([env.target("kv-a", "svc-secret")]),
        ..link
    };
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    let err = rec.error.clone().expect("err");
    assert!(err.contains("kv-a") && err.contains("403"), "{err}");
    assert!(
        rec.hints
            .iter()
            .any(|h| h.contains("Key Vault Secrets Officer")),
        "{:?}",
        rec.hints
    );
    assert_eq!(
        env.passwords(app).len(),
        1,
        "rolled back: {:?}",
        env.passwords(app)
    );
    assert!(env.can_login(app, "AAA-old-value-xxxxxxxxxxxx").await);
}

#[tokio::test]
async fn two_password_cap_makes_room_first() {
    let env = sample().await;
    let engine = env.engine();
    let link = Link {
        application_id: CONSUMER.into(),
        credential_display_name: "current".into(),
        targets: BTreeSet::from([env.target("kv-prod", "consumer-app-client-secret")]),
    };
    let old_current = env.password_value(CONSUMER, "c0000009-0000-4000-8000-000000000902");
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(
        rec.removed_key_ids,
        vec!["c0000009-0000-4000-8000-000000000901".to_owned()]
    );
    let pw = env.passwords(CONSUMER);
    assert_eq!(pw.len(), 2);
    assert!(
        env.can_login(CONSUMER, &old_current).await,
        "the working credential is kept"
    );
    assert_converged(&env, &link);
    // at the cap again, with nothing removable (the old one is in its grace period): refused cleanly
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions {
                force: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    assert!(
        rec.error.as_deref().unwrap_or("").contains("cap"),
        "{rec:#?}"
    );
    assert_eq!(env.passwords(CONSUMER).len(), 2);
}

#[tokio::test]
async fn throttling_storm_completes() {
    let env = sample().await;
    let engine = env.engine();
    for (method, path) in [
        ("PUT", "^/secrets/.*"),
        ("GET", "^/secrets/.*"),
        ("POST", "addPassword"),
        ("GET", "^/v1.0/applications"),
    ] {
        env.emu
            .add_fault(json!({"method": method, "path": path, "status": 429, "retry_after": 1, "count": 3}))
            .expect("fault");
    }
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_converged(&env, &env.myapp_link());
}

#[tokio::test]
async fn dry_run_changes_nothing_and_says_what_would_change() {
    let env = sample().await;
    let engine = env.engine();
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Skipped);
    assert!(rec.dry_run);
    assert!(
        rec.targets
            .iter()
            .all(|t| t.status == TargetStatus::WouldUpdate)
    );
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("would add password `Secret 1 rotor:")),
        "{:?}",
        rec.notes
    );
    assert_eq!(env.passwords(MYAPP).len(), 2);
    assert_eq!(env.versions("kv-prod", "myapp-secret").len(), 1);
}

#[tokio::test]
async fn low_confidence_target_is_refused() {
    let env = sample().await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000005-0000-4000-8000-000000000005".into(),
        credential_display_name: "client secret".into(),
        targets: BTreeSet::from([env.target("kv-staging", "reporting-client-secret")]),
    };
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions {
                force: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    let err = rec.error.clone().expect("err");
    assert!(
        err.contains("confidence") && err.contains("NONE") || err.contains("LOW"),
        "{err}"
    );
    assert!(
        rec.hints.iter().any(|h| h.contains("rotor-key-id")),
        "{:?}",
        rec.hints
    );
    assert_eq!(
        env.passwords("b0000005-0000-4000-8000-000000000005").len(),
        1
    );
}

#[tokio::test]
async fn excluded_link_is_reported_and_not_rotated() {
    let env = sample().await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000008-0000-4000-8000-000000000008".into(),
        credential_display_name: "client secret".into(),
        targets: BTreeSet::from([env.target("kv-prod", "legacy-crm-client-secret")]),
    };
    let policy = Policy {
        exclusions: vec![rotor_engine::Exclusion::parse("name:legacy-*").expect("valid")],
        ..Policy::default()
    };
    let rec = engine
        .rotate(
            &link,
            &policy,
            &RotateOptions {
                force: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Excluded);
    assert_eq!(
        env.passwords("b0000008-0000-4000-8000-000000000008").len(),
        1
    );
    let st = engine.inspect_link(&link, &policy).await.expect("inspect");
    assert_eq!(st.excluded.as_deref(), Some("name:legacy-*"));
    assert!(!st.rotation_due);
}

#[tokio::test]
async fn app_without_service_principal_verifies_by_read_back() {
    let env = start(fixture(json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": [{"app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "svc", "service_principal": false,
            "password_credentials": [{"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"}]}],
        "vaults": [{"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000001-0000-4000-8000-000000000001".into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([env.target("kv-a", "svc-secret")]),
    };
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("read-back") && n.contains("AADSTS7000229")),
        "{:?}",
        rec.notes
    );
}

#[tokio::test]
async fn due_links_from_config() {
    let env = sample().await;
    let engine = env.engine();
    let vaults: Vec<String> = env.vaults().iter().map(|u| format!("\"{u}\"")).collect();
    let cfg = rotor_engine::Config::parse(
        &format!(
            "vaults = [{}]\n[policy]\nexclusions = [\"name:legacy-*\"]\n",
            vaults.join(",")
        ),
        "rotor.toml",
    )
    .expect("config");
    let due = engine.due_links(&cfg).await.expect("due");
    let mut names: Vec<(String, usize)> = due
        .iter()
        .map(|(l, _)| (l.credential_display_name.clone(), l.targets.len()))
        .collect();
    names.sort();
    // MyApp (3 targets, +25d), orders-service (+10d), consumer-app (+20d); legacy-crm excluded
    assert_eq!(
        names,
        vec![
            ("Secret 1".to_owned(), 3),
            ("client secret".to_owned(), 1),
            ("current".to_owned(), 1)
        ]
    );
    let links: Vec<Link> = due.into_iter().map(|(l, _)| l).collect();
    let recs = engine
        .rotate_many(&links, &cfg.policy, &RotateOptions::default(), &NoProgress)
        .await;
    assert!(
        recs.iter().all(|r| r.status == RotationStatus::Success),
        "{recs:#?}"
    );
    assert!(engine.due_links(&cfg).await.expect("due").is_empty());
}

#[tokio::test]
async fn adopt_finds_targets_by_matching() {
    let env = sample().await;
    let engine = env.engine();
    let link = engine
        .adopt(MYAPP, MYAPP_SECRET1, &env.vaults(), &Policy::default())
        .await
        .expect("adopt");
    assert_eq!(link, env.myapp_link());
    let err = engine
        .adopt(
            "b0000005-0000-4000-8000-000000000005",
            "c0000005-0000-4000-8000-000000000501",
            &env.vaults(),
            &Policy::default(),
        )
        .await
        .expect_err("low confidence");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.hints()
            .iter()
            .any(|h| h.contains("reporting-client-secret") && h.contains("LOW")),
        "{:?}",
        err.hints()
    );
}

#[tokio::test]
async fn sync_targets_copies_the_current_value() {
    let env = sample().await;
    let engine = env.engine();
    let link = env.myapp_link();
    let rec = engine
        .sync_targets(&link, &Policy::default(), &NoProgress)
        .await
        .expect("sync");
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(env.passwords(MYAPP).len(), 2, "no new credential");
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn target_rotor_wrote_before_is_rotated_even_if_its_credential_is_gone() {
    let env = start(fixture(json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": [{"app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "svc",
            "password_credentials": [{"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]},
            {"name": "kv-b", "secrets": [{"name": "other-name", "value": "ZZZ-removed-credential-xxxx",
                "tags": {"rotor-key-id": "c0000001-0000-4000-8000-0000000000ff", "app-id": "b0000001-0000-4000-8000-000000000001"}}]}]
    })))
    .await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000001-0000-4000-8000-000000000001".into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([
            env.target("kv-a", "svc-secret"),
            env.target("kv-b", "other-name"),
        ]),
    };
    let st = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert!(st.diverged && st.rotation_due, "{st:?}");
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_converged(&env, &link);
}

#[tokio::test]
async fn verification_waits_through_propagation_delay() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::from_millis(1500));
    let engine = env.engine();
    let progress = CollectProgress::default();
    let started = std::time::Instant::now();
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &progress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        progress
            .events()
            .iter()
            .any(|e| e.step == rotor_engine::Step::Verify
                && e.state == rotor_engine::StepState::Waiting),
        "the wait is reported"
    );
    // a delay longer than the verification timeout: the credential is removed, nothing written
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::from_secs(30));
    let mut o = env.options();
    o.verify_timeout = Duration::from_secs(2);
    let engine = Engine::new(o).expect("engine");
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed);
    assert!(
        rec.error
            .as_deref()
            .unwrap_or("")
            .contains("verifying the new credential"),
        "{rec:#?}"
    );
    assert_eq!(
        env.passwords(MYAPP).len(),
        2,
        "the unverified credential was removed"
    );
    assert_eq!(
        env.versions("kv-prod", "myapp-secret").len(),
        1,
        "nothing written"
    );
}

#[tokio::test]
async fn new_lineage_into_new_secrets() {
    let env = sample().await;
    let engine = env.engine();
    let link = Link {
        application_id: "b0000007-0000-4000-8000-000000000007".into(),
        credential_display_name: "rotor-managed".into(),
        targets: BTreeSet::from([
            env.target("kv-dev", "orphan-app-client-secret"),
            env.target("kv-prod", "orphan-app-client-secret"),
        ]),
    };
    let st = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert!(st.rotation_due && st.current_key_id.is_none(), "{st:?}");
    assert!(
        st.due_reason
            .as_deref()
            .unwrap_or("")
            .contains("`rotor-managed`"),
        "{st:?}"
    );
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    let v = env.latest("kv-dev", "orphan-app-client-secret");
    assert_eq!(
        v["tags"]["rotor-key-id"],
        rec.new_key_id.clone().expect("key").as_str()
    );
    assert!(v["tags"].get("rotor-previous-key-id").is_none());
    assert_converged(&env, &link);
    assert_eq!(
        env.passwords("b0000007-0000-4000-8000-000000000007").len(),
        2,
        "the unrelated `unused` credential stays"
    );
}

#[tokio::test]
async fn a_lineage_with_an_excluded_copy_is_not_linked() {
    let env = sample().await;
    let engine = env.engine();
    let vaults: Vec<String> = env.vaults().iter().map(|u| format!("\"{u}\"")).collect();
    let cfg = rotor_engine::Config::parse(
        &format!(
            "vaults = [{}]\n[policy]\nexclusions = [\"secret:myapp-dev-*\"]\n",
            vaults.join(",")
        ),
        "rotor.toml",
    )
    .expect("config");
    let links = engine.links(&cfg).await.expect("links");
    assert!(
        links.iter().all(|l| l.application_id != MYAPP),
        "{links:#?}"
    );
    assert!(links.iter().any(|l| l.credential_display_name == "current"));
}

/// Read-only access (Key Vault Secrets User) on one of three vaults is found in preflight: the
/// rotation is refused before addPassword, so Graph and every vault are unchanged.
#[tokio::test]
async fn read_only_vault_is_refused_before_add_password() {
    let app = "b0000001-0000-4000-8000-000000000001";
    let env = start(fixture(json!({
        "principals": [
            {"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
             "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"],
             "vault_roles": {"kv-a": "Key Vault Secrets Officer", "kv-b": "Key Vault Secrets Officer", "kv-c": "Key Vault Secrets User"}}],
        "applications": [{"app_id": app, "display_name": "svc",
            "password_credentials": [{"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]},
            {"name": "kv-b", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]},
            {"name": "kv-c", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let engine = env.engine();
    let link = Link {
        application_id: app.into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([
            env.target("kv-a", "svc-secret"),
            env.target("kv-b", "svc-secret"),
            env.target("kv-c", "svc-secret"),
        ]),
    };
    let versions_before: Vec<Vec<serde_json::Value>> = ["kv-a", "kv-b", "kv-c"]
        .iter()
        .map(|v| env.versions(v, "svc-secret"))
        .collect();

    // dry run: nothing is sent, and the record says write access was not proven
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Skipped, "{rec:#?}");
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("write access was not proven")),
        "{:?}",
        rec.notes
    );

    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Failed, "{rec:#?}");
    let err = rec.error.clone().expect("err");
    assert!(
        err.contains("kv-c") && err.contains("svc-secret") && err.contains("403"),
        "{err}"
    );
    assert!(!err.contains("kv-a") && !err.contains("kv-b"), "{err}");
    assert!(
        rec.hints
            .iter()
            .any(|h| h.contains("Key Vault Secrets Officer") && h.contains("kv-c")),
        "{:?}",
        rec.hints
    );
    assert!(rec.new_key_id.is_none(), "{rec:#?}");
    // Graph unchanged: no addPassword was sent, the app still has only its old credential
    let counts = env.emu.request_counts();
    let add_password: u64 = counts["by_route"]
        .as_object()
        .expect("by_route")
        .iter()
        .filter(|(k, _)| k.contains("addPassword"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(add_password, 0, "{counts}");
    let pw = env.passwords(app);
    assert_eq!(pw.len(), 1, "{pw:?}");
    assert_eq!(pw[0]["key_id"], "c0000001-0000-4000-8000-00000000000a");
    // no new secret version anywhere, values and tags untouched
    for (i, v) in ["kv-a", "kv-b", "kv-c"].iter().enumerate() {
        let after = env.versions(v, "svc-secret");
        assert_eq!(after.len(), 1, "{v}: {after:?}");
        assert_eq!(after[0]["version"], versions_before[i][0]["version"], "{v}");
        assert_eq!(after[0]["value"], "AAA-old-value-xxxxxxxxxxxx", "{v}");
        assert_eq!(after[0]["tags"], versions_before[i][0]["tags"], "{v}");
        assert_eq!(after[0]["enabled"], versions_before[i][0]["enabled"], "{v}");
        assert_eq!(after[0]["expires"], versions_before[i][0]["expires"], "{v}");
    }
    assert!(env.can_login(app, "AAA-old-value-xxxxxxxxxxxx").await);

    // with write access everywhere the same link rotates (the probe changes nothing visible)
    let officer = start(fixture(json!({
        "principals": [
            {"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
             "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"],
             "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": [{"app_id": app, "display_name": "svc",
            "password_credentials": [{"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx", "content_type": "text/plain", "tags": {"owner": "team-a"}}]}]
    })))
    .await;
    let link = Link {
        application_id: app.into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([officer.target("kv-a", "svc-secret")]),
    };
    let rec = officer
        .engine()
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    let vs = officer.versions("kv-a", "svc-secret");
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert_eq!(vs[0]["tags"]["owner"], "team-a", "probe kept the old tags");
    assert_eq!(vs[0]["content_type"], "text/plain");
    assert_eq!(vs[1]["tags"]["owner"], "team-a");
    assert_eq!(vs[1]["content_type"], "text/plain");
}

/// sync_targets checks write access to the targets it would copy to before writing any of them.
#[tokio::test]
async fn sync_refuses_a_read_only_target_before_writing() {
    let app = "b0000001-0000-4000-8000-000000000001";
    let env = start(fixture(json!({
        "principals": [
            {"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
             "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"],
             "vault_roles": {"kv-a": "Key Vault Secrets Officer", "kv-b": "Key Vault Secrets Officer", "kv-c": "Key Vault Secrets User"}}],
        "applications": [{"app_id": app, "display_name": "svc",
            "password_credentials": [
                {"key_id": "c0000001-0000-4000-8000-00000000000a", "display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "start": "-300d", "end": "+10d"},
                {"key_id": "c0000001-0000-4000-8000-00000000000b", "display_name": "s rotor:9b2f6c1e-0d7a-4c55-9a43-1f2e3d4c5b6a", "secret_text": "BBB-new-value-xxxxxxxxxxxx", "start": "-2d", "end": "+360d"}]}],
        "vaults": [
            {"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "BBB-new-value-xxxxxxxxxxxx", "tags": {"rotor-key-id": "c0000001-0000-4000-8000-00000000000b"}}]},
            {"name": "kv-b", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]},
            {"name": "kv-c", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let link = Link {
        application_id: app.into(),
        credential_display_name: "s".into(),
        targets: BTreeSet::from([
            env.target("kv-a", "svc-secret"),
            env.target("kv-b", "svc-secret"),
            env.target("kv-c", "svc-secret"),
        ]),
    };
    let err = env
        .engine()
        .sync_targets(&link, &Policy::default(), &NoProgress)
        .await
        .expect_err("kv-c is read-only");
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    assert!(err.to_string().contains("kv-c"), "{err}");
    assert!(
        err.hints()
            .iter()
            .any(|h| h.contains("Key Vault Secrets Officer") && h.contains("kv-c")),
        "{:?}",
        err.hints()
    );
    for v in ["kv-a", "kv-b", "kv-c"] {
        assert_eq!(env.versions(v, "svc-secret").len(), 1, "{v} unchanged");
    }
    assert_eq!(env.passwords(app).len(), 2);
}
