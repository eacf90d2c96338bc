//! Admin API: faults, latency, request counts, state.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

const API: &str = "api-version=2025-07-01";

#[tokio::test]
async fn status_fault_with_retry_after_fires_count_times() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let admin = &emu.endpoints().admin;
    let r = http
        .post(format!("{admin}/faults"))
        .json(&json!({"method": "GET", "path": "^/secrets/myapp-secret$", "status": 503, "retry_after": 7, "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let url = format!("{}secrets/myapp-secret?{API}", vault(&emu, "kv-prod"));
    for _ in 0..2 {
        let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Other paths were never affected; faulted requests were counted.
    let counts: Value = http
        .get(format!("{admin}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["by_route"]["GET /secrets/{name}"], 3);
    assert_eq!(counts["by_vault"]["kv-prod"]["GET /secrets/{name}"], 3);
    assert_eq!(counts, emu.request_counts());
}

#[tokio::test]
async fn throttling_fault_is_retried_by_the_caller() {
    let emu = sample().await;
    let http = http(&emu);
    emu.add_fault(json!({"method": "POST", "path": "addPassword$", "status": 429, "retry_after": 1, "count": 1}))
        .unwrap();
    let t = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let state = emu.state();
    let oid = app(&state, "MyApp")["object_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!(
        "{}/v1.0/applications/{oid}/addPassword",
        emu.endpoints().graph_endpoint
    );
    let r = http
        .post(&url)
        .bearer_auth(&t)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    // nothing was created by the faulted request
    assert_eq!(
        app(&emu.state(), "MyApp")["password_credentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = http
        .post(&url)
        .bearer_auth(&t)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn latency_fault_and_global_latency_delay_answers() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let url = format!("{}secrets/myapp-secret?{API}", vault(&emu, "kv-prod"));
    emu.add_fault(json!({"path": "/secrets/", "latency_ms": 400, "count": 1}))
        .unwrap();
    let start = Instant::now();
    let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(400));
    // The count-limited fault is used up (no timing upper bound: loaded CI machines are slow).
    let listed: Value = http
        .get(format!("{}/faults", emu.endpoints().admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"].as_array().unwrap().len(), 0);

    let r = http
        .post(format!("{}/latency", emu.endpoints().admin))
        .json(&json!({"ms": 250}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let start = Instant::now();
    http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_an_answer() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    emu.add_fault(json!({"method": "PUT", "path": "^/secrets/", "drop": true, "count": 1}))
        .unwrap();
    let url = format!("{}secrets/dropped?{API}", vault(&emu, "kv-prod"));
    let err = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "x"}))
        .send()
        .await
        .expect_err("connection dropped");
    assert!(!err.is_status(), "{err:?}");
    // nothing was written; the next attempt works
    assert!(!emu.state().to_string().contains("\"dropped\""));
    let r = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn probability_and_vault_scoping() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    emu.add_fault(json!({"path": ".*", "status": 500, "probability": 0.0}))
        .unwrap();
    emu.add_fault(json!({"path": ".*", "status": 502, "vault": "kv-dev"}))
        .unwrap();
    for _ in 0..5 {
        let r = http
            .get(format!("{}secrets?{API}", vault(&emu, "kv-prod")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!("{}secrets?{API}", vault(&emu, "kv-dev")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let listed: Value = http
        .get(format!("{}/faults", emu.endpoints().admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"][1]["fired"], 1);
    let r = http
        .delete(format!("{}/faults", emu.endpoints().admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{}secrets?{API}", vault(&emu, "kv-dev")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // bad fault specs are refused
    let r = http
        .post(format!("{}/faults", emu.endpoints().admin))
        .json(&json!({"path": "("}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("path `(` is not a regex"), "{msg}");
    // ... and so does the library call, with the same reason
    let err = emu.add_fault(json!({"path": "("})).unwrap_err().to_string();
    assert!(err.contains("path `(` is not a regex"), "{err}");
    let err = emu
        .add_fault(json!({"path": ".*", "stauts": 500}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `stauts`"), "{err}");
    let err = emu
        .add_fault(json!({"path": ".*"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("set `status`"), "{err}");
    let listed: Value = http
        .get(format!("{}/faults", emu.endpoints().admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["faults"],
        json!([]),
        "refused specs are not installed"
    );
}

#[tokio::test]
async fn state_has_absolute_times_and_versions_oldest_first() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-prod");
    http.put(format!("{v}secrets/myapp-secret?{API}"))
        .bearer_auth(&t)
        .json(&json!({"value": "newer"}))
        .send()
        .await
        .unwrap();
    let state: Value = http
        .get(format!("{}/state", emu.endpoints().admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kv = state["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "kv-prod")
        .unwrap();
    let s = kv["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "myapp-secret")
        .unwrap();
    let versions = s["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions[0]["value"].as_str().unwrap().starts_with("Myk"));
    assert_eq!(versions[1]["value"], "newer");
    assert_eq!(s["deleted"], false);
    let end = app(&state, "MyApp")["password_credentials"][0]["end"]
        .as_str()
        .unwrap();
    let end =
        time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339).unwrap();
    let days = (end - time::OffsetDateTime::now_utc()).whole_days();
    assert!(
        (24..=25).contains(&days),
        "Secret 1 ends in ~25 days: {days}"
    );
}

#[tokio::test]
async fn aging_the_tenant_moves_every_time_into_the_past() {
    let emu = sample().await;
    let http = http(&emu);
    let before = emu.state();
    let r = http
        .post(format!("{}/age", emu.endpoints().admin))
        .json(&json!({"days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = emu.state();
    let parse = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let end_before = parse(&app(&before, "MyApp")["password_credentials"][0]["end"]);
    let end_after = parse(&app(&after, "MyApp")["password_credentials"][0]["end"]);
    assert_eq!(end_before - end_after, time::Duration::days(30));
    // MyApp's Secret 1 (+25d) has now expired: it can no longer log in.
    let myapp = app(&after, "MyApp");
    let (s, b) = token(
        &emu,
        &http,
        myapp["app_id"].as_str().unwrap(),
        myapp["password_credentials"][0]["secret_text"]
            .as_str()
            .unwrap(),
        GRAPH_SCOPE,
    )
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 7000222));
    let kv = |st: &Value| {
        st["vaults"][0]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "myapp-secret")
            .unwrap()["versions"][0]["expires"]
            .clone()
    };
    assert_eq!(
        parse(&kv(&before)) - parse(&kv(&after)),
        time::Duration::days(30)
    );
    // An age that would leave the representable range is refused and changes nothing.
    for body in [
        json!({"days": 5_000_000}),
        json!({"days": i64::MAX}),
        json!({"seconds": i64::MIN}),
    ] {
        let r = http
            .post(format!("{}/age", emu.endpoints().admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let b: Value = r.json().await.unwrap();
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("representable range"),
            "{b}"
        );
    }
    assert_eq!(emu.state(), after, "a refused age changes nothing");
}
