//! The Entra token endpoint.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn principal_secret_logs_in_and_wrong_secret_is_refused() {
    let emu = sample().await;
    let http = http(&emu);
    let (id, secret) = principal(&emu, "rotor-ci");
    assert!(token(&emu, &http, &id, &secret, GRAPH_SCOPE).await.is_ok());
    let (status, body) = token(&emu, &http, &id, "wrong", GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(aadsts(&body), 7000215);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: ")
    );
    // The value never appears in the error.
    assert!(!body.to_string().contains(&secret));
}

#[tokio::test]
async fn request_errors_are_entra_shaped() {
    let emu = sample().await;
    let http = http(&emu);
    let (id, secret) = principal(&emu, "rotor-ci");
    let (s, b) = token(
        &emu,
        &http,
        "00000000-0000-4000-8000-00000000dead",
        "x",
        GRAPH_SCOPE,
    )
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 700016));
    let (s, b) = token(
        &emu,
        &http,
        &id,
        &secret,
        "https://graph.microsoft.com/User.Read",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (s, aadsts(&b), b["error"].as_str().unwrap()),
        (400, 1002012, "invalid_scope")
    );
    let (s, b) = token(
        &emu,
        &http,
        &id,
        &secret,
        "https://unknown.example/.default",
    )
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 500011));
    // wrong tenant
    let r = http
        .post(format!(
            "{}/not-my-tenant/oauth2/v2.0/token",
            emu.endpoints().authority_host
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(aadsts(&b), 90002);
}

#[tokio::test]
async fn app_password_logs_in_until_removed() {
    let emu = sample().await;
    let http = http(&emu);
    let state = emu.state();
    let myapp = app(&state, "MyApp");
    let app_id = myapp["app_id"].as_str().unwrap();
    let object_id = myapp["object_id"].as_str().unwrap();
    let s1 = &myapp["password_credentials"][0];
    let s1_text = s1["secret_text"].as_str().unwrap();
    let app_token = token(&emu, &http, app_id, s1_text, VAULT_SCOPE)
        .await
        .unwrap();

    // An app's own token carries no roles.
    let r = http
        .get(format!(
            "{}secrets/myapp-secret?api-version=2025-07-01",
            vault(&emu, "kv-prod")
        ))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Remove Secret 1 through Graph; it can no longer log in.
    let admin = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let r = http
        .post(format!(
            "{}/v1.0/applications/{object_id}/removePassword",
            emu.endpoints().graph_endpoint
        ))
        .bearer_auth(&admin)
        .json(&json!({"keyId": s1["key_id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, b) = token(&emu, &http, app_id, s1_text, VAULT_SCOPE)
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 7000215));
    // Secret 2 still works.
    let s2 = myapp["password_credentials"][1]["secret_text"]
        .as_str()
        .unwrap();
    assert!(token(&emu, &http, app_id, s2, GRAPH_SCOPE).await.is_ok());
}

#[tokio::test]
async fn expired_password_is_refused() {
    let emu = sample().await;
    let http = http(&emu);
    let state = emu.state();
    let consumer = app(&state, "consumer-app");
    let old = consumer["password_credentials"][0]["secret_text"]
        .as_str()
        .unwrap();
    let (s, b) = token(
        &emu,
        &http,
        consumer["app_id"].as_str().unwrap(),
        old,
        GRAPH_SCOPE,
    )
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 7000222));
}

#[tokio::test]
async fn new_password_works_only_after_the_propagation_delay() {
    let emu = sample().await;
    emu.set_propagation_delay(std::time::Duration::from_millis(1500));
    let http = http(&emu);
    let admin = token_as(&emu, &http, "rotor-ci", GRAPH_SCOPE).await;
    let state = emu.state();
    let billing = app(&state, "billing-api");
    let r = http
        .post(format!(
            "{}/v1.0/applications/{}/addPassword",
            emu.endpoints().graph_endpoint,
            billing["object_id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({"passwordCredential": {"displayName": "rotated rotor:1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let secret = created["secretText"].as_str().unwrap().to_string();
    let app_id = billing["app_id"].as_str().unwrap();
    let started = std::time::Instant::now();
    let (s, b) = token(&emu, &http, app_id, &secret, GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 7000215));
    let mut ok = false;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        if token(&emu, &http, app_id, &secret, GRAPH_SCOPE)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the new password never started working");
    assert!(started.elapsed() >= std::time::Duration::from_millis(1300));
}

#[tokio::test]
async fn app_without_service_principal_cannot_log_in() {
    let f = rotor_emulator::Fixture::from_json(
        r#"{"applications":[{"display_name":"no-sp","app_id":"d0000000-0000-4000-8000-000000000001","service_principal":false,
             "password_credentials":[{"secret_text":"abc8Q~0123456789012345678901234567890123"}]}]}"#,
    )
    .unwrap();
    let emu = start(f).await;
    let http = http(&emu);
    let (s, b) = token(
        &emu,
        &http,
        "d0000000-0000-4000-8000-000000000001",
        "abc8Q~0123456789012345678901234567890123",
        GRAPH_SCOPE,
    )
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 7000229));
    // A client assertion is refused the same way, before any certificate is looked at; an
    // unknown client is AADSTS700016 whichever credential it presents.
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 300;
    for (client, want) in [
        ("d0000000-0000-4000-8000-000000000001", 7000229),
        ("d0000000-0000-4000-8000-00000000dead", 700016),
    ] {
        let assertion = jwt(
            json!({"alg": "RS256", "x5t": "AAAA"}),
            json!({"iss": client, "sub": client, "aud": "x", "exp": exp}),
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", GRAPH_SCOPE),
        ];
        let (s, b) = token_raw(&emu, &http, &form).await.unwrap_err();
        assert_eq!((s, aadsts(&b)), (400, want), "{client}: {b}");
    }
}

fn jwt(header: Value, claims: Value) -> String {
    use base64::Engine;
    let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", e(&header), e(&claims))
}

#[tokio::test]
async fn federated_client_assertion() {
    const GITHUB: &str = "https://token.actions.githubusercontent.com";
    const SUBJECT: &str = "repo:certifyclouds/rotor:ref:refs/heads/main";
    let emu = sample().await;
    let http = http(&emu);
    let (id, _) = principal(&emu, "rotor-ci");
    let github = emu.oidc_signer(GITHUB);
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 300;
    let login = |a: String| {
        let id = id.clone();
        let http = http.clone();
        let emu = &emu;
        async move {
            let f = [
                ("grant_type", "client_credentials".to_string()),
                ("client_id", id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ),
                ("client_assertion", a),
                ("scope", GRAPH_SCOPE.to_string()),
            ];
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_raw(emu, &http, &f).await
        }
    };
    let good = github.mint(
        SUBJECT,
        "api://AzureADTokenExchange",
        std::time::Duration::from_secs(300),
    );
    let t = login(good.clone()).await.unwrap();
    // The token works in Graph with rotor-ci's permissions.
    let r = http
        .get(format!(
            "{}/v1.0/applications?$top=1",
            emu.endpoints().graph_endpoint
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The admin route mints with the same key; its JWKS is published.
    let minted: Value = http
        .post(format!("{}/oidc/token", emu.endpoints().admin))
        .json(&json!({"issuer": GITHUB, "subject": SUBJECT}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(minted["kid"], github.kid());
    login(minted["token"].as_str().unwrap().to_string())
        .await
        .unwrap();
    let jwks: Value = http
        .get(format!("{}/oidc/jwks", emu.endpoints().admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks[GITHUB]["keys"][0]["kid"], github.kid());

    let claims = |sub: &str, exp: i64| json!({"iss": GITHUB, "sub": sub, "aud": "api://AzureADTokenExchange", "exp": exp});
    // signed, but not a matching credential: 70021
    let (s, b) = login(github.mint_claims(&claims("repo:evil/fork:ref:refs/heads/main", exp)))
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 70021));
    let (s, b) = login(github.mint(
        SUBJECT,
        "api://SomethingElse",
        std::time::Duration::from_secs(60),
    ))
    .await
    .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 70021));
    // expired: 700024
    let (s, b) = login(github.mint_claims(&claims("repo:certifyclouds/rotor:x", exp - 3600)))
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 700024));
    // no exp: 50027
    let (s, b) =
        login(github.mint_claims(
            &json!({"iss": GITHUB, "sub": SUBJECT, "aud": "api://AzureADTokenExchange"}),
        ))
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 50027));
    // the right claims, unsigned or signed by someone else: 50013
    let forged = jwt(
        json!({"alg": "RS256", "typ": "JWT", "kid": github.kid()}),
        claims(SUBJECT, exp),
    );
    let (s, b) = login(forged).await.unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 50013), "{b}");
    let other = emu.oidc_signer("https://attacker.example");
    let (s, b) = login(other.mint_claims(&claims(SUBJECT, exp)))
        .await
        .unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 50013), "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("key was not found"),
        "{b}"
    );
    // a good token with its claims tampered with: 50013
    let (h, rest) = good.split_once('.').unwrap();
    let sig = rest.rsplit_once('.').unwrap().1;
    let tampered = format!("{h}.{}.{sig}", {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims("repo:certifyclouds/rotor:ref:refs/heads/evil", exp).to_string())
    });
    let (s, b) = login(tampered).await.unwrap_err();
    assert_eq!((s, aadsts(&b)), (401, 50013), "{b}");
    // alg other than RS256: 5002738
    let es = jwt(
        json!({"alg": "ES256", "kid": github.kid()}),
        claims(SUBJECT, exp),
    );
    let (s, b) = login(es).await.unwrap_err();
    assert_eq!((s, aadsts(&b)), (400, 5002738));
}

#[tokio::test]
async fn tokens_are_bound_to_their_audience() {
    let emu = sample().await;
    let http = http(&emu);
    let vault_token = token_as(&emu, &http, "rotor-ci", VAULT_SCOPE).await;
    let r = http
        .get(format!(
            "{}/v1.0/applications",
            emu.endpoints().graph_endpoint
        ))
        .bearer_auth(&vault_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "InvalidAuthenticationToken");
    let r = http
        .get(format!(
            "{}/v1.0/applications",
            emu.endpoints().graph_endpoint
        ))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn basic_auth_and_openid_configuration() {
    let emu = sample().await;
    let http = http(&emu);
    let (id, secret) = principal(&emu, "rotor-ci");
    let ep = emu.endpoints();
    let r = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            ep.authority_host, ep.tenant_id
        ))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            ep.authority_host, ep.tenant_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["token_endpoint"],
        format!("{}/{}/oauth2/v2.0/token", ep.authority_host, ep.tenant_id)
    );
}
