//! `Engine::get_application`: memoised and single-flight (concurrent first calls share one Graph
//! read), refreshed after the engine's own writes, errors not memoised.

mod common;

use common::*;
use rotor_engine::{ErrorKind, NoProgress, Policy, RotateOptions, RotationStatus};
use std::time::Duration;

const APP_READ: &str = "GET /v1.0/applications(appId='{appId}')";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_reads_of_one_application_make_one_graph_read() {
    let env = sample().await;
    let engine = env.engine();
    // Every request takes a while, so all callers are waiting on the first read at once.
    env.emu.set_latency(Duration::from_millis(200));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.get_application(MYAPP).await })
        })
        .collect();
    for c in calls {
        let app = c.await.expect("task").expect("application");
        assert_eq!(app.app_id, MYAPP);
    }
    assert_eq!(env.count(APP_READ), 1, "{}", env.emu.request_counts());
    // Later calls are served from the memo.
    engine.get_application(MYAPP).await.expect("application");
    assert_eq!(env.count(APP_READ), 1, "{}", env.emu.request_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_of_two_applications_make_one_read_each() {
    let env = sample().await;
    let engine = env.engine();
    env.emu.set_latency(Duration::from_millis(200));
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let engine = engine.clone();
            let id = if i % 2 == 0 { MYAPP } else { CONSUMER };
            tokio::spawn(async move { (id, engine.get_application(id).await) })
        })
        .collect();
    for c in calls {
        let (id, app) = c.await.expect("task");
        assert_eq!(app.expect("application").app_id, id);
    }
    assert_eq!(env.count(APP_READ), 2, "{}", env.emu.request_counts());
}

#[tokio::test]
async fn a_rotation_refreshes_the_memoised_application() {
    let env = sample().await;
    let engine = env.engine();
    let before = engine.get_application(MYAPP).await.expect("application");
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions {
                force: true,
                ..RotateOptions::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success, "{rec:?}");
    let new_key = rec.new_key_id.expect("new key id");
    assert!(
        !before
            .password_credentials
            .iter()
            .any(|c| c.key_id == new_key)
    );
    let after = engine.get_application(MYAPP).await.expect("application");
    assert!(
        after
            .password_credentials
            .iter()
            .any(|c| c.key_id == new_key),
        "the memo must not serve the application as it was before the rotation"
    );
}

#[tokio::test]
async fn a_missing_application_is_not_memoised() {
    let env = sample().await;
    let engine = env.engine();
    let missing = "b0000099-0000-4000-8000-000000000099";
    for n in 1..=2 {
        let err = engine.get_application(missing).await.expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert_eq!(env.count(APP_READ), n, "{}", env.emu.request_counts());
    }
}
