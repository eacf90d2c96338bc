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

/// Versions of one secret in the state, oldest first.
fn versions(emu: &rotor_emulator::Emulator, vault: &str, secret: &str) -> Vec<Value> {
    let st = emu.state();
    st["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == vault)
        .and_then(|v| {
            v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == secret)
                .map(|s| s["versions"].as_array().unwrap().clone())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn applied_then_500_keeps_the_new_version() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    emu.add_fault(json!({"method": "PUT", "path": "^/secrets/myapp-secret$", "status": 500, "after": true, "count": 1}))
        .unwrap();
    let url = format!("{}secrets/myapp-secret?{API}", vault(&emu, "kv-prod"));
    let r = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "applied-then-failed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "InjectedFault");
    let v = versions(&emu, "kv-prod", "myapp-secret");
    assert_eq!(v.len(), 2, "the write was applied");
    assert_eq!(v[1]["value"], "applied-then-failed");
    // without `after` the same fault fails without applying
    emu.add_fault(
        json!({"method": "PUT", "path": "^/secrets/myapp-secret$", "status": 500, "count": 1}),
    )
    .unwrap();
    let r = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "not-applied"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(versions(&emu, "kv-prod", "myapp-secret").len(), 2);
    // applied, then dropped: the client sees no answer, the store has the change
    emu.add_fault(json!({"method": "PUT", "path": "^/secrets/myapp-secret$", "drop": true, "after": true, "latency_ms": 50, "count": 1}))
        .unwrap();
    let err = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "applied-then-dropped"}))
        .send()
        .await
        .expect_err("dropped");
    assert!(!err.is_status(), "{err:?}");
    let v = versions(&emu, "kv-prod", "myapp-secret");
    assert_eq!(v.len(), 3);
    assert_eq!(v[2]["value"], "applied-then-dropped");
    let log = emu.request_log();
    let statuses: Vec<&Value> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "PUT /secrets/{name}")
        .map(|e| &e["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!("dropped")]);
}

#[tokio::test]
async fn skip_fires_on_the_next_match_only() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    emu.add_fault(json!({"method": "GET", "path": "^/secrets/myapp-secret$", "status": 503, "skip": 2, "count": 1}))
        .unwrap();
    let url = format!("{}secrets/myapp-secret?{API}", vault(&emu, "kv-prod"));
    let other = format!("{}secrets/database-password?{API}", vault(&emu, "kv-prod"));
    let mut got = Vec::new();
    for i in 0..5 {
        // requests the rule does not match do not count towards `skip`
        let r = http.get(&other).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
        got.push(r.status().as_u16());
        if i == 1 {
            let listed: Value = http
                .get(format!("{}/faults", emu.endpoints().admin))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let f = &listed["faults"][0];
            assert_eq!(f["skip"], 2);
            assert_eq!(f["skip_remaining"], 0);
            assert_eq!(f["fired"], 0);
            assert_eq!(f["after"], false);
            assert_eq!(f["hang"], false);
        }
    }
    assert_eq!(
        got,
        [200, 200, 503, 200, 200],
        "fires on the 3rd match only"
    );
    // the rule was removed after its one firing
    assert_eq!(
        http.get(format!("{}/faults", emu.endpoints().admin))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["faults"],
        json!([])
    );
    // validation names the field
    for (spec, want) in [
        (json!({"hang": true, "status": 500}), "`hang: true`"),
        (json!({"hang": true, "drop": true}), "`hang: true`"),
        (json!({"skip": -1, "status": 500}), "skip"),
        (json!({"after": "yes", "status": 500}), "after"),
        (json!({"after": true}), "set `status`"),
    ] {
        let err = emu.add_fault(spec.clone()).unwrap_err().to_string();
        assert!(err.contains(want), "{spec}: {err}");
        let r = http
            .post(format!("{}/faults", emu.endpoints().admin))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{spec}");
    }
}

#[tokio::test]
async fn hang_holds_the_request_until_the_client_gives_up() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let url = format!("{}secrets/hung?{API}", vault(&emu, "kv-prod"));
    // before applying: the client's future is dropped, nothing was written
    emu.add_fault(json!({"method": "PUT", "path": "^/secrets/hung$", "hang": true, "count": 1}))
        .unwrap();
    let put = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "never"}))
        .send();
    let r = tokio::time::timeout(Duration::from_millis(300), put).await;
    assert!(r.is_err(), "no answer: {r:?}");
    assert!(versions(&emu, "kv-prod", "hung").is_empty(), "not applied");
    // after applying: the version exists although the client never got an answer
    emu.add_fault(json!({"method": "PUT", "path": "^/secrets/hung$", "hang": true, "after": true, "count": 1}))
        .unwrap();
    let put = http
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"value": "applied"}))
        .send();
    let r = tokio::time::timeout(Duration::from_millis(300), put).await;
    assert!(r.is_err(), "no answer: {r:?}");
    let v = versions(&emu, "kv-prod", "hung");
    assert_eq!(v.len(), 1, "applied");
    assert_eq!(v[0]["value"], "applied");
    // the emulator is still serving
    let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let log = emu.request_log();
    let tail: Vec<(&Value, &Value)> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["route"], &e["status"]))
        .collect();
    assert_eq!(
        tail,
        [
            (&json!("POST /{tenant}/oauth2/v2.0/token"), &json!(200)),
            (&json!("PUT /secrets/{name}"), &json!("hung")),
            (&json!("PUT /secrets/{name}"), &json!("hung")),
            (&json!("GET /secrets/{name}"), &json!(200)),
        ]
    );
}

#[tokio::test]
async fn request_log_is_in_arrival_order_and_reset_with_the_counts() {
    let emu = sample().await;
    let http = http(&emu);
    let admin = emu.endpoints().admin.clone();
    let t = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let kv = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    emu.add_fault(
        json!({"method": "GET", "path": "^/secrets$", "status": 429, "retry_after": 0, "count": 1}),
    )
    .unwrap();
    let myapp = "b0000001-0000-4000-8000-000000000001";
    let r = http
        .post(format!(
            "{}/v1.0/applications(appId='{myapp}')/addPassword",
            emu.endpoints().graph_endpoint
        ))
        .bearer_auth(&t)
        .json(&json!({"passwordCredential": {"displayName": "logged"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..2 {
        http.get(format!("{}secrets?{API}", vault(&emu, "kv-dev")))
            .bearer_auth(&kv)
            .send()
            .await
            .unwrap();
    }
    http.get(format!("{}/nope", emu.endpoints().graph_endpoint))
        .send()
        .await
        .unwrap();
    // admin requests are not logged
    http.get(format!("{admin}/state")).send().await.unwrap();
    let log: Value = http
        .get(format!("{admin}/requests/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, emu.request_log());
    assert_eq!(log["truncated"], false);
    // times: integers in µs, from the first arrival on, in arrival order, each answered
    let entries = log["log"].as_array().expect("log entries");
    let arrivals: Vec<u64> = entries
        .iter()
        .map(|e| e["at_us"].as_u64().expect("at_us"))
        .collect();
    assert_eq!(arrivals[0], 0, "times count from the first request");
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]), "{arrivals:?}");
    assert!(entries.iter().all(|e| e["us"].as_u64().is_some()), "{log}");
    let without_times: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let o = e.as_object_mut().expect("entry");
            o.remove("at_us");
            o.remove("us");
            e
        })
        .collect();
    assert_eq!(
        Value::Array(without_times),
        json!([
            {"index": 1, "method": "POST", "route": "POST /{tenant}/oauth2/v2.0/token", "vault": null, "status": 200},
            {"index": 2, "method": "POST", "route": "POST /{tenant}/oauth2/v2.0/token", "vault": null, "status": 200},
            {"index": 3, "method": "POST", "route": "POST /v1.0/applications(appId='{appId}')/addPassword", "vault": null, "status": 200},
            {"index": 4, "method": "GET", "route": "GET /secrets", "vault": "kv-dev", "status": 429},
            {"index": 5, "method": "GET", "route": "GET /secrets", "vault": "kv-dev", "status": 200},
            {"index": 6, "method": "GET", "route": "GET (unmatched)", "vault": null, "status": 501},
        ])
    );
    let r = http
        .delete(format!("{admin}/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(emu.request_log()["log"], json!([]));
    http.get(format!("{}secrets?{API}", vault(&emu, "kv-dev")))
        .bearer_auth(&kv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        emu.request_log()["log"][0]["index"],
        1,
        "numbering restarts"
    );
    emu.clear_requests();
    assert_eq!(emu.request_counts()["total"], 0);
    assert_eq!(emu.request_log()["log"], json!([]));
}
