//! ARM vault listing.

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn lists_vaults_per_subscription_with_emulator_urls() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", ARM_SCOPE).await;
    let arm = &emu.endpoints().arm_endpoint;
    let state = emu.state();
    let prod = state["subscriptions"][0]["id"].as_str().unwrap();
    let url = format!(
        "{arm}/subscriptions/{prod}/resources?$filter=resourceType eq 'Microsoft.KeyVault/vaults'&api-version=2021-04-01"
    );
    let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let mut got: Vec<(String, String)> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["properties"]["vaultUri"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("kv-prod".to_string(), vault(&emu, "kv-prod")),
            ("kv-staging".to_string(), vault(&emu, "kv-staging")),
        ]
    );
    assert_eq!(b["value"][0]["type"], "Microsoft.KeyVault/vaults");

    let r = http
        .get(format!(
            "{arm}/subscriptions/dev/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["value"][0]["name"], "kv-dev");

    // no token → 401, unknown subscription → 404
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!(
            "{arm}/subscriptions/nope/resources?api-version=2021-04-01"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn subscription_roles_limit_access() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"principals":[{"display_name":"p","subscription_roles":{"a":"Reader"}}],
            "subscriptions":[{"id":"aaaaaaaa-0000-4000-8000-000000000001","name":"a"},{"id":"bbbbbbbb-0000-4000-8000-000000000002","name":"b"}],
            "vaults":[{"name":"kv-a","subscription_id":"a"},{"name":"kv-b","subscription_id":"b"}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "p", ARM_SCOPE).await;
    let arm = &emu.endpoints().arm_endpoint;
    let ok = http
        .get(format!("{arm}/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resources?api-version=2021-04-01"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let denied = http
        .get(format!("{arm}/subscriptions/bbbbbbbb-0000-4000-8000-000000000002/resources?api-version=2021-04-01"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let b: Value = denied.json().await.unwrap();
    assert_eq!(b["error"]["code"], "AuthorizationFailed");
}
