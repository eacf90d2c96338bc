//! Key Vault REST details the SDK test does not reach.

use serde_json::{Value, json};

use crate::common::*;

const API: &str = "api-version=2025-07-01";

#[tokio::test]
async fn unauthenticated_requests_get_the_bearer_challenge() {
    let emu = sample().await;
    let http = http(&emu);
    let r = http
        .get(format!(
            "{}secrets/myapp-secret?{API}",
            vault(&emu, "kv-prod")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ch = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ch,
        format!(
            "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
            emu.endpoints().authority_host,
            emu.endpoints().tenant_id
        )
    );
}

#[tokio::test]
async fn roles_are_enforced_per_vault() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"principals":[
              {"display_name":"reader","vault_roles":{"kv-a":"Key Vault Reader"}},
              {"display_name":"officer-a","vault_roles":{"kv-a":"Key Vault Secrets Officer"}}],
            "vaults":[{"name":"kv-a","secrets":[{"name":"s1","value":"v1"}]},
                      {"name":"kv-b","secrets":[{"name":"s1","value":"v1"}]}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let reader = token_as(&emu, &http, "reader", VAULT_SCOPE).await;
    let officer = token_as(&emu, &http, "officer-a", VAULT_SCOPE).await;
    let a = vault(&emu, "kv-a");
    let b = vault(&emu, "kv-b");
    let status = |url: String, t: &str| {
        let http = http.clone();
        let t = t.to_string();
        async move {
            http.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(format!("{a}secrets?{API}"), &reader).await, 200);
    assert_eq!(
        status(format!("{a}secrets/s1/versions?{API}"), &reader).await,
        200
    );
    assert_eq!(status(format!("{a}secrets/s1?{API}"), &reader).await, 403);
    assert_eq!(status(format!("{a}secrets/s1/?{API}"), &officer).await, 200);
    assert_eq!(status(format!("{b}secrets/s1?{API}"), &officer).await, 403);
    let r = http
        .get(format!("{a}secrets/s1?{API}"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secrets/getSecret/action")
    );
    // A Graph token is not a Key Vault token.
    let g = token_as(&emu, &http, "officer-a", GRAPH_SCOPE).await;
    assert_eq!(status(format!("{a}secrets/s1?{API}"), &g).await, 401);
    // api-version is required.
    assert_eq!(status(format!("{a}secrets/s1"), &officer).await, 400);
}

#[tokio::test]
async fn limits_are_answered_like_key_vault() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-dev");
    let put = |name: &str, body: Value| {
        http.put(format!("{v}secrets/{name}?{API}"))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let r = put("bad_name", json!({"value": "x"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "BadParameter");
    let too_long = "n".repeat(128);
    assert_eq!(
        put(&too_long, json!({"value": "x"}))
            .await
            .unwrap()
            .status(),
        400
    );
    let tags: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("t{i}"), json!("v"))).collect();
    assert_eq!(
        put("ok-name", json!({"value": "x", "tags": tags}))
            .await
            .unwrap()
            .status(),
        400
    );
    let big = "x".repeat(25 * 1024 + 1);
    assert_eq!(
        put("ok-name", json!({"value": big}))
            .await
            .unwrap()
            .status(),
        400
    );
    let fits = "x".repeat(25 * 1024);
    assert_eq!(
        put("ok-name", json!({"value": fits}))
            .await
            .unwrap()
            .status(),
        200
    );
    let r = put(
        "ok-name",
        json!({"value": "y", "contentType": "text/plain", "attributes": {"exp": 2000000000}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["attributes"]["exp"], 2000000000);
    assert_eq!(b["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{v}secrets/ok-name/")), "{id}");
}

#[tokio::test]
async fn soft_delete_conflict_recover_and_purge() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-prod");
    let r = http
        .delete(format!("{v}secrets/orders-service-client-secret?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert!(b["value"].is_null(), "deleted bundles carry no value");
    assert!(b["scheduledPurgeDate"].as_i64().unwrap() > b["deletedDate"].as_i64().unwrap());

    // While the deletion is in progress: not yet among deleted secrets, and writes, recover
    // and purge answer 409 ObjectIsBeingDeleted.
    let r = http
        .get(format!(
            "{v}deletedsecrets/orders-service-client-secret?{API}"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for (method, url) in [
        (
            reqwest::Method::PUT,
            format!("{v}secrets/orders-service-client-secret?{API}"),
        ),
        (
            reqwest::Method::POST,
            format!("{v}deletedsecrets/orders-service-client-secret/recover?{API}"),
        ),
        (
            reqwest::Method::DELETE,
            format!("{v}deletedsecrets/orders-service-client-secret?{API}"),
        ),
    ] {
        let r = http
            .request(method.clone(), &url)
            .bearer_auth(&t)
            .json(&json!({"value": "new"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{method} {url}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "Conflict");
        assert_eq!(b["error"]["innererror"]["code"], "ObjectIsBeingDeleted");
    }
    let wait = |ms: u64| tokio::time::sleep(std::time::Duration::from_millis(ms + 20));
    wait(emu.fidelity().delete_delay_ms).await;

    let r = http
        .put(format!("{v}secrets/orders-service-client-secret?{API}"))
        .bearer_auth(&t)
        .json(&json!({"value": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "Conflict");
    assert_eq!(
        b["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );

    let r = http
        .get(format!("{v}deletedsecrets?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["value"].as_array().unwrap().len(), 1);

    let r = http
        .post(format!(
            "{v}deletedsecrets/orders-service-client-secret/recover?{API}"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A recovered secret is briefly still not found...
    let r = http
        .get(format!("{v}secrets/orders-service-client-secret?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    wait(emu.fidelity().recover_delay_ms).await;
    let r = http
        .get(format!("{v}secrets/orders-service-client-secret?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // delete + purge frees the name (after both have finished)
    http.delete(format!("{v}secrets/database-password?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    wait(emu.fidelity().delete_delay_ms).await;
    let r = http
        .delete(format!("{v}deletedsecrets/database-password?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .put(format!("{v}secrets/database-password?{API}"))
        .bearer_auth(&t)
        .json(&json!({"value": "too-early"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a write right after a purge");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["innererror"]["code"], "ObjectIsBeingDeleted");
    wait(emu.fidelity().purge_delay_ms).await;
    let r = http
        .put(format!("{v}secrets/database-password?{API}"))
        .bearer_auth(&t)
        .json(&json!({"value": "fresh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{v}secrets/database-password/versions?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_pages_with_absolute_next_links_and_no_values() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-prod");
    let mut url = format!("{v}secrets?{API}&maxresults=3");
    let mut names = Vec::new();
    loop {
        let b: Value = http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in b["value"].as_array().unwrap() {
            assert!(item.get("value").is_none());
            names.push(
                item["id"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        match b["nextLink"].as_str() {
            Some(n) => {
                assert!(n.starts_with(&v));
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!(names.len(), 7, "{names:?}");
    let r = http
        .get(format!("{v}secrets?{API}&maxresults=26"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn disabled_versions_cannot_be_read() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-dev");
    let r = http
        .patch(format!("{v}secrets/blob-sync-credential/?{API}"))
        .bearer_auth(&t)
        .json(&json!({"attributes": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{v}secrets/blob-sync-credential?{API}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn unknown_routes_answer_501_naming_method_and_path() {
    let emu = sample().await;
    let http = http(&emu);
    let r = http
        .get(format!("{}storage/foo?{API}", vault(&emu, "kv-prod")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /storage/foo")
    );
    let r = http
        .delete(format!(
            "{}/v1.0/applications",
            emu.endpoints().graph_endpoint
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1.0/applications")
    );
}

#[tokio::test]
async fn serves_http2_and_http1_keep_alive() {
    let emu = sample().await;
    let url = format!("{}/state", emu.endpoints().admin);
    let h2 = http(&emu);
    assert_eq!(
        h2.get(&url).send().await.unwrap().version(),
        reqwest::Version::HTTP_2
    );
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            h1.get(&url).send().await.unwrap().version(),
            reqwest::Version::HTTP_11
        );
    }
}
