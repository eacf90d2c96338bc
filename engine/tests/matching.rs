//! Discovery and matching against the emulator's sample tenant.

mod common;

use common::*;
use rotor_engine::{Confidence, Exclusion, Policy, Signal};

fn conf_of(
    r: &rotor_engine::MatchReport,
    app: &str,
    secret: &str,
) -> Option<(Confidence, Vec<Signal>, Option<String>)> {
    r.matches
        .iter()
        .find(|m| m.app_name == app && m.secret_name == secret)
        .map(|m| (m.confidence, m.signals.clone(), m.excluded.clone()))
}

#[tokio::test]
async fn sample_tenant_matches_exactly_as_intended() {
    let env = sample().await;
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    assert_eq!(apps.len(), 9);
    let policy = Policy {
        exclusions: vec![Exclusion::parse("name:legacy-*").expect("valid")],
        ..Policy::default()
    };
    let r = engine
        .match_secrets(&apps, &env.vaults(), &policy)
        .await
        .expect("match");
    let pairs: Vec<(String, String, Confidence)> = r
        .matches
        .iter()
        .map(|m| (m.app_name.clone(), m.secret_name.clone(), m.confidence))
        .collect();
    assert_eq!(r.matches.len(), 10, "{pairs:#?}");

    use Confidence::{High, Low, Medium};
    use Signal::*;
    // MyApp Secret 1 in three vaults, HIGH
    let (c, s, _) = conf_of(&r, "MyApp", "myapp-secret").expect("myapp-secret");
    assert_eq!((c, s), (High, vec![Hint, TagApp, Name, Expiry]));
    let (c, s, _) = conf_of(&r, "MyApp", "myapp-dev-secret").expect("dev");
    assert_eq!((c, s), (High, vec![Hint, Name, Expiry]));
    let (c, _, _) = conf_of(&r, "MyApp", "myapp-secret-v2").expect("staging");
    assert_eq!(c, High);
    assert!(
        r.matches
            .iter()
            .filter(|m| m.app_name == "MyApp")
            .all(|m| m.key_id == MYAPP_SECRET1)
    );
    // billing-api by tag-key-id
    let (c, s, _) = conf_of(&r, "billing-api", "billing-api-client-secret").expect("billing");
    assert_eq!(c, High);
    assert!(s.contains(&TagKeyId));
    // orders-service: hint + name
    let (c, s, _) = conf_of(&r, "orders-service", "orders-service-client-secret").expect("orders");
    assert_eq!((c, s), (High, vec![Hint, Name]));
    // data-pipeline: hint alone
    let (c, s, _) = conf_of(&r, "data-pipeline", "blob-sync-credential").expect("pipeline");
    assert_eq!((c, s), (Medium, vec![Hint]));
    // reporting: name only
    let (c, s, _) = conf_of(&r, "reporting", "reporting-client-secret").expect("reporting");
    assert_eq!((c, s), (Low, vec![Name]));
    // inventory: tag-app + name lowered by the hint mismatch
    let m = r
        .matches
        .iter()
        .find(|m| m.app_name == "inventory")
        .expect("inventory");
    assert_eq!(
        (m.confidence, m.signals.clone(), m.hint_mismatch),
        (Low, vec![TagApp, Name], true)
    );
    // legacy-crm: HIGH but excluded
    let (c, _, x) = conf_of(&r, "legacy-crm", "legacy-crm-client-secret").expect("legacy");
    assert_eq!((c, x.as_deref()), (High, Some("name:legacy-*")));
    // consumer-app current
    let (c, _, _) = conf_of(&r, "consumer-app", "consumer-app-client-secret").expect("consumer");
    assert_eq!(c, High);
    // orphan-app, MyApp Secret 2 and consumer-app's expired older password are unmatched
    let mut un: Vec<(String, String)> = r
        .unmatched
        .iter()
        .map(|u| {
            (
                u.app_name.clone(),
                u.credential_display_name.clone().unwrap_or_default(),
            )
        })
        .collect();
    un.sort();
    assert_eq!(
        un,
        vec![
            ("MyApp".to_owned(), "Secret 2".to_owned()),
            ("consumer-app".to_owned(), "current".to_owned()),
            ("orphan-app".to_owned(), "unused".to_owned()),
        ]
    );
    assert!(r.values_read > 0);
}

#[tokio::test]
async fn hint_cache_means_no_value_is_read_twice() {
    let env = sample().await;
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    let policy = Policy::default();
    let first = engine
        .match_secrets(&apps, &env.vaults(), &policy)
        .await
        .expect("match");
    assert_eq!(first.values_read, 11, "every enabled secret is read once");
    let reads_before = env.count("GET /secrets/{name}/")
        + env.count("GET /secrets/{name}")
        + env.count("GET /secrets/{name}/{version}");
    // a new engine (new process) with the same hint cache file
    let engine2 = env.engine();
    let second = engine2
        .match_secrets(&apps, &env.vaults(), &policy)
        .await
        .expect("match");
    assert_eq!(second.values_read, 0);
    let reads_after = env.count("GET /secrets/{name}/")
        + env.count("GET /secrets/{name}")
        + env.count("GET /secrets/{name}/{version}");
    assert_eq!(reads_before, reads_after, "{}", env.emu.request_counts());
    assert_eq!(first.matches, second.matches);
    // the cache holds hints only
    let cache = std::fs::read_to_string(env.dir.path().join("hints.json")).expect("cache");
    for v in env.all_values() {
        if v.len() > 3 {
            assert!(!cache.contains(&v), "hint cache contains a value");
        }
    }
}

#[tokio::test]
async fn each_exclusion_kind() {
    let env = sample().await;
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    for (pattern, app) in [
        ("app-id:b0000003-*", "orders-service"),
        ("name:ORDERS-*", "orders-service"),
        ("secret:orders-service-client-*", "orders-service"),
        ("secret:client secret", "orders-service"),
    ] {
        let policy = Policy {
            exclusions: vec![Exclusion::parse(pattern).expect("valid")],
            ..Policy::default()
        };
        let r = engine
            .match_secrets(&apps, &env.vaults(), &policy)
            .await
            .expect("match");
        let m = r.matches.iter().find(|m| m.app_name == app).expect("match");
        assert_eq!(m.excluded.as_deref(), Some(pattern), "{pattern}");
        assert!(
            r.matches
                .iter()
                .filter(|m| m.app_name == "MyApp")
                .all(|m| m.excluded.is_none())
        );
    }
}

#[tokio::test]
async fn discovery_pages_beyond_999_apps() {
    let apps: Vec<serde_json::Value> = (0..1234)
        .map(|i| {
            serde_json::json!({
                "display_name": format!("app-{i:04}"),
                "password_credentials": [{"display_name": "s", "end": "+100d"}]
            })
        })
        .collect();
    let env = start(fixture(serde_json::json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Secrets Officer"}}],
        "applications": apps,
        "vaults": [],
    })))
    .await;
    let engine = env.engine();
    let found = engine.discover(None).await.expect("discover");
    assert_eq!(found.len(), 1234);
    assert_eq!(
        env.count("GET /v1.0/applications"),
        2,
        "{}",
        env.emu.request_counts()
    );
    let filtered = engine.discover(Some("app-12*")).await.expect("discover");
    assert_eq!(filtered.len(), 34);
    // memoised: no Graph call for a discovered app
    let before = env.emu.request_counts()["total"].as_u64().expect("total");
    let one = engine.get_application(&found[5].app_id).await.expect("get");
    assert_eq!(one.display_name, found[5].display_name);
    assert_eq!(
        env.emu.request_counts()["total"].as_u64().expect("total"),
        before
    );
}

#[tokio::test]
async fn vaults_from_arm_subscriptions() {
    let env = sample().await;
    let engine = env.engine();
    let cfg = rotor_engine::Config::parse(
        r#"subscriptions = ["11111111-1111-4111-8111-111111111111"]"#,
        "rotor.toml",
    )
    .expect("config");
    let vaults = engine.resolve_vaults(&cfg).await.expect("vaults");
    assert_eq!(vaults.len(), 2);
    assert!(vaults.contains(&env.vault("kv-prod")));
    assert!(vaults.contains(&env.vault("kv-staging")));
}

#[tokio::test]
async fn graph_403_names_the_permission() {
    let env = sample().await;
    // rotor-readonly can read but not write applications
    let st = env.state();
    let ro = &st["principals"][1];
    let opts = env.options_as(Some((
        ro["client_id"].as_str().expect("id"),
        ro["client_secret"].as_str().expect("secret"),
    )));
    let engine = rotor_engine::Engine::new(opts).expect("engine");
    let link = env.myapp_link();
    let rec = engine
        .rotate(
            &link,
            &Policy::default(),
            &Default::default(),
            &rotor_engine::NoProgress,
        )
        .await;
    assert_eq!(rec.status, rotor_engine::RotationStatus::Failed);
    let err = rec.error.clone().expect("error");
    // readonly has only Secrets User on vaults and cannot write applications: the preflight
    // write-access probe of the vaults refuses first, before anything changes in Graph
    assert!(
        rec.hints
            .iter()
            .any(|h| h.contains("Key Vault Secrets Officer")),
        "{err} {:?}",
        rec.hints
    );
    assert!(err.contains("403"), "{err}");
    assert_eq!(env.passwords(MYAPP).len(), 2, "nothing was added");
}

#[tokio::test]
async fn certificate_matches_by_thumbprint() {
    use azure_security_keyvault_certificates::models::{
        CertificatePolicy, CreateCertificateParameters, IssuerParameters, X509CertificateProperties,
    };
    use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
    use base64::Engine as _;
    let env = start(fixture(serde_json::json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.ReadWrite.All"], "vault_roles": {"*": "Key Vault Administrator"}}],
        "applications": [{"object_id": "a0000001-0000-4000-8000-000000000001", "app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "signer"}],
        "vaults": [{"name": "kv-certs", "secrets": []}]
    })))
    .await;
    let endpoints = env.endpoints();
    let mut auth = rotor_engine::AuthConfig::from_map(&env.emu.endpoints().env);
    auth.use_cli = false;
    auth.use_msi = false;
    let cred = auth.build(&endpoints).expect("cred");
    let http = rotor_engine::http::http_client(&endpoints).expect("http");
    let client = CertificateClient::new(
        env.vault("kv-certs").as_str(),
        cred.clone(),
        Some(CertificateClientOptions {
            client_options: rotor_engine::http::client_options(&http, &endpoints),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .expect("client");
    let body = CreateCertificateParameters {
        certificate_policy: Some(CertificatePolicy {
            x509_certificate_properties: Some(X509CertificateProperties {
                subject: Some("CN=signer".into()),
                validity_in_months: Some(6),
                ..Default::default()
            }),
            issuer_parameters: Some(IssuerParameters {
                name: Some("Self".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cert = client
        .begin_create_certificate("signer-cert", body.try_into().expect("body"), None)
        .expect("begin")
        .await
        .expect("created")
        .into_model()
        .expect("model");
    let der = cert.cer.expect("cer");
    let token = cred
        .get_token(&[endpoints.graph_scope().as_str()], None)
        .await
        .expect("token");
    let r = http
        .patch(format!("{}v1.0/applications/a0000001-0000-4000-8000-000000000001", endpoints.graph))
        .bearer_auth(token.token.secret())
        .json(&serde_json::json!({"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify",
            "key": base64::engine::general_purpose::STANDARD.encode(&der), "displayName": "CN=signer"}]}))
        .send()
        .await
        .expect("patch");
    assert!(r.status().is_success(), "{}", r.status());

    // Graph is eventually consistent: the new key credential shows in reads after a while.
    tokio::time::sleep(std::time::Duration::from_millis(
        env.emu.fidelity().graph_read_delay_ms + 20,
    ))
    .await;
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    assert_eq!(apps[0].key_credentials.len(), 1);
    let r = engine
        .match_secrets(&apps, &env.vaults(), &Policy::default())
        .await
        .expect("match");
    let m = r
        .matches
        .iter()
        .find(|m| m.kind == rotor_engine::CredentialKind::Certificate)
        .expect("certificate match");
    assert_eq!(m.secret_name, "signer-cert");
    assert_eq!(m.confidence, Confidence::High);
    assert!(
        m.signals.contains(&Signal::Thumbprint) && m.signals.contains(&Signal::Name),
        "{:?}",
        m.signals
    );
    // certificate matches never become rotation links
    let links = rotor_engine::rotation::links_from_matches(&r, &apps, &Policy::default());
    assert!(links.is_empty());
}

#[tokio::test]
async fn subscription_signal_for_vaults_found_through_arm() {
    let env = sample().await;
    let mut opts = env.options();
    opts.app_subscriptions.insert(
        "report*".into(),
        vec!["11111111-1111-4111-8111-111111111111".into()],
    );
    let engine = rotor_engine::Engine::new(opts).expect("engine");
    let cfg = rotor_engine::Config::parse(
        r#"subscriptions = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]"#,
        "rotor.toml",
    )
    .expect("config");
    let vaults = engine.resolve_vaults(&cfg).await.expect("vaults");
    assert_eq!(vaults.len(), 3);
    let apps = engine.discover(None).await.expect("discover");
    let r = engine
        .match_secrets(&apps, &vaults, &Policy::default())
        .await
        .expect("match");
    let m = r
        .matches
        .iter()
        .find(|m| m.app_name == "reporting")
        .expect("reporting");
    assert_eq!(m.signals, vec![Signal::Name, Signal::Subscription]);
    assert_eq!(m.confidence, Confidence::Low);
    assert_eq!(m.vault, "kv-staging");
    assert!(r.signals_tried.contains(&Signal::Subscription));
    // other apps are not configured: no subscription signal
    assert!(
        r.matches
            .iter()
            .filter(|m| m.app_name != "reporting")
            .all(|m| !m.signals.contains(&Signal::Subscription))
    );
}

/// `rotor match` with no role on a vault: listing/reading needs `Key Vault Secrets User` (or
/// Officer), so the hint names that — not `Key Vault Secrets Officer` alone, which only writing
/// needs.
#[tokio::test]
async fn match_without_vault_role_names_secrets_user() {
    let env = start(fixture(serde_json::json!({
        "principals": [{"client_id": "11111111-0000-4000-8000-000000000001", "client_secret": "p-secret-value-1234",
            "display_name": "rotor", "graph_roles": ["Application.Read.All"], "vault_roles": {}}],
        "applications": [{"app_id": "b0000001-0000-4000-8000-000000000001", "display_name": "svc",
            "password_credentials": [{"display_name": "s", "secret_text": "AAA-old-value-xxxxxxxxxxxx", "end": "+10d"}]}],
        "vaults": [{"name": "kv-a", "secrets": [{"name": "svc-secret", "value": "AAA-old-value-xxxxxxxxxxxx"}]}]
    })))
    .await;
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    let err = engine
        .match_secrets(&apps, &env.vaults(), &Policy::default())
        .await
        .expect_err("no vault role");
    assert_eq!(err.kind(), rotor_engine::ErrorKind::Permission, "{err}");
    let text = err.render();
    eprintln!("{text}");
    assert!(text.contains("403"), "{text}");
    assert!(text.contains("kv-a"), "{text}");
    assert!(
        err.hints()
            .iter()
            .any(|h| h.contains("`Key Vault Secrets User`")),
        "{text}"
    );
    assert!(
        !err.hints()
            .iter()
            .any(|h| h.contains("role `Key Vault Secrets Officer`")),
        "reading does not need Secrets Officer: {text}"
    );
    assert!(text.contains("get and list"), "{text}");
    assert!(!text.contains(" set"), "{text}");
}
