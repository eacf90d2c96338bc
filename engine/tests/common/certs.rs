//! Certificate helpers: a tenant with one application and a vault, Key Vault certificates made
//! with the official SDK, independent sign-in with a certificate version (signed through Key
//! Vault `keys/sign`), and raw Graph reads/writes.
#![allow(dead_code)]

use super::Env;
use azure_security_keyvault_certificates::models::{
    CertificatePolicy, CreateCertificateParameters, IssuerParameters, KeyProperties, KeyType,
    X509CertificateProperties,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::{
    KeyClientSignOptions, SignParameters, SignatureAlgorithm,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use base64::Engine as _;
use rotor_engine::{AuthConfig, CertificateLink, CertificateTarget};
use serde_json::{Value, json};
use sha2::Digest;

pub const CERTAPP: &str = "b0000c01-0000-4000-8000-000000000c01";
pub const CERTAPP_OID: &str = "a0000c01-0000-4000-8000-000000000c01";
pub const VAULT: &str = "kv-certs";
pub const CERT: &str = "certapp-signing";
pub const FOREIGN_KEY: &str = "f0000c01-0000-4000-8000-0000000000f1";
/// A principal that may only read applications (and create/sign in Key Vault).
pub const LEAST_ID: &str = "7c1e0d5a-0000-4000-8000-0000000000c2";
pub const LEAST_SECRET: &str = "lSt8Q~Bo5fEyX9Pm5GnFDkWKej3pevvipCp4y7P4";
pub const OTHER_TOOL_KEY: &str = "f0000c01-0000-4000-8000-0000000000f2";

/// A tenant: principal `rotor` (Graph write, Certificates Officer + Crypto User), application
/// `certapp` holding two key credentials rotor does not own (lineage `main` without a rotor
/// marker, and another lineage), vault `kv-certs`.
pub fn fixture_json() -> Value {
    json!({
        "principals": [{
            "display_name": "rotor", "client_id": "7c1e0d5a-0000-4000-8000-0000000000c1",
            "client_secret": "rCi8Q~Bo5fEyX9Pm5GnFDkWKej3pevvipCp4y7P4",
            "graph_roles": ["Application.ReadWrite.All"],
            "vault_roles": {"*": ["Key Vault Certificates Officer", "Key Vault Crypto User", "Key Vault Secrets Officer"]}
        }, {
            "display_name": "rotor-least", "client_id": LEAST_ID, "client_secret": LEAST_SECRET,
            "graph_roles": ["Application.Read.All"],
            "vault_roles": {"*": ["Key Vault Certificates Officer", "Key Vault Crypto User"]}
        }],
        "applications": [{
            "display_name": "CertApp", "app_id": CERTAPP, "object_id": CERTAPP_OID,
            "key_credentials": [
                {"key_id": FOREIGN_KEY, "display_name": "main", "thumbprint": "00112233445566778899AABBCCDDEEFF00112233", "start": "-300d", "end": "+60d"},
                {"key_id": OTHER_TOOL_KEY, "display_name": "CN=other-tool", "thumbprint": "FFEEDDCCBBAA99887766554433221100FFEEDDCC", "start": "-10d", "end": "+300d"}
            ]
        }],
        "vaults": [{"name": VAULT}]
    })
}

impl Env {
    pub fn credential(&self) -> std::sync::Arc<dyn azure_core::credentials::TokenCredential> {
        let mut auth = AuthConfig::from_map(&self.emu.endpoints().env);
        auth.use_cli = false;
        auth.use_msi = false;
        auth.build(&self.endpoints()).expect("credential")
    }

    fn sdk_options(&self) -> azure_core::http::ClientOptions {
        let http = rotor_engine::http::http_client(&self.endpoints()).expect("http");
        rotor_engine::http::client_options(&http, &self.endpoints())
    }

    pub fn cert_client(&self) -> CertificateClient {
        CertificateClient::new(
            self.vault(VAULT).as_str(),
            self.credential(),
            Some(CertificateClientOptions {
                client_options: self.sdk_options(),
                verify_challenge_resource: Some(false),
                ..Default::default()
            }),
        )
        .expect("certificate client")
    }

    /// Makes a (new version of a) certificate with the official SDK, as Key Vault AutoRenew or
    /// a person would; returns (version, DER).
    pub async fn create_cert(&self, name: &str, kty: KeyType) -> (String, Vec<u8>) {
        let body = CreateCertificateParameters {
            certificate_policy: Some(CertificatePolicy {
                x509_certificate_properties: Some(X509CertificateProperties {
                    subject: Some(format!("CN={name}")),
                    validity_in_months: Some(12),
                    ..Default::default()
                }),
                issuer_parameters: Some(IssuerParameters {
                    name: Some("Self".into()),
                    ..Default::default()
                }),
                key_properties: Some(KeyProperties {
                    key_type: Some(kty),
                    key_size: Some(2048),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = self
            .cert_client()
            .begin_create_certificate(name, body.try_into().expect("body"), None)
            .expect("begin")
            .await
            .expect("created")
            .into_model()
            .expect("model");
        let id = c.id.expect("id");
        (
            id.rsplit('/').next().expect("version").to_owned(),
            c.cer.expect("cer"),
        )
    }

    /// The DER of version `version` of certificate `name`.
    pub async fn cert_der(&self, name: &str, version: &str) -> Vec<u8> {
        use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
        self.cert_client()
            .get_certificate(
                name,
                Some(CertificateClientGetCertificateOptions {
                    certificate_version: Some(version.to_owned()),
                    ..Default::default()
                }),
            )
            .await
            .expect("get certificate")
            .into_model()
            .expect("model")
            .cer
            .unwrap_or_default()
    }

    pub fn cert_target(&self, name: &str) -> CertificateTarget {
        CertificateTarget::new(self.vault(VAULT), name)
    }

    pub fn cert_link(&self) -> CertificateLink {
        CertificateLink {
            application_id: CERTAPP.into(),
            credential_display_name: "main".into(),
            certificates: [self.cert_target(CERT)].into_iter().collect(),
        }
    }

    /// Every version of certificate `name` in the emulator's state (oldest first).
    pub fn cert_versions(&self, name: &str) -> Vec<Value> {
        let st = self.state();
        for v in st["vaults"].as_array().expect("vaults") {
            for c in v["certificates"].as_array().cloned().unwrap_or_default() {
                if c["name"] == name {
                    return c["versions"].as_array().cloned().unwrap_or_default();
                }
            }
        }
        Vec::new()
    }

    /// A Graph token for the principal.
    pub async fn graph_token(&self) -> String {
        let ep = self.emu.endpoints();
        let scope = format!("{}/.default", ep.graph_endpoint);
        self.credential()
            .get_token(&[scope.as_str()], None)
            .await
            .expect("token")
            .token
            .secret()
            .to_owned()
    }

    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.emu.endpoints().ca_file).expect("ca");
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("pem"))
            .build()
            .expect("client")
    }

    /// `GET /applications/{id}?$select=keyCredentials,tokenEncryptionKeyId` as raw JSON.
    pub async fn raw_keys(&self) -> Value {
        let ep = self.emu.endpoints();
        let url = format!(
            "{}/v1.0/applications/{CERTAPP_OID}?$select=keyCredentials,tokenEncryptionKeyId",
            ep.graph_endpoint
        );
        self.client()
            .get(url)
            .bearer_auth(self.graph_token().await)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    /// PATCH the application (raw JSON body).
    pub async fn patch_app(&self, body: Value) {
        let ep = self.emu.endpoints();
        let url = format!("{}/v1.0/applications/{CERTAPP_OID}", ep.graph_endpoint);
        let r = self
            .client()
            .patch(url)
            .bearer_auth(self.graph_token().await)
            .json(&body)
            .send()
            .await
            .expect("patch");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Signs in as `app_id` with a client assertion signed through Key Vault by the key of
    /// `version` of certificate `name` (DER `der`), as a consumer holding that version would.
    pub async fn cert_signs_in(&self, app_id: &str, name: &str, version: &str, der: &[u8]) -> bool {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let ep = self.emu.endpoints();
        let token_url = format!("{}/{}/oauth2/v2.0/token", ep.authority_host, ep.tenant_id);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t": b64(&sha1::Sha1::digest(der))});
        let claims = json!({"aud": token_url, "iss": app_id, "sub": app_id,
            "jti": uuid::Uuid::new_v4().to_string(), "nbf": now - 60, "exp": now + 300});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let keys = KeyClient::new(
            self.vault(VAULT).as_str(),
            self.credential(),
            Some(KeyClientOptions {
                client_options: self.sdk_options(),
                verify_challenge_resource: Some(false),
                ..Default::default()
            }),
        )
        .expect("key client");
        let params = SignParameters {
            algorithm: Some(SignatureAlgorithm::Rs256),
            value: Some(sha2::Sha256::digest(input.as_bytes()).to_vec()),
        };
        let sig = keys
            .sign(
                name,
                params.try_into().expect("params"),
                Some(KeyClientSignOptions {
                    key_version: Some(version.to_owned()),
                    ..Default::default()
                }),
            )
            .await
            .expect("sign")
            .into_model()
            .expect("model")
            .result
            .expect("signature");
        let assertion = format!("{input}.{}", b64(&sig));
        let scope = format!("{}/.default", ep.graph_endpoint);
        let r = self
            .client()
            .post(token_url)
            .form(&[
                ("client_id", app_id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
            ])
            .send()
            .await
            .expect("token request");
        r.status().is_success()
    }
}

/// Entries of `raw_keys()` by keyId.
pub fn entries(raw: &Value) -> std::collections::BTreeMap<String, Value> {
    raw["keyCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e["keyId"].as_str().unwrap_or("").to_ascii_lowercase(), e))
        .collect()
}

/// Upper-case hex SHA-1 of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    sha1::Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}
