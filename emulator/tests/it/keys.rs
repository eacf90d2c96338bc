//! Key Vault keys behind certificates: the official `azure_security_keyvault_keys` crate reads
//! a certificate's key and signs digests with it; signatures are verified independently
//! against the certificate (aws-lc-rs).

use azure_security_keyvault_certificates::models::{
    CertificatePolicy, CreateCertificateParameters, IssuerParameters, X509CertificateProperties,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::{
    KeyClientGetKeyOptions, KeyClientSignOptions, SignParameters, SignatureAlgorithm,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions, ResourceExt};
use futures::TryStreamExt;
use serde_json::{Value, json};
use sha2::Digest;

use crate::common::*;

const FIXTURE: &str = r#"{"principals":[
    {"display_name":"certs","vault_roles":{"*":["Key Vault Certificates Officer"]}},
    {"display_name":"signer","vault_roles":{"*":"Key Vault Crypto User"}},
    {"display_name":"reader","vault_roles":{"*":"Key Vault Reader"}},
    {"display_name":"nobody","vault_roles":{"*":"Key Vault Secrets User"}}],
  "vaults":[{"name":"kv-keys"}]}"#;

fn cert_client(emu: &rotor_emulator::Emulator, who: &str) -> CertificateClient {
    CertificateClient::new(
        &vault(emu, "kv-keys"),
        sdk_credential(emu, who),
        Some(CertificateClientOptions {
            client_options: sdk_client_options(emu),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap()
}

fn key_client(emu: &rotor_emulator::Emulator, who: &str) -> KeyClient {
    KeyClient::new(
        &vault(emu, "kv-keys"),
        sdk_credential(emu, who),
        Some(KeyClientOptions {
            client_options: sdk_client_options(emu),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap()
}

/// Create a certificate with the official SDK and wait for it; (cer DER, kid).
async fn create_cert(
    emu: &rotor_emulator::Emulator,
    name: &str,
    key_size: i32,
) -> (Vec<u8>, String) {
    use azure_security_keyvault_certificates::models::{KeyProperties, KeyType};
    let body = CreateCertificateParameters {
        certificate_policy: Some(CertificatePolicy {
            x509_certificate_properties: Some(X509CertificateProperties {
                subject: Some(format!("CN={name}")),
                validity_in_months: Some(3),
                ..Default::default()
            }),
            issuer_parameters: Some(IssuerParameters {
                name: Some("Self".into()),
                ..Default::default()
            }),
            key_properties: Some(KeyProperties {
                key_type: Some(KeyType::Rsa),
                key_size: Some(key_size),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cert = cert_client(emu, "certs")
        .begin_create_certificate(name, body.try_into().unwrap(), None)
        .unwrap()
        .await
        .unwrap()
        .into_model()
        .unwrap();
    (cert.cer.unwrap(), cert.kid.unwrap())
}

/// The certificate's SubjectPublicKeyInfo key bytes (PKCS#1 RSAPublicKey).
fn spki_key(cer: &[u8]) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(cer).unwrap();
    c.public_key().subject_public_key.data.to_vec()
}

async fn sign(
    client: &KeyClient,
    name: &str,
    version: Option<&str>,
    alg: SignatureAlgorithm,
    digest: Vec<u8>,
) -> azure_core::Result<(String, Vec<u8>)> {
    let r = client
        .sign(
            name,
            SignParameters {
                algorithm: Some(alg),
                value: Some(digest),
            }
            .try_into()
            .unwrap(),
            Some(KeyClientSignOptions {
                key_version: version.map(str::to_string),
                ..Default::default()
            }),
        )
        .await?
        .into_model()
        .unwrap();
    Ok((r.kid.unwrap(), r.result.unwrap()))
}

#[tokio::test]
async fn official_sdk_reads_a_certificate_key_and_signs_digests_verified_against_the_cer() {
    use aws_lc_rs::signature;
    let emu = start(rotor_emulator::Fixture::from_json(FIXTURE).unwrap()).await;
    let (cer, cert_kid) = create_cert(&emu, "signing-cert", 2048).await;
    let signer = key_client(&emu, "signer");

    // get_key: the certificate's kid, an RSA JWK whose n/e are the certificate's key, managed.
    let key = signer
        .get_key("signing-cert", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let jwk = key.key.clone().unwrap();
    assert_eq!(jwk.kid.as_deref(), Some(cert_kid.as_str()));
    assert!(cert_kid.starts_with(&format!("{}keys/signing-cert/", vault(&emu, "kv-keys"))));
    assert_eq!(key.managed, Some(true));
    let (_, parsed) = x509_parser::parse_x509_certificate(&cer).unwrap();
    let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = parsed.public_key().parsed() else {
        panic!("RSA certificate expected");
    };
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|&&x| x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    assert_eq!(jwk.n.clone().unwrap(), strip(rsa.modulus));
    assert_eq!(jwk.e.clone().unwrap(), strip(rsa.exponent));
    let version = key.resource_id().unwrap().version.unwrap();
    // by version too
    let again = signer
        .get_key(
            "signing-cert",
            Some(KeyClientGetKeyOptions {
                key_version: Some(version.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(again.key.unwrap().n, jwk.n);

    // sign a SHA-256 digest (RS256, latest version) and verify the signature against the cer.
    let message = b"rotor client assertion header.claims";
    let digest = sha2::Sha256::digest(message).to_vec();
    let (kid, sig) = sign(
        &signer,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap();
    assert_eq!(kid, cert_kid);
    let public = spki_key(&cer);
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(message, &sig)
        .expect("RS256 signature verifies against the certificate");
    // a different message does not verify (the signature is real)
    assert!(
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(b"another message", &sig)
            .is_err()
    );
    // PS256 by version
    let (_, sig) = sign(
        &signer,
        "signing-cert",
        Some(&version),
        SignatureAlgorithm::Ps256,
        digest.clone(),
    )
    .await
    .unwrap();
    signature::UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &public)
        .verify(message, &sig)
        .expect("PS256 signature verifies");
    // RS512 over a SHA-512 digest
    let (_, sig) = sign(
        &signer,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs512,
        sha2::Sha512::digest(message).to_vec(),
    )
    .await
    .unwrap();
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA512, &public)
        .verify(message, &sig)
        .expect("RS512 signature verifies");

    // a SHA-256 digest under RS384: 400 BadParameter (Key Vault signs digests, it never hashes)
    let err = sign(
        &signer,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs384,
        digest.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(400));
    // the whole message instead of its digest: 400 too
    let err = sign(
        &signer,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs256,
        message.to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(400));

    // unknown key / unknown version → 404
    let err = signer.get_key("no-such-cert", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));
    let err = sign(
        &signer,
        "signing-cert",
        Some("00000000000000000000000000000000"),
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));

    // Certificates Officer may not sign or read keys (Azure: certificates/* only); Reader reads
    // but may not sign; Secrets User neither.
    let officer = key_client(&emu, "certs");
    let err = sign(
        &officer,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
    assert_eq!(
        officer
            .get_key("signing-cert", None)
            .await
            .unwrap_err()
            .http_status()
            .map(u16::from),
        Some(403)
    );
    let reader = key_client(&emu, "reader");
    reader.get_key("signing-cert", None).await.unwrap();
    let err = sign(
        &reader,
        "signing-cert",
        None,
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
    let nobody = key_client(&emu, "nobody");
    assert_eq!(
        nobody
            .get_key("signing-cert", None)
            .await
            .unwrap_err()
            .http_status()
            .map(u16::from),
        Some(403)
    );

    // the request log names the routes
    let counts = emu.request_counts();
    assert!(
        counts["by_route"]["POST /keys/{name}/{version}/sign"]
            .as_u64()
            .unwrap()
            >= 8,
        "{counts}"
    );
    assert!(
        counts["by_route"]["GET /keys/{name}"].as_u64().unwrap() >= 3,
        "{counts}"
    );
    assert!(
        counts["by_route"]["GET /keys/{name}/{version}"]
            .as_u64()
            .unwrap()
            >= 1,
        "{counts}"
    );
}

#[tokio::test]
async fn key_versions_follow_certificate_versions_and_a_disabled_version_is_refused() {
    let emu = start(rotor_emulator::Fixture::from_json(FIXTURE).unwrap()).await;
    let (cer1, kid1) = create_cert(&emu, "rolled", 2048).await;
    let (cer2, kid2) = create_cert(&emu, "rolled", 3072).await;
    assert_ne!(kid1, kid2);
    assert_ne!(cer1, cer2);
    let signer = key_client(&emu, "signer");

    // latest = second version; listing shows both versions
    let latest = signer
        .get_key("rolled", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(
        latest.key.as_ref().unwrap().kid.as_deref(),
        Some(kid2.as_str())
    );
    assert_eq!(latest.key.unwrap().n.unwrap().len(), 384);
    let mut listed: Vec<String> = signer
        .list_key_properties_versions("rolled", None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|k| {
            assert_eq!(k.managed, Some(true));
            k.kid.unwrap()
        })
        .collect();
    listed.sort();
    let mut want = vec![kid1.clone(), kid2.clone()];
    want.sort();
    assert_eq!(listed, want);
    let names: Vec<String> = signer
        .list_key_properties(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid.unwrap())
        .collect();
    assert_eq!(
        names,
        vec![format!("{}keys/rolled", vault(&emu, "kv-keys"))]
    );

    // the old version still signs, with the old key
    let v1 = kid1.rsplit('/').next().unwrap().to_string();
    let digest = sha2::Sha256::digest(b"m").to_vec();
    let (kid, sig) = sign(
        &signer,
        "rolled",
        Some(&v1),
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap();
    assert_eq!(kid, kid1);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki_key(&cer1),
    )
    .verify(b"m", &sig)
    .unwrap();

    // a version created disabled: its key answers 403 to get and sign
    let http = http(&emu);
    let tok = token_as(&emu, &http, "certs", VAULT_SCOPE).await;
    let base = vault(&emu, "kv-keys");
    let r = http
        .post(format!("{base}certificates/off/create?api-version=2025-07-01"))
        .bearer_auth(&tok)
        .json(&json!({"policy": {"x509_props": {"subject": "CN=off"}}, "attributes": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(
        emu.fidelity().certificate_delay_ms + 20,
    ))
    .await;
    let err = signer.get_key("off", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
    let err = sign(
        &signer,
        "off",
        None,
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));

    // raw bodies: KeyNotFound, BadParameter naming the lengths, unknown alg
    let tok = token_as(&emu, &http, "signer", VAULT_SCOPE).await;
    let post = |path: String, body: Value| {
        let http = http.clone();
        let tok = tok.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}{path}?api-version=2025-07-01"))
                .bearer_auth(&tok)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = post(
        "keys/nope//sign".into(),
        json!({"alg": "RS256", "value": "AA"}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("KeyNotFound")));
    let (s, b) = post(
        "keys/rolled//sign".into(),
        json!({"alg": "PS384", "value": util_b64url(&digest)}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("32 bytes") && msg.contains("48-byte"), "{msg}");
    let (s, b) = post(
        "keys/rolled/sign".into(),
        json!({"alg": "HS256", "value": util_b64url(&digest)}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );
}

fn util_b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
