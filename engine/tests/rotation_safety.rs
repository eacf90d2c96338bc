//! One regression test per way rotor used to lose a working credential, touch something outside
//! the lineage, or rotate when nobody asked (docs/protocol.md, "Invariants"). Each is named after
//! what broke and fails on the engine as it was before the protocol was rebuilt.

mod common;

use common::*;
use rotor_emulator::Fixture;
use rotor_engine::{
    Confidence, Engine, Link, NoProgress, Policy, Progress, ProgressEvent, RotateOptions,
    RotationStatus, SkipReason, Step, StepState,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const BILLING: &str = "b0000002-0000-4000-8000-000000000002";

fn fast_engine(env: &Env) -> Engine {
    let mut o = env.options();
    o.max_retries = 1;
    o.verify_timeout = Duration::from_secs(2);
    o.scope_vaults = env.vaults();
    Engine::new(o).expect("engine")
}

fn forced() -> RotateOptions {
    RotateOptions {
        force: true,
        ..RotateOptions::default()
    }
}

fn fixture_with(edit: impl FnOnce(&mut Value)) -> Fixture {
    let mut v: Value =
        serde_json::from_str(rotor_emulator::fixture::SAMPLE_TENANT_JSON).expect("json");
    edit(&mut v);
    serde_json::from_value(v).expect("fixture")
}

/// Every target of `link` holds a value that logs in as the app; returns the values.
async fn all_log_in(env: &Env, link: &Link) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for t in &link.targets {
        let vault = env
            .emu
            .endpoints()
            .vaults
            .iter()
            .find(|(_, u)| **u == t.vault_url.as_str())
            .map(|(n, _)| n.clone())
            .expect("vault");
        let v = env.latest(&vault, &t.secret_name);
        let value = v["value"].as_str().expect("value").to_owned();
        assert!(
            env.can_login(&link.application_id, &value).await,
            "{vault}/{} holds a credential that does not log in",
            t.secret_name
        );
        values.insert(value);
    }
    values
}

fn one_target(env: &Env, app: &str, name: &str, vault: &str, secret: &str) -> Link {
    Link {
        application_id: app.into(),
        credential_display_name: name.into(),
        targets: BTreeSet::from([env.target(vault, secret)]),
    }
}

/// A policy that accepts LOW matches: the rejection rules must hold even there.
fn low() -> Policy {
    Policy {
        min_confidence: Confidence::Low,
        ..Policy::default()
    }
}

/// Matches MyApp alone (as `rotate --app` does) and returns the candidate `secret` and the links.
async fn match_myapp(
    engine: &Engine,
    env: &Env,
    policy: &Policy,
    secret: &str,
) -> (rotor_engine::Match, Vec<Link>) {
    let app = engine.get_application(MYAPP).await.expect("app");
    let report = engine
        .match_secrets(std::slice::from_ref(&app), &env.vaults(), policy)
        .await
        .expect("match");
    let m = report
        .matches
        .iter()
        .find(|m| m.secret_name == secret)
        .cloned()
        .expect("the candidate is reported, with why it was rejected");
    let links = rotor_engine::rotation::links_from_matches(&report, &[app], policy);
    (m, links)
}

/// #1: two links on one lineage. Rotating the first must not let the second remove the first's
/// live credential as an "orphan"; the second is refused, naming the secret that holds it.
#[tokio::test]
async fn second_link_on_a_lineage_never_removes_the_first_links_credential() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::ZERO);
    let a = one_target(&env, MYAPP, "Secret 1", "kv-prod", "myapp-secret");
    let b = Link {
        application_id: MYAPP.into(),
        credential_display_name: "Secret 1".into(),
        targets: BTreeSet::from([
            env.target("kv-dev", "myapp-dev-secret"),
            env.target("kv-staging", "myapp-secret-v2"),
        ]),
    };
    let engine = fast_engine(&env);
    let ra = engine
        .rotate(&a, &Policy::default(), &forced(), &NoProgress)
        .await;
    assert_eq!(ra.status, RotationStatus::Success, "{ra:#?}");
    // past the pending window: the old code took A's credential for B's orphan
    env.emu.age(Duration::from_secs(2 * 3600));
    let engine = fast_engine(&env);
    let rb = engine
        .rotate(&b, &Policy::default(), &forced(), &NoProgress)
        .await;
    assert_eq!(rb.status, RotationStatus::Failed, "{rb:#?}");
    let err = rb.error.clone().unwrap_or_default();
    assert!(
        err.contains("two links claim one lineage") && err.contains("myapp-secret"),
        "{err}"
    );
    assert!(rb.removed_key_ids.is_empty(), "{rb:#?}");
    // cleanup after the grace period keeps what either link's targets hold
    env.emu.age(Duration::from_secs(10 * 86400));
    let engine = fast_engine(&env);
    for l in [&a, &b] {
        let out = engine
            .cleanup(l, &Policy::default(), false)
            .await
            .expect("cleanup");
        assert!(out.removed_key_ids.is_empty(), "{out:#?}");
    }
    all_log_in(&env, &a).await;
    all_log_in(&env, &b).await;
}

/// #2: re-running `rotate --app A --key-id K` after a run that wrote one of three targets: the
/// lineage is the unit, so the written target belongs to the re-run, which finishes the first
/// run's credential instead of forgetting it (and creates no second one).
#[tokio::test]
async fn rerun_by_the_old_key_id_after_a_partial_write_finishes_the_rotation() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::ZERO);
    let link = env.myapp_link();
    let engine = fast_engine(&env);
    for vault in ["kv-dev", "kv-staging"] {
        env.emu
            .add_fault(
                json!({"method": "PUT", "path": "^/secrets/", "vault": vault, "status": 403}),
            )
            .expect("fault");
    }
    let opts = RotateOptions {
        force: true,
        replace_key_id: Some(MYAPP_SECRET1.into()),
        ..RotateOptions::default()
    };
    let first = engine
        .rotate(&link, &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(first.status, RotationStatus::Failed, "{first:#?}");
    let new_key = first
        .new_key_id
        .clone()
        .expect("the new credential is kept");
    env.emu.clear_faults();
    let before = env.passwords(MYAPP).len();
    // the user runs the same command again: adopt K, rotate forced
    let engine = fast_engine(&env);
    let again = engine
        .adopt(MYAPP, MYAPP_SECRET1, &env.vaults(), &Policy::default())
        .await
        .expect("adopt finds the lineage");
    assert_eq!(
        again.targets, link.targets,
        "the written target belongs to the re-run"
    );
    let second = engine
        .rotate(&again, &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(second.status, RotationStatus::Success, "{second:#?}");
    assert_eq!(
        second.new_key_id.as_deref(),
        Some(new_key.as_str()),
        "{second:#?}"
    );
    assert_eq!(env.passwords(MYAPP).len(), before, "no second credential");
    let values = all_log_in(&env, &link).await;
    assert_eq!(values.len(), 1, "targets agree");
}

/// Stops a rotation's reads of Key Vault once it starts writing (installs a fault then).
struct FaultOnWrite<'a> {
    env: &'a Env,
    spec: Value,
    done: std::sync::atomic::AtomicBool,
}

impl Progress for FaultOnWrite<'_> {
    fn event(&self, e: &ProgressEvent) {
        if e.step == Step::UpdateTarget
            && e.state == StepState::Started
            && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.env.emu.add_fault(self.spec.clone()).expect("fault");
        }
    }
}

/// #3: every PUT succeeded but every read-back failed. The outcome is unknown, not "no": the new
/// credential is kept (the vaults hold it), and the re-run converges.
#[tokio::test]
async fn read_back_failures_after_successful_writes_keep_the_new_credential() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::ZERO);
    let link = env.myapp_link();
    let engine = fast_engine(&env);
    let progress = FaultOnWrite {
        env: &env,
        spec: json!({"method": "GET", "path": "^/secrets/", "status": 500}),
        done: false.into(),
    };
    let first = engine
        .rotate(&link, &Policy::default(), &forced(), &progress)
        .await;
    assert_eq!(first.status, RotationStatus::Failed, "{first:#?}");
    let new_key = first.new_key_id.clone().expect("kept");
    assert!(first.removed_key_ids.is_empty(), "{first:#?}");
    assert!(
        env.passwords(MYAPP)
            .iter()
            .any(|p| p["key_id"] == new_key.as_str())
    );
    assert!(
        first.error.clone().unwrap_or_default().contains("unknown"),
        "{first:#?}"
    );
    // every vault holds the new value, which logs in
    let values = all_log_in(&env, &link).await;
    assert_eq!(values.len(), 1);
    env.emu.clear_faults();
    let second = fast_engine(&env)
        .rotate(
            &link,
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert!(
        matches!(
            second.status,
            RotationStatus::Success | RotationStatus::Skipped
        ),
        "{second:#?}"
    );
    assert_eq!(all_log_in(&env, &link).await.len(), 1);
}

/// #4: `pending_window = "0s"` let a second run remove a live run's credential. A window below
/// the verification timeout plus the write budget is refused before anything changes.
#[tokio::test]
async fn pending_window_below_the_verify_and_write_budget_is_refused() {
    let env = sample().await;
    let link = env.myapp_link();
    let policy = Policy {
        pending_window: Duration::ZERO,
        ..Policy::default()
    };
    let before = env.passwords(MYAPP).len();
    let r = fast_engine(&env)
        .rotate(&link, &policy, &forced(), &NoProgress)
        .await;
    assert_eq!(r.status, RotationStatus::Failed, "{r:#?}");
    assert!(r.error.unwrap_or_default().contains("pending_window"));
    assert_eq!(env.passwords(MYAPP).len(), before);
}

/// #4, #8: overlapping runs on an app at its password cap: one rotates, the other skips as
/// "rotation in progress" (it used to fail with a raw TooManyAppPasswords).
#[tokio::test]
async fn overlapping_runs_on_a_capped_app_skip_cleanly() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::ZERO);
    let link = one_target(
        &env,
        CONSUMER,
        "current",
        "kv-prod",
        "consumer-app-client-secret",
    );
    let (e1, e2) = (fast_engine(&env), fast_engine(&env));
    let policy = Policy::default();
    let opts = forced();
    let (r1, r2) = tokio::join!(
        e1.rotate(&link, &policy, &opts, &NoProgress),
        e2.rotate(&link, &policy, &opts, &NoProgress)
    );
    let statuses = [r1.status, r2.status];
    assert!(
        statuses.contains(&RotationStatus::Success),
        "{r1:#?}\n{r2:#?}"
    );
    let loser = if r1.status == RotationStatus::Success {
        &r2
    } else {
        &r1
    };
    // either it saw the winner's credential before creating one, or lost the race after
    assert_eq!(loser.status, RotationStatus::Skipped, "{loser:#?}");
    assert!(
        matches!(
            loser.skip_reason,
            Some(SkipReason::InProgress | SkipReason::LostRace)
        ),
        "{loser:#?}"
    );
    assert!(env.passwords(CONSUMER).len() <= 2, "cap kept");
    all_log_in(&env, &link).await;
}

/// #5: a secret tagged with another application's `app-id`, holding that app's value, matched
/// MyApp on the expiry date alone and was overwritten at `min_confidence = LOW`.
#[tokio::test]
async fn a_secret_tagged_for_another_app_is_never_a_target() {
    let env = start(fixture_with(|f| {
        let kv = &mut f["vaults"][0]["secrets"];
        kv.as_array_mut().expect("secrets").push(json!({
            "name": "shared-client-secret",
            "value": "Bq78Q~Wf--R.goHzf~4wo4apCp7CPTh9lKy_HTBn",
            "content_type": "text/plain",
            "tags": {"app-id": BILLING},
            "expires": "+25d",
            "created": "-10d"
        }));
    }))
    .await;
    let (engine, policy) = (fast_engine(&env), low());
    let (m, links) = match_myapp(&engine, &env, &policy, "shared-client-secret").await;
    assert!(
        m.rejected
            .as_deref()
            .unwrap_or("")
            .contains("another application"),
        "{m:#?}"
    );
    assert!(
        links.iter().all(|l| l
            .targets
            .iter()
            .all(|t| t.secret_name != "shared-client-secret")),
        "{links:#?}"
    );
    // an explicit link naming it is refused before anything changes
    let mut link = env.myapp_link();
    link.targets
        .insert(env.target("kv-prod", "shared-client-secret"));
    let r = engine.rotate(&link, &policy, &forced(), &NoProgress).await;
    assert_eq!(r.status, RotationStatus::Failed, "{r:#?}");
    assert!(r.error.unwrap_or_default().contains("another application"));
    assert!(
        r.hints.iter().all(|h| !h.contains("min_confidence")),
        "{:?}",
        r.hints
    );
    assert_eq!(env.versions("kv-prod", "shared-client-secret").len(), 1);
}

/// #5: expiry alone never qualifies a secret to be written.
#[tokio::test]
async fn expiry_alone_never_qualifies_a_secret() {
    let env = start(fixture_with(|f| {
        f["vaults"][1]["secrets"]
            .as_array_mut()
            .expect("s")
            .push(json!({
                "name": "unrelated-thing",
                "value": "zzzzzzzzzzzz",
                "expires": "+25d",
                "created": "-10d"
            }));
    }))
    .await;
    let (m, links) = match_myapp(&fast_engine(&env), &env, &low(), "unrelated-thing").await;
    assert!(
        m.rejected.as_deref().unwrap_or("").contains("expiry alone"),
        "{m:#?}"
    );
    assert!(
        links
            .iter()
            .all(|l| l.targets.iter().all(|t| t.secret_name != "unrelated-thing"))
    );
}

/// #6: at the 2-password cap rotor removed an expired credential that is not of the lineage.
#[tokio::test]
async fn make_room_never_reaches_outside_the_lineage() {
    let env = start(fixture_with(|f| {
        let apps = f["applications"].as_array_mut().expect("apps");
        let consumer = apps
            .iter_mut()
            .find(|a| a["display_name"] == "consumer-app")
            .expect("consumer");
        consumer["password_credentials"][0]["display_name"] = json!("old");
    }))
    .await;
    let link = one_target(
        &env,
        CONSUMER,
        "current",
        "kv-prod",
        "consumer-app-client-secret",
    );
    let r = fast_engine(&env)
        .rotate(&link, &Policy::default(), &forced(), &NoProgress)
        .await;
    assert_eq!(r.status, RotationStatus::Failed, "{r:#?}");
    assert!(
        r.error
            .unwrap_or_default()
            .contains("never removes a credential outside the lineage")
    );
    assert!(r.removed_key_ids.is_empty());
    assert_eq!(env.passwords(CONSUMER).len(), 2);
}

/// #8: out-of-range day values panicked; the engine saturates instead (config load refuses them).
#[tokio::test]
async fn huge_day_values_never_panic() {
    let env = sample().await;
    let link = env.myapp_link();
    let engine = fast_engine(&env);
    let policy = Policy {
        rotate_before_expiry_days: u32::MAX,
        grace_period_days: u32::MAX,
        new_secret_validity_days: u32::MAX,
        ..Policy::default()
    };
    let status = engine.inspect_link(&link, &policy).await.expect("inspect");
    assert!(status.rotation_due);
    engine.cleanup(&link, &policy, true).await.expect("cleanup");
    let dry = RotateOptions {
        dry_run: true,
        validity_days: Some(u32::MAX),
        ..forced()
    };
    let r = engine.rotate(&link, &policy, &dry, &NoProgress).await;
    assert_eq!(r.status, RotationStatus::Skipped, "{r:#?}");
}

/// #8: an unwritable history file still exited 0 and the audit record was lost. Now it is proven
/// writable before anything changes.
#[tokio::test]
async fn unwritable_history_refuses_before_changing_anything() {
    let env = sample().await;
    let mut o = env.options();
    o.history_file = Some(env.dir.path().to_path_buf()); // a directory: cannot be appended to
    let engine = Engine::new(o).expect("engine");
    let before = env.passwords(MYAPP).len();
    let r = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &forced(),
            &NoProgress,
        )
        .await;
    assert_eq!(r.status, RotationStatus::Failed, "{r:#?}");
    assert!(r.error.unwrap_or_default().contains("history file"));
    assert_eq!(env.passwords(MYAPP).len(), before, "nothing changed");
}

/// #8: after a run that wrote every target was killed before its record, re-running the same
/// command (`--key-id` of the old credential) failed and suggested lowering `min_confidence`.
/// Now the lineage is found and the request is already fulfilled: nothing rotates twice.
#[tokio::test]
async fn rerun_after_a_complete_rotation_does_not_rotate_again() {
    let env = sample().await;
    env.emu.set_propagation_delay(Duration::ZERO);
    let link = env.myapp_link();
    let opts = RotateOptions {
        force: true,
        replace_key_id: Some(MYAPP_SECRET1.into()),
        ..RotateOptions::default()
    };
    let first = fast_engine(&env)
        .rotate(&link, &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(first.status, RotationStatus::Success, "{first:#?}");
    let engine = fast_engine(&env);
    let again = engine
        .adopt(MYAPP, MYAPP_SECRET1, &env.vaults(), &Policy::default())
        .await
        .expect("adopt by the old key id");
    let before = env.passwords(MYAPP).len();
    let second = engine
        .rotate(&again, &Policy::default(), &opts, &NoProgress)
        .await;
    assert_eq!(second.status, RotationStatus::Skipped, "{second:#?}");
    assert_eq!(second.skip_reason, Some(SkipReason::NotDue));
    assert_eq!(env.passwords(MYAPP).len(), before);
}

/// The front end's stop request is honoured at the next safe point.
struct StopNow;

impl Progress for StopNow {
    fn event(&self, _e: &ProgressEvent) {}
    fn cancelled(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_cancelled_run_stops_before_changing_anything() {
    let env = sample().await;
    let before = env.state();
    let r = fast_engine(&env)
        .rotate(&env.myapp_link(), &Policy::default(), &forced(), &StopNow)
        .await;
    assert_eq!(r.status, RotationStatus::Failed, "{r:#?}");
    assert!(r.error.unwrap_or_default().contains("stopped before"));
    assert_eq!(env.state()["applications"], before["applications"]);
}

/// `rotor rotate --app A` (forced, no key id named) re-run after a run that wrote one of three
/// targets: the unfinished rotation is finished, not followed by a second one.
#[tokio::test]
async fn forced_rerun_after_a_partial_write_finishes_without_a_second_rotation() {
    let env = sample().await;
    let link = env.myapp_link();
    for vault in ["kv-dev", "kv-staging"] {
        env.emu
            .add_fault(
                json!({"method": "PUT", "path": "^/secrets/", "vault": vault, "status": 403}),
            )
            .expect("fault");
    }
    let first = fast_engine(&env)
        .rotate(&link, &Policy::default(), &forced(), &NoProgress)
        .await;
    assert_eq!(first.status, RotationStatus::Failed, "{first:#?}");
    let new_key = first.new_key_id.clone().expect("kept");
    env.emu.clear_faults();
    let before = env.passwords(MYAPP).len();
    let second = fast_engine(&env)
        .rotate(&link, &Policy::default(), &forced(), &NoProgress)
        .await;
    assert_eq!(second.status, RotationStatus::Success, "{second:#?}");
    assert_eq!(
        second.new_key_id.as_deref(),
        Some(new_key.as_str()),
        "{second:#?}"
    );
    assert_eq!(env.passwords(MYAPP).len(), before, "no second credential");
    assert_eq!(all_log_in(&env, &link).await.len(), 1);
}
