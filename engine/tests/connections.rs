//! Connections that cannot work fail fast and say why, naming the endpoint: refused, untrusted
//! certificate, missing CA file; and under `loopback_only` (every test environment) nothing but
//! loopback is ever contacted.

mod common;

use common::*;
use rotor_engine::{AuthConfig, Endpoints, Engine, EngineOptions, ErrorKind, Policy};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use url::Url;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

fn engine_with(endpoints: Endpoints, auth: &AuthConfig) -> rotor_engine::Result<Engine> {
    let cred = auth.build(&endpoints)?;
    let mut o = EngineOptions::new(endpoints, cred);
    o.tenant_id = auth.tenant_id.clone();
    Engine::new(o)
}

fn secret_auth(env: &Env) -> AuthConfig {
    let mut a = AuthConfig::from_map(&env.emu.endpoints().env);
    a.use_cli = false;
    a.use_msi = false;
    a
}

/// Entra, Graph and ARM on a closed loopback port: `discover` fails within seconds (not after a
/// minute of retries), says "connection refused", names host:port, and does not blame the
/// credentials.
#[tokio::test]
async fn refused_connection_fails_fast_naming_the_endpoint() {
    let env = sample().await;
    let port = closed_port();
    let mut ep = env.endpoints();
    let dead = Url::parse(&format!("https://127.0.0.1:{port}")).expect("url");
    ep.authority_host = dead.clone();
    ep.graph = dead.clone();
    ep.arm = dead;
    let engine = engine_with(ep, &secret_auth(&env)).expect("engine");
    let started = Instant::now();
    let err = engine.discover(None).await.expect_err("refused");
    let took = started.elapsed();
    let text = err.render();
    eprintln!("{text}\n({took:?})");
    assert!(took < Duration::from_secs(5), "took {took:?}: {text}");
    assert_eq!(err.kind(), ErrorKind::Network, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("hint: check the endpoint URL"), "{text}");
    assert!(!text.contains("check AZURE_TENANT_ID"), "{text}");

    // a vault on a closed port, with a working credential: the Key Vault SDK path
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    let vault = Url::parse(&format!("https://127.0.0.1:{port}/")).expect("url");
    let started = Instant::now();
    let err = engine
        .match_secrets(&apps, &[vault], &Policy::default())
        .await
        .expect_err("refused vault");
    let took = started.elapsed();
    let text = err.render();
    eprintln!("{text}\n({took:?})");
    assert!(took < Duration::from_secs(5), "took {took:?}: {text}");
    assert_eq!(err.kind(), ErrorKind::Network, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("connection refused"), "{text}");
}

/// The emulator's CA not trusted: the error says the certificate is not trusted, names the
/// endpoint, and points at SSL_CERT_FILE — quickly, and not as a credential problem.
#[tokio::test]
async fn untrusted_certificate_names_the_endpoint_and_ssl_cert_file() {
    let env = sample().await;
    let mut ep = env.endpoints();
    ep.ca_file = None;
    let engine = engine_with(ep.clone(), &secret_auth(&env)).expect("engine");
    let started = Instant::now();
    let err = engine.discover(None).await.expect_err("untrusted");
    let took = started.elapsed();
    let text = err.render();
    eprintln!("{text}\n({took:?})");
    assert!(took < Duration::from_secs(5), "took {took:?}: {text}");
    assert_eq!(err.kind(), ErrorKind::Network, "{text}");
    assert!(text.contains("certificate"), "{text}");
    let host = ep.authority_host.host_str().expect("host");
    let port = ep.authority_host.port().expect("port");
    assert!(text.contains(&format!("{host}:{port}")), "{text}");
    assert!(text.contains("SSL_CERT_FILE"), "{text}");
}

/// A `ca_file` / SSL_CERT_FILE that does not exist is a configuration error naming the file.
#[tokio::test]
async fn missing_ca_file_is_named() {
    let env = sample().await;
    let mut ep = env.endpoints();
    let missing = env.dir.path().join("no-such-ca.pem");
    ep.ca_file = Some(missing.clone());
    let err = engine_with(ep, &secret_auth(&env)).expect_err("missing CA file");
    let text = err.render();
    assert_eq!(err.kind(), ErrorKind::Config, "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("SSL_CERT_FILE"), "{text}");
}

/// With `loopback_only` (ROTOR_LOOPBACK_ONLY=1, set in every test environment) the engine never
/// contacts anything but loopback: managed identity (IMDS at 169.254.169.254), the real Entra
/// authority, a real Graph or vault host are refused by the guard before connecting, and the
/// Azure CLI is not run.
#[tokio::test]
async fn loopback_only_refuses_every_other_address_before_connecting() {
    let env = sample().await;
    let mut m = BTreeMap::new();
    m.insert("ROTOR_LOOPBACK_ONLY".to_owned(), "1".to_owned());
    assert!(Endpoints::from_map(&m).expect("endpoints").loopback_only);
    assert!(
        env.endpoints().loopback_only,
        "the test environment sets it"
    );
    let guard = |text: &str, endpoint: &str| {
        assert!(
            text.contains(&format!("refusing to connect to {endpoint}")),
            "{text}"
        );
        assert!(text.contains("ROTOR_LOOPBACK_ONLY"), "{text}");
    };

    // managed identity, chosen explicitly
    let mut msi = BTreeMap::new();
    msi.insert("AZURE_USE_MSI".to_owned(), "true".to_owned());
    let auth = AuthConfig::from_map(&msi);
    let cred = auth.build(&env.endpoints()).expect("build");
    let started = Instant::now();
    let err = cred
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("guarded");
    assert!(started.elapsed() < Duration::from_secs(5));
    guard(&format!("{err}"), "169.254.169.254:80");

    // the real Entra authority
    let mut ep = env.endpoints();
    ep.authority_host = Url::parse("https://login.microsoftonline.com").expect("url");
    let engine = engine_with(ep, &secret_auth(&env)).expect("engine");
    let started = Instant::now();
    let err = engine.discover(None).await.expect_err("guarded");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind(), ErrorKind::Network);
    guard(&err.render(), "login.microsoftonline.com:443");

    // a real vault host (Key Vault SDK through the engine's transport)
    let engine = env.engine();
    let apps = engine.discover(None).await.expect("discover");
    let vault = Url::parse("https://kv-prod.vault.azure.net/").expect("url");
    let err = engine
        .match_secrets(&apps, &[vault], &Policy::default())
        .await
        .expect_err("guarded");
    guard(&err.render(), "kv-prod.vault.azure.net:443");

    // the Azure CLI, chosen explicitly, is not run
    let mut cli = BTreeMap::new();
    cli.insert("AZURE_USE_CLI".to_owned(), "true".to_owned());
    let cred = AuthConfig::from_map(&cli)
        .build(&env.endpoints())
        .expect("build");
    let err = cred
        .get_token(&[env.endpoints().graph_scope().as_str()], None)
        .await
        .expect_err("not run");
    assert!(err.to_string().contains("ROTOR_LOOPBACK_ONLY"), "{err}");
}
