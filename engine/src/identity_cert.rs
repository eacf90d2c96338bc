//! rotor's own identity from a certificate (`AZURE_CLIENT_CERTIFICATE_PATH`, the provider's
//! `client_certificate_path`): a PEM file (certificate + PKCS#8 or PKCS#1 RSA key) or a PKCS#12
//! (`.pfx`) file, optionally password-protected. Each token request carries a fresh client
//! assertion (RS256, `x5t` = the certificate's SHA-1 thumbprint, 10 minutes) signed locally.
//!
//! The key is parsed once at start and never leaves this module: `Debug` shows the thumbprint only.

use crate::error::{Error, Result};
use crate::secret::SecretValue;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha1::Digest as _;
use std::fmt;
use std::path::{Path, PathBuf};

/// Lifetime of one client assertion (Entra accepts up to 10 minutes).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A certificate and its RSA private key, ready to sign client assertions.
pub(crate) struct ClientCertificate {
    key: RsaKeyPair,
    /// DER of the leaf certificate, then the rest of the chain as given.
    chain: Vec<Vec<u8>>,
    path: PathBuf,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprint_hex())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Reads `path` (PEM or PKCS#12). `source` names where the path came from, for messages
    /// (`AZURE_CLIENT_CERTIFICATE_PATH`).
    pub(crate) fn load(
        path: &Path,
        password: Option<&SecretValue>,
        source: &str,
    ) -> Result<ClientCertificate> {
        let action = format!("reading the client certificate `{}`", path.display());
        let hint = || {
            format!(
                "{source} must name a PEM file (certificate and RSA private key) or a PKCS#12 (.pfx) file; set AZURE_CLIENT_CERTIFICATE_PASSWORD (ARM_CLIENT_CERTIFICATE_PASSWORD, provider `client_certificate_password`) when the PKCS#12 file is protected"
            )
        };
        let data = std::fs::read(path).map_err(|e| {
            Error::config(&action, format!("{e} (from {source})")).with_hint(hint())
        })?;
        Self::parse(&data, password, path.to_path_buf(), &action, &hint)
    }

    /// From the content itself: base64 of a PKCS#12 file, or PEM text (the provider's
    /// `client_certificate`, e.g. fed from a Key Vault secret). `source` names the setting.
    pub(crate) fn from_content(
        content: &SecretValue,
        password: Option<&SecretValue>,
        source: &str,
    ) -> Result<ClientCertificate> {
        let action = format!("reading the client certificate from {source}");
        let hint = || {
            format!(
                "{source} must hold the base64 of a PKCS#12 (.pfx) file (Terraform: filebase64(\"rotor.pfx\"), or a Key Vault certificate's secret value) or PEM text with the certificate and its RSA private key"
            )
        };
        let text = content.expose().trim();
        let data = if text.starts_with("-----BEGIN") {
            text.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text.split_whitespace().collect::<String>())
                .map_err(|_| Error::config(&action, "neither PEM nor base64").with_hint(hint()))?
        };
        Self::parse(&data, password, PathBuf::from(source), &action, &hint)
    }

    fn parse(
        data: &[u8],
        password: Option<&SecretValue>,
        path: PathBuf,
        action: &str,
        hint: &dyn Fn() -> String,
    ) -> Result<ClientCertificate> {
        let action = action.to_owned();
        let data = data.to_vec();
        let (keys, certs) = if data.starts_with(b"-----BEGIN") || looks_like_pem(&data) {
            from_pem(&data).map_err(|why| Error::config(&action, why).with_hint(hint()))?
        } else {
            let pwd = password.map(|p| p.expose()).unwrap_or("");
            from_pkcs12(&data, pwd).map_err(|why| Error::config(&action, why).with_hint(hint()))?
        };
        if certs.is_empty() {
            return Err(Error::config(&action, "the file holds no certificate").with_hint(hint()));
        }
        let Some(key_der) = keys.into_iter().next() else {
            return Err(Error::config(&action, "the file holds no private key").with_hint(hint()));
        };
        let key = RsaKeyPair::from_pkcs8(&key_der)
            .or_else(|_| RsaKeyPair::from_der(&key_der))
            .map_err(|_| {
                Error::config(
                    &action,
                    "the private key is not an RSA key (Entra accepts only RSA keys for client assertions)",
                )
                .with_hint(hint())
            })?;
        // The leaf is the certificate whose public key is the private key's.
        let public = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        let leaf = certs.iter().position(|der| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c.public_key().subject_public_key.data.as_ref() == public.as_slice())
                .unwrap_or(false)
        });
        let Some(leaf) = leaf else {
            return Err(Error::config(
                &action,
                "no certificate in the file matches its private key",
            )
            .with_hint(hint()));
        };
        let mut chain = certs;
        let leaf_der = chain.remove(leaf);
        chain.insert(0, leaf_der);
        Ok(ClientCertificate { key, chain, path })
    }

    /// SHA-1 thumbprint of the leaf certificate, upper-case hex (what Entra shows).
    pub(crate) fn thumbprint_hex(&self) -> String {
        sha1::Sha1::digest(&self.chain[0])
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// A client assertion for `client_id` at the token endpoint `audience`, valid from now for
    /// ten minutes. With `send_chain` the header also carries `x5c` (subject name / issuer
    /// authentication).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        send_chain: bool,
    ) -> std::result::Result<String, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&self.chain[0])),
        });
        if send_chain {
            header["x5c"] = self.chain.iter().map(|d| STANDARD.encode(d)).collect();
        }
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn looks_like_pem(data: &[u8]) -> bool {
    data.iter()
        .take(512)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        && data.windows(10).any(|w| w == b"-----BEGIN")
}

type Parts = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn from_pem(data: &[u8]) -> std::result::Result<Parts, String> {
    use rustls_pemfile::Item;
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    let mut rd = std::io::BufReader::new(data);
    for item in rustls_pemfile::read_all(&mut rd) {
        match item.map_err(|e| format!("the PEM file is malformed: {e}"))? {
            Item::X509Certificate(c) => certs.push(c.as_ref().to_vec()),
            Item::Pkcs8Key(k) => keys.push(k.secret_pkcs8_der().to_vec()),
            Item::Pkcs1Key(k) => keys.push(k.secret_pkcs1_der().to_vec()),
            Item::Sec1Key(_) => {
                return Err(
                    "the private key is an EC key; Entra accepts only RSA keys for client assertions"
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    Ok((keys, certs))
}

fn from_pkcs12(data: &[u8], password: &str) -> std::result::Result<Parts, String> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let store =
        KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
            format!("not a readable PKCS#12 file (wrong password, or neither PEM nor PKCS#12): {e}")
        })?;
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => {
                keys.push(chain.key().as_der().to_vec());
                certs.extend(chain.certs().iter().map(|c| c.as_der().to_vec()));
            }
            KeyStoreEntry::Certificate(c) => certs.push(c.as_der().to_vec()),
            KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok((keys, certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("test setup");
        let cert = rcgen::CertificateParams::new(vec!["rotor".into()])
            .expect("test setup")
            .self_signed(&key)
            .expect("test setup");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_pem_file_signs_assertions_and_debug_shows_no_key() {
        let (cert, key) = pem_pair();
        let dir = tempfile::tempdir().expect("test setup");
        let p = dir.path().join("rotor.pem");
        std::fs::write(&p, format!("{key}{cert}")).expect("test setup");
        let c =
            ClientCertificate::load(&p, None, "AZURE_CLIENT_CERTIFICATE_PATH").expect("test setup");
        let jwt = c
            .assertion("client", "https://login/t/oauth2/v2.0/token", false)
            .expect("test setup");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("test setup"))
                .expect("test setup");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(header["x5t"].as_str().expect("test setup"))
                .expect("test setup")
                .len(),
            20
        );
        let dbg = format!("{c:?}");
        assert!(dbg.contains(&c.thumbprint_hex()));
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!dbg.contains(&body[..40]), "Debug shows key material");
    }

    #[test]
    fn a_key_without_its_certificate_is_refused_naming_the_file() {
        let (_, key) = pem_pair();
        let (other_cert, _) = pem_pair();
        let dir = tempfile::tempdir().expect("test setup");
        let p = dir.path().join("mismatch.pem");
        std::fs::write(&p, format!("{key}{other_cert}")).expect("test setup");
        let e = ClientCertificate::load(&p, None, "AZURE_CLIENT_CERTIFICATE_PATH")
            .expect_err("refused");
        let msg = e.to_string();
        assert!(msg.contains("mismatch.pem"), "{msg}");
        assert!(msg.contains("matches its private key"), "{msg}");
    }

    #[test]
    fn a_missing_file_names_the_variable() {
        let e = ClientCertificate::load(
            Path::new("/nonexistent/rotor.pfx"),
            None,
            "ARM_CLIENT_CERTIFICATE_PATH",
        )
        .expect_err("refused");
        assert!(e.to_string().contains("ARM_CLIENT_CERTIFICATE_PATH"), "{e}");
    }
}
