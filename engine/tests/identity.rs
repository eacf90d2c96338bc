//! The credential chain against the emulator's token endpoint: client secret, workload identity
//! file, GitHub OIDC (fresh token per request), and the error listing what was tried.

mod common;

use base64::Engine as _;
use common::*;
use rotor_engine::{AuthConfig, AuthMethod, SecretValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CI_CLIENT: &str = "7c1e0d5a-0000-4000-8000-0000000000c1";

/// What GitHub's token service hands out: a token signed by the issuer's key, which the
/// emulator (playing the issuer) holds and the token endpoint verifies.
fn github_jwt(github: &rotor_emulator::OidcSigner) -> String {
    github.mint(
        "repo:certifyclouds/rotor:ref:refs/heads/main",
        "api://AzureADTokenExchange",
        std::time::Duration::from_secs(600),
    )
}

fn github(env: &Env) -> rotor_emulator::OidcSigner {
    env.emu
        .oidc_signer("https://token.actions.githubusercontent.com")
}

fn auth(env: &Env) -> AuthConfig {
    AuthConfig {
        tenant_id: Some(env.emu.endpoints().tenant_id.clone()),
        client_id: Some(CI_CLIENT.into()),
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn client_secret_from_the_environment_map() {
    let env = sample().await;
    let mut a = AuthConfig::from_map(&env.emu.endpoints().env);
    assert_eq!(a.methods()[0], AuthMethod::ClientSecret);
    a.use_cli = false;
    a.use_msi = false;
    let cred = a.build(&env.endpoints()).expect("build");
    cred.get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("token");
    assert!(
        !format!("{a:?} {cred:?}")
            .contains(env.emu.endpoints().env["AZURE_CLIENT_SECRET"].as_str())
    );
}

#[tokio::test]
async fn workload_identity_token_file() {
    let env = sample().await;
    let file = env.dir.path().join("token");
    std::fs::write(&file, github_jwt(&github(&env))).expect("write");
    let a = AuthConfig {
        federated_token_file: Some(file.clone()),
        ..auth(&env)
    };
    assert_eq!(a.methods(), vec![AuthMethod::TokenFile(file)]);
    let cred = a.build(&env.endpoints()).expect("build");
    cred.get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("token");
}

#[tokio::test]
async fn workload_identity_token_not_signed_by_the_issuer_is_refused() {
    let env = sample().await;
    let file = env.dir.path().join("token");
    // GitHub's claims, signed by a key that is not GitHub's
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let forged = env.emu.oidc_signer("https://attacker.example").mint_claims(
        &serde_json::json!({"iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:certifyclouds/rotor:ref:refs/heads/main",
            "aud": "api://AzureADTokenExchange", "exp": exp}),
    );
    std::fs::write(&file, forged).expect("write");
    let a = AuthConfig {
        federated_token_file: Some(file.clone()),
        ..auth(&env)
    };
    let cred = a.build(&env.endpoints()).expect("build");
    let err = cred
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("a forged token is refused");
    let text = format!("{err}");
    assert!(
        text.contains("50013") || text.contains("signature"),
        "{text}"
    );
}

#[tokio::test]
async fn github_oidc_fetches_a_fresh_token() {
    let env = sample().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let signer = github(&env);
    {
        let hits = hits.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                seen.lock()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                hits.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({"value": github_jwt(&signer)}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
    }
    let a = AuthConfig {
        use_oidc: true,
        oidc_request_url: Some(format!("http://127.0.0.1:{port}/idtoken?api-version=2.0")),
        oidc_request_token: Some(SecretValue::from("gh-request-token")),
        ..auth(&env)
    };
    assert_eq!(a.methods(), vec![AuthMethod::GithubOidc]);
    let cred = a.build(&env.endpoints()).expect("build");
    cred.get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("graph token");
    cred.get_token(&["https://vault.azure.net/.default"], None)
        .await
        .expect("vault token");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a fresh GitHub token per Entra token request"
    );
    let req = seen.lock()[0].to_ascii_lowercase();
    assert!(
        req.contains("audience=api%3a%2f%2fazureadtokenexchange"),
        "{req}"
    );
    assert!(
        req.contains("authorization: bearer gh-request-token"),
        "{req}"
    );
}

#[tokio::test]
async fn failed_chain_lists_what_was_tried() {
    let env = sample().await;
    let a = AuthConfig {
        client_secret: Some(SecretValue::from("wrong-secret-value")),
        federated_token_file: Some(env.dir.path().join("missing-token")),
        ..auth(&env)
    };
    let cred = a.build(&env.endpoints()).expect("build");
    let err = cred
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("nothing works");
    let msg = err.to_string();
    assert!(
        msg.contains("client secret") && msg.contains("workload identity token file"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret-value"));
    let none = AuthConfig::default()
        .build(&env.endpoints())
        .expect_err("nothing configured");
    assert_eq!(none.kind(), rotor_engine::ErrorKind::Config);
    assert!(
        none.hints()
            .iter()
            .any(|h| h.contains("AZURE_CLIENT_SECRET"))
    );
}

/// A configured client secret is the only method: when it is wrong, the error names it and the
/// variable it came from, and neither the Azure CLI nor managed identity is tried (before, the
/// chain fell through to both, building a managed identity with the service principal's id).
#[tokio::test]
async fn wrong_explicit_client_secret_fails_naming_it_and_never_tries_cli_or_msi() {
    let env = sample().await;
    let mut map = env.emu.endpoints().env.clone();
    map.insert("AZURE_CLIENT_SECRET".into(), "wrong-secret-value".into());
    // AZURE_USE_CLI / AZURE_USE_MSI unset: both default on for the chain
    map.remove("AZURE_USE_CLI");
    map.remove("AZURE_USE_MSI");
    let a = AuthConfig::from_map(&map);
    assert!(a.use_cli && a.use_msi);
    assert_eq!(a.methods(), vec![AuthMethod::ClientSecret]);
    let cred = a.build(&env.endpoints()).expect("build");
    let started = std::time::Instant::now();
    let err = cred
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("wrong secret");
    let msg = err.to_string();
    assert!(
        msg.contains("client secret from AZURE_CLIENT_SECRET"),
        "{msg}"
    );
    assert!(msg.contains("AADSTS7000215"), "{msg}");
    assert!(!msg.contains("Azure CLI"), "{msg}");
    assert!(!msg.contains("managed identity"), "{msg}");
    assert!(!msg.contains("wrong-secret-value"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!format!("{cred:?}").contains("Azure CLI"));

    // the engine's error for it: a permission problem naming the method and the variable
    let mut opts = env.options();
    opts.credential = cred;
    let engine = rotor_engine::Engine::new(opts).expect("engine");
    let e = engine.discover(None).await.expect_err("wrong secret");
    eprintln!("{}", e.render());
    assert_eq!(e.kind(), rotor_engine::ErrorKind::Permission, "{e}");
    assert!(e.to_string().contains("AZURE_CLIENT_SECRET"), "{e}");

    // an explicit Azure CLI / managed identity choice is the only method too
    let mut m = BTreeMap::new();
    m.insert("AZURE_USE_MSI".to_owned(), "true".to_owned());
    m.insert("AZURE_CLIENT_ID".to_owned(), CI_CLIENT.to_owned());
    assert_eq!(
        AuthConfig::from_map(&m).methods(),
        vec![AuthMethod::ManagedIdentity]
    );
    // nothing configured: the chain (CLI, then managed identity)
    assert_eq!(
        AuthConfig::from_map(&BTreeMap::new()).methods(),
        vec![AuthMethod::AzureCli, AuthMethod::ManagedIdentity]
    );
    // a client secret without a tenant is refused when built, naming where it came from
    let mut m = BTreeMap::new();
    m.insert("AZURE_CLIENT_SECRET".to_owned(), "x-value".to_owned());
    m.insert("AZURE_CLIENT_ID".to_owned(), CI_CLIENT.to_owned());
    let e = AuthConfig::from_map(&m)
        .build(&env.endpoints())
        .expect_err("no tenant");
    assert_eq!(e.kind(), rotor_engine::ErrorKind::Config);
    assert!(e.to_string().contains("AZURE_CLIENT_SECRET"), "{e}");
    assert!(e.to_string().contains("AZURE_TENANT_ID"), "{e}");
}

/// A self-signed RSA certificate (PEM) and its key (PKCS#8 PEM).
fn rsa_cert() -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let cert = rcgen::CertificateParams::new(vec!["rotor-ci".into()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    (cert, key)
}

/// The sample tenant with `cert` registered on rotor-ci (the principal `CI_CLIENT`).
async fn with_ci_certificate(cert: &rcgen::Certificate) -> Env {
    let mut f = rotor_emulator::Fixture::sample();
    let p = f
        .principals
        .iter_mut()
        .find(|p| p.client_id.as_deref() == Some(CI_CLIENT))
        .expect("rotor-ci in the sample tenant");
    p.certificates
        .push(base64::engine::general_purpose::STANDARD.encode(cert.der()));
    start(f).await
}

#[tokio::test]
async fn client_certificate_pem_signs_in_and_a_foreign_certificate_is_refused_by_entra() {
    let (cert, key) = rsa_cert();
    let env = with_ci_certificate(&cert).await;
    let file = env.dir.path().join("rotor-ci.pem");
    std::fs::write(&file, format!("{}{}", cert.pem(), key.serialize_pem())).expect("write");
    let a = AuthConfig::from_lookup(|k| match k {
        "AZURE_TENANT_ID" => Some(env.emu.endpoints().tenant_id.clone()),
        "AZURE_CLIENT_ID" => Some(CI_CLIENT.into()),
        "AZURE_CLIENT_CERTIFICATE_PATH" => Some(file.display().to_string()),
        _ => None,
    });
    assert_eq!(
        a.methods(),
        vec![AuthMethod::ClientCertificate(file.clone())]
    );
    let cred = a.build(&env.endpoints()).expect("build");
    cred.get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("token from the certificate");
    // Debug of the settings and the credential shows no key material.
    let key_pem = key.serialize_pem();
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let dbg = format!("{a:?} {cred:?}");
    assert!(!dbg.contains(&body[..48]), "{dbg}");

    // A certificate Entra does not know: the token endpoint refuses it (AADSTS700027), and the
    // error names the method and where it came from.
    let (other, other_key) = rsa_cert();
    let file2 = env.dir.path().join("other.pem");
    std::fs::write(
        &file2,
        format!("{}{}", other.pem(), other_key.serialize_pem()),
    )
    .expect("write");
    let a2 = AuthConfig {
        client_certificate_path: Some(file2.clone()),
        ..auth(&env)
    };
    let err = a2
        .build(&env.endpoints())
        .expect("build")
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("an unregistered certificate does not sign in");
    let msg = format!("{err}");
    assert!(msg.contains("700027"), "{msg}");
    assert!(msg.contains("other.pem"), "{msg}");
}

#[tokio::test]
async fn client_certificate_pkcs12_with_a_password() {
    let (cert, key) = rsa_cert();
    let env = with_ci_certificate(&cert).await;
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8; 20],
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).expect("pkcs8"),
        [p12_keystore::Certificate::from_der(cert.der()).expect("cert")],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "rotor-ci",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let pfx = store.writer("s3cret-pfx").write().expect("pfx");
    let file = env.dir.path().join("rotor-ci.pfx");
    std::fs::write(&file, pfx).expect("write");

    let wrong = AuthConfig {
        client_certificate_path: Some(file.clone()),
        client_certificate_password: Some(SecretValue::from("wrong".to_string())),
        ..auth(&env)
    };
    let Err(err) = wrong.build(&env.endpoints()) else {
        panic!("a wrong password fails at build");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("rotor-ci.pfx") && msg.contains("password"),
        "{msg}"
    );

    let a = AuthConfig {
        client_certificate_path: Some(file),
        client_certificate_password: Some(SecretValue::from("s3cret-pfx".to_string())),
        send_certificate_chain: true,
        ..auth(&env)
    };
    a.build(&env.endpoints())
        .expect("build")
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("token from the PKCS#12 certificate");
    assert!(!format!("{a:?}").contains("s3cret-pfx"));
}

#[tokio::test]
async fn client_certificate_content_base64_pkcs12_as_the_provider_passes_it() {
    let (cert, key) = rsa_cert();
    let env = with_ci_certificate(&cert).await;
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![2u8; 20],
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).expect("pkcs8"),
        [p12_keystore::Certificate::from_der(cert.der()).expect("cert")],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "rotor-ci",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let pfx = store.writer("").write().expect("pfx");
    let content = base64::engine::general_purpose::STANDARD.encode(&pfx);
    let mut a = AuthConfig {
        client_certificate: Some(SecretValue::from(content.clone())),
        ..auth(&env)
    };
    a.sources.insert(
        "client_certificate".into(),
        "provider setting `client_certificate`".into(),
    );
    assert_eq!(a.methods(), vec![AuthMethod::ClientCertificateContent]);
    a.build(&env.endpoints())
        .expect("build")
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect("token from the certificate content");
    assert!(!format!("{a:?}").contains(&content[..40]));
    // content that is neither PEM nor base64: refused at build, naming the setting
    let bad = AuthConfig {
        client_certificate: Some(SecretValue::from("not a certificate!".to_string())),
        sources: a.sources.clone(),
        ..auth(&env)
    };
    let Err(err) = bad.build(&env.endpoints()) else {
        panic!("garbage content is refused");
    };
    assert!(
        err.to_string()
            .contains("provider setting `client_certificate`"),
        "{err}"
    );
}

/// An Entra outage (every token request answered 500): the first sign-in retries (at most 1 + 4
/// requests, about 10 s in all) and fails naming the status; the requests that waited behind it,
/// and for the next 30 s every other token request of the same credential, fail at once with
/// that error, so a bulk run or a plan over many links does not sit through the retries again
/// for each link.
#[tokio::test]
async fn token_endpoint_outage_is_retried_once_then_fails_at_once() {
    let env = sample().await;
    let options = env.options();
    let credential = options.credential.clone();
    let engine = rotor_engine::Engine::new(options).expect("engine");
    env.emu
        .add_fault(
            serde_json::json!({"method": "POST", "path": "/oauth2/v2.0/token", "status": 500}),
        )
        .expect("fault");
    let route = "POST /{tenant}/oauth2/v2.0/token";
    let before = env.count(route);
    // four token requests at once, as a bulk run's rotations or a plan's links make them: the
    // SDK's token cache lets one through at a time, and each would retry on its own
    let scope = env.endpoints().graph_scope();
    let scopes = [scope.as_str()];
    let at_once =
        futures::future::join_all((0..4).map(|_| credential.get_token(&scopes, None))).await;
    for r in at_once {
        let e = r.expect_err("no token during the outage");
        assert!(e.to_string().contains("HTTP 500"), "{e}");
    }
    let sent = env.count(route) - before;
    assert!(
        (4..=5).contains(&sent),
        "one sign-in's retries in all (4, unless the 10 s budget ends them first): {sent} token requests"
    );
    // the engine's error for the next link: the status, the hold, and a hint that does not
    // blame the credential; no token request is sent
    let policy = rotor_engine::Policy::default();
    for _ in 0..3 {
        let err = engine
            .inspect_link(&env.myapp_link(), &policy)
            .await
            .expect_err("held");
        let msg = err.to_string();
        assert!(
            msg.contains("HTTP 500") && msg.contains("fail at once"),
            "the error names the token endpoint's answer and the hold: {msg}"
        );
        assert_eq!(err.kind(), rotor_engine::ErrorKind::Network, "{msg}");
        assert!(
            err.hints().iter().any(|h| h.contains("run again later")),
            "an outage is not blamed on the credential: {:?}",
            err.hints()
        );
    }
    assert_eq!(
        env.count(route) - before,
        sent,
        "the held failure answers the next requests: no token request was sent"
    );
    // Key Vault's sign-in (another scope, so not held by Graph's) fails the same way and says
    // the same: an outage, not the credential
    let err = engine
        .match_secrets(&[], &[env.vault("kv-prod")], &policy)
        .await
        .expect_err("no Key Vault token during the outage");
    let msg = err.to_string();
    assert!(msg.contains("HTTP 500"), "{msg}");
    assert_eq!(err.kind(), rotor_engine::ErrorKind::Network, "{msg}");
    assert!(
        err.hints().iter().any(|h| h.contains("run again later")),
        "{msg}: {:?}",
        err.hints()
    );
}
