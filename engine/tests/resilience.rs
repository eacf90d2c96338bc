//! Failures injected after each protocol step, interrupted runs, concurrent rotations: a re-run
//! converges with nothing lost and no orphan.

mod common;

use common::*;
use rotor_engine::{
    Engine, Link, Policy, Progress, ProgressEvent, RotateOptions, RotationStatus, Step, StepState,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn fast_engine(env: &Env) -> Engine {
    let mut o = env.options();
    o.max_retries = 1;
    o.verify_timeout = Duration::from_secs(2);
    Engine::new(o).expect("engine")
}

/// The targets agree on one live credential, newest of the lineage, and no rotor credential of
/// the lineage is newer than it (no orphan); the original credential still logs in.
async fn assert_converged(env: &Env, link: &Link, original: Option<(&str, &str)>) {
    let mut held = BTreeSet::new();
    for t in &link.targets {
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
            .unwrap_or_else(|| panic!("{name}/{} holds no live credential", t.secret_name));
        assert!(
            env.can_login(&link.application_id, &value).await,
            "held credential logs in"
        );
        held.insert(key);
    }
    assert_eq!(held.len(), 1, "targets agree: {held:?}");
    let current = held.into_iter().next().expect("one");
    let pw = env.passwords(&link.application_id);
    let cur = pw
        .iter()
        .find(|p| p["key_id"] == current.as_str())
        .expect("current");
    let prefix = format!("{} rotor:", link.credential_display_name);
    for p in &pw {
        let d = p["display_name"].as_str().unwrap_or("");
        if d.starts_with(&prefix) && p["key_id"] != current.as_str() {
            assert!(
                p["start"].as_str() <= cur["start"].as_str(),
                "orphan left behind: {p}"
            );
        }
    }
    if let Some((app, value)) = original {
        assert!(
            env.can_login(app, value).await,
            "the original credential was not lost"
        );
    }
}

async fn fault_then_rerun(
    faults: Vec<Value>,
    link_of: impl Fn(&Env) -> Link,
    check_first: impl Fn(&Env, &rotor_engine::AuditRecord),
) {
    let env = sample().await;
    let link = link_of(&env);
    let original_key = match link.application_id.as_str() {
        MYAPP => MYAPP_SECRET1,
        _ => "c0000009-0000-4000-8000-000000000902",
    };
    let original = env.password_value(&link.application_id, original_key);
    let engine = fast_engine(&env);
    // warm the engine's own tokens so faults hit only the step under test
    engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    for f in &faults {
        env.emu.add_fault(f.clone()).expect("fault");
    }
    let first = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(first.status, RotationStatus::Failed, "{first:#?}");
    assert!(first.error.is_some());
    check_first(&env, &first);
    env.emu.clear_faults();
    let second = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(second.status, RotationStatus::Success, "{second:#?}");
    assert_converged(&env, &link, Some((&link.application_id, &original))).await;
    // and a third run has nothing to do
    let third = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(third.status, RotationStatus::Skipped, "{third:#?}");
}

fn nothing_changed(env: &Env, _r: &rotor_engine::AuditRecord) {
    assert_eq!(env.passwords(MYAPP).len(), 2, "no credential added");
    for (v, s) in [
        ("kv-prod", "myapp-secret"),
        ("kv-dev", "myapp-dev-secret"),
        ("kv-staging", "myapp-secret-v2"),
    ] {
        assert_eq!(env.versions(v, s).len(), 1, "{v}/{s} untouched");
    }
}

#[tokio::test]
async fn failure_in_preflight_then_rerun() {
    fault_then_rerun(
        vec![json!({"method": "GET", "path": "^/secrets/", "vault": "kv-dev", "status": 500})],
        |env| env.myapp_link(),
        nothing_changed,
    )
    .await;
}

#[tokio::test]
async fn failure_in_make_room_then_rerun() {
    fault_then_rerun(
        vec![json!({"method": "POST", "path": "removePassword", "status": 500})],
        |env| Link {
            application_id: CONSUMER.into(),
            credential_display_name: "current".into(),
            targets: BTreeSet::from([env.target("kv-prod", "consumer-app-client-secret")]),
        },
        |env, _| {
            assert_eq!(env.passwords(CONSUMER).len(), 2);
            assert_eq!(
                env.versions("kv-prod", "consumer-app-client-secret").len(),
                1
            );
        },
    )
    .await;
}

#[tokio::test]
async fn failure_in_create_then_rerun() {
    fault_then_rerun(
        vec![json!({"method": "POST", "path": "addPassword", "status": 500})],
        |env| env.myapp_link(),
        nothing_changed,
    )
    .await;
}

/// addPassword is not idempotent: a 500 may have created a credential, so it is not retried
/// (one 500 fails the run although a retry would have succeeded).
#[tokio::test]
async fn add_password_is_not_retried_after_a_500() {
    fault_then_rerun(
        vec![json!({"method": "POST", "path": "addPassword", "status": 500, "count": 1})],
        |env| env.myapp_link(),
        nothing_changed,
    )
    .await;
}

/// A 429 proves addPassword was not processed: it is retried, and exactly one credential is added.
#[tokio::test]
async fn add_password_is_retried_after_a_429() {
    let env = sample().await;
    let link = env.myapp_link();
    let engine = fast_engine(&env);
    engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    env.emu
        .add_fault(json!({"method": "POST", "path": "addPassword", "status": 429, "retry_after": 0, "count": 1}))
        .expect("fault");
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(
        env.passwords(MYAPP).len(),
        3,
        "exactly one credential added"
    );
}

/// ARM throttling is reported as Throttled, not as an unknown failure.
#[tokio::test]
async fn arm_throttling_is_throttled() {
    let env = sample().await;
    let mut o = env.options();
    o.max_retries = 0;
    let engine = Engine::new(o).expect("engine");
    env.emu
        .add_fault(json!({"method": "GET", "path": "^/subscriptions/", "status": 429}))
        .expect("fault");
    let cfg = rotor_engine::Config::parse(
        r#"subscriptions = ["11111111-1111-4111-8111-111111111111"]"#,
        "rotor.toml",
    )
    .expect("config");
    let err = engine.resolve_vaults(&cfg).await.expect_err("throttled");
    assert_eq!(err.kind(), rotor_engine::ErrorKind::Throttled, "{err}");
    assert!(
        err.to_string()
            .contains("11111111-1111-4111-8111-111111111111"),
        "{err}"
    );
}

#[tokio::test]
async fn failure_in_verify_then_rerun() {
    fault_then_rerun(
        vec![json!({"method": "POST", "path": "/oauth2/v2.0/token", "status": 503})],
        |env| env.myapp_link(),
        |env, r| {
            nothing_changed(env, r);
            assert_eq!(
                r.removed_key_ids.len(),
                1,
                "the unverified credential was removed"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn failure_in_update_targets_then_rerun() {
    fault_then_rerun(
        vec![json!({"method": "PUT", "path": "^/secrets/", "vault": "kv-staging", "status": 500})],
        |env| env.myapp_link(),
        |env, r| {
            assert_eq!(
                env.passwords(MYAPP).len(),
                3,
                "new credential kept: two targets hold it"
            );
            assert_eq!(env.versions("kv-prod", "myapp-secret").len(), 2);
            assert_eq!(env.versions("kv-staging", "myapp-secret-v2").len(), 1);
            assert!(
                r.error
                    .as_deref()
                    .unwrap_or("")
                    .contains("2 of 3 targets hold the new credential"),
                "{r:#?}"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn failure_in_read_back_then_rerun() {
    let env = sample().await;
    let link = env.myapp_link();
    let original = env.password_value(MYAPP, MYAPP_SECRET1);
    env.emu
        .add_fault(json!({"method": "GET", "path": "^/secrets/[^/]+/[0-9a-f]{32}$", "vault": "kv-dev", "status": 500}))
        .expect("fault");
    let engine = fast_engine(&env);
    let first = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    // The read-back of the written version failed, but reading the current version settles it:
    // the write landed, so the run may even succeed; it never removes the new credential.
    assert!(
        matches!(
            first.status,
            RotationStatus::Failed | RotationStatus::Success
        ),
        "{first:#?}"
    );
    assert!(first.removed_key_ids.is_empty(), "{first:#?}");
    env.emu.clear_faults();
    let second = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert!(
        matches!(
            second.status,
            RotationStatus::Success | RotationStatus::Skipped
        ),
        "{second:#?}"
    );
    assert_converged(&env, &link, Some((MYAPP, &original))).await;
}

/// Signals when a step reaches a state; the test then drops the rotation future at its next
/// await point — what `kill -9` does to a process.
struct KillAt {
    step: Step,
    state: StepState,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Progress for KillAt {
    fn event(&self, e: &ProgressEvent) {
        if e.step == self.step && e.state == self.state {
            let _ = self.tx.send(true);
        }
    }
}

async fn killed_at(env: &Env, engine: &Engine, link: &Link, step: Step, state: StepState) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let kill = KillAt { step, state, tx };
    let policy = Policy::default();
    let opts = RotateOptions::default();
    let fut = engine.rotate(link, &policy, &opts, &kill);
    tokio::select! {
        r = fut => panic!("rotation finished before the kill point: {r:#?}"),
        _ = rx.wait_for(|k| *k) => {}
    }
    let _ = env;
}

#[tokio::test]
async fn killed_after_create_then_rerun() {
    let env = sample().await;
    let link = env.myapp_link();
    let original = env.password_value(MYAPP, MYAPP_SECRET1);
    let engine = fast_engine(&env);
    killed_at(&env, &engine, &link, Step::Create, StepState::Done).await;
    assert_eq!(
        env.passwords(MYAPP).len(),
        3,
        "a credential was created and never written"
    );
    // inside the pending window: another run sees a rotation in progress and leaves it alone
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Skipped, "{rec:#?}");
    assert!(
        rec.notes.iter().any(|n| n.contains("rotation in progress")),
        "{:?}",
        rec.notes
    );
    let st = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    assert!(st.in_progress && !st.rotation_due);
    // after the pending window (injected clock): the orphan is removed and the rotation completes
    let mut o = env.options();
    o.clock = Some(Arc::new(|| {
        time::OffsetDateTime::now_utc() + time::Duration::hours(2)
    }));
    let later = Engine::new(o).expect("engine");
    let rec = later
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:#?}");
    assert_eq!(rec.removed_key_ids.len(), 1, "orphan removed");
    assert_converged(&env, &link, Some((MYAPP, &original))).await;
    assert_eq!(
        env.passwords(MYAPP).len(),
        3,
        "Secret 1, Secret 2 and the new one"
    );
}

#[tokio::test]
async fn killed_after_first_target_then_rerun() {
    let env = sample().await;
    let link = env.myapp_link();
    let original = env.password_value(MYAPP, MYAPP_SECRET1);
    // slow one vault down so the kill lands between target writes
    env.emu
        .add_fault(json!({"method": "PUT", "path": "^/secrets/", "vault": "kv-staging", "latency_ms": 3000}))
        .expect("fault");
    let engine = fast_engine(&env);
    killed_at(&env, &engine, &link, Step::UpdateTarget, StepState::Done).await;
    env.emu.clear_faults();
    let versions = env.versions("kv-staging", "myapp-secret-v2").len()
        + env.versions("kv-prod", "myapp-secret").len();
    assert!(
        versions >= 3,
        "killed after at least one target was written"
    );
    let st = engine
        .inspect_link(&link, &Policy::default())
        .await
        .expect("inspect");
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{st:#?} {rec:#?}");
    assert_converged(&env, &link, Some((MYAPP, &original))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_rotations_of_one_lineage_converge() {
    let env = sample().await;
    let link = env.myapp_link();
    let original = env.password_value(MYAPP, MYAPP_SECRET1);
    // two engines = two processes (no shared in-process lock)
    let a = env.engine();
    let b = env.engine();
    let policy = Policy::default();
    let opts = RotateOptions::default();
    let (ra, rb) = tokio::join!(
        a.rotate(&link, &policy, &opts, &rotor_engine::NoProgress),
        b.rotate(&link, &policy, &opts, &rotor_engine::NoProgress)
    );
    let statuses = [ra.status, rb.status];
    assert!(
        statuses.contains(&RotationStatus::Success),
        "{ra:#?} {rb:#?}"
    );
    assert!(
        !statuses.contains(&RotationStatus::Failed),
        "{ra:#?} {rb:#?}"
    );
    // a follow-up run settles anything left
    let rc = a
        .rotate(&link, &policy, &opts, &rotor_engine::NoProgress)
        .await;
    assert_ne!(rc.status, RotationStatus::Failed, "{rc:#?}");
    assert_converged(&env, &link, Some((MYAPP, &original))).await;
    let rotor_creds = env
        .passwords(MYAPP)
        .iter()
        .filter(|p| {
            p["display_name"]
                .as_str()
                .unwrap_or("")
                .starts_with("Secret 1 rotor:")
        })
        .count();
    assert_eq!(
        rotor_creds,
        1,
        "exactly one new credential survives: {:?}",
        env.passwords(MYAPP)
    );

    // same engine, concurrent calls: the in-process lock queues them; the second is not due
    let env = sample().await;
    let e = env.engine();
    let l2 = link_for(&env);
    let (r1, r2) = tokio::join!(
        e.rotate(&l2, &policy, &opts, &rotor_engine::NoProgress),
        e.rotate(&l2, &policy, &opts, &rotor_engine::NoProgress)
    );
    let mut s = [r1.status, r2.status];
    s.sort_by_key(|x| x.to_string());
    assert_eq!(s, [RotationStatus::Skipped, RotationStatus::Success]);
}

fn link_for(env: &Env) -> Link {
    env.myapp_link()
}
