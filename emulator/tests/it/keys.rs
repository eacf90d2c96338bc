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

// ---- import ---------------------------------------------------------------------------------

/// A self-signed RSA certificate: (cert DER, PKCS#8 key DER, PEM of key + cert).
fn rsa_cert(cn: &str) -> (Vec<u8>, Vec<u8>, String) {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    (cert.der().to_vec(), key.serialize_der(), pem)
}

fn pfx(cert: &[u8], key: &[u8], password: &str) -> Vec<u8> {
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8, 2, 3],
        p12_keystore::PrivateKey::from_der(key).unwrap(),
        [p12_keystore::Certificate::from_der(cert).unwrap()],
    );
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry("c", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    ks.writer(password).write().unwrap()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn official_sdk_imports_pfx_and_pem_and_the_backing_secret_names_the_previous_version() {
    use azure_security_keyvault_certificates::models::ImportCertificateParameters;
    use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
    use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
    let fixture = rotor_emulator::Fixture::from_json(
        r#"{"principals":[
            {"display_name":"certs","vault_roles":{"*":["Key Vault Certificates Officer","Key Vault Secrets User","Key Vault Crypto User"]}},
            {"display_name":"secrets","vault_roles":{"*":"Key Vault Secrets Officer"}}],
          "vaults":[{"name":"kv-keys"}]}"#,
    )
    .unwrap();
    let emu = start(fixture).await;
    let certs = cert_client(&emu, "certs");

    // 1. a password-protected PFX
    let (der1, key1, _) = rsa_cert("imported-one");
    let imported = certs
        .import_certificate(
            "imported",
            ImportCertificateParameters {
                base64_encoded_certificate: Some(b64(&pfx(&der1, &key1, "s3cret pwd"))),
                password: Some("s3cret pwd".into()),
                tags: Some([("owner".to_string(), "rotor".to_string())].into()),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(imported.cer.as_deref(), Some(&der1[..]));
    assert_eq!(
        imported.x509_thumbprint.clone().unwrap(),
        sha1::Sha1::digest(&der1).to_vec()
    );
    assert_eq!(
        imported.content_type.as_deref(),
        Some("application/x-pkcs12")
    );
    let v1 = imported
        .kid
        .clone()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let policy = imported.policy.unwrap();
    assert_eq!(
        policy
            .x509_certificate_properties
            .unwrap()
            .subject
            .as_deref(),
        Some("CN=imported-one")
    );
    assert_eq!(policy.key_properties.unwrap().key_size, Some(2048));

    // its key signs, and the signature verifies against the imported certificate
    let digest = sha2::Sha256::digest(b"imported").to_vec();
    let (kid, sig) = sign(
        &key_client(&emu, "certs"),
        "imported",
        None,
        SignatureAlgorithm::Rs256,
        digest.clone(),
    )
    .await
    .unwrap();
    assert_eq!(Some(kid), imported.kid);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki_key(&der1),
    )
    .verify(b"imported", &sig)
    .unwrap();

    // the backing secret: a PFX without password holding the same key and certificate; no
    // previousVersion on the first version
    let secrets = SecretClient::new(
        &vault(&emu, "kv-keys"),
        sdk_credential(&emu, "certs"),
        Some(SecretClientOptions {
            client_options: sdk_client_options(&emu),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap();
    let s1 = secrets
        .get_secret("imported", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(s1.content_type.as_deref(), Some("application/x-pkcs12"));
    assert_eq!(s1.managed, Some(true));
    assert_eq!(s1.previous_version, None);
    let bytes = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(s1.value.unwrap())
            .unwrap()
    };
    let ks =
        p12_keystore::KeyStore::from_pkcs12(&bytes, "", p12_keystore::Pkcs12ImportPolicy::Strict)
            .unwrap();
    let (_, chain) = ks.private_key_chain().unwrap();
    assert_eq!(chain.key().as_der(), &key1[..]);
    assert_eq!(chain.certs()[0].as_der(), &der1[..]);

    // 2. a second version from PEM: previousVersion names the first
    let (der2, _, pem2) = rsa_cert("imported-two");
    let second = certs
        .import_certificate(
            "imported",
            ImportCertificateParameters {
                base64_encoded_certificate: Some(pem2),
                certificate_policy: Some(
                    azure_security_keyvault_certificates::models::CertificatePolicy {
                        secret_properties: Some(
                            azure_security_keyvault_certificates::models::SecretProperties {
                                content_type: Some("application/x-pem-file".into()),
                            },
                        ),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(second.cer.as_deref(), Some(&der2[..]));
    let v2 = second.kid.unwrap().rsplit('/').next().unwrap().to_string();
    let s2 = secrets
        .get_secret("imported", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(s2.content_type.as_deref(), Some("application/x-pem-file"));
    assert!(s2.value.unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(s2.previous_version.as_deref(), Some(v1.as_str()));
    let again = secrets
        .get_secret(
            "imported",
            Some(SecretClientGetSecretOptions {
                secret_version: Some(v2.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(again.previous_version.as_deref(), Some(v1.as_str()));
    // the certificate's latest is the second, the key's too
    let key = key_client(&emu, "certs")
        .get_key("imported", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(key.key.unwrap().kid.unwrap().ends_with(&v2));
    // no pending operation for an imported certificate
    assert_eq!(
        certs
            .get_certificate_operation("imported", None)
            .await
            .unwrap_err()
            .http_status()
            .map(u16::from),
        Some(404)
    );

    // refusals: wrong password, PKCS#1 key, EC key, key of another certificate, no key;
    // a Secrets Officer may not import
    let http = http(&emu);
    let tok = token_as(&emu, &http, "certs", VAULT_SCOPE).await;
    let base = vault(&emu, "kv-keys");
    let import = |tok: String, body: Value| {
        let http = http.clone();
        let url = format!("{base}certificates/refused/import?api-version=2025-07-01");
        async move {
            let r = http
                .post(url)
                .bearer_auth(&tok)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let b: Value = r.json().await.unwrap();
            (
                s,
                b["error"]["code"].as_str().unwrap_or("").to_string(),
                b["error"]["message"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let (s, code, msg) = import(
        tok.clone(),
        json!({"value": b64(&pfx(&der1, &key1, "right")), "pwd": "wrong"}),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "BadParameter"), "{msg}");
    assert!(msg.contains("pwd"), "{msg}");
    let rsa_pkcs1 = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_der(&key1)
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    };
    let cert1_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64(&der1)
    );
    let (s, _, msg) = import(
        tok.clone(),
        json!({"value": format!("{rsa_pkcs1}{cert1_pem}")}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("PKCS#8"), "{msg}");
    let ec_key = rcgen::KeyPair::generate().unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["ec.example".to_string()])
        .unwrap()
        .self_signed(&ec_key)
        .unwrap();
    let (s, _, msg) = import(
        tok.clone(),
        json!({"value": format!("{}{}", ec_key.serialize_pem(), ec_cert.pem())}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("RSA"), "{msg}");
    let (_, _, pem3) = rsa_cert("other");
    let other_key = pem3
        .split("-----BEGIN CERTIFICATE-----")
        .next()
        .unwrap()
        .to_string();
    let (s, _, msg) = import(
        tok.clone(),
        json!({"value": format!("{other_key}{cert1_pem}")}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("does not match"), "{msg}");
    let (s, _, msg) = import(tok.clone(), json!({"value": cert1_pem})).await;
    assert_eq!(s, 400);
    assert!(msg.contains("Private key"), "{msg}");
    let tok = token_as(&emu, &http, "secrets", VAULT_SCOPE).await;
    let (s, code, _) = import(tok, json!({"value": b64(&pfx(&der1, &key1, ""))})).await;
    assert_eq!((s, code.as_str()), (403, "Forbidden"));
    // 2 SDK imports (the first after the SDK's unauthenticated challenge request) + 6 refused
    assert_eq!(
        emu.request_counts()["by_route"]["POST /certificates/{name}/import"],
        9
    );
}

#[tokio::test]
async fn a_created_certificate_s_second_version_names_the_first_as_previous() {
    let emu = start(rotor_emulator::Fixture::from_json(
        r#"{"principals":[{"display_name":"certs","vault_roles":{"*":["Key Vault Certificates Officer","Key Vault Secrets User"]}}],
          "vaults":[{"name":"kv-keys"}]}"#,
    ).unwrap())
    .await;
    let (_, kid1) = create_cert(&emu, "renewed", 2048).await;
    let (_, kid2) = create_cert(&emu, "renewed", 2048).await;
    let http = http(&emu);
    let tok = token_as(&emu, &http, "certs", VAULT_SCOPE).await;
    let get = |path: String| {
        let http = http.clone();
        let tok = tok.clone();
        async move {
            http.get(path)
                .bearer_auth(&tok)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let v1 = kid1.rsplit('/').next().unwrap();
    let v2 = kid2.rsplit('/').next().unwrap();
    let base = vault(&emu, "kv-keys");
    let s2 = get(format!("{base}secrets/renewed?api-version=2025-07-01")).await;
    assert_eq!(s2["previousVersion"], v1);
    assert_eq!(s2["kid"], kid2);
    let s1 = get(format!("{base}secrets/renewed/{v1}?api-version=2025-07-01")).await;
    assert!(s1.get("previousVersion").is_none(), "{s1}");
    // list items carry no previousVersion (the spec puts it on the bundle)
    let list = get(format!(
        "{base}secrets/renewed/versions?api-version=2025-07-01&maxresults=25"
    ))
    .await;
    for i in list["value"].as_array().unwrap() {
        assert!(i.get("previousVersion").is_none());
    }
    let _ = v2;
}
