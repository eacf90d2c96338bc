//! Microsoft Graph v1.0 applications.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn paging_over_more_than_999_apps_returns_every_one() {
    let emu = start(many_apps(2500)).await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "admin", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;

    // $top=999: 3 pages.
    let mut url = format!("{g}/v1.0/applications?$select=id,appId,displayName&$top=999");
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let (s, body) = get(&http, &url, &t).await;
        assert_eq!(s, 200, "{body}");
        pages += 1;
        for a in body["value"].as_array().unwrap() {
            assert!(a.get("passwordCredentials").is_none(), "$select honoured");
            assert!(seen.insert(a["appId"].as_str().unwrap().to_string()));
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("https://127.0.0.1:"),
                    "absolute nextLink: {next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 2500);
    assert_eq!(pages, 3);

    // Default page size is 100.
    let (_, body) = get(&http, &format!("{g}/v1.0/applications"), &t).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 100);
    assert!(body["@odata.nextLink"].is_string());

    // $top out of range.
    let (s, body) = get(&http, &format!("{g}/v1.0/applications?$top=1000"), &t).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");
}

#[tokio::test]
async fn filter_select_and_get_by_both_ids() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-readonly", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;
    let state = emu.state();
    let myapp = app(&state, "MyApp");
    let app_id = myapp["app_id"].as_str().unwrap();
    let oid = myapp["object_id"].as_str().unwrap();

    let (s, body) = get(
        &http,
        &format!("{g}/v1.0/applications?$filter=appId eq '{app_id}'"),
        &t,
    )
    .await;
    assert_eq!(s, 200);
    let v = body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["displayName"], "MyApp");
    let pcs = v[0]["passwordCredentials"].as_array().unwrap();
    assert_eq!(pcs.len(), 2);
    assert_eq!(pcs[0]["hint"], "Myk");
    assert!(pcs[0]["secretText"].is_null(), "reads never return values");

    let (_, body) = get(
        &http,
        &format!("{g}/v1.0/applications?$filter=startswith(displayName,'or')"),
        &t,
    )
    .await;
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["orders-service", "orphan-app"]);

    let (_, body) = get(
        &http,
        &format!("{g}/v1.0/applications?$filter=displayName eq 'billing-api'&$select=appId"),
        &t,
    )
    .await;
    assert_eq!(
        body["value"][0].as_object().unwrap().len(),
        2,
        "id + appId: {body}"
    );

    let (s, body) = get(
        &http,
        &format!("{g}/v1.0/applications?$filter=owners/any(o:o eq 'x')"),
        &t,
    )
    .await;
    assert_eq!(s, 400, "{body}");

    let (s, body) = get(&http, &format!("{g}/v1.0/applications/{oid}"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(body["appId"], app_id);
    let (s, body) = get(
        &http,
        &format!("{g}/v1.0/applications(appId='{app_id}')?$select=displayName"),
        &t,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["displayName"], "MyApp");
    assert!(body.get("passwordCredentials").is_none());

    let (s, body) = get(
        &http,
        &format!("{g}/v1.0/applications/00000000-0000-4000-8000-000000000000"),
        &t,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let (s, body) = get(&http, &format!("{g}/v1.0/applications?$select=nope"), &t).await;
    assert_eq!(s, 400, "{body}");
}

#[tokio::test]
async fn add_password_shape_and_read_only_is_denied() {
    let emu = sample().await;
    let http = http(&emu);
    let g = &emu.endpoints().graph_endpoint;
    let state = emu.state();
    let oid = app(&state, "orders-service")["object_id"]
        .as_str()
        .unwrap()
        .to_string();

    let ro = token_as(&emu, &http, "rotor-readonly", GRAPH_SCOPE).await;
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/addPassword"))
        .bearer_auth(&ro)
        .header("client-request-id", "abc-123")
        .json(&json!({"passwordCredential": {"displayName": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(b["error"]["innerError"]["client-request-id"], "abc-123");

    let rw = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/addPassword"))
        .bearer_auth(&rw)
        .json(
            &json!({"passwordCredential": {"displayName": "client secret rotor:r1",
                                              "endDateTime": "2030-01-01T00:00:00Z"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    let secret = p["secretText"].as_str().unwrap();
    assert_eq!(secret.len(), 40);
    assert_eq!(p["hint"].as_str().unwrap(), &secret[..3]);
    assert_eq!(p["endDateTime"], "2030-01-01T00:00:00Z");
    assert_eq!(p["displayName"], "client secret rotor:r1");
    let key_id = p["keyId"].as_str().unwrap();

    // Eventual consistency: right after addPassword a read may not show it yet...
    let (_, body) = get(&http, &format!("{g}/v1.0/applications/{oid}"), &ro).await;
    let pcs = body["passwordCredentials"].as_array().unwrap();
    assert_eq!(
        pcs.len(),
        1,
        "a new password is missing from an immediate read"
    );
    // ...and does once the read delay (fidelity graph_read_delay_ms, 30 ms) is over.
    tokio::time::sleep(std::time::Duration::from_millis(
        emu.fidelity().graph_read_delay_ms + 20,
    ))
    .await;
    let (_, body) = get(&http, &format!("{g}/v1.0/applications/{oid}"), &ro).await;
    let pcs = body["passwordCredentials"].as_array().unwrap();
    assert_eq!(pcs.len(), 2);
    assert!(pcs.iter().any(|c| c["keyId"] == key_id));
    // The state (a test double) has the value.
    assert!(emu.state().to_string().contains(secret));

    // An application's own token cannot use Graph.
    let app_id = app(&state, "orders-service")["app_id"].as_str().unwrap();
    let t = token(&emu, &http, app_id, secret, GRAPH_SCOPE)
        .await
        .unwrap();
    let (s, _) = get(&http, &format!("{g}/v1.0/applications"), &t).await;
    assert_eq!(s, 403);

    // removePassword of an unknown key.
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/removePassword"))
        .bearer_auth(&rw)
        .json(&json!({"keyId": "00000000-0000-4000-8000-000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn personal_account_apps_are_capped_at_two_passwords() {
    let emu = sample().await;
    let http = http(&emu);
    let g = &emu.endpoints().graph_endpoint;
    let state = emu.state();
    let consumer = app(&state, "consumer-app");
    let oid = consumer["object_id"].as_str().unwrap();
    let rw = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let add = || {
        http.post(format!("{g}/v1.0/applications/{oid}/addPassword"))
            .bearer_auth(&rw)
            .json(&json!({"passwordCredential": {"displayName": "current rotor:x"}}))
            .send()
    };
    let r = add().await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "TooManyAppPasswords");
    // Make room: remove the long-expired one, then adding works.
    let old = consumer["password_credentials"][0]["key_id"]
        .as_str()
        .unwrap();
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/removePassword"))
        .bearer_auth(&rw)
        .json(&json!({"keyId": old}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(add().await.unwrap().status(), 200);
    assert_eq!(add().await.unwrap().status(), 400);
}

#[tokio::test]
async fn owned_by_permission_sees_and_writes_only_owned_apps() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"principals":[{"display_name":"owner","client_id":"e0000000-0000-4000-8000-000000000001","graph_roles":["Application.ReadWrite.OwnedBy"]}],
            "applications":[{"display_name":"mine","object_id":"e1000000-0000-4000-8000-000000000001","owners":["e0000000-0000-4000-8000-000000000001"]},
                            {"display_name":"theirs","object_id":"e1000000-0000-4000-8000-000000000002"}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let g = &emu.endpoints().graph_endpoint;
    let t = token_as(&emu, &http, "owner", GRAPH_SCOPE).await;
    let (_, body) = get(&http, &format!("{g}/v1.0/applications"), &t).await;
    let v = body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["displayName"], "mine");
    let add = |oid: &'static str| {
        http.post(format!("{g}/v1.0/applications/{oid}/addPassword"))
            .bearer_auth(&t)
            .json(&json!({}))
            .send()
    };
    assert_eq!(
        add("e1000000-0000-4000-8000-000000000001")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        add("e1000000-0000-4000-8000-000000000002")
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn patch_key_credentials_replaces_the_collection() {
    let emu = sample().await;
    let http = http(&emu);
    let g = &emu.endpoints().graph_endpoint;
    let state = emu.state();
    let oid = app(&state, "reporting")["object_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rw = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["reporting".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let r = http
        .patch(format!("{g}/v1.0/applications/{oid}"))
        .bearer_auth(&rw)
        .json(&json!({"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": b64, "displayName": "CN=reporting"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Eventual consistency: a key credential new to the application is missing from an
    // immediate read (the old ones are already gone: the collection was replaced)...
    let (_, body) = get(
        &http,
        &format!("{g}/v1.0/applications/{oid}?$select=keyCredentials"),
        &rw,
    )
    .await;
    assert_eq!(
        body["keyCredentials"].as_array().unwrap().len(),
        0,
        "a new key credential is missing from an immediate read"
    );
    // ...and shows once the read delay is over.
    tokio::time::sleep(std::time::Duration::from_millis(
        emu.fidelity().graph_read_delay_ms + 20,
    ))
    .await;
    let (_, body) = get(
        &http,
        &format!("{g}/v1.0/applications/{oid}?$select=keyCredentials"),
        &rw,
    )
    .await;
    let keys = body["keyCredentials"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    use sha1::Digest;
    let thumb = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(cert.der()));
    assert_eq!(keys[0]["customKeyIdentifier"], thumb);
    let first_key_id = keys[0]["keyId"].as_str().unwrap().to_string();

    // Keep the existing one by keyId, add nothing else: still one; send [] → none.
    let r = http
        .patch(format!("{g}/v1.0/applications/{oid}"))
        .bearer_auth(&rw)
        .json(&json!({"keyCredentials": [{"keyId": first_key_id, "type": "AsymmetricX509Cert", "usage": "Verify", "key": null}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .patch(format!("{g}/v1.0/applications/{oid}"))
        .bearer_auth(&rw)
        .json(&json!({"keyCredentials": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, body) = get(&http, &format!("{g}/v1.0/applications/{oid}"), &rw).await;
    assert_eq!(body["keyCredentials"].as_array().unwrap().len(), 0);

    let r = http
        .patch(format!("{g}/v1.0/applications/{oid}"))
        .bearer_auth(&rw)
        .json(&json!({"passwordCredentials": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn service_principals_and_lifetime_policy() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"max_password_lifetime_days": 180,
            "principals":[{"display_name":"admin","graph_roles":["Application.ReadWrite.All"]}],
            "applications":[{"display_name":"with-sp","app_id":"f0000000-0000-4000-8000-000000000001","object_id":"f1000000-0000-4000-8000-000000000001"},
                            {"display_name":"no-sp","app_id":"f0000000-0000-4000-8000-000000000002","service_principal":false}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let g = &emu.endpoints().graph_endpoint;
    let t = token_as(&emu, &http, "admin", GRAPH_SCOPE).await;
    let (s, b) = get(
        &http,
        &format!(
            "{g}/v1.0/servicePrincipals?$filter=appId eq 'f0000000-0000-4000-8000-000000000001'"
        ),
        &t,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    assert_eq!(b["value"][0]["displayName"], "with-sp");
    let (_, b) = get(
        &http,
        &format!(
            "{g}/v1.0/servicePrincipals?$filter=appId eq 'f0000000-0000-4000-8000-000000000002'"
        ),
        &t,
    )
    .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 0);
    let (s, _) = get(
        &http,
        &format!("{g}/v1.0/servicePrincipals(appId='f0000000-0000-4000-8000-000000000002')"),
        &t,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = get(
        &http,
        &format!("{g}/v1.0/servicePrincipals(appId='f0000000-0000-4000-8000-000000000001')"),
        &t,
    )
    .await;
    assert_eq!(s, 200);

    let add = |end: &str| {
        http.post(format!(
            "{g}/v1.0/applications/f1000000-0000-4000-8000-000000000001/addPassword"
        ))
        .bearer_auth(&t)
        .json(&json!({"passwordCredential": {"endDateTime": end}}))
        .send()
    };
    let too_long = (time::OffsetDateTime::now_utc() + time::Duration::days(365))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = add(&too_long).await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["error"]["code"],
        "CredentialInvalidLifetimeAsPerAppPolicy"
    );
    let ok = (time::OffsetDateTime::now_utc() + time::Duration::days(90))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(add(&ok).await.unwrap().status(), 200);
}
