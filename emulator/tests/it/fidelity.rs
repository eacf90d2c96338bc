//! Issue 8: where Azure is less tidy than a naive double — Graph advanced queries, ids,
//! timestamps, correlation headers, `keyCredentials[].key` under `$select`.

use serde_json::{Value, json};

use crate::common::*;

async fn get_h(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    eventual: bool,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = http.get(url).bearer_auth(token);
    if eventual {
        r = r.header("ConsistencyLevel", "eventual");
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    let h = r.headers().clone();
    (s, h, r.text().await.unwrap())
}

fn j(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

#[tokio::test]
async fn graph_count_search_orderby_as_graph_does() {
    let emu = start(many_apps(30)).await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "admin", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;
    let apps = format!("{g}/v1.0/applications");

    // $search needs ConsistencyLevel: eventual
    let (s, _, b) = get_h(
        &http,
        &format!("{apps}?$search=\"displayName:app-0001\""),
        &t,
        false,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(j(&b)["error"]["code"], "Request_UnsupportedQuery");
    assert!(b.contains("ConsistencyLevel: eventual"), "{b}");
    let (s, _, b) = get_h(
        &http,
        &format!("{apps}?$search=\"displayName:app-0001\""),
        &t,
        true,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<String> = j(&b)["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["displayName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}"); // app-00010 … app-00019
    assert!(names.iter().all(|n| n.starts_with("app-0001")));
    let (s, _, _) = get_h(&http, &format!("{apps}?$search=displayName:app"), &t, true).await;
    assert_eq!(s, 400, "unquoted $search is a syntax error");

    // $count=true, and the /$count segment
    let (s, _, b) = get_h(&http, &format!("{apps}?$count=true&$top=5"), &t, false).await;
    assert_eq!(s, 400);
    assert_eq!(j(&b)["error"]["code"], "Request_BadRequest");
    let (s, _, b) = get_h(&http, &format!("{apps}?$count=true&$top=5"), &t, true).await;
    assert_eq!(s, 200);
    assert_eq!(j(&b)["@odata.count"], 30);
    assert_eq!(j(&b)["value"].as_array().unwrap().len(), 5);
    let (s, _, _) = get_h(&http, &format!("{apps}/$count"), &t, false).await;
    assert_eq!(s, 400);
    let (s, h, b) = get_h(&http, &format!("{apps}/$count"), &t, true).await;
    assert_eq!((s, b.as_str()), (200, "30"));
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    // $orderby: displayName without the header; others and with $filter need it
    let (s, _, b) = get_h(
        &http,
        &format!("{apps}?$orderby=displayName desc&$top=2"),
        &t,
        false,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let v = j(&b);
    assert_eq!(v["value"][0]["displayName"], "app-00029");
    assert_eq!(v["value"][1]["displayName"], "app-00028");
    // the next page keeps the order
    let next = v["@odata.nextLink"].as_str().unwrap().to_string();
    let (_, _, b) = get_h(&http, &next, &t, false).await;
    assert_eq!(j(&b)["value"][0]["displayName"], "app-00027");
    let (s, _, b) = get_h(
        &http,
        &format!("{apps}?$orderby=createdDateTime"),
        &t,
        false,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(j(&b)["error"]["code"], "Request_UnsupportedQuery");
    let (s, _, _) = get_h(
        &http,
        &format!("{apps}?$orderby=createdDateTime&$count=true"),
        &t,
        true,
    )
    .await;
    assert_eq!(s, 200);
    let f = "$filter=startswith(displayName,'app-0002')&$orderby=displayName";
    let (s, _, _) = get_h(&http, &format!("{apps}?{f}"), &t, false).await;
    assert_eq!(s, 400);
    let (s, _, b) = get_h(&http, &format!("{apps}?{f}&$count=true"), &t, true).await;
    assert_eq!(s, 200);
    assert_eq!(j(&b)["@odata.count"], 10);
}

#[tokio::test]
async fn graph_ids_times_and_correlation_headers() {
    let emu = sample().await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;
    let state = emu.state();
    let oid = app(&state, "orders-service")["object_id"]
        .as_str()
        .unwrap()
        .to_string();

    // malformed ids are bad requests, unknown well-formed ones are not found
    for path in [
        "applications/not-a-guid",
        "applications/not-a-guid/addPassword",
    ] {
        let m = if path.ends_with("addPassword") {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let r = http
            .request(m, format!("{g}/v1.0/{path}"))
            .bearer_auth(&t)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "Request_BadRequest");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Invalid object identifier")
        );
    }
    let (s, _, _) = get_h(
        &http,
        &format!("{g}/v1.0/applications/{}", uuid::Uuid::new_v4()),
        &t,
        false,
    )
    .await;
    assert_eq!(s, 404);

    // times: UTC with seven fractional digits
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/addPassword"))
        .bearer_auth(&t)
        .header("client-request-id", "0b8e3c4e-aaaa-4bbb-8ccc-000000000001")
        .json(&json!({"passwordCredential": {"displayName": "tz",
            "startDateTime": "2030-01-01T12:00:00.5+02:00", "endDateTime": "2030-06-01T00:00:00+02:00"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["client-request-id"],
        "0b8e3c4e-aaaa-4bbb-8ccc-000000000001"
    );
    assert!(r.headers().contains_key("request-id"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["startDateTime"], "2030-01-01T10:00:00.5000000Z");
    assert_eq!(b["endDateTime"], "2030-05-31T22:00:00Z");
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/addPassword"))
        .bearer_auth(&t)
        .json(&json!({"passwordCredential": {"displayName": "now"}}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{7})?Z$").unwrap();
    for k in ["startDateTime", "endDateTime"] {
        assert!(re.is_match(b[k].as_str().unwrap()), "{k}: {}", b[k]);
    }

    // error bodies and headers carry the same request id
    let r = http
        .get(format!("{g}/v1.0/applications/{}", uuid::Uuid::new_v4()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let rid = r.headers()["request-id"].to_str().unwrap().to_string();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["innerError"]["request-id"], rid.as_str());

    // Key Vault and Entra answer x-ms-request-id
    let kt = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let r = http
        .get(format!(
            "{}secrets?api-version=2025-07-01",
            vault(&emu, "kv-prod")
        ))
        .bearer_auth(&kt)
        .header("x-ms-client-request-id", "abc")
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-ms-request-id"));
    assert_eq!(r.headers()["x-ms-client-request-id"], "abc");
    let ep = emu.endpoints();
    let r = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            ep.authority_host, ep.tenant_id
        ))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-ms-request-id"));
    let b: Value = r.json().await.unwrap();
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$").unwrap();
    assert!(re.is_match(b["timestamp"].as_str().unwrap()), "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .ends_with(&format!("Timestamp: {}", b["timestamp"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn key_credentials_key_only_under_select_on_one_object() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["rotor-test".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cert.der());
    let f = rotor_emulator::Fixture::from_json(
        &json!({
            "principals": [{"display_name": "admin", "graph_roles": ["Application.ReadWrite.All"]}],
            "applications": [{"display_name": "certy", "key_credentials": [{"key": der_b64}]}],
        })
        .to_string(),
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "admin", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;
    let oid = emu.state()["applications"][0]["object_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, b) = get_h(&http, &format!("{g}/v1.0/applications/{oid}"), &t, false).await;
    assert!(j(&b)["keyCredentials"][0]["key"].is_null());
    let (_, _, b) = get_h(
        &http,
        &format!("{g}/v1.0/applications?$select=keyCredentials"),
        &t,
        false,
    )
    .await;
    assert!(
        j(&b)["value"][0]["keyCredentials"][0]["key"].is_null(),
        "lists never carry the key"
    );
    let (_, _, b) = get_h(
        &http,
        &format!("{g}/v1.0/applications/{oid}?$select=keyCredentials"),
        &t,
        false,
    )
    .await;
    assert_eq!(j(&b)["keyCredentials"][0]["key"], der_b64.as_str());
}

#[tokio::test]
async fn throttling_is_off_by_default_and_enforces_budgets_when_on() {
    let emu = sample().await;
    assert!(!emu.fidelity().throttling);
    let http = http(&emu);
    let kt = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let gt = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let v = vault(&emu, "kv-prod");
    let g = &emu.endpoints().graph_endpoint;
    let put = |i: usize| {
        http.put(format!("{v}secrets/t{i}?api-version=2025-07-01"))
            .bearer_auth(&kt)
            .json(&json!({"value": "x"}))
            .send()
    };
    for i in 0..5 {
        assert_eq!(put(i).await.unwrap().status(), 200, "off: no limit");
    }
    emu.set_fidelity(json!({"throttling": true,
        "limits": {"vault_create_per_10s": 3, "vault_other_per_10s": 4000,
                   "graph_ru_per_10s": 5, "graph_writes_per_150s": 3000}}))
        .unwrap();
    for i in 0..3 {
        assert_eq!(put(i).await.unwrap().status(), 200);
    }
    let r = put(3).await.unwrap();
    assert_eq!(r.status(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&ra), "{ra}");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "Throttled");
    // reads have their own budget
    let r = http
        .get(format!("{v}secrets/t0?api-version=2025-07-01"))
        .bearer_auth(&kt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Graph: GET /applications costs 2 RU (1 with $select), a budget of 5: 2 + 1 + 1, then 2 is too many
    let list = |sel: bool| {
        let q = if sel { "?$select=id" } else { "" };
        http.get(format!("{g}/v1.0/applications{q}"))
            .bearer_auth(&gt)
            .send()
    };
    assert_eq!(list(false).await.unwrap().status(), 200);
    assert_eq!(list(true).await.unwrap().status(), 200);
    assert_eq!(list(true).await.unwrap().status(), 200);
    let r = list(false).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        r.headers()["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/Read/")
    );
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "TooManyRequests");
    // one RU left: a cheap request still fits (refused requests did not count)
    assert_eq!(list(true).await.unwrap().status(), 200);
}

#[tokio::test]
async fn throttling_caps_writes_to_personal_account_apps_and_the_tenant_s_writes() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"principals":[
              {"display_name":"one","graph_roles":["Application.ReadWrite.All"]},
              {"display_name":"two","graph_roles":["Application.ReadWrite.All"]}],
            "applications":[
              {"display_name":"consumer","sign_in_audience":"AzureADandPersonalMicrosoftAccount"},
              {"display_name":"org","sign_in_audience":"AzureADMyOrg"}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    emu.set_fidelity(json!({"throttling": true,
        "limits": {"graph_personal_app_writes_per_60s": 2, "graph_tenant_writes_per_300s": 6}}))
        .unwrap();
    let http = http(&emu);
    let state = emu.state();
    let id = |n: &str| app(&state, n)["object_id"].as_str().unwrap().to_string();
    let (consumer, org) = (id("consumer"), id("org"));
    let g = emu.endpoints().graph_endpoint.clone();
    let one = token_as(&emu, &http, "one", GRAPH_SCOPE).await;
    let two = token_as(&emu, &http, "two", GRAPH_SCOPE).await;
    let patch = |tok: &str, obj: &str, name: &str| {
        http.patch(format!("{g}/v1.0/applications/{obj}"))
            .bearer_auth(tok)
            .json(&json!({"displayName": name}))
            .send()
    };
    // personal-account app: 2 writes a minute for caller one
    assert_eq!(patch(&one, &consumer, "c1").await.unwrap().status(), 204);
    assert_eq!(patch(&one, &consumer, "c2").await.unwrap().status(), 204);
    let r = patch(&one, &consumer, "c3").await.unwrap();
    assert_eq!(r.status(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&ra), "{ra}");
    assert!(
        r.headers()["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/ReadWrite/")
    );
    // the organisational app is not capped that way; caller two has its own budget
    assert_eq!(patch(&one, &org, "o1").await.unwrap().status(), 204);
    assert_eq!(patch(&two, &consumer, "c4").await.unwrap().status(), 204);
    // tenant-wide writes: 6 in 5 minutes across callers (4 taken so far)
    assert_eq!(patch(&two, &org, "o2").await.unwrap().status(), 204);
    assert_eq!(patch(&one, &org, "o3").await.unwrap().status(), 204);
    let r = patch(&two, &org, "o4").await.unwrap();
    assert_eq!(r.status(), 429);
    let scope = r.headers()["x-ms-throttle-scope"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        scope,
        format!("Tenant/ReadWrite/{}", emu.endpoints().tenant_id)
    );
    // reads are not writes
    let r = http
        .get(format!("{g}/v1.0/applications/{org}"))
        .bearer_auth(&two)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn certificate_create_is_in_progress_with_a_csr_then_completes_with_an_rsa_key() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"principals":[{"display_name":"certs","vault_roles":{"*":["Key Vault Certificates Officer","Key Vault Secrets User"]}}],
            "vaults":[{"name":"kv-certs"}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    emu.set_fidelity(json!({"certificate_delay_ms": 300}))
        .unwrap();
    let http = http(&emu);
    let t = token_as(&emu, &http, "certs", VAULT_SCOPE).await;
    let v = vault(&emu, "kv-certs");
    let api = "api-version=2025-07-01";
    let r = http
        .post(format!("{v}certificates/c1/create?{api}"))
        .bearer_auth(&t)
        .json(
            &json!({"policy": {"x509_props": {"subject": "CN=c1", "validity_months": 12},
                                 "issuer": {"name": "Self"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("retry-after-ms"));
    let op: Value = r.json().await.unwrap();
    assert_eq!(op["status"], "inProgress");
    let csr = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        op["csr"].as_str().unwrap(),
    )
    .unwrap();
    let (_, req) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<x509_parser::error::X509Error>>::from_der(&csr).unwrap();
    assert!(
        req.certification_request_info
            .subject
            .to_string()
            .contains("CN=c1")
    );
    // not there yet: neither the certificate nor its backing secret
    let (s, _, _) = get_h(&http, &format!("{v}certificates/c1?{api}"), &t, false).await;
    assert_eq!(s, 404);
    let (s, _, _) = get_h(&http, &format!("{v}secrets/c1?{api}"), &t, false).await;
    assert_eq!(s, 404);
    let (_, _, b) = get_h(
        &http,
        &format!("{v}certificates/c1/pending?{api}"),
        &t,
        false,
    )
    .await;
    assert_eq!(j(&b)["status"], "inProgress");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let (_, h, b) = get_h(
        &http,
        &format!("{v}certificates/c1/pending?{api}"),
        &t,
        false,
    )
    .await;
    let op = j(&b);
    assert_eq!(op["status"], "completed");
    assert!(op["target"].as_str().unwrap().ends_with("/certificates/c1"));
    assert!(!h.contains_key("retry-after-ms"));
    let (s, _, b) = get_h(&http, &format!("{v}certificates/c1?{api}"), &t, false).await;
    assert_eq!(s, 200);
    let c = j(&b);
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        c["cer"].as_str().unwrap(),
    )
    .unwrap();
    use sha1::Digest;
    let x5t = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha1::Sha1::digest(&der),
    );
    assert_eq!(c["x5t"], x5t.as_str());
    assert_eq!(c["policy"]["key_props"]["kty"], "RSA");
    assert_eq!(c["policy"]["key_props"]["key_size"], 2048);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        parsed.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    );
    // the backing secret: PEM of the private key and the certificate, managed
    let (s, _, b) = get_h(&http, &format!("{v}secrets/c1?{api}"), &t, false).await;
    assert_eq!(s, 200);
    let sec = j(&b);
    assert_eq!(sec["managed"], true);
    assert!(sec["kid"].as_str().unwrap().contains("/keys/c1/"));
    let pem = sec["value"].as_str().unwrap();
    assert!(pem.contains("PRIVATE KEY") && pem.contains("BEGIN CERTIFICATE"));

    // EC on request; unknown key types refused
    emu.set_fidelity(json!({"certificate_delay_ms": 1}))
        .unwrap();
    for (kp, status) in [
        (json!({"kty": "EC", "crv": "P-256"}), 202),
        (json!({"kty": "oct"}), 400),
        (json!({"kty": "RSA", "key_size": 1024}), 400),
    ] {
        let r = http
            .post(format!("{v}certificates/c2/create?{api}"))
            .bearer_auth(&t)
            .json(&json!({"policy": {"key_props": kp, "x509_props": {"subject": "CN=c2"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{kp}");
    }

    // a create while an operation on the certificate is pending: 409, as Key Vault answers
    emu.set_fidelity(json!({"certificate_delay_ms": 2000}))
        .unwrap();
    let create = || {
        http.post(format!("{v}certificates/c3/create?{api}"))
            .bearer_auth(&t)
            .json(&json!({"policy": {"x509_props": {"subject": "CN=c3"}}}))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 202);
    let r = create().await.unwrap();
    assert_eq!(r.status(), 409);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "Conflict", "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("pending"),
        "{b}"
    );
}

fn b64u(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

/// A signed client assertion: `alg` RS256 or PS256 with the PKCS#8 key.
fn signed_assertion(pkcs8: &[u8], header: Value, claims: Value) -> String {
    use aws_lc_rs::signature;
    let signed = format!(
        "{}.{}",
        b64u(header.to_string().as_bytes()),
        b64u(claims.to_string().as_bytes())
    );
    let key = signature::RsaKeyPair::from_pkcs8(pkcs8).unwrap();
    let enc: &'static dyn signature::RsaEncoding = if header["alg"] == "PS256" {
        &signature::RSA_PSS_SHA256
    } else {
        &signature::RSA_PKCS1_SHA256
    };
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        enc,
        &aws_lc_rs::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", b64u(&sig))
}

#[tokio::test]
async fn certificate_client_assertions_are_verified_by_signature() {
    use sha1::Digest;
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["certy".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let other = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let der = cert.der().to_vec();
    let app_id = "e0000000-0000-4000-8000-000000000001";
    let f = rotor_emulator::Fixture::from_json(
        &json!({"applications": [{"display_name": "certy", "app_id": app_id,
            "key_credentials": [{"key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)}]}]})
        .to_string(),
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let ep = emu.endpoints();
    let aud = format!("{}/{}/oauth2/v2.0/token", ep.authority_host, ep.tenant_id);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // the Rust azure_identity form: x5t standard base64 with padding
    let x5t = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        sha1::Sha1::digest(&der),
    );
    let x5t256 = b64u(&sha2::Sha256::digest(&der));
    let claims = |aud: &str, exp: i64| {
        json!({"iss": app_id, "sub": app_id, "aud": aud, "exp": exp, "nbf": now - 5,
               "jti": uuid::Uuid::new_v4().to_string()})
    };
    let go = |assertion: String| {
        let form: Vec<(String, String)> = vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), app_id.into()),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), assertion),
            ("scope".into(), GRAPH_SCOPE.into()),
        ];
        form
    };
    let pk = key.serialize_der();
    let cases = [
        (
            "RS256 + x5t",
            signed_assertion(
                &pk,
                json!({"alg": "RS256", "typ": "JWT", "x5t": x5t}),
                claims(&aud, now + 300),
            ),
            Ok(()),
        ),
        (
            "PS256 + x5t#S256",
            signed_assertion(
                &pk,
                json!({"alg": "PS256", "typ": "JWT", "x5t#S256": x5t256}),
                claims(&aud, now + 300),
            ),
            Ok(()),
        ),
        (
            "signed by another key",
            signed_assertion(
                &other.serialize_der(),
                json!({"alg": "RS256", "x5t": x5t}),
                claims(&aud, now + 300),
            ),
            Err((401, 700027)),
        ),
        (
            "wrong aud",
            signed_assertion(
                &pk,
                json!({"alg": "RS256", "x5t": x5t}),
                claims("https://example.com/token", now + 300),
            ),
            Err((400, 700023)),
        ),
        (
            "expired",
            signed_assertion(
                &pk,
                json!({"alg": "RS256", "x5t": x5t}),
                claims(&aud, now - 60),
            ),
            Err((400, 700024)),
        ),
        (
            "unsigned",
            {
                let s = signed_assertion(
                    &pk,
                    json!({"alg": "RS256", "x5t": x5t}),
                    claims(&aud, now + 300),
                );
                format!("{}.c2ln", &s[..s.rfind('.').unwrap()])
            },
            Err((401, 700027)),
        ),
    ];
    for (what, assertion, want) in cases {
        let form = go(assertion);
        let form: Vec<(&str, &str)> = form.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let got = token_raw(&emu, &http, &form)
            .await
            .map(|_| ())
            .map_err(|(s, b)| (s, aadsts(&b)));
        assert_eq!(got, want, "{what}");
    }
}

#[tokio::test]
async fn add_key_and_remove_key_need_a_valid_proof_of_possession() {
    use sha1::Digest;
    let rsa = || {
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
    };
    let cert_of = |k: &rcgen::KeyPair, cn: &str| {
        rcgen::CertificateParams::new(vec![cn.to_string()])
            .unwrap()
            .self_signed(k)
            .unwrap()
            .der()
            .to_vec()
    };
    let std_b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let (k1, k2) = (rsa(), rsa());
    let (c1, c2) = (cert_of(&k1, "one"), cert_of(&k2, "two"));
    let oid = "f0000000-0000-4000-8000-000000000001";
    let app_id = "f0000000-0000-4000-8000-0000000000a1";
    let f = rotor_emulator::Fixture::from_json(
        &json!({
            "principals": [{"display_name": "admin", "graph_roles": ["Application.ReadWrite.All"]},
                           {"display_name": "reader", "graph_roles": ["Application.Read.All"]}],
            "applications": [{"display_name": "roller", "object_id": oid, "app_id": app_id,
                              "key_credentials": [{"key": std_b64(&c1)}]}]})
        .to_string(),
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let t = token_as(&emu, &http, "admin", GRAPH_SCOPE).await;
    let g = &emu.endpoints().graph_endpoint;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let proof = |key: &rcgen::KeyPair, cert: &[u8], claims: Value| {
        signed_assertion(
            &key.serialize_der(),
            json!({"alg": "RS256", "typ": "JWT", "x5t": b64u(&sha1::Sha1::digest(cert))}),
            claims,
        )
    };
    let good = json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": oid, "nbf": now - 5, "exp": now + 590});
    let add = |proof: String, token: String| {
        let body = json!({"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": std_b64(&c2)},
                          "passwordCredential": null, "proof": proof});
        let http = http.clone();
        let url = format!("{g}/v1.0/applications/{oid}/addKey");
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // refused proofs: wrong aud (Graph's app id, the common mistake), wrong iss, too long,
    // signed by a key the app does not hold, padded
    let mut bad = good.clone();
    bad["aud"] = json!("00000003-0000-0000-c000-000000000000");
    let mut bad_iss = good.clone();
    bad_iss["iss"] = json!(app_id);
    let mut long = good.clone();
    long["exp"] = json!(now + 3600);
    for (what, p) in [
        ("aud", proof(&k1, &c1, bad)),
        ("iss", proof(&k1, &c1, bad_iss)),
        ("lifetime", proof(&k1, &c1, long)),
        ("foreign key", proof(&k2, &c2, good.clone())),
        ("padding", format!("{}=", proof(&k1, &c1, good.clone()))),
    ] {
        let (s, b) = add(p, t.clone()).await;
        assert_eq!(s, 401, "{what}: {b}");
        assert_eq!(
            b["error"]["code"], "Authentication_MissingOrMalformed",
            "{what}"
        );
    }
    // a reader may not, even with a good proof
    let rt = token_as(&emu, &http, "reader", GRAPH_SCOPE).await;
    assert_eq!(add(proof(&k1, &c1, good.clone()), rt).await.0, 403);
    // a good proof adds the key
    let (s, b) = add(proof(&k1, &c1, good.clone()), t.clone()).await;
    assert_eq!(s, 200, "{b}");
    let new_id = b["keyId"].as_str().unwrap().to_string();
    assert_eq!(
        b["customKeyIdentifier"],
        std_b64(&sha1::Sha1::digest(&c2)).as_str()
    );
    // (a new key credential is readable once the read delay is over)
    tokio::time::sleep(std::time::Duration::from_millis(
        emu.fidelity().graph_read_delay_ms + 20,
    ))
    .await;
    let (_, _, body) = get_h(
        &http,
        &format!("{g}/v1.0/applications/{oid}?$select=keyCredentials"),
        &t,
        false,
    )
    .await;
    assert_eq!(j(&body)["keyCredentials"].as_array().unwrap().len(), 2);
    // removeKey with a proof signed by the new certificate removes the old one
    let old_id = emu.state()["applications"][0]["key_credentials"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{g}/v1.0/applications/{oid}/removeKey"))
        .bearer_auth(&t)
        .json(&json!({"keyId": old_id, "proof": proof(&k2, &c2, good.clone())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let keys = emu.state()["applications"][0]["key_credentials"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["key_id"], new_id.as_str());
}
