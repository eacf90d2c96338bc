//! Secret values never appear in logs (TRACE), Debug output of records and errors, the history
//! file or the hint cache.

mod common;

use common::*;
use rotor_engine::{Link, NoProgress, Policy, RotateOptions, RotationStatus};
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_leak() {
    let buf = common::trace::capture();

    let env = sample().await;
    let engine = env.engine();
    let mut debug = String::new();
    let apps = engine.discover(None).await.expect("discover");
    debug.push_str(&format!("{apps:?}"));
    let report = engine
        .match_secrets(&apps, &env.vaults(), &Policy::default())
        .await
        .expect("match");
    debug.push_str(&format!("{report:?}"));
    let rec = engine
        .rotate(
            &env.myapp_link(),
            &Policy::default(),
            &RotateOptions::default(),
            &NoProgress,
        )
        .await;
    assert_eq!(rec.status, RotationStatus::Success);
    debug.push_str(&format!("{rec:?}"));
    // a failure too (low confidence) and an error's Debug
    let bad = Link {
        application_id: "b0000006-0000-4000-8000-000000000006".into(),
        credential_display_name: "client secret".into(),
        targets: BTreeSet::from([env.target("kv-prod", "inventory-client-secret")]),
    };
    let failed = engine
        .rotate(
            &bad,
            &Policy::default(),
            &RotateOptions {
                force: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await;
    assert_eq!(failed.status, RotationStatus::Failed);
    debug.push_str(&format!("{failed:?}"));
    let err = engine
        .adopt(
            "b0000005-0000-4000-8000-000000000005",
            "c0000005-0000-4000-8000-000000000501",
            &env.vaults(),
            &Policy::default(),
        )
        .await
        .expect_err("no target");
    debug.push_str(&format!("{err:?} {}", err.render()));
    let st = engine
        .inspect_link(&env.myapp_link(), &Policy::default())
        .await
        .expect("inspect");
    debug.push_str(&format!("{st:?} {engine:?}"));
    let out = engine
        .cleanup(&env.myapp_link(), &Policy::default(), true)
        .await
        .expect("cleanup");
    debug.push_str(&format!("{out:?}"));

    let logs = buf.text();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the subscriber captured something"
    );
    assert!(logs.contains("rotor_engine"), "engine events captured");
    assert!(
        !logs.to_ascii_lowercase().contains("bearer ey"),
        "no access token in the logs"
    );
    assert!(
        logs.contains("reqwest") || logs.contains("rustls") || logs.contains("hyper"),
        "HTTP stack events captured"
    );
    let history = std::fs::read_to_string(env.dir.path().join("history.jsonl")).expect("history");
    let cache = std::fs::read_to_string(env.dir.path().join("hints.json")).expect("cache");
    let values = env.all_values();
    assert!(values.len() > 12);
    for v in values {
        for (what, text) in [
            ("logs", &logs),
            ("Debug output", &debug),
            ("history", &history),
            ("hint cache", &cache),
        ] {
            assert!(!text.contains(&v), "a secret value appears in the {what}");
        }
    }
}
